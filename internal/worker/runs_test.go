package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobstate"
	"github.com/lexhq/gstjobs/internal/natstest"
	"github.com/lexhq/gstjobs/internal/worker"
)

// The interleaving of issue 10, item 2, on one server: the previous run is over; an
// intake queues run X and sends its order; the executor's read of the runs bucket is
// answered as by a follower that has not applied the intake's write yet, so it does not
// contain X. Decided on that read alone, the order was acked as a duplicate and X
// stayed queued for good, every later trigger coalescing into it. What must hold: X
// runs, once, and nothing stays queued, without help from the sweep (it is off here).
func TestAStaleReadDoesNotDropTheOrderOfAQueuedRun(t *testing.T) {
	srv := natstest.Start(t)
	results := natstest.Collect(t, srv.NC, events.ResultSubject(job))
	var lag *natstest.LaggingReads
	calls := map[string]int{}
	var mu sync.Mutex
	reg := prometheus.NewRegistry()
	startWorker(t, srv.URL, func(ctx context.Context, run worker.Run) (worker.Report, error) {
		mu.Lock()
		calls[run.ID]++
		mu.Unlock()
		return worker.Report{}, nil
	}, func(c *worker.Config) {
		c.SweepEvery = time.Hour
		c.Metrics = worker.NewMetrics(reg)
		worker.WrapRunsBucket(c, func(b jobstate.Bucket) jobstate.Bucket {
			lag = natstest.NewLaggingReads(b)
			return lag
		})
	})

	trigger(t, srv.JS, `{"reason":"the run before"}`)
	if r := nextResult(t, results); r.Status != events.StatusSuccess {
		t.Fatalf("first run: %+v", r)
	}
	waitRuns(t, srv, func(r jobstate.Runs) bool { return r.Current == nil && r.Next == nil }, "the first run cleared")

	// From here the first read that finds the intake's write is answered from before it.
	if err := lag.Lag(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	trigger(t, srv.JS, `{"reason":"right after quorum came back"}`)
	select {
	case e := <-lag.Stale():
		var before jobstate.Runs
		if e != nil {
			if err := json.Unmarshal(e.Value(), &before); err != nil {
				t.Fatal(err)
			}
		}
		if before.Next != nil {
			t.Fatalf("the stale read served %+v; it must be the record without the queued run", before)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the executor never read the runs bucket from behind; the test tested nothing")
	}
	r := nextResult(t, results)
	if r.Status != events.StatusSuccess || r.Reason != "right after quorum came back" {
		t.Fatalf("the queued run must run after the stale read; got %+v", r)
	}
	noMore(t, results, "result: the run must happen exactly once")
	mu.Lock()
	defer mu.Unlock()
	if calls[r.RunID] != 1 {
		t.Errorf("run %s called %d times, want once", r.RunID, calls[r.RunID])
	}
	if n := counter(t, reg, "gstjobs_job_orders_dropped_total"); n != 0 {
		t.Errorf("%v orders dropped; the order of a queued run is not a duplicate", n)
	}
	waitRuns(t, srv, func(r jobstate.Runs) bool { return r.Current == nil && r.Next == nil }, "nothing queued or running")
}

// The state issue 10 left behind: the runs bucket says run X is queued, nothing runs,
// and X's order is gone. The sweep of either replica must find it and send its order
// again within seconds, not at the next trigger; the run happens once however many
// replicas re-send it; the next trigger starts a run of its own.
func TestTheSweepSendsTheOrderOfAQueuedRunAgain(t *testing.T) {
	srv := natstest.Start(t)
	results := natstest.Collect(t, srv.NC, events.ResultSubject(job))
	var calls atomic.Int32
	reg := prometheus.NewRegistry()
	fn := func(ctx context.Context, run worker.Run) (worker.Report, error) {
		calls.Add(1)
		return worker.Report{}, nil
	}
	fast := func(c *worker.Config) {
		c.SweepEvery, c.ResendAfter = 50*time.Millisecond, 200*time.Millisecond
		c.Metrics = worker.NewMetrics(reg)
	}

	queuedAt := time.Now().Add(-time.Minute)
	kv := runsKV(t, srv)
	if _, _, err := jobstate.Decide(context.Background(), kv, job, func(r *jobstate.Runs) jobstate.Joined {
		return r.Join(events.TriggerRef{ID: "lost-trigger", Kind: events.KindManual, RequestedBy: "a@firm", Reason: "lost", At: queuedAt}, events.ScopeAll(), "f28d1ce9", queuedAt)
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	startWorker(t, srv.URL, fn, fast)
	startWorker(t, srv.URL, fn, fast)

	r := nextResult(t, results)
	if r.RunID != "f28d1ce9" || r.Status != events.StatusSuccess || r.Reason != "lost" {
		t.Fatalf("result %+v; want the lost run f28d1ce9, run by the sweep's re-sent order", r)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the lost run took %v to run; the sweep must find it within seconds", took)
	}
	if n := counter(t, reg, "gstjobs_job_orders_resent_total"); n < 1 {
		t.Errorf("gstjobs_job_orders_resent_total = %v, want at least 1", n)
	}
	trigger(t, srv.JS, `{"reason":"the next click"}`)
	if r2 := nextResult(t, results); r2.RunID == r.RunID || r2.Reason != "the next click" {
		t.Fatalf("the next trigger must start a run of its own; got %+v", r2)
	}
	noMore(t, results, "result")
	if n := calls.Load(); n != 2 {
		t.Errorf("job called %d times, want 2: the lost run once, the next run once", n)
	}
}

// After the stream's 10-minute dedupe window, a re-sent order is stored as a second
// message. The run it names must still happen once: the first message starts it, the
// second, delivered after the run, is dropped as a duplicate, and both are acked.
func TestAnOrderStoredTwiceRunsOnce(t *testing.T) {
	srv := natstest.Start(t)
	results := natstest.Collect(t, srv.NC, events.ResultSubject(job))
	var calls atomic.Int32
	reg := prometheus.NewRegistry()
	logs := make(chan slog.Record, 256)
	release := make(chan struct{})
	startWorker(t, srv.URL, func(ctx context.Context, run worker.Run) (worker.Report, error) {
		calls.Add(1)
		<-release
		return worker.Report{}, nil
	}, func(c *worker.Config) {
		c.Metrics, c.Log, c.SweepEvery = worker.NewMetrics(reg), slog.New(&recordingHandler{t: t, ch: logs}), time.Hour
	})

	now := time.Now()
	kv := runsKV(t, srv)
	j, _, err := jobstate.Decide(context.Background(), kv, job, func(r *jobstate.Runs) jobstate.Joined {
		return r.Join(events.TriggerRef{ID: "t1", Kind: events.KindManual, At: now}, events.ScopeAll(), "x", now)
	})
	if err != nil {
		t.Fatal(err)
	}
	order := fmt.Appendf(nil, `{"run_id":"x","job_name":%q,"first":{"id":"t1","kind":"manual","at":%q},"queued_at":%q}`,
		job, now.Format(time.RFC3339Nano), j.Queued.QueuedAt.Format(time.RFC3339Nano))
	for _, id := range []string{"x", "x, sent again 11 minutes later"} {
		if _, err := srv.JS.Publish(context.Background(), events.RunSubject(job), order, jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	if r := nextResult(t, results); r.RunID != "x" || r.Status != events.StatusSuccess {
		t.Fatalf("result %+v; want run x", r)
	}
	if d := waitLog(t, logs, "executor: dropping a duplicate order"); attr(d, "run_id") != "x" {
		t.Fatalf("dropped an order for run %q, want the second order of x", attr(d, "run_id"))
	}
	noMore(t, results, "result: the second order must be dropped")
	waitDrained(t, srv)
	if n := calls.Load(); n != 1 {
		t.Errorf("run x called %d times, want once", n)
	}
	if n := counter(t, reg, "gstjobs_job_orders_dropped_total"); n != 1 {
		t.Errorf("gstjobs_job_orders_dropped_total = %v, want 1 (the second order)", n)
	}
}

// A queued run that cannot start must not wait silently. Here the run ahead of it is
// still executing but its executor has gone silent (no heartbeat for longer than twice
// the ack wait, on the fake clock): the sweep sends the queued run's order again, and
// two minutes later logs an error and counts the run as stuck, once. When the run ahead
// finishes, the queued one runs, once.
func TestAQueuedRunThatCannotStartIsReportedStuck(t *testing.T) {
	srv := natstest.Start(t)
	results := natstest.Collect(t, srv.NC, events.ResultSubject(job))
	statuses := natstest.Collect(t, srv.NC, events.StatusSubject(job))
	clock := clockwork.NewFakeClockAt(time.Date(2026, 3, 10, 2, 30, 0, 0, time.UTC))
	reg := prometheus.NewRegistry()
	logs := make(chan slog.Record, 256)
	release := make(chan struct{})
	var calls atomic.Int32
	startWorker(t, srv.URL, func(ctx context.Context, run worker.Run) (worker.Report, error) {
		if calls.Add(1) == 1 {
			<-release
		}
		return worker.Report{}, nil
	}, func(c *worker.Config) {
		c.Clock, c.Metrics, c.Log = clock, worker.NewMetrics(reg), slog.New(&recordingHandler{t: t, ch: logs})
		c.Heartbeat = time.Hour // the run ahead writes no heartbeat: its executor looks silent
		c.SweepEvery = 20 * time.Millisecond
	})

	trigger(t, srv.JS, `{"reason":"ahead"}`)
	ahead := nextStatus(t, statuses, events.StateRunning)
	trigger(t, srv.JS, `{"reason":"behind"}`)
	behind := nextStatus(t, statuses, events.StateQueued)
	for behind.RunID == ahead.RunID {
		behind = nextStatus(t, statuses, events.StateQueued)
	}

	clock.Advance(2*bus.RunAckWait + time.Second)
	resent := waitLog(t, logs, "sweep: sent the order of a queued run again")
	if got := attr(resent, "run_id"); got != behind.RunID {
		t.Fatalf("the sweep re-sent run %q, want the queued run %s", got, behind.RunID)
	}
	if got := attr(resent, "job_name"); got != job {
		t.Errorf("job_name = %q, want %q", got, job)
	}
	if n := counter(t, reg, "gstjobs_job_runs_stuck_total"); n != 0 {
		t.Fatalf("counted stuck after %v; not before 2 minutes", 2*bus.RunAckWait)
	}

	clock.Advance(2 * time.Minute)
	stuck := waitLog(t, logs, "sweep: queued run is stuck")
	if stuck.Level != slog.LevelError || attr(stuck, "run_id") != behind.RunID {
		t.Fatalf("stuck report: level %v run %q; want an error naming %s", stuck.Level, attr(stuck, "run_id"), behind.RunID)
	}
	waitLog(t, logs, "sweep: sent the order of a queued run again") // a sweep after the report
	if n := counter(t, reg, "gstjobs_job_runs_stuck_total"); n != 1 {
		t.Fatalf("gstjobs_job_runs_stuck_total = %v, want 1 (once per run)", n)
	}

	close(release)
	r1, r2 := nextResult(t, results), nextResult(t, results)
	if r1.RunID != ahead.RunID || r2.RunID != behind.RunID {
		t.Fatalf("results for %s, %s; want %s then %s", r1.RunID, r2.RunID, ahead.RunID, behind.RunID)
	}
	noMore(t, results, "result")
	if n := calls.Load(); n != 2 {
		t.Errorf("job called %d times, want 2", n)
	}
}

func runsKV(t *testing.T, srv *natstest.Server) jetstream.KeyValue {
	t.Helper()
	kv, err := srv.JS.KeyValue(context.Background(), bus.BucketRuns)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// waitRuns waits until the job's runs record, read from the leader, satisfies ok.
func waitRuns(t *testing.T, srv *natstest.Server, ok func(jobstate.Runs) bool, what string) {
	t.Helper()
	kv := runsKV(t, srv)
	w, err := kv.Watch(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop() }()
	lr := jobstate.LeaderReads(srv.JS, kv)
	deadline := time.After(15 * time.Second)
	for {
		r, _, err := jobstate.Get[jobstate.Runs](context.Background(), lr, job)
		if err != nil {
			t.Fatal(err)
		}
		if ok(r) {
			return
		}
		select {
		case <-w.Updates():
		case <-deadline:
			t.Fatalf("runs record never reached %q; last %+v", what, r)
		}
	}
}

func waitDrained(t *testing.T, srv *natstest.Server) {
	t.Helper()
	stream, err := srv.JS.Stream(context.Background(), bus.StreamJobs)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		si, err := stream.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if si.State.Msgs == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages left in the work queue; every order must be acked", si.State.Msgs)
		}
		runtime.Gosched()
	}
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "job" && l.GetValue() == job {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// recordingHandler logs to the test and hands every record, with the attributes of its
// logger, to ch, so a test can wait for a log line.
type recordingHandler struct {
	t     *testing.T
	ch    chan slog.Record
	attrs []slog.Attr
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(h.attrs...)
	var b strings.Builder
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	h.t.Logf("%s %s%s", r.Level, r.Message, b.String())
	select {
	case h.ch <- r:
	default:
	}
	return nil
}

func (h *recordingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &recordingHandler{t: h.t, ch: h.ch, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *recordingHandler) WithGroup(string) slog.Handler { return h }

func waitLog(t *testing.T, ch <-chan slog.Record, prefix string) slog.Record {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case r := <-ch:
			if strings.HasPrefix(r.Message, prefix) {
				return r
			}
		case <-deadline:
			t.Fatalf("no log line %q within 15s", prefix)
		}
	}
}

func attr(r slog.Record, key string) string {
	var v string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}
