package backtest_test

import (
	"bytes"
	"context"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/engine/backtest"
	"github.com/kedastral/kedastral/engine/model"
	"github.com/kedastral/kedastral/test/prereq"
)

// chromium returns the headless browser, and fails the test without one.
// With -short (make test-short) the browser tests are skipped.
func chromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts headless Chromium; make test runs it")
	}
	return prereq.Program(t, "chromium", "chromium-browser", "google-chrome")
}

// TestHTMLInBrowser renders the page in headless Chromium and checks that
// both charts drew every line (the page's script records the drawn
// bounding boxes in the DOM) and that the screenshot has Kedastral's line
// color in it.
func TestHTMLInBrowser(t *testing.T) {
	bin := chromium(t)
	h := loadTrace(t, "ms_mongodb_app_query_rate_1min.csv")
	h.Values = h.Values[:3*1440]
	r := run(t, h, tracePolicy(t, h, "baseline", 0.85, "  metric: queries_per_second"))
	var buf bytes.Buffer
	if err := backtest.WriteHTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	if s := buf.String(); strings.Contains(s, "http://") && !strings.Contains(s, `xmlns="http://www.w3.org/2000/svg"`) || strings.Contains(s, "<script src") || strings.Contains(s, "<link") {
		t.Fatal("the page loads something from elsewhere")
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "backtest.html")
	if err := os.WriteFile(page, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	browse := func(args ...string) []byte {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + filepath.Join(dir, "profile")}, args...)
		cmd := exec.CommandContext(ctx, bin, append(args, "file://"+page)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
		}
		return out
	}

	dom := browse("--dump-dom")
	got := regexp.MustCompile(`<svg id="(\w+)"[^>]*data-drawn-lines="(\d+)"`).FindAllSubmatch(dom, -1)
	want := map[string]string{"demand": "2", "replicas": "4"}
	if len(got) != len(want) {
		t.Fatalf("found %d rendered charts, want %d (did the script run?)", len(got), len(want))
	}
	for _, m := range got {
		if id, n := string(m[1]), string(m[2]); want[id] != n {
			t.Errorf("chart %s drew %s lines, want %s", id, n, want[id])
		}
	}
	if !bytes.Contains(dom, []byte(`<table id="scaling">`)) {
		t.Error("no scaling table")
	}
	// Every label inside the picture, the last time label included.
	for _, m := range regexp.MustCompile(`<svg id="(\w+)"[^>]*data-clipped-labels="(\d+)"`).FindAllSubmatch(dom, -1) {
		if string(m[2]) != "0" {
			t.Errorf("chart %s: %s labels cut off at the picture's edge", m[1], m[2])
		}
	}
	// The axes say their units.
	for _, want := range []string{`class="ylabel"[^>]*>demand \(queries_per_second\)<`, `class="ylabel"[^>]*>replicas<`, `class="xlabel"[^>]*>time \(UTC\)<`} {
		if !regexp.MustCompile(want).Match(dom) {
			t.Errorf("no axis label matching %s", want)
		}
	}
	// Round y ticks: 1, 2 or 5 times a power of ten apart.
	for _, id := range []string{"demand", "replicas"} {
		svg := regexp.MustCompile(`(?s)<svg id="` + id + `".*?</svg>`).Find(dom)
		var ticks []float64
		for _, m := range regexp.MustCompile(`<text x="64" y="[^"]*" text-anchor="end" dominant-baseline="middle">([^<]*)</text>`).FindAllSubmatch(svg, -1) {
			ticks = append(ticks, parseShort(t, string(m[1])))
		}
		if len(ticks) < 3 || ticks[0] != 0 {
			t.Fatalf("chart %s: y ticks %v", id, ticks)
		}
		step := ticks[1]
		if !roundStep(step) {
			t.Errorf("chart %s: y ticks %v are %v apart, not 1, 2 or 5 times a power of ten", id, ticks, step)
		}
		for i, v := range ticks {
			if math.Abs(v-float64(i)*step) > 1e-9*step {
				t.Errorf("chart %s: y ticks %v not evenly spaced", id, ticks)
				break
			}
		}
	}

	shot := filepath.Join(dir, "shot.png")
	browse("--screenshot="+shot, "--window-size=1200,1100", "--hide-scrollbars")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// Kedastral's line is #1f77b4; count pixels close to it.
	blue := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if near(r>>8, 0x1f) && near(g>>8, 0x77) && near(bl>>8, 0xb4) {
				blue++
			}
		}
	}
	if blue < 500 {
		t.Errorf("%d pixels of Kedastral's color in the screenshot, want a drawn line (≥ 500)", blue)
	}
}

// parseShort reads a tick label such as 2.5k.
func parseShort(t *testing.T, s string) float64 {
	t.Helper()
	mult := 1.0
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1e3, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "M"):
		mult, s = 1e6, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1e9, strings.TrimSuffix(s, "G")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("tick label %q: %v", s, err)
	}
	return v * mult
}

// roundStep tells whether v is 1, 2 or 5 times a power of ten.
func roundStep(v float64) bool {
	if v <= 0 {
		return false
	}
	m := v / math.Pow(10, math.Floor(math.Log10(v)+1e-12))
	for _, r := range []float64{1, 2, 5} {
		if math.Abs(m-r) < 1e-9 {
			return true
		}
	}
	return false
}

func near(a uint32, b uint32) bool { return a+24 >= b && a <= b+24 }

// TestCurveHTMLInBrowser renders the trade-off page in headless Chromium and
// checks that the curve and every point were drawn.
func TestCurveHTMLInBrowser(t *testing.T) {
	bin := chromium(t)
	h := loadTrace(t, "nab_nyc_taxi_passengers_30min.csv")
	h.Values = h.Values[:48*14]
	p := tracePolicy(t, h, "linear", 0.5, "")
	c, err := backtest.Curve(context.Background(), backtest.Options{Policy: p, Trace: h, Tolerance: -1, ScaleDownStabilization: -1}, []float64{0.5, 0.7, 0.9})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := backtest.WriteCurveHTML(&buf, c); err != nil {
		t.Fatal(err)
	}
	dom := dumpDOM(t, bin, buf.Bytes())
	// Kedastral's 3 quantiles and the 6 other methods.
	if lines, points := drawn(t, dom, "curve"); lines != "1" || points != "9" {
		t.Errorf("drew %s lines and %s points, want 1 and 9", lines, points)
	}
	if !bytes.Contains(dom, []byte(`<table id="curve-table">`)) || !bytes.Contains(dom, []byte("q 0.9")) {
		t.Error("no curve table or point label")
	}
}

// dumpDOM renders a page in headless Chromium and returns its DOM after the
// page's script ran.
func dumpDOM(t *testing.T, bin string, html []byte) []byte {
	t.Helper()
	if s := string(html); strings.Contains(s, "<script src") || strings.Contains(s, "<link") {
		t.Fatal("the page loads something from elsewhere")
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "page.html")
	if err := os.WriteFile(page, html, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir="+filepath.Join(dir, "profile"), "--dump-dom", "file://"+page)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	dom, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	return dom
}

// drawn is what the page's script marked on the chart with this id: the
// lines and the points the browser drew.
func drawn(t *testing.T, dom []byte, id string) (lines, points string) {
	t.Helper()
	m := regexp.MustCompile(`<svg id="` + id + `"[^>]*data-drawn-lines="(\d+)" data-drawn-points="(\d+)"`).FindSubmatch(dom)
	if m == nil {
		t.Fatalf("the chart %s was not marked (did the script run?)", id)
	}
	return string(m[1]), string(m[2])
}

// TestManyHTMLInBrowser renders the page of a backtest over several series
// in headless Chromium and checks that every series' point and every
// method's total was drawn, and the tables.
func TestManyHTMLInBrowser(t *testing.T) {
	bin := chromium(t)
	h := loadTrace(t, "nab_nyc_taxi_passengers_30min.csv")
	series := []backtest.Series{
		{Labels: labels.FromStrings("city", "a", "zone", "1"), Trace: model.History{Start: h.Start, Step: h.Step, Values: h.Values[:14*48]}},
		{Labels: labels.FromStrings("city", "b", "zone", "2"), Trace: model.History{Start: h.Start.Add(20 * 48 * h.Step), Step: h.Step, Values: h.Values[20*48 : 34*48]}},
		{Labels: labels.FromStrings("city", "c"), Trace: model.History{Start: h.Start, Step: h.Step, Values: h.Values[:1]}},
	}
	m, err := backtest.RunMany(context.Background(), backtest.Options{Policy: tracePolicy(t, h, "linear", 0.7, ""), Tolerance: -1, ScaleDownStabilization: -1}, series)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := backtest.WriteManyHTML(&buf, m); err != nil {
		t.Fatal(err)
	}
	dom := dumpDOM(t, bin, buf.Bytes())
	// Two series and the totals of the seven methods; no line.
	if lines, points := drawn(t, dom, "series"); lines != "0" || points != strconv.Itoa(2+len(m.Total)) {
		t.Errorf("drew %s lines and %s points, want 0 and %d", lines, points, 2+len(m.Total))
	}
	for _, want := range []string{`<table id="series-table">`, "a 1", "b 2", "all: oracle", "Not backtested", `{city="c"}: backtest: the trace has 1 steps`} {
		if !bytes.Contains(dom, []byte(want)) {
			t.Errorf("the page lacks %q", want)
		}
	}
}
