package backtest

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/kedastral/kedastral/engine/policy"
)

// WriteCSV writes one row per step: timestamp,observed,pred_<ahead>...,desired_replicas.
// The row of step t is made at the end of step t with data up to and
// including t; pred_<ahead> is the forecast made then for t+ahead. Unknown
// cells are empty.
func WriteCSV(w io.Writer, r *Result) error {
	cw := csv.NewWriter(w)
	head := []string{"timestamp", "observed"}
	for _, a := range r.Ahead {
		head = append(head, "pred_"+fmtDuration(a))
	}
	head = append(head, "desired_replicas")
	if err := cw.Write(head); err != nil {
		return err
	}
	rec := make([]string, len(head))
	for _, row := range r.Rows {
		rec[0] = strconv.FormatInt(row.Time.Unix(), 10)
		rec[1] = num(row.Observed)
		for k, p := range row.Pred {
			rec[2+k] = num(p)
		}
		rec[len(rec)-1] = ""
		if row.Desired >= 0 {
			rec[len(rec)-1] = strconv.Itoa(int(row.Desired))
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ""
	}
	return strconv.FormatFloat(v, 'g', 10, 64)
}

// WriteText writes the summary tables.
func WriteText(w io.Writer, r *Result) error {
	fmt.Fprintf(w, "policy %s%s: model %s at %s, step %s, lead time %s\n", r.Policy, seriesTitle(r), r.Model, levelTitle(r), fmtDuration(r.Step), fmtDuration(r.LeadTime))
	scored := len(r.Rows) - r.ScoredFrom
	if len(r.Rows) > 0 {
		fmt.Fprintf(w, "trace %s to %s, %d steps, scored from %s (%d steps)\n",
			r.Rows[0].Time.Format(time.RFC3339), r.Rows[len(r.Rows)-1].Time.Format(time.RFC3339), len(r.Rows),
			r.Rows[r.ScoredFrom].Time.Format(time.RFC3339), scored)
	}
	writeHPALine(w, r)
	if r.Errors > 0 {
		fmt.Fprintf(w, "%d steps could not be evaluated (answered reactively); the first: %v\n", r.Errors, r.FirstError)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "forecast error (MASE against the one-day seasonal naive MAE over the scored steps)")
	if n := quantileNote(r); n != "" {
		fmt.Fprintln(w, n)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ahead\tmethod\tn\tMAE\twMAPE\tMASE\tcoverage\t")
	for _, f := range r.Forecast {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t\n", f.AheadS, f.Method, f.N, fnum(f.MAE), fnum(f.WMAPE), fnum(f.MASE), fnum(f.Coverage))
	}
	tw.Flush()
	fmt.Fprintln(w, "\nscaling outcome")
	if err := writeScaling(w, r.Scaling); err != nil {
		return err
	}
	if r.Objective > 0 {
		_, err := fmt.Fprintln(w, "\n"+objectiveLine(r.Objective, methodScore(r.Scaling, Kedastral).UnderTime))
		return err
	}
	return nil
}

// levelTitle is the quantile a backtest ran at: the policy's, or its
// objective's calibrated one.
func levelTitle(r *Result) string {
	if r.Objective > 0 {
		return fmt.Sprintf("objective %v of time short (quantile calibrated online, mean %.3f over the scored steps)", policy.Percent(r.Objective), r.LevelMean)
	}
	return fmt.Sprintf("quantile %v", r.Quantile)
}

// objectiveLine says the share of time short achieved next to the objective.
func objectiveLine(objective, achieved float64) string {
	return fmt.Sprintf("objective %v of time short: achieved %.2f%% (%.2f× the objective)", policy.Percent(objective), 100*achieved, achieved/objective)
}

func writeHPALine(w io.Writer, r *Result) {
	fmt.Fprintf(w, "simulated HPA: tolerance %v, scale-down stabilization %s, pods ready %s after the request\n",
		r.Tolerance, fmtDuration(r.Stabilize), fmtDuration(r.PodStartup))
}

// scalingHead and scalingCells are the columns of a scaling outcome.
const scalingHead = "unserved\tvs reactive\tunder time\tover\treplica-hours\tvs oracle\tscale events\t"

func scalingCells(s ScalingScore) string {
	return fmt.Sprintf("%s\t%s\t%s\t%s\t%.1f\t%s\t%d\t", fnum(s.Unserved), fnum(s.UnservedVsReactive),
		fnum(s.UnderTime), fnum(s.Over), s.ReplicaHours, fnum(s.VsOracle), s.ScaleEvents)
}

// writeScaling writes a table of scaling outcomes, one method a row.
func writeScaling(w io.Writer, scores []ScalingScore) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "method\t"+scalingHead)
	for _, s := range scores {
		fmt.Fprintln(tw, s.Method+"\t"+scalingCells(s))
	}
	return tw.Flush()
}

func fnum(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	if math.IsInf(v, 0) {
		return "inf"
	}
	return strconv.FormatFloat(v, 'f', 4, 64)
}

// jsonResult is the JSON shape of a Result.
type jsonResult struct {
	jsonSettings
	Quantile   float64        `json:"quantile"`
	Objective  *jsonObjective `json:"objective,omitempty"`
	Start      int64          `json:"start"`
	End        int64          `json:"end"`
	Steps      int            `json:"steps"`
	ScoredFrom int64          `json:"scoredFrom"`
	MASEScale  jsonFloat      `json:"maseScale"`
	Errors     int            `json:"errors"`
	FirstError string         `json:"firstError,omitempty"`
	Forecast   []jsonForecast `json:"forecast"`
	Scaling    []jsonScaling  `json:"scaling"`
	Rows       [][]jsonFloat  `json:"rows,omitempty"`
	Columns    []string       `json:"columns,omitempty"`
}

type jsonForecast struct {
	Method   string    `json:"method"`
	Ahead    string    `json:"ahead"`
	N        int       `json:"n"`
	MAE      jsonFloat `json:"mae"`
	WMAPE    jsonFloat `json:"wmape"`
	MASE     jsonFloat `json:"mase"`
	Coverage jsonFloat `json:"coverage"`
}

type jsonScaling struct {
	Method             string    `json:"method"`
	Unserved           jsonFloat `json:"unserved"`
	UnservedVsReactive jsonFloat `json:"unservedVsReactive"`
	UnderTime          jsonFloat `json:"underTime"`
	Over               jsonFloat `json:"over"`
	ReplicaHours       jsonFloat `json:"replicaHours"`
	VsOracle           jsonFloat `json:"replicaHoursVsOracle"`
	ScaleEvents        int       `json:"scaleEvents"`
}

// jsonObjective is a backtest's objective and the share of time short it
// achieved (Kedastral's underTime), with the calibrated quantile's mean.
type jsonObjective struct {
	UnderprovisionedTime float64   `json:"underprovisionedTime"`
	Achieved             jsonFloat `json:"achieved"`
	LevelMean            jsonFloat `json:"levelMean"`
}

func objectiveOf(objective, achieved, level float64) *jsonObjective {
	if objective <= 0 {
		return nil
	}
	return &jsonObjective{objective, jsonFloat(achieved), jsonFloat(level)}
}

// jsonFloat is a float that encodes NaN and ±Inf as null.
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

// WriteJSON writes the summary and, with rows, the per-step rows as arrays
// in the order of "columns" (the CSV's header).
func WriteJSON(w io.Writer, r *Result, rows bool) error {
	j := jsonResult{
		jsonSettings: settingsOf(r), Quantile: r.Quantile,
		Objective: objectiveOf(r.Objective, methodScore(r.Scaling, Kedastral).UnderTime, r.LevelMean),
		Steps:     len(r.Rows), MASEScale: jsonFloat(r.MASEScale), Errors: r.Errors,
	}
	if r.FirstError != nil {
		j.FirstError = r.FirstError.Error()
	}
	if len(r.Rows) > 0 {
		j.Start, j.End = r.Rows[0].Time.Unix(), r.Rows[len(r.Rows)-1].Time.Unix()
		j.ScoredFrom = r.Rows[r.ScoredFrom].Time.Unix()
	}
	for _, f := range r.Forecast {
		j.Forecast = append(j.Forecast, jsonForecast{f.Method, f.AheadS, f.N, jsonFloat(f.MAE), jsonFloat(f.WMAPE), jsonFloat(f.MASE), jsonFloat(f.Coverage)})
	}
	for _, s := range r.Scaling {
		j.Scaling = append(j.Scaling, toJSONScaling(s))
	}
	if rows {
		j.Columns = []string{"timestamp", "observed"}
		for _, a := range r.Ahead {
			j.Columns = append(j.Columns, "pred_"+fmtDuration(a))
		}
		j.Columns = append(j.Columns, "desired_replicas")
		for _, row := range r.Rows {
			rec := []jsonFloat{jsonFloat(row.Time.Unix()), jsonFloat(row.Observed)}
			for _, p := range row.Pred {
				rec = append(rec, jsonFloat(p))
			}
			d := jsonFloat(math.NaN())
			if row.Desired >= 0 {
				d = jsonFloat(row.Desired)
			}
			j.Rows = append(j.Rows, append(rec, d))
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(j)
}

// WriteCurveText writes the trade-off curve: Kedastral's outcome at each
// quantile, and the methods that do not depend on it.
func WriteCurveText(w io.Writer, c *CurveResult) error {
	r := c.First
	fmt.Fprintf(w, "policy %s%s: model %s, step %s, lead time %s\n", r.Policy, seriesTitle(r), r.Model, fmtDuration(r.Step), fmtDuration(r.LeadTime))
	if len(r.Rows) > 0 {
		fmt.Fprintf(w, "trace %s to %s, scored from %s (%d steps)\n",
			r.Rows[0].Time.Format(time.RFC3339), r.Rows[len(r.Rows)-1].Time.Format(time.RFC3339),
			r.Rows[r.ScoredFrom].Time.Format(time.RFC3339), len(r.Rows)-r.ScoredFrom)
	}
	if c.Series > 0 {
		fmt.Fprintln(w, c.seriesLine())
	}
	writeHPALine(w, r)
	for _, s := range c.Failed {
		fmt.Fprintf(w, "not backtested: %s: %v\n", s.Labels, s.Err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if c.Objectives() {
		fmt.Fprintln(w, "\ntrade-off curve: Kedastral at each objective (share of time short), its quantile calibrated online")
		fmt.Fprintf(tw, "objective\tachieved\tvs objective\tmean quantile\tcoverage %s\t%s\n", aheadLabel(r), scalingHead)
		for _, p := range c.Points {
			fmt.Fprintf(tw, "%v\t%.2f%%\t%s\t%s\t%s\t%s\n", policy.Percent(p.Objective), 100*p.Scaling.UnderTime, fnum(p.Scaling.UnderTime/p.Objective), fnum(p.Level), fnum(p.Coverage), scalingCells(p.Scaling))
		}
	} else {
		fmt.Fprintln(w, "\ntrade-off curve: Kedastral at each quantile")
		fmt.Fprintf(tw, "quantile\tcoverage %s\t%s\n", aheadLabel(r), scalingHead)
		for _, p := range c.Points {
			fmt.Fprintf(tw, "%v\t%s\t%s\n", p.Quantile, fnum(p.Coverage), scalingCells(p.Scaling))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if c.Objectives() {
		fmt.Fprintln(w, "\nthe same at every objective")
	} else {
		fmt.Fprintln(w, "\nthe same at every quantile")
	}
	return writeScaling(w, c.Others())
}

// seriesLine says how many series a curve sums up, and over what span.
func (c *CurveResult) seriesLine() string {
	return fmt.Sprintf("%d series from %s to %s, each backtested on its own and summed up (%d of %d backtested)",
		c.Series, c.Start.Format(time.RFC3339), c.End.Format(time.RFC3339), c.Series-len(c.Failed), c.Series)
}

func aheadLabel(r *Result) string {
	if len(r.Ahead) == 0 {
		return ""
	}
	return fmtDuration(r.Ahead[0])
}

type jsonCurvePoint struct {
	Quantile  float64        `json:"quantile"`
	Objective *jsonObjective `json:"objective,omitempty"`
	Coverage  jsonFloat      `json:"coverage"`
	Scaling   jsonScaling    `json:"scaling"`
}

// jsonSettings are the policy and simulation settings of a JSON report.
type jsonSettings struct {
	Policy     string            `json:"policy"`
	Labels     map[string]string `json:"labels,omitempty"`
	Model      string            `json:"model"`
	Step       string            `json:"step"`
	LeadTime   string            `json:"leadTime"`
	PodStartup string            `json:"podStartup"`
	Tolerance  float64           `json:"tolerance"`
	Stabilize  string            `json:"scaleDownStabilization"`
}

func settingsOf(r *Result) jsonSettings {
	var l map[string]string
	if !r.Labels.IsEmpty() {
		l = r.Labels.Map()
	}
	return jsonSettings{Policy: r.Policy, Labels: l, Model: r.Model, Step: fmtDuration(r.Step), LeadTime: fmtDuration(r.LeadTime),
		PodStartup: fmtDuration(r.PodStartup), Tolerance: r.Tolerance, Stabilize: fmtDuration(r.Stabilize)}
}

type jsonCurve struct {
	jsonSettings
	Series       int              `json:"series,omitempty"`
	Failed       []jsonFailed     `json:"notBacktested,omitempty"`
	CoverageAt   string           `json:"coverageAhead"`
	Curve        []jsonCurvePoint `json:"curve"`
	OtherMethods []jsonScaling    `json:"otherMethods"`
}

type jsonFailed struct {
	Labels map[string]string `json:"labels"`
	Error  string            `json:"error"`
}

func toJSONScaling(s ScalingScore) jsonScaling {
	return jsonScaling{s.Method, jsonFloat(s.Unserved), jsonFloat(s.UnservedVsReactive),
		jsonFloat(s.UnderTime), jsonFloat(s.Over), jsonFloat(s.ReplicaHours), jsonFloat(s.VsOracle), s.ScaleEvents}
}

// WriteCurveJSON writes the trade-off curve as JSON.
func WriteCurveJSON(w io.Writer, c *CurveResult) error {
	r := c.First
	j := jsonCurve{jsonSettings: settingsOf(r), CoverageAt: aheadLabel(r), Series: c.Series}
	for _, s := range c.Failed {
		j.Failed = append(j.Failed, jsonFailed{s.Labels.Map(), s.Err.Error()})
	}
	for _, p := range c.Points {
		j.Curve = append(j.Curve, jsonCurvePoint{p.Quantile, objectiveOf(p.Objective, p.Scaling.UnderTime, p.Level), jsonFloat(p.Coverage), toJSONScaling(p.Scaling)})
	}
	for _, s := range c.Others() {
		j.OtherMethods = append(j.OtherMethods, toJSONScaling(s))
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(j)
}

// quantileNote says, unless the policy forecasts the median, that
// Kedastral's forecast is a quantile and not a point forecast: its MAE and
// MASE are not a like-for-like comparison with the point forecasts.
func quantileNote(r *Result) string {
	if r.Quantile == 0.5 {
		return ""
	}
	return fmt.Sprintf("kedastral forecasts the %v quantile (the policy's model.quantile), not the expected value: its MAE and MASE compare with the point forecasts only at quantile 0.5 (backtest a copy of the policy with model.quantile: 0.5); its measure here is the coverage.", r.Quantile)
}

// WriteManyText writes the backtest of several series: Kedastral's outcome
// per series, the series that could not be backtested, and every method's
// outcome over all series together.
func WriteManyText(w io.Writer, m *ManyResult) error {
	r := m.Settings
	fmt.Fprintf(w, "policy %s: model %s at quantile %v, step %s, lead time %s\n", r.Policy, r.Model, r.Quantile, fmtDuration(r.Step), fmtDuration(r.LeadTime))
	first, last, failed := span(m.Series)
	fmt.Fprintf(w, "%d series, from %s to %s\n", len(m.Series), first.Format(time.RFC3339), last.Format(time.RFC3339))
	writeHPALine(w, r)
	fmt.Fprintln(w, "\nper series: Kedastral's scaling outcome, and reactive KEDA's replica-hours against the oracle's")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "series\tscored steps\tcoverage %s\tunserved\tvs reactive\treplica-hours\tvs oracle\treactive vs oracle\tsteps not evaluated\t\n", aheadLabel(r))
	for _, s := range m.Series {
		if s.Err != nil {
			continue
		}
		k, re := methodScore(s.Scaling, Kedastral), methodScore(s.Scaling, Reactive)
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%.1f\t%s\t%s\t%d\t\n", s.Labels, s.Scored, fnum(s.Coverage),
			fnum(k.Unserved), fnum(k.UnservedVsReactive), k.ReplicaHours, fnum(k.VsOracle), fnum(re.VsOracle), s.Errors)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(failed) > 0 {
		fmt.Fprintf(w, "\nnot backtested (%d):\n", len(failed))
		for _, s := range failed {
			fmt.Fprintf(w, "  %s: %v\n", s.Labels, s.Err)
		}
	}
	fmt.Fprintf(w, "\nall series together (%d of %d backtested)\n", len(m.Series)-len(failed), len(m.Series))
	return writeScaling(w, m.Total)
}

// methodScore is the score of method m; a zero score when it is missing.
func methodScore(scores []ScalingScore, m string) ScalingScore {
	for _, s := range scores {
		if s.Method == m {
			return s
		}
	}
	return ScalingScore{Method: m, Unserved: math.NaN(), UnservedVsReactive: math.NaN(), VsOracle: math.NaN()}
}

type jsonMany struct {
	jsonSettings
	Quantile   float64             `json:"quantile"`
	CoverageAt string              `json:"coverageAhead"`
	Series     []jsonSeriesOutcome `json:"series"`
	Total      []jsonScaling       `json:"total"`
}

type jsonSeriesOutcome struct {
	Labels     map[string]string `json:"labels"`
	Start      int64             `json:"start,omitempty"`
	End        int64             `json:"end,omitempty"`
	Scored     int               `json:"scoredSteps"`
	Coverage   jsonFloat         `json:"coverage"`
	Errors     int               `json:"errors"`
	FirstError string            `json:"firstError,omitempty"`
	Error      string            `json:"error,omitempty"`
	Scaling    []jsonScaling     `json:"scaling"`
}

// WriteManyJSON writes the backtest of several series as JSON: per series
// its scores (every method), and the total.
func WriteManyJSON(w io.Writer, m *ManyResult) error {
	r := m.Settings
	j := jsonMany{jsonSettings: settingsOf(r), Quantile: r.Quantile, CoverageAt: aheadLabel(r), Series: []jsonSeriesOutcome{}}
	for _, s := range m.Series {
		o := jsonSeriesOutcome{Labels: s.Labels.Map(), Scored: s.Scored, Coverage: jsonFloat(s.Coverage), Errors: s.Errors, Scaling: []jsonScaling{}}
		if s.Err != nil {
			o.Error = s.Err.Error()
		} else {
			o.Start, o.End = s.Start.Unix(), s.End.Unix()
		}
		if s.FirstError != nil {
			o.FirstError = s.FirstError.Error()
		}
		for _, sc := range s.Scaling {
			o.Scaling = append(o.Scaling, toJSONScaling(sc))
		}
		j.Series = append(j.Series, o)
	}
	for _, sc := range m.Total {
		j.Total = append(j.Total, toJSONScaling(sc))
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(j)
}
