package sla

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/tenancy"
	"github.com/lexhq/gstjobs/internal/worker"
)

// maxPasses bounds the passes of one SLA check. A pass that escalates priorities can
// create new SLA breaches (a shorter policy now applies), and the next pass acts on
// them, so a run leaves nothing for the next run to do. A task can rise at most three
// levels, so the fourth pass escalates nothing.
const maxPasses = 4

// A pass of the SLA check is two statements around a temporary table, sla_attempts:
//
//   - scanSQL counts the breaches and queues, for every active rule × breach not fired
//     before (alreadyFired), one attempt, oldest deadline first, at most @max_fires.
//     In the steady state, every 15 minutes, it queues nothing and is the only
//     statement that runs.
//   - actSQL, planned with the table's real size (it is analyzed first), records the
//     attempts in automation_logs, each as failed with the reason when its action
//     cannot be carried out (no assignee, no owner, no managers), and carries out the
//     actions of the rows it recorded; automation_logs' unique key makes a concurrent
//     or repeated run fire nothing twice.
//
// The table keeps the scan of automation_logs apart from the insert into it: in one
// statement, the scan would read the pages the same statement is filling.
const createAttemptsSQL = `
CREATE TEMPORARY TABLE sla_attempts (
    tenant_id     uuid NOT NULL,
    task_id       uuid NOT NULL,
    rule_id       uuid NOT NULL,
    rule_name     text NOT NULL,
    action        text NOT NULL,
    kind          text NOT NULL,
    trigger_event text NOT NULL,
    deadline      timestamptz NOT NULL,
    occurrence    text NOT NULL,
    title         text NOT NULL,
    priority      text NOT NULL,
    assigned_to   uuid,
    case_id       uuid
) ON COMMIT DROP`

var scanSQL = `
WITH ` + breachesCTE + `,
candidates AS MATERIALIZED (
    SELECT b.tenant_id, b.task_id, r.id AS rule_id, r.name AS rule_name, r.action,
           b.kind, b.trigger_event, b.deadline, b.occurrence
    FROM breaches b
    JOIN automation_rules r ON r.tenant_id = b.tenant_id AND r.trigger_event = b.trigger_event AND r.is_active
    WHERE NOT ` + alreadyFired + `
),
-- The queued attempts carry what the actions need of their tasks, read here by id
-- for the attempts alone (the statement that acts would join every task to find them).
queued AS (
    INSERT INTO sla_attempts
    SELECT c.*, t.title, t.priority, t.assigned_to, t.case_id
    FROM (SELECT * FROM candidates ORDER BY deadline, rule_id, task_id LIMIT @max_fires::bigint) c
    JOIN tasks t ON t.id = c.task_id
    RETURNING tenant_id
),
-- Each covered firm's counts, zeros included: the firms are the covered rows of
-- tenants, the counts one grouping of what the statement computed anyway.
per_firm AS (
    SELECT t.id AS tenant_id,
           coalesce(b.overdue, 0) AS overdue, coalesce(b.sla, 0) AS sla,
           coalesce(c.pending, 0) AS pending, coalesce(q.queued, 0) AS queued
    FROM tenants t
    LEFT JOIN (SELECT tenant_id, count(*) FILTER (WHERE kind = 'overdue') AS overdue,
                      count(*) FILTER (WHERE kind = 'sla') AS sla
               FROM breaches GROUP BY tenant_id) b ON b.tenant_id = t.id
    LEFT JOIN (SELECT tenant_id, count(*) AS pending FROM candidates GROUP BY tenant_id) c ON c.tenant_id = t.id
    LEFT JOIN (SELECT tenant_id, count(*) AS queued FROM queued GROUP BY tenant_id) q ON q.tenant_id = t.id
    WHERE ` + tenancy.Filter("t.id") + `
)
SELECT
    coalesce(array_agg(tenant_id::text ORDER BY tenant_id), '{}'),
    coalesce(array_agg(overdue ORDER BY tenant_id), '{}'),
    coalesce(array_agg(sla ORDER BY tenant_id), '{}'),
    coalesce(array_agg(pending ORDER BY tenant_id), '{}'),
    coalesce(array_agg(queued ORDER BY tenant_id), '{}'),
    (` + noPolicySQL + `) AS no_policy
FROM per_firm`

// zoneReportsSQL finds, among the covered firms, those whose time zone has just become
// unknown (not a name of the tz database: their jobs use JOBS_TIMEZONE instead) and
// those whose zone is known again, and records the change in tenant_zone_fallbacks, so
// that each is reported once, by the first run that sees it, and not by every run
// after it. A firm that changes one unknown zone for another is reported again.
var zoneReportsSQL = `
WITH firms AS (
    SELECT t.id, t.name, t.timezone, z.name IS NOT NULL AS known
    FROM tenants t
    LEFT JOIN time_zones z ON z.name = t.timezone
    WHERE ` + tenancy.Filter("t.id") + `
),
started AS (
    INSERT INTO tenant_zone_fallbacks AS f (tenant_id, timezone, since)
    SELECT id, timezone, @now::timestamptz FROM firms WHERE NOT known
    ON CONFLICT (tenant_id) DO UPDATE SET timezone = EXCLUDED.timezone, since = EXCLUDED.since
        WHERE f.timezone IS DISTINCT FROM EXCLUDED.timezone
    RETURNING tenant_id, timezone
),
ended AS (
    DELETE FROM tenant_zone_fallbacks f USING firms
    WHERE f.tenant_id = firms.id AND firms.known
    RETURNING f.tenant_id, f.timezone AS was, firms.timezone
)
SELECT
    (SELECT coalesce(jsonb_agg(jsonb_build_object('tenant_id', s.tenant_id, 'tenant', fm.name, 'timezone', s.timezone) ORDER BY fm.name), '[]')
     FROM started s JOIN firms fm ON fm.id = s.tenant_id),
    (SELECT coalesce(jsonb_agg(jsonb_build_object('tenant_id', e.tenant_id, 'tenant', fm.name, 'timezone', e.timezone, 'was', e.was) ORDER BY fm.name), '[]')
     FROM ended e JOIN firms fm ON fm.id = e.tenant_id)`

// zoneChange is a firm whose time zone became unknown, or known again (Was).
type zoneChange struct {
	TenantID string `json:"tenant_id"`
	Tenant   string `json:"tenant"`
	Timezone string `json:"timezone"`
	Was      string `json:"was,omitempty"`
}

// noPolicySQL lists, per firm and priority, the open tasks no SLA policy covers. It
// reads tasks only when a default policy is missing, which a healthy system never has.
var noPolicySQL = `
SELECT coalesce(jsonb_agg(x ORDER BY x.tenant, x.priority), '[]') FROM (
    SELECT t.tenant_id, tn.name AS tenant, t.priority, count(*) AS tasks
    FROM tasks t JOIN tenants tn ON tn.id = t.tenant_id
    WHERE EXISTS (SELECT 1 FROM unnest(ARRAY['critical', 'high', 'medium', 'low']) AS p(priority)
                  WHERE NOT EXISTS (SELECT 1 FROM sla_policies d WHERE d.tenant_id IS NULL AND d.priority = p.priority))
      AND t.status IN ('open', 'in_progress')
      AND ` + tenantsCovered + `
      AND NOT EXISTS (SELECT 1 FROM sla_policies p
                      WHERE p.priority = t.priority AND (p.tenant_id = t.tenant_id OR p.tenant_id IS NULL))
    GROUP BY t.tenant_id, tn.name, t.priority) x`

var actSQL = `
WITH managers AS (
    SELECT tenant_id, count(*) AS n FROM profiles WHERE role = 'manager' GROUP BY tenant_id
),
attempts AS MATERIALIZED (
    SELECT a.*, cs.owner_id,
           CASE a.action
               WHEN 'notify_assignee' THEN CASE
                   WHEN a.assigned_to IS NULL THEN 'task has no assignee'
                   WHEN ap.tenant_id <> a.tenant_id THEN 'task assignee belongs to another firm' END
               WHEN 'notify_owner' THEN CASE
                   WHEN a.case_id IS NULL THEN 'task has no case'
                   WHEN cs.tenant_id <> a.tenant_id THEN 'task case belongs to another firm'
                   WHEN cs.owner_id IS NULL THEN 'case has no owner'
                   WHEN op.tenant_id <> a.tenant_id THEN 'case owner belongs to another firm' END
               WHEN 'notify_managers' THEN CASE
                   WHEN coalesce(m.n, 0) = 0 THEN 'firm has no managers' END
           END AS error
    FROM sla_attempts a
    LEFT JOIN profiles ap ON ap.id = a.assigned_to
    LEFT JOIN cases cs ON cs.id = a.case_id
    LEFT JOIN profiles op ON op.id = cs.owner_id
    LEFT JOIN managers m ON m.tenant_id = a.tenant_id
),
zones AS MATERIALIZED (
    -- A firm's own time zone for notification texts if it is one, else JOBS_TIMEZONE:
    -- as every job reads it (firm_zones).
    SELECT tenant_id, zone FROM firm_zones(@fallback_zone::text)
),
fired AS (
    INSERT INTO automation_logs (tenant_id, rule_id, task_id, entity_type, entity_id, occurrence,
                                 run_id, job_name, status, error, executed_at)
    SELECT tenant_id, rule_id, task_id, 'task', task_id, occurrence,
           @run_id::uuid, @job_name::text, CASE WHEN error IS NULL THEN 'success' ELSE 'failed' END, error, @now::timestamptz
    FROM attempts
    ON CONFLICT (rule_id, entity_id, occurrence) DO NOTHING
    RETURNING tenant_id, rule_id, task_id, occurrence, status
),
done AS (
    SELECT a.*, f.status FROM fired f JOIN attempts a USING (rule_id, task_id, occurrence)
),
deliveries AS (
    SELECT x.*, 'automation:' || x.rule_id || ':' || x.task_id || ':' || x.occurrence || ':' || x.user_id AS dedupe_key
    FROM (
        SELECT d.*, d.assigned_to AS user_id FROM done d WHERE d.status = 'success' AND d.action = 'notify_assignee'
        UNION ALL
        SELECT d.*, d.owner_id FROM done d WHERE d.status = 'success' AND d.action = 'notify_owner'
        UNION ALL
        SELECT d.*, p.id FROM done d JOIN profiles p ON p.tenant_id = d.tenant_id AND p.role = 'manager'
        WHERE d.status = 'success' AND d.action = 'notify_managers'
    ) x
),
notified AS (
    INSERT INTO notifications (tenant_id, user_id, kind, title, body, entity_type, entity_id, dedupe_key, created_at)
    SELECT x.tenant_id, x.user_id, x.trigger_event,
           CASE x.kind WHEN 'overdue' THEN 'Overdue: ' ELSE 'SLA breached: ' END || x.title,
           format(CASE x.kind
                      WHEN 'overdue' THEN '"%s" (%s priority) was due %s (%s) and is still open. Sent by automation rule "%s".'
                      ELSE '"%s" (%s priority) should have been resolved by %s (%s) under the firm''s SLA. Sent by automation rule "%s".'
                  END,
                  x.title, x.priority, to_char(x.deadline AT TIME ZONE z.zone, 'DD Mon YYYY, HH24:MI'), z.zone, x.rule_name),
           'task', x.task_id, x.dedupe_key, @now::timestamptz
    FROM deliveries x JOIN zones z ON z.tenant_id = x.tenant_id
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id, tenant_id, user_id, kind, dedupe_key
),
audited AS (
    INSERT INTO audit_log (tenant_id, user_id, action_type, entity_type, entity_id, details, dedupe_key, "timestamp")
    SELECT n.tenant_id, n.user_id, 'notification_sent', 'notification', n.id::text,
           jsonb_build_object('channel', 'in_app', 'kind', n.kind, 'notification_id', n.id,
                              'job_name', @job_name::text, 'run_id', @run_id::uuid,
                              'rule_id', x.rule_id, 'task_id', x.task_id, 'occurrence', x.occurrence),
           'notification_sent:' || n.dedupe_key, @now::timestamptz
    FROM notified n JOIN deliveries x ON x.dedupe_key = n.dedupe_key
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING 1
),
escalated AS (
    UPDATE tasks t
    SET priority = CASE t.priority WHEN 'low' THEN 'medium' WHEN 'medium' THEN 'high' ELSE 'critical' END
    FROM (SELECT DISTINCT task_id FROM done WHERE status = 'success' AND action = 'escalate_priority') e
    WHERE t.id = e.task_id AND t.status IN ('open', 'in_progress') AND t.priority <> 'critical'
    RETURNING t.tenant_id
)
SELECT
    (SELECT count(*) FROM audited) AS audited,
    -- What the pass did, per firm: only firms it did something for are listed.
    (SELECT coalesce(jsonb_agg(x), '[]') FROM (
        SELECT tenant_id, sum(fired) AS fired, sum(failed) AS failed, sum(notified) AS notified, sum(escalated) AS escalated
        FROM (
            SELECT tenant_id, 1 AS fired, (status = 'failed')::int AS failed, 0 AS notified, 0 AS escalated FROM fired
            UNION ALL SELECT tenant_id, 0, 0, 1, 0 FROM notified
            UNION ALL SELECT tenant_id, 0, 0, 0, 1 FROM escalated
        ) u GROUP BY tenant_id) x) AS per_firm,
    (SELECT coalesce(jsonb_agg(x ORDER BY x.tenant, x.rule, x.error), '[]') FROM (
        SELECT d.tenant_id, t.name AS tenant, d.rule_id, d.rule_name AS rule, d.error, count(*) AS tasks
        FROM done d JOIN tenants t ON t.id = d.tenant_id
        WHERE d.status = 'failed'
        GROUP BY d.tenant_id, t.name, d.rule_id, d.rule_name, d.error) x) AS failures`

// checkPass is what one pass found and did, per firm and in all.
type checkPass struct {
	scanTook                                    time.Duration
	overdue, sla, pending, queued               int64
	fired, failed, notified, audited, escalated int64
	// The scan's counts of every covered firm, in the same order.
	tenants                                              []string
	tenantOverdue, tenantSLA, tenantPending, tenantQueue []int64
	// What the act statement did for each firm it did something for.
	perFirm []struct {
		TenantID  string `json:"tenant_id"`
		Fired     int64  `json:"fired"`
		Failed    int64  `json:"failed"`
		Notified  int64  `json:"notified"`
		Escalated int64  `json:"escalated"`
	}
	failures []struct {
		TenantID string `json:"tenant_id"`
		Tenant   string `json:"tenant"`
		RuleID   string `json:"rule_id"`
		Rule     string `json:"rule"`
		Error    string `json:"error"`
		Tasks    int64  `json:"tasks"`
	}
	noPolicy []struct {
		TenantID string `json:"tenant_id"`
		Tenant   string `json:"tenant"`
		Priority string `json:"priority"`
		Tasks    int64  `json:"tasks"`
	}
}

// checkResultKeys are the SLA check's counters, in the run's totals and in every
// firm's slice.
var checkResultKeys = []string{
	"overdue_tasks", "sla_violations", "automation_rules_triggered", "automation_failures",
	"automation_backlog", "notifications_sent", "priorities_escalated",
}

func zeroes(keys []string) map[string]any {
	m := make(map[string]any, len(keys))
	for _, k := range keys {
		m[k] = int64(0)
	}
	return m
}

// checkSLAAndOverdue is the check-sla-and-overdue job.
func (s *service) checkSLAAndOverdue(ctx context.Context, run worker.Run) (worker.Report, error) {
	pool, runID, err := s.begin(run)
	if err != nil {
		return worker.Report{}, err
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return worker.Report{}, worker.Fail("Database connection failed", fmt.Errorf("sla: check: begin: %w", err))
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// The breach scan covers every open task of every firm; give it room to hash in memory.
	if _, err := tx.Exec(ctx, "SET LOCAL work_mem = '64MB'"); err != nil {
		return worker.Report{}, worker.Fail("Database query failed", fmt.Errorf("sla: check: set work_mem: %w", err))
	}
	// A firm's Run Now is planned for that firm, not given the generic plan the
	// every-15-minutes runs for every firm leave on the connection.
	if err := tenancy.PlanEachNamedRun(ctx, tx, run.Scope); err != nil {
		return worker.Report{}, worker.Fail("Database query failed", fmt.Errorf("sla: check: %w", err))
	}
	if _, err := tx.Exec(ctx, createAttemptsSQL); err != nil {
		return worker.Report{}, worker.Fail("Database query failed", fmt.Errorf("sla: check: create attempts table: %w", err))
	}

	var total, last checkPass
	var passes []checkPass
	budget := int64(s.cfg.maxFires)
	for pass := 1; pass <= maxPasses && budget > 0; pass++ {
		p, err := s.checkPass(ctx, tx, run, runID, pass, budget)
		if err != nil {
			return worker.Report{}, worker.Fail("Database query failed", fmt.Errorf("sla: check pass %d: %w", pass, err))
		}
		budget -= p.queued
		total.fired += p.fired
		total.failed += p.failed
		total.notified += p.notified
		total.escalated += p.escalated
		passes = append(passes, p)
		last = p
		if p.escalated == 0 {
			break
		}
	}
	var zonesLost, zonesBack []zoneChange
	if err := tx.QueryRow(ctx, zoneReportsSQL, tenancy.With(pgx.NamedArgs{"now": run.Now}, run.Scope)).Scan(&zonesLost, &zonesBack); err != nil {
		return worker.Report{}, worker.Fail("Database query failed", fmt.Errorf("sla: check: firms' time zones: %w", err))
	}
	if err := tx.Commit(ctx); err != nil {
		return worker.Report{}, worker.Fail("Database commit failed", fmt.Errorf("sla: check: commit: %w", err))
	}

	// Each firm's slice: the last pass's breach counts (what is still open after any
	// escalation), the actions of every pass.
	firms := newFirms(last.tenants, zeroes(checkResultKeys))
	for i, id := range last.tenants {
		firms.add(id, "overdue_tasks", last.tenantOverdue[i])
		firms.add(id, "sla_violations", last.tenantSLA[i])
		firms.add(id, "automation_backlog", max(last.tenantPending[i]-last.tenantQueue[i], 0))
	}
	var problems errorList
	for _, z := range zonesLost {
		problems.add("%s: time zone %q is unknown; until it is corrected, the firm's days, the hours of its daily jobs and the times in its notifications are those of %s (firm %s)", z.Tenant, z.Timezone, s.cfg.zone, z.TenantID)
		firms.problem(z.TenantID, "the firm's time zone %q is unknown; until it is corrected, its days, the hours of its daily jobs and the times in its notifications are those of %s", z.Timezone, s.cfg.zone)
	}
	for _, z := range zonesBack {
		problems.add("%s: time zone %q is known again (it was %q): the firm's jobs use it from now on (firm %s)", z.Tenant, z.Timezone, z.Was, z.TenantID)
		firms.problem(z.TenantID, "the firm's time zone %q is known again (it was %q): its jobs use it from now on", z.Timezone, z.Was)
	}
	if len(zonesLost)+len(zonesBack) > 0 {
		s.runLog(run, catalog.CheckSLAAndOverdue).Warn("firms' time zones changed", "unknown_now", zonesLost, "known_again", zonesBack)
	}
	for _, p := range last.noPolicy {
		problems.add("%s: no SLA policy for priority %q, and no default one: %d open task(s) were not checked against an SLA (firm %s)",
			p.Tenant, p.Priority, p.Tasks, p.TenantID)
		firms.problem(p.TenantID, "no SLA policy for priority %q, and no default one: %d open task(s) were not checked against an SLA", p.Priority, p.Tasks)
	}
	for _, p := range passes {
		for _, f := range p.perFirm {
			firms.add(f.TenantID, "automation_rules_triggered", f.Fired)
			firms.add(f.TenantID, "automation_failures", f.Failed)
			firms.add(f.TenantID, "notifications_sent", f.Notified)
			firms.add(f.TenantID, "priorities_escalated", f.Escalated)
		}
		for _, f := range p.failures {
			problems.add("%s: automation rule %q could not act on %d task(s): %s (firm %s, rule %s)",
				f.Tenant, f.Rule, f.Tasks, f.Error, f.TenantID, f.RuleID)
			firms.problem(f.TenantID, "automation rule %q could not act on %d task(s): %s", f.Rule, f.Tasks, f.Error)
		}
	}
	backlog := max(last.pending-last.queued, 0)
	log := s.runLog(run, catalog.CheckSLAAndOverdue)
	if backlog > 0 {
		log.Warn("rule fires left for the next runs", "backlog", backlog, "max_per_run", s.cfg.maxFires, "setting", envMaxFires)
	}

	log.Info("sla check done", "firms", len(last.tenants), "overdue", last.overdue, "sla_violations", last.sla,
		"fired", total.fired, "failed", total.failed, "notified", total.notified, "escalated", total.escalated, "backlog", backlog)
	return worker.Report{
		Results: map[string]any{
			"overdue_tasks":              last.overdue,
			"sla_violations":             last.sla,
			"automation_rules_triggered": total.fired,
			"automation_failures":        total.failed,
			"automation_backlog":         backlog,
			"notifications_sent":         total.notified,
			"priorities_escalated":       total.escalated,
		},
		Errors:  problems.list(),
		Tenants: firms.slices(),
	}, nil
}

func (s *service) checkPass(ctx context.Context, tx pgx.Tx, run worker.Run, runID uuid.UUID, pass int, budget int64) (checkPass, error) {
	var p checkPass
	start := time.Now()
	log := s.runLog(run, catalog.CheckSLAAndOverdue)
	defer func() {
		log.Debug("sla check pass", "pass", pass, "queued", p.queued, "fired", p.fired,
			"notified", p.notified, "escalated", p.escalated, "scan", p.scanTook, "took", time.Since(start))
	}()
	if pass > 1 {
		if _, err := tx.Exec(ctx, "TRUNCATE sla_attempts"); err != nil {
			return p, fmt.Errorf("clear attempts: %w", err)
		}
	}
	err := tx.QueryRow(ctx, scanSQL, tenancy.With(pgx.NamedArgs{"now": run.Now, "max_fires": budget}, run.Scope)).
		Scan(&p.tenants, &p.tenantOverdue, &p.tenantSLA, &p.tenantPending, &p.tenantQueue, &p.noPolicy)
	if err != nil {
		return p, fmt.Errorf("scan: %w", err)
	}
	for i := range p.tenants {
		p.overdue += p.tenantOverdue[i]
		p.sla += p.tenantSLA[i]
		p.pending += p.tenantPending[i]
		p.queued += p.tenantQueue[i]
	}
	p.scanTook = time.Since(start)
	if p.queued == 0 {
		return p, nil
	}
	if _, err := tx.Exec(ctx, "ANALYZE sla_attempts"); err != nil {
		return p, fmt.Errorf("analyze attempts: %w", err)
	}
	err = tx.QueryRow(ctx, actSQL, pgx.NamedArgs{
		"now":           run.Now,
		"run_id":        runID,
		"job_name":      jobName(run, catalog.CheckSLAAndOverdue),
		"fallback_zone": s.cfg.zone,
	}).Scan(&p.audited, &p.perFirm, &p.failures)
	if err != nil {
		return p, fmt.Errorf("act: %w", err)
	}
	for _, f := range p.perFirm {
		p.fired += f.Fired
		p.failed += f.Failed
		p.notified += f.Notified
		p.escalated += f.Escalated
	}
	if p.audited != p.notified {
		// Every notification delivered has its audit row; a difference means a
		// dedupe_key collision in audit_log written by someone else.
		log.Warn("notifications without a new audit row", "notified", p.notified, "audited", p.audited)
	}
	return p, nil
}
