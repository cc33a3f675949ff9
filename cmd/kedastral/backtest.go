package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"time"

	prommodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/kedastral/kedastral/engine/backtest"
	"github.com/kedastral/kedastral/engine/model"
	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/engine/trace"
	"github.com/kedastral/kedastral/promapi"
)

// BacktestCmd replays a recorded series through the forecaster's engine.
type BacktestCmd struct {
	Policy     string `name:"policy" required:"" type:"existingfile" help:"Policy file; its ForecastPolicy supplies model, capacity and lead time."`
	PolicyName string `name:"policy.name" help:"Which ForecastPolicy of the file to use when it holds several."`
	Trace      string `name:"trace" type:"existingfile" xor:"input" required:"" help:"Recorded series: CSV with header timestamp,value (Unix seconds), one row per step."`
	Prometheus struct {
		URL            string        `name:"url" xor:"input" required:"" help:"Read the history with the policy's query from this Prometheus instead of --trace."`
		Timeout        time.Duration `name:"timeout" default:"2m" help:"Timeout of each query_range request."`
		HTTPConfigFile string        `name:"http-config-file" type:"existingfile" help:"File with Prometheus' HTTP client configuration (authorization, basic_auth, tls_config, proxy, http_headers) for --prometheus.url, as the forecaster's."`
	} `embed:"" prefix:"prometheus."`
	Series        string              `name:"series" placeholder:"SELECTOR" help:"With --prometheus.url: backtest only the series of the query's result that match this label selector, e.g. '{job=\"api\"}'. Several series are backtested each and summed up (not --output csv)."`
	Start         string              `name:"start" default:"-14d" help:"With --prometheus.url: start of the history, as now-relative (--start=-14d, with the =), RFC 3339 or Unix seconds."`
	End           string              `name:"end" default:"now" help:"With --prometheus.url: end of the history (now, --end=-1h, RFC 3339 or Unix seconds)."`
	Output        string              `name:"output" enum:"text,csv,json,html" default:"text" help:"Output format: text (summary), csv (one row per step), json (summary and rows), html (charts and summary)."`
	Out           string              `name:"out" placeholder:"FILE" help:"Write the output to FILE instead of standard output."`
	Warmup        prommodel.Duration  `name:"warmup" default:"0s" help:"Replayed but not scored span at the start; 0 means the policy's lookback, at most half the trace."`
	PodStartup    prommodel.Duration  `name:"pod-startup" default:"0s" help:"How long a requested pod takes to be ready in the simulation; 0 means the policy's leadTime."`
	Tolerance     *float64            `name:"hpa.tolerance" placeholder:"FRACTION" help:"Tolerance of the simulated HPA (default: the policy's capacity.tolerance, 0.1 unless set)."`
	Stabilization *prommodel.Duration `name:"hpa.scale-down-stabilization" placeholder:"DURATION" help:"Scale-down stabilization window of the simulated HPA (default: the policy's capacity.hpaScaleDownStabilization, 5m unless set)."`
	Quantiles     []float64           `name:"quantiles" placeholder:"Q,..." help:"Backtest at each of these quantiles instead of the policy's (in parallel) and print the trade-off curve: unserved demand and replica-hours per quantile (--output text, json or html)."`
	Progress      bool                `name:"progress" default:"true" negatable:"" help:"Show a progress bar on standard error for runs longer than two seconds."`
}

// Validate checks the flags.
func (c *BacktestCmd) Validate() error {
	if t := c.Tolerance; t != nil && (*t < 0 || *t >= 1 || math.IsNaN(*t)) {
		return fmt.Errorf("--hpa.tolerance must be in [0, 1), got %v", *t)
	}
	for _, q := range c.Quantiles {
		if !(q > 0 && q < 1) {
			return fmt.Errorf("--quantiles: %v is not in (0, 1)", q)
		}
	}
	if len(c.Quantiles) > 0 && c.Output == "csv" {
		return fmt.Errorf("--quantiles prints the trade-off curve as text, json or html, not csv; drop --quantiles for the per-step csv")
	}
	if w := c.Stabilization; w != nil && time.Duration(*w) > time.Hour {
		return fmt.Errorf("--hpa.scale-down-stabilization must be at most 1h, got %s", *w)
	}
	if c.Series != "" {
		if c.Prometheus.URL == "" {
			return fmt.Errorf("--series selects among the series of --prometheus.url; a --trace is one series")
		}
		if _, err := parser.NewParser(parser.Options{}).ParseMetricSelector(c.Series); err != nil {
			return fmt.Errorf("--series %q: %w", c.Series, err)
		}
	}
	return nil
}

// Run runs the backtest.
func (c *BacktestCmd) Run() error {
	var err error
	set, errs := policy.LoadFile(c.Policy)
	if len(errs) > 0 {
		return fmt.Errorf("load %s: %w", c.Policy, errors.Join(errs...))
	}
	var p *policy.ForecastPolicy
	for _, q := range set.Policies {
		if c.PolicyName == "" || q.Metadata.Name == c.PolicyName {
			if p != nil {
				return fmt.Errorf("%s holds several policies; choose one with --policy.name", c.Policy)
			}
			p = q
		}
	}
	if p == nil {
		if c.PolicyName != "" {
			return fmt.Errorf("%s has no ForecastPolicy named %q", c.Policy, c.PolicyName)
		}
		return fmt.Errorf("%s has no ForecastPolicy", c.Policy)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	step := time.Duration(p.Spec.Step)
	var h model.History
	var labelsOf labels.Labels
	var many []backtest.Series
	var offset time.Duration
	if c.Prometheus.URL != "" {
		series, err := c.queryHistory(ctx, p)
		if err != nil {
			return err
		}
		switch {
		case len(series) == 1:
			h, labelsOf = series[0].Trace, series[0].Labels
		case c.Output == "csv":
			return severalAsCSV(series)
		default:
			many = series
		}
	} else {
		points, err := trace.ReadFile(c.Trace)
		if err != nil {
			return err
		}
		if ts := trace.Step(points); ts != step {
			return fmt.Errorf("the trace's step is %s but the policy's spec.step is %s; set spec.step: %s",
				prommodel.Duration(ts), p.Spec.Step, prommodel.Duration(ts))
		}
		points, offset = trace.Align(points, step)
		if h, err = trace.Regular(points, step); err != nil {
			return fmt.Errorf("trace %s: %w", c.Trace, err)
		}
	}

	opts := backtest.Options{
		Policy: p, Trace: h,
		Warmup: time.Duration(c.Warmup), PodStartup: time.Duration(c.PodStartup),
		Tolerance: -1, ScaleDownStabilization: -1, Labels: labelsOf, Offset: offset,
	}
	if c.Tolerance != nil {
		opts.Tolerance = *c.Tolerance
	}
	if c.Stabilization != nil {
		opts.ScaleDownStabilization = time.Duration(*c.Stabilization)
	}
	if c.Progress {
		opts.Progress = progressBar(os.Stderr, time.Now())
	}
	var res *backtest.Result
	var curve *backtest.CurveResult
	var all *backtest.ManyResult
	switch {
	case many != nil && len(c.Quantiles) > 0:
		curve, err = backtest.CurveMany(ctx, opts, many, c.Quantiles)
	case many != nil:
		all, err = backtest.RunMany(ctx, opts, many)
	case len(c.Quantiles) > 0:
		curve, err = backtest.Curve(ctx, opts, c.Quantiles)
	default:
		res, err = backtest.Run(ctx, opts)
	}
	if err != nil {
		return err
	}

	var w io.Writer = os.Stdout
	var f *os.File
	if c.Out != "" {
		if f, err = os.Create(c.Out); err != nil {
			return err
		}
		w = f
	}
	bw := bufio.NewWriter(w)
	switch {
	case all != nil && c.Output == "json":
		err = backtest.WriteManyJSON(bw, all)
	case all != nil && c.Output == "html":
		err = backtest.WriteManyHTML(bw, all)
	case all != nil:
		err = backtest.WriteManyText(bw, all)
	case curve != nil && c.Output == "json":
		err = backtest.WriteCurveJSON(bw, curve)
	case curve != nil && c.Output == "html":
		err = backtest.WriteCurveHTML(bw, curve)
	case curve != nil:
		err = backtest.WriteCurveText(bw, curve)
	case c.Output == "csv":
		err = backtest.WriteCSV(bw, res)
	case c.Output == "json":
		err = backtest.WriteJSON(bw, res, true)
	case c.Output == "html":
		err = backtest.WriteHTML(bw, res)
	default:
		err = backtest.WriteText(bw, res)
	}
	if err == nil {
		err = bw.Flush()
	}
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// queryHistory reads the policy's query over [--start, --end] at its step:
// the series of its result that --series selects, sorted by their labels.
func (c *BacktestCmd) queryHistory(ctx context.Context, p *policy.ForecastPolicy) ([]backtest.Series, error) {
	now := time.Now()
	start, err := parseTime(c.Start, now)
	if err != nil {
		return nil, fmt.Errorf("--start: %w", err)
	}
	end, err := parseTime(c.End, now)
	if err != nil {
		return nil, fmt.Errorf("--end: %w", err)
	}
	if !end.After(start) {
		return nil, fmt.Errorf("--end %s is not after --start %s", end.Format(time.RFC3339), start.Format(time.RFC3339))
	}
	var matchers []*labels.Matcher
	if c.Series != "" {
		if matchers, err = parser.NewParser(parser.Options{}).ParseMetricSelector(c.Series); err != nil {
			return nil, fmt.Errorf("--series %q: %w", c.Series, err)
		}
	}
	httpCfg, err := loadHTTPConfig("--prometheus.http-config-file", c.Prometheus.HTTPConfigFile)
	if err != nil {
		return nil, err
	}
	client, err := promapi.NewClient(promapi.ClientConfig{URL: c.Prometheus.URL, HTTPClientConfig: httpCfg, Timeout: c.Prometheus.Timeout})
	if err != nil {
		return nil, err
	}
	step := time.Duration(p.Spec.Step)
	q := p.Spec.Sources[0].Query
	result, err := client.QueryRange(ctx, q, start.Truncate(step), end.Truncate(step), step)
	if err != nil {
		return nil, err
	}
	if len(result) == 0 {
		return nil, fmt.Errorf("query %q returned no series between %s and %s", q, start.Format(time.RFC3339), end.Format(time.RFC3339))
	}
	var out []backtest.Series
	for _, s := range result {
		if !labels.Selector(matchers).Matches(s.Labels) {
			continue
		}
		h, err := backtest.FromSamples(s.Points, step)
		if err != nil {
			return nil, fmt.Errorf("series %s: %w", s.Labels, err)
		}
		out = append(out, backtest.Series{Labels: s.Labels, Trace: h})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("none of the %d series of query %q matches --series %s (e.g. %s)", len(result), q, c.Series, result[0].Labels)
	}
	slices.SortFunc(out, func(a, b backtest.Series) int { return labels.Compare(a.Labels, b.Labels) })
	return out, nil
}

// severalAsCSV is the error for a per-step csv of several series: it shows
// one, and says how to pick it.
func severalAsCSV(series []backtest.Series) error {
	names := []string{series[0].Labels.String(), series[1].Labels.String()}
	if len(series) > 2 {
		names = append(names, "...")
	}
	return fmt.Errorf("%d series to backtest (%s); --output csv shows one series: pick one with --series '%s'",
		len(series), strings.Join(names, ", "), series[0].Labels)
}

// parseTime reads now, a now-relative duration (-14d), RFC 3339 or Unix seconds.
func parseTime(s string, now time.Time) (time.Time, error) {
	switch {
	case s == "now":
		return now, nil
	case strings.HasPrefix(s, "-"):
		d, err := prommodel.ParseDuration(s[1:])
		if err != nil {
			return time.Time{}, err
		}
		return now.Add(-time.Duration(d)), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(sec, 0), nil
	}
	return time.Time{}, fmt.Errorf("%q is not now, -<duration>, RFC 3339 or Unix seconds", s)
}

// progressBar draws a bar on w once a run has taken two seconds.
func progressBar(w io.Writer, began time.Time) func(done, total int) {
	shown := false
	return func(done, total int) {
		if !shown && time.Since(began) < 2*time.Second {
			return
		}
		shown = true
		const width = 40
		filled := width * done / max(total, 1)
		bar := make([]byte, width)
		for i := range bar {
			bar[i] = ' '
			if i < filled {
				bar[i] = '='
			}
		}
		fmt.Fprintf(w, "\rbacktest [%s] %3d%% %d/%d steps", bar, 100*done/max(total, 1), done, total)
		if done == total {
			fmt.Fprintln(w)
		}
	}
}
