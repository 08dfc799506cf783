package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/events"
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

func writeAudit(ctx context.Context, pool *pgxpool.Pool, r auditRow) error {
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

// persist turns one event from the JOBS_EVENTS stream into its audit row. It returns
// errInvalid for events that can never be written.
func persist(ctx context.Context, pool *pgxpool.Pool, subject string, data []byte) error {
	switch {
	case strings.HasPrefix(subject, events.PrefixResult):
		res, err := events.DecodeResult(data)
		if err != nil {
			return errors.Join(errInvalid, err)
		}
		if res.Status == events.StatusRejected {
			return writeAudit(ctx, pool, auditRow{
				action: ActionTriggerRejected, job: res.JobName, details: res,
				dedupeKey: "rejected:" + res.JobName + ":" + res.TriggerID, at: res.FinishedAt,
			})
		}
		return writeAudit(ctx, pool, auditRow{
			action: ActionExecution, job: res.JobName, details: res,
			dedupeKey: "execution:" + res.RunID, at: res.FinishedAt,
		})
	case strings.HasPrefix(subject, events.PrefixStatus):
		st, err := events.DecodeStatus(data)
		if err != nil {
			return errors.Join(errInvalid, err)
		}
		switch {
		case st.State == events.StateQueued && st.Trigger == events.KindManual:
			// Triggers from the API are recorded with the user at request time under the
			// same key; this catches triggers from the nats CLI and other publishers.
			return writeAudit(ctx, pool, auditRow{
				action: ActionTrigger, job: st.JobName,
				details: map[string]any{
					"job_name": st.JobName, "trigger_id": st.TriggerID, "run_id": st.RunID,
					"requested_by": st.RequestedBy, "reason": st.Reason, "coalesced": st.Coalesced,
					"source": "nats",
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

var errInvalid = errors.New("gateway: event can never be persisted")

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
		switch {
		case err == nil:
			if aerr := msg.DoubleAck(wctx); aerr != nil {
				g.log.Warn("audit: ack failed; the redelivery will be a no-op", "err", aerr)
			}
			if strings.HasPrefix(msg.Subject(), events.PrefixResult) {
				g.metrics.persisted.Inc()
			}
		case errors.Is(err, errInvalid):
			g.log.Error("audit: unreadable event terminated", "subject", msg.Subject(), "err", err)
			_ = msg.TermWithReason(err.Error())
		default:
			md, _ := msg.Metadata()
			delay := time.Second
			if md != nil {
				delay = min(time.Duration(md.NumDelivered)*time.Second, 30*time.Second)
			}
			g.log.Warn("audit: cannot persist, will retry", "subject", msg.Subject(), "retry_in", delay, "err", err)
			g.metrics.persistErrors.Inc()
			_ = msg.NakWithDelay(delay)
		}
	})
}
