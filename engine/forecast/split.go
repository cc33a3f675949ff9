package forecast

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/promapi"
)

// fetchMaxSeries is the most series one range query of a fetch should
// evaluate: when the first chunk of a long fetch shows more, the rest of it
// is read in groups of about this many series, each restricted to some
// values of one label (see splitBySeries). A chunk of time bounds the
// points of a response but not the work of the server, which evaluates every
// series of the query for each chunk. A group can hold more: the series of
// one label value.
const fetchMaxSeries = 1000

// splittable tells whether restricting every vector and matrix selector of
// expr to label=~"v1|v2|..." yields exactly the series of expr whose label is
// one of v1, v2, ..., with the same values: whether the label passes
// unchanged from every selector to the output. It is conservative: an
// expression it does not know answers false.
func splittable(expr parser.Expr, label string) bool {
	switch n := expr.(type) {
	case *parser.VectorSelector:
		return true
	case *parser.MatrixSelector:
		return splittable(n.VectorSelector, label)
	case *parser.SubqueryExpr:
		return splittable(n.Expr, label)
	case *parser.ParenExpr:
		return splittable(n.Expr, label)
	case *parser.UnaryExpr:
		return splittable(n.Expr, label)
	case *parser.StepInvariantExpr:
		return splittable(n.Expr, label)
	case *parser.NumberLiteral, *parser.StringLiteral:
		return true
	case *parser.AggregateExpr:
		if len(n.Grouping) == 0 && !n.Without {
			return false // one series for all: sum(x)
		}
		if slices.Contains(n.Grouping, label) == n.Without {
			return false // the label is aggregated away
		}
		if n.Param != nil {
			if !isLiteral(n.Param) {
				return false
			}
			if s, ok := unwrap(n.Param).(*parser.StringLiteral); ok && n.Op == parser.COUNT_VALUES && s.Val == label {
				return false
			}
		}
		return splittable(n.Expr, label)
	case *parser.Call:
		return splittableCall(n, label)
	case *parser.BinaryExpr:
		lv, rv := isVector(n.LHS), isVector(n.RHS)
		switch {
		case !lv && !rv:
			return isLiteral(n.LHS) && isLiteral(n.RHS)
		case !lv:
			return isLiteral(n.LHS) && splittable(n.RHS, label)
		case !rv:
			return isLiteral(n.RHS) && splittable(n.LHS, label)
		}
		if m := n.VectorMatching; m != nil {
			if slices.Contains(m.MatchingLabels, label) != m.On {
				return false // the label is not matched on
			}
			if slices.Contains(m.Include, label) {
				return false // the label is copied from the other side
			}
		}
		return splittable(n.LHS, label) && splittable(n.RHS, label)
	}
	return false
}

// keepLabels are the functions that compute each output series from the
// input series with the same labels (less __name__).
var keepLabels = map[string]bool{}

func init() {
	for _, f := range strings.Fields(`abs ceil floor round exp ln log2 log10 sqrt sgn
		clamp clamp_min clamp_max
		acos acosh asin asinh atan atanh cos cosh sin sinh tan tanh deg rad
		rate irate increase delta idelta deriv predict_linear resets changes
		holt_winters double_exponential_smoothing
		avg_over_time min_over_time max_over_time sum_over_time count_over_time
		quantile_over_time stddev_over_time stdvar_over_time last_over_time
		present_over_time mad_over_time first_over_time
		histogram_quantile histogram_fraction histogram_count histogram_sum
		histogram_avg histogram_stddev histogram_stdvar
		timestamp sort sort_desc sort_by_label sort_by_label_desc
		label_replace label_join
		day_of_month day_of_week day_of_year days_in_month hour minute month year`) {
		keepLabels[f] = true
	}
}

func splittableCall(c *parser.Call, label string) bool {
	name := c.Func.Name
	if !keepLabels[name] {
		return false // absent, absent_over_time, scalar, vector, time, unknown
	}
	switch name {
	case "label_replace", "label_join":
		if len(c.Args) < 2 {
			return false
		}
		if dst, ok := unwrap(c.Args[1]).(*parser.StringLiteral); !ok || dst.Val == label {
			return false
		}
	case "histogram_quantile":
		if label == "le" {
			return false
		}
	}
	vectors := 0
	for _, a := range c.Args {
		if isVector(a) || a.Type() == parser.ValueTypeMatrix {
			if !splittable(a, label) {
				return false
			}
			vectors++
			continue
		}
		if !isLiteral(a) {
			return false
		}
	}
	// hour() without an argument is hour(vector(time())).
	return vectors > 0
}

func isVector(e parser.Expr) bool { return e.Type() == parser.ValueTypeVector }

// unwrap strips parentheses and step-invariant markers.
func unwrap(e parser.Expr) parser.Expr {
	for {
		switch n := e.(type) {
		case *parser.ParenExpr:
			e = n.Expr
		case *parser.StepInvariantExpr:
			e = n.Expr
		default:
			return e
		}
	}
}

// isLiteral tells whether e is a number or string literal, maybe negated,
// in parentheses or in arithmetic with other literals.
func isLiteral(e parser.Expr) bool {
	switch n := unwrap(e).(type) {
	case *parser.NumberLiteral, *parser.StringLiteral:
		return true
	case *parser.UnaryExpr:
		return isLiteral(n.Expr)
	case *parser.BinaryExpr:
		return isLiteral(n.LHS) && isLiteral(n.RHS)
	}
	return false
}

// withMatcher returns query with m added to every selector.
func withMatcher(query string, m *labels.Matcher) (string, error) {
	expr, err := policy.ParseQuery(query)
	if err != nil {
		return "", err
	}
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			vs.LabelMatchers = append(vs.LabelMatchers, m)
		}
		return nil
	})
	return expr.String(), nil
}

// maxGroupValues bounds the label values of one group: Prometheus looks an
// alternation of up to 256 literal values up in a set, and matches a longer
// one against every value of the label with a regular expression.
const maxGroupValues = 256

// seriesGroup is a part of the series of every source of a policy: the
// queries restricted to some values of a label, and how many series of the
// first chunk (of the largest source) it holds.
type seriesGroup struct {
	label   string
	queries []string
	series  int
}

// splitBySeries divides the series of the first chunk of a fetch (results,
// one per source) into groups of about maxSeries series by the values of one
// label, for the rest of the fetch. It returns no groups and why when the
// largest result has no more than maxSeries series (why is empty then) or no
// label divides every source's query: one carried by every series, that
// every query passes unchanged from its selectors to its output (see
// splittable); of those, the one with the most values.
//
// Each group selects its values (label=~"v1|v2|...", at most
// maxGroupValues of them). results should hold the series live at the end of
// the fetch as well as those of the first chunk, so that a series that starts
// after the first chunk is read too (one that starts and ends in between is
// not: it cannot be forecast).
func splitBySeries(sources []policy.Source, results [][]promapi.Series, maxSeries int) ([]seriesGroup, string) {
	if largest(results) <= maxSeries {
		return nil, ""
	}
	exprs := make([]parser.Expr, len(sources))
	for i, src := range sources {
		expr, err := policy.ParseQuery(src.Query)
		if err != nil {
			return nil, err.Error()
		}
		exprs[i] = expr
	}
	// The candidates: the labels of every series, with their values.
	var candidates []string
	first := true
	for _, res := range results {
		for _, s := range res {
			var names []string
			s.Labels.Range(func(l labels.Label) {
				if l.Name != labels.MetricName && l.Name != PolicyLabel && l.Name != PolicyNamespaceLabel &&
					(first || slices.Contains(candidates, l.Name)) {
					names = append(names, l.Name)
				}
			})
			candidates, first = names, false
		}
	}
	label, values := "", 0
	for _, name := range candidates {
		ok := true
		for _, expr := range exprs {
			ok = ok && splittable(expr, name)
		}
		if !ok {
			continue
		}
		seen := map[string]bool{}
		for _, res := range results {
			for _, s := range res {
				seen[s.Labels.Get(name)] = true
			}
		}
		if len(seen) > values || (len(seen) == values && name < label) {
			label, values = name, len(seen)
		}
	}
	if label == "" {
		if len(candidates) == 0 {
			return nil, "no label is carried by every series"
		}
		return nil, fmt.Sprintf("no label carried by every series (%s) passes unchanged through the query", strings.Join(candidates, ", "))
	}
	// Series per value: the most of any source, as each source is one query.
	count := map[string]int{}
	for _, res := range results {
		per := map[string]int{}
		for _, s := range res {
			per[s.Labels.Get(label)]++
		}
		for v, n := range per {
			count[v] = max(count[v], n)
		}
	}
	vals := make([]string, 0, len(count))
	for v := range count {
		vals = append(vals, v)
	}
	slices.Sort(vals)
	var parts [][]string
	var sizes []int
	for _, v := range vals {
		if k := len(parts) - 1; k >= 0 && sizes[k]+count[v] <= maxSeries && len(parts[k]) < maxGroupValues {
			parts[k] = append(parts[k], v)
			sizes[k] += count[v]
			continue
		}
		parts = append(parts, []string{v})
		sizes = append(sizes, count[v])
	}
	if len(parts) < 2 {
		return nil, fmt.Sprintf("label %s has too few values", label)
	}
	groups := make([]seriesGroup, len(parts))
	for k, part := range parts {
		m := labels.MustNewMatcher(labels.MatchRegexp, label, alternation(part))
		groups[k].label, groups[k].series = label, sizes[k]
		for _, src := range sources {
			q, err := withMatcher(src.Query, m)
			if err != nil {
				return nil, err.Error()
			}
			groups[k].queries = append(groups[k].queries, q)
		}
	}
	return groups, ""
}

// alternation is a regular expression that matches exactly the values.
func alternation(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = regexp.QuoteMeta(v)
	}
	return strings.Join(quoted, "|")
}
