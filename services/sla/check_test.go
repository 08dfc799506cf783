package sla

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/internal/worker"
)

// A task is overdue when it is open or in progress and its due date is strictly
// before now: due exactly now is not overdue yet, and a completed or cancelled task
// never is, however late it was finished.
func TestOverdueEdgeInstants(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	firm := f.tenant("Mehta & Associates")
	ca := f.profile(firm, "ca")
	f.rule(firm, "task_overdue", "notify_assignee")

	tasks := []struct {
		name    string
		status  string
		due     time.Time
		overdue bool
	}{
		{"due exactly now", "open", t0, false},
		{"due one second before now", "open", t0.Add(-time.Second), true},
		{"due one second after now", "open", t0.Add(time.Second), false},
		{"in progress, due a week ago", "in_progress", t0.Add(-7 * 24 * time.Hour), true},
		{"completed late", "completed", t0.Add(-48 * time.Hour), false},
		{"cancelled, past due", "cancelled", t0.Add(-time.Hour), false},
		{"no due date", "open", time.Time{}, false},
	}
	ids := make([]uuid.UUID, len(tasks))
	for i, tc := range tasks {
		ids[i] = f.task(task{tenant: firm, assignee: ca, status: tc.status, due: tc.due})
	}

	rep := f.check(t0)
	wantCounts(t, rep, map[string]int64{
		"overdue_tasks": 2, "sla_violations": 0, "automation_rules_triggered": 2, "notifications_sent": 2,
	})
	for i, tc := range tasks {
		fired := f.count(`SELECT count(*) FROM automation_logs WHERE task_id = $1`, ids[i]) == 1
		if fired != tc.overdue {
			t.Errorf("%s: rule fired = %v, want %v", tc.name, fired, tc.overdue)
		}
	}
	if len(rep.Errors) != 0 {
		t.Errorf("errors = %q, want none", rep.Errors)
	}
}

// The SLA deadline is created_at plus the resolution hours of the firm's own policy
// for the task's priority, or else of the default (tenant NULL) policy. Exactly at the
// deadline is not a violation; one second past it is.
func TestSLAPolicyTenantAndDefault(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	mehta := f.tenant("Mehta & Associates") // critical: 12 h of its own; the rest default
	iyer := f.tenant("Iyer Tax Chambers")   // all default: critical 24 h, high 72 h, low 336 h
	f.exec(`INSERT INTO sla_policies (tenant_id, priority, resolution_hours) VALUES ($1, 'critical', 12)`, mehta)
	for _, firm := range []uuid.UUID{mehta, iyer} {
		f.rule(firm, "sla_violation", "notify_assignee")
	}
	mehtaCA, iyerCA := f.profile(mehta, "ca"), f.profile(iyer, "ca")

	h := time.Hour
	tasks := []struct {
		name     string
		firm     uuid.UUID
		priority string
		status   string
		age      time.Duration
		violates bool
	}{
		{"firm policy: critical open exactly 12 h", mehta, "critical", "open", 12 * h, false},
		{"firm policy: critical open 12 h 1 s", mehta, "critical", "open", 12*h + time.Second, true},
		{"default for a priority the firm has no row for: high 72 h 1 s", mehta, "high", "in_progress", 72*h + time.Second, true},
		{"default: high 71 h", mehta, "high", "open", 71 * h, false},
		{"other firm keeps the default: critical 13 h", iyer, "critical", "open", 13 * h, false},
		{"default: critical 24 h 1 s", iyer, "critical", "in_progress", 24*h + time.Second, true},
		{"default: low exactly 336 h", iyer, "low", "open", 336 * h, false},
		{"completed long ago", iyer, "low", "completed", 400 * h, false},
		{"cancelled long ago", iyer, "medium", "cancelled", 400 * h, false},
	}
	ids := make([]uuid.UUID, len(tasks))
	for i, tc := range tasks {
		assignee := mehtaCA
		if tc.firm == iyer {
			assignee = iyerCA
		}
		ids[i] = f.task(task{tenant: tc.firm, assignee: assignee, priority: tc.priority, status: tc.status, created: t0.Add(-tc.age)})
	}

	rep := f.check(t0)
	wantCounts(t, rep, map[string]int64{"overdue_tasks": 0, "sla_violations": 3, "automation_rules_triggered": 3})
	for i, tc := range tasks {
		fired := f.count(`SELECT count(*) FROM automation_logs WHERE task_id = $1 AND occurrence LIKE 'sla:%'`, ids[i]) == 1
		if fired != tc.violates {
			t.Errorf("%s: SLA rule fired = %v, want %v", tc.name, fired, tc.violates)
		}
	}
}

// firm is a tenant with one user of each role the actions address.
type firm struct {
	id, admin, manager1, manager2, ca, owner uuid.UUID
	kase                                     uuid.UUID
}

func (f *fixture) firm(name string) firm {
	f.t.Helper()
	fm := firm{id: f.tenant(name)}
	fm.admin = f.profile(fm.id, "admin")
	fm.manager1 = f.profile(fm.id, "manager")
	fm.manager2 = f.profile(fm.id, "manager")
	fm.ca = f.profile(fm.id, "ca")
	fm.owner = f.profile(fm.id, "partner")
	fm.kase = f.kase(fm.id, fm.owner)
	return fm
}

// A first run fires every active rule once per breach and carries out its action; a
// second run in a row fires, notifies and changes nothing, and reports the same
// counts.
func TestFiresOnceThenNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fm := f.firm("Mehta & Associates")
	f.rule(fm.id, "task_overdue", "notify_assignee")
	f.rule(fm.id, "task_overdue", "notify_owner")
	f.rule(fm.id, "sla_violation", "notify_managers")
	f.rule(fm.id, "sla_violation", "escalate_priority")
	inactive := f.rule(fm.id, "task_overdue", "notify_managers")
	f.exec(`UPDATE automation_rules SET is_active = false WHERE id = $1`, inactive)

	h := time.Hour
	// Overdue only; past its SLA only; both.
	f.task(task{tenant: fm.id, kase: fm.kase, assignee: fm.ca, priority: "high", created: t0.Add(-10 * h), due: t0.Add(-2 * h)})
	f.task(task{tenant: fm.id, kase: fm.kase, assignee: fm.ca, priority: "medium", created: t0.Add(-200 * h), due: t0.Add(24 * h)})
	f.task(task{tenant: fm.id, kase: fm.kase, assignee: fm.ca, priority: "low", created: t0.Add(-400 * h), due: t0.Add(-100 * h)})

	// Overdue rules: 2 rules × 2 tasks; SLA rules: 2 rules × 2 tasks. Notifications:
	// assignee 2 + owner 2 + both managers for 2 tasks 4. Escalations: medium → high, low → medium.
	first := f.check(t0)
	wantCounts(t, first, map[string]int64{
		"overdue_tasks": 2, "sla_violations": 2, "automation_rules_triggered": 8,
		"automation_failures": 0, "notifications_sent": 8, "priorities_escalated": 2,
	})
	state := func() string {
		var s string
		err := f.pool.QueryRow(t.Context(), `SELECT
			(SELECT count(*) FROM automation_logs) || '/' || (SELECT count(*) FROM notifications) || '/' ||
			(SELECT count(*) FROM audit_log WHERE action_type = 'notification_sent') || '/' ||
			(SELECT string_agg(priority, ',' ORDER BY created_at) FROM tasks)`).Scan(&s)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if got, want := state(), "8/8/8/medium,high,high"; got != want {
		t.Errorf("after the first run logs/notifications/audit/priorities = %s, want %s", got, want)
	}

	second := f.check(t0.Add(15 * time.Minute))
	wantCounts(t, second, map[string]int64{
		"overdue_tasks": 2, "sla_violations": 2, "automation_rules_triggered": 0,
		"notifications_sent": 0, "priorities_escalated": 0,
	})
	if got, want := state(), "8/8/8/medium,high,high"; got != want {
		t.Errorf("the second run changed something: logs/notifications/audit/priorities = %s, want %s", got, want)
	}
}

// Each action's effect on one overdue task, and the failures recorded instead of
// aborting when an action cannot be carried out.
func TestActions(t *testing.T) {
	t.Parallel()
	type setup struct {
		task       uuid.UUID
		recipients []uuid.UUID
	}
	cases := []struct {
		name         string
		action       string
		arrange      func(f *fixture, fm firm, other firm) setup
		wantStatus   string
		wantError    string
		wantPriority string
	}{
		{
			name: "notify_assignee tells the assignee", action: "notify_assignee", wantStatus: "success", wantPriority: "high",
			arrange: func(f *fixture, fm, _ firm) setup {
				return setup{f.task(task{tenant: fm.id, kase: fm.kase, assignee: fm.ca, priority: "high", due: t0.Add(-time.Hour)}), []uuid.UUID{fm.ca}}
			},
		},
		{
			name: "notify_assignee fails on a task with no assignee", action: "notify_assignee",
			wantStatus: "failed", wantError: "task has no assignee", wantPriority: "high",
			arrange: func(f *fixture, fm, _ firm) setup {
				return setup{f.task(task{tenant: fm.id, kase: fm.kase, priority: "high", due: t0.Add(-time.Hour)}), nil}
			},
		},
		{
			name: "notify_assignee refuses an assignee of another firm", action: "notify_assignee",
			wantStatus: "failed", wantError: "task assignee belongs to another firm", wantPriority: "high",
			arrange: func(f *fixture, fm, other firm) setup {
				return setup{f.task(task{tenant: fm.id, assignee: other.ca, priority: "high", due: t0.Add(-time.Hour)}), nil}
			},
		},
		{
			name: "notify_owner tells the case owner", action: "notify_owner", wantStatus: "success", wantPriority: "high",
			arrange: func(f *fixture, fm, _ firm) setup {
				return setup{f.task(task{tenant: fm.id, kase: fm.kase, assignee: fm.ca, priority: "high", due: t0.Add(-time.Hour)}), []uuid.UUID{fm.owner}}
			},
		},
		{
			name: "notify_owner fails on a task with no case", action: "notify_owner",
			wantStatus: "failed", wantError: "task has no case", wantPriority: "high",
			arrange: func(f *fixture, fm, _ firm) setup {
				return setup{f.task(task{tenant: fm.id, assignee: fm.ca, priority: "high", due: t0.Add(-time.Hour)}), nil}
			},
		},
		{
			name: "notify_owner fails on a case with no owner", action: "notify_owner",
			wantStatus: "failed", wantError: "case has no owner", wantPriority: "high",
			arrange: func(f *fixture, fm, _ firm) setup {
				return setup{f.task(task{tenant: fm.id, kase: f.kase(fm.id, uuid.Nil), priority: "high", due: t0.Add(-time.Hour)}), nil}
			},
		},
		{
			name: "notify_managers tells every manager of the firm, and only them", action: "notify_managers", wantStatus: "success", wantPriority: "high",
			arrange: func(f *fixture, fm, _ firm) setup {
				return setup{f.task(task{tenant: fm.id, assignee: fm.ca, priority: "high", due: t0.Add(-time.Hour)}), []uuid.UUID{fm.manager1, fm.manager2}}
			},
		},
		{
			name: "notify_managers fails in a firm with no managers", action: "notify_managers",
			wantStatus: "failed", wantError: "firm has no managers", wantPriority: "high",
			arrange: func(f *fixture, fm, _ firm) setup {
				f.exec(`DELETE FROM profiles WHERE id IN ($1, $2)`, fm.manager1, fm.manager2)
				return setup{f.task(task{tenant: fm.id, assignee: fm.ca, priority: "high", due: t0.Add(-time.Hour)}), nil}
			},
		},
		{
			name: "escalate_priority raises the priority one level", action: "escalate_priority", wantStatus: "success", wantPriority: "critical",
			arrange: func(f *fixture, fm, _ firm) setup {
				return setup{f.task(task{tenant: fm.id, assignee: fm.ca, priority: "high", due: t0.Add(-time.Hour)}), nil}
			},
		},
		{
			name: "escalate_priority leaves critical critical", action: "escalate_priority", wantStatus: "success", wantPriority: "critical",
			arrange: func(f *fixture, fm, _ firm) setup {
				return setup{f.task(task{tenant: fm.id, assignee: fm.ca, priority: "critical", due: t0.Add(-time.Hour)}), nil}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			fm, other := f.firm("Mehta & Associates"), f.firm("Iyer Tax Chambers")
			rule := f.rule(fm.id, "task_overdue", tc.action)
			s := tc.arrange(f, fm, other)

			rep := f.check(t0)
			wantCounts(t, rep, map[string]int64{
				"overdue_tasks": 1, "automation_rules_triggered": 1, "notifications_sent": int64(len(s.recipients)),
			})

			var status, errText, runID, jobName, occurrence string
			err := f.pool.QueryRow(t.Context(), `SELECT status, coalesce(error, ''), run_id::text, job_name, occurrence
				FROM automation_logs WHERE rule_id = $1 AND task_id = $2`, rule, s.task).Scan(&status, &errText, &runID, &jobName, &occurrence)
			if err != nil {
				t.Fatalf("automation_logs row for the rule and task: %v", err)
			}
			if status != tc.wantStatus || errText != tc.wantError {
				t.Errorf("automation_logs status, error = %q, %q; want %q, %q", status, errText, tc.wantStatus, tc.wantError)
			}
			if jobName != "check-sla-and-overdue" || runID == "" {
				t.Errorf("automation_logs job_name, run_id = %q, %q; want the job's name and the run's id", jobName, runID)
			}
			if want := "overdue:2026-03-10T09:00:00.000000Z"; occurrence != want {
				t.Errorf("occurrence = %q, want %q", occurrence, want)
			}
			if tc.wantError != "" {
				if len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0], tc.wantError) || !strings.Contains(rep.Errors[0], "Mehta & Associates") {
					t.Errorf("report errors = %q, want one naming the firm and %q", rep.Errors, tc.wantError)
				}
			}

			rows, err := f.pool.Query(t.Context(), `SELECT n.user_id, n.kind, n.entity_id, n.tenant_id, n.dedupe_key,
					a.tenant_id, a.user_id, a.details
				FROM notifications n
				LEFT JOIN audit_log a ON a.action_type = 'notification_sent' AND a.details->>'notification_id' = n.id::text
				ORDER BY n.user_id`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var got []uuid.UUID
			for rows.Next() {
				var user, entity, tenant uuid.UUID
				var auditTenant, auditUser *uuid.UUID
				var kind, key string
				var details []byte
				if err := rows.Scan(&user, &kind, &entity, &tenant, &key, &auditTenant, &auditUser, &details); err != nil {
					t.Fatal(err)
				}
				got = append(got, user)
				if kind != "task_overdue" || entity != s.task || tenant != fm.id {
					t.Errorf("notification kind, entity, tenant = %s, %s, %s; want task_overdue, the task, the firm", kind, entity, tenant)
				}
				if want := "automation:" + rule.String() + ":" + s.task.String() + ":" + occurrence + ":" + user.String(); key != want {
					t.Errorf("notification dedupe_key = %q, want %q", key, want)
				}
				if auditTenant == nil || *auditTenant != fm.id || auditUser == nil || *auditUser != user {
					t.Errorf("notification to %s has no audit_log notification_sent row for that tenant and user", user)
					continue
				}
				var d map[string]any
				if err := json.Unmarshal(details, &d); err != nil {
					t.Fatal(err)
				}
				if d["channel"] != "in_app" || d["kind"] != "task_overdue" || d["job_name"] != "check-sla-and-overdue" || d["run_id"] != runID {
					t.Errorf("audit details = %v, want channel in_app, kind task_overdue, the job's name and run id", d)
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			want := slices.Clone(s.recipients)
			slices.SortFunc(want, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
			if !slices.Equal(got, want) {
				t.Errorf("notified %v, want %v", got, want)
			}

			var priority string
			if err := f.pool.QueryRow(t.Context(), `SELECT priority FROM tasks WHERE id = $1`, s.task).Scan(&priority); err != nil {
				t.Fatal(err)
			}
			if priority != tc.wantPriority {
				t.Errorf("priority = %s, want %s", priority, tc.wantPriority)
			}

			// A failed action is not retried on the next run: the failure is recorded once.
			again := f.check(t0.Add(15 * time.Minute))
			wantCounts(t, again, map[string]int64{"automation_rules_triggered": 0, "notifications_sent": 0})
		})
	}
}

// A rule fires once per breach. A task rescheduled into the future stops counting;
// when it misses the new due date it is a new breach and fires again. Moving a due
// date earlier while it is still missed is the same breach. Completing it ends it.
func TestRescheduledTaskFiresAgain(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fm := f.firm("Mehta & Associates")
	f.rule(fm.id, "task_overdue", "notify_assignee")
	id := f.task(task{tenant: fm.id, assignee: fm.ca, priority: "high", due: t0.Add(-time.Hour)})
	h := time.Hour

	steps := []struct {
		name    string
		at      time.Time
		change  string // applied before the run; $1 is the task, $2 a time
		arg     time.Time
		overdue int64
		fired   int64
	}{
		{"first breach fires", t0, "", time.Time{}, 1, 1},
		{"rescheduled two hours ahead: not overdue", t0.Add(h), `UPDATE tasks SET due_date = $2 WHERE id = $1`, t0.Add(2 * h), 0, 0},
		{"misses the new due date: fires again", t0.Add(3 * h), "", time.Time{}, 1, 1},
		{"next run: nothing new", t0.Add(3*h + 15*time.Minute), "", time.Time{}, 1, 0},
		{"due date corrected backwards, still missed: same breach", t0.Add(3*h + 30*time.Minute), `UPDATE tasks SET due_date = $2 WHERE id = $1`, t0.Add(90 * time.Minute), 1, 0},
		{"completed: stops counting", t0.Add(4 * h), `UPDATE tasks SET status = 'completed', completed_at = $2 WHERE id = $1`, t0.Add(4 * h), 0, 0},
	}
	for _, s := range steps {
		if s.change != "" {
			f.exec(s.change, id, s.arg)
		}
		rep := f.check(s.at)
		if got, gotFired := num(t, rep, "overdue_tasks"), num(t, rep, "automation_rules_triggered"); got != s.overdue || gotFired != s.fired {
			t.Errorf("%s: overdue_tasks, automation_rules_triggered = %d, %d; want %d, %d", s.name, got, gotFired, s.overdue, s.fired)
		}
	}
	if n := f.count(`SELECT count(*) FROM notifications WHERE user_id = $1`, fm.ca); n != 2 {
		t.Errorf("assignee got %d notifications, want 2 (one per breach)", n)
	}
	if n := f.count(`SELECT count(DISTINCT occurrence) FROM automation_logs WHERE task_id = $1`, id); n != 2 {
		t.Errorf("automation_logs has %d occurrences for the task, want 2", n)
	}
}

// Escalating a priority shortens the task's SLA, which moves its deadline earlier.
// That is the same breach, not a new one: an SLA breach escalates the task one level,
// once, not one level per run until it is critical. And when an overdue escalation
// creates a new SLA breach, the same run acts on it, so the next run has nothing to do.
func TestEscalationDoesNotChurn(t *testing.T) {
	t.Parallel()
	h := time.Hour
	t.Run("SLA breach escalates once", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		fm := f.firm("Mehta & Associates")
		f.rule(fm.id, "sla_violation", "escalate_priority")
		f.rule(fm.id, "sla_violation", "notify_managers")
		id := f.task(task{tenant: fm.id, assignee: fm.ca, priority: "low", created: t0.Add(-337 * h)})

		wantCounts(t, f.check(t0), map[string]int64{"sla_violations": 1, "automation_rules_triggered": 2, "priorities_escalated": 1, "notifications_sent": 2})
		for _, at := range []time.Time{t0.Add(15 * time.Minute), t0.Add(30 * time.Minute), t0.Add(30 * 24 * h)} {
			wantCounts(t, f.check(at), map[string]int64{"sla_violations": 1, "automation_rules_triggered": 0, "priorities_escalated": 0})
		}
		if n := f.count(`SELECT count(*) FROM tasks WHERE id = $1 AND priority = 'medium'`, id); n != 1 {
			t.Error("task is not at medium, one level above low, after four runs")
		}
	})
	t.Run("escalation that creates an SLA breach is settled in the same run", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		fm := f.firm("Mehta & Associates")
		f.rule(fm.id, "task_overdue", "escalate_priority")
		f.rule(fm.id, "sla_violation", "notify_assignee")
		// 100 h old: within medium's 168 h, past high's 72 h.
		id := f.task(task{tenant: fm.id, assignee: fm.ca, priority: "medium", created: t0.Add(-100 * h), due: t0.Add(-h)})

		wantCounts(t, f.check(t0), map[string]int64{
			"overdue_tasks": 1, "sla_violations": 1, "automation_rules_triggered": 2, "priorities_escalated": 1, "notifications_sent": 1,
		})
		wantCounts(t, f.check(t0.Add(15*time.Minute)), map[string]int64{
			"overdue_tasks": 1, "sla_violations": 1, "automation_rules_triggered": 0, "priorities_escalated": 0, "notifications_sent": 0,
		})
		if n := f.count(`SELECT count(*) FROM tasks WHERE id = $1 AND priority = 'high'`, id); n != 1 {
			t.Error("task is not at high after the overdue escalation")
		}
	})
}

// One firm's bad data (an unknown time zone, a priority with no SLA policy at all, a
// task with no assignee) is reported in the run's errors, naming the firm, while
// every other firm is served; a firm with no data at all changes nothing.
func TestBadDataStaysWithItsFirm(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	good, bad := f.firm("Good Firm"), f.firm("Bad Data LLP")
	f.tenant("Empty Chambers")
	f.exec(`UPDATE tenants SET timezone = 'Mars/Olympus_Mons' WHERE id = $1`, bad.id)
	// No default for low any more; the good firm has its own.
	f.exec(`DELETE FROM sla_policies WHERE tenant_id IS NULL AND priority = 'low'`)
	f.exec(`INSERT INTO sla_policies (tenant_id, priority, resolution_hours) VALUES ($1, 'low', 100)`, good.id)
	for _, fm := range []firm{good, bad} {
		f.rule(fm.id, "task_overdue", "notify_assignee")
	}
	f.task(task{tenant: good.id, assignee: good.ca, priority: "low", due: t0.Add(-time.Hour)})
	f.task(task{tenant: bad.id, assignee: bad.ca, priority: "high", due: t0.Add(-time.Hour)})
	f.task(task{tenant: bad.id, priority: "high", due: t0.Add(-time.Hour)})
	f.task(task{tenant: bad.id, assignee: bad.ca, priority: "low", due: t0.Add(24 * time.Hour)})

	rep := f.check(t0)
	wantCounts(t, rep, map[string]int64{"overdue_tasks": 3, "automation_rules_triggered": 3, "automation_failures": 1, "notifications_sent": 2})
	want := []string{
		`Bad Data LLP: time zone "Mars/Olympus_Mons" is unknown; until it is corrected, the firm's days, the hours of its daily jobs and the times in its notifications are those of Asia/Kolkata`,
		`Bad Data LLP: no SLA policy for priority "low", and no default one: 1 open task(s) were not checked against an SLA`,
		`Bad Data LLP: automation rule "task_overdue → notify_assignee" could not act on 1 task(s): task has no assignee`,
	}
	if len(rep.Errors) != len(want) {
		t.Fatalf("errors = %q, want %d", rep.Errors, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(rep.Errors[i], w) {
			t.Errorf("errors[%d] = %q, want it to start %q", i, rep.Errors[i], w)
		}
	}
	var body string
	if err := f.pool.QueryRow(t.Context(), `SELECT body FROM notifications WHERE user_id = $1`, bad.ca).Scan(&body); err != nil {
		t.Fatalf("the bad firm's assignee got no notification: %v", err)
	}
	if want := "was due 10 Mar 2026, 14:30 (Asia/Kolkata)"; !strings.Contains(body, want) {
		t.Errorf("notification body = %q, want it to contain %q", body, want)
	}
	if err := f.pool.QueryRow(t.Context(), `SELECT body FROM notifications WHERE user_id = $1`, good.ca).Scan(&body); err != nil {
		t.Fatalf("the good firm's assignee got no notification: %v", err)
	}
}

// Tried: a firm whose time zone becomes unknown ("Mars/Olympus_Mons", then "IST", an
// abbreviation and not a zone), through several SLA checks, then is corrected.
// Must hold: the unknown zone is reported once when it starts (in the run's errors and
// the firm's slice) and once when it ends, not by every run in between; a change from
// one unknown zone to another is a new report; no other firm hears of it.
func TestAnUnknownZoneIsReportedOnceWhenItStartsAndEnds(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	bad, other := f.firm("Bad Data LLP"), f.firm("Good Firm")
	zoneWords := func(rep worker.Report, tenant string) (all, firm []string) {
		for _, e := range rep.Errors {
			if strings.Contains(e, "time zone") {
				all = append(all, e)
			}
		}
		for _, sl := range rep.Tenants {
			if sl.TenantID == tenant {
				firm = sl.Errors
			}
		}
		return all, firm
	}
	steps := []struct {
		zone, want string
	}{
		{"Mars/Olympus_Mons", `time zone "Mars/Olympus_Mons" is unknown`},
		{"Mars/Olympus_Mons", ""},
		{"Mars/Olympus_Mons", ""},
		{"IST", `time zone "IST" is unknown`},
		{"Asia/Dubai", `time zone "Asia/Dubai" is known again (it was "IST")`},
		{"Asia/Dubai", ""},
	}
	for i, st := range steps {
		f.exec(`UPDATE tenants SET timezone = $1 WHERE id = $2`, st.zone, bad.id)
		rep := f.check(t0.Add(time.Duration(i) * 15 * time.Minute))
		all, mine := zoneWords(rep, bad.id.String())
		_, others := zoneWords(rep, other.id.String())
		switch {
		case st.want == "" && (len(all) > 0 || len(mine) > 0):
			t.Errorf("run %d (zone %q, unchanged): reported %q, want nothing", i+1, st.zone, all)
		case st.want != "" && (len(all) != 1 || !strings.Contains(all[0], st.want) || len(mine) != 1 || !strings.Contains(mine[0], st.want)):
			t.Errorf("run %d (zone %q): reported %q, and to the firm %q; want one report saying %q", i+1, st.zone, all, mine, st.want)
		}
		if len(others) > 0 {
			t.Errorf("run %d: another firm was told %q", i+1, others)
		}
	}
}

// Both jobs on a database with firms but no tasks, rules or history: zeros, no errors.
func TestFirmWithNoData(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.tenant("Empty Chambers")
	rep := f.check(t0)
	wantCounts(t, rep, map[string]int64{"overdue_tasks": 0, "sla_violations": 0, "automation_rules_triggered": 0})
	if len(rep.Errors) != 0 {
		t.Errorf("check errors = %q, want none", rep.Errors)
	}
	rep = f.health(t0)
	wantCounts(t, rep, map[string]int64{"rules_checked": 0, "unhealthy_rules": 0, "stale_job_count": 0, "incidents_opened": 0})
	if rep.Results["health"] != "healthy" || len(rep.Errors) != 0 {
		t.Errorf("health = %v, errors = %q; want healthy and none", rep.Results["health"], rep.Errors)
	}
}

// A run fires at most maxFires rules, oldest deadlines first, and reports the rest as
// backlog; the next runs drain it, and then nothing is left.
func TestFireLimitDrainsBacklog(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fm := f.firm("Mehta & Associates")
	cfg := defaultConfig()
	cfg.maxFires = 2
	f.jobs = newJobs(jobservice.Deps{Pool: f.pool}, cfg)
	f.rule(fm.id, "task_overdue", "notify_assignee")
	oldest := f.task(task{tenant: fm.id, assignee: fm.ca, due: t0.Add(-3 * time.Hour)})
	middle := f.task(task{tenant: fm.id, assignee: fm.ca, due: t0.Add(-2 * time.Hour)})
	newest := f.task(task{tenant: fm.id, assignee: fm.ca, due: t0.Add(-time.Hour)})

	steps := []struct {
		at             time.Time
		fired, backlog int64
		firedTasks     []uuid.UUID
	}{
		{t0, 2, 1, []uuid.UUID{oldest, middle}},
		{t0.Add(15 * time.Minute), 1, 0, []uuid.UUID{oldest, middle, newest}},
		{t0.Add(30 * time.Minute), 0, 0, []uuid.UUID{oldest, middle, newest}},
	}
	for i, s := range steps {
		rep := f.check(s.at)
		wantCounts(t, rep, map[string]int64{"overdue_tasks": 3, "automation_rules_triggered": s.fired, "automation_backlog": s.backlog})
		for _, id := range s.firedTasks {
			if f.count(`SELECT count(*) FROM automation_logs WHERE task_id = $1`, id) != 1 {
				t.Errorf("run %d: task %s has not fired; the oldest deadlines go first", i+1, id)
			}
		}
	}
}
