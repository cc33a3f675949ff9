// Package scale holds Kedastral's scale-out tests, run against the built
// kedastral binary: forecaster replicas sharing the series of a policy with
// --shard.count on one Prometheus, and the forecaster and the scaler end to
// end on each Prometheus-compatible backend (Prometheus, VictoriaMetrics).
package scale

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the kedastral binary, built once.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kedastral-scale")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "kedastral")
	out, err := exec.Command("go", "build", "-o", binary, "github.com/kedastral/kedastral/cmd/kedastral").CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		panic("go build: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t *testing.T) string { return freeAddrTB(t) }

// safeBuffer is a bytes.Buffer a process writes to while the test reads it.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs the binary with args until the test ends (or stop is called),
// then stops it with SIGTERM (bounded) and logs its output when the test
// failed.
func start(t *testing.T, name, bin string, args ...string) (stop func()) {
	t.Helper()
	stop, _, _ = startProc(t, name, bin, args...)
	return stop
}

// startOnFreePorts starts the binary with the arguments args builds from n
// free loopback addresses, and starts it again on new ones when another
// process took one of them between the test's pick and the binary's bind
// (at most 3 tries). It returns the addresses in use and the stop function.
func startOnFreePorts(t *testing.T, name, bin string, n int, args func(addrs []string) []string) ([]string, func()) {
	t.Helper()
	for try := 1; ; try++ {
		addrs := make([]string, n)
		for i := range addrs {
			addrs[i] = freeAddr(t)
		}
		stop, done, logs := startProc(t, name, bin, args(addrs)...)
		select {
		case <-done:
			if strings.Contains(logs.String(), "address already in use") && try < 3 {
				stop()
				continue
			}
			t.Fatalf("%s exited at start:\n%s", name, logs.String())
		case <-time.After(2 * time.Second):
		}
		return addrs, stop
	}
}

// startProc is start that also returns a channel closed when the process
// has exited, and its output.
func startProc(t *testing.T, name, bin string, args ...string) (stop func(), done <-chan struct{}, logs *safeBuffer) {
	t.Helper()
	logs = &safeBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
				t.Errorf("%s did not stop within 15s of SIGTERM", name)
			}
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			out := logs.String()
			if len(out) > 8000 {
				out = "…" + out[len(out)-8000:]
			}
			t.Logf("%s log:\n%s", name, out)
		}
	})
	return stop, exited, logs
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// eventually polls f every 250ms until it reports true, or fails the test
// after limit with f's last word.
func eventually(t *testing.T, limit time.Duration, what string, f func() (string, bool)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		last, ok := f()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s; last: %s", what, limit, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// vector is an instant query's result: labels and value per series.
type vector []struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// instant runs an instant query against a Prometheus-compatible API.
func instant(t *testing.T, base, q string) (vector, string) {
	t.Helper()
	_, body := get(t, base+"/api/v1/query?query="+url.QueryEscape(q))
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result vector `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Status != "success" {
		return nil, fmt.Sprintf("query %s: %v: %s", q, err, body)
	}
	return r.Data.Result, body
}
