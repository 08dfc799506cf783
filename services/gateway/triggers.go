package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
)

// waiters lets a Run Now request wait for the worker's answer: the `queued` status that
// names the run its trigger started or joined.
type waiters struct {
	mu sync.Mutex
	m  map[string]chan events.Status
}

func (w *waiters) add(triggerID string) (<-chan events.Status, func()) {
	ch := make(chan events.Status, 1)
	w.mu.Lock()
	if w.m == nil {
		w.m = map[string]chan events.Status{}
	}
	w.m[triggerID] = ch
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		delete(w.m, triggerID)
		w.mu.Unlock()
	}
}

func (w *waiters) deliver(s events.Status) {
	if s.State != events.StateQueued || s.TriggerID == "" {
		return
	}
	w.mu.Lock()
	ch, ok := w.m[s.TriggerID]
	w.mu.Unlock()
	if ok {
		select {
		case ch <- s:
		default:
		}
	}
}

// Accepted is the answer to Run Now.
type Accepted struct {
	JobName   string `json:"job_name"`
	TriggerID string `json:"trigger_id"`
	// RunID is the run this trigger started or joined; empty if no worker answered in
	// time (the trigger is stored and will be answered when one does).
	RunID     string `json:"run_id,omitempty"`
	Coalesced bool   `json:"coalesced"`
	State     string `json:"state"`
	Message   string `json:"message"`
}

var (
	errUnknownJob = errors.New("unknown job")
	errBadRequest = errors.New("bad request")
)

// Requester identifies who pressed Run Now: a firm's person, or the platform operator.
type Requester struct {
	UserID   string
	TenantID string
	Name     string
	Operator bool
}

// RunNow stores a trigger for job and waits up to wait for the run it starts or joins.
// The trigger row in audit_log (who, why, when) is committed before the trigger is sent.
// The trigger goes on jobs.trigger.<job>.api with the verified requester: a firm's
// person's Run Now runs the job for their firm, the operator's for every firm.
func (g *Gateway) RunNow(ctx context.Context, job, reason string, who Requester, wait time.Duration) (Accepted, error) {
	if _, ok := catalog.Lookup(job); !ok {
		return Accepted{}, fmt.Errorf("%w %q: known jobs are %s", errUnknownJob, job, strings.Join(catalog.Names(), ", "))
	}
	t := events.Trigger{Reason: reason, RequestedBy: who.Name, Requester: &events.Requester{
		TenantID: who.TenantID, ProfileID: who.UserID, Name: who.Name, Operator: who.Operator,
	}}
	if who.Operator {
		t.Requester.TenantID, t.Requester.ProfileID = "", ""
	}
	if err := t.Validate(); err != nil {
		return Accepted{}, fmt.Errorf("%w: %v", errBadRequest, strings.TrimPrefix(err.Error(), events.ErrInvalidPayload.Error()+": "))
	}
	triggerID := uuid.NewString()
	row := auditRow{
		action: ActionTrigger, job: job, dedupeKey: "trigger:" + triggerID, at: g.cfg.Clock.Now(),
		details: map[string]any{
			"job_name": job, "trigger_id": triggerID, "requested_by": who.Name, "reason": reason, "source": events.SourceAPI,
			"operator": who.Operator,
		},
	}
	if who.UserID != "" && !who.Operator {
		row.userID = &who.UserID
	}
	if who.TenantID != "" && !who.Operator {
		row.tenantID = &who.TenantID
	}
	if err := writeAudit(ctx, g.cfg.Pool, row); err != nil {
		return Accepted{}, err
	}
	answer, done := g.waiters.add(triggerID)
	defer done()
	data, _ := json.Marshal(t)
	if err := g.storeTrigger(ctx, events.APITriggerSubject(job), data, triggerID); err != nil {
		return Accepted{}, err
	}
	acc := Accepted{JobName: job, TriggerID: triggerID, State: "accepted",
		Message: "Trigger stored; no worker has answered yet. The run starts when the " + job + " service is up."}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case s := <-answer:
		acc.RunID, acc.Coalesced, acc.State = s.RunID, s.Coalesced, events.StateQueued
		acc.Message = "Run queued"
		if s.Coalesced {
			acc.Message = "Joined the run already queued; it will start when the current run ends"
		}
	case <-timer.C:
	case <-ctx.Done():
	}
	return acc, nil
}

// TriggerNotStored is a Run Now that JetStream did not confirm. Maybe says whether it
// may have been stored all the same: a publish that got no answer may have reached the
// stream (a leader that stored it and lost its connection, a message held in the
// client's buffer while it reconnected), one that was refused was not.
type TriggerNotStored struct {
	TriggerID string
	Maybe     bool
	Err       error
}

func (e *TriggerNotStored) Error() string {
	return fmt.Sprintf("gateway: trigger %s not confirmed (may be stored: %t): %v", e.TriggerID, e.Maybe, e.Err)
}

func (e *TriggerNotStored) Unwrap() error { return e.Err }

// Stored is what the answer tells the person: "unknown" or "no".
func (e *TriggerNotStored) Stored() string {
	if e.Maybe {
		return "unknown"
	}
	return "no"
}

// Message is the sentence the dashboard shows.
func (e *TriggerNotStored) Message() string {
	if e.Maybe {
		return "NATS JetStream, which keeps Run Now until a worker takes it, did not confirm this one (too few NATS servers may be up). " +
			"It may have been stored: if so it runs when JetStream is back, and shows on the dashboard then. " +
			"Pressing Run Now again cannot start two runs at once: presses while a run is queued join it."
	}
	return "Run Now was not stored: NATS JetStream, which keeps it until a worker takes it, is unavailable (too few NATS servers are up). " +
		"Nothing will run from this press; press Run Now again when the dashboard's health says NATS is back."
}

// storeTriggerFor is how long Run Now goes on trying to store a trigger: longer than a
// stream leader's election when a NATS node is lost. A stream's followers wait 4 to 9 s
// (nats-server's raft election timeout) before they elect a new leader for one that
// went silent, and the election takes a moment more; the cluster test saw 6 to 7 s.
const storeTriggerFor = 12 * time.Second

// configWriteFor bounds a pause, schedule or hours change's write to the config
// bucket, which retries while JetStream is unavailable: as long as Run Now's, then the
// request fails (503) instead of hanging for as long as the browser waits.
const configWriteFor = storeTriggerFor

// storeTrigger publishes a trigger until JetStream confirms it or storeTriggerFor is
// over, every attempt with the trigger's id as its message id, so that trying again is
// safe (bus.Publish).
func (g *Gateway) storeTrigger(ctx context.Context, subject string, data []byte, triggerID string) error {
	maybe, err := bus.Publish(ctx, g.cfg.JS, subject, data, triggerID, storeTriggerFor)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	default:
		return &TriggerNotStored{TriggerID: triggerID, Maybe: maybe, Err: err}
	}
}

// publishEvent publishes one of the gateway's own events, made storable first.
func (g *Gateway) publishEvent(ctx context.Context, subject, msgID string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = g.cfg.JS.Publish(ctx, subject, events.CleanJSON(data), jetstream.WithMsgID(msgID))
	return err
}

// flushRejections publishes, every few seconds, the final counts of the minutes of
// rejected unknown-job triggers that are over.
func (g *Gateway) flushRejections() {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-g.done:
			return
		case <-t.C:
		}
		finals, ids, dropped := g.rejections.Due(g.cfg.Clock.Now())
		for i, f := range finals {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := g.publishEvent(ctx, events.ResultSubject(f.JobName), ids[i], f); err != nil {
				g.log.Warn("cannot publish a minute's count of rejected triggers", "subject", f.Subject, "count", f.Count, "err", err)
			}
			cancel()
		}
		if dropped > 0 {
			g.log.Warn("triggers for unknown jobs on too many subjects in a minute: counted, not stored", "count", dropped)
		}
	}
}

// answerUnknownJobs replies to triggers for jobs that do not exist. JetStream does not
// store them (the JOBS stream captures only known jobs), so they arrive here over core
// NATS; one gateway of the queue group answers each with a rejection on its result
// subject, which is itself stored and audited.
func (g *Gateway) answerUnknownJobs() (*nats.Subscription, error) {
	return g.cfg.NC.QueueSubscribe(events.PrefixTrigger+">", "gateway-unknown-jobs", func(m *nats.Msg) {
		job := events.JobFromSubject(m.Subject)
		if _, ok := catalog.Lookup(job); ok && (m.Subject == events.TriggerSubject(job) || m.Subject == events.APITriggerSubject(job)) {
			return
		}
		if job == "" || strings.ContainsAny(job, "*>") {
			return
		}
		body := string(m.Data)
		if len(body) > 200 {
			body = body[:200] + "…"
		}
		triggerID := m.Header.Get(jetstream.MsgIDHeader)
		if triggerID == "" {
			triggerID = uuid.NewString()
		}
		now := g.cfg.Clock.Now()
		res := events.Result{
			JobName: job, Status: events.StatusRejected, Results: map[string]any{},
			ErrorMessage: fmt.Sprintf("Trigger rejected: unknown job %q (known jobs: %s)", job, strings.Join(catalog.Names(), ", ")),
			ErrorDetails: fmt.Sprintf("subject %s, body %q", m.Subject, body),
			TriggerID:    triggerID, FinishedAt: now,
		}
		g.metrics.rejected.Inc()
		sample, id, ok := g.rejections.Note(m.Subject, res, now)
		if !ok {
			return // counted; this minute's sample of the subject is stored already
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.publishEvent(ctx, events.ResultSubject(job), id, sample); err != nil {
			g.log.Warn("cannot answer trigger for unknown job", "job_name", job, "err", err)
		}
		g.log.Warn("trigger for unknown job rejected", "job_name", job)
	})
}
