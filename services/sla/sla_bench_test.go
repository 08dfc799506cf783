package sla

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/internal/pgtest"
	"github.com/lexhq/gstjobs/internal/tenancy"
	"github.com/lexhq/gstjobs/internal/worker"
)

// benchData fills a database with 1,000 firms (6 users and 20 cases each, 4 automation
// rules of which 2 or 3 active, a tenth with their own 12-hour critical SLA) and @tasks
// tasks: 85 % completed or cancelled over the last two years; the rest open or in
// progress, aged up to 1.25 times their priority's SLA (so about a fifth are past it)
// and due half to one and a half SLA periods after creation; 5 % with no due date,
// 2 % unassigned, one case in 25 without an owner. One statement per table; random()
// is seeded, so every run generates the same data.
var benchData = []string{
	`CREATE FUNCTION bench_uuid(kind int, n bigint) RETURNS uuid LANGUAGE sql IMMUTABLE
	 AS $$ SELECT (lpad(to_hex(kind), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid $$`,

	`INSERT INTO tenants (id, name, created_at)
	 SELECT bench_uuid(1, f), 'Firm ' || f, @now::timestamptz - interval '2 years' FROM generate_series(0, 999) f`,

	`INSERT INTO profiles (id, tenant_id, full_name, email, role)
	 SELECT bench_uuid(2, f * 6 + k), bench_uuid(1, f), 'User ' || f || '-' || k, 'u' || f || '-' || k || '@firm.example',
	        (ARRAY['admin', 'partner', 'manager', 'manager', 'ca', 'advocate'])[k + 1]
	 FROM generate_series(0, 999) f, generate_series(0, 5) k`,

	`INSERT INTO cases (id, tenant_id, case_number, title, owner_id)
	 SELECT bench_uuid(3, f * 20 + c), bench_uuid(1, f), 'GST/' || f || '/' || c, 'Case ' || c,
	        CASE WHEN (f + c) % 25 = 0 THEN NULL ELSE bench_uuid(2, f * 6 + 1) END
	 FROM generate_series(0, 999) f, generate_series(0, 19) c`,

	`INSERT INTO sla_policies (tenant_id, priority, resolution_hours)
	 SELECT bench_uuid(1, f), 'critical', 12 FROM generate_series(0, 999, 10) f`,

	`INSERT INTO automation_rules (id, tenant_id, name, trigger_event, action, is_active, created_at)
	 SELECT bench_uuid(5, f * 4 + k), bench_uuid(1, f), 'Rule ' || k,
	        (ARRAY['task_overdue', 'sla_violation', 'sla_violation', 'task_overdue'])[k + 1],
	        (ARRAY['notify_assignee', 'notify_managers', 'escalate_priority', 'notify_owner'])[k + 1],
	        CASE k WHEN 2 THEN f % 4 = 0 WHEN 3 THEN f % 2 = 0 ELSE true END,
	        @now::timestamptz - interval '1 year'
	 FROM generate_series(0, 999) f, generate_series(0, 3) k`,

	`SELECT setseed(0.42)`,

	`INSERT INTO tasks (id, tenant_id, case_id, title, assigned_to, priority, status, due_date, completed_at, created_at)
	 SELECT bench_uuid(4, i), bench_uuid(1, f), bench_uuid(3, f * 20 + (i / 1000) % 20), 'Task ' || i,
	        CASE WHEN i % 50 = 7 THEN NULL ELSE bench_uuid(2, f * 6 + 2 + i % 4) END,
	        (ARRAY['critical', 'high', 'medium', 'low'])[p], status,
	        CASE WHEN i % 20 = 3 THEN NULL ELSE created + (0.5 + r_due) * sla END,
	        CASE WHEN status = 'completed' THEN created + r_due * sla END,
	        created
	 FROM (
	     SELECT i, f, p, status, r_due, sla,
	            @now::timestamptz - CASE WHEN status IN ('open', 'in_progress') THEN r_age * 1.25 * sla
	                                     ELSE interval '30 days' + r_age * interval '700 days' END AS created
	     FROM (
	         SELECT i, f, r_age, r_due, p, (ARRAY[24, 72, 168, 336])[p] * interval '1 hour' AS sla,
	                CASE WHEN r_status < 0.78 THEN 'completed' WHEN r_status < 0.85 THEN 'cancelled'
	                     WHEN r_status < 0.94 THEN 'open' ELSE 'in_progress' END AS status
	         FROM (
	             SELECT i, i % 1000 AS f, random() AS r_status, random() AS r_age, random() AS r_due,
	                    width_bucket(random(), 0, 1, 20) AS bucket
	             FROM generate_series(0, @tasks::bigint - 1) i
	         ) s
	         CROSS JOIN LATERAL (SELECT CASE WHEN bucket <= 2 THEN 1 WHEN bucket <= 7 THEN 2 WHEN bucket <= 16 THEN 3 ELSE 4 END AS p) pr
	     ) s
	 ) s`,

	`CREATE TABLE bench_priorities AS SELECT id, priority FROM tasks WHERE status IN ('open', 'in_progress')`,
}

// benchReset undoes check runs: no fires, notifications or audit rows, and the
// priorities as generated.
const benchReset = `
TRUNCATE automation_logs, notifications, audit_log CASCADE;
UPDATE tasks t SET priority = b.priority FROM bench_priorities b WHERE b.id = t.id AND t.priority <> b.priority;
`

// benchVacuum stands in for autovacuum, which in production runs in the 15 minutes
// between two checks after a run that wrote many rows: it sets the visibility map,
// so the scans stay index-only.
const benchVacuum = `VACUUM ANALYZE tasks, automation_logs, notifications, audit_log`

const benchScan = `SELECT count(*), max(due_date) FROM tasks`

type benchEnv struct {
	pool   *pgxpool.Pool
	jobs   map[string]worker.Func
	drain  map[string]worker.Func // the same jobs without a limit on fires per run
	scanMs float64
}

func newBenchEnv(b *testing.B, tasks int) *benchEnv {
	b.Helper()
	ctx := context.Background()
	pool, _ := pgtest.NewPool(b)
	start := time.Now()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	// One connection: setseed and the inserts must share a session.
	for _, stmt := range benchData {
		if _, err := conn.Exec(ctx, stmt, pgx.NamedArgs{"now": t0, "tasks": tasks}); err != nil {
			conn.Release()
			b.Fatalf("generate %d tasks: %v\n%s", tasks, err, stmt)
		}
	}
	conn.Release()
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %d tasks for 1,000 firms in %s", tasks, time.Since(start).Round(time.Millisecond))

	// The baseline: a bare full scan of the same rows, best of five (warm cache).
	best := time.Duration(1 << 62)
	for range 5 {
		s := time.Now()
		var n int64
		var maxDue *time.Time
		if err := pool.QueryRow(ctx, benchScan).Scan(&n, &maxDue); err != nil {
			b.Fatal(err)
		}
		best = min(best, time.Since(s))
	}
	unlimited := defaultConfig()
	unlimited.maxFires = 1 << 40
	return &benchEnv{
		pool:   pool,
		jobs:   newJobs(jobservice.Deps{Pool: pool, Log: benchLog()}, defaultConfig()),
		drain:  newJobs(jobservice.Deps{Pool: pool}, unlimited),
		scanMs: float64(best.Microseconds()) / 1000,
	}
}

func (e *benchEnv) run(b *testing.B, jobs map[string]worker.Func, job string, now time.Time) worker.Report {
	b.Helper()
	j, _ := catalog.Lookup(job)
	rep, err := jobs[job](context.Background(), worker.Run{ID: uuid.NewString(), Job: j, Now: now, Scope: events.ScopeAll()})
	if err != nil {
		b.Fatalf("%s: %v", job, err)
	}
	return rep
}

func (e *benchEnv) exec(b *testing.B, sql string) {
	b.Helper()
	if _, err := e.pool.Exec(context.Background(), sql); err != nil {
		b.Fatal(err)
	}
}

// timed runs a job b.N times (per b.Loop), with before run untimed ahead of each,
// and reports the time per run and its ratio to the bare scan. It returns the last
// report and the time per run in milliseconds.
func (e *benchEnv) timed(b *testing.B, before func(), run func() worker.Report) (worker.Report, float64) {
	var rep worker.Report
	var elapsed time.Duration
	runs := 0
	for b.Loop() {
		if before != nil {
			b.StopTimer()
			before()
			b.StartTimer()
		}
		s := time.Now()
		rep = run()
		elapsed += time.Since(s)
		runs++
	}
	ms := float64(elapsed.Microseconds()) / 1000 / float64(runs)
	b.ReportMetric(ms, "ms/run")
	b.ReportMetric(ms/e.scanMs, "x_scan")
	b.ReportMetric(e.scanMs, "scan_ms")
	return rep, ms
}

// reportCopy reports copy_ms, the time COPY takes to write what a run wrote into bare
// unlogged copies of its tables (pgtest.CopyMillis), and x_copy, the run's time over it.
func reportCopy(b *testing.B, pool *pgxpool.Pool, runMs float64, sets ...pgtest.Copied) {
	b.Helper()
	copyMs := pgtest.CopyMillis(b, pool, sets...)
	b.ReportMetric(copyMs, "copy_ms")
	b.ReportMetric(runMs/copyMs, "x_copy")
}

// sliceRows are a run's slices as the job_run_tenants rows they become.
func sliceRows(runID string, rep worker.Report) [][]any {
	rows := make([][]any, 0, len(rep.Tenants))
	for _, s := range rep.Tenants {
		errs := s.Errors
		if errs == nil {
			errs = []string{}
		}
		rows = append(rows, []any{s.TenantID, runID, catalog.CheckSLAAndOverdue, 1, "success", s.Results, errs, nil, t0})
	}
	return rows
}

// BenchmarkJobs times both jobs on 10k and 1M tasks across 1,000 firms. Per size:
//
//   - check_first: the SLA check on a database where nothing has fired yet: it fires
//     the oldest SLA_MAX_FIRES_PER_RUN (20,000) breaches, carries out their actions,
//     and leaves the rest for the next runs (fires, notifications and escalations
//     undone between iterations, untimed);
//   - check_steady: after the backlog is drained (untimed), the every-15-minutes case:
//     every breach already fired, so the run must fire nothing, or the benchmark fails;
//     beside it, in the same iterations, totals_only_ms: the same statement as it was
//     before firms' slices (totalsOnly);
//   - health: the automation health check on that state;
//   - health_firm_hours: the day's health checks as today's single schedule runs them
//     and as 50 runs for the firms spread over 50 (zone, time of day) pairs.
//
// x_scan is a run's time over a bare SELECT count(*), max(due_date) FROM tasks on the
// same database, scan_ms that scan's time.
func BenchmarkJobs(b *testing.B) {
	for _, size := range []struct {
		name  string
		tasks int
	}{{"10k", 10_000}, {"100k", 100_000}, {"1M", 1_000_000}} {
		b.Run(size.name, func(b *testing.B) {
			e := newBenchEnv(b, size.tasks)
			b.Run("check_first", func(b *testing.B) {
				rep, ms := e.timed(b, func() { e.exec(b, benchReset); e.exec(b, benchVacuum) }, func() worker.Report {
					return e.run(b, e.jobs, catalog.CheckSLAAndOverdue, t0)
				})
				// What the last run wrote: its fires, notifications, their audit rows and
				// the tasks it escalated.
				reportCopy(b, e.pool, ms,
					pgtest.Copied{Table: "automation_logs", Select: "SELECT * FROM automation_logs"},
					pgtest.Copied{Table: "notifications", Select: "SELECT * FROM notifications"},
					pgtest.Copied{Table: "audit_log", Select: "SELECT * FROM audit_log WHERE action_type = 'notification_sent'"},
					pgtest.Copied{Table: "tasks", Select: "SELECT t.* FROM tasks t JOIN bench_priorities p ON p.id = t.id AND p.priority <> t.priority"})
				b.ReportMetric(float64(num(b, rep, "automation_rules_triggered")), "fired")
				b.ReportMetric(float64(num(b, rep, "notifications_sent")), "notified")
				b.ReportMetric(float64(num(b, rep, "automation_backlog")), "backlog")
			})

			s := time.Now()
			drained := e.run(b, e.drain, catalog.CheckSLAAndOverdue, t0)
			b.Logf("%s: the rest of the first run, unlimited, took %s: %v", size.name, time.Since(s).Round(time.Millisecond), drained.Results)
			e.exec(b, benchVacuum)

			// check_steady is timed beside its baseline, the steady state's one statement
			// as it was before firms' slices (totalsOnly), run in turn in every
			// iteration, each first in every other one: at 10k tasks both take 10 to 20
			// ms, and two benchmarks timed one after the other drifted apart with the
			// machine (1.06× in one run, 1.60× in the next, on the same code).
			b.Run("check_steady", func(b *testing.B) {
				totals := e.totalsOnly(b)
				var rep worker.Report
				var took, baseline time.Duration
				runs := 0
				steady := func() {
					s := time.Now()
					rep = e.run(b, e.jobs, catalog.CheckSLAAndOverdue, t0)
					took += time.Since(s)
					if n := num(b, rep, "automation_rules_triggered"); n != 0 {
						b.Fatalf("steady-state run fired %d rules, want 0: the check is not idempotent", n)
					}
				}
				before := func() {
					s := time.Now()
					totals()
					baseline += time.Since(s)
				}
				for b.Loop() {
					if runs%2 == 0 {
						steady()
						before()
					} else {
						before()
						steady()
					}
					runs++
				}
				ms := float64(took.Microseconds()) / 1000 / float64(runs)
				totalsMs := float64(baseline.Microseconds()) / 1000 / float64(runs)
				b.ReportMetric(ms, "ms/run")
				b.ReportMetric(ms/e.scanMs, "x_scan")
				b.ReportMetric(e.scanMs, "scan_ms")
				b.ReportMetric(totalsMs, "totals_only_ms")
				b.ReportMetric(ms/totalsMs, "x_totals_only")
				b.ReportMetric(float64(num(b, rep, "overdue_tasks")), "overdue")
				b.ReportMetric(float64(num(b, rep, "sla_violations")), "sla_viol")
				// The steady run writes nothing but each firm's slice, which the gateway
				// stores as one job_run_tenants row per firm.
				reportCopy(b, e.pool, ms, pgtest.Copied{Table: "job_run_tenants", Rows: sliceRows(uuid.NewString(), rep)})
			})
			b.Run("health", func(b *testing.B) {
				rep, _ := e.timed(b, nil, func() worker.Report {
					return e.run(b, e.jobs, catalog.AutomationHealthCheck, t0.Add(time.Minute))
				})
				if !slices.Contains([]any{healthy, degraded, unhealthy}, rep.Results["health"]) {
					b.Fatalf("health = %v", rep.Results["health"])
				}
				b.ReportMetric(float64(num(b, rep, "rules_checked")), "rules")
			})
			b.Run("health_firm_hours", func(b *testing.B) { e.healthFirmHours(b) })
		})
	}
}

// totalsOnly is the steady state's one statement as it was before firms' slices: no
// scope filter, totals only, in the same transaction shape, with the firms' zone report
// every run makes. check_steady over it is what the slices cost.
func (e *benchEnv) totalsOnly(b *testing.B) func() {
	sql := scanTotalsOnlySQL(b)
	return func() {
		ctx := context.Background()
		tx, err := e.pool.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		for _, q := range []string{"SET LOCAL work_mem = '64MB'", createAttemptsSQL} {
			if _, err := tx.Exec(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
		var overdue, sla, pending, queued int64
		var noPolicy, badZones []byte
		if err := tx.QueryRow(ctx, sql, pgx.NamedArgs{"now": t0, "max_fires": int64(defaultMaxFires)}).Scan(&overdue, &sla, &pending, &queued, &noPolicy, &badZones); err != nil {
			b.Fatal(err)
		}
		if queued != 0 {
			b.Fatalf("steady state queued %d fires", queued)
		}
		// The report of firms whose zone became unknown or known again is not a slice
		// (each run has it, whatever it reports): in both.
		var lost, back []zoneChange
		if err := tx.QueryRow(ctx, zoneReportsSQL, tenancy.With(pgx.NamedArgs{"now": t0}, events.ScopeAll())).Scan(&lost, &back); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// scanTotalsOnlySQL is the SLA check's scan as it was before each firm got its slice:
// the same breaches and candidates, no scope filter, and totals instead of per-firm
// counts.
func scanTotalsOnlySQL(b *testing.B) string {
	cut := strings.Index(scanSQL, "-- Each covered firm's counts")
	if cut < 0 {
		b.Fatal("the scan no longer has the per-firm part this baseline removes")
	}
	sql := strings.TrimRight(scanSQL[:cut], " \n,") + `
SELECT (SELECT count(*) FROM breaches WHERE kind = 'overdue'), (SELECT count(*) FROM breaches WHERE kind = 'sla'),
       (SELECT count(*) FROM candidates), (SELECT count(*) FROM queued),
       (` + noPolicySQL + `) AS no_policy,
       (SELECT coalesce(jsonb_agg(x ORDER BY x.tenant), '[]') FROM (
           SELECT t.id AS tenant_id, t.name AS tenant, t.timezone
           FROM tenants t
           JOIN (SELECT timezone FROM tenants GROUP BY timezone HAVING NOT valid_timezone(timezone)) v USING (timezone)) x) AS bad_zones`
	return strings.ReplaceAll(sql, tenantsCovered, "true")
}

// benchLog shows the jobs' debug log (time per pass) when BENCH_LOG is set.
func benchLog() *slog.Logger {
	if os.Getenv("BENCH_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// The firms of health_firm_hours are spread over 50 (zone, time of day) pairs, 20
// firms each: 10 zones, from Sydney to Los Angeles, at 5 times of day.
var (
	hoursZones = []string{"Asia/Kolkata", "Asia/Dubai", "America/New_York", "Europe/London", "Asia/Singapore",
		"Australia/Sydney", "Asia/Kathmandu", "Asia/Tokyo", "Europe/Berlin", "America/Los_Angeles"}
	hoursTimes = []string{"05:00", "05:30", "06:00", "06:30", "07:00"}
)

// healthFirmHours times the day's automation health checks of the 1,000 firms both
// ways, on the benchmark's data: today's single schedule (one run for every firm at
// 06:00 in Kolkata) and the firms' own hours (50 runs, one per pair at its own slot on
// 10 March, for its 20 firms). x_single is the 50 runs' total over the single run. The
// firms are back in Kolkata when it returns.
func (e *benchEnv) healthFirmHours(b *testing.B) {
	type group struct {
		slot  time.Time
		firms []string
	}
	groups := make([]group, 50)
	for p := range groups {
		loc, _ := time.LoadLocation(hoursZones[p%10])
		h, m := 0, 0
		fmt.Sscanf(hoursTimes[p/10], "%d:%d", &h, &m)
		groups[p].slot = time.Date(2026, 3, 10, h, m, 0, 0, loc)
	}
	for f := range 1000 {
		groups[f%50].firms = append(groups[f%50].firms, fmt.Sprintf("%08x-0000-4000-8000-%012x", 1, f))
	}
	run := func(now time.Time, scope events.Scope) {
		j, _ := catalog.Lookup(catalog.AutomationHealthCheck)
		if _, err := e.jobs[catalog.AutomationHealthCheck](context.Background(), worker.Run{ID: uuid.NewString(), Job: j, Now: now, Scope: scope}); err != nil {
			b.Fatal(err)
		}
	}
	var single, spread time.Duration
	n := 0
	for b.Loop() {
		b.StopTimer()
		e.exec(b, `UPDATE tenants SET timezone = 'Asia/Kolkata'`)
		b.StartTimer()
		start := time.Now()
		run(time.Date(2026, 3, 10, 6, 0, 0, 0, kolkataLoc()), events.ScopeAll())
		single += time.Since(start)
		b.StopTimer()
		if _, err := e.pool.Exec(context.Background(), `UPDATE tenants SET timezone = ($1::text[])[(('x' || right(id::text, 12))::bit(48)::bigint % 50) % 10 + 1]`, hoursZones); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for _, g := range groups {
			start := time.Now()
			run(g.slot, events.ScopeFirms(g.firms))
			spread += time.Since(start)
		}
		n++
	}
	b.StopTimer()
	e.exec(b, `UPDATE tenants SET timezone = 'Asia/Kolkata'`)
	s, g := float64(single.Microseconds())/1000/float64(n), float64(spread.Microseconds())/1000/float64(n)
	b.ReportMetric(s, "single_ms")
	b.ReportMetric(g, "groups_ms")
	b.ReportMetric(g/s, "x_single")
	b.ReportMetric(50, "groups_runs/day")
}

func kolkataLoc() *time.Location {
	l, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		panic(err)
	}
	return l
}
