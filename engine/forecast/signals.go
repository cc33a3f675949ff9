package forecast

import (
	"fmt"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/promapi"
)

// setSignalStatus records what a cycle says about sources, events and the
// underprovision account. r.mu is held.
func (r *runner) setSignalStatus(c *Cycle) {
	r.st.DrivenBy = map[string]int{}
	for _, s := range c.Series {
		if s.Err == nil {
			r.st.DrivenBy[s.Source]++
		}
	}
	r.st.Events = r.st.Events[:0]
	for _, ae := range c.Events {
		r.st.Events = append(r.st.Events, eventStatus(ae))
	}
	r.under = r.under[:0]
	for _, s := range c.Series {
		if s.accounted {
			r.under = append(r.under, promapi.Sample{Labels: s.Labels, V: s.UnderprovisionSeconds})
		}
	}
}

func eventStatus(ae policy.ActiveEvent) EventStatus {
	es := EventStatus{Name: ae.Event.Name, Start: ae.Window.Start, End: ae.Window.End, Open: ae.Open, Effect: ae.Event.Effect()}
	if ae.Open {
		es.Message = fmt.Sprintf("event '%s' active until %s (%s)", es.Name, es.End.Format(time.RFC3339), es.Effect)
	} else {
		es.Message = fmt.Sprintf("event '%s' opens at %s, applied from the lead time before (%s, until %s)",
			es.Name, es.Start.Format(time.RFC3339), es.Effect, es.End.Format(time.RFC3339))
	}
	return es
}

// seriesSignalStatus fills the source and underprovision parts of a series'
// status.
func seriesSignalStatus(ss *SeriesStatus, s SeriesResult) {
	ss.Source = s.Source
	if len(s.Sources) > 1 {
		for _, sr := range s.Sources {
			si := SourceSeriesInfo{Source: sr.Source, Observed: sr.Observed, Need: sr.Need, Model: sr.Model}
			if sr.Err != nil {
				si.Error = sr.Err.Error()
			} else {
				si.Predicted = map[string]float64{}
				for a, v := range sr.Predicted {
					si.Predicted[model.Duration(a).String()] = v
				}
			}
			ss.Sources = append(ss.Sources, si)
		}
	}
	if s.accounted {
		ss.ReadyNote = s.ReadyNote
		ss.Underprovisioned = s.Underprovisioned
		ss.UnderprovisionSeconds = new(s.UnderprovisionSeconds)
		if !math.IsNaN(s.Ready) {
			ss.Ready = new(s.Ready)
		}
	}
}

// setSeriesBySource counts, per source, the series whose count it drives.
func (mt *Metrics) setSeriesBySource(name string, p *policy.ForecastPolicy, c *Cycle) {
	mt.seriesBySource.DeletePartialMatch(prometheus.Labels{"policy": name})
	by := map[string]int{}
	for _, src := range p.Spec.Sources {
		by[src.Name] = 0
	}
	for _, s := range c.Series {
		if s.Err == nil {
			by[s.Source]++
		}
	}
	for src, n := range by {
		mt.seriesBySource.WithLabelValues(name, src).Set(float64(n))
	}
}

// underCollector exposes kedastral_underprovision_seconds_total on /metrics
// with the labels it is remote-written with: policy and the series' labels,
// which differ between policies, hence a collector of constant metrics.
type underCollector struct{ m *Manager }

const underHelp = "Seconds the observed demand exceeded what the ready replicas carry (ready × targetPerPod), per policy and series."

var underDesc = prometheus.NewDesc(UnderprovisionMetric, underHelp, nil, nil)

// Describe sends nothing: the label names vary, so the collector is unchecked.
func (c *underCollector) Describe(chan<- *prometheus.Desc) {}

func (c *underCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	runners := make([]*runner, 0, len(c.m.runners))
	for _, r := range c.m.runners {
		runners = append(runners, r)
	}
	c.m.mu.Unlock()
	for _, r := range runners {
		r.mu.Lock()
		samples := append([]promapi.Sample(nil), r.under...)
		r.mu.Unlock()
		for _, s := range samples {
			var names, values []string
			s.Labels.Range(func(l labels.Label) {
				names = append(names, l.Name)
				values = append(values, l.Value)
			})
			desc := prometheus.NewDesc(UnderprovisionMetric, underHelp, names, nil)
			m, err := prometheus.NewConstMetric(desc, prometheus.CounterValue, s.V, values...)
			if err != nil {
				ch <- prometheus.NewInvalidMetric(underDesc, err)
				continue
			}
			ch <- m
		}
	}
}
