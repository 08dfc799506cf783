package worker_test

import (
	"context"
	"fmt"
	"testing"

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
