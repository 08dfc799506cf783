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
	// A retry of a run that failed for a temporary reason: the series' first run, this
	// run's attempt in the series (1 for a first run) and when the series began.
	RetryOf       string
	SeriesAttempt int
	SeriesStart   time.Time
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
	// Temporary marks a failure that may pass on its own (an SMTP server down): the run
	// is retried (see RetryDelays).
	Temporary bool
}

func (f *Failure) Error() string { return f.Message + ": " + f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

// Fail wraps err with the message the dashboard shows.
func Fail(message string, err error) error { return &Failure{Message: message, Err: err} }

// FailTemporary is Fail for a failure that may pass on its own: the run is retried.
func FailTemporary(message string, err error) error {
	return &Failure{Message: message, Err: err, Temporary: true}
}

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
	// DeadLetters keeps what the worker's consumers terminate; default: kept, not counted.
	DeadLetters *bus.DeadLetters
	// Timeouts override a job's catalog timeout (tests).
	Timeouts map[string]time.Duration
	// ShutdownGrace is how long Stop lets a run in progress finish before it is handed
	// back to JetStream for another replica; default 20s.
	ShutdownGrace time.Duration
	Metrics       *Metrics

	// SweepEvery is how often the worker looks, for each of its jobs, for a queued run
	// whose order was lost; default 5s.
	SweepEvery time.Duration
	// ResendAfter is how long a run may wait queued with nothing executing ahead of it
	// before the sweep sends its order again, and again every ResendAfter while that
	// lasts; default 10s.
	ResendAfter time.Duration
	// StuckAfter is how long the sweep goes on sending a queued run's order again before
	// it logs an error and counts the run as stuck (it goes on sending); default 2m.
	StuckAfter time.Duration

	// wrapRuns lets a test stand between the worker and the runs bucket.
	wrapRuns func(jobstate.Bucket) jobstate.Bucket
}

// silentAfter is how long a current run's executor may go without a start or heartbeat
// before the sweep stops counting on it: well past a redelivery after bus.RunAckWait,
// which resumes the run and beats again.
const silentAfter = 2 * bus.RunAckWait

// Worker runs a set of jobs. Start it once; Stop is safe to call twice.
type Worker struct {
	cfg Config
	// runs is the runs bucket as decisions read it: this process's own last write of
	// the key, else the stream leader (jobstate.LastWrites over jobstate.LeaderReads).
	// Every decision taken from it is checked by a compare-and-set (jobstate.Decide).
	runs jobstate.Bucket
	// latest reads the runs bucket from its stream leader, for the sweep, which looks
	// without deciding.
	latest jobstate.Bucket
	// async publishes events without waiting for each ack in turn (see publishAsync);
	// every ack is still awaited, with a 5 s bound.
	async jetstream.JetStream
	// pauses knows which firms paused which job.
	pauses *firmPauses
	// rejections keeps the answers to unreadable triggers to one per subject per minute.
	rejections *bus.Rejections
	log        *slog.Logger

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
	if cfg.DeadLetters == nil {
		cfg.DeadLetters = bus.NewDeadLetters(cfg.JS, nil)
	}
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = 5 * time.Second
	}
	if cfg.ResendAfter <= 0 {
		cfg.ResendAfter = 10 * time.Second
	}
	if cfg.StuckAfter <= 0 {
		cfg.StuckAfter = 2 * time.Minute
	}
	return &Worker{cfg: cfg, log: cfg.Log.With("component", "worker"), rejections: bus.NewRejections(cfg.Instance)}, nil
}

// Start begins consuming. The consumers and buckets must exist (bus.Ensure).
func (w *Worker) Start(ctx context.Context) error {
	kv, err := w.cfg.JS.KeyValue(ctx, bus.BucketRuns)
	if err != nil {
		return fmt.Errorf("worker: open runs bucket: %w", err)
	}
	w.latest = jobstate.LeaderReads(w.cfg.JS, kv)
	w.runs = jobstate.LastWrites(w.latest)
	if w.cfg.wrapRuns != nil {
		w.runs = w.cfg.wrapRuns(w.runs)
	}
	// Its own JetStream context, for the bound on each ack: without one, an ack lost
	// with a connection would stay pending for good. One request attempt's bound, as
	// bus.Publish gives each attempt: an ack lost while a stream's leader is elected
	// (a publish the new leader took before it could commit) is then published again
	// (same message id, stored once) within 2 s, not after 5 s of a run's finish
	// waiting on it.
	if w.async, err = jetstream.New(w.cfg.NC, jetstream.WithPublishAsyncTimeout(bus.AttemptTimeout)); err != nil {
		return fmt.Errorf("worker: jetstream: %w", err)
	}
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
		cc, err := intake.Consume(func(msg jetstream.Msg) { w.intake(job, msg) }, bus.ConsumeOptions()...)
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
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.sweepLoop()
	}()
	w.log.Info("worker started", "jobs", len(w.cfg.Jobs), "instance", w.cfg.Instance)
	return nil
}

// Stop stops taking work, lets a run in progress finish within ShutdownGrace, and
// otherwise hands it back to JetStream at once (handBack), so that another replica
// runs it now rather than after the ack wait.
func (w *Worker) Stop() {
	w.stopOnce.Do(func() {
		if w.cancelLoop == nil {
			return
		}
		// The triggers already delivered to this process are answered before it goes:
		// dropped, they would wait out the intake's ack wait for another replica.
		for _, cc := range w.intakes {
			cc.Drain()
		}
		drained := time.After(5 * time.Second)
		for _, cc := range w.intakes {
			select {
			case <-cc.Closed():
			case <-drained:
			}
		}
		w.cancelLoop()
		done := make(chan struct{})
		go func() { w.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(w.cfg.ShutdownGrace):
			w.log.Warn("shutdown grace over: abandoning the run in progress; it is handed back for another replica", "shutdown_grace", w.cfg.ShutdownGrace)
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
	log := w.log.With("job_name", job.Name)
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
		scope = s.For()
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
	joined, _, err := jobstate.Decide(ctx, w.runs, job.Name, func(r *jobstate.Runs) jobstate.Joined {
		return r.Join(ref, scope, newID, now)
	})
	if err != nil {
		w.retryIntake(ctx, log, job, msg, "cannot record trigger", err)
		return
	}
	runID := joined.RunID
	log = log.With("run_id", runID)
	// The order and the answer go out together, the order first, and the trigger is
	// acked once both are stored. Should the order fail and the answer be stored, the
	// trigger comes back, Join answers it again (same run, same answer's message id)
	// and the order is sent again: the run is queued in the bucket either way.
	var order sent
	if joined.Send {
		order = w.sendOrderAsync(job.Name, *joined.Queued)
	}
	status := events.Status{
		RunID: runID, JobName: job.Name, State: events.StateQueued, Trigger: ref.Kind,
		TriggerID: triggerID, Source: ref.Source, TenantID: ref.TenantID, RequestedBy: ref.RequestedBy, Reason: ref.Reason,
		Coalesced: joined.Coalesced(), Slot: ref.Slot, At: now, Instance: w.cfg.Instance,
		Scope: &scope,
	}
	if joined.Queued != nil {
		status.QueuedAt = joined.Queued.QueuedAt
		sc := joined.Queued.Scope
		status.Scope = &sc
	}
	answer := w.publishAsync(events.StatusSubject(job.Name), "queued:"+triggerID, status)
	if err := order.wait(ctx); err != nil {
		w.retryIntake(ctx, log, job, msg, "cannot send run order", err)
		return
	}
	if err := answer.wait(ctx); err != nil {
		w.retryIntake(ctx, log, job, msg, "cannot publish queued status", err)
		return
	}
	if err := msg.Ack(); err != nil {
		log.Warn("intake: ack failed; the redelivery will get the same answer", "err", err)
	}
	outcome := "new"
	if joined.Coalesced() {
		outcome = "coalesced"
	}
	w.cfg.Metrics.triggers.WithLabelValues(job.Name, outcome).Inc()
	log.Info("trigger accepted", "trigger_id", triggerID, "kind", ref.Kind, "source", ref.Source, "coalesced", joined.Coalesced())
}

// retryIntake hands a schedule slot or trigger back with a backoff after a temporary
// failure, or, past the intake's bound, keeps it in JOBS_DEAD for an operator.
func (w *Worker) retryIntake(ctx context.Context, log *slog.Logger, job catalog.Job, msg jetstream.Msg, what string, err error) {
	dead, derr := w.cfg.DeadLetters.Failed(context.WithoutCancel(ctx), msg, bus.TriggerConsumer(job.Name), bus.IntakeBound, err)
	switch {
	case derr != nil:
		log.Error("intake: "+what+" nor keep a dead letter; it will be delivered again", "err", err, "dead_letter_err", derr)
	case dead:
		log.Error("intake: "+what+"; kept in "+bus.StreamDead+" for an operator", "err", err)
	default:
		log.Warn("intake: "+what+", will retry", "err", err)
	}
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
	w.cfg.Metrics.triggers.WithLabelValues(job.Name, "rejected").Inc()
	if sample, id, ok := w.rejections.Note(msg.Subject(), res, now); ok {
		if err := w.publish(ctx, events.ResultSubject(job.Name), id, sample); err != nil {
			w.retryIntake(ctx, w.log.With("job_name", job.Name, "trigger_id", triggerID), job, msg, "cannot publish rejection", err)
			return
		}
		w.log.Warn("trigger rejected", "job_name", job.Name, "trigger_id", triggerID, "reason", res.ErrorMessage)
	}
	_ = msg.TermWithReason(res.ErrorMessage)
}

func (w *Worker) executeLoop(job catalog.Job, fn Func, cons jetstream.Consumer) {
	for w.loopCtx.Err() == nil {
		// FetchMaxWait, not a context: the client then waits a second past the pull
		// request's expiry, so an order the server hands out just before it expires is
		// still received. With a context deadline the client could give up first and the
		// order would sit unacknowledged, blocking the job for a whole ack wait.
		msgs, err := cons.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			w.log.Warn("executor: fetch failed", "job_name", job.Name, "err", err)
			select {
			case <-w.loopCtx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for msg := range msgs.Messages() {
			if w.loopCtx.Err() != nil {
				// Stopping: hand the order straight back for another replica.
				w.handBack(w.log.With("job_name", job.Name), msg)
				continue
			}
			w.execute(job, fn, msg)
		}
	}
}

// execute performs one run order.
func (w *Worker) execute(job catalog.Job, fn Func, msg jetstream.Msg) {
	log := w.log.With("job_name", job.Name)
	order, err := events.DecodeRunOrder(msg.Data())
	if err != nil {
		log.Error("executor: unreadable run order terminated and kept in "+bus.StreamDead, "err", err)
		if _, derr := w.cfg.DeadLetters.Failed(w.runCtx, msg, bus.RunConsumer(job.Name), bus.ExecutorBound, err); derr != nil {
			log.Error("executor: cannot keep the dead letter; the order will be delivered again", "err", derr)
		}
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

	// The claim, and above all a drop, is decided on the latest record only: Decide
	// writes the record back with the revision it read, and a read from behind (another
	// replica's write not yet seen) fails that check and is read again.
	claimCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	claim, _, err := jobstate.Decide(claimCtx, w.runs, job.Name, func(r *jobstate.Runs) jobstate.Claimed {
		return r.Claim(jobstate.Order{RunID: order.RunID, Seq: md.Sequence.Stream}, attempt, now)
	})
	cancel()
	if err != nil {
		dead, derr := w.cfg.DeadLetters.Failed(ctx, msg, bus.RunConsumer(job.Name), bus.ExecutorBound, err)
		switch {
		case derr != nil:
			log.Error("executor: cannot claim run nor keep a dead letter; the order will be delivered again", "err", err, "dead_letter_err", derr)
		case dead:
			log.Error("executor: cannot claim run; the order is kept in "+bus.StreamDead+" for an operator", "attempt", attempt, "err", err)
		default:
			log.Warn("executor: cannot claim run, will retry", "attempt", attempt, "err", err)
		}
		return
	}
	if claim.Verdict == jobstate.Drop {
		log.Info("executor: dropping a duplicate order: on the latest record its run is neither queued nor current under this order",
			"order_seq", md.Sequence.Stream, "attempt", attempt)
		w.cfg.Metrics.dropped.WithLabelValues(job.Name).Inc()
		_ = msg.Ack()
		return
	}
	info := claim.Run
	run := Run{
		ID: info.RunID, Job: job, Trigger: info.Trigger, RequestedBy: info.RequestedBy, Reason: info.Reason,
		Slot: info.Slot, Attempt: attempt, Triggers: info.Triggers, Now: now, Scope: w.runScope(job.Name, info),
		RetryOf: info.RetryOf, SeriesAttempt: max(info.SeriesAttempt, 1), SeriesStart: info.SeriesStart,
	}
	if run.SeriesStart.IsZero() {
		run.SeriesStart = info.QueuedAt
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
	// The running status decides nothing (the claim above did): the job starts without
	// waiting for its ack, which is checked once the job is over.
	started := w.publishAsync(events.StatusSubject(job.Name), fmt.Sprintf("running:%s:%d", run.ID, attempt), running)
	log.Info("run started", "trigger", run.Trigger, "attempt", attempt, "claim", claim.Verdict.String())
	w.cfg.Metrics.inFlight.WithLabelValues(job.Name).Inc()
	defer w.cfg.Metrics.inFlight.WithLabelValues(job.Name).Dec()

	stopBeat := w.heartbeat(job, msg, running)
	report, runErr := w.call(job, fn, run)
	stopBeat()
	if err := started.wait(ctx); err != nil {
		// Published again, so that the status is stored before the result whenever
		// JetStream can store it at all.
		if err := w.publish(ctx, events.StatusSubject(job.Name), fmt.Sprintf("running:%s:%d", run.ID, attempt), running); err != nil {
			log.Warn("executor: cannot publish running status", "err", err)
		}
	}

	if w.runCtx.Err() != nil {
		// Shutting down and the run was abandoned: hand it back, publish nothing.
		log.Warn("run abandoned at shutdown; handed back for another replica to run again")
		w.handBack(log, msg)
		return
	}
	w.finish(job, msg, run, info.StartedAt, report, runErr)
}

// handBack gives a run order back to JetStream for another replica at once: a nak,
// sent as a request so that the server confirms it, tried a few times. Without it (a
// nak lost with a connection, a process gone) the order waits out its ack wait.
func (w *Worker) handBack(log *slog.Logger, msg jetstream.Msg) {
	var err error
	for range 3 {
		if _, err = w.cfg.NC.Request(msg.Reply(), []byte("-NAK"), time.Second); err == nil {
			log.Info("run order handed back for another replica")
			return
		}
	}
	log.Warn("could not hand the run order back; another replica takes it after the ack wait", "ack_wait", bus.RunAckWait, "err", err)
}

// runScope is the firms a run does: those its triggers asked for (every firm, the
// firms that share a schedule slot, the firms whose people pressed Run Now), but not
// those of a slot or of every firm that paused the job now (a firm that asked itself
// is never skipped). A run queued before runs had scopes is for every firm.
func (w *Worker) runScope(job string, info jobstate.RunInfo) events.Scope {
	s := info.Scope.Asked()
	if s.Empty() {
		s = events.ScopeAll()
	}
	for _, t := range w.pauses.of(job) {
		if s.Covers(t) && !slices.Contains(s.Tenants, t) {
			s.Skip = append(s.Skip, t)
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
			w.log.Error("job ignored its context; abandoning it", "job_name", job.Name, "run_id", run.ID)
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
				w.log.Warn("heartbeat: in-progress failed", "job_name", job.Name, "run_id", running.RunID, "err", err)
			}
			now := w.cfg.Clock.Now()
			beat := running
			beat.State, beat.At = events.StateHeartbeat, now
			// The heartbeat status and the bucket's record of it go out together.
			told := w.publishAsync(events.StatusSubject(job.Name), fmt.Sprintf("beat:%s:%d:%d", running.RunID, running.Attempt, n), beat)
			// Bounded by the next beat: while JetStream cannot answer, the beats go on
			// trying (InProgress above first), rather than one beat waiting for it.
			bctx, bcancel := context.WithTimeout(ctx, w.cfg.Heartbeat)
			_, _, err := jobstate.Decide(bctx, w.runs, job.Name, func(r *jobstate.Runs) bool {
				return r.Beat(running.RunID, now)
			})
			bcancel()
			if err != nil && ctx.Err() == nil {
				w.log.Warn("heartbeat: cannot record it in the runs bucket", "job_name", job.Name, "run_id", running.RunID, "err", err)
			}
			_ = told.wait(ctx)
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// finish publishes the run's one result, clears it from the runs bucket and acks the
// order, in that order: a crash between steps repeats the run or the publish, and the
// result's message id and the audit row's key make the repeat harmless.
func (w *Worker) finish(job catalog.Job, msg jetstream.Msg, run Run, startedAt time.Time, report Report, runErr error) {
	log := w.log.With("job_name", job.Name, "run_id", run.ID)
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
		RetryOf: run.RetryOf, SeriesAttempt: run.SeriesAttempt,
	}
	if res.Results == nil {
		res.Results = map[string]any{}
	}
	res.Errors = capErrors(res.Errors)
	if runErr != nil {
		res.Status = events.StatusFailed
		res.ErrorMessage, res.ErrorDetails = describe(runErr)
		res.ErrorMessage = events.CleanText(res.ErrorMessage, events.MaxErrorMessageLen)
		res.ErrorDetails = events.CleanText(res.ErrorDetails, events.MaxErrorDetailsLen)
		res.DetailsPublic = detailsPublic(runErr)
		log.Warn("run failed", "error_message", res.ErrorMessage, "error_details", res.ErrorDetails)
	}
	if len(scope.Skip) > 0 {
		res.Results["tenants_skipped"] = len(scope.Skip)
	}
	retry := retryPlan(job, run, runErr, finished)
	if retry != nil {
		res.NextRetry = &events.NextRetry{At: retry.At, Attempt: retry.Attempt, MaxAttempts: retry.MaxAttempts}
		log.Warn("run failed for a temporary reason; it will be retried", "retry_at", retry.At, "attempt", retry.Attempt, "of", retry.MaxAttempts)
	}
	// Each firm's slice, before the result: the gateway shows each firm its own.
	parts := events.SplitSlices(sliceStatuses(report.Tenants, res.Status))
	res.Slices, res.SliceParts = len(report.Tenants), len(parts)
	ctx := w.runCtx
	// The heartbeat has stopped: while this replica still publishes and clears the run,
	// the order is kept in progress here (msg.InProgress), so that its ack wait cannot
	// run out and hand the finished run to another replica, which would resume it.
	keep := func() { _ = msg.InProgress() }
	if !w.publishAll(ctx, log, keep, run, parts, res) {
		w.handBack(log, msg)
		return
	}
	// Tried through a leader's election, not through a lost quorum, which the next run
	// to start settles; well inside the ack wait the order was just given again.
	keep()
	cctx, ccancel := context.WithTimeout(ctx, bus.RunAckWait-bus.HeartbeatEvery)
	cleared, _, err := jobstate.Decide(cctx, w.runs, job.Name, func(r *jobstate.Runs) bool { return r.Finish(run.ID, retry) })
	ccancel()
	switch {
	case err != nil:
		log.Warn("cannot clear current run; the next run to start replaces it", "err", err)
	case !cleared:
		log.Info("run was no longer the current run; nothing to clear")
	}
	// Acked without waiting for the server's word: the next order (MaxAckPending 1)
	// comes one round trip sooner. An ack lost with the connection is what a failed
	// double ack was too: the order comes back after the ack wait and is dropped, its
	// run being neither queued nor current any more.
	if err := msg.Ack(); err != nil {
		log.Warn("ack of run order failed; a redelivery will be dropped or re-run idempotently", "err", err)
	}
	w.cfg.Metrics.runs.WithLabelValues(job.Name, res.Status).Inc()
	if res.Status == events.StatusSuccess {
		w.cfg.Metrics.lastSuccess.WithLabelValues(job.Name).Set(float64(finished.Unix()))
	}
	w.cfg.Metrics.duration.WithLabelValues(job.Name).Observe(finished.Sub(startedAt).Seconds())
	log.Info("run finished", "status", res.Status, "execution_time_ms", res.ExecutionTimeMS, "results", res.Results)
}

// RetryDelays are the waits before the retries of a run that failed for a temporary
// reason: attempt 2 after a minute, 3 after five more, 4 after fifteen more; each only
// while the job's expected max age from the first attempt has not passed (so an SLA
// check, due every 15 minutes, is retried twice, and then its next slot takes over).
var RetryDelays = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute}

// MaxAttempts is the attempts of a series: the first run and its retries.
var MaxAttempts = len(RetryDelays) + 1

// retryPlan is the next attempt of a failed run, or nil: the run succeeded, failed for
// a reason that will not pass, used its attempts, or its retry would come too late.
func retryPlan(job catalog.Job, run Run, runErr error, now time.Time) *jobstate.Retry {
	if runErr == nil || !Retryable(runErr) {
		return nil
	}
	attempt := max(run.SeriesAttempt, 1)
	if attempt >= MaxAttempts {
		return nil
	}
	at := now.Add(RetryDelays[attempt-1])
	start := run.SeriesStart
	if start.IsZero() {
		start = run.Now
	}
	if at.After(start.Add(job.MaxAge)) {
		return nil
	}
	of := run.RetryOf
	if of == "" {
		of = run.ID
	}
	msg, _ := describe(runErr)
	return &jobstate.Retry{
		Of: of, Attempt: attempt + 1, MaxAttempts: MaxAttempts, At: at, SeriesStart: start,
		Trigger: run.Trigger, RequestedBy: run.RequestedBy, Reason: run.Reason, Slot: run.Slot,
		Triggers: run.Triggers, Scope: run.Scope.Asked(), Cause: msg,
	}
}

// Retryable tells a failure that may pass (a connection refused or lost, a timeout, a
// server going away or overloaded, an SMTP outage: see FailTemporary) from one that
// will not (a statement the database refuses, a panic, bad data).
func Retryable(err error) bool {
	var f *Failure
	if errors.As(err, &f) {
		if f.Panicked {
			return false
		}
		if f.Temporary {
			return true
		}
	}
	var sqlErr interface{ SQLState() string }
	if errors.As(err, &sqlErr) {
		switch sqlErr.SQLState()[:2] {
		case "08", "40", "53", "57":
			return true
		}
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// publishAll publishes a run's slices, then its result: sent one after the other on
// one connection, so that the stream stores them, and every subscriber hears them, in
// that order, and awaited together, each ack in one wait rather than one wait each. A
// message that was not stored is published again (same message id: stored once), the
// slices before the result, until it is or the run is abandoned (false). Only then, in
// a failure, can a result be stored before a slice part; the gateway then shows the
// firm its numbers from its history once the part is in.
func (w *Worker) publishAll(ctx context.Context, log *slog.Logger, keep func(), run Run, parts [][]events.TenantSlice, res events.Result) bool {
	type message struct {
		subject, id string
		v           any
		sent        sent
	}
	all := make([]message, 0, len(parts)+1)
	for i, part := range parts {
		s := events.Slices{RunID: run.ID, JobName: res.JobName, Attempt: run.Attempt, Part: i, Parts: len(parts), FinishedAt: res.FinishedAt, Tenants: part}
		all = append(all, message{subject: events.SlicesSubject(res.JobName), id: events.SlicesMsgID(run.ID, run.Attempt, i), v: s})
	}
	all = append(all, message{subject: events.ResultSubject(res.JobName), id: "result:" + run.ID, v: res})
	for i := range all {
		all[i].sent = w.publishAsync(all[i].subject, all[i].id, all[i].v)
	}
	for _, m := range all {
		if err := m.sent.wait(ctx); err != nil {
			log.Warn("cannot publish, retrying", "subject", m.subject, "err", err)
			if !w.publishRetrying(ctx, log, keep, m.subject, m.id, m.v) {
				return false
			}
		}
	}
	return true
}

// publishRetrying publishes until it succeeds or the run is abandoned (false), calling
// keep before each attempt (the run order stays in progress meanwhile).
func (w *Worker) publishRetrying(ctx context.Context, log *slog.Logger, keep func(), subject, msgID string, v any) bool {
	for attempt := 0; ; attempt++ {
		keep()
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

// capErrors keeps a run's problems within what a result may carry.
func capErrors(errs []string) []string {
	if len(errs) > events.MaxErrorsListed {
		errs = append(errs[:events.MaxErrorsListed-1:events.MaxErrorsListed-1], fmt.Sprintf("… and %d more problems", len(errs)-events.MaxErrorsListed+1))
	}
	for i, e := range errs {
		errs[i] = events.CleanText(e, events.MaxErrorLen)
	}
	return errs
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
		s.Errors = capErrors(s.Errors)
		s.ErrorMessage = events.CleanText(s.ErrorMessage, events.MaxErrorMessageLen)
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

// sendOrder sends the order of a queued run. Its message id is the run id, so a repeat
// within the stream's dedupe window is stored once; one after it is dropped by Claim.
func (w *Worker) sendOrder(ctx context.Context, job string, run jobstate.RunInfo) error {
	order := events.RunOrder{RunID: run.RunID, JobName: job, QueuedAt: run.QueuedAt}
	if len(run.Triggers) > 0 {
		order.First = run.Triggers[0]
	}
	return w.publish(ctx, events.RunSubject(job), run.RunID, order)
}

// sendOrderAsync is sendOrder without waiting for the ack (see publishAsync).
func (w *Worker) sendOrderAsync(job string, run jobstate.RunInfo) sent {
	order := events.RunOrder{RunID: run.RunID, JobName: job, QueuedAt: run.QueuedAt}
	if len(run.Triggers) > 0 {
		order.First = run.Triggers[0]
	}
	return w.publishAsync(events.RunSubject(job), run.RunID, order)
}

// publishTimeout bounds a publish with its retries (publish); each async publish's
// ack is awaited for one attempt's time (bus.AttemptTimeout).
const publishTimeout = 5 * time.Second

// sent is a publish on its way: wait returns once the stream stored it (nil) or
// could not. The zero sent is a publish that was not needed.
type sent struct {
	subject string
	ack     jetstream.PubAckFuture
	err     error
}

func (s sent) wait(ctx context.Context) error {
	switch {
	case s.err != nil:
		return s.err
	case s.ack == nil:
		return nil
	}
	select {
	case <-s.ack.Ok():
		return nil
	case err := <-s.ack.Err():
		return fmt.Errorf("worker: publish %s: %w", s.subject, err)
	case <-ctx.Done():
		return fmt.Errorf("worker: publish %s: %w", s.subject, ctx.Err())
	}
}

// publishAsync sends one event as publish does, without waiting for its ack: the
// caller goes on and waits later. Publishes from one goroutine reach the server, and
// are stored, in the order they were made.
func (w *Worker) publishAsync(subject, msgID string, v any) sent {
	data, err := json.Marshal(v)
	if err != nil {
		return sent{err: fmt.Errorf("worker: encode %s: %w", subject, err)}
	}
	ack, err := w.async.PublishAsync(subject, events.CleanJSON(data), jetstream.WithMsgID(msgID))
	if err != nil {
		return sent{err: fmt.Errorf("worker: publish %s: %w", subject, err)}
	}
	return sent{subject: subject, ack: ack}
}

// publish sends one event, its text made storable first (events.CleanJSON): what a job
// reports (a server's reply, a firm's data) must never make a result the gateway can
// never write.
func (w *Worker) publish(ctx context.Context, subject, msgID string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("worker: encode %s: %w", subject, err)
	}
	data = events.CleanJSON(data)
	if _, err := bus.Publish(ctx, w.cfg.JS, subject, data, msgID, publishTimeout); err != nil {
		return fmt.Errorf("worker: publish %s: %w", subject, err)
	}
	return nil
}
