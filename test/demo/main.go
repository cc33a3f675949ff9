// Command demo is `make demo`: it starts a real Prometheus on loopback with
// eight days of a real production trace loaded as history ending now, keeps
// feeding the trace live, runs `kedastral forecaster` against it, prints what
// the forecaster serves and what it wrote into Prometheus, then runs
// `kedastral scaler` and asks it what KEDA would.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kedastral/kedastral/engine/trace"
	"github.com/kedastral/kedastral/promapi"
	"github.com/kedastral/kedastral/promapi/promtest"
	pb "github.com/kedastral/kedastral/proto"
)

const (
	traceFile  = "ms_mongodb_app_query_rate_1min.csv"
	metricName = "http_requests_total"
	historyLen = 8 * 24 * time.Hour
	feedEvery  = 15 * time.Second
)

const policyYAML = `# The demo's policy: the seed example, on the demo's counter.
apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata:
  name: api-forecast-policy
spec:
  targetRef:
    name: my-api
  metric: http_rps
  horizon: 30m
  leadTime: 5m
  interval: 10s
  ahead: [5m, 15m, 30m]
  capacity:
    targetPerPod: 200
    headroom: 1.2
    min: 2
    max: 80
  model:
    type: baseline
    quantile: 0.85
  sources:
    - name: rps
      type: prometheus
      query: sum by (job) (rate(http_requests_total{job="demo-api"}[5m]))
`

func main() {
	once := flag.Bool("once", false, "exit after printing the first forecast instead of running until interrupted")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, *once); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, once bool) error {
	for _, bin := range []string{"prometheus", "promtool"} {
		if _, err := promtest.Binary("", bin); err != nil {
			return fmt.Errorf("%w; `make demo` installs it (test/setup.sh demo: Debian's prometheus package as root, else Prometheus 3 built into ~/.cache/kedastral/bin)", err)
		}
	}
	work, err := os.MkdirTemp("", "kedastral-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	fmt.Fprintln(out, "==> building kedastral")
	bin := filepath.Join(work, "kedastral")
	root, err := repoRoot()
	if err != nil {
		return err
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/kedastral")
	build.Dir = root
	stopProgress := progress(out, "building kedastral")
	b, err := build.CombinedOutput()
	stopProgress()
	if err != nil {
		return fmt.Errorf("go build ./cmd/kedastral: %v\n%s", err, b)
	}

	path, ok := trace.Locate(traceFile)
	if !ok {
		return fmt.Errorf("trace %s not found under testdata/traces", traceFile)
	}
	pts, err := trace.ReadFile(path)
	if err != nil {
		return err
	}
	// The first eight days become the history, ending at the current minute;
	// the rest is fed live, one trace minute per real minute.
	now := time.Now().Truncate(time.Minute)
	cut := pts[0].T.Add(historyLen)
	shift := now.Sub(cut)
	counter := 0.0
	hist := promtest.Series{Name: metricName, Labels: labels.FromStrings("job", "demo-api", "instance", "demo-0")}
	var future []trace.Point
	for i, p := range pts {
		t := p.T.Add(shift)
		if i > 0 {
			counter += p.V * pts[i].T.Sub(pts[i-1].T).Seconds()
		}
		if t.After(now) {
			future = append(future, trace.Point{T: t, V: p.V})
			continue
		}
		hist.Points = append(hist.Points, promtest.Point{T: t.UnixMilli(), V: counter})
	}
	dataDir := filepath.Join(work, "prometheus")
	fmt.Fprintf(out, "==> loading %d days of history: %d points of %s (queries/s of a production MongoDB cluster, MIT) as %s ending now\n",
		int(historyLen/(24*time.Hour)), len(hist.Points), traceFile, metricName)
	stopProgress = progress(out, "loading the history")
	err = promtest.CreateBlocks(ctx, dataDir, []promtest.Series{hist})
	stopProgress()
	if err != nil {
		return err
	}
	prom, err := promtest.Start(ctx, dataDir, promtest.Options{})
	if err != nil {
		return err
	}
	defer prom.Stop()
	fmt.Fprintf(out, "==> Prometheus %s is up at %s\n", promVersion(prom.URL()), prom.URL())

	writer, err := promapi.NewWriter(promapi.WriterConfig{URL: prom.RemoteWriteURL()})
	if err != nil {
		return err
	}
	defer writer.Close()
	feedCtx, stopFeed := context.WithCancel(ctx)
	defer stopFeed()
	lastCounter := counter
	if n := len(hist.Points); n > 0 {
		lastCounter = hist.Points[n-1].V
	}
	go feed(feedCtx, writer, hist.Labels, future, now, lastCounter)

	cfg := filepath.Join(work, "policies.yaml")
	if err := os.WriteFile(cfg, []byte(policyYAML), 0o644); err != nil {
		return err
	}
	web, err := freeAddr()
	if err != nil {
		return err
	}
	logPath := filepath.Join(work, "forecaster.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	args := []string{"forecaster", "--config.file=" + cfg, "--prometheus.url=" + prom.URL(), "--web.listen-address=" + web}
	fmt.Fprintf(out, "==> kedastral %s\n", strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()

	base := "http://" + web
	fmt.Fprintln(out, "==> waiting for the first cycle (the policy runs every 10s)")
	st, err := waitForCycle(ctx, base, 90*time.Second)
	if err != nil {
		b, _ := os.ReadFile(logPath)
		return fmt.Errorf("%w\nforecaster log:\n%s", err, b)
	}
	printStatus(out, base, st)
	if err := printQueries(ctx, out, prom.URL()); err != nil {
		return err
	}

	// The scaler, asked the way KEDA asks it for a ScaledObject's trigger.
	grpcAddr, err := freeAddr()
	if err != nil {
		return err
	}
	scalerWeb, err := freeAddr()
	if err != nil {
		return err
	}
	sargs := []string{"scaler", "--prometheus.url=" + prom.URL(), "--grpc.listen-address=" + grpcAddr, "--web.listen-address=" + scalerWeb}
	fmt.Fprintf(out, "\n==> kedastral %s\n", strings.Join(sargs, " "))
	scaler := exec.Command(bin, sargs...)
	scaler.Stdout, scaler.Stderr = logFile, logFile
	if err := scaler.Start(); err != nil {
		return err
	}
	defer func() {
		_ = scaler.Process.Signal(syscall.SIGTERM)
		_ = scaler.Wait()
	}()
	if err := askScaler(ctx, out, grpcAddr); err != nil {
		b, _ := os.ReadFile(logPath)
		return fmt.Errorf("%w\nlog:\n%s", err, b)
	}
	fmt.Fprintf(out, "\nStatus page:        %s/\n", base)
	fmt.Fprintf(out, "Forecaster metrics: %s/metrics\n", base)
	fmt.Fprintf(out, "Prometheus graph:   %s/graph?g0.expr=%s&g0.tab=0&g0.range_input=6h\n", prom.URL(),
		url.QueryEscape(`kedastral_predicted_value{ahead="15m"} offset 15m or kedastral_observed_value`))
	if once {
		return nil
	}
	fmt.Fprintln(out, "\nThe trace keeps playing; press Ctrl-C to stop.")
	<-ctx.Done()
	return nil
}

// feed remote-writes the counter's next values as their time comes, so the
// signal stays live while the demo runs.
func feed(ctx context.Context, w *promapi.Writer, lbls labels.Labels, future []trace.Point, start time.Time, counter float64) {
	b := labels.NewBuilder(lbls)
	b.Set(labels.MetricName, metricName)
	series := b.Labels()
	last := start
	i := 0
	tick := time.NewTicker(feedEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			// Integrate the trace's rate from the last write to now.
			for last.Before(now) && i < len(future) {
				next := now
				if future[i].T.Before(next) {
					next = future[i].T
				}
				counter += future[i].V * next.Sub(last).Seconds()
				last = next
				if !future[i].T.After(now) {
					i++
				}
			}
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, _ = w.Write(wctx, []promapi.Sample{{Labels: series, T: now.UnixMilli(), V: counter}})
			cancel()
		}
	}
}

type policyStatus struct {
	Name         string
	Model        string
	Query        string
	SeriesCount  int
	DesiredRange [2]int32
	LastSuccess  time.Time
	LastError    string
	Series       []struct {
		Labels    map[string]string
		Observed  float64
		Predicted map[string]float64
		Desired   int32
	}
}

func waitForCycle(ctx context.Context, base string, limit time.Duration) (policyStatus, error) {
	deadline := time.Now().Add(limit)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/api/v1/policies")
		if err == nil {
			var body struct{ Data []policyStatus }
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(b)
			if json.Unmarshal(b, &body) == nil && len(body.Data) == 1 && !body.Data[0].LastSuccess.IsZero() {
				return body.Data[0], nil
			}
		}
		select {
		case <-ctx.Done():
			return policyStatus{}, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return policyStatus{}, fmt.Errorf("no successful cycle within %s; last status: %s", limit, last)
}

func printStatus(out io.Writer, base string, st policyStatus) {
	fmt.Fprintf(out, "\n--- status (%s/api/v1/policies) ---\n", base)
	fmt.Fprintf(out, "policy %s, model %s, %d series, desired replicas %d, last cycle %s\n",
		st.Name, st.Model, st.SeriesCount, st.DesiredRange[0], st.LastSuccess.UTC().Format(time.RFC3339))
	fmt.Fprintf(out, "query %s\n", st.Query)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "series\tobserved\tpredicted (ahead)\tdesired")
	for _, s := range st.Series {
		aheads := make([]string, 0, len(s.Predicted))
		for a := range s.Predicted {
			aheads = append(aheads, a)
		}
		sort.Slice(aheads, func(i, j int) bool {
			di, _ := time.ParseDuration(aheads[i])
			dj, _ := time.ParseDuration(aheads[j])
			return di < dj
		})
		var parts []string
		for _, a := range aheads {
			parts = append(parts, fmt.Sprintf("%s: %.0f", a, s.Predicted[a]))
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%d\n", labels.FromMap(s.Labels), s.Observed, strings.Join(parts, ", "), s.Desired)
	}
	tw.Flush()
}

func printQueries(ctx context.Context, out io.Writer, promURL string) error {
	q, err := promapi.NewClient(promapi.ClientConfig{URL: promURL})
	if err != nil {
		return err
	}
	defer q.Close()
	fmt.Fprintf(out, "\n--- PromQL against %s ---\n", promURL)
	for _, query := range []string{
		"kedastral_desired_replicas",
		"kedastral_observed_value",
		"kedastral_predicted_value",
		`ceil(kedastral_observed_value * 1.2 / 200)  # what reactive scaling would ask for now`,
	} {
		expr, comment, _ := strings.Cut(query, "  # ")
		res, err := q.Query(ctx, expr, time.Now())
		if err != nil {
			return fmt.Errorf("query %s: %w", expr, err)
		}
		if comment != "" {
			fmt.Fprintf(out, "> %s   (%s)\n", expr, comment)
		} else {
			fmt.Fprintf(out, "> %s\n", expr)
		}
		if len(res) == 0 {
			fmt.Fprintln(out, "  (no data)")
		}
		sort.Slice(res, func(i, j int) bool { return labels.Compare(res[i].Labels, res[j].Labels) < 0 })
		for _, s := range res {
			v := fmt.Sprintf("%.2f", s.V)
			if s.V == math.Trunc(s.V) {
				v = fmt.Sprintf("%.0f", s.V)
			}
			fmt.Fprintf(out, "  %s  %s\n", s.Labels, v)
		}
	}
	return nil
}

// askScaler calls the scaler's External Scaler API as KEDA's operator does
// for a trigger {type: external, metadata: {policy: api-forecast-policy}}.
func askScaler(ctx context.Context, out io.Writer, addr string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := pb.NewExternalScalerClient(conn)
	ref := &pb.ScaledObjectRef{Name: "my-api", Namespace: "default", ScalerMetadata: map[string]string{
		"scalerAddress": addr, "policy": "api-forecast-policy",
	}}
	var spec *pb.GetMetricSpecResponse
	deadline := time.Now().Add(15 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		spec, err = client.GetMetricSpec(cctx, ref)
		cancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("GetMetricSpec: %w", err)
	}
	ms := spec.MetricSpecs[0]
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	metrics, err := client.GetMetrics(cctx, &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: ms.MetricName})
	if err != nil {
		return fmt.Errorf("GetMetrics: %w", err)
	}
	active, err := client.IsActive(cctx, ref)
	if err != nil {
		return fmt.Errorf("IsActive: %w", err)
	}
	mv := metrics.MetricValues[0]
	fmt.Fprintf(out, "--- KEDA's questions to the scaler (trigger metadata policy=api-forecast-policy) ---\n")
	fmt.Fprintf(out, "GetMetricSpec: metric %s, target %d per replica (AverageValue)\n", ms.MetricName, ms.TargetSize)
	fmt.Fprintf(out, "GetMetrics:    %d\n", mv.MetricValue)
	fmt.Fprintf(out, "IsActive:      %v\n", active.Result)
	fmt.Fprintf(out, "=> the HPA scales my-api to ceil(%d / %d) = %d replicas\n", mv.MetricValue, ms.TargetSize,
		(mv.MetricValue+ms.TargetSize-1)/ms.TargetSize)
	return nil
}

func promVersion(base string) string {
	resp, err := http.Get(base + "/api/v1/status/buildinfo")
	if err != nil {
		return "?"
	}
	defer resp.Body.Close()
	var bi struct{ Data struct{ Version string } }
	if json.NewDecoder(resp.Body).Decode(&bi) != nil {
		return "?"
	}
	return bi.Data.Version
}

// repoRoot finds the repository from the working directory, so the demo
// runs from anywhere inside it.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/kedastral/kedastral\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run the demo inside the kedastral repository")
		}
		dir = parent
	}
}

func freeAddr() (string, error) { return promtest.FreeAddr() }

// progress prints a line every 30 s until the returned function is called,
// so that a long step never looks hung.
func progress(out io.Writer, what string) func() {
	start := time.Now()
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(out, "    still %s, %s\n", what, time.Since(start).Round(time.Second))
			}
		}
	}()
	return func() { close(done); <-stopped }
}
