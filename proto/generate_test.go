package externalscaler_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kedastral/kedastral/test/prereq"
)

// TestGenerated regenerates the Go code into a temporary directory and fails
// if it differs from the committed files, so `make proto` was not forgotten.
func TestGenerated(t *testing.T) {
	if testing.Short() {
		t.Skip("builds protoc-gen-go and protoc-gen-go-grpc; make test runs it")
	}
	prereq.Program(t, "protoc")
	dir := t.TempDir()
	out, err := exec.Command("./generate.sh", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("generate.sh: %v\n%s", err, out)
	}
	for _, f := range []string{"externalscaler.pb.go", "externalscaler_grpc.pb.go"} {
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is out of date: run `make proto` and commit the result", f)
		}
	}
}
