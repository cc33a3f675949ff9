package scaler

import (
	"fmt"
	"testing"
	"time"

	pb "github.com/kedastral/kedastral/proto"
)

// TestAnswerLogBounded records more ScaledObjects than the log keeps: the
// ones answered longest ago go, and a repeated one counts its answers.
func TestAnswerLogBounded(t *testing.T) {
	l := newAnswerLog()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tr := &trigger{name: "kedastral-api", m: Metadata{Policy: "api"}}
	for i := range maxAnswerLog + 5 {
		ref := &pb.ScaledObjectRef{Name: fmt.Sprintf("so-%d", i), Namespace: "ns"}
		l.record(ref, tr, "GetMetrics", decision{Replicas: 3, Source: SourceForecast, Forecast: true, Age: time.Second}, nil, t0.Add(time.Duration(i)*time.Second))
	}
	last := &pb.ScaledObjectRef{Name: fmt.Sprintf("so-%d", maxAnswerLog+4), Namespace: "ns"}
	l.record(last, tr, "IsActive", decision{}, &unavailableError{msg: "stale"}, t0.Add(time.Hour))
	if len(l.last) != maxAnswerLog {
		t.Fatalf("%d answers kept, want %d", len(l.last), maxAnswerLog)
	}
	for i := range 5 {
		if _, ok := l.last[fmt.Sprintf("ns/so-%d/kedastral-api", i)]; ok {
			t.Errorf("so-%d, among the oldest, is still kept", i)
		}
	}
	a := l.last[fmt.Sprintf("ns/so-%d/kedastral-api", maxAnswerLog+4)]
	if a == nil || a.Answers != 2 || a.Source != "error" || a.Error != "Unavailable: stale" || a.ForecastAgeSeconds != nil || a.Method != "IsActive" {
		t.Errorf("last answer %+v", a)
	}
}
