//go:build livewip

package live

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kedastral/kedastral/engine/capacity"
	"github.com/kedastral/kedastral/engine/policy"
)

// auditEvent is the part of a kube-apiserver audit event the tests read.
type auditEvent struct {
	Stage     string `json:"stage"`
	Verb      string `json:"verb"`
	UserAgent string `json:"userAgent"`
	ObjectRef struct {
		APIGroup    string `json:"apiGroup"`
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	RequestObject  json.RawMessage `json:"requestObject"`
	ResponseObject json.RawMessage `json:"responseObject"`
	StageTimestamp time.Time       `json:"stageTimestamp"`
}

// hpaSync is one sync of an HPA as the audit log shows it: the external
// metrics it read (the sum of each metric's values; NaN for a failed read)
// and the count it left the Deployment at.
type hpaSync struct {
	at      time.Time
	metrics map[string]float64
	before  int32
	after   int32
}

// readSyncs reads the HPA syncs of namespace ns from the audit logs: the
// controller reads every metric of an HPA within one sync (KEDA's adapter
// logs each read with the values it served), and a change of the
// Deployment's count is its update of deployments/scale right after
// (kube-apiserver logs it). Only the HPA controller reads external metrics
// here.
func readSyncs(t testing.TB, e *env, ns string, initial int32) []hpaSync {
	t.Helper()
	type fetch struct {
		at     time.Time
		metric string
		v      float64
	}
	type scale struct {
		at time.Time
		n  int32
	}
	var fetches []fetch
	var scales []scale
	readAudit(t, e.adapterAudit, func(ev auditEvent) {
		if ev.Stage != "ResponseComplete" || ev.ObjectRef.Namespace != ns || ev.ObjectRef.APIGroup != "external.metrics.k8s.io" {
			return
		}
		v := math.NaN()
		if ev.ResponseStatus.Code == 200 {
			var list struct {
				Items []struct {
					Value resource.Quantity `json:"value"`
				} `json:"items"`
			}
			if err := json.Unmarshal(ev.ResponseObject, &list); err != nil {
				t.Fatalf("audit log: external metric %s: %v", ev.ObjectRef.Resource, err)
			}
			if len(list.Items) > 0 {
				v = 0
			}
			for _, it := range list.Items {
				v += it.Value.AsApproximateFloat64()
			}
		}
		fetches = append(fetches, fetch{ev.StageTimestamp, ev.ObjectRef.Resource, v})
	})
	readAudit(t, e.auditLog, func(ev auditEvent) {
		if ev.Stage != "ResponseComplete" || ev.ObjectRef.Namespace != ns || !strings.HasPrefix(ev.UserAgent, "kube-controller-manager/") ||
			ev.ObjectRef.Resource != "deployments" || ev.ObjectRef.Subresource != "scale" || ev.ResponseStatus.Code != 200 {
			return
		}
		var sc struct {
			Spec struct {
				Replicas int32 `json:"replicas"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(ev.RequestObject, &sc); err != nil {
			t.Fatalf("audit log: scale of %s/%s: %v", ns, ev.ObjectRef.Name, err)
		}
		scales = append(scales, scale{ev.StageTimestamp, sc.Spec.Replicas})
	})
	sort.Slice(fetches, func(i, j int) bool { return fetches[i].at.Before(fetches[j].at) })
	var syncs []hpaSync
	for _, f := range fetches {
		if n := len(syncs); n > 0 && f.at.Sub(syncs[n-1].at) < 2*time.Second {
			syncs[n-1].metrics[f.metric] = f.v
			continue
		}
		syncs = append(syncs, hpaSync{at: f.at, metrics: map[string]float64{f.metric: f.v}})
	}
	cur := initial
	for i := range syncs {
		syncs[i].before = cur
		next := time.Now().Add(time.Hour)
		if i+1 < len(syncs) {
			next = syncs[i+1].at
		}
		for _, s := range scales {
			if !s.at.Before(syncs[i].at) && s.at.Before(next) {
				cur = s.n
			}
		}
		syncs[i].after = cur
	}
	return syncs
}

// hpaSpec is what the simulation needs of the HPA KEDA made.
type hpaSpec struct {
	min, max int32
	window   time.Duration
	targets  map[string]float64 // external metric → AverageValue target
}

// readAudit calls f with every event of an audit log.
func readAudit(t testing.TB, path string, f func(auditEvent)) {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var ev auditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("audit log %s: %v", path, err)
		}
		f(ev)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

func (e *env) hpaOf(t testing.TB, ns string) hpaSpec {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := e.kube.AutoscalingV2().HorizontalPodAutoscalers(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("the HPA of namespace %s: %v (%d found)", ns, err, len(list.Items))
	}
	h := list.Items[0]
	spec := hpaSpec{min: 1, max: h.Spec.MaxReplicas, window: 5 * time.Minute, targets: map[string]float64{}}
	if h.Spec.MinReplicas != nil {
		spec.min = *h.Spec.MinReplicas
	}
	if b := h.Spec.Behavior; b != nil && b.ScaleDown != nil && b.ScaleDown.StabilizationWindowSeconds != nil {
		spec.window = time.Duration(*b.ScaleDown.StabilizationWindowSeconds) * time.Second
	}
	for _, m := range h.Spec.Metrics {
		if m.External == nil || m.External.Target.AverageValue == nil {
			t.Fatalf("HPA %s/%s: metric %+v is not an external AverageValue", ns, h.Name, m)
		}
		spec.targets[m.External.Metric.Name] = m.External.Target.AverageValue.AsApproximateFloat64()
	}
	return spec
}

// pods is the HPA's metric in pods: the largest of its metrics over their
// targets (NaN when none was read).
func (h hpaSpec) pods(s hpaSync) float64 {
	out := math.NaN()
	for name, v := range s.metrics {
		if p := v / h.targets[name]; !math.IsNaN(p) && (math.IsNaN(out) || p > out) {
			out = p
		}
	}
	return out
}

// replay plays the syncs through the backtest's simulated HPA
// (capacity.HPA, tolerance 0.1 as the controller's default) and returns
// how many left the same count, and a line for each that did not. The
// simulation carries its own count from sync to sync, as in the backtest.
func replay(h hpaSpec, syncs []hpaSync) (same int, diffs []string) {
	if len(syncs) == 0 {
		return 0, nil
	}
	sim := capacity.NewHPA(policy.Capacity{Min: h.min, Max: h.max}, 0.1, h.window, syncs[0].before)
	for _, s := range syncs {
		got := sim.Sync(s.at, h.pods(s))
		if got == s.after {
			same++
			continue
		}
		diffs = append(diffs, fmt.Sprintf("%s: metric %.3f pods, real %d → %d, simulated → %d",
			s.at.Format("15:04:05.000"), h.pods(s), s.before, s.after, got))
	}
	return same, diffs
}
