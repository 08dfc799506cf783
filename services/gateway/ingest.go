package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/tenancy"
)

// The audit consumer writes events in batches: it takes what has arrived (up to
// ingestBatch messages, and, with Config.AuditLinger set, waiting that long for more once
// the first is in), plans each message's rows, writes the whole batch as a few multi-row
// statements sent in one round trip and run as one transaction, and acks every message
// after the commit. Without a linger a lone result is written at once, and batches form
// by themselves under load: what arrives while one batch is written is the next. A
// message that writes nothing (a running status, a heartbeat) is acked at once. A
// crash between the commit and the acks redelivers messages whose rows are there: every
// row has a unique key (ON CONFLICT), so the redelivery writes nothing.
//
// When a batch fails for a reason that will not pass (one event's value the database
// refuses), it is written again one message at a time, so that only the poisoned one
// goes to JOBS_DEAD; a temporary failure (the database away) hands the whole batch
// back with a backoff.
const ingestBatch = 1000

// plan is what one event writes.
type plan struct {
	audit      []auditRow
	slices     []sliceRow
	failedAll  []events.Result
	rejections []events.Result
}

func (p plan) empty() bool {
	return len(p.audit) == 0 && len(p.slices) == 0 && len(p.failedAll) == 0 && len(p.rejections) == 0
}

func (p *plan) add(o plan) {
	p.audit = append(p.audit, o.audit...)
	p.slices = append(p.slices, o.slices...)
	p.failedAll = append(p.failedAll, o.failedAll...)
	p.rejections = append(p.rejections, o.rejections...)
}

// sliceRow is one firm's slice of one run.
type sliceRow struct {
	RunID        string          `json:"run_id"`
	JobName      string          `json:"job_name"`
	Attempt      int             `json:"attempt"`
	FinishedAt   time.Time       `json:"finished_at"`
	TenantID     string          `json:"tenant_id"`
	Status       string          `json:"status"`
	Results      json.RawMessage `json:"results"`
	Errors       []string        `json:"errors"`
	ErrorMessage string          `json:"error_message"`
}

// planEvent decodes one event of JOBS_EVENTS into its rows; an error wraps
// events.ErrInvalidPayload when the event can never be written.
func planEvent(subject string, data []byte) (plan, error) {
	var p plan
	switch {
	case strings.HasPrefix(subject, events.PrefixSlices):
		s, err := events.DecodeSlices(data)
		if err != nil {
			return p, err
		}
		for _, t := range s.Tenants {
			results, _ := json.Marshal(t.Results)
			errs := t.Errors
			if errs == nil {
				errs = []string{}
			}
			p.slices = append(p.slices, sliceRow{RunID: s.RunID, JobName: s.JobName, Attempt: max(s.Attempt, 1), FinishedAt: s.FinishedAt,
				TenantID: t.TenantID, Status: t.Status, Results: results, Errors: errs, ErrorMessage: t.ErrorMessage})
		}
	case strings.HasPrefix(subject, events.PrefixResult):
		res, err := events.DecodeResult(data)
		if err != nil {
			return p, err
		}
		if res.Status == events.StatusRejected {
			p.rejections = append(p.rejections, res)
			return p, nil
		}
		// The event is its log entry: stored as it came (decoded and checked above).
		p.audit = append(p.audit, auditRow{action: ActionExecution, job: res.JobName, raw: data, dedupeKey: "execution:" + res.RunID, at: res.FinishedAt})
		if res.Status == events.StatusFailed && res.Slices == 0 && res.Scope != nil {
			p.failedAll = append(p.failedAll, res)
		}
	case strings.HasPrefix(subject, events.PrefixStatus):
		st, err := events.DecodeStatus(data)
		if err != nil {
			return p, err
		}
		switch {
		case st.State == events.StateQueued && st.Trigger == events.KindManual && st.Source != events.SourceAPI:
			// Triggers from the API are recorded with the user at request time; this
			// catches triggers from the nats CLI and other publishers, whose requested_by
			// is whatever they typed.
			p.audit = append(p.audit, auditRow{
				action: ActionTrigger, job: st.JobName,
				details: map[string]any{
					"job_name": st.JobName, "trigger_id": st.TriggerID, "run_id": st.RunID,
					"requested_by": st.RequestedBy, "reason": st.Reason, "coalesced": st.Coalesced,
					"source": events.SourceNATS,
				},
				dedupeKey: "trigger:" + st.TriggerID, at: st.At,
			})
		case st.State == events.StateMissed:
			p.audit = append(p.audit, auditRow{
				action: ActionMissed, job: st.JobName,
				details:   map[string]any{"job_name": st.JobName, "slot": st.Slot},
				dedupeKey: "missed:" + st.JobName + ":" + st.Slot.UTC().Format(time.RFC3339), at: st.At,
			})
		}
	}
	return p, nil
}

// insertAuditRowsSQL writes many audit rows in one statement.
const insertAuditRowsSQL = `
INSERT INTO audit_log (tenant_id, user_id, action_type, entity_type, entity_id, details, dedupe_key, "timestamp")
SELECT tenant::uuid, usr::uuid, action, 'background_job', job, details::jsonb, key, at
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[])
     AS r(tenant, usr, action, job, details, key, at)
ON CONFLICT (dedupe_key) DO NOTHING`

// insertSliceRowsSQL writes many firms' slices, of one or many runs, in one statement.
const insertSliceRowsSQL = `
INSERT INTO job_run_tenants (tenant_id, run_id, job_name, attempt, status, results, errors, error_message, finished_at)
SELECT s.tenant_id, s.run_id, s.job_name, s.attempt, s.status, coalesce(s.results, '{}'), coalesce(s.errors, '[]'),
       nullif(s.error_message, ''), s.finished_at
FROM jsonb_to_recordset($1::jsonb) AS s(tenant_id uuid, run_id uuid, job_name text, attempt int, status text,
                                        results jsonb, errors jsonb, error_message text, finished_at timestamptz)
JOIN tenants t ON t.id = s.tenant_id
ON CONFLICT (run_id, tenant_id) DO UPDATE
    SET attempt = excluded.attempt, status = excluded.status, results = excluded.results,
        errors = excluded.errors, error_message = excluded.error_message, finished_at = excluded.finished_at
    WHERE job_run_tenants.attempt < excluded.attempt`

// write stores a plan in one transaction, its statements sent in one round trip: a
// batch without BEGIN runs as one implicit transaction (pgx.Conn.SendBatch), so one
// statement refused leaves nothing of the others.
func (g *Gateway) write(ctx context.Context, p plan) error {
	b, err := batchOf(p)
	if err != nil || b.Len() == 0 {
		return err
	}
	if err := g.cfg.Pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("audit: write %d rows, %d slices: %w", len(p.audit), len(p.slices), err)
	}
	return nil
}

// batchOf is a plan's statements.
func batchOf(p plan) (*pgx.Batch, error) {
	b := &pgx.Batch{}
	if n := len(p.audit); n > 0 {
		tenants, users, actions, jobs, details, keys := make([]*string, n), make([]*string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		ats := make([]time.Time, n)
		for i, r := range p.audit {
			d := r.raw
			if d == nil {
				var err error
				if d, err = json.Marshal(r.details); err != nil {
					return nil, fmt.Errorf("audit: encode details: %w", err)
				}
			}
			tenants[i], users[i], actions[i], jobs[i], details[i], keys[i], ats[i] = r.tenantID, r.userID, r.action, r.job, string(d), r.dedupeKey, r.at
		}
		b.Queue(insertAuditRowsSQL, tenants, users, actions, jobs, details, keys, ats)
	}
	if len(p.slices) > 0 {
		data, err := json.Marshal(latestSlices(p.slices))
		if err != nil {
			return nil, fmt.Errorf("audit: encode slices: %w", err)
		}
		b.Queue(insertSliceRowsSQL, data)
	}
	for _, res := range p.failedAll {
		b.Queue(writeFailedForAllSQL, tenancy.With(pgx.NamedArgs{
			"run_id": res.RunID, "job_name": res.JobName, "attempt": max(res.Attempt, 1),
			"error_message": res.ErrorMessage, "finished_at": res.FinishedAt,
		}, *res.Scope))
	}
	for _, res := range p.rejections {
		sql, args, err := rejectionStatement(res)
		if err != nil {
			return nil, err
		}
		b.Queue(sql, args)
	}
	return b, nil
}

// latestSlices keeps, for each run and firm in a batch, the slice of the latest
// attempt: one statement may not change a row twice.
func latestSlices(rows []sliceRow) []sliceRow {
	type key struct{ run, tenant string }
	at := make(map[key]int, len(rows))
	out := rows[:0:0]
	for _, r := range rows {
		k := key{r.RunID, r.TenantID}
		if i, ok := at[k]; ok {
			if r.Attempt > out[i].Attempt {
				out[i] = r
			}
			continue
		}
		at[k] = len(out)
		out = append(out, r)
	}
	return out
}

// ingester runs the audit consumer's batches.
type ingester struct {
	g    *Gateway
	msgs chan jetstream.Msg
	// linger is how long a batch waits for more once its first message is in.
	linger time.Duration
	wg     sync.WaitGroup
	// dropAcks (tests) skips the acks after a commit, as a crash right after it would.
	dropAcks func() bool
}

// consumeAudit persists events until the gateway stops.
func (g *Gateway) consumeAudit(ctx context.Context) (jetstream.ConsumeContext, error) {
	cons, err := g.cfg.JS.Consumer(ctx, bus.StreamEvents, bus.ConsumerGatewayEvents)
	if err != nil {
		return nil, fmt.Errorf("gateway: audit consumer: %w", err)
	}
	in := &ingester{g: g, msgs: make(chan jetstream.Msg, ingestBatch), linger: g.cfg.AuditLinger, dropAcks: g.cfg.dropAcks}
	g.ingest = in
	in.wg.Add(1)
	go in.loop(ctx)
	return cons.Consume(func(msg jetstream.Msg) { in.msgs <- msg }, bus.ConsumeOptions(jetstream.PullMaxMessages(ingestBatch))...)
}

// stop waits for the batch in progress after the consumer has been drained.
func (in *ingester) stop() {
	close(in.msgs)
	in.wg.Wait()
}

func (in *ingester) loop(ctx context.Context) {
	defer in.wg.Done()
	batch := make([]jetstream.Msg, 0, ingestBatch)
	for {
		first, ok := <-in.msgs
		if !ok {
			return
		}
		batch = in.collect(append(batch[:0], first))
		in.handle(ctx, batch)
	}
}

// collect adds to batch what has arrived, up to ingestBatch; with a linger, what
// arrives within it too.
func (in *ingester) collect(batch []jetstream.Msg) []jetstream.Msg {
	var linger <-chan time.Time
	if in.linger > 0 {
		t := time.NewTimer(in.linger)
		defer t.Stop()
		linger = t.C
	}
	for len(batch) < ingestBatch {
		select {
		case m, ok := <-in.msgs:
			if !ok {
				return batch
			}
			batch = append(batch, m)
			continue
		default:
		}
		if linger == nil {
			return batch
		}
		select {
		case m, ok := <-in.msgs:
			if !ok {
				return batch
			}
			batch = append(batch, m)
		case <-linger:
			return batch
		}
	}
	return batch
}

// handle plans, writes and acks one batch.
func (in *ingester) handle(ctx context.Context, batch []jetstream.Msg) {
	g := in.g
	var all plan
	var writing []jetstream.Msg
	var results int
	for _, msg := range batch {
		p, err := planEvent(msg.Subject(), msg.Data())
		switch {
		case err != nil:
			in.failed(ctx, msg, err)
		case p.empty():
			_ = msg.Ack()
		default:
			all.add(p)
			writing = append(writing, msg)
			if strings.HasPrefix(msg.Subject(), events.PrefixResult) {
				results++
			}
		}
	}
	if len(writing) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	start := time.Now()
	err := g.write(wctx, all)
	cancel()
	switch {
	case err == nil:
		now := time.Now()
		g.metrics.auditWrite.Observe(now.Sub(start).Seconds())
		for _, r := range all.audit {
			if r.action == ActionExecution && !r.at.IsZero() {
				g.metrics.auditLag.Observe(max(now.Sub(r.at), 0).Seconds())
			}
		}
		// The cards read these rows: snapshots built before them are stale.
		g.snapshots.changed()
		if g.cfg.committed != nil {
			keys := make([]string, len(all.audit))
			for i, r := range all.audit {
				keys[i] = r.dedupeKey
			}
			g.cfg.committed(keys)
		}
		if in.dropAcks != nil && in.dropAcks() {
			return
		}
		for _, msg := range writing {
			_ = msg.Ack()
		}
		g.metrics.persisted.Add(float64(results))
	case bus.Permanent(err) && len(writing) > 1:
		// One of them is poisoned: find it by writing each alone.
		g.log.Warn("audit: a batch was refused; writing its events one by one", "events", len(writing), "err", err)
		for _, msg := range writing {
			in.handle(ctx, []jetstream.Msg{msg})
		}
	default:
		for _, msg := range writing {
			in.failed(ctx, msg, err)
		}
	}
}

// failed dead-letters or hands back one message that could not be written.
func (in *ingester) failed(ctx context.Context, msg jetstream.Msg, err error) {
	g := in.g
	g.metrics.persistErrors.Inc()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	dead, sendErr := g.dead.Failed(dctx, msg, bus.ConsumerGatewayEvents, bus.AuditBound, err)
	switch {
	case sendErr != nil:
		g.log.Error("audit: cannot keep a dead letter; the event will be delivered again", "subject", msg.Subject(), "err", sendErr, "cause", err)
	case dead:
		g.log.Error("audit: event terminated and kept in "+bus.StreamDead, "subject", msg.Subject(), "err", err)
	case errors.Is(err, context.Canceled):
	default:
		g.log.Warn("audit: cannot persist, will retry", "subject", msg.Subject(), "err", err)
	}
}
