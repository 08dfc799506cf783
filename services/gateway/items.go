package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
)

// The items behind a run's numbers: GET /api/jobs/{job}/runs/{run}/items?key=<key>.
//
// Each list is computed from durable facts keyed by the run, for the viewer's firm
// alone (the operator: every firm the run covered, each item with its firm's name):
//
//	rules fired, failed, escalations   automation_logs.run_id
//	notifications, reminders, alerts   audit_log notification_sent rows, details->>'run_id'
//	e-mails failed or waiting          notification_deliveries.wanted_by = the run
//	no one to notify                   the firm's slice's errors (job_run_tenants)
//	unhealthy rules, stale jobs        the health check's own lists in the slice's results
//	metrics                            analytics_snapshots of the run's snapshot_date
//	overdue tasks, SLA breaches        recomputed from tasks as of the run's finish
//	hearings                           recomputed from hearings in the run's window
//
// The recomputed lists say so (Note): they are the tasks and hearings as they stand
// now, seen at the run's time. Every statement is restricted to the viewer's tenant_id
// (or to the firms the run covered) in its WHERE clause, and reads through an index
// (migration 00041 for automation_logs and audit_log).

// ItemsLimit is the most items one answer lists; Rest counts the others.
const ItemsLimit = 100

// Item is one thing behind a number: a task, a rule fire, a notification, a delivery
// that did not go out, a problem the run reported, a rule, a job, a metric.
type Item struct {
	// TenantID and Tenant name the firm, for the platform operator only.
	TenantID  string     `json:"tenant_id,omitempty"`
	Tenant    string     `json:"tenant,omitempty"`
	Kind      string     `json:"kind"`
	ID        string     `json:"id,omitempty"`
	Title     string     `json:"title"`
	Detail    string     `json:"detail,omitempty"`
	Recipient string     `json:"recipient,omitempty"`
	Channel   string     `json:"channel,omitempty"`
	Status    string     `json:"status,omitempty"`
	Error     string     `json:"error,omitempty"`
	At        *time.Time `json:"at,omitempty"`
}

// RunItems is the answer of the items route.
type RunItems struct {
	JobName string `json:"job_name"`
	RunID   string `json:"run_id"`
	Key     string `json:"key"`
	Label   string `json:"label"`
	// About is what the list holds, in the catalog's words.
	About string `json:"about"`
	// Count is the number the viewer's results hold for the key.
	Count any    `json:"count"`
	Items []Item `json:"items"`
	// Total is how many items there are; Rest how many are not listed (past ItemsLimit).
	Total int `json:"total"`
	Rest  int `json:"rest"`
	// AsOf is the instant a recomputed list looks at; Note says how to read the list.
	AsOf *time.Time `json:"as_of,omitempty"`
	Note string     `json:"note,omitempty"`
}

// itemRun is the run as the viewer may see it: its times and the viewer's results.
type itemRun struct {
	job      catalog.Job
	runID    string
	viewer   Viewer
	started  time.Time
	finished time.Time
	results  map[string]any
}

// args are the named arguments every items statement may use.
func (q itemRun) args(extra pgx.NamedArgs) pgx.NamedArgs {
	a := pgx.NamedArgs{"run_id": q.runID, "run_text": q.runID, "job": q.job.Name, "limit": ItemsLimit, "tenant_id": q.viewer.TenantID}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

// scope restricts col (a tenant_id column) to the viewer: its own firm, or for the
// operator the firms the run covered.
func (q itemRun) scope(col string) string {
	if q.viewer.Operator {
		return col + " IN (SELECT s.tenant_id FROM job_run_tenants s WHERE s.run_id = @run_id::uuid)"
	}
	return col + " = @tenant_id::uuid"
}

// itemizer lists the items behind one key of one job.
type itemizer func(ctx context.Context, g *Gateway, q itemRun, key string) (RunItems, error)

// itemizers says, per job, how each key's items are found. Every catalog key with
// Items has one (TestEveryItemKeyHasItsQuery).
var itemizers = map[string]map[string]itemizer{
	catalog.CheckSLAAndOverdue: {
		"overdue_tasks":              tasksAsOf(overdueDeadline),
		"sla_violations":             tasksAsOf(slaDeadline),
		"automation_rules_triggered": ruleFires(""),
		"automation_failures":        ruleFires("AND l.status = 'failed'"),
		"priorities_escalated":       ruleFires("AND l.status = 'success' AND r.action = 'escalate_priority'"),
		"notifications_sent":         notificationsSent(""),
	},
	catalog.SendHearingReminders: {
		"hearings_processed":   hearingsInWindow,
		"notifications_sent":   notificationsSent(""),
		"in_app_sent":          notificationsSent(notify("in_app")),
		"emails_sent":          notificationsSent(notify("email")),
		"failed_notifications": undelivered("", true),
		"emails_failed":        undelivered("failed", false),
		"emails_pending":       undelivered("pending", false),
	},
	catalog.CaptureAnalyticsSnapshot: {
		"snapshots_written": snapshots,
	},
	catalog.CheckUpcomingDeadlines: {
		"alerts_sent":    notificationsSent(""),
		"in_app_sent":    notificationsSent(notify("in_app")),
		"emails_sent":    notificationsSent(notify("email")),
		"failed_alerts":  undelivered("", true),
		"emails_failed":  undelivered("failed", false),
		"emails_pending": undelivered("pending", false),
	},
	catalog.AutomationHealthCheck: {
		"unhealthy_rules":    unhealthyRules,
		"stale_job_count":    staleJobs,
		"notifications_sent": notificationsSent(""),
	},
}

func notify(channel string) string { return "AND a.details->>'channel' = '" + channel + "'" }

// itemKeys are the keys of a job that have items, in the catalog's order.
func itemKeys(job catalog.Job) []string {
	var keys []string
	for _, r := range job.Results {
		if _, ok := itemizers[job.Name][r.Key]; ok {
			keys = append(keys, r.Key)
		}
	}
	return keys
}

var errRunNotFound = errors.New("no such run")

// handleRunItems is GET /api/jobs/{job}/runs/{run}/items?key=<results key>.
func (g *Gateway) handleRunItems(w http.ResponseWriter, r *http.Request) {
	job, _ := catalog.Lookup(chi.URLParam(r, "job"))
	runID := chi.URLParam(r, "run")
	if _, err := uuid.Parse(runID); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("run %q is not a run id (a UUID, as run_id in the history)", runID))
		return
	}
	key := r.URL.Query().Get("key")
	list, ok := itemizers[job.Name][key]
	if !ok {
		keys := strings.Join(itemKeys(job), ", ")
		switch _, known := job.ResultInfo(key); {
		case key == "":
			writeError(w, http.StatusBadRequest, fmt.Sprintf("key is required: the results key whose items to list, one of %s", keys))
		case known:
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s of %s is a count with no items behind it; keys with items are %s", key, job.Name, keys))
		default:
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s reports no results key %q; keys with items are %s", job.Name, key, keys))
		}
		return
	}
	v := principalFrom(r.Context()).Viewer()
	q, err := g.itemRun(r.Context(), job, runID, v)
	if errors.Is(err, errRunNotFound) {
		who := "your firm"
		if v.Operator {
			who = "any firm"
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no run %s of %s covered %s", runID, job.Name, who))
		return
	}
	if err != nil {
		g.fail(w, r, err)
		return
	}
	res, err := list(r.Context(), g, q, key)
	if err != nil {
		g.fail(w, r, fmt.Errorf("items of %s %s: %w", job.Name, key, err))
		return
	}
	info, _ := job.ResultInfo(key)
	res.JobName, res.RunID, res.Key, res.Label, res.About, res.Count = job.Name, runID, key, info.Label, info.Items, q.results[key]
	if res.Items == nil {
		res.Items = []Item{}
	}
	res.Rest = max(res.Total-len(res.Items), 0)
	if !v.Operator {
		for i := range res.Items {
			res.Items[i].TenantID, res.Items[i].Tenant = "", ""
		}
	}
	writeJSONResponse(w, http.StatusOK, res)
}

// itemRun finds the run as the viewer may see it: a firm's own slice (a run that did
// not cover the firm is not found), the operator's totals.
func (g *Gateway) itemRun(ctx context.Context, job catalog.Job, runID string, v Viewer) (itemRun, error) {
	q := itemRun{job: job, runID: runID, viewer: v}
	var details, results []byte
	var err error
	if v.Operator {
		err = g.cfg.Pool.QueryRow(ctx, `
SELECT details, "timestamp" FROM audit_log
WHERE dedupe_key = 'execution:' || $1 AND details->>'job_name' = $2`, runID, job.Name).Scan(&details, &q.finished)
	} else {
		err = g.cfg.Pool.QueryRow(ctx, `
SELECT a.details, s.results, s.finished_at
FROM job_run_tenants s
LEFT JOIN audit_log a ON a.dedupe_key = 'execution:' || s.run_id
WHERE s.run_id = $1 AND s.tenant_id = $2 AND s.job_name = $3`, runID, v.TenantID, job.Name).Scan(&details, &results, &q.finished)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return q, errRunNotFound
	}
	if err != nil {
		return q, fmt.Errorf("items: find run: %w", err)
	}
	var r events.Result
	if details != nil {
		if err := json.Unmarshal(details, &r); err != nil {
			return q, fmt.Errorf("items: decode run %s: %w", runID, err)
		}
	}
	q.results = r.Results
	if results != nil {
		q.results = nil
		if err := json.Unmarshal(results, &q.results); err != nil {
			return q, fmt.Errorf("items: decode slice of run %s: %w", runID, err)
		}
	}
	if !r.FinishedAt.IsZero() {
		q.finished = r.FinishedAt
	}
	q.started = r.StartedAt
	if q.started.IsZero() {
		q.started = q.finished
	}
	return q, nil
}

// when formats an instant for people, in the jobs' time zone.
func (g *Gateway) when(t time.Time) string {
	return t.In(g.cfg.Location).Format("02 Jan 2006, 15:04 MST")
}

// The deadline of a task for each kind of breach, as the SLA check computes it
// (services/sla breachesCTE).
const (
	overdueDeadline = `t.due_date`
	slaDeadline     = `t.created_at + coalesce(tp.resolution_hours, dp.resolution_hours) * interval '1 hour'`
)

// tasksAsOf recomputes the tasks in breach at the run's finish: open then (open now,
// or completed after it), created before it, with their deadline before it. The open
// ones come from the open-task index, the ones completed since from tasks_completed_at.
func tasksAsOf(deadline string) itemizer {
	return func(ctx context.Context, g *Gateway, q itemRun, key string) (RunItems, error) {
		sql := tasksSQL(q, deadline)
		res := RunItems{AsOf: &q.finished}
		res, err := g.queryItems(ctx, res, sql, q.args(pgx.NamedArgs{"as_of": q.finished}), func(row pgx.CollectableRow, it *Item, total *int) error {
			var caseNo, priority, assignee string
			var at time.Time
			err := row.Scan(&it.TenantID, &it.Tenant, &it.ID, &it.Title, &caseNo, &priority, &it.Status, &at, &assignee, total)
			it.Kind, it.At = "task", &at
			due := "due " + g.when(at)
			if deadline == slaDeadline {
				due = "SLA ended " + g.when(at)
			}
			it.Detail = joinWords(caseNo, priority+" priority", due, orDefault(assignee, "no assignee"))
			return err
		})
		word := "due date"
		if deadline == slaDeadline {
			word = "SLA deadline"
		}
		res.Note = fmt.Sprintf("As the tasks stand now: tasks whose %s was before the run's time (%s) and that were not completed before it. A task changed since the run is shown as it is now.",
			word, g.when(q.finished))
		return res, err
	}
}

// tasksSQL is tasksAsOf's statement.
func tasksSQL(q itemRun, deadline string) string {
	return `
WITH t AS (
    SELECT t.* FROM tasks t
    WHERE t.status IN ('open', 'in_progress') AND ` + q.scope("t.tenant_id") + `
    UNION ALL
    SELECT t.* FROM tasks t
    WHERE t.status = 'completed' AND t.completed_at >= @as_of::timestamptz AND ` + q.scope("t.tenant_id") + `
),
found AS (
    SELECT t.id, t.tenant_id, t.title, t.priority, t.status, t.case_id, t.assigned_to, ` + deadline + ` AS deadline
    FROM t
    LEFT JOIN sla_policies tp ON tp.tenant_id = t.tenant_id AND tp.priority = t.priority
    LEFT JOIN sla_policies dp ON dp.tenant_id IS NULL AND dp.priority = t.priority
    WHERE t.created_at <= @as_of::timestamptz AND ` + deadline + ` < @as_of::timestamptz
)
SELECT f.tenant_id::text, tn.name, f.id::text, f.title, coalesce(c.case_number, ''), f.priority, f.status,
       f.deadline, coalesce(p.full_name, ''), count(*) OVER ()
FROM found f
JOIN tenants tn ON tn.id = f.tenant_id
LEFT JOIN cases c ON c.id = f.case_id
LEFT JOIN profiles p ON p.id = f.assigned_to
ORDER BY tn.name, f.deadline, f.id
LIMIT @limit`
}

// ruleFiresSQL is ruleFires' statement.
func ruleFiresSQL(q itemRun, filter string) string {
	return `
SELECT l.tenant_id::text, tn.name, l.id::text, r.name, r.action, coalesce(t.title, ''), coalesce(c.case_number, ''),
       l.occurrence, l.status, coalesce(l.error, ''), l.executed_at, count(*) OVER ()
FROM automation_logs l
JOIN automation_rules r ON r.id = l.rule_id
JOIN tenants tn ON tn.id = l.tenant_id
LEFT JOIN tasks t ON t.id = l.task_id
LEFT JOIN cases c ON c.id = t.case_id
WHERE l.run_id = @run_id::uuid AND ` + q.scope("l.tenant_id") + ` ` + filter + `
ORDER BY tn.name, r.name, t.title, l.id
LIMIT @limit`
}

// ruleFires lists the automation_logs rows of the run (index automation_logs_run).
func ruleFires(filter string) itemizer {
	return func(ctx context.Context, g *Gateway, q itemRun, key string) (RunItems, error) {
		sql := ruleFiresSQL(q, filter)
		res, err := g.queryItems(ctx, RunItems{}, sql, q.args(nil), func(row pgx.CollectableRow, it *Item, total *int) error {
			var action, task, caseNo, occurrence string
			var at time.Time
			err := row.Scan(&it.TenantID, &it.Tenant, &it.ID, &it.Title, &action, &task, &caseNo, &occurrence, &it.Status, &it.Error, &at, total)
			it.Kind, it.At = "rule_fire", &at
			breach := "overdue"
			if strings.HasPrefix(occurrence, "sla:") {
				breach = "SLA breach"
			}
			on := "on a task"
			if task != "" {
				on = "on “" + task + "”"
			}
			it.Detail = joinWords(on, caseNo, breach, strings.ReplaceAll(action, "_", " "))
			return err
		})
		if key == "priorities_escalated" {
			res.Note = "The fires of rules that raise a priority; a task already critical stays critical, so the count may be smaller."
		}
		return res, err
	}
}

// notificationsSQL is notificationsSent's statement.
func notificationsSQL(q itemRun, filter string) string {
	return `
SELECT a.tenant_id::text, tn.name, a.id::text, coalesce(n.title, a.details->>'kind', ''), coalesce(p.full_name, ''),
       coalesce(a.details->>'channel', ''), coalesce(a.details->>'to', ''), a."timestamp", count(*) OVER ()
FROM audit_log a
JOIN tenants tn ON tn.id = a.tenant_id
LEFT JOIN profiles p ON p.id = a.user_id
LEFT JOIN notifications n ON n.id = (a.details->>'notification_id')::uuid
WHERE a.action_type = 'notification_sent' AND a.details->>'run_id' = @run_text::text
  AND a.details->>'job_name' = @job::text AND ` + q.scope("a.tenant_id") + ` ` + filter + `
ORDER BY tn.name, n.title, p.full_name, a.id
LIMIT @limit`
}

// notificationsSent lists the run's notification_sent audit rows (index
// audit_log_notification_run), with the notification's title and the recipient.
func notificationsSent(filter string) itemizer {
	return func(ctx context.Context, g *Gateway, q itemRun, key string) (RunItems, error) {
		sql := notificationsSQL(q, filter)
		res, err := g.queryItems(ctx, RunItems{}, sql, q.args(nil), func(row pgx.CollectableRow, it *Item, total *int) error {
			var to string
			var at time.Time
			err := row.Scan(&it.TenantID, &it.Tenant, &it.ID, &it.Title, &it.Recipient, &it.Channel, &to, &at, total)
			it.Kind, it.At, it.Status = "notification", &at, "sent"
			switch it.Channel {
			case "email":
				it.Detail = "e-mail to " + orDefault(it.Recipient, "?") + orDefault(wrap(" <", to, ">"), "")
			default:
				it.Detail = "in-app to " + orDefault(it.Recipient, "a person no longer in the firm")
			}
			return err
		})
		return res, err
	}
}

func wrap(before, s, after string) string {
	if s == "" {
		return ""
	}
	return before + s + after
}

// undeliveredSQL is undelivered's statement.
func undeliveredSQL(q itemRun, status string, problems bool) string {
	deliveries := `
SELECT d.tenant_id, 'delivery' AS kind, d.id::text AS id, d.about AS title, coalesce(p.full_name, '') AS recipient,
       coalesce(d.recipient, '') AS address, d.status, coalesce(d.last_error, '') AS error, d.updated_at AS at, 1 AS ord
FROM notification_deliveries d
JOIN notifications n ON n.id = d.notification_id
LEFT JOIN profiles p ON p.id = n.user_id
WHERE d.source = @job::text AND d.wanted_by = @run_text::text AND d.status <> 'sent' AND ` + q.scope("d.tenant_id")
	if status != "" {
		deliveries += ` AND d.status = '` + status + `'`
	}
	lines := `
SELECT s.tenant_id, 'problem', '', e.line, '', '', 'failed', '', s.finished_at, 0
FROM job_run_tenants s
CROSS JOIN LATERAL jsonb_array_elements_text(s.errors) AS e(line)
WHERE s.run_id = @run_id::uuid AND ` + q.scope("s.tenant_id") + `
  AND NOT EXISTS (
      SELECT 1 FROM notification_deliveries d
      WHERE d.source = @job::text AND d.wanted_by = @run_text::text AND d.status <> 'sent' AND d.tenant_id = s.tenant_id
        AND (e.line = d.about || ': ' || d.last_error OR (d.about = '' AND e.line = d.last_error)))`
	union := deliveries
	if problems {
		union += "\nUNION ALL" + lines
	}
	sql := `
WITH x AS (` + union + `)
SELECT x.tenant_id::text, tn.name, x.kind, x.id, x.title, x.recipient, x.address, x.status, x.error, x.at, count(*) OVER ()
FROM x JOIN tenants tn ON tn.id = x.tenant_id
ORDER BY tn.name, x.ord, x.title, x.recipient
LIMIT @limit`
	return sql
}

// undelivered lists the e-mails the run asked for that are not sent (status "" for
// failed and pending alike), from notification_deliveries by (source, wanted_by); with
// problems, also the slice's error lines no delivery row stands for (a hearing or a
// deadline with no one to notify, the mail server being down).
func undelivered(status string, problems bool) itemizer {
	return func(ctx context.Context, g *Gateway, q itemRun, key string) (RunItems, error) {
		sql := undeliveredSQL(q, status, problems)
		res := RunItems{Note: "E-mails as they stand now: a later run that retries one takes it over, and one sent since is no longer listed."}
		res, err := g.queryItems(ctx, res, sql, q.args(nil), func(row pgx.CollectableRow, it *Item, total *int) error {
			var address string
			var at time.Time
			err := row.Scan(&it.TenantID, &it.Tenant, &it.Kind, &it.ID, &it.Title, &it.Recipient, &address, &it.Status, &it.Error, &at, total)
			it.At = &at
			if it.Kind == "delivery" {
				it.Channel = "email"
				it.Detail = "e-mail to " + orDefault(it.Recipient, "?") + wrap(" <", address, ">")
				if it.Status == "pending" {
					it.Detail += ", waiting for the next run"
				}
			}
			return err
		})
		return res, err
	}
}

// hearingsSQL is hearingsInWindow's statement.
func hearingsSQL(q itemRun) string {
	return `
SELECT h.tenant_id::text, tn.name, h.id::text, c.case_number || ' - ' || c.title, h.hearing_date, coalesce(h.forum, ''), h.status,
       coalesce((SELECT string_agg(DISTINCT p.full_name, ', ' ORDER BY p.full_name)
                 FROM audit_log a JOIN profiles p ON p.id = a.user_id
                 WHERE a.action_type = 'notification_sent' AND a.details->>'run_id' = @run_text::text
                   AND a.tenant_id = h.tenant_id AND a.details->>'hearing_id' = h.id::text), ''),
       count(*) OVER ()
FROM hearings h
JOIN cases c ON c.id = h.case_id AND c.tenant_id = h.tenant_id
JOIN tenants tn ON tn.id = h.tenant_id
WHERE h.status IN ('scheduled', 'adjourned')
  AND h.hearing_date >= @from::timestamptz AND h.hearing_date <= @until::timestamptz
  AND ` + q.scope("h.tenant_id") + `
ORDER BY tn.name, h.hearing_date, c.case_number
LIMIT @limit`
}

// hearingsInWindow recomputes the hearings of the run's 24-hour window, and whom the
// run reminded of each (its audit rows).
func hearingsInWindow(ctx context.Context, g *Gateway, q itemRun, key string) (RunItems, error) {
	sql := hearingsSQL(q)
	res := RunItems{AsOf: &q.started}
	res, err := g.queryItems(ctx, res, sql, q.args(pgx.NamedArgs{"from": q.started, "until": q.started.Add(catalog.HearingReminderWindow)}), func(row pgx.CollectableRow, it *Item, total *int) error {
		var forum, reminded string
		var at time.Time
		err := row.Scan(&it.TenantID, &it.Tenant, &it.ID, &it.Title, &at, &forum, &it.Status, &reminded, total)
		it.Kind, it.At = "hearing", &at
		it.Recipient = reminded
		who := "reminded by this run: " + reminded
		if reminded == "" {
			who = "no one reminded by this run (reminded earlier, or no one to remind)"
		}
		it.Detail = joinWords(g.when(at), forum, who)
		return err
	})
	res.Note = fmt.Sprintf("As the hearings stand now: scheduled or adjourned hearings between the run's start (%s) and 24 hours later. A hearing moved or cancelled since is shown as it is now.", g.when(q.started))
	return res, err
}

// snapshotsSQL is snapshots' statement.
func snapshotsSQL(q itemRun) string {
	return `
SELECT x.tenant_id::text, tn.name, x.id::text, x.metric_type, x.metric_value::text, x.created_at, count(*) OVER ()
FROM analytics_snapshots x
JOIN tenants tn ON tn.id = x.tenant_id
WHERE x.snapshot_date = @day::date AND ` + q.scope("x.tenant_id") + `
ORDER BY tn.name, x.metric_type
LIMIT @limit`
}

// snapshots lists the metrics of the run's day, as stored now.
func snapshots(ctx context.Context, g *Gateway, q itemRun, key string) (RunItems, error) {
	day, _ := q.results["snapshot_date"].(string)
	res := RunItems{Note: "The values as stored now: a later run on the same day replaces them."}
	if _, err := time.Parse(time.DateOnly, day); err != nil {
		res.Note = "This run recorded no snapshot date, so its metrics cannot be found."
		return res, nil
	}
	sql := snapshotsSQL(q)
	res, err := g.queryItems(ctx, res, sql, q.args(pgx.NamedArgs{"day": day}), func(row pgx.CollectableRow, it *Item, total *int) error {
		var metric, value string
		var at time.Time
		err := row.Scan(&it.TenantID, &it.Tenant, &it.ID, &metric, &value, &at, total)
		it.Kind, it.At = "metric", &at
		it.Title = metricLabel(metric) + ": " + value
		it.Detail = joinWords(metric, "for "+day)
		if m, ok := catalog.Metric(metric); ok {
			it.Detail = m.Meaning
		}
		return err
	})
	return res, err
}

func metricLabel(metric string) string {
	if m, ok := catalog.Metric(metric); ok {
		return m.Label
	}
	return metric
}

// unhealthyRules are the health check's own list of the viewer's unhealthy rules (a
// firm's slice holds its own rules only; the operator's totals every firm's).
func unhealthyRules(ctx context.Context, g *Gateway, q itemRun, key string) (RunItems, error) {
	var rules []struct {
		ID           string   `json:"id"`
		Name         string   `json:"name"`
		TenantID     string   `json:"tenant_id"`
		Tenant       string   `json:"tenant"`
		TriggerEvent string   `json:"trigger_event"`
		Action       string   `json:"action"`
		Problems     []string `json:"problems"`
		Reason       string   `json:"reason"`
		LastError    string   `json:"last_error"`
	}
	var res RunItems
	if err := remarshal(q.results["rules"], &rules); err != nil {
		return res, fmt.Errorf("decode the health check's rules: %w", err)
	}
	for _, r := range rules {
		if !q.viewer.Operator && r.TenantID != "" && r.TenantID != q.viewer.TenantID {
			continue // never another firm's, whatever a result holds
		}
		problems := make([]string, len(r.Problems))
		for i, p := range r.Problems {
			problems[i] = strings.ReplaceAll(p, "_", " ")
		}
		res.Items = append(res.Items, Item{
			TenantID: r.TenantID, Tenant: r.Tenant, Kind: "rule", ID: r.ID, Title: r.Name,
			Detail: joinWords(strings.ReplaceAll(r.TriggerEvent, "_", " ")+" → "+strings.ReplaceAll(r.Action, "_", " "), r.Reason),
			Status: strings.Join(problems, ", "), Error: r.LastError,
		})
	}
	res.Total = len(res.Items)
	if n, ok := q.results["rules_not_listed"].(float64); ok {
		res.Total += int(n)
	}
	if len(res.Items) > ItemsLimit {
		res.Items = res.Items[:ItemsLimit]
	}
	return res, nil
}

// staleJobs are the health check's jobs that were stale.
func staleJobs(ctx context.Context, g *Gateway, q itemRun, key string) (RunItems, error) {
	var jobs []struct {
		Name        string     `json:"name"`
		LastSuccess *time.Time `json:"last_success"`
		StaleAfter  string     `json:"stale_after"`
		Stale       bool       `json:"stale"`
	}
	var res RunItems
	if err := remarshal(q.results["jobs"], &jobs); err != nil {
		return res, fmt.Errorf("decode the health check's jobs: %w", err)
	}
	for _, j := range jobs {
		if !j.Stale {
			continue
		}
		title := j.Name
		after := j.StaleAfter
		if c, ok := catalog.Lookup(j.Name); ok {
			title, after = c.Title, within(c.StaleAfter)
		}
		last := "never succeeded"
		if j.LastSuccess != nil {
			last = "last succeeded " + g.when(*j.LastSuccess)
		}
		res.Items = append(res.Items, Item{Kind: "job", ID: j.Name, Title: title, Detail: last + "; stale after " + after, Status: "stale", At: j.LastSuccess})
	}
	res.Total = len(res.Items)
	return res, nil
}

// within writes a threshold as the dashboard does: "30 minutes", "36 hours".
func within(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%d hours", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%d minutes", d/time.Minute)
	}
	return d.String()
}

// queryItems runs an item statement and adds to res an Item of each row, made by scan,
// which also reads the row's count(*) OVER () into total.
func (g *Gateway) queryItems(ctx context.Context, res RunItems, sql string, args pgx.NamedArgs, scan func(row pgx.CollectableRow, it *Item, total *int) error) (RunItems, error) {
	rows, err := g.cfg.Pool.Query(ctx, sql, args)
	if err != nil {
		return res, err
	}
	res.Items, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Item, error) {
		var it Item
		err := scan(row, &it, &res.Total)
		return it, err
	})
	return res, err
}

// remarshal reads a value decoded from JSON (a slice's results) into v.
func remarshal(from any, v any) error {
	if from == nil {
		return nil
	}
	data, err := json.Marshal(from)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

func joinWords(parts ...string) string {
	return strings.Join(slices.DeleteFunc(parts, func(s string) bool { return strings.TrimSpace(s) == "" }), " · ")
}
