package policy

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	// Time zones of events must resolve the same way in every binary and
	// image, with or without the system's zoneinfo.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"
)

// cronParser reads the 5-field cron syntax of KEDA's cron scaler (the same
// library and fields), without descriptors such as @daily or @every.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// Limits of the overlap check between recurring events.
const (
	// overlapCheckSpan is how far ahead recurring events are compared.
	overlapCheckSpan = 366 * 24 * time.Hour
	// maxCheckedWindows bounds the windows listed per event for the check.
	maxCheckedWindows = 20_000
	// maxWindows bounds the windows Windows returns for one range.
	maxWindows = 10_000
)

// timeNow is the clock of validation (the overlap check of recurring events
// starts now); tests replace it.
var timeNow = time.Now

// Window is one occurrence of an event: [Start, End).
type Window struct {
	Start, End time.Time
}

// CompiledEvent is a validated event that lists its windows.
type CompiledEvent struct {
	Event
	start, end time.Time // an absolute event's window
	sched      cron.Schedule
	dur        time.Duration
}

// Recurring tells whether the event has a schedule.
func (e *CompiledEvent) Recurring() bool { return e.sched != nil }

// Windows returns the event's windows that overlap [from, to), in order.
func (e *CompiledEvent) Windows(from, to time.Time) []Window {
	if e.sched == nil {
		if e.start.Before(to) && e.end.After(from) {
			return []Window{{e.start, e.end}}
		}
		return nil
	}
	return e.windows(from, to, maxWindows)
}

func (e *CompiledEvent) windows(from, to time.Time, limit int) []Window {
	var out []Window
	// Next returns the first activation strictly after its argument: the
	// first window that ends after from.
	for a := e.sched.Next(from.Add(-e.dur)); !a.IsZero() && a.Before(to) && len(out) < limit; a = e.sched.Next(a) {
		out = append(out, Window{a.UTC(), a.Add(e.dur).UTC()})
	}
	return out
}

// Effect is what the event does: "minReplicas 10" or "scale 2".
func (e *CompiledEvent) Effect() string {
	if e.MinReplicas != nil {
		return fmt.Sprintf("minReplicas %d", *e.MinReplicas)
	}
	return fmt.Sprintf("scale %v", *e.Scale)
}

// CompileEvents compiles the events of a validated policy.
func CompileEvents(events []Event) ([]*CompiledEvent, error) {
	out := make([]*CompiledEvent, 0, len(events))
	for i, ev := range events {
		c, err := compileEvent(ev, fmt.Sprintf("spec.events[%d]", i))
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func compileEvent(ev Event, f string) (*CompiledEvent, error) {
	c := &CompiledEvent{Event: ev}
	switch {
	case ev.Schedule != "" && (ev.Start != "" || ev.End != ""):
		return nil, fieldErr(f, "set either start and end, or schedule and duration, not both")
	case ev.Schedule != "":
		if ev.Duration <= 0 {
			return nil, fieldErr(f+".duration", "must be positive with a schedule, got %s", ev.Duration)
		}
		if u := strings.ToUpper(strings.TrimSpace(ev.Schedule)); strings.HasPrefix(u, "TZ=") || strings.HasPrefix(u, "CRON_TZ=") {
			return nil, fieldErr(f+".schedule", "set the time zone with timeZone, not in the schedule")
		}
		tz := ev.TimeZone
		if tz == "" {
			tz = "UTC"
		}
		loc, err := time.LoadLocation(tz)
		if err != nil {
			return nil, fieldErr(f+".timeZone", "unknown time zone %q", ev.TimeZone)
		}
		sched, err := cronParser.Parse(ev.Schedule)
		if err != nil {
			return nil, fieldErr(f+".schedule", "invalid cron schedule %q (minute hour day-of-month month day-of-week): %v", ev.Schedule, err)
		}
		if ss, ok := sched.(*cron.SpecSchedule); ok {
			ss.Location = loc
		}
		c.sched, c.dur = sched, time.Duration(ev.Duration)
		if c.sched.Next(timeNow()).IsZero() {
			return nil, fieldErr(f+".schedule", "%q never fires", ev.Schedule)
		}
	case ev.Start != "" || ev.End != "":
		if ev.Duration != 0 || ev.TimeZone != "" {
			return nil, fieldErr(f, "duration and timeZone go with schedule; an absolute window has start and end (RFC 3339, with its offset)")
		}
		var err error
		if c.start, err = time.Parse(time.RFC3339, ev.Start); err != nil {
			return nil, fieldErr(f+".start", "must be an RFC 3339 time such as 2026-11-27T00:00:00Z, got %q", ev.Start)
		}
		if c.end, err = time.Parse(time.RFC3339, ev.End); err != nil {
			return nil, fieldErr(f+".end", "must be an RFC 3339 time such as 2026-11-28T00:00:00Z, got %q", ev.End)
		}
		if !c.end.After(c.start) {
			return nil, fieldErr(f+".end", "%s is not after start %s", ev.End, ev.Start)
		}
		c.start, c.end = c.start.UTC(), c.end.UTC()
	default:
		return nil, fieldErr(f, "needs a window: start and end, or schedule and duration")
	}
	return c, nil
}

func validateEvents(s *ForecastPolicySpec) error {
	if len(s.Events) > MaxEvents {
		return fieldErr("spec.events", "at most %d events, got %d", MaxEvents, len(s.Events))
	}
	var v fieldErrs
	compiled := make([]*CompiledEvent, 0, len(s.Events))
	at := make([]int, 0, len(s.Events)) // index of each compiled event
	for i, ev := range s.Events {
		f := fmt.Sprintf("spec.events[%d]", i)
		n := len(v.list)
		if ev.Name == "" {
			v.add(f+".name", "is required")
		}
		for j := range i {
			if ev.Name != "" && s.Events[j].Name == ev.Name {
				v.add(f+".name", "duplicate event name %q (also spec.events[%d])", ev.Name, j)
				break
			}
		}
		switch {
		case (ev.MinReplicas == nil) == (ev.Scale == nil):
			v.add(f, "set exactly one of minReplicas and scale")
		case ev.MinReplicas != nil && (*ev.MinReplicas < 1 || *ev.MinReplicas > s.Capacity.Max):
			v.add(f+".minReplicas", "must be in [1, spec.capacity.max=%d], got %d", s.Capacity.Max, *ev.MinReplicas)
		case ev.Scale != nil && (!finite(*ev.Scale) || *ev.Scale <= 0 || *ev.Scale > 100):
			v.add(f+".scale", "must be in (0, 100], got %v", *ev.Scale)
		}
		c, err := compileEvent(ev, f)
		if err != nil {
			v.addErr(f, err)
			continue
		}
		if len(v.list) == n {
			compiled = append(compiled, c)
			at = append(at, i)
		}
	}
	for j := range compiled {
		for i := range j {
			if err := contradiction(compiled[i], compiled[j]); err != nil {
				v.addErr(fmt.Sprintf("spec.events[%d]", at[j]), err)
				break
			}
		}
	}
	return v.err()
}

// contradiction reports two events that set the same thing (a floor, or a
// multiplier) to different values over a common time. A floor and a
// multiplier compose (the floor applies to the scaled forecast), and equal
// settings agree.
func contradiction(a, b *CompiledEvent) error {
	var what string
	switch {
	case a.MinReplicas != nil && b.MinReplicas != nil && *a.MinReplicas != *b.MinReplicas:
		what = fmt.Sprintf("minReplicas %d and %d", *a.MinReplicas, *b.MinReplicas)
	case a.Scale != nil && b.Scale != nil && math.Abs(*a.Scale-*b.Scale) > 1e-12:
		what = fmt.Sprintf("scale %v and %v", *a.Scale, *b.Scale)
	default:
		return nil
	}
	w, ok := firstOverlap(a, b)
	if !ok {
		return nil
	}
	return fmt.Errorf("event %q overlaps event %q (both active from %s to %s) with contradictory %s: separate their windows or give them the same value",
		b.Name, a.Name, w.Start.Format(time.RFC3339), w.End.Format(time.RFC3339), what)
}

// firstOverlap finds the first time both events are active: over the
// absolute window when one is absolute, else over the next year.
func firstOverlap(a, b *CompiledEvent) (Window, bool) {
	from := timeNow().UTC()
	to := from.Add(overlapCheckSpan)
	if !a.Recurring() {
		from, to = a.start, a.end
	} else if !b.Recurring() {
		from, to = b.start, b.end
	}
	list := func(e *CompiledEvent) []Window {
		if !e.Recurring() {
			return e.Windows(from, to)
		}
		return e.windows(from, to, maxCheckedWindows)
	}
	wa, wb := list(a), list(b)
	i, j := 0, 0
	for i < len(wa) && j < len(wb) {
		s := maxTime(wa[i].Start, wb[j].Start)
		e := minTime(wa[i].End, wb[j].End)
		if s.Before(e) {
			return Window{s, e}, true
		}
		if wa[i].End.Before(wb[j].End) {
			i++
		} else {
			j++
		}
	}
	return Window{}, false
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// ActiveEvent is an event that applies at some time: its window, and
// whether it has opened or is only being prepared for (within the lead time
// before it opens).
type ActiveEvent struct {
	Event  *CompiledEvent
	Window Window
	Open   bool
}

// ActiveAt returns the events that apply at t: those whose window contains
// t, or opens within lead after t.
func ActiveAt(events []*CompiledEvent, t time.Time, lead time.Duration) []ActiveEvent {
	var out []ActiveEvent
	for _, e := range events {
		ws := e.Windows(t, t.Add(lead).Add(time.Nanosecond))
		if len(ws) == 0 {
			continue
		}
		w := ws[0]
		out = append(out, ActiveEvent{Event: e, Window: w, Open: !w.Start.After(t)})
	}
	slices.SortFunc(out, func(a, b ActiveEvent) int { return a.Window.Start.Compare(b.Window.Start) })
	return out
}
