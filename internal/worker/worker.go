package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobstate"
	"github.com/lexhq/gstjobs/internal/ops"
)

// Run is what a job is given: who asked for it and the instant it counts as "now".
type Run struct {
	ID          string
	Job         catalog.Job
	Trigger     string
	RequestedBy string
	Reason      string
	Slot        time.Time
	Attempt     int
	Triggers    []events.TriggerRef
	// Scope is the firms the run covers: its triggers' firms, or every firm but those
	// that paused the job. A job restricts every statement to it (tenancy.Filter).
	Scope events.Scope
	// Now is the clock's time when the run started; jobs compute "overdue", "in the next
	// 24 hours" and "today" from it, never from time.Now.
	Now time.Time
}

// Report is what a successful run found: Results and Errors are the run's totals over
// every firm (the operator's view and the audit row), Tenants each covered firm's own
// part with the same results keys. Errors lists problems that did not stop the run
// (one firm's bad data, one undeliverable e-mail); each also appears in its firm's
// slice. A job returns a slice for every firm it covered, zeros included, so that a
// firm with nothing to report sees zeros rather than nothing.
type Report struct {
	Results map[string]any
	Errors  []string
	Tenants []events.TenantSlice
}

// Func does one run of a job.
type Func func(ctx context.Context, run Run) (Report, error)

// Failure is an error with words for people (error_message) in front of the technical
// cause (error_details). Message is shown to every covered firm's people, so it names
// no firm and counts nothing of any firm: per-firm words go in the firms' slices.
type Failure struct {
	Message string
	Err     error
	// Panicked marks a job that panicked: its details are a stack, for the operator.
	Panicked bool
}

func (f *Failure) Error() string { return f.Message + ": " + f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

// Fail wraps err with the message the dashboard shows.
func Fail(message string, err error) error { return &Failure{Message: message, Err: err} }

// Config of a Worker.
type Config struct {
	NC   *nats.Conn
	JS   jetstream.JetStream
	Jobs map[string]Func
	// Clock gives each run its Now; tests use a fake one.
	Clock clockwork.Clock
	Log   *slog.Logger
	// Instance names this process in events and logs.
	Instance string
	// Heartbeat is how often a running order is kept in progress; default bus.HeartbeatEvery.
	Heartbeat time.Duration
	// Timeouts override a job's catalog timeout (tests).
	Timeouts map[string]time.Duration
	// ShutdownGrace is how long Stop lets a run in progress finish before it is handed
	// back to JetStream for another replica; default 20s.
	ShutdownGrace time.Duration
	Metrics       *Metrics
}

// Worker runs a set of jobs. Start it once; Stop is safe to call twice.
type Worker struct {
	cfg    Config
	runs   jetstream.KeyValue
	pauses *firmPauses
	log    *slog.Logger

	// runCtx is cancelled when a run in progress must be abandoned (shutdown grace over).
	runCtx    context.Context
	cancelRun context.CancelFunc
	// loopCtx is cancelled to stop taking new work.
	loopCtx    context.Context
	cancelLoop context.CancelFunc

	intakes  []jetstream.ConsumeContext
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// New checks the configuration.
func New(cfg Config) (*Worker, error) {
	if cfg.NC == nil || cfg.JS == nil {
		return nil, errors.New("worker: NATS connection and JetStream are required")
	}
	if len(cfg.Jobs) == 0 {
		return nil, errors.New("worker: no jobs to run")
	}
	for name := range cfg.Jobs {
		if _, ok := catalog.Lookup(name); !ok {
			return nil, fmt.Errorf("worker: job %q is not in the catalog", name)
		}
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Instance == "" {
		cfg.Instance = ops.Instance()
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = bus.HeartbeatEvery
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 20 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	return &Worker{cfg: cfg, log: cfg.Log.With("component", "worker")}, nil
}

// Start begins consuming. The consumers and buckets must exist (bus.Ensure).
func (w *Worker) Start(ctx context.Context) error {
	kv, err := w.cfg.JS.KeyValue(ctx, bus.BucketRuns)
	if err != nil {
		return fmt.Errorf("worker: open runs bucket: %w", err)
	}
	w.runs = kv
	cfgKV, err := w.cfg.JS.KeyValue(ctx, bus.BucketConfig)
	if err != nil {
		return fmt.Errorf("worker: open config bucket: %w", err)
	}
	if w.pauses, err = watchPauses(ctx, cfgKV); err != nil {
		return err
	}
	w.runCtx, w.cancelRun = context.WithCancel(context.WithoutCancel(ctx))
	w.loopCtx, w.cancelLoop = context.WithCancel(ctx)

	for name, fn := range w.cfg.Jobs {
		job, _ := catalog.Lookup(name)
		intake, err := w.cfg.JS.Consumer(ctx, bus.StreamJobs, bus.TriggerConsumer(name))
		if err != nil {
			w.Stop()
			return fmt.Errorf("worker: consumer %s: %w", bus.TriggerConsumer(name), err)
		}
		cc, err := intake.Consume(func(msg jetstream.Msg) { w.intake(job, msg) })
		if err != nil {
			w.Stop()
			return fmt.Errorf("worker: consume %s: %w", bus.TriggerConsumer(name), err)
		}
		w.intakes = append(w.intakes, cc)

		exec, err := w.cfg.JS.Consumer(ctx, bus.StreamJobs, bus.RunConsumer(name))
		if err != nil {
			w.Stop()
			return fmt.Errorf("worker: consumer %s: %w", bus.RunConsumer(name), err)
		}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.executeLoop(job, fn, exec)
		}()
	}
	w.log.Info("worker started", "jobs", len(w.cfg.Jobs), "instance", w.cfg.Instance)
	return nil
}

// Stop stops taking work, lets a run in progress finish within ShutdownGrace, and
// otherwise hands it back unacknowledged so another replica runs it.
func (w *Worker) Stop() {
	w.stopOnce.Do(func() {
		if w.cancelLoop == nil {
			return
		}
		for _, cc := range w.intakes {
			cc.Stop()
		}
		w.cancelLoop()
		done := make(chan struct{})
		go func() { w.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(w.cfg.ShutdownGrace):
			w.log.Warn("shutdown grace over: abandoning the run in progress; it will be redelivered")
			w.cancelRun()
			<-done
		}
		w.cancelRun()
		w.pauses.stop()
	})
}

func (w *Worker) timeout(job catalog.Job) time.Duration {
	if d, ok := w.cfg.Timeouts[job.Name]; ok {
		return d
	}
	return job.Timeout
}

// intake answers one schedule slot or trigger with the run it starts or joins.
func (w *Worker) intake(job catalog.Job, msg jetstream.Msg) {
	ctx, cancel := context.WithTimeout(w.loopCtx, 10*time.Second)
	defer cancel()
	log := w.log.With("job", job.Name)
	md, err := msg.Metadata()
	if err != nil {
		log.Error("intake: no metadata", "err", err)
		_ = msg.Term()
		return
	}
	triggerID := msg.Headers().Get(jetstream.MsgIDHeader)
	if triggerID == "" {
		triggerID = fmt.Sprintf("%s:%d", md.Stream, md.Sequence.Stream)
	}
	ref := events.TriggerRef{ID: triggerID, At: md.Timestamp}
	var scope events.Scope
	if strings.HasPrefix(msg.Subject(), events.PrefixSchedule) {
		s, err := events.DecodeSchedule(msg.Data())
		if err != nil {
			w.reject(ctx, job, msg, triggerID, err)
			return
		}
		ref.Kind, ref.Source, ref.Slot = events.KindSchedule, events.SourceSchedule, s.Slot
		scope = events.ScopeAll()
	} else {
		t, err := events.DecodeTrigger(msg.Data(), events.IsAPITrigger(msg.Subject()))
		if err != nil {
			w.reject(ctx, job, msg, triggerID, err)
			return
		}
		ref.Kind, ref.RequestedBy, ref.Reason, ref.Source = events.KindManual, t.RequestedBy, t.Reason, events.SourceNATS
		if rq := t.Requester; rq != nil {
			ref.Source, ref.TenantID, ref.ProfileID, ref.Operator, ref.RequestedBy = events.SourceAPI, rq.TenantID, rq.ProfileID, rq.Operator, rq.Name
		}
		scope = t.Scope()
	}

	now := w.cfg.Clock.Now()
	newID := uuid.NewString()
	var runID string
	var created, coalesced, answeredBefore bool
	state, err := jobstate.Update(ctx, w.runs, job.Name, func(r *jobstate.Runs) error {
		created, coalesced, answeredBefore = false, false, false
		if id, ok := r.AnswerFor(triggerID); ok {
			runID, answeredBefore = id, true
			return jobstate.ErrNoChange
		}
		if r.Next != nil {
			runID = r.Next.RunID
			// Coalesced: the queued run was already going to do this trigger's work.
			coalesced = r.Next.Scope.Includes(scope)
			r.Next.Scope = r.Next.Scope.Union(scope)
			if len(r.Next.Triggers) < jobstate.MaxTriggersPerRun {
				r.Next.Triggers = append(r.Next.Triggers, ref)
			}
		} else {
			runID, created = newID, true
			r.Next = &jobstate.RunInfo{
				RunID: newID, Trigger: ref.Kind, RequestedBy: ref.RequestedBy, Reason: ref.Reason,
				Slot: ref.Slot, QueuedAt: now, Triggers: []events.TriggerRef{ref}, Scope: scope,
			}
		}
		r.Remember(triggerID, runID)
		return nil
	})
	if err != nil {
		log.Warn("intake: cannot record trigger, will retry", "trigger_id", triggerID, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	// The order is (re)sent when the run is new, when this trigger is a redelivery (the
	// first delivery may have died before sending it), or when the queued run looks
	// forgotten. Duplicates are harmless: same message id, and the executor drops an
	// order for a run that is neither queued nor current.
	if next := state.Next; next != nil && next.RunID == runID &&
		(created || answeredBefore || now.Sub(next.QueuedAt) > time.Minute) {
		order := events.RunOrder{RunID: runID, JobName: job.Name, First: next.Triggers[0], QueuedAt: next.QueuedAt}
		if err := w.publish(ctx, events.RunSubject(job.Name), runID, order); err != nil {
			log.Warn("intake: cannot send run order, will retry", "run_id", runID, "err", err)
			_ = msg.NakWithDelay(time.Second)
			return
		}
	}
	status := events.Status{
		RunID: runID, JobName: job.Name, State: events.StateQueued, Trigger: ref.Kind,
		TriggerID: triggerID, Source: ref.Source, TenantID: ref.TenantID, RequestedBy: ref.RequestedBy, Reason: ref.Reason,
		Coalesced: coalesced || (answeredBefore && !created), Slot: ref.Slot, At: now, Instance: w.cfg.Instance,
		Scope: &scope,
	}
	if next := state.Next; next != nil && next.RunID == runID {
		status.QueuedAt = next.QueuedAt
		sc := next.Scope
		status.Scope = &sc
	}
	if err := w.publish(ctx, events.StatusSubject(job.Name), "queued:"+triggerID, status); err != nil {
		log.Warn("intake: cannot publish queued status, will retry", "run_id", runID, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if err := msg.Ack(); err != nil {
		log.Warn("intake: ack failed; the redelivery will get the same answer", "err", err)
	}
	outcome := "new"
	if !created {
		outcome = "coalesced"
	}
	w.cfg.Metrics.triggers.WithLabelValues(job.Name, outcome).Inc()
	log.Info("trigger accepted", "trigger_id", triggerID, "kind", ref.Kind, "source", ref.Source, "run_id", runID, "coalesced", !created)
}

// reject answers a trigger that can never be processed, then terminates it so it is
// neither retried nor left blocking the queue.
func (w *Worker) reject(ctx context.Context, job catalog.Job, msg jetstream.Msg, triggerID string, cause error) {
	body := string(msg.Data())
	if len(body) > 200 {
		body = body[:200] + "…"
	}
	now := w.cfg.Clock.Now()
	res := events.Result{
		JobName: job.Name, Status: events.StatusRejected, Results: map[string]any{},
		ErrorMessage: "Trigger rejected: " + strings.TrimPrefix(cause.Error(), events.ErrInvalidPayload.Error()+": "),
		ErrorDetails: fmt.Sprintf("subject %s, body %q", msg.Subject(), body),
		TriggerID:    triggerID, FinishedAt: now, Instance: w.cfg.Instance,
	}
	if err := w.publish(ctx, events.ResultSubject(job.Name), "rejected:"+triggerID, res); err != nil {
		w.log.Warn("reject: cannot publish rejection, will retry", "job", job.Name, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	_ = msg.TermWithReason(res.ErrorMessage)
	w.cfg.Metrics.triggers.WithLabelValues(job.Name, "rejected").Inc()
	w.log.Warn("trigger rejected", "job", job.Name, "trigger_id", triggerID, "reason", res.ErrorMessage)
}

func (w *Worker) executeLoop(job catalog.Job, fn Func, cons jetstream.Consumer) {
	for w.loopCtx.Err() == nil {
		// FetchMaxWait, not a context: the client then waits a second past the pull
		// request's expiry, so an order the server hands out just before it expires is
		// still received. With a context deadline the client could give up first and the
		// order would sit unacknowledged, blocking the job for a whole ack wait.
		msgs, err := cons.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			w.log.Warn("executor: fetch failed", "job", job.Name, "err", err)
			select {
			case <-w.loopCtx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for msg := range msgs.Messages() {
			if w.loopCtx.Err() != nil {
				// Stopping: hand the order straight back for another replica.
				_ = msg.Nak()
				continue
			}
			w.execute(job, fn, msg)
		}
	}
}

// execute performs one run order.
func (w *Worker) execute(job catalog.Job, fn Func, msg jetstream.Msg) {
	log := w.log.With("job", job.Name)
	order, err := events.DecodeRunOrder(msg.Data())
	if err != nil {
		log.Error("executor: unreadable run order terminated", "err", err)
		_ = msg.TermWithReason(err.Error())
		return
	}
	log = log.With("run_id", order.RunID)
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.NakWithDelay(time.Second)
		return
	}
	attempt := int(md.NumDelivered)
	ctx := w.runCtx
	now := w.cfg.Clock.Now()

	var info jobstate.RunInfo
	proceed := false
	_, err = jobstate.Update(ctx, w.runs, job.Name, func(r *jobstate.Runs) error {
		proceed = false
		switch {
		case r.Next != nil && r.Next.RunID == order.RunID:
			info = *r.Next
			info.StartedAt, info.HeartbeatAt, info.Attempt = now, now, attempt
			r.Current, r.Next = &info, nil
		case r.Current != nil && r.Current.RunID == order.RunID:
			// A redelivery: the executor that had it stopped or died. Run it again.
			r.Current.Attempt, r.Current.HeartbeatAt = attempt, now
			info = *r.Current
		default:
			return jobstate.ErrNoChange
		}
		proceed = true
		return nil
	})
	if err != nil {
		log.Warn("executor: cannot claim run, will retry", "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if !proceed {
		log.Info("executor: dropping order for a run that is neither queued nor current (duplicate)")
		_ = msg.Ack()
		return
	}
	run := Run{
		ID: info.RunID, Job: job, Trigger: info.Trigger, RequestedBy: info.RequestedBy, Reason: info.Reason,
		Slot: info.Slot, Attempt: attempt, Triggers: info.Triggers, Now: now, Scope: w.runScope(job.Name, info),
	}
	if attempt > bus.RunMaxDeliver {
		err := fmt.Errorf("run was started %d times and its executor stopped each time before it finished", attempt-1)
		w.finish(job, msg, run, info.StartedAt, Report{}, Fail("Job abandoned after repeated crashes", err))
		return
	}

	first := firstRef(run.Triggers)
	running := events.Status{
		RunID: run.ID, JobName: job.Name, State: events.StateRunning, Trigger: run.Trigger,
		TriggerID: first.ID, Source: first.Source, TenantID: first.TenantID,
		RequestedBy: run.RequestedBy, Reason: run.Reason, Slot: run.Slot, Attempt: attempt,
		QueuedAt: info.QueuedAt, StartedAt: info.StartedAt, At: now, Instance: w.cfg.Instance,
		Scope: &run.Scope,
	}
	if err := w.publish(ctx, events.StatusSubject(job.Name), fmt.Sprintf("running:%s:%d", run.ID, attempt), running); err != nil {
		log.Warn("executor: cannot publish running status", "err", err)
	}
	log.Info("run started", "trigger", run.Trigger, "attempt", attempt)
	w.cfg.Metrics.inFlight.WithLabelValues(job.Name).Inc()
	defer w.cfg.Metrics.inFlight.WithLabelValues(job.Name).Dec()

	stopBeat := w.heartbeat(job, msg, running)
	report, runErr := w.call(job, fn, run)
	stopBeat()

	if w.runCtx.Err() != nil {
		// Shutting down and the run was abandoned: hand it back, publish nothing.
		log.Warn("run abandoned at shutdown; it will be redelivered")
		_ = msg.Nak()
		return
	}
	w.finish(job, msg, run, info.StartedAt, report, runErr)
}

// runScope is the firms a run does: those its triggers asked for, and, for a run for
// every firm, not those that paused the job now (a firm that asked itself is never
// skipped). A run queued before runs had scopes is for every firm.
func (w *Worker) runScope(job string, info jobstate.RunInfo) events.Scope {
	s := info.Scope
	if !s.All && len(s.Tenants) == 0 {
		s = events.ScopeAll()
	}
	if s.All {
		for _, t := range w.pauses.of(job) {
			if !slices.Contains(s.Tenants, t) {
				s.Skip = append(s.Skip, t)
			}
		}
	}
	return s
}

func firstRef(refs []events.TriggerRef) events.TriggerRef {
	if len(refs) == 0 {
		return events.TriggerRef{}
	}
	return refs[0]
}

// call runs the job with its timeout, turning panics and timeouts into errors. A job
// that ignores its context is abandoned after the timeout rather than waited for.
func (w *Worker) call(job catalog.Job, fn Func, run Run) (Report, error) {
	timeout := w.timeout(job)
	ctx, cancel := context.WithTimeout(w.runCtx, timeout)
	defer cancel()
	type outcome struct {
		report Report
		err    error
	}
	done := make(chan outcome, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				stack := string(debug.Stack())
				if len(stack) > 4000 {
					stack = stack[:4000]
				}
				done <- outcome{err: &Failure{Message: "Job panicked", Err: fmt.Errorf("%v\n%s", p, stack), Panicked: true}}
			}
		}()
		r, err := fn(ctx, run)
		done <- outcome{r, err}
	}()
	select {
	case o := <-done:
		if o.err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && w.runCtx.Err() == nil {
			return o.report, Fail(fmt.Sprintf("Job timed out after %s", timeout), o.err)
		}
		return o.report, o.err
	case <-ctx.Done():
		select {
		case o := <-done:
			if w.runCtx.Err() == nil {
				return o.report, Fail(fmt.Sprintf("Job timed out after %s", timeout), errors.Join(ctx.Err(), o.err))
			}
			return o.report, o.err
		case <-time.After(2 * time.Second):
			w.log.Error("job ignored its context; abandoning it", "job", job.Name, "run_id", run.ID)
			return Report{}, Fail(fmt.Sprintf("Job timed out after %s", timeout), fmt.Errorf("the job did not stop within 2s of its deadline: %w", ctx.Err()))
		}
	}
}

// heartbeat keeps the order in progress and tells watchers the run is alive.
func (w *Worker) heartbeat(job catalog.Job, msg jetstream.Msg, running events.Status) (stop func()) {
	ctx, cancel := context.WithCancel(w.runCtx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(w.cfg.Heartbeat)
		defer t.Stop()
		for n := 1; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := msg.InProgress(); err != nil {
				w.log.Warn("heartbeat: in-progress failed", "job", job.Name, "run_id", running.RunID, "err", err)
			}
			now := w.cfg.Clock.Now()
			beat := running
			beat.State, beat.At = events.StateHeartbeat, now
			_ = w.publish(ctx, events.StatusSubject(job.Name), fmt.Sprintf("beat:%s:%d:%d", running.RunID, running.Attempt, n), beat)
			_, _ = jobstate.Update(ctx, w.runs, job.Name, func(r *jobstate.Runs) error {
				if r.Current == nil || r.Current.RunID != running.RunID {
					return jobstate.ErrNoChange
				}
				r.Current.HeartbeatAt = now
				return nil
			})
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// finish publishes the run's one result, clears it from the runs bucket and acks the
// order, in that order: a crash between steps repeats the run or the publish, and the
// result's message id and the audit row's key make the repeat harmless.
func (w *Worker) finish(job catalog.Job, msg jetstream.Msg, run Run, startedAt time.Time, report Report, runErr error) {
	log := w.log.With("job", job.Name, "run_id", run.ID)
	finished := w.cfg.Clock.Now()
	first := firstRef(run.Triggers)
	scope := run.Scope
	res := events.Result{
		RunID: run.ID, JobName: job.Name, Status: events.StatusSuccess,
		ExecutionTimeMS: finished.Sub(startedAt).Milliseconds(),
		Results:         report.Results, Errors: report.Errors,
		Trigger: run.Trigger, Source: first.Source, TenantID: first.TenantID, RequestedBy: run.RequestedBy, Reason: run.Reason,
		TriggerID: first.ID, Triggers: run.Triggers, Scope: &scope, Slot: run.Slot, Attempt: run.Attempt,
		StartedAt: startedAt, FinishedAt: finished, Instance: w.cfg.Instance,
	}
	if res.Results == nil {
		res.Results = map[string]any{}
	}
	if runErr != nil {
		res.Status = events.StatusFailed
		res.ErrorMessage, res.ErrorDetails = describe(runErr)
		res.DetailsPublic = detailsPublic(runErr)
		log.Warn("run failed", "error_message", res.ErrorMessage, "error_details", res.ErrorDetails)
	}
	if len(scope.Skip) > 0 {
		res.Results["tenants_skipped"] = len(scope.Skip)
	}
	// Each firm's slice, before the result: the gateway shows each firm its own.
	parts := events.SplitSlices(sliceStatuses(report.Tenants, res.Status))
	res.Slices, res.SliceParts = len(report.Tenants), len(parts)
	ctx := w.runCtx
	for i, part := range parts {
		s := events.Slices{RunID: run.ID, JobName: job.Name, Attempt: run.Attempt, Part: i, Parts: len(parts), FinishedAt: finished, Tenants: part}
		if !w.publishRetrying(ctx, log, events.SlicesSubject(job.Name), events.SlicesMsgID(run.ID, run.Attempt, i), s) {
			_ = msg.Nak()
			return
		}
	}
	if !w.publishRetrying(ctx, log, events.ResultSubject(job.Name), "result:"+run.ID, res) {
		_ = msg.Nak()
		return
	}
	if _, err := jobstate.Update(ctx, w.runs, job.Name, func(r *jobstate.Runs) error {
		if r.Current == nil || r.Current.RunID != run.ID {
			return jobstate.ErrNoChange
		}
		r.Current = nil
		return nil
	}); err != nil {
		log.Warn("cannot clear current run", "err", err)
	}
	if err := msg.DoubleAck(ctx); err != nil {
		log.Warn("ack of run order failed; a redelivery will be dropped or re-run idempotently", "err", err)
	}
	w.cfg.Metrics.runs.WithLabelValues(job.Name, res.Status).Inc()
	w.cfg.Metrics.duration.WithLabelValues(job.Name).Observe(finished.Sub(startedAt).Seconds())
	log.Info("run finished", "status", res.Status, "execution_time_ms", res.ExecutionTimeMS, "results", res.Results)
}

// publishRetrying publishes until it succeeds or the run is abandoned (false).
func (w *Worker) publishRetrying(ctx context.Context, log *slog.Logger, subject, msgID string, v any) bool {
	for attempt := 0; ; attempt++ {
		err := w.publish(ctx, subject, msgID, v)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		log.Warn("cannot publish, retrying", "subject", subject, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(min(time.Duration(attempt+1)*500*time.Millisecond, 5*time.Second)):
		}
	}
}

// sliceStatuses gives every slice a status: its own, else the run's.
func sliceStatuses(in []events.TenantSlice, status string) []events.TenantSlice {
	out := make([]events.TenantSlice, len(in))
	for i, s := range in {
		if s.Status == "" {
			s.Status = status
		}
		if s.Results == nil {
			s.Results = map[string]any{}
		}
		out[i] = s
	}
	return out
}

// detailsPublic says whether an error's text may be shown to every firm's people: a
// connection refused, a timeout or a server going away says nothing about anyone's
// data; a failed statement may quote it (a key, a value).
func detailsPublic(err error) bool {
	var f *Failure
	if errors.As(err, &f) && f.Panicked {
		return false
	}
	var sqlErr interface{ SQLState() string }
	if errors.As(err, &sqlErr) {
		switch state := sqlErr.SQLState(); {
		case strings.HasPrefix(state, "08"), state == "57P01", state == "57P02", state == "57P03", state == "53300":
			return true // connection exceptions, the server shutting down, too many connections
		default:
			return false
		}
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	return false
}

// describe splits an error into the sentence people read and the cause engineers read.
func describe(err error) (message, details string) {
	var f *Failure
	if errors.As(err, &f) {
		return f.Message, f.Err.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "Job timed out", err.Error()
	}
	msg := err.Error()
	if i := strings.Index(msg, ": "); i > 0 {
		return "Job failed: " + msg[:i], msg
	}
	return "Job failed: " + msg, msg
}

func (w *Worker) publish(ctx context.Context, subject, msgID string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("worker: encode %s: %w", subject, err)
	}
	pubCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := w.cfg.JS.Publish(pubCtx, subject, data, jetstream.WithMsgID(msgID)); err != nil {
		return fmt.Errorf("worker: publish %s: %w", subject, err)
	}
	return nil
}
