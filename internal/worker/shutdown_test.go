package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/natstest"
	"github.com/lexhq/gstjobs/internal/worker"
)

// Tried: a replica is stopped (as SIGTERM stops a service) while its run goes on past
// the shutdown grace, with a second replica up. Must hold: the stopping replica hands
// the run back as soon as the grace is over, and the other replica starts it again
// within two seconds of that, as the same run on attempt 2, not after the run order's
// ack wait (30s); the run ends with one result.
func TestAStoppedReplicaHandsItsRunBackAtOnce(t *testing.T) {
	srv := natstest.Start(t)
	statuses := natstest.Collect(t, srv.NC, events.StatusSubject(job))
	results := natstest.Collect(t, srv.NC, events.ResultSubject(job))
	started := make(chan worker.Run, 4)
	fn := func(ctx context.Context, run worker.Run) (worker.Report, error) {
		started <- run
		if run.Attempt == 1 {
			<-ctx.Done() // longer than the grace: abandoned at shutdown
			return worker.Report{}, ctx.Err()
		}
		return worker.Report{Results: map[string]any{"overdue_tasks": 1}}, nil
	}
	const grace = 300 * time.Millisecond
	stopping := startWorker(t, srv.URL, fn, func(c *worker.Config) { c.ShutdownGrace = grace; c.Instance = "stopping" })
	trigger(t, srv.JS, `{"reason":"rolling restart"}`)
	first := <-started
	nextStatus(t, statuses, events.StateRunning)
	startWorker(t, srv.URL, fn, func(c *worker.Config) { c.Instance = "other" })

	stoppedAt := time.Now()
	stopping.Stop()
	handedBack := time.Now()
	if d := handedBack.Sub(stoppedAt); d > grace+3*time.Second {
		t.Errorf("Stop took %s; want the grace (%s) and little more", d, grace)
	}
	select {
	case again := <-started:
		took := time.Since(handedBack)
		t.Logf("the other replica started the run %s after the hand-back (%s after Stop was called)", took, time.Since(stoppedAt))
		if again.ID != first.ID || again.Attempt != 2 {
			t.Errorf("the other replica started run %s attempt %d; want run %s attempt 2", again.ID, again.Attempt, first.ID)
		}
		if took > 2*time.Second {
			t.Errorf("the other replica started the run %s after the hand-back; want within 2s, not the ack wait (%s)", took, bus.RunAckWait)
		}
	case <-time.After(bus.RunAckWait + 10*time.Second):
		t.Fatal("the other replica never started the abandoned run")
	}
	if r := nextResult(t, results); r.RunID != first.ID || r.Status != events.StatusSuccess || r.Attempt != 2 {
		t.Fatalf("result: run %s status %s attempt %d; want run %s success on attempt 2", r.RunID, r.Status, r.Attempt, first.ID)
	}
	noMore(t, results, "result")
}
