package reminders_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/pgtest"
	"github.com/lexhq/gstjobs/internal/tenancy"
	"github.com/lexhq/gstjobs/services/reminders"
)

// Run with:
//
//	GOWORK=off go test -run '^$' -bench . -benchtime 3x ./
//
// Each benchmark builds its data with INSERT ... SELECT generate_series outside the
// timed region, then times whole job runs. The jobs are idempotent, so between
// iterations (timer stopped) the notifications and audit rows of the previous run
// are deleted and the tables vacuumed, and every iteration does the full work.
// Besides time per run, each reports scan_ms, the time of a bare read of the same
// rows (same filters, same indexes, a count instead of the work), and x_scan, the
// run's time as a multiple of it: the price of the work beyond finding the rows; and
// copy_ms, the time COPY takes to write the rows a run wrote (its notifications and
// their audit rows) into bare unlogged copies of their tables, and x_copy, the run's
// time as a multiple of that: the price of the work beyond storing the rows.

const benchFirms = 1000

// seedFirms makes benchFirms firms of five people each and `cases` cases spread
// across them; ids are derived from numbers so later inserts can refer to them.
func seedFirms(w *world, cases int) {
	w.exec(`INSERT INTO tenants (id, name) SELECT md5('t'||t)::uuid, 'Firm '||t FROM generate_series(1, $1) t`, benchFirms)
	w.exec(`INSERT INTO profiles (id, tenant_id, full_name, email, role)
		SELECT md5('p'||t||':'||k)::uuid, md5('t'||t)::uuid, 'Person '||t||'-'||k, 'p'||t||'-'||k||'@firm.example', 'advocate'
		FROM generate_series(1, $1) t, generate_series(1, 5) k`, benchFirms)
	w.exec(`INSERT INTO cases (id, tenant_id, case_number, title, owner_id)
		SELECT md5('c'||i)::uuid, md5('t'||(i % $2 + 1))::uuid, 'GST/SCN/2026/'||i, 'Case '||i,
		       md5('p'||(i % $2 + 1)||':'||(i % 5 + 1))::uuid
		FROM generate_series(1, $1) i`, cases, benchFirms)
}

func (w *world) vacuum() {
	w.t.Helper()
	w.exec(`VACUUM ANALYZE`)
}

// forgetDeliveries removes what a run delivered, so the next run does it all again.
func (w *world) forgetDeliveries() {
	w.t.Helper()
	w.exec(`DELETE FROM audit_log WHERE action_type = 'notification_sent'`)
	w.exec(`DELETE FROM notifications`)
	w.vacuum()
}

// scanMillis is the best of three timings of a read-only query.
func (w *world) scanMillis(sql string, args ...any) float64 {
	w.t.Helper()
	best := time.Duration(1 << 62)
	for range 3 {
		start := time.Now()
		var n int64
		if err := w.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
			w.t.Fatalf("scan: %v", err)
		}
		best = min(best, time.Since(start))
	}
	return float64(best.Microseconds()) / 1000
}

// reportCounts times a job's counts statement as it is (one line per covered firm)
// and as it was before firms' slices (totals only), best of five each, on the same
// data, and reports both and their ratio: what the per-firm counts cost.
func reportCounts(b *testing.B, w *world, job string, args pgx.NamedArgs) {
	b.Helper()
	perFirm, totalsOnly := reminders.CountsSQL(job)
	args = tenancy.With(args, events.ScopeAll())
	best := func(sql string) float64 {
		d := time.Duration(1 << 62)
		for range 5 {
			start := time.Now()
			rows, err := w.pool.Query(context.Background(), sql, args)
			if err != nil {
				b.Fatalf("counts: %v", err)
			}
			for rows.Next() {
			}
			if err := rows.Err(); err != nil {
				b.Fatalf("counts: %v", err)
			}
			rows.Close()
			d = min(d, time.Since(start))
		}
		return float64(d.Microseconds()) / 1000
	}
	withMs, withoutMs := best(perFirm), best(totalsOnly)
	b.ReportMetric(withMs, "counts_ms")
	b.ReportMetric(withoutMs, "counts_totals_only_ms")
	b.ReportMetric(withMs/withoutMs, "x_counts_totals_only")
}

// timeRuns runs job b.N times with the timer on only for the run itself, and
// reports ms per run, scan_ms and x_scan.
func timeRuns(b *testing.B, w *world, job string, now time.Time, scanMs float64, check func(int, map[string]any)) {
	jobs := w.jobs(reminders.Config{})
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		if i > 0 {
			b.StopTimer()
			w.forgetDeliveries()
			b.StartTimer()
		}
		start := time.Now()
		rep := mustRun(b, jobs, job, now)
		total += time.Since(start)
		b.StopTimer()
		check(i, rep.Results)
		b.StartTimer()
	}
	b.StopTimer()
	perRun := float64(total.Microseconds()) / 1000 / float64(b.N)
	b.ReportMetric(scanMs, "scan_ms")
	b.ReportMetric(perRun/scanMs, "x_scan")
	// What the last run wrote, COPYed again into bare copies of its tables.
	copyMs := pgtest.CopyMillis(b, w.pool,
		pgtest.Copied{Table: "notifications", Select: "SELECT * FROM notifications"},
		pgtest.Copied{Table: "audit_log", Select: "SELECT * FROM audit_log WHERE action_type = 'notification_sent'"})
	b.ReportMetric(copyMs, "copy_ms")
	b.ReportMetric(perRun/copyMs, "x_copy")
}

// BenchmarkHearingReminders: 100,000 hearings in the next 24 hours across 1,000 firms
// (assignee and owner are one person in one hearing in five), e-mail off. Target: a
// run within 10 s.
func BenchmarkHearingReminders(b *testing.B) {
	w := newWorld(b)
	now := ist(2026, 3, 10, 8, 0, 0)
	const hearings = 100_000
	seedFirms(w, hearings)
	w.exec(`INSERT INTO hearings (id, tenant_id, case_id, hearing_date, forum, assigned_to, status)
		SELECT gen_random_uuid(), md5('t'||(i % $3 + 1))::uuid, md5('c'||i)::uuid,
		       $2::timestamptz + (i % 86400) * interval '1 second', 'Forum '||(i % 20),
		       md5('p'||(i % $3 + 1)||':'||((i / 7) % 5 + 1))::uuid,
		       CASE WHEN i % 10 = 0 THEN 'adjourned' ELSE 'scheduled' END
		FROM generate_series(1, $1) i`, hearings, now, benchFirms)
	w.vacuum()

	var want int
	if err := w.pool.QueryRow(b.Context(), `
		SELECT count(DISTINCT (h.id, p)) FROM hearings h JOIN cases c ON c.id = h.case_id,
		LATERAL unnest(ARRAY[h.assigned_to, c.owner_id]) p`).Scan(&want); err != nil {
		b.Fatal(err)
	}
	scanMs := w.scanMillis(`
		SELECT count(*) FROM hearings h JOIN cases c ON c.id = h.case_id AND c.tenant_id = h.tenant_id
		WHERE h.status IN ('scheduled', 'adjourned') AND h.hearing_date >= $1 AND h.hearing_date <= $2`,
		now, now.Add(reminders.ReminderWindow))
	timeRuns(b, w, catalog.SendHearingReminders, now, scanMs, func(i int, r map[string]any) {
		if r["hearings_processed"] != hearings || r["notifications_sent"] != want {
			b.Fatalf("run %d: %v, want %d hearings and %d notifications", i, r, hearings, want)
		}
	})
	b.ReportMetric(float64(want), "notifications/op")
	reportCounts(b, w, "hearings", pgx.NamedArgs{"now": now, "until": now.Add(reminders.ReminderWindow), "max_listed": 100, "parts": 1, "part": 0})
}

// BenchmarkDeadlineAlerts: open tasks (80%; the rest completed) due over the next 70
// days and cases whose reply or appeal date falls in the same span, across 1,000
// firms; about a tenth of them are within the widest threshold (7 days) and alerted.
func BenchmarkDeadlineAlerts(b *testing.B) {
	for _, tasks := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("tasks=%d", tasks), func(b *testing.B) {
			w := newWorld(b)
			now := ist(2026, 3, 10, 7, 0, 0)
			cases := max(tasks/10, benchFirms)
			seedFirms(w, cases)
			w.exec(`UPDATE cases SET reply_due_date = $1::date + (hashtext(id::text) & 1023) % 70,
				appeal_deadline = CASE WHEN hashtext(id::text) & 1 = 0 THEN $1::date + (hashtext(id::text) >> 12 & 1023) % 70 END`,
				now.Format(time.DateOnly))
			w.exec(`INSERT INTO tasks (id, tenant_id, case_id, title, assigned_to, status, due_date)
				SELECT gen_random_uuid(), md5('t'||(k % $4 + 1))::uuid, md5('c'||k)::uuid, 'Task '||i,
				       md5('p'||(k % $4 + 1)||':'||((i / 3) % 5 + 1))::uuid,
				       CASE WHEN i % 5 = 0 THEN 'completed' WHEN i % 2 = 0 THEN 'in_progress' ELSE 'open' END,
				       $3::timestamptz + (i::bigint * 7919 % (70 * 86400)) * interval '1 second'
				FROM generate_series(1, $1) i, LATERAL (SELECT i % $2 + 1 AS k) AS c
				`, tasks, cases, now, benchFirms)
			w.vacuum()

			today := now.Format(time.DateOnly)
			horizon := time.Date(now.Year(), now.Month(), now.Day()+8, 0, 0, 0, 0, kolkata)
			var want int
			if err := w.pool.QueryRow(b.Context(), `
				SELECT (SELECT count(*) FROM tasks WHERE status IN ('open','in_progress') AND due_date >= $1 AND due_date < $2)
				     + (SELECT count(*) FROM cases WHERE status = 'active' AND reply_due_date BETWEEN $3::date AND $3::date + 7)
				     + (SELECT count(*) FROM cases WHERE status = 'active' AND appeal_deadline BETWEEN $3::date AND $3::date + 7)`,
				now, horizon, today).Scan(&want); err != nil {
				b.Fatal(err)
			}
			scanMs := w.scanMillis(`
				SELECT count(*) FROM (
				    SELECT t.id FROM tasks t LEFT JOIN cases c ON c.id = t.case_id AND c.tenant_id = t.tenant_id
				    WHERE t.status IN ('open','in_progress') AND t.due_date >= $1 AND t.due_date < $2
				  UNION ALL
				    SELECT id FROM cases WHERE status = 'active' AND reply_due_date IS NOT NULL AND reply_due_date BETWEEN $3::date AND $3::date + 7
				  UNION ALL
				    SELECT id FROM cases WHERE status = 'active' AND appeal_deadline IS NOT NULL AND appeal_deadline BETWEEN $3::date AND $3::date + 7
				) s`, now, horizon, today)
			timeRuns(b, w, catalog.CheckUpcomingDeadlines, now, scanMs, func(i int, r map[string]any) {
				if r["deadlines_found"] != want || r["alerts_sent"] != want || r["failed_alerts"] != 0 {
					b.Fatalf("run %d: %v, want %d deadlines found and alerted", i, r, want)
				}
			})
			b.ReportMetric(float64(want), "alerts/op")
			reportCounts(b, w, "deadlines", pgx.NamedArgs{"now": now, "thresholds": []int{1, 3, 7}, "max_days": 7, "max_listed": 100, "parts": 1, "part": 0})
		})
	}
}
