package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/natstest"
	"github.com/lexhq/gstjobs/internal/worker"
)

// What is tried: the executor's window (one order at a time) and the intake's (256
// pending) filled with poison: 5 run orders that are not JSON, published on the job's
// run subject as a broken service would, and 300 triggers that can never be read;
// then one ordinary trigger.
// What must hold: the poisoned orders are terminated and kept in JOBS_DEAD with their
// reason, the triggers answered with rejections and terminated, none retried, and the
// ordinary trigger's run still happens.
func TestPoisonCannotStopTheWorker(t *testing.T) {
	srv := natstest.Start(t)
	results := natstest.Collect(t, srv.NC, events.ResultSubject(job))
	startWorker(t, srv.URL, func(ctx context.Context, run worker.Run) (worker.Report, error) {
		return worker.Report{Results: map[string]any{"overdue_tasks": 1}}, nil
	}, nil)
	ctx := context.Background()
	for i := range 5 {
		if _, err := srv.JS.Publish(ctx, events.RunSubject(job), []byte(fmt.Sprintf("not an order %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 300 {
		if _, err := srv.JS.Publish(ctx, events.TriggerSubject(job), []byte(fmt.Sprintf(`{"reason":"bad %d\u0000"}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	trigger(t, srv.JS, `{"reason":"after the poison"}`)
	for {
		r := nextResult(t, results)
		if r.Status == events.StatusRejected {
			continue
		}
		if r.Status != events.StatusSuccess || r.Reason != "after the poison" {
			t.Fatalf("after the poison: %+v, want the ordinary run's success", r)
		}
		break
	}
	st, err := srv.JS.Stream(ctx, bus.StreamDead)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 5 {
		t.Errorf("JOBS_DEAD holds %d messages, want the 5 poisoned run orders", info.State.Msgs)
	}
	m, err := st.GetMsg(ctx, info.State.FirstSeq)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(bus.HeaderDeadConsumer) != bus.RunConsumer(job) || m.Header.Get(bus.HeaderDeadClass) != bus.DeadPermanent ||
		m.Header.Get(bus.HeaderDeadSubject) != events.RunSubject(job) || m.Header.Get(bus.HeaderDeadReason) == "" {
		t.Errorf("dead letter headers = %v: want the consumer, class permanent, the subject and why", m.Header)
	}
}

// What is tried: 50 unreadable triggers on one subject within a minute.
// What must hold: one rejection is published at once (so whoever sent it sees why),
// the other 49 are counted, and when the minute is over the minute's count (50) is
// published once more: two stored events, not fifty.
func TestRejectionsAreStoredOncePerSubjectPerMinute(t *testing.T) {
	srv := natstest.Start(t)
	results := natstest.Collect(t, srv.NC, events.ResultSubject(job))
	clock := clockwork.NewFakeClockAt(time.Date(2026, 3, 10, 8, 0, 10, 0, time.UTC))
	startWorker(t, srv.URL, func(ctx context.Context, run worker.Run) (worker.Report, error) {
		return worker.Report{}, nil
	}, func(c *worker.Config) { c.Clock, c.SweepEvery = clock, 20*time.Millisecond })
	for i := range 50 {
		trigger(t, srv.JS, fmt.Sprintf(`{"reason": %d}`, i))
	}
	first := nextResult(t, results)
	if first.Status != events.StatusRejected || first.Count != 1 || first.Subject != events.TriggerSubject(job) {
		t.Fatalf("first answer = %+v, want a rejection sample with count 1 for the subject", first)
	}
	// All 50 have been taken in once the intake consumer has nothing pending.
	waitConsumerIdle(t, srv, bus.StreamJobs, bus.TriggerConsumer(job))
	noMore(t, results, "rejection in the same minute")
	clock.Advance(time.Minute)
	final := nextResult(t, results)
	if final.Status != events.StatusRejected || final.Count != 50 || !final.Minute.Equal(time.Date(2026, 3, 10, 8, 0, 0, 0, time.UTC)) {
		t.Fatalf("the minute's final word = %+v, want count 50 for 08:00", final)
	}
}

func waitConsumerIdle(t *testing.T, srv *natstest.Server, stream, consumer string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		c, err := srv.JS.Consumer(context.Background(), stream, consumer)
		if err == nil {
			if ci, err := c.Info(context.Background()); err == nil && ci.NumPending == 0 && ci.NumAckPending == 0 {
				return
			}
		}
		<-time.After(20 * time.Millisecond)
	}
	t.Fatalf("consumer %s still has messages pending after 15s", consumer)
}
