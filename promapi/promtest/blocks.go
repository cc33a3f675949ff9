package promtest

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// Point is one sample: T in milliseconds since the epoch.
type Point struct {
	T int64
	V float64
}

// Series is one series of history to load with CreateBlocks.
type Series struct {
	// Name is the metric name.
	Name string
	// Labels are the other labels (a __name__ here is ignored).
	Labels labels.Labels
	Points []Point
}

// CreateBlocks writes series as OpenMetrics text and turns it into TSDB blocks
// in dataDir with `promtool tsdb create-blocks-from openmetrics`, to be served
// by a server started on dataDir afterwards. Points are sorted by time (two
// points of a series at one timestamp are an error); the series of one metric
// name are written as one metric family of type gauge; labels with empty
// values are dropped.
//
// Prometheus deletes blocks that end more than the retention (30d by default
// in Start) before the newest block, and refuses remote-written samples older
// than its newest block unless Options.OutOfOrderWindow covers them.
func CreateBlocks(ctx context.Context, dataDir string, series []Series) error {
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("create blocks: %w", err)
	}
	f, err := os.CreateTemp(dataDir, "openmetrics-*.txt")
	if err != nil {
		return fmt.Errorf("create blocks: %w", err)
	}
	defer os.Remove(f.Name())
	if err := writeOpenMetrics(f, series); err != nil {
		f.Close()
		return fmt.Errorf("create blocks: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create blocks: %w", err)
	}
	promtool, err := Binary("", "promtool")
	if err != nil {
		return fmt.Errorf("create blocks: %w", err)
	}
	cmd := exec.CommandContext(ctx, promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", f.Name(), dataDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("create blocks: %s: %w\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return nil
}

func writeOpenMetrics(f *os.File, series []Series) error {
	byName := map[string][]Series{}
	for _, s := range series {
		if !model.LegacyValidation.IsValidMetricName(s.Name) {
			return fmt.Errorf("invalid metric name %q", s.Name)
		}
		byName[s.Name] = append(byName[s.Name], s)
	}
	names := make([]string, 0, len(byName))
	for name := range byName {
		names = append(names, name)
	}
	slices.Sort(names)

	w := bufio.NewWriter(f)
	for _, name := range names {
		fmt.Fprintf(w, "# TYPE %s gauge\n", name)
		for _, s := range byName[name] {
			lbls, err := openMetricsLabels(s.Labels)
			if err != nil {
				return fmt.Errorf("series %s%s: %w", name, s.Labels, err)
			}
			points := slices.Clone(s.Points)
			slices.SortStableFunc(points, func(a, b Point) int { return cmp.Compare(a.T, b.T) })
			for i := 1; i < len(points); i++ {
				if points[i].T == points[i-1].T {
					// promtool would silently keep only one of them.
					return fmt.Errorf("series %s%s: two points at timestamp %d", name, lbls, points[i].T)
				}
			}
			for _, p := range points {
				fmt.Fprintf(w, "%s%s %s %s\n", name, lbls, formatValue(p.V), formatTimestamp(p.T))
			}
		}
	}
	w.WriteString("# EOF\n")
	return w.Flush()
}

func openMetricsLabels(ls labels.Labels) (string, error) {
	var b strings.Builder
	var err error
	ls.Range(func(l labels.Label) {
		if err != nil || l.Name == labels.MetricName || l.Value == "" {
			return
		}
		if !model.LegacyValidation.IsValidLabelName(l.Name) {
			err = fmt.Errorf("invalid label name %q", l.Name)
			return
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l.Name)
		b.WriteString(`="`)
		b.WriteString(labelValueEscaper.Replace(l.Value))
		b.WriteByte('"')
	})
	if err != nil || b.Len() == 0 {
		return "", err
	}
	return "{" + b.String() + "}", nil
}

var labelValueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// formatTimestamp writes milliseconds as seconds with three decimals.
func formatTimestamp(ms int64) string {
	return strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64)
}
