package gateway

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/lexhq/gstjobs/internal/catalog"
)

// The help page, GET /help: this system's user guide, rendered on the server from the
// catalog's facts (every job's tip, explanation, schedule, thresholds and results keys),
// so that the help, the cards' tips and the API say the same thing. Rendered, not built
// by script: it reads without JavaScript, its anchors (/help#<job>, the cards' ℹ️ links)
// land at once, and the CSP needs nothing new.
//
// It is open to everyone, signed in or not: it holds no firm's data (no names, numbers
// or pauses, and the default schedules rather than the operator's changes), and it is
// what a person the dashboard turns away (a manager, a signed-out admin) needs to read.

//go:embed web/pages/help.html
var helpHTML string

var helpTemplate = template.Must(template.New("help").Parse(helpHTML))

// The user guide's three queries, verbatim: they run as they are against this schema.
const (
	GuideExecutionsQuery = `-- View recent job executions
SELECT 
  id,
  action_type,
  details->>'job_name' as job,
  details->>'status' as status,
  details->>'execution_time_ms' as duration_ms,
  timestamp
FROM audit_log
WHERE action_type = 'background_job_execution'
ORDER BY timestamp DESC
LIMIT 20;`
	GuideHearingsQuery = `-- Check for hearings with missing email addresses
SELECT h.id, h.hearing_date, c.case_number, p.full_name, p.phone
FROM hearings h
JOIN cases c ON h.case_id = c.id
LEFT JOIN profiles p ON c.owner_id = p.id
WHERE h.hearing_date >= NOW()
  AND h.hearing_date <= NOW() + INTERVAL '24 hours'
  AND (p.phone IS NULL OR p.phone = '');`
	GuideAnalyticsQuery = `-- Check if snapshots are being created
SELECT snapshot_date, metric_type, metric_value
FROM analytics_snapshots
WHERE tenant_id = 'your-tenant-id'
ORDER BY snapshot_date DESC
LIMIT 7;`
)

// The help's own queries: a firm's rows, for whoever may query the database.
const (
	FirmHistoryHelpQuery = `-- One firm's own part of each run of a job, newest first
SELECT run_id, status, results, errors, finished_at
FROM job_run_tenants
WHERE tenant_id = 'your-tenant-id' AND job_name = 'check-sla-and-overdue'
ORDER BY finished_at DESC
LIMIT 10;`
	RunRulesHelpQuery = `-- The automation rules one run fired for one firm, and whether they acted
SELECT l.executed_at, r.name AS rule, t.title AS task, l.status, l.error
FROM automation_logs l
JOIN automation_rules r ON r.id = l.rule_id
LEFT JOIN tasks t ON t.id = l.task_id
WHERE l.run_id = 'the-run-id' AND l.tenant_id = 'your-tenant-id'
ORDER BY l.executed_at, r.name;`
	RunNotificationsHelpQuery = `-- The notifications one run delivered for one firm, and to whom
SELECT a."timestamp", a.details->>'channel' AS channel, p.full_name,
       a.details->>'case_number' AS case_number, a.details->>'to' AS email
FROM audit_log a
LEFT JOIN profiles p ON p.id = a.user_id
WHERE a.action_type = 'notification_sent'
  AND a.details->>'run_id' = 'the-run-id' AND a.tenant_id = 'your-tenant-id'
ORDER BY a."timestamp";`
	UnsentEmailsHelpQuery = `-- E-mails of one firm that did not go out, and why
SELECT d.status, d.attempts, d.last_error, d.about, p.full_name, d.recipient
FROM notification_deliveries d
JOIN notifications n ON n.id = d.notification_id
JOIN profiles p ON p.id = n.user_id
WHERE d.tenant_id = 'your-tenant-id' AND d.status <> 'sent'
ORDER BY d.updated_at DESC;`
)

// HelpQueries are every query the help page shows, in its order (tests run each).
var HelpQueries = []string{
	GuideExecutionsQuery, GuideHearingsQuery, GuideAnalyticsQuery,
	FirmHistoryHelpQuery, RunRulesHelpQuery, RunNotificationsHelpQuery, UnsentEmailsHelpQuery,
}

type helpJob struct {
	catalog.Job
	Frequency  string
	MaxAge     string
	StaleAfter string
	// Keys are the results keys a firm reads, with the operator's after them.
	Keys []catalog.Result
}

type helpData struct {
	Timezone   string
	Jobs       []helpJob
	StuckAfter string
	Metrics    []catalog.MetricInfo
	Queries    map[string]string
}

// serveHelp is GET /help.
func (g *Gateway) serveHelp(w http.ResponseWriter, r *http.Request) {
	d := helpData{
		Timezone:   g.cfg.Location.String(),
		StuckAfter: fmt.Sprintf("%d seconds", int(StuckAfter/time.Second)),
		Metrics:    catalog.Metrics(),
		Queries: map[string]string{
			"executions": GuideExecutionsQuery, "hearings": GuideHearingsQuery, "analytics": GuideAnalyticsQuery,
			"firm_history": FirmHistoryHelpQuery, "run_rules": RunRulesHelpQuery,
			"run_notifications": RunNotificationsHelpQuery, "unsent_emails": UnsentEmailsHelpQuery,
		},
	}
	for _, j := range catalog.All() {
		d.Jobs = append(d.Jobs, helpJob{
			Job: j, Frequency: catalog.Describe(j.Schedule), MaxAge: within(j.MaxAge), StaleAfter: within(j.StaleAfter),
			Keys: j.AllResults(),
		})
	}
	var buf bytes.Buffer
	if err := helpTemplate.Execute(&buf, d); err != nil {
		g.log.Error("render help", "err", err)
		writeError(w, http.StatusInternalServerError, "the help page cannot be shown: "+err.Error())
		return
	}
	g.securityHeaders(w, r)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(buf.Bytes())
}
