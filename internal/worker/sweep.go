package worker

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobstate"
)

// The sweep: a queued run whose order was lost (never sent, or dropped) would wait for
// good, every later trigger coalescing into it. Every SweepEvery, each worker reads the
// runs record of each of its jobs from the stream leader; a run queued for longer than
// ResendAfter with nothing executing ahead of it gets its order sent again, and again
// every ResendAfter while that lasts. A run still in that state StuckAfter after this
// worker first re-sent its order is logged as an error and counted once.

func (w *Worker) sweepLoop() {
	t := time.NewTicker(w.cfg.SweepEvery)
	defer t.Stop()
	lost := make(map[string]*lostOrder, len(w.cfg.Jobs))
	for name := range w.cfg.Jobs {
		lost[name] = &lostOrder{}
	}
	for {
		select {
		case <-w.loopCtx.Done():
			return
		case <-t.C:
		}
		for name, l := range lost {
			w.sweep(name, l)
		}
		w.flushRejections()
	}
}

// flushRejections publishes the final counts of the minutes of rejections that are over.
func (w *Worker) flushRejections() {
	finals, ids, dropped := w.rejections.Due(w.cfg.Clock.Now())
	ctx, cancel := context.WithTimeout(w.loopCtx, 10*time.Second)
	defer cancel()
	for i, f := range finals {
		if err := w.publish(ctx, events.ResultSubject(f.JobName), ids[i], f); err != nil {
			w.log.Warn("cannot publish a minute's count of rejected triggers; the metric has it", "job_name", f.JobName, "subject", f.Subject, "count", f.Count, "err", err)
		}
	}
	if dropped > 0 {
		w.log.Warn("rejected triggers on too many subjects in a minute: counted, not stored", "count", dropped)
	}
}

func (w *Worker) sweep(job string, l *lostOrder) {
	ctx, cancel := context.WithTimeout(w.loopCtx, 5*time.Second)
	defer cancel()
	runs, _, err := jobstate.Get[jobstate.Runs](ctx, w.latest, job)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("sweep: cannot read the runs bucket", "job_name", job, "err", err)
		}
		return
	}
	now := w.cfg.Clock.Now()
	if runs.Retry != nil && !now.Before(runs.Retry.At) {
		w.startRetry(ctx, job, now)
		return
	}
	next, needed := runs.NeedsResend(now, w.cfg.ResendAfter, silentAfter)
	resend, stuck := l.observe(next.RunID, needed, now, w.cfg.ResendAfter, w.cfg.StuckAfter)
	if !resend && !stuck {
		return
	}
	log := w.log.With("job_name", job, "run_id", next.RunID, "queued_at", next.QueuedAt, "waiting", now.Sub(next.QueuedAt).Round(time.Millisecond))
	if stuck {
		w.cfg.Metrics.stuck.WithLabelValues(job).Inc()
		log.Error("sweep: queued run is stuck: its order has been sent again and it has not started",
			"resending_since", l.since, "stuck_after", w.cfg.StuckAfter)
	}
	if resend {
		if err := w.sendOrder(ctx, job, next); err != nil {
			l.sentAt = time.Time{} // try again at the next sweep
			log.Warn("sweep: cannot send the order of a queued run again", "err", err)
			return
		}
		w.cfg.Metrics.resent.WithLabelValues(job).Inc()
		log.Warn("sweep: sent the order of a queued run again: it had not started and nothing runs ahead of it")
	}
}

// startRetry queues a retry that is due and sends its order.
func (w *Worker) startRetry(ctx context.Context, job string, now time.Time) {
	queued, _, err := jobstate.Decide(ctx, w.runs, job, func(r *jobstate.Runs) *jobstate.RunInfo {
		info, ok := r.StartRetry(now, uuid.NewString())
		if !ok {
			return nil
		}
		return &info
	})
	if err != nil {
		w.log.Warn("sweep: cannot start a retry that is due; the next sweep tries again", "job_name", job, "err", err)
		return
	}
	if queued == nil {
		return
	}
	log := w.log.With("job_name", job, "run_id", queued.RunID, "retry_of", queued.RetryOf, "attempt", queued.SeriesAttempt)
	if err := w.sendOrder(ctx, job, *queued); err != nil {
		log.Warn("sweep: retry queued, its order not sent yet; the sweep sends it again", "err", err)
		return
	}
	w.cfg.Metrics.retries.WithLabelValues(job).Inc()
	log.Info("retry queued")
}

// lostOrder follows, for one job, the queued run whose order this worker sends again.
type lostOrder struct {
	runID    string
	since    time.Time // first seen needing it
	sentAt   time.Time // last sent
	reported bool
}

// observe decides, at one sweep, whether to send the order of the queued run runID
// again (needed: Runs.NeedsResend found it) and whether to report the run as stuck.
func (l *lostOrder) observe(runID string, needed bool, now time.Time, every, stuckAfter time.Duration) (resend, stuck bool) {
	if !needed {
		*l = lostOrder{}
		return false, false
	}
	if runID != l.runID {
		*l = lostOrder{runID: runID, since: now}
	}
	if l.sentAt.IsZero() || now.Sub(l.sentAt) >= every {
		resend, l.sentAt = true, now
	}
	if !l.reported && now.Sub(l.since) >= stuckAfter {
		stuck, l.reported = true, true
	}
	return resend, stuck
}
