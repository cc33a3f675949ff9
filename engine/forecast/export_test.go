package forecast

// SetMaxFetchSeries sets the series of a group of a split fetch
// (fetchMaxSeries), for the tests outside the package.
func SetMaxFetchSeries(e *Evaluator, n int) { e.maxFetchSeries = n }

// Histories are the evaluator's histories, printed, by series.
func Histories(e *Evaluator) map[string]string { return histories(e) }
