package promtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// BinEnv is the environment variable that selects the Prometheus the
// integration tests and the demo run: a directory holding prometheus and
// promtool, such as the one `test/bins/build.sh prometheus` prints (Prometheus
// 3). Unset, both are taken from PATH (Debian's 2.42). `make test` runs the
// key packages once each way.
const BinEnv = "KEDASTRAL_PROMETHEUS_BIN"

// Binary returns the path of name (prometheus or promtool): in dir when dir
// is not empty, else in $KEDASTRAL_PROMETHEUS_BIN when that is set, else on
// PATH. The error says where it looked and how to get it.
func Binary(dir, name string) (string, error) {
	from := "directory"
	if dir == "" {
		dir = os.Getenv(BinEnv)
		from = "$" + BinEnv
	}
	if dir == "" {
		p, err := exec.LookPath(name)
		if err != nil {
			return "", fmt.Errorf("%s is not on PATH: install Debian's package (apt-get install --no-install-recommends prometheus), or set %s to a directory holding prometheus and promtool (test/bins/build.sh prometheus prints one)", name, BinEnv)
		}
		return p, nil
	}
	p := filepath.Join(dir, name)
	if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s not found or not executable in %s %s (test/bins/build.sh prometheus builds Prometheus 3 and its promtool there)", name, from, dir)
	}
	return p, nil
}

// Prometheus3Dir returns the directory holding the Prometheus 3 and promtool
// that `test/bins/build.sh prometheus` builds, for the tests of what only
// Prometheus 3 does (Remote Write 2.0, UTF-8 names): $KEDASTRAL_PROMETHEUS_BIN
// when it is set (the Prometheus 3 run of the matrix), else the script's cache
// directory for the version pinned in test/bins/prometheus/go.mod. It fails
// the test, naming the command, when the binaries are not there.
func Prometheus3Dir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(BinEnv)
	if dir == "" {
		var err error
		if dir, err = BinCacheDir("prometheus"); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"prometheus", "promtool"} {
		if _, err := Binary(dir, name); err != nil {
			t.Fatalf("Prometheus 3: %v", err)
		}
	}
	return dir
}

// BinCacheDir is the directory where test/bins/build.sh puts the component
// whose wrapper module is test/bins/<component> ("prometheus", "thanos"):
// <cache root>/<component>-<version>, the cache root being
// $KEDASTRAL_BIN_CACHE or ~/.cache/kedastral, as in the script.
func BinCacheDir(component string) (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cache directory of %s: cannot locate the repository", component)
	}
	gomod := filepath.Join(filepath.Dir(file), "..", "..", "test", "bins", component, "go.mod")
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", fmt.Errorf("cache directory of %s: %w", component, err)
	}
	version := ""
	for l := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "require" {
			version = f[2]
			break
		}
	}
	if version == "" {
		return "", fmt.Errorf("cache directory of %s: %s has no one-line require", component, gomod)
	}
	root := os.Getenv("KEDASTRAL_BIN_CACHE")
	if root == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cache directory of %s: %w", component, err)
		}
		root = filepath.Join(home, ".cache", "kedastral")
	}
	return filepath.Join(root, component+"-"+version), nil
}

// Version asks the server for its version (/api/v1/status/buildinfo),
// e.g. "2.42.0+ds" or "3.16.0". It speaks plain HTTP: not for a server with
// a tls_server_config.
func (s *Server) Version(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/api/v1/status/buildinfo", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("prometheus version: %w", err)
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Version string `json:"version"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Data.Version == "" {
		return "", fmt.Errorf("prometheus version: status %s, %v", resp.Status, err)
	}
	return r.Data.Version, nil
}

// SelectedVersion is the version of the prometheus binary that Start runs
// by default (see Binary), from its --version, e.g. "2.42.0+ds" or "3.16.0".
func SelectedVersion() (string, error) {
	bin, err := Binary("", "prometheus")
	if err != nil {
		return "", err
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w\n%s", bin, err, out)
	}
	// "prometheus, version 2.42.0+ds (branch: ..."
	_, after, ok := strings.Cut(string(out), "version ")
	if !ok {
		return "", fmt.Errorf("%s --version: no version in %q", bin, out)
	}
	v, _, _ := strings.Cut(after, " ")
	return v, nil
}
