package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/log/level"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kedastral/kedastral/engine/forecast"
	"github.com/kedastral/kedastral/engine/policy"
)

// Condition types and reasons written into the status.
const (
	ConditionReady    = "Ready"
	ConditionDegraded = "Degraded"

	ReasonForecasting           = "Forecasting"
	ReasonPending               = "Pending"
	ReasonAsExpected            = "AsExpected"
	ReasonValid                 = "Valid"
	ReasonInvalidField          = "InvalidField"
	ReasonInvalidQuery          = "InvalidQuery"
	ReasonDataSourceNotFound    = "DataSourceNotFound"
	ReasonDataSourceUnreachable = "DataSourceUnreachable"
	ReasonQueryFailed           = "QueryFailed"
	ReasonNoData                = "NoData"
	ReasonForecastFailed        = "ForecastFailed"
	ReasonRemoteWriteFailed     = "RemoteWriteFailed"
)

// writeStatuses compares every object's status with what it should say and
// patches the ones that differ from what this source wrote last.
func (s *Source) writeStatuses(ctx context.Context) {
	s.mu.Lock()
	policies, sources := list(s.policyInf), list(s.dsInf)
	invalid, applied, scaledObjects := s.invalid, s.applied, s.scaledObjects
	s.mu.Unlock()

	running := map[string]forecast.PolicyStatus{}
	for _, st := range s.opts.Manager.Status() {
		// The manager also lists invalid policies it does not run, with
		// their load error and no start time.
		if !st.Started.IsZero() {
			running[st.Name] = st
		}
	}
	now := s.opts.Now()
	live := map[string]bool{}
	for _, u := range policies {
		key := policy.KindForecastPolicy + "/" + objKey(u)
		live[key] = true
		if gen, ok := applied[key]; !ok || gen != u.GetGeneration() {
			continue // changed since the last apply; the next one writes it
		}
		st, ok := running[objKey(u)]
		if ok && invalid[key] == nil && st.LastCycle.IsZero() {
			// Started, no cycle yet: after a restart or a change of
			// leader, the status of this generation from before stays
			// until the first cycle, rather than flapping to Unknown.
			if og, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration"); og == u.GetGeneration() {
				continue
			}
		}
		want := PolicyStatus(u.GetGeneration(), invalid[key], st, ok)
		if so, ok := scaledObjects[objKey(u)]; ok {
			want.ScaledObject, want.ScaledObjectError = so.name, so.err
		}
		if !s.write(ctx, u, key, want, now) {
			return
		}
	}
	for _, u := range sources {
		key := policy.KindDataSource + "/" + objKey(u)
		live[key] = true
		if gen, ok := applied[key]; !ok || gen != u.GetGeneration() {
			continue
		}
		want := DataSourceStatus(u.GetGeneration(), invalid[key])
		if !s.write(ctx, u, key, want, now) {
			return
		}
	}
	s.mu.Lock()
	for k := range s.written {
		if !live[k] {
			delete(s.written, k)
		}
	}
	s.mu.Unlock()
}

// write patches u's status to want unless this source wrote the same
// already. It returns false when the API server did not answer, so that a
// round stops at its first such failure instead of logging one per object. Condition transition times are kept while a condition's status
// does not change, and a change of lastEvaluationTime alone waits for
// StatusRefresh.
func (s *Source) write(ctx context.Context, u *unstructured.Unstructured, key string, want any, now time.Time) bool {
	wantMap, err := toMap(want)
	if err != nil {
		return true
	}
	cur, _, _ := unstructured.NestedMap(u.Object, "status")
	s.mu.Lock()
	prev, wrote := s.written[key]
	s.mu.Unlock()
	base := cur
	if wrote && prev.generation == u.GetGeneration() {
		base = prev.status
	}
	keepTransitionTimes(wantMap, base, now)
	if base != nil && equalStatus(base, wantMap) {
		// The server's copy may lag behind the write; what we wrote counts.
		return true
	}
	if wrote && prev.generation == u.GetGeneration() && onlyEvaluationTime(prev.status, wantMap) && now.Sub(prev.at) < s.opts.StatusRefresh {
		return true
	}
	// A merge patch of the whole status: keys absent from want are
	// removed (null), conditions replaced as a list.
	patchStatus := map[string]any{}
	for k := range cur {
		patchStatus[k] = nil
	}
	maps.Copy(patchStatus, wantMap)
	body, err := json.Marshal(map[string]any{"status": patchStatus})
	if err != nil {
		return true
	}
	gvr := PolicyResource
	if u.GetKind() == policy.KindDataSource {
		gvr = DataSourceResource
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = s.client.Resource(gvr).Namespace(u.GetNamespace()).Patch(wctx, u.GetName(), types.MergePatchType, body, metav1.PatchOptions{FieldManager: "kedastral-forecaster"}, "status")
	if err != nil {
		level.Warn(s.logger).Log("msg", "writing status", "object", key, "err", err)
		// An answer (forbidden, not found, invalid) concerns this object;
		// no answer concerns all of them.
		var st apierrors.APIStatus
		return errors.As(err, &st)
	}
	s.mu.Lock()
	s.written[key] = writtenStatus{generation: u.GetGeneration(), status: wantMap, at: now}
	s.mu.Unlock()
	return true
}

func toMap(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

// equalStatus compares two statuses as JSON values (numbers from the server
// are int64, ours float64).
func equalStatus(a, b map[string]any) bool {
	na, err1 := toMap(a)
	nb, err2 := toMap(b)
	return err1 == nil && err2 == nil && reflect.DeepEqual(na, nb)
}

func onlyEvaluationTime(a, b map[string]any) bool {
	ca, cb := maps.Clone(a), maps.Clone(b)
	delete(ca, "lastEvaluationTime")
	delete(cb, "lastEvaluationTime")
	return equalStatus(ca, cb)
}

// keepTransitionTimes sets each condition's lastTransitionTime: the previous
// one while its status is the same, now otherwise.
func keepTransitionTimes(want, prev map[string]any, now time.Time) {
	prevTimes := map[string][2]string{}
	if pc, ok := prev["conditions"].([]any); ok {
		for _, c := range pc {
			if m, ok := c.(map[string]any); ok {
				t, _ := m["type"].(string)
				st, _ := m["status"].(string)
				lt, _ := m["lastTransitionTime"].(string)
				prevTimes[t] = [2]string{st, lt}
			}
		}
	}
	wc, _ := want["conditions"].([]any)
	for _, c := range wc {
		m, ok := c.(map[string]any)
		if !ok {
			continue
		}
		t, _ := m["type"].(string)
		st, _ := m["status"].(string)
		if p, ok := prevTimes[t]; ok && p[0] == st && p[1] != "" {
			m["lastTransitionTime"] = p[1]
		} else {
			m["lastTransitionTime"] = now.UTC().Format(time.RFC3339)
		}
	}
}

// PolicyStatus is the status a ForecastPolicy of generation gen should have:
// loadErr is its validation error (nil when valid), st what the forecast
// loop reports of it (running false when it does not run it).
func PolicyStatus(gen int64, loadErr *policy.Error, st forecast.PolicyStatus, running bool) policy.ForecastPolicyStatus {
	out := policy.ForecastPolicyStatus{ObservedGeneration: gen}
	cond := func(typ string, ok bool, reason, msg string) policy.Condition {
		status := "False"
		if ok {
			status = "True"
		}
		return policy.Condition{Type: typ, Status: status, ObservedGeneration: gen, Reason: reason, Message: msg}
	}
	if loadErr != nil {
		reason := invalidReason(loadErr)
		msg := loadErrMessage(loadErr)
		if running {
			// The previous valid version keeps running (Manager.Apply).
			msg += "; the previous valid version keeps running"
			out.Conditions = []policy.Condition{cond(ConditionReady, false, reason, msg), cond(ConditionDegraded, true, reason, msg)}
			fillRun(&out, st)
		} else {
			out.Conditions = []policy.Condition{cond(ConditionReady, false, reason, msg), cond(ConditionDegraded, false, reason, "not running: "+msg)}
		}
		return out
	}
	if !running {
		msg := "waiting for the forecaster to start the policy"
		out.Conditions = []policy.Condition{
			{Type: ConditionReady, Status: "Unknown", ObservedGeneration: gen, Reason: ReasonPending, Message: msg},
			cond(ConditionDegraded, false, ReasonPending, msg),
		}
		return out
	}
	fillRun(&out, st)
	switch {
	case st.LastError != "":
		reason := runReason(st.LastError)
		out.Conditions = []policy.Condition{cond(ConditionReady, false, reason, st.LastError), cond(ConditionDegraded, true, reason, st.LastError)}
	case st.LastSuccess.IsZero():
		msg := "waiting for the first cycle"
		out.Conditions = []policy.Condition{
			{Type: ConditionReady, Status: "Unknown", ObservedGeneration: gen, Reason: ReasonPending, Message: msg},
			cond(ConditionDegraded, false, ReasonPending, msg),
		}
	default:
		msg := fmt.Sprintf("%d series forecast and written", st.SeriesCount)
		out.Conditions = []policy.Condition{cond(ConditionReady, true, ReasonForecasting, msg), cond(ConditionDegraded, false, ReasonAsExpected, msg)}
	}
	return out
}

func fillRun(out *policy.ForecastPolicyStatus, st forecast.PolicyStatus) {
	if !st.LastCycle.IsZero() {
		out.LastEvaluationTime = st.LastCycle.UTC().Format(time.RFC3339)
	}
	if st.LastSuccess.IsZero() {
		out.Model = st.Model
		return
	}
	out.SeriesCount = int32(st.SeriesCount)
	lo, hi := st.DesiredRange[0], st.DesiredRange[1]
	if len(st.Models) > 0 {
		out.DesiredReplicasMin, out.DesiredReplicasMax = &lo, &hi
		if lo == hi {
			out.DesiredReplicas = strconv.Itoa(int(lo))
		} else {
			out.DesiredReplicas = fmt.Sprintf("%d-%d", lo, hi)
		}
	}
	switch len(st.Models) {
	case 0:
		out.Model = st.Model
	case 1:
		for m := range st.Models {
			out.Model = m
		}
	default:
		var parts []string
		for _, m := range slices.Sorted(maps.Keys(st.Models)) {
			parts = append(parts, fmt.Sprintf("%s: %d", m, st.Models[m]))
		}
		out.Model = strings.Join(parts, ", ")
	}
}

// DataSourceStatus is the status a DataSource of generation gen should have.
func DataSourceStatus(gen int64, loadErr *policy.Error) policy.DataSourceStatus {
	out := policy.DataSourceStatus{ObservedGeneration: gen}
	if loadErr != nil {
		out.Conditions = []policy.Condition{{Type: ConditionReady, Status: "False", ObservedGeneration: gen,
			Reason: invalidReason(loadErr), Message: loadErrMessage(loadErr)}}
		return out
	}
	out.Conditions = []policy.Condition{{Type: ConditionReady, Status: "True", ObservedGeneration: gen,
		Reason: ReasonValid, Message: "valid; policies that name it query it"}}
	return out
}

func loadErrMessage(e *policy.Error) string {
	if e.Field != "" {
		return e.Field + ": " + e.Err.Error()
	}
	return e.Err.Error()
}

func invalidReason(e *policy.Error) string {
	switch {
	case strings.HasPrefix(e.Field, "spec.dataSourceRef"):
		return ReasonDataSourceNotFound
	case strings.Contains(e.Err.Error(), "PromQL"):
		return ReasonInvalidQuery
	default:
		return ReasonInvalidField
	}
}

// runReason classifies a cycle's error (forecast.PolicyStatus.LastError).
func runReason(msg string) string {
	switch {
	case strings.HasPrefix(msg, "query:") && (strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host") ||
		strings.Contains(msg, "dial tcp") || strings.Contains(msg, "i/o timeout") || strings.Contains(msg, "context deadline exceeded")):
		return ReasonDataSourceUnreachable
	case strings.HasPrefix(msg, "query:"):
		return ReasonQueryFailed
	case strings.HasPrefix(msg, "remote write:"):
		return ReasonRemoteWriteFailed
	case strings.Contains(msg, "returned no series"):
		return ReasonNoData
	default:
		return ReasonForecastFailed
	}
}
