package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/pgtest"
)

// What is tried: 100 firms with a history of 1,000 runs' worth of rule fires and
// notification audit rows (100,000 each), 100,000 tasks, 50,000 hearings and
// notifications with their e-mail deliveries, 70,000 metric values; the planner's
// view of each items statement for one firm, and of the run-keyed ones for the
// platform operator.
// What must hold: no statement reads a big table from end to end: each reaches the
// run's or the firm's rows through an index (00041 for automation_logs and audit_log).
func TestItemsReadThroughIndexes(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	const firm = "00000000-0000-4000-8000-000000000007"
	const run = "10000000-0000-4000-8000-000000000007"
	id := func(prefix, expr string) string {
		return "('" + prefix + "-0000-4000-8000-' || lpad(to_hex(" + expr + "), 12, '0'))::uuid"
	}
	for _, q := range []string{
		`INSERT INTO tenants (id, name) SELECT ` + id("00000000", "f") + `, 'Firm ' || f FROM generate_series(1, 100) f`,
		`INSERT INTO profiles (id, tenant_id, full_name, role) SELECT ` + id("a0000000", "f") + `, ` + id("00000000", "f") + `, 'Admin ' || f, 'admin' FROM generate_series(1, 100) f`,
		`INSERT INTO cases (id, tenant_id, case_number, title, owner_id) SELECT ` + id("c0000000", "f") + `, ` + id("00000000", "f") + `, 'GST/' || f, 'Case ' || f, ` + id("a0000000", "f") + ` FROM generate_series(1, 100) f`,
		`INSERT INTO automation_rules (id, tenant_id, name, trigger_event, action) SELECT ` + id("e0000000", "f") + `, ` + id("00000000", "f") + `, 'Rule ' || f, 'task_overdue', 'notify_assignee' FROM generate_series(1, 100) f`,
		`INSERT INTO automation_logs (tenant_id, rule_id, entity_id, occurrence, run_id, job_name, status, executed_at)
		 SELECT ` + id("00000000", "f") + `, ` + id("e0000000", "f") + `, gen_random_uuid(), 'overdue:' || n, ` + id("10000000", "n") + `, 'check-sla-and-overdue', 'success', now() - n * interval '15 minutes'
		 FROM generate_series(1, 100) f, generate_series(1, 1000) n`,
		`INSERT INTO audit_log (tenant_id, user_id, action_type, entity_type, entity_id, details, dedupe_key, "timestamp")
		 SELECT ` + id("00000000", "f") + `, ` + id("a0000000", "f") + `, 'notification_sent', 'hearing', f::text,
		        jsonb_build_object('channel', 'in_app', 'job_name', 'send-hearing-reminders', 'run_id', ` + id("10000000", "n") + `::text, 'hearing_id', gen_random_uuid()),
		        'n:' || f || ':' || n, now() - n * interval '1 day'
		 FROM generate_series(1, 100) f, generate_series(1, 1000) n`,
		`INSERT INTO tasks (id, tenant_id, case_id, title, priority, status, due_date, completed_at, created_at)
		 SELECT gen_random_uuid(), ` + id("00000000", "f") + `, ` + id("c0000000", "f") + `, 'Task ' || n, 'medium',
		        CASE WHEN n % 10 = 0 THEN 'open' ELSE 'completed' END, now() - n * interval '1 hour',
		        CASE WHEN n % 10 = 0 THEN NULL ELSE now() - n * interval '1 hour' END, now() - n * interval '2 hours'
		 FROM generate_series(1, 100) f, generate_series(1, 1000) n`,
		`INSERT INTO hearings (id, tenant_id, case_id, hearing_date, status)
		 SELECT gen_random_uuid(), ` + id("00000000", "f") + `, ` + id("c0000000", "f") + `, now() + (n - 250) * interval '1 day', 'scheduled'
		 FROM generate_series(1, 100) f, generate_series(1, 500) n`,
		`INSERT INTO notifications (id, tenant_id, user_id, kind, title, dedupe_key)
		 SELECT ` + id("d0000000", "(f * 1000 + n)") + `, ` + id("00000000", "f") + `, ` + id("a0000000", "f") + `, 'hearing_reminder', 'Hearing', 'k:' || f || ':' || n
		 FROM generate_series(1, 100) f, generate_series(1, 500) n`,
		`INSERT INTO notification_deliveries (tenant_id, notification_id, channel, source, status, wanted_by)
		 SELECT ` + id("00000000", "f") + `, ` + id("d0000000", "(f * 1000 + n)") + `, 'email', 'send-hearing-reminders',
		        CASE WHEN n % 5 = 0 THEN 'failed' ELSE 'sent' END, ` + id("10000000", "n") + `::text
		 FROM generate_series(1, 100) f, generate_series(1, 500) n`,
		`INSERT INTO analytics_snapshots (tenant_id, snapshot_date, metric_type, metric_value)
		 SELECT ` + id("00000000", "f") + `, current_date - d, m, d
		 FROM generate_series(1, 100) f, generate_series(0, 99) d, unnest(ARRAY['a','b','c','d','e','f','g']) m`,
		`INSERT INTO job_run_tenants (tenant_id, run_id, job_name, status, results, finished_at)
		 SELECT ` + id("00000000", "f") + `, '` + run + `', 'check-sla-and-overdue', 'success', '{}', now() FROM generate_series(1, 100) f`,
		`ANALYZE`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}
	firmView := itemRun{runID: run, viewer: Viewer{TenantID: firm}, started: time.Now(), finished: time.Now()}
	opView := itemRun{runID: run, viewer: Viewer{Operator: true}, started: time.Now(), finished: time.Now()}
	big := []string{"audit_log", "automation_logs", "tasks", "hearings", "notification_deliveries", "analytics_snapshots", "notifications"}
	for _, c := range []struct {
		what, job, sql string
		q              itemRun
		extra          pgx.NamedArgs
	}{
		{"a firm's overdue tasks", catalog.CheckSLAAndOverdue, tasksSQL(firmView, overdueDeadline), firmView, pgx.NamedArgs{"as_of": time.Now().Add(-500 * time.Hour)}},
		{"a firm's SLA breaches", catalog.CheckSLAAndOverdue, tasksSQL(firmView, slaDeadline), firmView, pgx.NamedArgs{"as_of": time.Now().Add(-500 * time.Hour)}},
		{"a firm's rule fires", catalog.CheckSLAAndOverdue, ruleFiresSQL(firmView, ""), firmView, nil},
		{"the operator's rule fires", catalog.CheckSLAAndOverdue, ruleFiresSQL(opView, ""), opView, nil},
		{"a firm's notifications", catalog.SendHearingReminders, notificationsSQL(firmView, ""), firmView, nil},
		{"the operator's notifications", catalog.SendHearingReminders, notificationsSQL(opView, ""), opView, nil},
		{"a firm's undelivered e-mails and problems", catalog.SendHearingReminders, undeliveredSQL(firmView, "", true), firmView, nil},
		{"the operator's undelivered e-mails", catalog.SendHearingReminders, undeliveredSQL(opView, "failed", false), opView, nil},
		{"a firm's hearings", catalog.SendHearingReminders, hearingsSQL(firmView), firmView, pgx.NamedArgs{"from": time.Now(), "until": time.Now().Add(24 * time.Hour)}},
		{"a firm's metrics", catalog.CaptureAnalyticsSnapshot, snapshotsSQL(firmView), firmView, pgx.NamedArgs{"day": time.Now().Format(time.DateOnly)}},
	} {
		job, _ := catalog.Lookup(c.job)
		c.q.job = job
		rows, err := pool.Query(ctx, "EXPLAIN (COSTS OFF) "+c.sql, c.q.args(c.extra))
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		text := strings.Join(plan, "\n")
		for _, table := range big {
			if strings.Contains(text, "Seq Scan on "+table) {
				t.Errorf("%s reads all of %s:\n%s", c.what, table, text)
			}
		}
		if testing.Verbose() {
			t.Logf("%s:\n%s", c.what, text)
		}
	}
}
