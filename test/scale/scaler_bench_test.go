package scale

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kedastral/kedastral/engine/scaler/loadtest"
	"github.com/kedastral/kedastral/promapi"
	"github.com/kedastral/kedastral/promapi/promtest"
	pb "github.com/kedastral/kedastral/proto"
	"github.com/kedastral/kedastral/test/testutil"
)

// procCPU is the user and system CPU time of process pid so far, from
// /proc/<pid>/stat (in clock ticks of 10 ms, Linux' USER_HZ).
func procCPU(tb testing.TB, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command, which is in parentheses: state is field 3,
	// utime 14 and stime 15.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// BenchmarkScalerOpenLoop is the kedastral scaler binary answering
// GetMetrics for 10 000 ScaledObjects whose desired replicas a real
// Prometheus holds, from this process (the load generator, as KEDA would be
// another process): b.N requests offered at a fixed rate
// (KEDASTRAL_BENCH_RATE, 20 000/s by default) by 64 goroutines over 4
// connections, each request's latency counted from its scheduled send time.
// It reports the latency's p50, p99 and max, the rate achieved and the
// scaler process' own CPU per request; the load generator shares the
// machine's cores with it. Run it with -benchtime 60000x (3 s at 20 000/s).
func BenchmarkScalerOpenLoop(b *testing.B) {
	promtest.RequireBinaries(b)
	rate := loadtest.Rate(b, 20000)
	const n = 10000
	prom := promtest.StartT(b, promtest.Options{})
	w, err := promapi.NewWriter(promapi.WriterConfig{URL: prom.RemoteWriteURL()})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	now := time.Now().UnixMilli()
	samples := make([]promapi.Sample, n)
	reqs := make([]*pb.GetMetricsRequest, n)
	for i := range n {
		ns, d := fmt.Sprintf("ns-%03d", i/100), fmt.Sprintf("svc-%05d", i)
		samples[i] = promapi.Sample{Labels: labels.FromStrings("__name__", "kedastral_desired_replicas", "policy", "fleet", "namespace", ns, "deployment", d), T: now, V: float64(1 + i%20)}
		reqs[i] = &pb.GetMetricsRequest{ScaledObjectRef: &pb.ScaledObjectRef{Name: d, Namespace: ns, ScalerMetadata: map[string]string{
			"policy": "fleet", "matchLabels": "namespace=" + ns + ",deployment=" + d, "maxForecastAge": "1h"}}}
	}
	if _, err := w.Write(ctx, samples); err != nil {
		b.Fatal(err)
	}

	grpcAddr, web := testutil.FreeAddr(b), testutil.FreeAddr(b)
	// The scaler's garbage collector, apart from the load generator's
	// (which stands in for KEDA, elsewhere in a cluster).
	var env []string
	for _, k := range []string{"GOGC", "GOMEMLIMIT"} {
		if v, ok := os.LookupEnv("KEDASTRAL_BENCH_SCALER_" + k); ok {
			env = append(env, k+"="+v)
		}
	}
	sc := testutil.Start(b, testutil.ProcOptions{Name: "scaler", Env: env}, testutil.Kedastral(b), "scaler", "--prometheus.url="+prom.URL(),
		"--grpc.listen-address="+grpcAddr, "--web.listen-address="+web, "--cache.ttl=1h", "--log.level=warn")
	defer sc.Kill()
	var clients []pb.ExternalScalerClient
	for range 4 {
		conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		clients = append(clients, pb.NewExternalScalerClient(conn))
	}
	// Ready once it answers; then every trigger polled once, as after the
	// first minutes of a scaler.
	for try := 0; ; try++ {
		r, err := clients[0].GetMetrics(ctx, reqs[4242])
		if err == nil && r.MetricValues[0].MetricValueFloat == float64(1+4242%20) {
			break
		}
		if try == 100 {
			b.Fatalf("scaler not answering: %v %v", r, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i, r := range reqs {
		if _, err := clients[i%len(clients)].GetMetrics(ctx, r); err != nil {
			b.Fatal(err)
		}
	}

	b.ResetTimer()
	cpu0 := procCPU(b, sc.Cmd.Process.Pid)
	res, err := loadtest.Run(b.N, 64, rate, func(w, i int) error {
		_, err := clients[w%len(clients)].GetMetrics(ctx, reqs[i%n])
		return err
	})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	cpu := procCPU(b, sc.Cmd.Process.Pid) - cpu0
	res.Report(b)
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "server-cpu-µs/req")
}
