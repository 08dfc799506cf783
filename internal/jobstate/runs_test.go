package jobstate_test

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobstate"
)

var t0 = time.Date(2026, 3, 10, 2, 30, 0, 0, time.UTC)

func ref(id string) events.TriggerRef {
	return events.TriggerRef{ID: id, Kind: events.KindManual, RequestedBy: id + "@firm", Reason: "because " + id, At: t0}
}

func queued(runID string, at time.Time, triggers ...string) *jobstate.RunInfo {
	ri := &jobstate.RunInfo{RunID: runID, Trigger: events.KindManual, QueuedAt: at, Scope: events.ScopeAll(), SeriesAttempt: 1, SeriesStart: at}
	for _, id := range triggers {
		ri.Triggers = append(ri.Triggers, ref(id))
	}
	if len(triggers) > 0 {
		first := ref(triggers[0])
		ri.RequestedBy, ri.Reason = first.RequestedBy, first.Reason
	}
	return ri
}

func running(runID string, started time.Time, seq uint64) *jobstate.RunInfo {
	ri := queued(runID, started.Add(-time.Second), "t-"+runID)
	ri.StartedAt, ri.HeartbeatAt, ri.Attempt, ri.OrderSeq = started, started, 1, seq
	return ri
}

func answers(pairs ...string) []jobstate.Answer {
	var a []jobstate.Answer
	for i := 0; i+1 < len(pairs); i += 2 {
		a = append(a, jobstate.Answer{TriggerID: pairs[i], RunID: pairs[i+1]})
	}
	return a
}

func TestJoin(t *testing.T) {
	full := queued("q", t0.Add(-time.Minute))
	for i := range jobstate.MaxTriggersPerRun {
		full.Triggers = append(full.Triggers, ref(fmt.Sprint("old", i)))
	}
	for _, c := range []struct {
		name        string
		before      jobstate.Runs
		trigger     string
		want        jobstate.Joined
		wantNext    *jobstate.RunInfo
		wantRecent  []jobstate.Answer
		wantTrigger int // triggers the queued run remembers afterwards
	}{
		{
			name:     "idle: a new run is queued and its order sent",
			trigger:  "a",
			want:     jobstate.Joined{RunID: "new", Created: true, Send: true, Queued: queued("new", t0, "a")},
			wantNext: queued("new", t0, "a"), wantRecent: answers("a", "new"),
		},
		{
			name:     "a run in progress and none queued: a new run is queued behind it",
			before:   jobstate.Runs{Current: running("cur", t0.Add(-time.Minute), 7)},
			trigger:  "a",
			want:     jobstate.Joined{RunID: "new", Created: true, Send: true, Queued: queued("new", t0, "a")},
			wantNext: queued("new", t0, "a"), wantRecent: answers("a", "new"),
		},
		{
			name:     "a run queued: the trigger joins it, no order is sent",
			before:   jobstate.Runs{Next: queued("q", t0.Add(-time.Second), "a"), Recent: answers("a", "q")},
			trigger:  "b",
			want:     jobstate.Joined{RunID: "q", Queued: queued("q", t0.Add(-time.Second), "a", "b")},
			wantNext: queued("q", t0.Add(-time.Second), "a", "b"), wantRecent: answers("a", "q", "b", "q"),
		},
		{
			name:     "a run queued with its list of triggers full: still joined, not listed",
			before:   jobstate.Runs{Next: full},
			trigger:  "b",
			want:     jobstate.Joined{RunID: "q", Queued: full},
			wantNext: full, wantRecent: answers("b", "q"),
		},
		{
			name:     "a redelivered trigger whose run still waits: same answer, order sent again",
			before:   jobstate.Runs{Next: queued("q", t0.Add(-time.Second), "a"), Recent: answers("a", "q")},
			trigger:  "a",
			want:     jobstate.Joined{RunID: "q", Again: true, Send: true, Queued: queued("q", t0.Add(-time.Second), "a")},
			wantNext: queued("q", t0.Add(-time.Second), "a"), wantRecent: answers("a", "q"),
		},
		{
			name:       "a redelivered trigger whose run has started: same answer, nothing sent",
			before:     jobstate.Runs{Current: running("q", t0.Add(-time.Second), 9), Recent: answers("a", "q")},
			trigger:    "a",
			want:       jobstate.Joined{RunID: "q", Again: true},
			wantRecent: answers("a", "q"),
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := c.before
			got := r.Join(ref(c.trigger), events.ScopeAll(), "new", t0)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("Join = %+v\nwant   %+v", got, c.want)
			}
			if got.Coalesced() == got.Created {
				t.Errorf("Coalesced() = %v with Created %v; a trigger either starts its run or joins one", got.Coalesced(), got.Created)
			}
			if !reflect.DeepEqual(r.Next, c.wantNext) {
				t.Errorf("next = %+v\nwant   %+v", r.Next, c.wantNext)
			}
			if !reflect.DeepEqual(r.Recent, c.wantRecent) {
				t.Errorf("recent = %+v, want %+v", r.Recent, c.wantRecent)
			}
			if !reflect.DeepEqual(r.Current, c.before.Current) {
				t.Errorf("Join changed the current run: %+v", r.Current)
			}
		})
	}
}

// Triggers from different firms coalesce into one run for all of them: a firm's Run
// Now that joins another firm's queued run widens it (and is not "coalesced": the run
// was not going to do its work), one that joins a run already covering its firm is.
func TestJoinUnionsTheFirms(t *testing.T) {
	var r jobstate.Runs
	a := r.Join(ref("a"), events.ScopeTenant("mehta"), "run", t0)
	if !a.Created || r.Next.Scope.All || !reflect.DeepEqual(r.Next.Scope.Tenants, []string{"mehta"}) {
		t.Fatalf("Mehta's Run Now: %+v, scope %+v; want a new run for Mehta", a, r.Next.Scope)
	}
	b := r.Join(ref("b"), events.ScopeTenant("iyer"), "other", t0)
	if b.RunID != "run" || !b.Widened || b.Coalesced() || !reflect.DeepEqual(r.Next.Scope.Tenants, []string{"iyer", "mehta"}) {
		t.Errorf("Iyer's Run Now joining it: %+v, scope %+v; want the same run, widened to both firms", b, r.Next.Scope)
	}
	c := r.Join(ref("c"), events.ScopeTenant("mehta"), "other", t0)
	if c.Widened || !c.Coalesced() {
		t.Errorf("Mehta again: %+v; want coalesced into the run that covers Mehta already", c)
	}
	d := r.Join(ref("d"), events.ScopeAll(), "other", t0)
	if !d.Widened || !r.Next.Scope.All {
		t.Errorf("a schedule slot joining: %+v, scope %+v; want the run widened to every firm", d, r.Next.Scope)
	}
	if e := r.Join(ref("e"), events.ScopeTenant("pillai"), "other", t0); !e.Coalesced() {
		t.Errorf("a firm joining a run for every firm: %+v; want coalesced", e)
	}
}

func TestRecentIsBounded(t *testing.T) {
	var r jobstate.Runs
	for i := range jobstate.MaxRecent + 10 {
		r.Join(ref(fmt.Sprint("t", i)), events.ScopeAll(), "run", t0)
	}
	if len(r.Recent) != jobstate.MaxRecent || r.Recent[0].TriggerID != "t10" {
		t.Fatalf("recent holds %d answers from %s; want the newest %d", len(r.Recent), r.Recent[0].TriggerID, jobstate.MaxRecent)
	}
}

func TestClaim(t *testing.T) {
	now := t0.Add(time.Minute)
	legacy := running("cur", t0, 0) // written before order_seq existed
	for _, c := range []struct {
		name    string
		before  jobstate.Runs
		order   jobstate.Order
		attempt int
		want    jobstate.Verdict
		after   jobstate.Runs
	}{
		{
			name:   "the queued run's order: it starts",
			before: jobstate.Runs{Next: queued("x", t0, "a")},
			order:  jobstate.Order{RunID: "x", Seq: 11}, attempt: 1, want: jobstate.Start,
			after: jobstate.Runs{Current: started(queued("x", t0, "a"), now, 1, 11)},
		},
		{
			name:   "the queued run's order while a forgotten current run is recorded: it starts in its place",
			before: jobstate.Runs{Current: running("old", t0, 3), Next: queued("x", t0, "a")},
			order:  jobstate.Order{RunID: "x", Seq: 11}, attempt: 1, want: jobstate.Start,
			after: jobstate.Runs{Current: started(queued("x", t0, "a"), now, 1, 11)},
		},
		{
			name:   "a redelivery of the current run's order: it runs again",
			before: jobstate.Runs{Current: running("x", t0, 11), Next: queued("y", t0, "b")},
			order:  jobstate.Order{RunID: "x", Seq: 11}, attempt: 2, want: jobstate.Resume,
			after: jobstate.Runs{Current: beat(running("x", t0, 11), now, 2), Next: queued("y", t0, "b")},
		},
		{
			name:   "a redelivery for a current run recorded without its order: it runs again",
			before: jobstate.Runs{Current: legacy},
			order:  jobstate.Order{RunID: "cur", Seq: 5}, attempt: 2, want: jobstate.Resume,
			after: jobstate.Runs{Current: withSeq(beat(running("cur", t0, 0), now, 2), 5)},
		},
		{
			name:   "another message for the current run (re-sent after the dedupe window): dropped",
			before: jobstate.Runs{Current: running("x", t0, 11)},
			order:  jobstate.Order{RunID: "x", Seq: 12}, attempt: 1, want: jobstate.Drop,
			after: jobstate.Runs{Current: running("x", t0, 11)},
		},
		{
			name:   "an order for a run that finished: dropped",
			before: jobstate.Runs{},
			order:  jobstate.Order{RunID: "x", Seq: 12}, attempt: 1, want: jobstate.Drop,
		},
		{
			name:   "an order for a run that is neither queued nor current: dropped, the queued one untouched",
			before: jobstate.Runs{Next: queued("y", t0, "b")},
			order:  jobstate.Order{RunID: "x", Seq: 12}, attempt: 3, want: jobstate.Drop,
			after: jobstate.Runs{Next: queued("y", t0, "b")},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := c.before
			got := r.Claim(c.order, c.attempt, now)
			if got.Verdict != c.want {
				t.Fatalf("Claim = %v, want %v", got.Verdict, c.want)
			}
			if !reflect.DeepEqual(r, c.after) {
				t.Errorf("record after Claim = %+v\nwant %+v", r, c.after)
			}
			switch {
			case got.Verdict == jobstate.Drop && !reflect.DeepEqual(got.Run, jobstate.RunInfo{}):
				t.Errorf("a dropped order names run %+v; it must name none", got.Run)
			case got.Verdict != jobstate.Drop && !reflect.DeepEqual(&got.Run, r.Current):
				t.Errorf("claimed run %+v is not the current run %+v", got.Run, r.Current)
			}
		})
	}
}

func started(ri *jobstate.RunInfo, at time.Time, attempt int, seq uint64) *jobstate.RunInfo {
	ri.StartedAt, ri.HeartbeatAt, ri.Attempt, ri.OrderSeq = at, at, attempt, seq
	return ri
}

func beat(ri *jobstate.RunInfo, at time.Time, attempt int) *jobstate.RunInfo {
	ri.HeartbeatAt, ri.Attempt = at, attempt
	return ri
}

func withSeq(ri *jobstate.RunInfo, seq uint64) *jobstate.RunInfo {
	ri.OrderSeq = seq
	return ri
}

func TestBeatAndFinish(t *testing.T) {
	now := t0.Add(time.Minute)
	r := jobstate.Runs{Current: running("x", t0, 1), Next: queued("y", t0, "b")}
	if r.Beat("other", now) || r.Finish("other", nil) {
		t.Fatal("a run that is not current must be neither beaten nor finished")
	}
	if !r.Beat("x", now) || !r.Current.HeartbeatAt.Equal(now) {
		t.Fatalf("Beat of the current run: heartbeat %v, want %v", r.Current.HeartbeatAt, now)
	}
	if !r.Finish("x", nil) || r.Current != nil || r.Next == nil || r.Next.RunID != "y" {
		t.Fatalf("Finish of the current run: %+v; want no current run and y still queued", r)
	}
	if r.Finish("x", nil) || r.Beat("x", now) {
		t.Fatal("a finished run must not be finished or beaten again")
	}
}

func TestNeedsResend(t *testing.T) {
	const after, silent = 10 * time.Second, time.Minute
	now := t0.Add(time.Hour)
	for _, c := range []struct {
		name string
		r    jobstate.Runs
		want string // run whose order must be re-sent, "" for none
	}{
		{"idle", jobstate.Runs{}, ""},
		{"a run in progress, none queued", jobstate.Runs{Current: running("x", now.Add(-time.Hour), 1)}, ""},
		{"queued just now", jobstate.Runs{Next: queued("y", now.Add(-after+time.Millisecond))}, ""},
		{"queued long enough with nothing running: its order is lost", jobstate.Runs{Next: queued("y", now.Add(-after))}, "y"},
		{"queued long ago behind a run that beats", jobstate.Runs{
			Current: beat(running("x", now.Add(-time.Hour), 1), now.Add(-silent+time.Second), 1), Next: queued("y", now.Add(-30*time.Minute))}, ""},
		{"queued long ago behind a run just started", jobstate.Runs{
			Current: running("x", now.Add(-time.Second), 1), Next: queued("y", now.Add(-30*time.Minute))}, ""},
		{"queued behind a run whose executor is silent", jobstate.Runs{
			Current: running("x", now.Add(-silent), 1), Next: queued("y", now.Add(-30*time.Minute))}, "y"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := c.r
			got, ok := c.r.NeedsResend(now, after, silent)
			if ok != (c.want != "") || got.RunID != c.want {
				t.Errorf("NeedsResend = %q, %v; want %q", got.RunID, ok, c.want)
			}
			if !reflect.DeepEqual(before, c.r) {
				t.Error("NeedsResend changed the record")
			}
		})
	}
}

// A run that failed for a temporary reason waits as a Retry: when it is due it is
// queued as a run of the same series (StartRetry); a trigger meanwhile starts it at
// once instead of adding a run (Join); and a run already queued when it is due becomes
// the retry, so the failure is retried once, not twice.
func TestRetries(t *testing.T) {
	rt := &jobstate.Retry{Of: "first", Attempt: 2, MaxAttempts: 4, At: t0.Add(time.Minute), SeriesStart: t0,
		Trigger: events.KindSchedule, Triggers: []events.TriggerRef{{ID: "slot", Kind: events.KindSchedule}}, Scope: events.ScopeAll()}

	r := jobstate.Runs{Current: running("first", t0, 1)}
	if !r.Finish("first", rt) || r.Retry == nil || r.Retry.Attempt != 2 {
		t.Fatalf("Finish with a retry: %+v", r)
	}
	if _, ok := r.StartRetry(t0.Add(30*time.Second), "second"); ok || r.Next != nil {
		t.Fatalf("a retry started before its time: %+v", r)
	}
	q, ok := r.StartRetry(t0.Add(time.Minute), "second")
	if !ok || r.Retry != nil || r.Next == nil || q.RunID != "second" || q.RetryOf != "first" || q.SeriesAttempt != 2 ||
		q.Trigger != events.KindRetry || !q.SeriesStart.Equal(t0) || !q.Scope.All {
		t.Fatalf("the due retry: %+v, runs %+v; want run second, retry 2 of first's series, for every firm", q, r)
	}

	r = jobstate.Runs{Retry: rt}
	j := r.Join(ref("run-now"), events.ScopeTenant("mehta"), "joined", t0.Add(10*time.Second))
	if !j.Retry || !j.Created || r.Retry != nil || r.Next.RetryOf != "first" || r.Next.SeriesAttempt != 2 || len(r.Next.Triggers) != 2 || !r.Next.Scope.All {
		t.Fatalf("Run Now while a retry waits: %+v, next %+v; want it to start the retry now, with both triggers", j, r.Next)
	}

	r = jobstate.Runs{Retry: rt, Next: queued("slot-run", t0.Add(time.Minute), "slot")}
	if _, ok := r.StartRetry(t0.Add(2*time.Minute), "third"); ok || r.Retry != nil || r.Next.RunID != "slot-run" || r.Next.RetryOf != "first" || r.Next.SeriesAttempt != 2 {
		t.Fatalf("a retry due with a run queued: %+v; want the queued run to be the retry", r.Next)
	}

	// A Run Now that arrived while the failing run was still current is queued behind
	// it; when the run fails, that queued run is the retry (not a second run besides it).
	r = jobstate.Runs{Current: running("first", t0, 1), Next: queued("run-now", t0.Add(time.Second), "run-now")}
	if !r.Finish("first", rt) || r.Retry != nil || r.Next.RunID != "run-now" || r.Next.RetryOf != "first" || r.Next.SeriesAttempt != 2 ||
		len(r.Next.Triggers) != 2 || !r.Next.Scope.All {
		t.Fatalf("a failure with a run queued behind it: retry %+v, next %+v; want the queued run to be attempt 2 with both triggers, for every firm", r.Retry, r.Next)
	}
}
