package forecast

import (
	"math"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestRecentRing(t *testing.T) {
	var r recent
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	// A cycle every 30s for 8 hours: the ring keeps one point a minute,
	// the newest cycle always, and at most recentPoints of them.
	for i := range 8 * 120 {
		r.add(RecentPoint{T: t0 + int64(i)*30_000, Observed: float64(i)}, time.Minute)
	}
	pts := r.points()
	if len(pts) != recentPoints {
		t.Fatalf("%d points, want %d", len(pts), recentPoints)
	}
	if last := pts[len(pts)-1]; last.Observed != 8*120-1 {
		t.Errorf("newest point %+v, want the last cycle", last)
	}
	for i := 1; i < len(pts); i++ {
		if d := pts[i].T - pts[i-1].T; d < time.Minute.Milliseconds()-30_000 || d > time.Minute.Milliseconds() {
			t.Fatalf("points %d and %d are %d ms apart, want about a minute, in order", i-1, i, d)
		}
	}
	if span := time.Duration(pts[len(pts)-1].T-pts[0].T) * time.Millisecond; span < 5*time.Hour+50*time.Minute {
		t.Errorf("the ring spans %s, want six hours", span)
	}
}

// TestSeriesChart draws six hours of a daily wave and checks the SVG's
// parts; with KEDASTRAL_CHART_HTML set it writes the page there, to look at.
func TestSeriesChart(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 6, 0, 0, 0, time.UTC).UnixMilli()
	var pts []RecentPoint
	for i := range recentPoints {
		v := 1000 + 600*math.Sin(float64(i)/60)
		pts = append(pts, RecentPoint{T: t0 + int64(i)*60_000, Observed: v, Predicted: v * 1.1, Desired: int32(math.Ceil(v / 200))})
	}
	svg := string(seriesChart(pts, 5*time.Minute))
	for _, want := range []string{`<polyline class="observed"`, `<polyline class="predicted"`, `<polyline class="desired"`,
		`>06:00<`, `text-anchor="end">12:04<`, `>2k<`, `>replicas<`} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %s:\n%s", want, svg)
		}
	}
	if strings.Contains(svg, "NaN") {
		t.Error("chart has NaN coordinates")
	}
	if got := string(seriesChart(pts[:1], 5*time.Minute)); !strings.Contains(got, "starts once two cycles") {
		t.Errorf("one point: %s", got)
	}
	if out := os.Getenv("KEDASTRAL_CHART_HTML"); out != "" {
		_ = os.WriteFile(out, []byte("<!DOCTYPE html><html><body style='font-family:sans-serif'><style>svg text{font-size:11px;fill:#555}</style>"+svg+"</body></html>"), 0o644)
	}
}

// BenchmarkRecentMemory measures what the status page's memory costs per
// series: a full ring, held in the runner's map.
func BenchmarkRecentMemory(b *testing.B) {
	const series = 1000
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		m := map[string]*recent{}
		for i := range series {
			r := &recent{}
			for j := range recentPoints {
				r.add(RecentPoint{T: int64(j) * 60_000, Observed: 1, Predicted: 1, Desired: 1}, time.Minute)
			}
			m[strings.Repeat("x", 20)+string(rune('a'+i%26))+string(rune(i))] = r
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/series, "bytes/series")
		runtime.KeepAlive(m)
	}
}
