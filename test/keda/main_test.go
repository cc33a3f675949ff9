package keda

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

// binary is the kedastral binary under test: $KEDASTRAL_BINARY, or built
// from ../../cmd/kedastral in the main module by TestMain.
var binary string

func TestMain(m *testing.M) {
	binary = os.Getenv("KEDASTRAL_BINARY")
	var dir string
	if binary == "" {
		var err error
		dir, err = os.MkdirTemp("", "kedastral-keda-test")
		if err != nil {
			panic(err)
		}
		binary = filepath.Join(dir, "kedastral")
		cmd := exec.Command("go", "build", "-o", binary, "./cmd/kedastral")
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			panic("go build ./cmd/kedastral: " + err.Error() + "\n" + string(out))
		}
	}
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startScaler runs `kedastral scaler` against the Prometheus at promURL and
// returns its gRPC address once it accepts connections.
func startScaler(t *testing.T, promURL string, extraArgs ...string) string {
	t.Helper()
	for attempt := 0; ; attempt++ {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
		var out bytes.Buffer
		args := append([]string{"scaler",
			"--prometheus.url=" + promURL,
			"--grpc.listen-address=" + addr,
			"--web.listen-address=127.0.0.1:0",
			"--cache.ttl=50ms",
			"--stream.check-interval=20ms",
			"--log.level=debug",
		}, extraArgs...)
		cmd := exec.Command(binary, args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		deadline := time.Now().Add(20 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				t.Cleanup(func() {
					_ = cmd.Process.Signal(syscall.SIGTERM)
					select {
					case err := <-exited:
						if err != nil {
							t.Errorf("kedastral scaler: %v\n%s", err, out.String())
						}
					case <-time.After(15 * time.Second):
						_ = cmd.Process.Kill()
						t.Errorf("kedastral scaler did not stop on SIGTERM\n%s", out.String())
					}
					if testing.Verbose() || t.Failed() {
						t.Logf("kedastral scaler log:\n%s", out.String())
					}
				})
				return addr
			}
			select {
			case err := <-exited:
				if attempt < 3 && bytes.Contains(out.Bytes(), []byte("address already in use")) {
					goto retry
				}
				if bytes.Contains(out.Bytes(), []byte("unexpected argument scaler")) {
					t.Fatalf("%s has no scaler subcommand: add Scaler ScalerCmd to the CLI in cmd/kedastral/main.go\n%s", binary, out.String())
				}
				t.Fatalf("kedastral scaler exited: %v\n%s", err, out.String())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("kedastral scaler did not listen on %s\n%s", addr, out.String())
			}
		}
	retry:
	}
}

// remoteWrite sends one sample per series to Prometheus' remote-write
// receiver (protocol 1.0), as the forecaster does.
func remoteWrite(t *testing.T, url string, ls labels.Labels, v float64, at time.Time) {
	t.Helper()
	var pl []prompb.Label
	ls.Range(func(l labels.Label) { pl = append(pl, prompb.Label{Name: l.Name, Value: l.Value}) })
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels: pl, Samples: []prompb.Sample{{Value: v, Timestamp: at.UnixMilli()}},
	}}}
	data, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, data)))
	if err != nil {
		t.Fatal(err)
	}
	hreq.Header.Set("Content-Encoding", "snappy")
	hreq.Header.Set("Content-Type", "application/x-protobuf")
	hreq.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatal(fmt.Errorf("remote write %s: HTTP %s", ls, resp.Status))
	}
}
