package trace

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRead(t *testing.T) {
	in := "timestamp,value\r\n60,1.5\r\n120,2\n300.25,-3e2\n"
	got, err := Read(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Point{
		{time.Unix(60, 0), 1.5},
		{time.Unix(120, 0), 2},
		{time.Unix(300, 250_000_000), -300},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d points, want %d", len(got), len(want))
	}
	for i := range want {
		if !got[i].T.Equal(want[i].T) || got[i].V != want[i].V {
			t.Errorf("point %d: got %v %v, want %v %v", i, got[i].T, got[i].V, want[i].T, want[i].V)
		}
	}
}

func TestReadErrors(t *testing.T) {
	long := "timestamp,value\n60," + strings.Repeat("1", maxLine+1) + "\n"
	for _, tc := range []struct {
		name     string
		in       string
		line     int
		contains []string // in the error message, besides "line <line>"
	}{
		{name: "empty", in: "", line: 1, contains: []string{"header"}},
		{name: "wrong header", in: "time,value\n60,1\n", line: 1, contains: []string{`"time,value"`}},
		{name: "header with extra column", in: "timestamp,value,label\n60,1,0\n", line: 1, contains: []string{"timestamp,value,label"}},
		{name: "missing header", in: "60,1\n120,2\n", line: 1, contains: []string{`"60,1"`}},
		{name: "bad timestamp", in: "timestamp,value\n60,1\n12x,2\n", line: 3, contains: []string{`"12x"`}},
		{name: "exponent timestamp", in: "timestamp,value\n6e1,1\n", line: 2, contains: []string{`"6e1"`}},
		{name: "empty fraction", in: "timestamp,value\n60.,1\n", line: 2, contains: []string{`"60."`}},
		{name: "bad value", in: "timestamp,value\n60,1\n120,2\n180,abc\n", line: 4, contains: []string{`"abc"`}},
		{name: "NaN value", in: "timestamp,value\n60,NaN\n", line: 2, contains: []string{`"NaN"`, "not finite"}},
		{name: "Inf value", in: "timestamp,value\n60,1\n120,+Inf\n", line: 3, contains: []string{`"+Inf"`}},
		{name: "one field", in: "timestamp,value\n60\n", line: 2, contains: []string{`"60"`}},
		{name: "three fields", in: "timestamp,value\n60,1,2\n", line: 2, contains: []string{`"60,1,2"`}},
		{name: "blank line", in: "timestamp,value\n60,1\n\n120,2\n", line: 3, contains: []string{"2 fields"}},
		{name: "equal timestamps", in: "timestamp,value\n60,1\n120,2\n120,3\n", line: 4, contains: []string{`"120,3"`, "not after"}},
		{name: "decreasing timestamps", in: "timestamp,value\n60,1\n120,2\n90,3\n", line: 4, contains: []string{`"90,3"`}},
		{name: "line too long", in: long, line: 2, contains: []string{"longer than"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(strings.NewReader(tc.in))
			if err == nil {
				t.Fatal("no error")
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			if pe.Line != tc.line {
				t.Errorf("error %q names line %d, want %d", err, pe.Line, tc.line)
			}
			msg := err.Error()
			for _, s := range append([]string{"line " + strconv.Itoa(tc.line)}, tc.contains...) {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not contain %q", msg, s)
				}
			}
		})
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.csv")
	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(good, []byte("timestamp,value\n60,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("timestamp,value\n60,x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err := ReadFile(good); err != nil || len(p) != 1 {
		t.Fatalf("ReadFile(good) = %v, %v", p, err)
	}
	for _, path := range []string{bad, filepath.Join(dir, "missing.csv")} {
		_, err := ReadFile(path)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("ReadFile(%s) error %v does not name the file", path, err)
		}
	}
}

func pts(step time.Duration, base int64, vals ...float64) []Point {
	var out []Point
	for i, v := range vals {
		if math.IsNaN(v) { // an absent row
			continue
		}
		out = append(out, Point{T: time.Unix(base, 0).Add(time.Duration(i) * step).UTC(), V: v})
	}
	return out
}

func TestRegular(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name    string
		points  []Point
		step    time.Duration
		want    []float64 // NaN where absent
		start   int64
		wantErr string
	}{
		{name: "no gaps", points: pts(time.Minute, 600, 1, 2, 3), step: time.Minute, want: []float64{1, 2, 3}, start: 600},
		{name: "gaps", points: pts(time.Minute, 600, 1, nan, nan, 4, nan, 6), step: time.Minute, want: []float64{1, nan, nan, 4, nan, 6}, start: 600},
		{name: "one point", points: pts(time.Hour, 7200, 5), step: time.Hour, want: []float64{5}, start: 7200},
		{name: "coarser trace on finer grid", points: pts(2*time.Minute, 120, 1, 2), step: time.Minute, want: []float64{1, nan, 2}, start: 120},
		{name: "before the epoch", points: pts(time.Minute, -120, 1, 2, 3), step: time.Minute, want: []float64{1, 2, 3}, start: -120},
		{name: "unaligned", points: pts(5*time.Minute, 1397088240, 1, 2), step: 5 * time.Minute, wantErr: "not on a multiple of 5m0s"},
		{name: "unaligned later point", points: append(pts(time.Minute, 60, 1), Point{T: time.Unix(150, 0)}), step: time.Minute, wantErr: "point 1"},
		{name: "fractional", points: []Point{{T: time.Unix(60, 1)}}, step: time.Minute, wantErr: "off by 1ns"},
		{name: "not increasing", points: []Point{{T: time.Unix(60, 0)}, {T: time.Unix(180, 0)}, {T: time.Unix(120, 0)}}, step: time.Minute, wantErr: "point 2"},
		{name: "empty", step: time.Minute, wantErr: "empty"},
		{name: "zero step", points: pts(time.Minute, 60, 1), wantErr: "step"},
		{name: "too long", points: []Point{{T: time.Unix(0, 0)}, {T: time.Unix(1<<40, 0)}}, step: time.Second, wantErr: "spans more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := Regular(tc.points, tc.step)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Step != tc.step || !h.Start.Equal(time.Unix(tc.start, 0)) {
				t.Errorf("start %v step %v, want %v %v", h.Start, h.Step, time.Unix(tc.start, 0), tc.step)
			}
			if len(h.Values) != len(tc.want) {
				t.Fatalf("values %v, want %v", h.Values, tc.want)
			}
			for i, w := range tc.want {
				if g := h.Values[i]; g != w && !(math.IsNaN(g) && math.IsNaN(w)) {
					t.Errorf("values %v, want %v", h.Values, tc.want)
					break
				}
			}
		})
	}
}

func TestAlign(t *testing.T) {
	in := pts(5*time.Minute, 1424986973, 1, math.NaN(), 3)
	out, off := Align(in, 5*time.Minute)
	if off != 173*time.Second {
		t.Errorf("offset %v, want 2m53s", off)
	}
	h, err := Regular(out, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Start.Equal(time.Unix(1424986800, 0)) || len(h.Values) != 3 || !math.IsNaN(h.Values[1]) {
		t.Errorf("got %v %v", h.Start, h.Values)
	}
	if !in[0].T.Equal(time.Unix(1424986973, 0)) {
		t.Error("Align modified its input")
	}
}

func TestStep(t *testing.T) {
	for _, tc := range []struct {
		name   string
		points []Point
		want   time.Duration
	}{
		{name: "empty", want: 0},
		{name: "one point", points: pts(time.Minute, 0, 1), want: 0},
		{name: "regular with gaps", points: pts(time.Minute, 0, 1, math.NaN(), math.NaN(), 4, 5, 6, math.NaN(), 8, 9), want: time.Minute},
		{name: "tie picks the smaller", points: []Point{{T: time.Unix(0, 0)}, {T: time.Unix(60, 0)}, {T: time.Unix(180, 0)}}, want: time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Step(tc.points); got != tc.want {
				t.Errorf("Step = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestShippedTraces reads the traces under testdata/traces, the only ones
// the tests use.
func TestShippedTraces(t *testing.T) {
	for _, tc := range []struct {
		name   string
		step   time.Duration
		points int
	}{
		{"ms_mongodb_app_query_rate_1min.csv", time.Minute, 15840},
		{"nab_nyc_taxi_passengers_30min.csv", 30 * time.Minute, 10320},
		{"nab_aws_elb_request_count_5min.csv", 5 * time.Minute, 4032},
		{"nab_twitter_volume_aapl_5min.csv", 5 * time.Minute, 15902},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, ok := Locate(tc.name)
			if !ok {
				t.Fatalf("trace %s not found in testdata/traces", tc.name)
			}
			p, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(p) != tc.points || Step(p) != tc.step {
				t.Fatalf("%d points, step %v; want %d, %v", len(p), Step(p), tc.points, tc.step)
			}
			// The NAB AWS and Twitter traces are not on the step's grid.
			p, _ = Align(p, tc.step)
			h, err := Regular(p, tc.step)
			if err != nil {
				t.Fatal(err)
			}
			if !h.End().Equal(p[len(p)-1].T) {
				t.Errorf("history ends at %v, want %v", h.End(), p[len(p)-1].T)
			}
		})
	}
}

// TestLocate: a trace the repository does not hold is found only in a
// directory named by $KEDASTRAL_TRACES, never next to the repository.
func TestLocate(t *testing.T) {
	t.Setenv(TracesEnv, "")
	const name = "isp_eu_transatlantic_bits_5min.csv"
	if p, ok := Locate(name); ok {
		t.Fatalf("found %s outside testdata/traces with %s unset", p, TracesEnv)
	}
	dir := t.TempDir()
	want := filepath.Join(dir, name)
	if err := os.WriteFile(want, []byte("timestamp,value\n0,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(TracesEnv, string(filepath.ListSeparator)+dir)
	if p, ok := Locate(name); !ok || p != want {
		t.Errorf("Locate(%s) = %s, %v; want %s", name, p, ok, want)
	}
	if p, ok := Locate("ms_mongodb_app_query_rate_1min.csv"); !ok || filepath.Base(filepath.Dir(p)) != "traces" || p == filepath.Join(dir, "ms_mongodb_app_query_rate_1min.csv") {
		t.Errorf("the shipped trace: %s, %v", p, ok)
	}
}
