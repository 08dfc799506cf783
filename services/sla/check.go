package sla

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
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
	failures []failure
	// parts is the transactions the pass's actions were carried out in (1 or 2).
	parts    int
	noPolicy []struct {
		TenantID string `json:"tenant_id"`
		Tenant   string `json:"tenant"`
		Priority string `json:"priority"`
		Tasks    int64  `json:"tasks"`
	}
}

// failure is a rule that could not act on some of a firm's tasks, for one reason.
type failure struct {
	TenantID string `json:"tenant_id"`
	Tenant   string `json:"tenant"`
	RuleID   string `json:"rule_id"`
	Rule     string `json:"rule"`
	Error    string `json:"error"`
	Tasks    int64  `json:"tasks"`
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
	if err := tx.QueryRow(ctx, zoneReportsSQL, tenancy.EachRun, tenancy.With(pgx.NamedArgs{"now": run.Now}, run.Scope)).Scan(&zonesLost, &zonesBack); err != nil {
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
	p := checkPass{parts: 1}
	start := time.Now()
	log := s.runLog(run, catalog.CheckSLAAndOverdue)
	defer func() {
		log.Debug("sla check pass", "pass", pass, "queued", p.queued, "parts", p.parts, "fired", p.fired,
			"notified", p.notified, "escalated", p.escalated, "scan", p.scanTook, "took", time.Since(start))
	}()
	if pass > 1 {
		if _, err := tx.Exec(ctx, "TRUNCATE sla_attempts"); err != nil {
			return p, fmt.Errorf("clear attempts: %w", err)
		}
	}
	// The scan and the act are planned at every run (tenancy.EachRun): a firm's Run Now
	// for that firm, a run for every firm for every firm, never with the generic plan
	// of a statement run every 15 minutes on the same connection.
	err := tx.QueryRow(ctx, scanSQL, tenancy.EachRun, tenancy.With(pgx.NamedArgs{"now": run.Now, "max_fires": budget}, run.Scope)).
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
	args := pgx.NamedArgs{
		"now":           run.Now,
		"run_id":        runID,
		"job_name":      jobName(run, catalog.CheckSLAAndOverdue),
		"fallback_zone": s.cfg.zone,
	}
	var moved [][]any
	if s.cfg.splitAt > 0 && p.queued >= int64(s.cfg.splitAt) {
		if moved, err = moveHalf(ctx, tx); err != nil {
			return p, err
		}
	}
	if len(moved) == 0 {
		if err := act(ctx, tx, args, &p); err != nil {
			return p, err
		}
	} else {
		// Two firm-disjoint halves at once: this transaction's, and the moved firms' in
		// a transaction of their own, committed on its own (see defaultSplitAt).
		p.parts = 2
		var elsewhere checkPass
		var errElsewhere error
		var wg sync.WaitGroup
		wg.Go(func() { errElsewhere = s.actOnOwn(ctx, args, moved, &elsewhere) })
		errHere := act(ctx, tx, args, &p)
		wg.Wait()
		if err := errors.Join(errHere, errElsewhere); err != nil {
			return p, err
		}
		p.audited += elsewhere.audited
		p.perFirm = append(p.perFirm, elsewhere.perFirm...)
		p.failures = append(p.failures, elsewhere.failures...)
		// In the order one statement gives them (actSQL's failures).
		slices.SortFunc(p.failures, func(a, b failure) int {
			return cmp.Or(strings.Compare(a.Tenant, b.Tenant), strings.Compare(a.Rule, b.Rule), strings.Compare(a.Error, b.Error))
		})
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

// act carries out the attempts in the transaction's sla_attempts (actSQL), planned on
// the table's real size.
func act(ctx context.Context, tx pgx.Tx, args pgx.NamedArgs, p *checkPass) error {
	if _, err := tx.Exec(ctx, "ANALYZE sla_attempts"); err != nil {
		return fmt.Errorf("analyze attempts: %w", err)
	}
	if err := tx.QueryRow(ctx, actSQL, tenancy.EachRun, args).Scan(&p.audited, &p.perFirm, &p.failures); err != nil {
		return fmt.Errorf("act: %w", err)
	}
	return nil
}

// A pass that fires many rules (defaultSplitAt or more) carries out its actions in
// two firm-disjoint halves at once: writing the fires, their notifications and audit
// rows is nearly the whole cost of such a pass, and two backends write them in well
// under the time of one on two cores (the first run on 1M tasks, 20,000 fires: 1.4 to
// 1.9 s of actions instead of 1.7 to 2.8 s, interleaved). The run's transaction keeps
// one half; the other half's firms are moved to a transaction of their own on another
// connection, which commits on its own. So a run that fails after that commit leaves
// that half's fires, notifications and audit rows in place, and no more: automation
// logs' unique key keeps the next run from firing any of them again, and it carries
// out the rest, as after any failed run. Halves are made of whole firms, so they never
// write the same rows, and balanced by the firms' attempts.
const defaultSplitAt = 2_000

// moveHalf takes out of sla_attempts, and returns, the attempts of about half of
// them, in whole firms (the largest first, each to the lighter half). It moves nothing
// when one firm has them all.
func moveHalf(ctx context.Context, tx pgx.Tx) ([][]any, error) {
	rows, err := tx.Query(ctx, `SELECT tenant_id, count(*) FROM sla_attempts GROUP BY tenant_id ORDER BY count(*) DESC, tenant_id`)
	if err != nil {
		return nil, fmt.Errorf("split attempts: %w", err)
	}
	var kept, movedN int64
	var moved []uuid.UUID
	var id uuid.UUID
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&id, &n}, func() error {
		if movedN < kept {
			moved, movedN = append(moved, id), movedN+n
		} else {
			kept += n
		}
		return nil
	})
	if err != nil || len(moved) == 0 {
		return nil, err
	}
	rows, err = tx.Query(ctx, `DELETE FROM sla_attempts WHERE tenant_id = ANY(@moved::uuid[]) RETURNING `+attemptColumnList, pgx.NamedArgs{"moved": moved})
	if err != nil {
		return nil, fmt.Errorf("move attempts: %w", err)
	}
	defer rows.Close()
	var out [][]any
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			return nil, fmt.Errorf("move attempts: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("move attempts: %w", err)
	}
	return out, nil
}

// attemptColumns are sla_attempts' columns, in their order.
var attemptColumns = []string{"tenant_id", "task_id", "rule_id", "rule_name", "action", "kind", "trigger_event",
	"deadline", "occurrence", "title", "priority", "assigned_to", "case_id"}

var attemptColumnList = strings.Join(attemptColumns, ", ")

// halfLockTimeout bounds any lock wait of the second half (actOnOwn).
const halfLockTimeout = 30 * time.Second

// actOnOwn carries out moved attempts in a transaction of their own.
func (s *service) actOnOwn(ctx context.Context, args pgx.NamedArgs, moved [][]any, p *checkPass) error {
	tx, err := s.deps.Pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("second half: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// The halves never wait for each other's rows, but the run's transaction, once its
	// half is done, waits for this one: were this one ever to wait for a row lock the
	// run's transaction holds, neither could end. A lock wait this long is that, or a
	// row held elsewhere for as long; either fails the run, and the next run carries
	// out what it did not.
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = '%dms'", halfLockTimeout.Milliseconds())); err != nil {
		return fmt.Errorf("second half: set lock_timeout: %w", err)
	}
	if _, err := tx.Exec(ctx, createAttemptsSQL); err != nil {
		return fmt.Errorf("second half: create attempts table: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"sla_attempts"}, attemptColumns, pgx.CopyFromRows(moved)); err != nil {
		return fmt.Errorf("second half: copy attempts: %w", err)
	}
	if err := act(ctx, tx, args, p); err != nil {
		return fmt.Errorf("second half: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("second half: commit: %w", err)
	}
	return nil
}
