package stores

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kedastral/kedastral/promapi/promtest"
	"github.com/kedastral/kedastral/test/testutil"
)

// ThanosBinEnv names a directory holding the thanos binary; by default the
// cache directory of `test/bins/build.sh thanos`.
const ThanosBinEnv = "KEDASTRAL_THANOS_BIN"

// thanosBin finds the thanos binary, or fails the test naming the command
// that builds it.
func thanosBin(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(ThanosBinEnv)
	if dir == "" {
		var err error
		if dir, err = promtest.BinCacheDir("thanos"); err != nil {
			t.Fatal(err)
		}
		dir += "-slicelabels" // the build tag Thanos needs, in build.sh's cache key
	}
	p := filepath.Join(dir, "thanos")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("thanos not found in %s: run test/bins/build.sh thanos (builds it once, from the Go module proxy) or set %s", dir, ThanosBinEnv)
	}
	return p
}

// receiver is one Thanos Receive of the hashring.
type receiver struct {
	name                      string
	grpc, http, rwAddr, capnp string
	args                      []string
	proc                      *testutil.Proc
}

// RemoteWriteURL is where a Prometheus-compatible client writes to it.
func (r *receiver) RemoteWriteURL() string { return "http://" + r.rwAddr + "/api/v1/receive" }

// thanosStack is Thanos on loopback: receivers in one hashring with
// replication factor 2, a sidecar in front of the Prometheus holding the
// history, and a querier over all of them that deduplicates the receivers'
// copies along the replica label.
type thanosStack struct {
	bin       string
	receivers []*receiver
	queryURL  string
}

// replicaLabel is the external label each receiver puts on what it stores;
// the querier deduplicates along it.
const replicaLabel = "replica"

// startThanos starts n receivers, a sidecar over prom and a querier. It
// returns once the querier sees every one of them.
func startThanos(t *testing.T, n int, prom *promtest.Server) *thanosStack {
	t.Helper()
	bin := thanosBin(t)
	dir := t.TempDir()
	s := &thanosStack{bin: bin}
	var ring []string
	for i := range n {
		r := &receiver{name: fmt.Sprintf("r%d", i), grpc: testutil.FreeAddr(t), http: testutil.FreeAddr(t), rwAddr: testutil.FreeAddr(t), capnp: testutil.FreeAddr(t)}
		ring = append(ring, r.grpc)
		s.receivers = append(s.receivers, r)
	}
	hashring := filepath.Join(dir, "hashring.json")
	b, _ := json.Marshal([]map[string]any{{"hashring": "default", "endpoints": ring}})
	if err := os.WriteFile(hashring, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, r := range s.receivers {
		r.args = []string{"receive",
			"--tsdb.path=" + filepath.Join(dir, r.name),
			"--grpc-address=" + r.grpc, "--http-address=" + r.http, "--remote-write.address=" + r.rwAddr,
			"--receive.capnproto-address=" + r.capnp, // listens even when unused
			"--label=" + replicaLabel + `="` + r.name + `"`,
			"--receive.local-endpoint=" + r.grpc,
			"--receive.hashrings-file=" + hashring,
			"--receive.hashrings-algorithm=ketama",
			"--receive.replication-factor=2",
			"--tsdb.retention=1d",
			"--log.level=warn",
		}
		s.start(t, r)
	}
	sidecar := []string{testutil.FreeAddr(t), testutil.FreeAddr(t)}
	testutil.Start(t, testutil.ProcOptions{Name: "thanos sidecar"}, bin, "sidecar",
		"--prometheus.url="+prom.URL(), "--tsdb.path="+prom.DataDir(),
		"--grpc-address="+sidecar[0], "--http-address="+sidecar[1], "--log.level=warn")

	var sd strings.Builder
	sd.WriteString("endpoints:\n")
	for _, a := range append(slices.Clone(ring), sidecar[0]) {
		fmt.Fprintf(&sd, "- address: %q\n", a)
	}
	q := []string{testutil.FreeAddr(t), testutil.FreeAddr(t)}
	testutil.Start(t, testutil.ProcOptions{Name: "thanos query"}, bin, "query",
		"--http-address="+q[0], "--grpc-address="+q[1],
		"--endpoint.sd-config="+sd.String(),
		"--query.replica-label="+replicaLabel,
		// The receivers' copies of a sample have the same time stamp: chain
		// merges them one for one, where penalty could drop samples around
		// a receiver's outage.
		"--deduplication.func=chain",
		"--log.level=warn")
	s.queryURL = "http://" + q[0]
	testutil.Eventually(t, 60*time.Second, "thanos query seeing every receiver and the sidecar", func() (string, bool) {
		_, body := testutil.Get(t, s.queryURL+"/api/v1/stores")
		var st struct {
			Data map[string][]struct {
				Name      string `json:"name"`
				LastError *string
			} `json:"data"`
		}
		if json.Unmarshal([]byte(body), &st) != nil {
			return body, false
		}
		up := 0
		for _, stores := range st.Data {
			for _, x := range stores {
				if x.LastError == nil {
					up++
				}
			}
		}
		return body, up >= n+1
	})
	return s
}

// start runs r (again, after a kill: same ports, same TSDB) and waits until it
// is ready.
func (s *thanosStack) start(t *testing.T, r *receiver) {
	t.Helper()
	r.proc = testutil.Start(t, testutil.ProcOptions{Name: "thanos receive " + r.name}, s.bin, r.args...)
	testutil.Eventually(t, 60*time.Second, "ready receiver "+r.name, func() (string, bool) {
		r.proc.Alive(t)
		code, body := testutil.Get(t, "http://"+r.http+"/-/ready")
		return body, code == 200
	})
}

// rawSeries is a range query's result: every raw sample of each series.
type rawSeries struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"`
}

// raw returns the raw samples of sel over the last window, read through
// Thanos Query with or without deduplication, and never a partial answer.
func (s *thanosStack) raw(t *testing.T, sel string, window time.Duration, dedup bool) []rawSeries {
	t.Helper()
	v := url.Values{}
	v.Set("query", fmt.Sprintf("%s[%ds]", sel, int(window.Seconds())))
	v.Set("dedup", fmt.Sprint(dedup))
	v.Set("partial_response", "false")
	_, body := testutil.Get(t, s.queryURL+"/api/v1/query?"+v.Encode())
	var r struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string      `json:"resultType"`
			Result     []rawSeries `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Status != "success" || r.Data.ResultType != "matrix" {
		t.Fatalf("query %s (dedup %v): %v: %.2000s", v.Get("query"), dedup, err, body)
	}
	return r.Data.Result
}

// seriesKey is a series' labels without the replica label, sorted.
func seriesKey(m map[string]string) string {
	var parts []string
	for k, v := range m {
		if k != replicaLabel {
			parts = append(parts, k+"="+v)
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// stamps is the time stamps of a series' samples in milliseconds, in order.
func stamps(t *testing.T, s rawSeries) []int64 {
	t.Helper()
	out := make([]int64, len(s.Values))
	for i, v := range s.Values {
		f, ok := v[0].(float64)
		if !ok {
			t.Fatalf("sample time %v of %v", v[0], s.Metric)
		}
		out[i] = int64(f*1000 + 0.5)
	}
	return out
}
