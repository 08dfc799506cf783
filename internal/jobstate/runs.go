package jobstate

import (
	"time"

	"github.com/lexhq/gstjobs/internal/events"
)

// The transitions of a job's runs record. Each is a pure function of the record (and
// of what it is given): it changes the record in place and returns what it decided. The
// worker applies them with Decide, so that each decision is checked by a
// compare-and-set, and does only the publishing and acking around them.

// Joined is what Join decided for one schedule slot or trigger.
type Joined struct {
	// RunID is the run that answers the trigger.
	RunID string
	// Created: the trigger queued a new run. Otherwise it joined the run already queued,
	// or it had been answered before (Again).
	Created bool
	// Again: the trigger was answered before (it is a redelivery) and gets the same answer.
	Again bool
	// Queued is the answering run as it waits to start; nil if it has started since.
	Queued *RunInfo
	// Send: the run order must be sent, because the run is new, or because the trigger is
	// a redelivery whose first delivery may have died before sending it. Sending it twice
	// is harmless (same message id, and Claim drops what it must not run).
	Send bool
	// Widened: the trigger joined the queued run and added firms to it (a firm's Run Now
	// joining another firm's queued run); the run was not already going to do its work.
	Widened bool
	// Retry: the trigger started the retry that was waiting for its time.
	Retry bool
}

// Coalesced reports a trigger whose work the run answering it was already going to
// do: it neither started the run nor widened it.
func (j Joined) Coalesced() bool { return !j.Created && !j.Widened }

// Join answers a trigger for scope with the run it starts or joins: the run it was given
// before if it is a redelivery; else the run already queued, if any (coalescing: the
// run's scope becomes the union of both, and at most MaxTriggersPerRun triggers are
// remembered by name); else a new run newID for scope, queued at now.
func (r *Runs) Join(ref events.TriggerRef, scope events.Scope, newID string, now time.Time) Joined {
	if id, ok := r.AnswerFor(ref.ID); ok {
		j := Joined{RunID: id, Again: true}
		if r.Next != nil && r.Next.RunID == id {
			q := *r.Next
			j.Queued, j.Send = &q, true
		}
		return j
	}
	var j Joined
	if r.Next == nil && r.Retry != nil {
		// A trigger while a retry waits joins the retry, which starts now instead of
		// adding a run.
		info := r.Retry.run(newID, now)
		info.Scope = info.Scope.Union(scope)
		if len(info.Triggers) < MaxTriggersPerRun {
			info.Triggers = append(info.Triggers, ref)
		}
		r.Next, r.Retry = &info, nil
		r.Remember(ref.ID, newID)
		q := *r.Next
		return Joined{RunID: newID, Created: true, Send: true, Queued: &q, Retry: true}
	}
	if r.Next != nil {
		j.RunID = r.Next.RunID
		j.Widened = !r.Next.Scope.Includes(scope)
		r.Next.Scope = r.Next.Scope.Union(scope)
		if len(r.Next.Triggers) < MaxTriggersPerRun {
			r.Next.Triggers = append(r.Next.Triggers, ref)
		}
	} else {
		r.Next = &RunInfo{
			RunID: newID, Trigger: ref.Kind, RequestedBy: ref.RequestedBy, Reason: ref.Reason,
			Slot: ref.Slot, QueuedAt: now, Triggers: []events.TriggerRef{ref}, Scope: scope,
			SeriesAttempt: 1, SeriesStart: now,
		}
		j.RunID, j.Created, j.Send = newID, true, true
	}
	r.Remember(ref.ID, j.RunID)
	q := *r.Next
	j.Queued = &q
	return j
}

// Order is one delivery of a run order: the run it asks for, and the stream sequence of
// the message, which tells a redelivery of the order a run was started with (same
// sequence) from another message for the same run (a re-sent order, stored again once
// the stream's dedupe window had passed).
type Order struct {
	RunID string
	Seq   uint64
}

// Verdict is what an executor does with a run order.
type Verdict int

const (
	// Drop: the order's run is neither queued nor current under this order, so the
	// order is a duplicate: ack it and run nothing.
	Drop Verdict = iota
	// Start: the run was queued; it is now the current run.
	Start
	// Resume: the order is a redelivery of the one the current run started with (its
	// executor stopped or died); run it again.
	Resume
)

func (v Verdict) String() string {
	switch v {
	case Start:
		return "start"
	case Resume:
		return "resume"
	default:
		return "drop"
	}
}

// Claimed is what Claim decided.
type Claimed struct {
	Verdict Verdict
	// Run is the run to execute as now recorded (started, heartbeat, attempt); zero on Drop.
	Run RunInfo
}

// Claim decides what to do with one delivery (attempt, counted by JetStream) of a run
// order: start the queued run it names, resume the current run it started, or drop it.
func (r *Runs) Claim(o Order, attempt int, now time.Time) Claimed {
	switch {
	case r.Next != nil && r.Next.RunID == o.RunID:
		info := *r.Next
		info.StartedAt, info.HeartbeatAt, info.Attempt, info.OrderSeq = now, now, attempt, o.Seq
		r.Current, r.Next = &info, nil
		return Claimed{Verdict: Start, Run: info}
	case r.Current != nil && r.Current.RunID == o.RunID &&
		// A record written before OrderSeq existed names no order: take it as this one.
		(r.Current.OrderSeq == o.Seq || r.Current.OrderSeq == 0):
		r.Current.Attempt, r.Current.HeartbeatAt, r.Current.OrderSeq = attempt, now, o.Seq
		return Claimed{Verdict: Resume, Run: *r.Current}
	}
	return Claimed{Verdict: Drop}
}

// Beat records that the current run runID is alive at now; false if it is not current.
func (r *Runs) Beat(runID string, now time.Time) bool {
	if r.Current == nil || r.Current.RunID != runID {
		return false
	}
	r.Current.HeartbeatAt = now
	return true
}

// Finish clears the current run runID once its result is published, and records its
// retry if it failed for a temporary reason (retry non-nil); false if it was not
// current (then nothing changes).
func (r *Runs) Finish(runID string, retry *Retry) bool {
	if r.Current == nil || r.Current.RunID != runID {
		return false
	}
	r.Current = nil
	switch {
	case retry == nil:
	case r.Next != nil && r.Next.RetryOf == "":
		// A run was queued while this one ran (a Run Now, a slot): it starts as soon as
		// this one ends, so it is the retry, with the failed run's triggers and firms.
		n := r.Next
		n.RetryOf, n.SeriesAttempt, n.SeriesStart = retry.Of, retry.Attempt, retry.SeriesStart
		n.Scope = n.Scope.Union(retry.Scope)
		n.Triggers = append(append([]events.TriggerRef(nil), retry.Triggers...), n.Triggers...)
	default:
		rt := *retry
		r.Retry = &rt
	}
	return true
}

// StartRetry queues the waiting retry once it is due (as run newID, at now), unless a
// run is queued already: that run is then the retry (same series), so a failed run is
// retried once, not twice. ok reports a retry queued here that needs its order sent.
func (r *Runs) StartRetry(now time.Time, newID string) (queued RunInfo, ok bool) {
	if r.Retry == nil || now.Before(r.Retry.At) {
		return RunInfo{}, false
	}
	if r.Next != nil {
		if r.Next.RetryOf == "" {
			r.Next.RetryOf, r.Next.SeriesAttempt, r.Next.SeriesStart = r.Retry.Of, r.Retry.Attempt, r.Retry.SeriesStart
			r.Next.Scope = r.Next.Scope.Union(r.Retry.Scope)
		}
		r.Retry = nil
		return RunInfo{}, false
	}
	info := r.Retry.run(newID, now)
	r.Next, r.Retry = &info, nil
	return info, true
}

// run is the retry as a queued run.
func (rt Retry) run(newID string, now time.Time) RunInfo {
	return RunInfo{
		RunID: newID, Trigger: events.KindRetry, RequestedBy: rt.RequestedBy, Reason: rt.Reason, Slot: rt.Slot,
		QueuedAt: now, Triggers: append([]events.TriggerRef(nil), rt.Triggers...), Scope: rt.Scope,
		RetryOf: rt.Of, SeriesAttempt: rt.Attempt, SeriesStart: rt.SeriesStart,
	}
}

// NeedsResend finds a queued run whose order looks lost: queued for longer than after,
// with nothing executing ahead of it, that is no current run, or one whose executor
// has been silent (no start, no heartbeat) for longer than silent. Re-sending its order
// is harmless if it was not lost after all.
func (r *Runs) NeedsResend(now time.Time, after, silent time.Duration) (RunInfo, bool) {
	if r.Next == nil || now.Sub(r.Next.QueuedAt) < after {
		return RunInfo{}, false
	}
	if c := r.Current; c != nil {
		last := c.HeartbeatAt
		if c.StartedAt.After(last) {
			last = c.StartedAt
		}
		if now.Sub(last) < silent {
			return RunInfo{}, false
		}
	}
	return *r.Next, true
}
