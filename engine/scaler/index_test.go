package scaler

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// TestForecastSetMatch: the label index finds the same series as a scan,
// an empty matchLabels value included (it matches series without the label).
func TestForecastSetMatch(t *testing.T) {
	fs := newForecastSet([]seriesSample{
		{labels: labels.FromStrings("policy", "p", "deployment", "api", "namespace", "a")},
		{labels: labels.FromStrings("policy", "p", "deployment", "api", "namespace", "b")},
		{labels: labels.FromStrings("policy", "p", "deployment", "web")},
		{labels: labels.FromStrings("policy", "p", "deployment", "web", "namespace", "a")},
	})
	for _, tc := range []struct {
		name  string
		match labels.Labels
		want  []int
	}{
		{"none", labels.EmptyLabels(), []int{0, 1, 2, 3}},
		{"one label", labels.FromStrings("deployment", "api"), []int{0, 1}},
		{"two labels", labels.FromStrings("deployment", "api", "namespace", "b"), []int{1}},
		{"empty value", labels.FromStrings("deployment", "web", "namespace", ""), []int{2}},
		{"only empty", labels.FromStrings("namespace", ""), []int{2}},
		{"unknown value", labels.FromStrings("deployment", "db"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := Metadata{Policy: "p", MatchLabels: tc.match}
			got := fs.match(m)
			if len(got) != len(tc.want) {
				t.Fatalf("%d series, want %d", len(got), len(tc.want))
			}
			for i, ss := range got {
				if ss != &fs.series[tc.want[i]] {
					t.Errorf("match %d = %s, want %s", i, ss.labels, fs.series[tc.want[i]].labels)
				}
				if !m.matches(ss.labels) {
					t.Errorf("%s does not match", ss.labels)
				}
			}
		})
	}
}
