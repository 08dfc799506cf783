package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/tenancy"
)

// Audit action types written by the gateway.
const (
	ActionExecution       = "background_job_execution"
	ActionTrigger         = "background_job_trigger"
	ActionTriggerRejected = "background_job_trigger_rejected"
	ActionMissed          = "background_job_missed"
	ActionPaused          = "background_job_paused"
	ActionResumed         = "background_job_resumed"
	ActionScheduleChanged = "background_job_schedule_changed"
)

const insertAudit = `
INSERT INTO audit_log (tenant_id, user_id, action_type, entity_type, entity_id, details, dedupe_key, "timestamp")
VALUES ($1, $2, $3, 'background_job', $4, $5, $6, $7)
ON CONFLICT (dedupe_key) DO NOTHING`

// auditRow is one row the gateway writes. dedupeKey makes the write idempotent.
type auditRow struct {
	tenantID, userID *string
	action           string
	job              string
	details          any
	dedupeKey        string
	at               time.Time
}

// execer is a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func writeAudit(ctx context.Context, pool execer, r auditRow) error {
	details, err := json.Marshal(r.details)
	if err != nil {
		return fmt.Errorf("audit: encode details: %w", err)
	}
	if r.at.IsZero() {
		r.at = time.Now()
	}
	if _, err := pool.Exec(ctx, insertAudit, r.tenantID, r.userID, r.action, r.job, details, r.dedupeKey, r.at); err != nil {
		return fmt.Errorf("audit: insert %s: %w", r.action, err)
	}
	return nil
}

// writeRejectionSQL keeps one row per subject and minute of rejected triggers: each
// process's sample or final count lands in details.counts under its instance (the
// larger wins, so a redelivery changes nothing) and details.count is their sum.
const writeRejectionSQL = `
INSERT INTO audit_log (action_type, entity_type, entity_id, details, dedupe_key, "timestamp")
VALUES ('` + ActionTriggerRejected + `', 'background_job', @job, @details::jsonb || jsonb_build_object('counts', jsonb_build_object(@instance::text, @count::int), 'count', @count::int), @key, @at)
ON CONFLICT (dedupe_key) DO UPDATE SET details = audit_log.details || (
    SELECT jsonb_build_object('counts', c, 'count', (SELECT sum(value::bigint) FROM jsonb_each_text(c)))
    FROM (SELECT coalesce(audit_log.details->'counts', '{}'::jsonb) || jsonb_build_object(@instance::text,
                 greatest(@count::int, coalesce((audit_log.details->'counts'->>@instance::text)::int, 0))) AS c) x)`

func writeRejection(ctx context.Context, pool *pgxpool.Pool, res events.Result) error {
	minute, subject, count := res.Minute, res.Subject, max(res.Count, 1)
	if minute.IsZero() { // a rejection published before they were counted
		minute, subject = res.FinishedAt.UTC().Truncate(time.Minute), events.TriggerSubject(res.JobName)+"#"+res.TriggerID
	}
	details, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("audit: encode rejection: %w", err)
	}
	if _, err := pool.Exec(ctx, writeRejectionSQL, pgx.NamedArgs{
		"job": res.JobName, "details": details, "instance": res.Instance, "count": count,
		"key": "rejected:" + subject + ":" + minute.UTC().Format("2006-01-02T15:04Z"), "at": minute,
	}); err != nil {
		return fmt.Errorf("audit: insert rejection: %w", err)
	}
	return nil
}

// writeSlicesSQL stores a run's firm slices, one row per firm; a later attempt of the
// run replaces an earlier one's rows, a redelivery of the same attempt changes nothing.
// Slices of firms that no longer exist are dropped.
const writeSlicesSQL = `
INSERT INTO job_run_tenants (tenant_id, run_id, job_name, attempt, status, results, errors, error_message, finished_at)
SELECT s.tenant_id, @run_id::uuid, @job_name, @attempt, s.status, coalesce(s.results, '{}'), coalesce(s.errors, '[]'),
       nullif(s.error_message, ''), @finished_at
FROM jsonb_to_recordset(@slices::jsonb) AS s(tenant_id uuid, status text, results jsonb, errors jsonb, error_message text)
JOIN tenants t ON t.id = s.tenant_id
ON CONFLICT (run_id, tenant_id) DO UPDATE
    SET attempt = excluded.attempt, status = excluded.status, results = excluded.results,
        errors = excluded.errors, error_message = excluded.error_message, finished_at = excluded.finished_at
    WHERE job_run_tenants.attempt < excluded.attempt`

// writeFailedForAllSQL gives every covered firm a failed row for a run that failed
// before it could compute any firm's part (the database went away): each firm's
// history shows the failure.
var writeFailedForAllSQL = `
INSERT INTO job_run_tenants (tenant_id, run_id, job_name, attempt, status, error_message, finished_at)
SELECT t.id, @run_id::uuid, @job_name, @attempt, 'failed', @error_message, @finished_at
FROM tenants t
WHERE ` + tenancy.Filter("t.id") + `
ON CONFLICT (run_id, tenant_id) DO UPDATE
    SET attempt = excluded.attempt, status = excluded.status, results = '{}', errors = '[]',
        error_message = excluded.error_message, finished_at = excluded.finished_at
    WHERE job_run_tenants.attempt < excluded.attempt`

func writeSlices(ctx context.Context, pool *pgxpool.Pool, s events.Slices) error {
	data, err := json.Marshal(s.Tenants)
	if err != nil {
		return fmt.Errorf("audit: encode slices: %w", err)
	}
	if _, err := pool.Exec(ctx, writeSlicesSQL, pgx.NamedArgs{
		"run_id": s.RunID, "job_name": s.JobName, "attempt": max(s.Attempt, 1), "finished_at": s.FinishedAt, "slices": data,
	}); err != nil {
		return fmt.Errorf("audit: insert slices of run %s: %w", s.RunID, err)
	}
	return nil
}

// writeExecution writes a run's audit row and, for a run that failed for every firm,
// each covered firm's failed slice, in one transaction.
func writeExecution(ctx context.Context, pool *pgxpool.Pool, res events.Result) error {
	row := auditRow{action: ActionExecution, job: res.JobName, details: res, dedupeKey: "execution:" + res.RunID, at: res.FinishedAt}
	if res.Status != events.StatusFailed || res.Slices > 0 || res.Scope == nil {
		return writeAudit(ctx, pool, row)
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := writeAudit(ctx, tx, row); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, writeFailedForAllSQL, tenancy.With(pgx.NamedArgs{
			"run_id": res.RunID, "job_name": res.JobName, "attempt": max(res.Attempt, 1),
			"error_message": res.ErrorMessage, "finished_at": res.FinishedAt,
		}, *res.Scope)); err != nil {
			return fmt.Errorf("audit: failed slices of run %s: %w", res.RunID, err)
		}
		return nil
	})
}

// persist turns one event from the JOBS_EVENTS stream into its rows. It returns
// errInvalid for events that can never be written.
func persist(ctx context.Context, pool *pgxpool.Pool, subject string, data []byte) error {
	switch {
	case strings.HasPrefix(subject, events.PrefixSlices):
		s, err := events.DecodeSlices(data)
		if err != nil {
			return err
		}
		return writeSlices(ctx, pool, s)
	case strings.HasPrefix(subject, events.PrefixResult):
		res, err := events.DecodeResult(data)
		if err != nil {
			return err
		}
		if res.Status == events.StatusRejected {
			return writeRejection(ctx, pool, res)
		}
		return writeExecution(ctx, pool, res)
	case strings.HasPrefix(subject, events.PrefixStatus):
		st, err := events.DecodeStatus(data)
		if err != nil {
			return err
		}
		switch {
		case st.State == events.StateQueued && st.Trigger == events.KindManual && st.Source != events.SourceAPI:
			// Triggers from the API are recorded with the user at request time; this
			// catches triggers from the nats CLI and other publishers, whose requested_by
			// is whatever they typed.
			return writeAudit(ctx, pool, auditRow{
				action: ActionTrigger, job: st.JobName,
				details: map[string]any{
					"job_name": st.JobName, "trigger_id": st.TriggerID, "run_id": st.RunID,
					"requested_by": st.RequestedBy, "reason": st.Reason, "coalesced": st.Coalesced,
					"source": events.SourceNATS,
				},
				dedupeKey: "trigger:" + st.TriggerID, at: st.At,
			})
		case st.State == events.StateMissed:
			return writeAudit(ctx, pool, auditRow{
				action: ActionMissed, job: st.JobName,
				details:   map[string]any{"job_name": st.JobName, "slot": st.Slot},
				dedupeKey: "missed:" + st.JobName + ":" + st.Slot.UTC().Format(time.RFC3339), at: st.At,
			})
		}
		return nil
	}
	return nil
}

// consumeAudit persists events until ctx ends. A database outage naks with a growing
// delay: nothing is lost, nothing is acked before its row is committed.
func (g *Gateway) consumeAudit(ctx context.Context) (jetstream.ConsumeContext, error) {
	cons, err := g.cfg.JS.Consumer(ctx, "JOBS_EVENTS", "gateway-events")
	if err != nil {
		return nil, fmt.Errorf("gateway: audit consumer: %w", err)
	}
	return cons.Consume(func(msg jetstream.Msg) {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err := persist(wctx, g.cfg.Pool, msg.Subject(), msg.Data())
		if err == nil {
			if aerr := msg.DoubleAck(wctx); aerr != nil {
				g.log.Warn("audit: ack failed; the redelivery will be a no-op", "err", aerr)
			}
			if strings.HasPrefix(msg.Subject(), events.PrefixResult) {
				g.metrics.persisted.Inc()
			}
			return
		}
		g.metrics.persistErrors.Inc()
		dead, sendErr := g.dead.Failed(wctx, msg, bus.ConsumerGatewayEvents, bus.AuditBound, err)
		switch {
		case sendErr != nil:
			g.log.Error("audit: cannot keep a dead letter; the event will be delivered again", "subject", msg.Subject(), "err", sendErr, "cause", err)
		case dead:
			g.log.Error("audit: event terminated and kept in "+bus.StreamDead, "subject", msg.Subject(), "err", err)
		default:
			g.log.Warn("audit: cannot persist, will retry", "subject", msg.Subject(), "err", err)
		}
	})
}
