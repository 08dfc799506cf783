package notify

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lexhq/gstjobs/internal/tenancy"
)

// Channels, as written to audit_log.details.channel.
const (
	ChannelInApp = "in_app"
	ChannelEmail = "email"
)

// ActionNotificationSent is the audit_log.action_type of every delivery.
const ActionNotificationSent = "notification_sent"

// DB is what Enqueue and SendPending need: a pool, a connection or a transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Batch is a set of notifications a job wants delivered, described by one query.
//
// Query is a SELECT whose rows are the notifications, one per person per thing,
// with these columns:
//
//	tenant_id     uuid         the firm
//	user_id       uuid         the recipient, a profile of that firm
//	kind          text         notifications.kind ('hearing_reminder', 'deadline_alert', ...)
//	title, body   text         what the person reads; title is the e-mail subject
//	entity_type   text         what it is about ('hearing', 'task', 'case')
//	entity_id     uuid
//	dedupe_key    text         unique per notification: the same key is never delivered twice
//	about         text         what it is about in words, for error reports
//	not_after     timestamptz  when an undelivered e-mail stops being worth sending (or NULL)
//	audit_details jsonb        merged into each notification_sent audit row
//
// Query may use named arguments (@now) from Args; the names notify_source and
// notify_run_id are reserved.
type Batch struct {
	Query string
	Args  pgx.NamedArgs
	// Source is the job (its name) that wants them: audit rows carry it as job_name,
	// and SendPending sends the e-mail queue of one source.
	Source string
	RunID  string
	// Email queues an e-mail delivery for each notification of the batch, new or
	// already delivered in-app by an earlier run (so turning e-mail on reaches the
	// notifications that are still relevant), and marks the batch's unsent e-mails as
	// wanted by RunID: SendPending with that RunID sends exactly those. An e-mail an
	// earlier run queued but this batch no longer contains (the hearing was cancelled)
	// is not sent.
	Email bool
	// EachRun plans the statement for this batch's arguments every time it runs
	// (tenancy.EachRun: an unnamed statement) instead of leaving it to the session's
	// cached plan, which may be a generic plan made for no firms in particular.
	EachRun bool
	// With is common table expressions (a WITH list, without the WITH) that Query and
	// Also may name: what the job's query is built from, so that the statement that
	// delivers the notifications also answers Also from the same rows, in the same
	// snapshot, without a statement of its own reading them again. The names wanted,
	// created, audited and queued are the statement's own.
	With string
	// Also is a scalar SQL expression the statement returns beside what it delivered
	// (a job's per-firm counts of what it found, over With's CTEs), scanned into
	// AlsoInto. Empty: nothing more.
	Also     string
	AlsoInto any
}

// Enqueued is what Enqueue did.
type Enqueued struct {
	// InApp is the notifications created, each one an in-app delivery with its audit row.
	InApp int
	// InAppByTenant is InApp per firm (firms with none are absent).
	InAppByTenant map[string]int
	// EmailsQueued is the e-mail deliveries newly queued for SendPending.
	EmailsQueued int
}

// enqueueSQL delivers a batch in one statement. A notification's id is derived from
// its dedupe key, so the audit rows and e-mail deliveries are written straight from
// the batch, keyed by that id, with no join between the batch and what the insert
// returned (the planner cannot estimate either, and a nested loop over two CTE
// scans of 100,000 rows each takes hours). An audit row or delivery that already
// exists for a notification delivered earlier conflicts and is skipped, exactly
// as the notification itself is. The batch is written in the order its query gives:
// sorting it by the notifications' ids first, so that the inserts into the two unique
// indexes keyed by them walk each from one end to the other, cost more than it saved
// once those indexes are in memory (the hearing reminders' 180,000: 5.6 s a run
// sorted, 4.9 s not, four runs each, interleaved).
const enqueueSQL = `
WITH %swanted AS MATERIALIZED (
    SELECT q.*, md5('notify:' || q.dedupe_key)::uuid AS notification_id
    FROM (
%s
    ) AS q
),
created AS (
    INSERT INTO notifications (id, tenant_id, user_id, kind, title, body, entity_type, entity_id, dedupe_key)
    SELECT notification_id, tenant_id, user_id, kind, title, body, entity_type, entity_id, dedupe_key FROM wanted
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING tenant_id
),
audited AS (
    INSERT INTO audit_log (tenant_id, user_id, action_type, entity_type, entity_id, details, dedupe_key)
    SELECT w.tenant_id, w.user_id, 'notification_sent', w.entity_type, w.entity_id::text,
           coalesce(w.audit_details, '{}'::jsonb) || jsonb_build_object(
               'channel', 'in_app', 'kind', w.kind, 'notification_id', w.notification_id,
               'job_name', @notify_source::text, 'run_id', @notify_run_id::text),
           'notification_sent:in_app:' || w.notification_id
    FROM wanted w
    ON CONFLICT (dedupe_key) DO NOTHING
)%s
SELECT (SELECT count(*) FROM created),
       (SELECT coalesce(jsonb_object_agg(tenant_id, n), '{}') FROM (
            SELECT tenant_id, count(*) AS n FROM created GROUP BY tenant_id) c)%s`

// The e-mail part: a delivery for every notification of the batch, new or not,
// marked as wanted by this run unless it was sent already. (xmax = 0) tells a new
// row from one updated.
const enqueueEmailSQL = `,
queued AS (
    INSERT INTO notification_deliveries AS d
        (tenant_id, notification_id, channel, source, about, not_after, audit_details, wanted_by)
    SELECT w.tenant_id, w.notification_id, 'email', @notify_source::text, coalesce(w.about, ''), w.not_after,
           coalesce(w.audit_details, '{}'::jsonb), @notify_run_id::text
    FROM wanted w
    ON CONFLICT (notification_id, channel) DO UPDATE
        SET wanted_by = excluded.wanted_by, about = excluded.about, not_after = excluded.not_after,
            audit_details = excluded.audit_details
        WHERE d.status <> 'sent'
    RETURNING (xmax = 0) AS inserted
)`

// Enqueue delivers a batch in-app and queues its e-mails, in one statement over all
// tenants: notifications already delivered (same dedupe_key) are left alone, so running
// it again delivers nothing twice. Each new notification gets its notification_sent
// audit row (channel in_app) in the same statement.
//
// The id of a notification enqueued here is a function of its dedupe key (a UUID made
// from its MD5), which is what keeps the statement free of joins; rows with the same
// dedupe keys must not be written to notifications by other means.
func Enqueue(ctx context.Context, db DB, b Batch) (Enqueued, error) {
	if b.Query == "" || b.Source == "" {
		return Enqueued{}, errors.New("notify: enqueue: a batch needs a query and a source")
	}
	args := maps.Clone(b.Args)
	if args == nil {
		args = pgx.NamedArgs{}
	}
	args["notify_source"] = b.Source
	args["notify_run_id"] = b.RunID

	if (b.Also == "") != (b.AlsoInto == nil) {
		return Enqueued{}, errors.New("notify: enqueue: Also and AlsoInto go together")
	}

	opts := tenancy.QueryArgs(b.EachRun, args)
	var out Enqueued
	with := ""
	if b.With != "" {
		with = b.With + ",\n"
	}
	// The statement returns the in-app counts, then the e-mails queued (with e-mail),
	// then Also: scanned into into, in that order.
	email, returned := "", ""
	into := []any{&out.InApp, &out.InAppByTenant}
	if b.Email {
		email, returned = enqueueEmailSQL, `, (SELECT count(*) FROM queued WHERE inserted)`
		into = append(into, &out.EmailsQueued)
	}
	if b.Also != "" {
		returned += ",\n       (" + b.Also + ")"
		into = append(into, b.AlsoInto)
	}
	q := fmt.Sprintf(enqueueSQL, with, b.Query, email, returned)
	if err := db.QueryRow(ctx, q, opts...).Scan(into...); err != nil {
		return Enqueued{}, fmt.Errorf("notify: enqueue %s: %w", b.Source, err)
	}
	return out, nil
}
