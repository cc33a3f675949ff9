package main

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/common/version"

	"github.com/kedastral/kedastral/test/testutil"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	testutil.RemoveKedastral()
	os.Exit(code)
}

// kedastral runs the binary and returns stdout+stderr and the exit code.
func kedastral(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(testutil.Kedastral(t), args...)
	cmd.Env = append(os.Environ(), "COLUMNS=80") // help wraps at the terminal's width
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

// TestHelp pins the CLI surface: flags, defaults and help texts.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"--help"},
		{"forecaster", "--help"},
		{"scaler", "--help"},
		{"check", "config", "--help"},
		{"backtest", "--help"},
		{"version", "--help"},
	} {
		name := strings.Join(args[:len(args)-1], "-")
		if name == "" {
			name = "kedastral"
		}
		t.Run(name, func(t *testing.T) {
			out, code := kedastral(t, args...)
			if code != 0 {
				t.Fatalf("exit code %d:\n%s", code, out)
			}
			golden := filepath.Join("testdata", "help-"+name+".txt")
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run make generate)", err)
			}
			if out != string(want) {
				t.Errorf("help changed; run `make generate` if intended.\n--- got\n%s\n--- want\n%s", out, want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	out, code := kedastral(t, "version")
	// Built with go build, without the Makefile's ldflags.
	if code != 0 || !strings.HasPrefix(out, "kedastral, version devel ") {
		t.Fatalf("exit %d, output %q", code, out)
	}
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	seed := write("seed.yaml", `apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: api-forecast-policy}
spec:
  targetRef: {name: my-api}
  metric: http_rps
  horizon: 30m
  leadTime: 5m
  capacity: {targetPerPod: 200, headroom: 1.2, min: 2, max: 50}
  model: {type: baseline, quantile: 0.85}
  sources:
    - name: rps
      type: prometheus
      query: sum(rate(http_requests_total[1m]))
`)
	bad := write("bad.yaml", `apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: good}
spec:
  targetRef: {name: a}
  horizon: 30m
  leadTime: 5m
  capacity: {targetPerPod: 10, max: 5}
  sources: [{name: rps, query: 'sum(up)'}]
---
apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: broken}
spec:
  targetRef: {name: b}
  horizon: 30m
  leadTime: 5m
  capacity: {targetPerPod: 10, max: 5}
  sources: [{name: rps, query: 'sum(rate(x[1m])'}]
`)

	twoErrors := write("two-errors.yaml", `apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: checkout}
spec:
  targetRef: {name: checkout}
  horizon: 30m
  leadTime: 5m
  capacity: {targetPerPod: 10, max: 5}
  model: {type: baseline, quantile: 1.5}
  sources:
    - name: rps
      query: 'sum(rate(x[1m])'
`)
	empty := write("empty.yaml", "# policies go here\n---\n")

	example := func(name string) string {
		p, err := filepath.Abs(filepath.Join("..", "..", "deploy", "examples", name))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name     string
		files    []string
		wantCode int
		want     []string
	}{
		{"seed example", []string{seed}, 0, []string{"SUCCESS: 1 ForecastPolicy, 0 DataSource found"}},
		{"bad policy named", []string{bad}, 1, []string{
			`bad.yaml:19:25: ForecastPolicy "broken": spec.sources[0].query: invalid PromQL "sum(rate(x[1m])"`,
			"valid: 1 ForecastPolicy",
			"1 of 1 file(s) failed the check",
		}},
		{"every error of an object, each at its field", []string{twoErrors}, 1, []string{
			"FAILED: 2 error(s):\n" +
				"    " + twoErrors + `:9:27: ForecastPolicy "checkout": spec.model.quantile: must be in (0, 1), got 1.5` + "\n" +
				"    " + twoErrors + `:12:7: ForecastPolicy "checkout": spec.sources[0].query: invalid PromQL "sum(rate(x[1m])": 1:16: parse error: unclosed left parenthesis` + "\n",
		}},
		{"empty file", []string{empty}, 1, []string{"FAILED: no ForecastPolicy or DataSource objects in " + empty, "1 of 1 file(s) failed the check"}},
		{"empty and together", []string{"--together", empty}, 1, []string{"FAILED: no ForecastPolicy or DataSource objects in " + empty}},
		{"one bad of two", []string{seed, bad}, 1, []string{"SUCCESS", "FAILED", "1 of 2 file(s) failed"}},
		{"missing file", []string{filepath.Join(dir, "nope.yaml")}, 1, []string{"nope.yaml", "no such file"}},
		// The examples keep the DataSource apart from the policy that
		// uses it, as kubectl applies them: each on its own fails,
		// together they pass.
		{"data source in another file", []string{example("checkout-forecast-policy.yaml")}, 1, []string{
			`checkout-forecast-policy.yaml:49:5: ForecastPolicy "checkout": spec.dataSourceRef.name: no valid DataSource named "prometheus"`,
		}},
		{"together", []string{"--together", example("prometheus-datasource.yaml"), example("checkout-forecast-policy.yaml")}, 0, []string{
			"Checking " + example("prometheus-datasource.yaml") + ", " + example("checkout-forecast-policy.yaml"),
			"SUCCESS: 1 ForecastPolicy, 1 DataSource found",
		}},
		{"together, a bad one", []string{"--together", example("prometheus-datasource.yaml"), example("checkout-forecast-policy.yaml"), bad}, 1, []string{
			`bad.yaml:19:25: ForecastPolicy "broken"`, "valid: 2 ForecastPolicy, 1 DataSource", "the 3 file(s) failed the check together",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := kedastral(t, append([]string{"check", "config"}, tc.files...)...)
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d", code, tc.wantCode)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestFillVersion(t *testing.T) {
	saved := version.Version
	t.Cleanup(func() { version.Version = saved })
	for _, tc := range []struct {
		name, ldflags, module, want string
	}{
		{"set by the Makefile", "0.3.0", "v0.2.0", "0.3.0"},
		{"go install of a tagged module", "", "v0.2.0", "v0.2.0"},
		{"go build in the repository", "", "(devel)", "devel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			version.Version = tc.ldflags
			fillVersion(func() (*debug.BuildInfo, bool) {
				return &debug.BuildInfo{Main: debug.Module{Path: "github.com/kedastral/kedastral", Version: tc.module}}, true
			})
			if version.Version != tc.want {
				t.Errorf("version %q, want %q", version.Version, tc.want)
			}
		})
	}
}
