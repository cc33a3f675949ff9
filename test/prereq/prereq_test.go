package prereq

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestFind(t *testing.T) {
	p, err := Find("go")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(p) != "go" {
		t.Errorf("Find(go) = %s", p)
	}
	if p, err := Find("kedastral-no-such-program", "go"); err != nil || filepath.Base(p) != "go" {
		t.Errorf("an alternative name: %s, %v", p, err)
	}
	_, err = Find("helm-kedastral-missing")
	if err == nil {
		t.Fatal("a missing program was found")
	}
	for _, want := range []string{"helm-kedastral-missing", "make setup"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if _, err := Find("kedastral-no-such-program", "nor-this-one"); err == nil || !strings.Contains(err.Error(), "kedastral-no-such-program or nor-this-one") {
		t.Errorf("error %v does not name both names", err)
	}
}

// TestHint: every program the set-up provides says where it comes from.
func TestHint(t *testing.T) {
	for name := range sources {
		if h := Hint(name); !strings.Contains(h, Setup) || !strings.Contains(h, sources[name]) {
			t.Errorf("Hint(%s) = %q", name, h)
		}
	}
	if h := Hint("unknown"); !strings.Contains(h, Setup) {
		t.Errorf("Hint(unknown) = %q", h)
	}
}
