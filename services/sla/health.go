package sla

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/tenancy"
	"github.com/lexhq/gstjobs/internal/worker"
)

// Health levels, as pinned by the contract.
const (
	healthy   = "healthy"
	degraded  = "degraded"
	unhealthy = "unhealthy"
)

// Rule problems.
const (
	problemFailing   = "failing"
	problemNotFiring = "not_firing"
)

// maxRulesListed caps the rule details in a result; the counts stay exact.
const maxRulesListed = 100

// rulesSQL reads every active rule with what it did in the health window and how many
// breaches it should have fired for and did not. A breach counts as missed only when
// both the breach and the rule are older than the SLA check's alert threshold: by
// then at least one SLA check should have run and fired it.
//
// A run for named firms reads the rules' executions firm by firm (statsByFirmSQL, on
// automation_logs' (tenant_id, executed_at) index): read by time, as the run for every
// firm reads them, the window held every firm's executions whenever the SLA check had
// just fired many rules, and the named form's generic plan (tenancy.Statement), which
// cannot know how many the window holds, read them all to keep the twenty firms' (20
// ms instead of 5 on 1M tasks, in 8 of a day's 50 runs). Read firm by firm for every
// firm, the run for all took twice as long on 10k tasks once its plan was generic.
var rulesSQL = tenancy.NewStatementByForm(rulesWith(statsByTimeSQL), rulesWith(statsByFirmSQL))

// executionsSQL is what stats says of a rule's executions l in the window.
const executionsSQL = `count(*) AS executions, count(*) FILTER (WHERE l.status = 'failed') AS failures,
    (array_agg(l.error ORDER BY l.executed_at DESC, l.id DESC) FILTER (WHERE l.status = 'failed'))[1] AS last_error`

// statsByTimeSQL is the rules' executions in the window, read by time: for every firm.
var statsByTimeSQL = `stats AS (
    SELECT l.rule_id, ` + executionsSQL + `
    FROM automation_logs l
    WHERE l.executed_at > @since::timestamptz AND l.executed_at <= @now::timestamptz
      AND ` + tenancy.Filter("l.tenant_id") + `
    GROUP BY l.rule_id
),
`

// statsByFirmSQL is the same read firm by firm: for named firms.
var statsByFirmSQL = `stats AS (
    SELECT s.*
    FROM (SELECT DISTINCT r.tenant_id FROM automation_rules r WHERE r.is_active AND ` + tenancy.Filter("r.tenant_id") + `) f
    CROSS JOIN LATERAL (
        SELECT l.rule_id, ` + executionsSQL + `
        FROM automation_logs l
        WHERE l.tenant_id = f.tenant_id
          AND l.executed_at > @since::timestamptz AND l.executed_at <= @now::timestamptz
        GROUP BY l.rule_id
    ) s
),
`

// rulesWith is rulesSQL with stats, the rules' executions in the window, in either form.
func rulesWith(stats string) string {
	return `
WITH ` + breachesCTE + `,
` + stats + `missed AS (
    SELECT r.id AS rule_id, count(*) AS missed, min(b.deadline) AS oldest
    FROM automation_rules r
    JOIN breaches b ON b.tenant_id = r.tenant_id AND b.trigger_event = r.trigger_event
    WHERE r.is_active AND ` + tenancy.Filter("r.tenant_id") + `
      AND b.deadline < @grace_before::timestamptz AND r.created_at < @grace_before::timestamptz
      AND NOT ` + alreadyFired + `
    GROUP BY r.id
)
SELECT r.id::text, r.tenant_id::text, t.name, r.name, r.trigger_event, r.action,
       coalesce(s.executions, 0), coalesce(s.failures, 0), coalesce(s.last_error, ''),
       coalesce(m.missed, 0), m.oldest
FROM automation_rules r
JOIN tenants t ON t.id = r.tenant_id
LEFT JOIN stats s ON s.rule_id = r.id
LEFT JOIN missed m ON m.rule_id = r.id
WHERE r.is_active AND ` + tenancy.Filter("r.tenant_id") + `
ORDER BY t.name, r.name, r.id`
}

// coveredSQL lists the firms the run covers (each gets a slice, rules or not) and counts
// their open incidents: a run that finds every covered firm healthy and none with an
// incident open has nothing to open, close or notify, and skips incidentsSQL.
var coveredSQL = tenancy.NewStatement(`
SELECT coalesce(array_agg(t.id::text ORDER BY t.id), '{}'),
       (SELECT count(*) FROM automation_health_incidents i WHERE i.closed_at IS NULL AND ` + tenancy.Filter("i.tenant_id") + `)
FROM tenants t WHERE ` + tenancy.Filter("t.id"))

// lastSuccessSQL finds each job's last successful execution, and the first execution
// of any job: a job that never succeeded is stale only once the system has been
// running for longer than the job's threshold, so a fresh install is not an incident.
const lastSuccessSQL = `
SELECT j.name,
       (SELECT a."timestamp" FROM audit_log a
        WHERE a.action_type = 'background_job_execution'
          AND a.details->>'job_name' = j.name AND a.details->>'status' = 'success'
        ORDER BY a."timestamp" DESC LIMIT 1) AS last_success,
       (SELECT min(a."timestamp") FROM audit_log a WHERE a.action_type = 'background_job_execution') AS first_seen
FROM unnest(@jobs::text[]) WITH ORDINALITY AS j(name, ord)
ORDER BY j.ord`

// incidentsSQL brings automation_health_incidents in line with this run's verdict:
// an open incident for every unhealthy firm (opened now unless one is open already),
// none for the others (closed now), and every admin of a firm with an open incident
// notified of it exactly once. @system_reasons make every firm unhealthy;
// @tenant_reasons ({"<tenant id>": ["reason", ...]}) only the firms named.
//
// Only the covered firms' incidents are opened or closed: a run for one firm leaves the
// others' incidents as they are.
var incidentsSQL = tenancy.NewStatement(`
WITH unhealthy AS (
    SELECT t.id AS tenant_id, t.name,
           to_jsonb(@system_reasons::text[]) || coalesce(@tenant_reasons::jsonb -> t.id::text, '[]'::jsonb) AS reasons
    FROM tenants t
    WHERE (cardinality(@system_reasons::text[]) > 0 OR @tenant_reasons::jsonb ? t.id::text)
      AND ` + tenancy.Filter("t.id") + `
),
closed AS (
    UPDATE automation_health_incidents i
    SET closed_at = greatest(@now::timestamptz, i.opened_at), closed_run_id = @run_id::uuid
    WHERE i.closed_at IS NULL AND i.tenant_id NOT IN (SELECT tenant_id FROM unhealthy)
      AND ` + tenancy.Filter("i.tenant_id") + `
    RETURNING i.id, i.tenant_id
),
opened AS (
    INSERT INTO automation_health_incidents (tenant_id, opened_at, opened_run_id, reasons)
    SELECT tenant_id, @now::timestamptz, @run_id::uuid, reasons FROM unhealthy
    ON CONFLICT (tenant_id) WHERE closed_at IS NULL DO NOTHING
    RETURNING id, tenant_id, reasons
),
open_now AS (
    SELECT i.id, i.tenant_id, i.reasons FROM automation_health_incidents i
    WHERE i.closed_at IS NULL AND i.tenant_id IN (SELECT tenant_id FROM unhealthy)
    UNION ALL
    SELECT id, tenant_id, reasons FROM opened
),
deliveries AS (
    SELECT o.id AS incident_id, o.tenant_id, u.name AS tenant, o.reasons, p.id AS user_id,
           'automation-health:' || o.id || ':' || p.id AS dedupe_key
    FROM open_now o
    JOIN unhealthy u ON u.tenant_id = o.tenant_id
    JOIN profiles p ON p.tenant_id = o.tenant_id AND p.role = 'admin'
),
notified AS (
    INSERT INTO notifications (tenant_id, user_id, kind, title, body, entity_type, entity_id, dedupe_key, created_at)
    SELECT x.tenant_id, x.user_id, 'automation_health', 'Automation needs attention',
           format('Automation for %s is unhealthy: %s. See the Automation Health Check on the Background Jobs dashboard.',
                  x.tenant, (SELECT string_agg(r, '; ') FROM jsonb_array_elements_text(x.reasons) AS r)),
           'automation_health_incident', x.incident_id, x.dedupe_key, @now::timestamptz
    FROM deliveries x
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id, tenant_id, user_id, kind, dedupe_key
),
audited AS (
    INSERT INTO audit_log (tenant_id, user_id, action_type, entity_type, entity_id, details, dedupe_key, "timestamp")
    SELECT n.tenant_id, n.user_id, 'notification_sent', 'notification', n.id::text,
           jsonb_build_object('channel', 'in_app', 'kind', n.kind, 'notification_id', n.id,
                              'job_name', @job_name::text, 'run_id', @run_id::uuid, 'incident_id', x.incident_id),
           'notification_sent:' || n.dedupe_key, @now::timestamptz
    FROM notified n JOIN deliveries x ON x.dedupe_key = n.dedupe_key
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING 1
)
SELECT
    (SELECT count(*) FROM opened) AS opened,
    (SELECT count(*) FROM closed) AS closed,
    (SELECT count(*) FROM open_now) AS open,
    (SELECT count(*) FROM notified) AS notified,
    (SELECT coalesce(jsonb_agg(x), '[]') FROM (
        SELECT tenant_id, sum(opened) AS opened, sum(closed) AS closed, sum(open) AS open, sum(notified) AS notified
        FROM (
            SELECT tenant_id, 1 AS opened, 0 AS closed, 0 AS open, 0 AS notified FROM opened
            UNION ALL SELECT tenant_id, 0, 1, 0, 0 FROM closed
            UNION ALL SELECT tenant_id, 0, 0, 1, 0 FROM open_now
            UNION ALL SELECT tenant_id, 0, 0, 0, 1 FROM notified
        ) u GROUP BY tenant_id) x) AS per_firm,
    (SELECT coalesce(jsonb_agg(x ORDER BY x.tenant), '[]') FROM (
        SELECT u.tenant_id, u.name AS tenant FROM unhealthy u
        WHERE NOT EXISTS (SELECT 1 FROM profiles p WHERE p.tenant_id = u.tenant_id AND p.role = 'admin')) x) AS no_admin`)

// ruleHealth is one rule as the health check reports it.
type ruleHealth struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	TenantID     string   `json:"tenant_id"`
	Tenant       string   `json:"tenant"`
	TriggerEvent string   `json:"trigger_event"`
	Action       string   `json:"action"`
	Executions   int64    `json:"executions"`
	Failures     int64    `json:"failures"`
	FailureRate  float64  `json:"failure_rate"`
	Missed       int64    `json:"missed_breaches"`
	LastError    string   `json:"last_error,omitempty"`
	Problems     []string `json:"problems"`
	Reason       string   `json:"reason"`

	oldestMissed *time.Time
}

// jobHealth is one catalog job as the health check reports it.
type jobHealth struct {
	Name        string     `json:"name"`
	LastSuccess *time.Time `json:"last_success"`
	StaleAfter  string     `json:"stale_after"`
	Stale       bool       `json:"stale"`
}

// classify turns counts into a health level. Crisp on purpose, so an operator can
// predict it:
//   - unhealthy: the SLA check is stale (nothing escalates any more), or two or more
//     jobs are stale, or more than half of the rules in scope are unhealthy;
//   - degraded: otherwise, any unhealthy rule or any stale job;
//   - healthy: nothing wrong.
func classify(rules, unhealthyRules int, stale []string) string {
	switch {
	case slices.Contains(stale, catalog.CheckSLAAndOverdue),
		len(stale) >= 2,
		rules > 0 && 2*unhealthyRules > rules:
		return unhealthy
	case unhealthyRules > 0 || len(stale) > 0:
		return degraded
	}
	return healthy
}

// judge decides whether one rule is unhealthy, and why, in words.
func (s *service) judge(r *ruleHealth, grace time.Duration) {
	if r.Executions > 0 {
		r.FailureRate = math.Round(float64(r.Failures)/float64(r.Executions)*1000) / 1000
	}
	var why []string
	if r.Failures >= int64(s.cfg.minFailures) && r.Failures*100 >= int64(s.cfg.failurePercent)*r.Executions {
		r.Problems = append(r.Problems, problemFailing)
		w := fmt.Sprintf("failed %d of %d executions in the last 24 h", r.Failures, r.Executions)
		if r.LastError != "" {
			w += " (last error: " + r.LastError + ")"
		}
		why = append(why, w)
	}
	if r.Missed > 0 {
		r.Problems = append(r.Problems, problemNotFiring)
		w := fmt.Sprintf("did not fire for %d breach(es) older than %s", r.Missed, humanDuration(grace))
		if r.oldestMissed != nil {
			w += ", the oldest due " + r.oldestMissed.In(s.loc()).Format("02 Jan 2006 15:04 MST")
		}
		why = append(why, w)
	}
	r.Reason = strings.Join(why, "; ")
}

func (s *service) loc() *time.Location {
	if s.deps.Location != nil {
		return s.deps.Location
	}
	if l, err := time.LoadLocation(s.cfg.zone); err == nil {
		return l
	}
	return time.UTC
}

// automationHealthCheck is the automation-health-check job.
func (s *service) automationHealthCheck(ctx context.Context, run worker.Run) (worker.Report, error) {
	pool, runID, err := s.begin(run)
	if err != nil {
		return worker.Report{}, err
	}
	now := run.Now
	sla, _ := catalog.Lookup(catalog.CheckSLAAndOverdue)
	grace := sla.StaleAfter

	// The reads in one round trip: BEGIN, the setting that keeps, for a run for named
	// firms (a slot's, a firm's Run Now), one plan per connection of each statement's
	// form for named firms, which reads them by index (tenancy.Statement; the full
	// form's generic plan reads every firm's tasks and automation logs, 90 ms a run for
	// twenty firms on 1M tasks instead of 15, and planning the statements at every run
	// was 1-2 ms of a run of 7 to 9), the rules, the firms, the jobs' last successes,
	// COMMIT: one round trip where there were five, each paid by every one of the fifty
	// runs a day of firms keeping their own hours. The incidents follow in a transaction
	// of their own, when there is anything to open or close.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return worker.Report{}, worker.Fail("Database connection failed", fmt.Errorf("sla: health: %w", err))
	}
	defer conn.Release()
	var (
		rules         []ruleHealth
		covered       []string
		openIncidents int64
		lastSuccesses []lastSuccess
	)
	var b pgx.Batch
	tenancy.QueueBegin(&b, run.Scope)
	b.Queue(rulesSQL.For(run.Scope), tenancy.With(pgx.NamedArgs{
		"now": now, "since": now.Add(-healthWindow), "grace_before": now.Add(-grace),
	}, run.Scope)).Query(func(rows pgx.Rows) error {
		var err error
		rules, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (ruleHealth, error) {
			var r ruleHealth
			err := row.Scan(&r.ID, &r.TenantID, &r.Tenant, &r.Name, &r.TriggerEvent, &r.Action,
				&r.Executions, &r.Failures, &r.LastError, &r.Missed, &r.oldestMissed)
			return r, err
		})
		if err != nil {
			return fmt.Errorf("rules: %w", err)
		}
		return nil
	})
	b.Queue(coveredSQL.For(run.Scope), tenancy.Args(run.Scope)).QueryRow(func(row pgx.Row) error {
		if err := row.Scan(&covered, &openIncidents); err != nil {
			return fmt.Errorf("firms: %w", err)
		}
		return nil
	})
	queueLastSuccesses(&b, &lastSuccesses)
	b.Queue("COMMIT")
	if err := conn.SendBatch(ctx, &b).Close(); err != nil {
		return worker.Report{}, worker.Fail("Database query failed", fmt.Errorf("sla: health: %w", err))
	}
	type tally struct {
		rules, unhealthy int
		bad              []ruleHealth
	}
	tenants := map[string]*tally{}
	for _, id := range covered {
		tenants[id] = &tally{}
	}
	var bad []ruleHealth
	for i := range rules {
		r := &rules[i]
		s.judge(r, grace)
		t := tenants[r.TenantID]
		if t == nil {
			t = &tally{}
			tenants[r.TenantID] = t
		}
		t.rules++
		if len(r.Problems) > 0 {
			t.unhealthy++
			t.bad = append(t.bad, *r)
			bad = append(bad, *r)
		}
	}

	// Jobs.
	jobs, stale := staleJobs(lastSuccesses, run)
	health := classify(len(rules), len(bad), stale)

	// Firms: the same rules, scoped to each firm's own automation rules. What makes
	// the system unhealthy (stale jobs) makes every firm unhealthy.
	systemReasons := s.systemReasons(jobs, stale)
	tenantReasons := map[string][]string{}
	for _, r := range bad {
		t := tenants[r.TenantID]
		if classify(t.rules, t.unhealthy, nil) != unhealthy {
			continue
		}
		if _, ok := tenantReasons[r.TenantID]; !ok {
			tenantReasons[r.TenantID] = []string{fmt.Sprintf("%d of %d automation rules are unhealthy", t.unhealthy, t.rules)}
		}
		tenantReasons[r.TenantID] = append(tenantReasons[r.TenantID], fmt.Sprintf("rule %q %s", r.Name, r.Reason))
	}
	if systemReasons == nil {
		systemReasons = []string{}
	}

	// Incidents.
	var opened, closed, open, notified int64
	var perFirm []struct {
		TenantID string `json:"tenant_id"`
		Opened   int64  `json:"opened"`
		Closed   int64  `json:"closed"`
		Open     int64  `json:"open"`
		Notified int64  `json:"notified"`
	}
	var noAdmin []struct {
		TenantID string `json:"tenant_id"`
		Tenant   string `json:"tenant"`
	}
	// A firm unhealthy now, or one with an incident still open (to close), needs the
	// statement; in a run where every covered firm is healthy and none has an incident
	// open, the usual run, it would change nothing. An incident another run opens
	// meanwhile is closed by the next run that finds its firm healthy, as it would be
	// had this run come first.
	if len(systemReasons) > 0 || len(tenantReasons) > 0 || openIncidents > 0 {
		var b pgx.Batch
		tenancy.QueueInOneTransaction(&b, run.Scope, incidentsSQL.For(run.Scope), tenancy.With(pgx.NamedArgs{
			"now": now, "run_id": runID, "job_name": jobName(run, catalog.AutomationHealthCheck),
			"system_reasons": systemReasons, "tenant_reasons": tenantReasons,
		}, run.Scope), func(row pgx.Row) error {
			return row.Scan(&opened, &closed, &open, &notified, &perFirm, &noAdmin)
		})
		if err := conn.SendBatch(ctx, &b).Close(); err != nil {
			return worker.Report{}, worker.Fail("Database query failed", fmt.Errorf("sla: health: incidents: %w", err))
		}
	}
	var problems errorList
	firms := newFirms(covered, nil)
	for _, t := range noAdmin {
		problems.add("%s: automation is unhealthy but the firm has no admin to notify (firm %s)", t.Tenant, t.TenantID)
		firms.problem(t.TenantID, "automation is unhealthy but the firm has no admin to notify")
	}

	// Each firm's slice: its own rules judged alone, the jobs (which every firm shares).
	for _, id := range covered {
		t := tenants[id]
		f := firms.get(id)
		listed := t.bad
		if len(listed) > maxRulesListed {
			listed = listed[:maxRulesListed]
		}
		if listed == nil {
			listed = []ruleHealth{}
		}
		maps.Copy(f.results, map[string]any{
			"rules_checked":      t.rules,
			"unhealthy_rules":    t.unhealthy,
			"stale_jobs":         stale,
			"stale_job_count":    len(stale),
			"health":             classify(t.rules, t.unhealthy, stale),
			"rules":              listed,
			"jobs":               jobs,
			"unhealthy_tenants":  int64(0),
			"incidents_opened":   int64(0),
			"incidents_closed":   int64(0),
			"notifications_sent": int64(0),
		})
		if len(t.bad) > len(listed) {
			f.results["rules_not_listed"] = len(t.bad) - len(listed)
		}
	}
	for _, p := range perFirm {
		f := firms.get(p.TenantID).results
		f["unhealthy_tenants"], f["incidents_opened"], f["incidents_closed"], f["notifications_sent"] = p.Open, p.Opened, p.Closed, p.Notified
	}

	listed := bad
	if len(listed) > maxRulesListed {
		listed = listed[:maxRulesListed]
	}
	if listed == nil {
		listed = []ruleHealth{}
	}
	results := map[string]any{
		"rules_checked":      len(rules),
		"unhealthy_rules":    len(bad),
		"stale_jobs":         stale,
		"stale_job_count":    len(stale),
		"health":             health,
		"rules":              listed,
		"jobs":               jobs,
		"unhealthy_tenants":  open,
		"incidents_opened":   opened,
		"incidents_closed":   closed,
		"notifications_sent": notified,
	}
	if len(bad) > len(listed) {
		results["rules_not_listed"] = len(bad) - len(listed)
	}
	s.runLog(run, catalog.AutomationHealthCheck).Info("automation health checked", "health", health, "firms", len(covered), "rules", len(rules),
		"unhealthy_rules", len(bad), "stale_jobs", stale, "incidents_opened", opened, "incidents_closed", closed)
	return worker.Report{Results: results, Errors: problems.list(), Tenants: firms.slices()}, nil
}

// lastSuccess is a catalog job's last successful execution, and the first execution of
// any job, as lastSuccessSQL reads them.
type lastSuccess struct {
	name            string
	last, firstSeen *time.Time
}

// queueLastSuccesses queues on b the read of each catalog job's last success, in the
// catalog's order, into found.
func queueLastSuccesses(b *pgx.Batch, found *[]lastSuccess) {
	all := catalog.All()
	names := make([]string, len(all))
	for i, j := range all {
		names[i] = j.Name
	}
	b.Queue(lastSuccessSQL, pgx.NamedArgs{"jobs": names}).Query(func(rows pgx.Rows) error {
		var err error
		*found, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (lastSuccess, error) {
			var r lastSuccess
			err := row.Scan(&r.name, &r.last, &r.firstSeen)
			return r, err
		})
		if err != nil {
			return fmt.Errorf("jobs: %w", err)
		}
		if len(*found) != len(all) {
			return fmt.Errorf("jobs: %d last successes read for %d jobs", len(*found), len(all))
		}
		return nil
	})
}

// staleJobs judges each catalog job by its last success (found, in the catalog's
// order). The running job counts as succeeding now.
func staleJobs(found []lastSuccess, run worker.Run) ([]jobHealth, []string) {
	all := catalog.All()
	self := jobName(run, catalog.AutomationHealthCheck)
	jobs := make([]jobHealth, len(all))
	stale := []string{}
	for i, j := range all {
		f := found[i]
		h := jobHealth{Name: j.Name, LastSuccess: f.last, StaleAfter: j.StaleAfter.String()}
		switch {
		case j.Name == self:
			now := run.Now
			h.LastSuccess = &now
		case f.last != nil:
			h.Stale = run.Now.Sub(*f.last) > j.StaleAfter
		default:
			h.Stale = f.firstSeen != nil && run.Now.Sub(*f.firstSeen) > j.StaleAfter
		}
		if h.Stale {
			stale = append(stale, j.Name)
		}
		jobs[i] = h
	}
	return jobs, stale
}

// systemReasons says, in words for a firm's admins, what makes every firm unhealthy.
func (s *service) systemReasons(jobs []jobHealth, stale []string) []string {
	if classify(0, 0, stale) != unhealthy {
		return nil
	}
	var reasons []string
	for _, j := range jobs {
		if !j.Stale {
			continue
		}
		job, _ := catalog.Lookup(j.Name)
		if j.LastSuccess == nil {
			reasons = append(reasons, fmt.Sprintf("%s has never succeeded", job.Title))
		} else {
			reasons = append(reasons, fmt.Sprintf("%s last succeeded %s (alert after %s)",
				job.Title, j.LastSuccess.In(s.loc()).Format("02 Jan 2006 15:04 MST"), humanDuration(job.StaleAfter)))
		}
	}
	return reasons
}

// humanDuration writes thresholds the way the user guide does: "30 min", "36 h".
func humanDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%d h", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%d min", d/time.Minute)
	}
	return d.String()
}
