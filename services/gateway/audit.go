package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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
	// raw is details already encoded (an event stored as it came); it wins over details.
	raw       []byte
	dedupeKey string
	at        time.Time
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

// rejectionStatement is a rejection's upsert.
func rejectionStatement(res events.Result) (string, pgx.NamedArgs, error) {
	minute, subject, count := res.Minute, res.Subject, max(res.Count, 1)
	if minute.IsZero() { // a rejection published before they were counted
		minute, subject = res.FinishedAt.UTC().Truncate(time.Minute), events.TriggerSubject(res.JobName)+"#"+res.TriggerID
	}
	details, err := json.Marshal(res)
	if err != nil {
		return "", nil, fmt.Errorf("audit: encode rejection: %w", err)
	}
	return writeRejectionSQL, pgx.NamedArgs{
		"job": res.JobName, "details": details, "instance": res.Instance, "count": count,
		"key": "rejected:" + subject + ":" + minute.UTC().Format("2006-01-02T15:04Z"), "at": minute,
	}, nil
}

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
