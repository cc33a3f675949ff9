package deploytest

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestSameDependencyVersions makes sure this module builds engine/policy with
// the same dependency versions as the kedastral binary (its heavier
// dependencies could otherwise raise, say, prometheus/common, and the CRDs
// would describe another HTTP client config than the forecaster decodes).
// Every module the main go.mod requires is compared. On a failure, align the versions (go get in deploy/test, or in the main
// module) and run go mod tidy in deploy/test.
func TestSameDependencyVersions(t *testing.T) {
	list := func(dir string) map[string]string {
		out, err := run(dir, "go", "list", "-m", "-f", "{{.Path}} {{.Version}}", "all")
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			path, version, _ := strings.Cut(l, " ")
			m[path] = version
		}
		return m
	}
	main, ours := list(repoRoot), list(".")
	modJSON, err := run(repoRoot, "go", "mod", "edit", "-json")
	if err != nil {
		t.Fatal(err)
	}
	var mod struct{ Require []struct{ Path string } }
	if err := json.Unmarshal(modJSON, &mod); err != nil {
		t.Fatal(err)
	}
	if len(mod.Require) == 0 {
		t.Fatal("no requirements in go.mod")
	}
	for _, r := range mod.Require {
		path := r.Path
		if main[path] != ours[path] {
			t.Errorf("%s: kedastral uses %s, deploy/test %s", path, main[path], ours[path])
		}
	}
}
