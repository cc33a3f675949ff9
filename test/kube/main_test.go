package kube_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kedastral-kube-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	sharedDir = dir
	code := m.Run()
	if shared != nil {
		shared.stop()
	}
	return code
}

var (
	binary     string
	binaryErr  error
	binaryOnce sync.Once
)

// kedastralBinary builds the kedastral binary once.
func kedastralBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		binary = filepath.Join(sharedDir, "kedastral")
		out, err := exec.Command("go", "build", "-o", binary, filepath.Join(repoRoot, "cmd", "kedastral")).CombinedOutput()
		if err != nil {
			binaryErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binary
}
