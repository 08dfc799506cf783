package analytics

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/internal/pgtest"
	"github.com/lexhq/gstjobs/internal/tenancy"
	"github.com/lexhq/gstjobs/internal/worker"
)

const benchTenants = 1000

// BenchmarkCapture times one snapshot of 1,000 firms (target: under 5 s) over 10k and
// 1M tasks, with cases, hearings and e-mail deliveries in proportion, generated once
// per size outside the timed region. Two cases share each data set:
//
//   - nightly: the 00:30 run, which inserts the day's rows (each iteration first
//     deletes them, untimed);
//   - rerun: Run Now later the same day, which replaces them;
//   - firm_hours: the day's snapshots as today's single schedule takes them and as 50
//     runs for the firms spread over 50 (zone, time of day) pairs (see firmHours).
//
// Beside ns/op each reports scan_ms, the time to count every row of the tables the
// snapshot reads (the cheapest way to visit each row once, on the same data, measured
// in the same benchmark right after the timed runs), and x_scan, the snapshot's time
// per run as a multiple of it; copy_ms, the time COPY takes to write the rows a run
// wrote (the day's snapshots) into a bare unlogged copy of the table, and x_copy, the
// snapshot's time as a multiple of that.
//
//	go test -run '^$' -bench Capture ./
func BenchmarkCapture(b *testing.B) {
	for _, tasks := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("tenants=%d/tasks=%s", benchTenants, short(tasks)), func(b *testing.B) {
			pool, _ := pgtest.NewPool(b)
			generate(b.Context(), b, pool, tasks)
			jobs, err := Jobs(jobservice.Deps{Pool: pool, Location: kolkata})
			if err != nil {
				b.Fatal(err)
			}
			job := jobs[catalog.CaptureAnalyticsSnapshot]

			b.Run("nightly", func(b *testing.B) {
				ctx := b.Context()
				for b.Loop() {
					b.StopTimer()
					if _, err := pool.Exec(ctx, `DELETE FROM analytics_snapshots`); err != nil {
						b.Fatal(err)
					}
					if _, err := pool.Exec(ctx, `VACUUM analytics_snapshots`); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					captureAllFirms(ctx, b, job)
				}
				report(b, pool)
			})
			// The same nightly statement as it was before firms' slices: no scope
			// filter, totals only. The ratio of the two is what the slices cost.
			b.Run("nightly_totals_only", func(b *testing.B) {
				ctx := b.Context()
				for b.Loop() {
					b.StopTimer()
					if _, err := pool.Exec(ctx, `DELETE FROM analytics_snapshots`); err != nil {
						b.Fatal(err)
					}
					if _, err := pool.Exec(ctx, `VACUUM analytics_snapshots`); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					// In one transaction sent as the job's run for every firm is
					// (tenancy.QueueInOneTransaction), so that the two differ only in
					// the statement.
					var tenants, rows int64
					var batch pgx.Batch
					tenancy.QueueInOneTransaction(&batch, events.ScopeAll(), totalsOnlySQL(b), pgx.NamedArgs{
						"now": runNow, "fallback_zone": kolkata.String(),
					}, func(r pgx.Row) error { return r.Scan(&tenants, &rows) })
					if err := pool.SendBatch(ctx, &batch).Close(); err != nil {
						b.Fatal(err)
					}
				}
				report(b, pool)
			})
			b.Run("rerun", func(b *testing.B) {
				ctx := b.Context()
				captureAllFirms(ctx, b, job) // the nightly run before it
				for b.Loop() {
					captureAllFirms(ctx, b, job)
				}
				report(b, pool)
			})
			b.Run("firm_hours", func(b *testing.B) { firmHours(b, pool, job) })
		})
	}
}

// totalsOnlySQL is capture.sql as it was before each firm got its slice: every
// covered(...) filter true and the last statement counting the rows written in all.
func totalsOnlySQL(b *testing.B) string {
	const perFirm = "SELECT coalesce(array_agg(tenant_id::text ORDER BY tenant_id), '{}'), coalesce(array_agg(n ORDER BY tenant_id), '{}'),\n       coalesce(array_agg(snapshot_date::text ORDER BY tenant_id), '{}')\nFROM (SELECT tenant_id, snapshot_date, count(*) AS n FROM written GROUP BY tenant_id, snapshot_date) w;"
	if !strings.Contains(captureFile, perFirm) {
		b.Fatal("capture.sql no longer ends with the per-firm count this baseline replaces")
	}
	sql := strings.Replace(captureFile, perFirm, "SELECT count(DISTINCT tenant_id), count(*) FROM written;", 1)
	return regexp.MustCompile(`\bcovered\([a-z_.]+\)`).ReplaceAllString(sql, "true")
}

// captureAllFirms runs the job once and checks that it covered every firm.
func captureAllFirms(ctx context.Context, b *testing.B, job worker.Func) {
	rep, err := job(ctx, worker.Run{ID: "bench", Now: runNow, Scope: events.ScopeAll()})
	if err != nil {
		b.Fatal(err)
	}
	if got := rep.Results["tenants_processed"]; got != int64(benchTenants) {
		b.Fatalf("tenants_processed = %v, want %d", got, benchTenants)
	}
}

// report adds scan_ms and x_scan, measuring the scan right after the timed runs, on
// the same data and as warm a cache.
func report(b *testing.B, pool *pgxpool.Pool) {
	perOp := b.Elapsed() / time.Duration(b.N)
	scan := bareScan(b.Context(), b, pool)
	if perOp > 5*time.Second {
		b.Errorf("a snapshot of %d firms took %v, over the 5 s target", benchTenants, perOp)
	}
	b.ReportMetric(float64(scan)/float64(time.Millisecond), "scan_ms")
	b.ReportMetric(float64(perOp)/float64(scan), "x_scan")
	// The rows the last run wrote (the day's snapshots), COPYed again into a bare copy.
	copyMs := pgtest.CopyMillis(b, pool, pgtest.Copied{Table: "analytics_snapshots", Select: "SELECT * FROM analytics_snapshots"})
	b.ReportMetric(copyMs, "copy_ms")
	b.ReportMetric(float64(perOp)/float64(time.Millisecond)/copyMs, "x_copy")
}

func short(n int) string {
	if n >= 1_000_000 {
		return fmt.Sprintf("%dM", n/1_000_000)
	}
	return fmt.Sprintf("%dk", n/1_000)
}

// generate writes 1,000 firms and, around runNow, n tasks (75% completed over two
// years, 20% open or in progress, 5% cancelled), n/10 cases, n/5 hearings spread over
// a year either side, and n/10 notifications each with an e-mail delivery (3% failed).
// It then vacuums, as autovacuum would have, so the visibility map is current.
func generate(ctx context.Context, b *testing.B, pool *pgxpool.Pool, n int) {
	b.Helper()
	steps := []string{
		`INSERT INTO tenants (id, name)
		 SELECT format('10000000-0000-0000-0000-%s', lpad(i::text, 12, '0'))::uuid, 'Firm ' || i
		 FROM generate_series(0::bigint, @tenants::bigint - 1) i`,
		`INSERT INTO profiles (id, tenant_id, full_name, email, role)
		 SELECT format('00000000-0000-0000-0002-%s', lpad(i::text, 12, '0'))::uuid,
		        format('10000000-0000-0000-0000-%s', lpad(i::text, 12, '0'))::uuid,
		        'Advocate ' || i, 'adv' || i || '@firm.example', 'advocate'
		 FROM generate_series(0::bigint, @tenants::bigint - 1) i`,
		// A few firms with their own SLA for critical work.
		`INSERT INTO sla_policies (tenant_id, priority, resolution_hours)
		 SELECT format('10000000-0000-0000-0000-%s', lpad(i::text, 12, '0'))::uuid, 'critical', 12
		 FROM generate_series(0::bigint, @tenants::bigint - 1, 10) i`,
		`INSERT INTO cases (id, tenant_id, case_number, title, status)
		 SELECT format('00000000-0000-0000-0001-%s', lpad(i::text, 12, '0'))::uuid,
		        format('10000000-0000-0000-0000-%s', lpad((i % @tenants)::text, 12, '0'))::uuid,
		        'GST/SCN/' || i, 'Case ' || i,
		        (ARRAY['active','active','active','on_hold','closed'])[(i + i / @tenants) % 5 + 1]
		 FROM generate_series(0::bigint, @cases::bigint - 1) i`,
		`INSERT INTO hearings (id, tenant_id, case_id, hearing_date, status)
		 SELECT format('00000000-0000-0000-0005-%s', lpad(i::text, 12, '0'))::uuid,
		        format('10000000-0000-0000-0000-%s', lpad((i % @cases % @tenants)::text, 12, '0'))::uuid,
		        format('00000000-0000-0000-0001-%s', lpad((i % @cases)::text, 12, '0'))::uuid,
		        @now::timestamptz + ((i * 7919) % (730 * 24) - 365 * 24) * interval '1 hour',
		        (ARRAY['scheduled','scheduled','scheduled','adjourned','completed','cancelled'])[i % 6 + 1]
		 FROM generate_series(0::bigint, @hearings::bigint - 1) i`,
		`INSERT INTO tasks (id, tenant_id, title, priority, status, due_date, created_at, completed_at)
		 SELECT format('00000000-0000-0000-0004-%s', lpad(i::text, 12, '0'))::uuid,
		        format('10000000-0000-0000-0000-%s', lpad((i % @tenants)::text, 12, '0'))::uuid,
		        'Task ' || i,
		        (ARRAY['critical','high','medium','low'])[(i + i / @tenants) % 4 + 1],
		        s.status, s.created + ((i % 30) + 1) * interval '1 day', s.created,
		        CASE WHEN s.status = 'completed' THEN s.created + ((i * 31) % 400) * interval '1 hour' END
		 FROM generate_series(0::bigint, @tasks::bigint - 1) i
		 CROSS JOIN LATERAL (SELECT
		        CASE (i + i / @tenants) % 20 WHEN 0 THEN 'open' WHEN 1 THEN 'open' WHEN 2 THEN 'open'
		             WHEN 3 THEN 'in_progress' WHEN 4 THEN 'cancelled' ELSE 'completed' END AS status,
		        @now::timestamptz - ((i * 7919) % (730 * 24 * 60)) * interval '1 minute' AS created) s`,
		`INSERT INTO notifications (id, tenant_id, user_id, kind, title, dedupe_key, created_at)
		 SELECT format('00000000-0000-0000-0003-%s', lpad(i::text, 12, '0'))::uuid,
		        format('10000000-0000-0000-0000-%s', lpad((i % @tenants)::text, 12, '0'))::uuid,
		        format('00000000-0000-0000-0002-%s', lpad((i % @tenants)::text, 12, '0'))::uuid,
		        'hearing_reminder', 'Reminder ' || i, 'bench:' || i,
		        @now::timestamptz - ((i * 7919) % (60 * 24 * 60)) * interval '1 minute'
		 FROM generate_series(0::bigint, @notifications::bigint - 1) i`,
		`INSERT INTO notification_deliveries (tenant_id, notification_id, channel, source, status, attempts, created_at, updated_at)
		 SELECT tenant_id, id, 'email', 'send-hearing-reminders',
		        CASE WHEN (hashtext(id::text) & 1023) < 31 THEN 'failed' ELSE 'sent' END, 1,
		        created_at, created_at + interval '1 minute'
		 FROM notifications`,
		`VACUUM ANALYZE`,
	}
	args := pgx.NamedArgs{
		"tenants": benchTenants, "tasks": n, "cases": n / 10, "hearings": n / 5,
		"notifications": n / 10, "now": runNow,
	}
	start := time.Now()
	for _, sql := range steps {
		var params []any
		if strings.Contains(sql, "@") {
			params = []any{args}
		}
		if _, err := pool.Exec(ctx, sql, params...); err != nil {
			b.Fatalf("generate: %v\n%s", err, sql)
		}
	}
	b.Logf("generated %d firms, %d tasks, %d cases, %d hearings, %d notifications in %v",
		benchTenants, n, n/10, n/5, n/10, time.Since(start).Round(time.Millisecond))
}

// bareScan is the fastest of three runs of counting every row the snapshot's tables
// hold, whatever plan PostgreSQL picks for it.
func bareScan(ctx context.Context, b *testing.B, pool *pgxpool.Pool) time.Duration {
	b.Helper()
	const q = `SELECT (SELECT count(*) FROM tasks) + (SELECT count(*) FROM cases)
	     + (SELECT count(*) FROM hearings) + (SELECT count(*) FROM notification_deliveries)
	     + (SELECT count(*) FROM tenants)`
	best := time.Duration(1<<63 - 1)
	for range 3 {
		start := time.Now()
		var rows int64
		if err := pool.QueryRow(ctx, q).Scan(&rows); err != nil {
			b.Fatalf("bare scan: %v", err)
		}
		best = min(best, time.Since(start))
	}
	return best
}
