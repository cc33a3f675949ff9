package kube_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/kedastral/kedastral/test/testutil"
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
	defer testutil.RemoveKedastral()
	code := m.Run()
	if shared != nil {
		shared.stop()
	}
	return code
}
