package promtest

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestPortInUse checks that a start that loses its port to another process is
// recognised, which is what makes Start and Restart try again.
func TestPortInUse(t *testing.T) {
	RequireBinaries(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, configFile), []byte(configYAML(Options{})), 0o644); err != nil {
		t.Fatal(err)
	}
	bin, err := Binary("", "prometheus")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{dataDir: dir, port: l.Addr().(*net.TCPAddr).Port, bin: bin}
	if err := s.start(t.Context()); !errors.Is(err, errAddrInUse) {
		t.Fatalf("got %v, want an address-in-use error", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
}
