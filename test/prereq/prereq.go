// Package prereq finds the programs the tests run (prometheus, helm, protoc,
// …) and fails a test that lacks one, naming the program and the command that
// provides it. A missing prerequisite never skips a test: `make test` installs
// or builds every one first (test/setup.sh), so a test that still lacks one
// has found a broken set-up, and says so.
package prereq

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Setup is the command that installs every prerequisite.
const Setup = "make setup (test/setup.sh)"

// sources says where test/setup.sh gets each program.
var sources = map[string]string{
	"prometheus":       "Debian's prometheus package, or Prometheus 3 built by test/bins/build.sh prometheus",
	"promtool":         "Debian's prometheus package, or Prometheus 3 built by test/bins/build.sh prometheus",
	"protoc":           "Debian's protobuf-compiler package",
	"chromium":         "Debian's chromium package",
	"jsonnet":          "go install github.com/google/go-jsonnet/cmd/jsonnet",
	"jsonnetfmt":       "go install github.com/google/go-jsonnet/cmd/jsonnetfmt",
	"helm":             "go install helm.sh/helm/v3/cmd/helm",
	"kubeconform":      "go install github.com/yannh/kubeconform/cmd/kubeconform",
	"victoria-metrics": "go install github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics",
	"kube-apiserver":   "test/bins/build.sh kube",
	"etcd":             "test/bins/build.sh kube",
	"go":               "https://go.dev/doc/install",
}

// Hint says how to get the named prerequisite: the set-up command, and where
// the set-up gets it from.
func Hint(name string) string {
	if s, ok := sources[name]; ok {
		return fmt.Sprintf("run %s, which installs it from %s", Setup, s)
	}
	return "run " + Setup
}

var goBin = sync.OnceValue(func() []string {
	var dirs []string
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) == 2 {
			if gobin := strings.TrimSpace(lines[0]); gobin != "" {
				dirs = append(dirs, gobin)
			}
			for _, d := range filepath.SplitList(strings.TrimSpace(lines[1])) {
				dirs = append(dirs, filepath.Join(d, "bin"))
			}
		}
	}
	return dirs
})

// Find returns the path of the program name, or of the first of its
// alternative names found: on PATH, else in $(go env GOBIN) or
// $(go env GOPATH)/bin, where `go install` puts the Go tools. The error names
// the program and how to get it.
func Find(name string, alternatives ...string) (string, error) {
	names := append([]string{name}, alternatives...)
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	for _, d := range goBin() {
		for _, n := range names {
			p := filepath.Join(d, n)
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
				return p, nil
			}
		}
	}
	where := "on PATH nor in $(go env GOPATH)/bin"
	return "", fmt.Errorf("%s is not %s: %s", strings.Join(names, " or "), where, Hint(name))
}

// Program is Find for a test: it fails tb when the program is missing.
func Program(tb testing.TB, name string, alternatives ...string) string {
	tb.Helper()
	p, err := Find(name, alternatives...)
	if err != nil {
		tb.Fatalf("missing prerequisite: %v", err)
	}
	return p
}

// Missing fails tb for a missing prerequisite that is not a program (a
// directory, a module in the module cache, a file): what names it, and the
// message says to run the set-up.
func Missing(tb testing.TB, what string) {
	tb.Helper()
	tb.Fatalf("missing prerequisite: %s: run %s", what, Setup)
}
