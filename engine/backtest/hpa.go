package backtest

import (
	"time"

	"github.com/kedastral/kedastral/engine/capacity"
	"github.com/kedastral/kedastral/engine/model"
	"github.com/kedastral/kedastral/engine/policy"
)

// simulate plays a method's answers through a HorizontalPodAutoscaler.
// want[i] is the answer made at the end of row i as the HPA sees it: the
// metric divided by its per-pod target (AverageValue), in pods. For a
// replica answer (Kedastral's scaler, target 1) it is the replica count;
// for reactive KEDA it is observed / targetPerPod. The answer reaches the
// HPA at the end of row i (the start of row i+1) and is in force for the
// whole of row i+1. The HPA (capacity.HPA) syncs at the answer and every
// capacity.HPASyncPeriod after it, and at every sync does what its
// controller does for an external AverageValue metric: it recommends the
// count it holds when |want/current − 1| ≤ tolerance (the ratio of the
// metric to the target, not of the rounded replica counts), else ceil(want)
// clamped to [min, max]; it records the recommendation, scales up to it at
// once, and scales down no lower than the highest recommendation recorded
// within the stabilization window. So a scale-down the window holds back
// happens inside a row when the last higher recommendation leaves the
// window (5 minutes into an hourly row, not at its end). A new pod is ready
// PodStartup after the HPA asks for it; a scale-down removes pods at once,
// the not yet ready ones first. Demand is spread evenly over its row, and
// what exceeds the ready capacity at any moment is lost: the row's unserved
// demand and its capacity are integrated over the row.
func simulate(want []float64, tr model.History, c policy.Capacity, o Options) Sim {
	return simulateAt(want, nil, tr, c, o)
}

// simulateAt is simulate where, when wantAt is set, the answer in force
// during row i+1 is wantAt(i, at) at each sync at rather than want[i]: an
// answer that changes between syncs (the oracle's).
func simulateAt(want []float64, wantAt func(i int, at time.Time) float64, tr model.History, c policy.Capacity, o Options) Sim {
	n := len(want)
	sim := Sim{
		Replicas: make([]int32, n), End: make([]int32, n), Held: make([]float64, n), Capacity: make([]float64, n),
		Unserved: make([]float64, n), Changes: make([]int32, n),
	}
	step := tr.Step
	cur := capacity.Proposal(want[0], c.Min, c.Max)
	h := capacity.NewHPA(c, o.Tolerance, o.ScaleDownStabilization, cur)
	var pods []time.Time // ready times, non-decreasing
	for range cur {
		pods = append(pods, tr.Start)
	}
	sim.Replicas[0], sim.End[0], sim.Held[0] = cur, cur, float64(cur)
	sim.Capacity[0] = float64(cur) * c.TargetPerPod
	if d := tr.Values[0]; d > sim.Capacity[0] {
		sim.Unserved[0] = d - sim.Capacity[0]
	}
	sync := min(capacity.HPASyncPeriod, step)
	for i := 0; i+1 < n; i++ {
		row := i + 1
		t := tr.Start.Add(time.Duration(row) * step)
		end := t.Add(step)
		d := tr.Values[row]
		var held, ready, lost float64
		for at := t; at.Before(end); {
			w := want[i]
			if wantAt != nil {
				w = wantAt(i, at)
			}
			next := h.Sync(at, w)
			if next != cur {
				sim.Changes[row]++
			}
			for int32(len(pods)) < next {
				pods = append(pods, at.Add(o.PodStartup))
			}
			pods = pods[:next]
			cur = next
			if at == t {
				sim.Replicas[row] = cur
			}
			until := at.Add(sync)
			if h.Settled() && wantAt == nil {
				// The rest of the row's syncs change nothing: record the
				// last of them and take the rest of the row at once (240
				// syncs of an hourly row are mostly this).
				if last := t.Add((step - 1) / sync * sync); last.After(at) {
					h.Sync(last, want[i])
				}
				until = end
			}
			if until.After(end) {
				until = end
			}
			held += float64(cur) * float64(until.Sub(at))
			r, l := readyOver(pods, at, until, d, c.TargetPerPod)
			ready += r
			lost += l
			at = until
		}
		sim.End[row] = cur
		sim.Held[row] = held / float64(step)
		sim.Capacity[row] = ready / float64(step)
		sim.Unserved[row] = lost / float64(step)
	}
	return sim
}

// readyOver integrates, over [from, to), the ready capacity of pods (ready
// times, non-decreasing) and the demand d above it, both in signal units ×
// nanoseconds. A NaN demand loses nothing.
func readyOver(pods []time.Time, from, to time.Time, d, perPod float64) (capacity, lost float64) {
	k := len(pods) // pods[k:] are not ready at from
	for k > 0 && pods[k-1].After(from) {
		k--
	}
	at := from
	for {
		segEnd := to
		if k < len(pods) && pods[k].Before(to) {
			segEnd = pods[k]
		}
		if segEnd.After(at) {
			dt := float64(segEnd.Sub(at))
			c := float64(k) * perPod
			capacity += c * dt
			if d > c {
				lost += (d - c) * dt
			}
			at = segEnd
		}
		if !segEnd.Before(to) {
			return capacity, lost
		}
		k++
	}
}

// replicaAnswers turns replica counts into the metric the HPA sees from
// Kedastral's scaler (target 1, AverageValue): the counts themselves.
func replicaAnswers(d []int32) []float64 {
	out := make([]float64, len(d))
	for i, v := range d {
		out[i] = float64(v)
	}
	return out
}
