package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/natstest"
	"github.com/lexhq/gstjobs/internal/worker"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// nats-server and nats.go keep a few process-wide goroutines alive.
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).Start.func1"),
		goleak.IgnoreTopFunction("time.Sleep"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.ipQueue.pop"),
	)
}

const job = catalog.CheckSLAAndOverdue

func startWorker(t *testing.T, url string, fn worker.Func, tweak func(*worker.Config)) *worker.Worker {
	t.Helper()
	nc, js := natstest.Connect(t, url)
	cfg := worker.Config{NC: nc, JS: js, Jobs: map[string]worker.Func{job: fn}, ShutdownGrace: 2 * time.Second, Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
	if tweak != nil {
		tweak(&cfg)
	}
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w
}

func trigger(t *testing.T, js jetstream.JetStream, body string) {
	t.Helper()
	if _, err := js.Publish(context.Background(), events.TriggerSubject(job), []byte(body)); err != nil {
		t.Fatalf("publish trigger: %v", err)
	}
}

func nextResult(t *testing.T, ch <-chan *nats.Msg) events.Result {
	t.Helper()
	select {
	case m := <-ch:
		var r events.Result
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatalf("result is not JSON: %v", err)
		}
		return r
	case <-time.After(15 * time.Second):
		t.Fatal("no result within 15s")
	}
	return events.Result{}
}

func nextStatus(t *testing.T, ch <-chan *nats.Msg, state string) events.Status {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case m := <-ch:
			var s events.Status
			if err := json.Unmarshal(m.Data, &s); err != nil {
				t.Fatalf("status is not JSON: %v", err)
			}
			if s.State == state {
				return s
			}
		case <-deadline:
			t.Fatalf("no %q status within 15s", state)
		}
	}
}

func noMore(t *testing.T, ch <-chan *nats.Msg, what string) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("unexpected extra %s: %s", what, m.Data)
	case <-time.After(300 * time.Millisecond):
	}
}

// Two replicas share the job; 21 triggers arrive while the first run is blocked. Runs
// must never overlap, the 20 triggers behind the running one must coalesce into one
// further run, and each must be answered with that run's id.
func TestBurstCoalescesAndRunsStaySerialAcrossReplicas(t *testing.T) {
	srv := natstest.Start(t)
	results := natstest.Collect(t, srv.NC, events.ResultSubject(job))
	statuses := natstest.Collect(t, srv.NC, events.StatusSubject(job))

	var active, maxActive, calls atomic.Int32
	release := make(chan struct{})
	fn := func(ctx context.Context, run worker.Run) (worker.Report, error) {
		n := active.Add(1)
		defer active.Add(-1)
		for {
			m := maxActive.Load()
			if n <= m || maxActive.CompareAndSwap(m, n) {
				break
			}
		}
		calls.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			return worker.Report{}, ctx.Err()
		}
		return worker.Report{Results: map[string]any{"overdue_tasks": 5}}, nil
	}
	startWorker(t, srv.URL, fn, nil)
	startWorker(t, srv.URL, fn, nil)

	trigger(t, srv.JS, `{"reason":"first","requested_by":"a@firm"}`)
	first := nextStatus(t, statuses, events.StateRunning)

	for i := range 20 {
		trigger(t, srv.JS, fmt.Sprintf(`{"reason":"click %d","requested_by":"b@firm"}`, i))
	}
	// Replicas answer concurrently, so statuses arrive in any order; the first trigger's
	// own queued status may even arrive after its running status.
	var queued []events.Status
	for len(queued) < 20 {
		if q := nextStatus(t, statuses, events.StateQueued); q.RunID != first.RunID {
			queued = append(queued, q)
		}
	}
	second := queued[0].RunID
	starters := 0
	for i, q := range queued {
		if q.RunID != second {
			t.Errorf("trigger %d was answered with run %s, want the single queued run %s", i, q.RunID, second)
		}
		if !q.Coalesced {
			starters++
		}
	}
	if starters != 1 {
		t.Errorf("%d of the 20 triggers claim to have started run %s; exactly one must, the rest join it", starters, second)
	}

	close(release)
	r1, r2 := nextResult(t, results), nextResult(t, results)
	if r1.RunID != first.RunID || r2.RunID != second {
		t.Fatalf("results for runs %s, %s; want %s then %s", r1.RunID, r2.RunID, first.RunID, second)
	}
	if len(r2.Triggers) != 20 {
		t.Errorf("run %s lists %d triggers, want the 20 it answered", second, len(r2.Triggers))
	}
	if r1.Status != events.StatusSuccess || r1.Results["overdue_tasks"] != float64(5) || r1.RequestedBy != "a@firm" || r1.Reason != "first" || r1.Trigger != events.KindManual {
		t.Errorf("first result = %+v", r1)
	}
	noMore(t, results, "result: 21 triggers must cause exactly two runs")
	if got := calls.Load(); got != 2 {
		t.Errorf("job called %d times, want 2", got)
	}
	if got := maxActive.Load(); got != 1 {
		t.Errorf("%d runs overlapped; runs of one job must be serial across replicas", got)
	}
}

// A job that panics, or returns an error with words for people, fails its run with
// error_message and error_details; the service goes on and the next run succeeds.
func TestPanicsAndErrorsBecomeFailedResults(t *testing.T) {
	srv := natstest.Start(t)
	results := natstest.Collect(t, srv.NC, events.ResultSubject(job))
	var call atomic.Int32
	startWorker(t, srv.URL, func(ctx context.Context, run worker.Run) (worker.Report, error) {
		switch call.Add(1) {
		case 1:
			panic("boom")
		case 2:
			return worker.Report{}, worker.Fail("Database connection timeout", errors.New("Connection timed out after 10000ms"))
		default:
			return worker.Report{Results: map[string]any{"overdue_tasks": 0}}, nil
		}
	}, nil)

	trigger(t, srv.JS, "")
	r := nextResult(t, results)
	// The panic's value may quote anyone's data: every firm reads the message, so the
	// value and the stack go in the details, which firms are not shown.
	if r.Status != events.StatusFailed || r.ErrorMessage != "Job panicked" || !strings.HasPrefix(r.ErrorDetails, "boom\n") ||
		!strings.Contains(r.ErrorDetails, "goroutine") || r.DetailsPublic {
		t.Fatalf("panic result = status %q message %q details %.80q public %v; want failed, 'Job panicked', boom and a stack, not public",
			r.Status, r.ErrorMessage, r.ErrorDetails, r.DetailsPublic)
	}
	trigger(t, srv.JS, "")
	r = nextResult(t, results)
	if r.Status != events.StatusFailed || r.ErrorMessage != "Database connection timeout" || r.ErrorDetails != "Connection timed out after 10000ms" {
		t.Fatalf("failure result = %q / %q", r.ErrorMessage, r.ErrorDetails)
	}
	trigger(t, srv.JS, "")
	if r = nextResult(t, results); r.Status != events.StatusSuccess {
		t.Fatalf("after two failures the service must still run jobs; got %q", r.Status)
	}
}

// A stuck job, even one that ignores its context, is failed at its timeout instead of
// blocking the queue; the next trigger runs.
func TestTimeoutFailsAStuckRun(t *testing.T) {
	srv := natstest.Start(t)
	results := natstest.Collect(t, srv.NC, events.ResultSubject(job))
	var call atomic.Int32
	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	startWorker(t, srv.URL, func(ctx context.Context, run worker.Run) (worker.Report, error) {
		if call.Add(1) == 1 {
			<-stuck // ignores ctx on purpose
		}
		return worker.Report{}, nil
	}, func(c *worker.Config) { c.Timeouts = map[string]time.Duration{job: 200 * time.Millisecond} })

	trigger(t, srv.JS, "")
	r := nextResult(t, results)
	if r.Status != events.StatusFailed || r.ErrorMessage != "Job timed out after 200ms" {
		t.Fatalf("stuck run: status %q message %q; want failed, 'Job timed out after 200ms'", r.Status, r.ErrorMessage)
	}
	trigger(t, srv.JS, "")
	if r = nextResult(t, results); r.Status != events.StatusSuccess {
		t.Fatalf("the queue must move on after a timeout; got %q", r.Status)
	}
}

// Payloads that can never be processed get a clear rejection on the result subject and
// are terminated: not retried, not blocking the triggers behind them.
func TestMalformedTriggersAreRejectedAndTerminated(t *testing.T) {
	srv := natstest.Start(t)
	results := natstest.Collect(t, srv.NC, events.ResultSubject(job))
	// One rejection per subject and minute is published: each case gets a minute of its own.
	clock := clockwork.NewFakeClock()
	startWorker(t, srv.URL, func(ctx context.Context, run worker.Run) (worker.Report, error) {
		return worker.Report{Results: map[string]any{"overdue_tasks": 1}}, nil
	}, func(c *worker.Config) { c.Clock = clock })

	for _, c := range []struct{ body, want string }{
		{`{"reason":`, "not valid JSON"},
		{`[1,2,3]`, "must be a JSON object"},
		{`{"reason":"` + strings.Repeat("x", 501) + `"}`, "longer than 500"},
		// Valid JSON whose text PostgreSQL could never store: rejected here, not retried
		// forever by the audit consumer.
		{`{"reason":"a\u0000b"}`, "reason contains a NUL character"},
		{"{\"requested_by\":\"\xff\"}", "not valid UTF-8"},
		// Only the gateway speaks for a firm's person.
		{`{"requester":{"tenant_id":"11111111-1111-1111-1111-111111111111","name":"Anjali"}}`, "set by the gateway only"},
	} {
		clock.Advance(time.Minute)
		trigger(t, srv.JS, c.body)
		r := nextResult(t, results)
		if r.Status != events.StatusRejected || !strings.Contains(r.ErrorMessage, c.want) || r.RunID != "" {
			t.Errorf("body %.20q: got status %q message %q run %q; want a rejection mentioning %q and no run", c.body, r.Status, r.ErrorMessage, r.RunID, c.want)
		}
	}
	trigger(t, srv.JS, `{"reason":"valid"}`)
	if r := nextResult(t, results); r.Status != events.StatusSuccess || r.Reason != "valid" {
		t.Fatalf("a valid trigger after bad ones must run; got %+v", r)
	}
	// The run order is acked just after its result is published: wait for the queue to
	// drain, and fail if a rejected trigger is still in it.
	stream, err := srv.JS.Stream(context.Background(), bus.StreamJobs)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		si, err := stream.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if si.State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages left in the work queue; rejected triggers must be terminated, not left to retry", si.State.Msgs)
		}
		runtime.Gosched()
	}
	noMore(t, results, "result (a rejected trigger was retried)")
}

// An executor that dies mid-run (its connection gone, no more heartbeats) loses the
// order to another replica after the ack wait; the run completes once, with one result.
func TestRunOfADeadExecutorIsRedeliveredAndCompletedOnce(t *testing.T) {
	srv := natstest.Start(t)
	shortenRunAckWait(t, srv.JS, time.Second)
	results := natstest.Collect(t, srv.NC, events.ResultSubject(job))
	statuses := natstest.Collect(t, srv.NC, events.StatusSubject(job))

	started := make(chan int, 4)
	var mu sync.Mutex
	hang := true
	fn := func(ctx context.Context, run worker.Run) (worker.Report, error) {
		started <- run.Attempt
		mu.Lock()
		h := hang
		mu.Unlock()
		if h {
			<-ctx.Done() // the "killed" executor never finishes
			return worker.Report{}, ctx.Err()
		}
		return worker.Report{Results: map[string]any{"overdue_tasks": 2}}, nil
	}
	// The doomed replica has its own connection, which the test closes.
	nc, err := nats.Connect(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	doomed, err := worker.New(worker.Config{NC: nc, JS: js, Jobs: map[string]worker.Func{job: fn}, Heartbeat: 200 * time.Millisecond, ShutdownGrace: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := doomed.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	trigger(t, srv.JS, `{"reason":"will crash"}`)
	if a := <-started; a != 1 {
		t.Fatalf("first attempt = %d", a)
	}
	running := nextStatus(t, statuses, events.StateRunning)
	nc.Close() // the process is gone: no heartbeat, no result, no ack
	mu.Lock()
	hang = false
	mu.Unlock()
	startWorker(t, srv.URL, fn, func(c *worker.Config) { c.Heartbeat = 200 * time.Millisecond })

	if a := <-started; a != 2 {
		t.Fatalf("redelivered attempt = %d, want 2", a)
	}
	r := nextResult(t, results)
	if r.RunID != running.RunID || r.Status != events.StatusSuccess || r.Attempt != 2 {
		t.Fatalf("result = run %s status %s attempt %d; want run %s success on attempt 2", r.RunID, r.Status, r.Attempt, running.RunID)
	}
	doomed.Stop()
	noMore(t, results, "result: a redelivered run must publish one result")
}

// Heartbeats keep a long run with its executor: no redelivery while it is alive.
func TestHeartbeatsKeepALongRunFromBeingRedelivered(t *testing.T) {
	srv := natstest.Start(t)
	shortenRunAckWait(t, srv.JS, 600*time.Millisecond)
	results := natstest.Collect(t, srv.NC, events.ResultSubject(job))
	statuses := natstest.Collect(t, srv.NC, events.StatusSubject(job))
	var calls atomic.Int32
	fn := func(ctx context.Context, run worker.Run) (worker.Report, error) {
		calls.Add(1)
		select {
		case <-time.After(2 * time.Second): // more than three ack waits
		case <-ctx.Done():
		}
		return worker.Report{}, nil
	}
	tweak := func(c *worker.Config) { c.Heartbeat = 150 * time.Millisecond }
	startWorker(t, srv.URL, fn, tweak)
	startWorker(t, srv.URL, fn, tweak)
	trigger(t, srv.JS, "")
	nextStatus(t, statuses, events.StateHeartbeat)
	if r := nextResult(t, results); r.Status != events.StatusSuccess || r.Attempt != 1 {
		t.Fatalf("long run: status %s attempt %d; want success on attempt 1", r.Status, r.Attempt)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("job ran %d times; heartbeats must keep the order from being redelivered", n)
	}
}

// Schedule events take the same path as triggers and carry their slot.
func TestScheduleSlotStartsARun(t *testing.T) {
	srv := natstest.Start(t)
	results := natstest.Collect(t, srv.NC, events.ResultSubject(job))
	var got worker.Run
	startWorker(t, srv.URL, func(ctx context.Context, run worker.Run) (worker.Report, error) {
		got = run
		return worker.Report{}, nil
	}, nil)
	slot := time.Date(2026, 3, 10, 2, 30, 0, 0, time.UTC)
	data, _ := json.Marshal(events.Schedule{JobName: job, Slot: slot})
	if _, err := srv.JS.Publish(context.Background(), events.ScheduleSubject(job), data, jetstream.WithMsgID(events.ScheduleMsgID(job, slot))); err != nil {
		t.Fatal(err)
	}
	r := nextResult(t, results)
	if r.Trigger != events.KindSchedule || !r.Slot.Equal(slot) || got.Trigger != events.KindSchedule || !got.Slot.Equal(slot) {
		t.Fatalf("scheduled run: result trigger %q slot %v, run %+v", r.Trigger, r.Slot, got)
	}
}

func shortenRunAckWait(t *testing.T, js jetstream.JetStream, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	c, err := js.Consumer(ctx, bus.StreamJobs, bus.RunConsumer(job))
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.CachedInfo().Config
	cfg.AckWait = d
	if _, err := js.UpdateConsumer(ctx, bus.StreamJobs, cfg); err != nil {
		t.Fatal(err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Tried: the slots of a daily job whose firms keep their own hours: one for the firms
// that share it (Dubai's two firms), one for every firm but those whose slot is
// elsewhere; one of Dubai's firms paused the job; both slots published at once.
// Must hold: each run covers exactly the slot's firms, minus the firm that paused, and
// says so in its scope; the group names the message; neither run does another's firm.
func TestASlotsFirmsAreTheRunsFirms(t *testing.T) {
	const (
		dubai1 = "11111111-1111-1111-1111-111111111111"
		dubai2 = "22222222-2222-2222-2222-222222222222"
		delhi  = "33333333-3333-3333-3333-333333333333"
	)
	srv := natstest.Start(t)
	ctx := context.Background()
	cfgKV, err := srv.JS.KeyValue(ctx, bus.BucketConfig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfgKV.Put(ctx, job+"."+dubai2, []byte(`{"paused":true}`)); err != nil {
		t.Fatal(err)
	}
	results := natstest.Collect(t, srv.NC, events.ResultSubject(job))
	var mu sync.Mutex
	var runs []events.Scope
	startWorker(t, srv.URL, func(ctx context.Context, run worker.Run) (worker.Report, error) {
		mu.Lock()
		defer mu.Unlock()
		runs = append(runs, run.Scope)
		return worker.Report{}, nil
	}, nil)
	publish := func(s events.Schedule) {
		data, _ := json.Marshal(s)
		if _, err := srv.JS.Publish(ctx, events.ScheduleSubject(job), data, jetstream.WithMsgID(events.GroupMsgID(job, s.Slot, s.Group))); err != nil {
			t.Fatal(err)
		}
	}
	slot := time.Date(2026, 3, 10, 4, 0, 0, 0, time.UTC)
	group := events.ScopeFirms([]string{dubai1, dubai2})
	publish(events.Schedule{JobName: job, Slot: slot, Group: "Asia/Dubai 08:00", Scope: &group})
	r := nextResult(t, results)
	if s := r.Scope; s == nil || !s.Covers(dubai1) || s.Covers(dubai2) || s.Covers(delhi) {
		t.Fatalf("Dubai's slot covered %+v: want the Dubai firm that did not pause, and no other", r.Scope)
	}
	if r.TriggerID != "check-sla-and-overdue@2026-03-10T04:00:00Z#Asia/Dubai 08:00" {
		t.Errorf("trigger id %q, want the group in it", r.TriggerID)
	}
	rest := events.Scope{All: true, Except: []string{dubai1, dubai2}}
	publish(events.Schedule{JobName: job, Slot: slot.Add(-90 * time.Minute), Scope: &rest})
	r = nextResult(t, results)
	if s := r.Scope; s == nil || !s.Covers(delhi) || s.Covers(dubai1) || s.Covers(dubai2) {
		t.Fatalf("the default slot covered %+v: want every firm but Dubai's", r.Scope)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(runs) != 2 || runs[0].Covers(dubai2) || !runs[1].Covers("44444444-4444-4444-4444-444444444444") {
		t.Fatalf("the job was given %+v", runs)
	}
}
