// Package trace reads demand traces: CSV files with header timestamp,value,
// one row per interval, timestamp in Unix seconds and value the demand in that
// interval, gaps left as absent rows. Models, backtests and benchmarks use
// them as recorded stand-ins for a Prometheus series (see testdata/traces).
package trace

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kedastral/kedastral/engine/model"
)

// Header is the first line of every trace.
const Header = "timestamp,value"

// maxLine bounds the length of one line, and so the memory Read uses per line.
const maxLine = 1 << 20

// maxSlots bounds the length of the History that Regular builds, so that a
// tiny step or a far-off timestamp cannot allocate unbounded memory.
const maxSlots = 1 << 24

// Point is one row of a trace: the demand V in the interval starting at T.
type Point struct {
	T time.Time
	V float64
}

// ParseError reports a line of a trace that Read rejects.
type ParseError struct {
	Line int    // 1-based line number
	Text string // the offending line, truncated to 80 bytes
	Err  error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("line %d %q: %v", e.Line, e.Text, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Read parses a trace. It is strict: the header must be exactly
// "timestamp,value", every row must have an integer or decimal Unix timestamp
// and a finite value, and timestamps must increase. Errors are *ParseError
// and name the line and its text. Lines longer than 1 MiB are rejected.
func Read(r io.Reader) ([]Point, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxLine)
	var (
		points []Point
		line   int
	)
	for sc.Scan() {
		line++
		text := bytes.TrimSuffix(sc.Bytes(), []byte("\r"))
		if line == 1 {
			text = bytes.TrimPrefix(text, []byte("\xef\xbb\xbf")) // UTF-8 byte order mark
			if string(text) != Header {
				return nil, parseError(line, text, fmt.Errorf("header must be %q", Header))
			}
			continue
		}
		p, err := parseRow(text)
		if err != nil {
			return nil, parseError(line, text, err)
		}
		if n := len(points); n > 0 && !p.T.After(points[n-1].T) {
			return nil, parseError(line, text, fmt.Errorf("timestamp not after the previous row's %d", points[n-1].T.Unix()))
		}
		points = append(points, p)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, parseError(line+1, nil, fmt.Errorf("line longer than %d bytes", maxLine))
		}
		return nil, fmt.Errorf("after line %d: %w", line, err)
	}
	if line == 0 {
		return nil, parseError(1, nil, fmt.Errorf("empty input, header %q missing", Header))
	}
	return points, nil
}

func parseError(line int, text []byte, err error) *ParseError {
	const maxText = 80
	s := string(text)
	if len(s) > maxText {
		s = s[:maxText] + "..."
	}
	return &ParseError{Line: line, Text: s, Err: err}
}

func parseRow(text []byte) (Point, error) {
	ts, vs, ok := bytes.Cut(text, []byte(","))
	if !ok {
		return Point{}, errors.New("want 2 fields timestamp,value")
	}
	if bytes.IndexByte(vs, ',') >= 0 {
		return Point{}, errors.New("want 2 fields timestamp,value, got more")
	}
	t, err := parseUnix(string(ts))
	if err != nil {
		return Point{}, fmt.Errorf("timestamp %q: %w", ts, err)
	}
	v, err := strconv.ParseFloat(string(vs), 64)
	if err != nil {
		return Point{}, fmt.Errorf("value %q: %w", vs, errors.Unwrap(err))
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return Point{}, fmt.Errorf("value %q: not finite (gaps are absent rows)", vs)
	}
	return Point{T: t, V: v}, nil
}

// parseUnix parses [-]digits[.digits] as Unix seconds exactly, to the
// nanosecond (further fractional digits are truncated).
func parseUnix(s string) (time.Time, error) {
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		s = s[1:]
	}
	is, fs, hasFrac := strings.Cut(s, ".")
	if is == "" || !digits(is) || (hasFrac && (fs == "" || !digits(fs))) {
		return time.Time{}, errors.New("want Unix seconds, digits with an optional fraction")
	}
	sec, err := strconv.ParseInt(is, 10, 64)
	if err != nil || sec > math.MaxInt64/int64(time.Second) {
		return time.Time{}, errors.New("out of range")
	}
	var nsec int64
	if hasFrac {
		if len(fs) > 9 {
			fs = fs[:9]
		}
		nsec, _ = strconv.ParseInt(fs, 10, 64) // digits only, at most 9
		for i := len(fs); i < 9; i++ {
			nsec *= 10
		}
	}
	if neg {
		sec, nsec = -sec, -nsec
	}
	return time.Unix(sec, nsec).UTC(), nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ReadFile reads the trace at path; errors name the file.
func ReadFile(path string) ([]Point, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read trace: %w", err)
	}
	defer f.Close()
	points, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("read trace %s: %w", path, err)
	}
	return points, nil
}

// Step infers a trace's step as the most common difference between
// consecutive timestamps (the smallest one on a tie). It returns 0 for fewer
// than two points.
func Step(points []Point) time.Duration {
	counts := map[time.Duration]int{}
	var best time.Duration
	for i := 1; i < len(points); i++ {
		d := points[i].T.Sub(points[i-1].T)
		counts[d]++
		if c, bc := counts[d], counts[best]; best == 0 || c > bc || (c == bc && d < best) {
			best = d
		}
	}
	return best
}

// Regular lays the points out on a regular grid of the given step: the
// History starts at the first point, has one slot per step up to the last
// point, and holds NaN where a row is absent. Every timestamp must be a
// multiple of step since the Unix epoch (see Align for traces recorded on an
// offset clock), and timestamps must increase.
func Regular(points []Point, step time.Duration) (model.History, error) {
	if step <= 0 {
		return model.History{}, fmt.Errorf("step %v is not positive", step)
	}
	if len(points) == 0 {
		return model.History{}, errors.New("regularize an empty trace")
	}
	for i, p := range points {
		if off := offset(p.T, step); off != 0 {
			return model.History{}, fmt.Errorf("point %d at %s: not on a multiple of %v since the Unix epoch (off by %v)",
				i, p.T.UTC().Format(time.RFC3339Nano), step, off)
		}
		if i > 0 && !p.T.After(points[i-1].T) {
			return model.History{}, fmt.Errorf("point %d at %s: not after the previous point", i, p.T.UTC().Format(time.RFC3339Nano))
		}
	}
	first, last := points[0].T, points[len(points)-1].T
	if last.Sub(first)/step >= maxSlots {
		return model.History{}, fmt.Errorf("trace from %s to %s spans more than %d steps of %v",
			first.UTC().Format(time.RFC3339), last.UTC().Format(time.RFC3339), maxSlots, step)
	}
	h := model.History{
		Start:  first,
		Step:   step,
		Values: make([]float64, int(last.Sub(first)/step)+1),
	}
	for i := range h.Values {
		h.Values[i] = math.NaN()
	}
	for _, p := range points {
		h.Values[int(p.T.Sub(first)/step)] = p.V
	}
	return h, nil
}

// Align returns a copy of points moved back in time by the first point's
// offset from a multiple of step, and that offset, so that a trace sampled
// on a clock that is not aligned to the step (e.g. every 5 minutes from :04)
// can go through Regular. The daily phase moves by less than one step.
func Align(points []Point, step time.Duration) ([]Point, time.Duration) {
	if len(points) == 0 || step <= 0 {
		return points, 0
	}
	off := offset(points[0].T, step)
	out := make([]Point, len(points))
	for i, p := range points {
		out[i] = Point{T: p.T.Add(-off), V: p.V}
	}
	return out, off
}

// offset is how far t is after the last multiple of step since the epoch.
// It reduces seconds and nanoseconds separately, so it holds for any t.
func offset(t time.Time, step time.Duration) time.Duration {
	st := uint64(step)
	hi, lo := bits.Mul64(uint64(mod(t.Unix(), int64(st))), uint64(time.Second))
	off := (bits.Rem64(hi, lo, st) + uint64(t.Nanosecond())) % st
	return time.Duration(off)
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// TracesEnv names the environment variable with further directories, as a
// list like PATH, in which Locate looks for traces the repository does not
// hold (for experiments on other data; no test depends on it).
const TracesEnv = "KEDASTRAL_TRACES"

// Locate returns the path of the named trace file, from the repository's
// testdata/traces (the MIT-licensed traces shipped with the project) or else
// from a directory listed in $KEDASTRAL_TRACES, and false when none has it.
func Locate(name string) (string, bool) {
	var dirs []string
	if root, ok := repoRoot(); ok {
		dirs = append(dirs, filepath.Join(root, "testdata", "traces"))
	}
	dirs = append(dirs, filepath.SplitList(os.Getenv(TracesEnv))...)
	for _, d := range dirs {
		if d == "" {
			continue
		}
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, true
		}
	}
	return "", false
}

func repoRoot() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if fi, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && fi.Mode().IsRegular() {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}
