package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var kedastral struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Kedastral returns the path of the kedastral binary, built from this
// module on the first call in the test process. Call RemoveKedastral from
// TestMain once the tests have run.
func Kedastral(tb testing.TB) string {
	tb.Helper()
	k := &kedastral
	k.once.Do(func() {
		if k.dir, k.err = os.MkdirTemp("", "kedastral-test-"); k.err != nil {
			return
		}
		k.path = filepath.Join(k.dir, "kedastral")
		out, err := exec.Command("go", "build", "-o", k.path, "github.com/kedastral/kedastral/cmd/kedastral").CombinedOutput()
		if err != nil {
			k.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if k.err != nil {
		tb.Fatal(k.err)
	}
	return k.path
}

// RemoveKedastral deletes the binary Kedastral built, if any.
func RemoveKedastral() {
	if kedastral.dir != "" {
		os.RemoveAll(kedastral.dir)
	}
}
