package promtest

import (
	"net"
	"strconv"
	"testing"
)

// TestFreePort: the port is below the ephemeral range, free (a listener can
// take it), and two picks differ almost always.
func TestFreePort(t *testing.T) {
	seen := map[int]bool{}
	for range 20 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if p < 10000 || p >= ephemeralLow() {
			t.Errorf("port %d outside [10000, %d)", p, ephemeralLow())
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d not free: %v", p, err)
		}
		l.Close()
		seen[p] = true
	}
	if len(seen) < 15 {
		t.Errorf("20 picks gave %d ports", len(seen))
	}
	a, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	if h, _, err := net.SplitHostPort(a); err != nil || h != "127.0.0.1" {
		t.Errorf("FreeAddr %q: want 127.0.0.1:port", a)
	}
}
