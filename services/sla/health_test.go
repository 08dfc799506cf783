package sla

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/worker"
)

// The health levels follow from counts alone.
func TestClassify(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name                  string
		rules, unhealthyRules int
		stale                 []string
		want                  string
	}{
		{"nothing wrong", 10, 0, nil, healthy},
		{"no rules, no stale jobs", 0, 0, nil, healthy},
		{"one unhealthy rule of ten", 10, 1, nil, degraded},
		{"exactly half the rules unhealthy", 4, 2, nil, degraded},
		{"more than half the rules unhealthy", 5, 3, nil, unhealthy},
		{"a firm's only rule unhealthy", 1, 1, nil, unhealthy},
		{"one daily job stale", 10, 0, []string{"send-hearing-reminders"}, degraded},
		{"the SLA check stale", 10, 0, []string{"check-sla-and-overdue"}, unhealthy},
		{"two daily jobs stale", 10, 0, []string{"send-hearing-reminders", "capture-analytics-snapshot"}, unhealthy},
	}
	for _, tc := range cases {
		if got := classify(tc.rules, tc.unhealthyRules, tc.stale); got != tc.want {
			t.Errorf("%s: classify(%d, %d, %v) = %s, want %s", tc.name, tc.rules, tc.unhealthyRules, tc.stale, got, tc.want)
		}
	}
}

// logs writes n automation_logs rows for a rule, executed at the given time.
func (f *fixture) logs(tenant, rule uuid.UUID, status string, n int, at time.Time) {
	f.t.Helper()
	var errText any
	if status == "failed" {
		errText = "task has no assignee"
	}
	f.exec(`INSERT INTO automation_logs (tenant_id, rule_id, entity_id, occurrence, status, error, executed_at)
	        SELECT $1, $2, gen_random_uuid(), 'test:' || g, $3, $4, $5 FROM generate_series(1, $6) g`,
		tenant, rule, status, errText, at, n)
}

// A rule is unhealthy when, in the 24 h before now, it failed at least 3 times and in
// at least half of its executions ("failing"), or when it did not fire for a breach
// that is older than the SLA check's alert threshold (30 min) while the rule existed
// ("not_firing"). Only active rules are checked.
func TestHealthRules(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := time.Hour
	recent, old := t0.Add(-2*h), t0.Add(-25*h)
	cases := []struct {
		name    string
		arrange func(firm, rule uuid.UUID)
		active  bool
		want    []string
	}{
		{"3 of 3 failed", func(fm, r uuid.UUID) { f.logs(fm, r, "failed", 3, recent) }, true, []string{problemFailing}},
		{"3 of 6 failed: exactly 50 %", func(fm, r uuid.UUID) {
			f.logs(fm, r, "failed", 3, recent)
			f.logs(fm, r, "success", 3, recent)
		}, true, []string{problemFailing}},
		{"3 of 7 failed: under 50 %", func(fm, r uuid.UUID) {
			f.logs(fm, r, "failed", 3, recent)
			f.logs(fm, r, "success", 4, recent)
		}, true, nil},
		{"2 of 2 failed: under 3 failures", func(fm, r uuid.UUID) { f.logs(fm, r, "failed", 2, recent) }, true, nil},
		{"5 failed, 4 of them more than 24 h ago", func(fm, r uuid.UUID) {
			f.logs(fm, r, "failed", 4, old)
			f.logs(fm, r, "failed", 1, recent)
		}, true, nil},
		{"10 successes", func(fm, r uuid.UUID) { f.logs(fm, r, "success", 10, recent) }, true, nil},
		{"inactive rule, 5 of 5 failed: not checked", func(fm, r uuid.UUID) { f.logs(fm, r, "failed", 5, recent) }, false, nil},
		{"missed a task overdue for 31 minutes", func(fm, _ uuid.UUID) {
			f.task(task{tenant: fm, due: t0.Add(-31 * time.Minute)})
		}, true, []string{problemNotFiring}},
		{"task overdue for 29 minutes: the next check may still fire", func(fm, _ uuid.UUID) {
			f.task(task{tenant: fm, due: t0.Add(-29 * time.Minute)})
		}, true, nil},
		{"rule created 10 minutes ago", func(fm, r uuid.UUID) {
			f.exec(`UPDATE automation_rules SET created_at = $2 WHERE id = $1`, r, t0.Add(-10*time.Minute))
			f.task(task{tenant: fm, due: t0.Add(-2 * h)})
		}, true, nil},
		{"fired for the breach", func(fm, r uuid.UUID) {
			due := t0.Add(-2 * h)
			task := f.task(task{tenant: fm, due: due})
			f.exec(`INSERT INTO automation_logs (tenant_id, rule_id, task_id, entity_id, occurrence, executed_at) VALUES ($1, $2, $3, $3, $4, $5)`,
				fm, r, task, "overdue:"+due.UTC().Format("2006-01-02T15:04:05.000000Z"), due.Add(10*time.Minute))
		}, true, nil},
		{"failing and not firing", func(fm, r uuid.UUID) {
			f.logs(fm, r, "failed", 4, recent)
			f.task(task{tenant: fm, due: t0.Add(-3 * h)})
		}, true, []string{problemFailing, problemNotFiring}},
	}
	ids := map[string]string{}
	firmOf := map[string]uuid.UUID{}
	var wantUnhealthy int64
	for i, tc := range cases {
		fm := f.tenant(fmt.Sprintf("Firm %02d", i))
		firmOf[tc.name] = fm
		r := f.rule(fm, "task_overdue", "notify_assignee")
		f.exec(`UPDATE automation_rules SET name = $2, is_active = $3 WHERE id = $1`, r, tc.name, tc.active)
		tc.arrange(fm, r)
		ids[r.String()] = tc.name
		if len(tc.want) > 0 {
			wantUnhealthy++
		}
	}

	rep := f.health(t0)
	// 11 active rules, 4 unhealthy: not more than half, so degraded.
	wantCounts(t, rep, map[string]int64{"rules_checked": 11, "unhealthy_rules": wantUnhealthy, "stale_job_count": 0})
	if rep.Results["health"] != degraded {
		t.Errorf("health = %v, want degraded", rep.Results["health"])
	}
	listed, ok := rep.Results["rules"].([]ruleHealth)
	if !ok {
		t.Fatalf("results[rules] = %T, want []ruleHealth", rep.Results["rules"])
	}
	got := map[string]ruleHealth{}
	for _, r := range listed {
		got[ids[r.ID]] = r
	}
	for _, tc := range cases {
		r := got[tc.name]
		if !slices.Equal(r.Problems, tc.want) {
			t.Errorf("%s: problems = %v, want %v", tc.name, r.Problems, tc.want)
		}
	}
	if r := got["3 of 6 failed: exactly 50 %"]; r.Failures != 3 || r.Executions != 6 || r.FailureRate != 0.5 ||
		r.Tenant != "Firm 01" || !strings.Contains(r.Reason, "failed 3 of 6 executions in the last 24 h (last error: task has no assignee)") {
		t.Errorf("rule detail = %+v, want 3 failures of 6, rate 0.5, firm and reason", r)
	}
	if r := got["missed a task overdue for 31 minutes"]; r.Missed != 1 || !strings.Contains(r.Reason, "did not fire for 1 breach(es) older than 30 min") {
		t.Errorf("rule detail = %+v, want 1 missed breach and its reason", r)
	}
	// Each of these firms has one rule, so an unhealthy rule makes its firm unhealthy;
	// none has an admin to tell.
	wantCounts(t, rep, map[string]int64{"incidents_opened": wantUnhealthy, "unhealthy_tenants": wantUnhealthy})
	if int64(len(rep.Errors)) != wantUnhealthy || !strings.Contains(rep.Errors[0], "has no admin to notify") {
		t.Errorf("errors = %q, want %d naming firms without an admin", rep.Errors, wantUnhealthy)
	}

	// Each firm's run for itself (a slot's, a Run Now's: the statement's form for named
	// firms, which reads the executions firm by firm) judges its one rule as the run for
	// every firm did, and counts no other firm's.
	job, _ := catalog.Lookup(catalog.AutomationHealthCheck)
	for _, tc := range cases {
		one, err := f.jobs[catalog.AutomationHealthCheck](t.Context(), worker.Run{ID: uuid.NewString(), Job: job, Now: t0,
			Scope: events.ScopeFirms([]string{firmOf[tc.name].String()})})
		if err != nil {
			t.Fatalf("%s: the firm's own run: %v", tc.name, err)
		}
		var active, unhealthy int64
		if tc.active {
			active = 1
		}
		if len(tc.want) > 0 {
			unhealthy = 1
		}
		wantCounts(t, one, map[string]int64{"rules_checked": active, "unhealthy_rules": unhealthy})
		mine, _ := one.Results["rules"].([]ruleHealth)
		if unhealthy == 1 {
			all := got[tc.name]
			if len(mine) != 1 || !slices.Equal(mine[0].Problems, all.Problems) || mine[0].Executions != all.Executions ||
				mine[0].Failures != all.Failures || mine[0].Missed != all.Missed || mine[0].Reason != all.Reason {
				t.Errorf("%s: the firm's own run lists %+v, want its rule as the run for every firm judged it: %+v", tc.name, mine, all)
			}
		}
	}
}

// A job is stale when its last successful execution in audit_log is older than its
// catalog threshold (30 min for the SLA check, 36 h for the daily jobs), or when it
// never succeeded and the system has been running longer than that threshold. The
// health check itself is running, so it is never stale.
func TestHealthStaleJobs(t *testing.T) {
	t.Parallel()
	h := time.Hour
	const (
		slaJob     = "check-sla-and-overdue"
		reminders  = "send-hearing-reminders"
		analytics  = "capture-analytics-snapshot"
		deadlines  = "check-upcoming-deadlines"
		healthJob  = "automation-health-check"
		failed     = "failed"
		success    = "success"
		minute     = time.Minute
		freshDaily = 20 * time.Hour
		freshSLA   = 10 * time.Minute
	)
	type exec struct {
		job    string
		status string
		ago    time.Duration
	}
	fresh := []exec{{slaJob, success, freshSLA}, {reminders, success, freshDaily}, {analytics, success, freshDaily}, {deadlines, success, freshDaily}}
	with := func(extra ...exec) []exec {
		var out []exec
		for _, e := range fresh {
			replaced := false
			for _, x := range extra {
				if x.job == e.job {
					replaced = true
				}
			}
			if !replaced {
				out = append(out, e)
			}
		}
		return append(out, extra...)
	}
	cases := []struct {
		name      string
		execs     []exec
		wantStale []string
		want      string
	}{
		{"every job recent", fresh, []string{}, healthy},
		{"reminders 37 h ago", with(exec{reminders, success, 37 * h}), []string{reminders}, degraded},
		{"reminders exactly 36 h ago", with(exec{reminders, success, 36 * h}), []string{}, healthy},
		{"reminders failed since an old success", with(exec{reminders, success, 40 * h}, exec{reminders, failed, h}), []string{reminders}, degraded},
		{"SLA check 31 min ago", with(exec{slaJob, success, 31 * minute}), []string{slaJob}, unhealthy},
		{"two daily jobs stale", with(exec{analytics, success, 37 * h}, exec{deadlines, success, 50 * h}), []string{analytics, deadlines}, unhealthy},
		{"the health check's own last run is old", with(exec{healthJob, success, 72 * h}), []string{}, healthy},
		{"only the SLA check ever succeeded, system up 2 days", []exec{{slaJob, success, 48 * h}, {slaJob, success, minute}},
			[]string{reminders, analytics, deadlines}, unhealthy},
		{"fresh install: nothing ever ran", nil, []string{}, healthy},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			for _, e := range tc.execs {
				f.exec(`INSERT INTO audit_log (action_type, details, "timestamp")
				        VALUES ('background_job_execution', jsonb_build_object('job_name', $1::text, 'status', $2::text), $3)`,
					e.job, e.status, t0.Add(-e.ago))
			}
			rep := f.health(t0)
			stale, _ := rep.Results["stale_jobs"].([]string)
			if !slices.Equal(stale, tc.wantStale) || rep.Results["health"] != tc.want {
				t.Errorf("stale_jobs = %#v, health = %v; want %#v, %s", rep.Results["stale_jobs"], rep.Results["health"], tc.wantStale, tc.want)
			}
			wantCounts(t, rep, map[string]int64{"stale_job_count": int64(len(tc.wantStale))})
		})
	}
}

// An unhealthy firm's admins are notified once per incident: not again while it
// stays unhealthy, and again when it becomes unhealthy after having recovered. The
// firm's only rule failing makes the firm unhealthy; with the other firm's healthy
// rule that is one of two rules system-wide, so the system is degraded.
func TestHealthIncidentNotifiedOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := time.Hour
	fm := f.firm("Mehta & Associates")
	secondAdmin := f.profile(fm.id, "admin")
	quiet := f.firm("Quiet Chambers")
	failing := f.rule(fm.id, "task_overdue", "notify_assignee")
	f.exec(`UPDATE automation_rules SET name = 'Tell the assignee' WHERE id = $1`, failing)
	ok := f.rule(quiet.id, "task_overdue", "notify_assignee")
	f.logs(quiet.id, ok, "success", 5, t0.Add(-h))
	f.logs(fm.id, failing, "failed", 3, t0.Add(-h))

	steps := []struct {
		name                   string
		at                     time.Time
		arrange                func()
		health                 string
		opened, closed, notify int64
		open                   int64
	}{
		{"rule failing: incident opens, both admins told", t0, nil, degraded, 1, 0, 2, 1},
		{"still failing an hour later: nobody told again", t0.Add(h), nil, degraded, 0, 0, 0, 1},
		{"failures older than 24 h: incident closes", t0.Add(25 * h), nil, healthy, 0, 1, 0, 0},
		{"failing again: a new incident, told again", t0.Add(27 * h), func() { f.logs(fm.id, failing, "failed", 3, t0.Add(26*h)) }, degraded, 1, 0, 2, 1},
		{"and not again on the next run", t0.Add(28 * h), nil, degraded, 0, 0, 0, 1},
	}
	for _, s := range steps {
		if s.arrange != nil {
			s.arrange()
		}
		rep := f.health(s.at)
		if rep.Results["health"] != s.health {
			t.Errorf("%s: health = %v, want %s", s.name, rep.Results["health"], s.health)
		}
		if got := []int64{num(t, rep, "incidents_opened"), num(t, rep, "incidents_closed"), num(t, rep, "notifications_sent"), num(t, rep, "unhealthy_tenants")}; !slices.Equal(got, []int64{s.opened, s.closed, s.notify, s.open}) {
			t.Errorf("%s: incidents opened, closed, notifications, open = %v; want %v", s.name, got, []int64{s.opened, s.closed, s.notify, s.open})
		}
	}

	if n := f.count(`SELECT count(*) FROM automation_health_incidents WHERE tenant_id = $1`, fm.id); n != 2 {
		t.Errorf("firm has %d incidents, want 2", n)
	}
	if n := f.count(`SELECT count(*) FROM automation_health_incidents WHERE tenant_id = $1 AND closed_at = $2`, fm.id, t0.Add(25*h)); n != 1 {
		t.Errorf("the first incident is not closed at the recovering run")
	}
	for _, admin := range []uuid.UUID{fm.admin, secondAdmin} {
		if n := f.count(`SELECT count(*) FROM notifications WHERE user_id = $1 AND kind = 'automation_health'
			AND body LIKE '%Tell the assignee%failed 3 of 3 executions%'`, admin); n != 2 {
			t.Errorf("admin %s got %d incident notifications naming the rule, want 2", admin, n)
		}
		if n := f.count(`SELECT count(*) FROM audit_log WHERE action_type = 'notification_sent' AND user_id = $1
			AND details->>'channel' = 'in_app' AND details->>'job_name' = 'automation-health-check'`, admin); n != 2 {
			t.Errorf("admin %s has %d notification_sent audit rows, want 2", admin, n)
		}
	}
	if n := f.count(`SELECT count(*) FROM notifications WHERE tenant_id = $1`, quiet.id); n != 0 {
		t.Errorf("the healthy firm got %d notifications, want none", n)
	}
	if n := f.count(`SELECT count(*) FROM notifications WHERE user_id IN ($1, $2, $3)`, fm.manager1, fm.manager2, fm.ca); n != 0 {
		t.Errorf("non-admins got %d notifications, want none", n)
	}
}

// A stale SLA check leaves every firm without escalations: every firm is unhealthy,
// each gets its incident, and a firm with no admin is named in the errors.
func TestHealthStaleSLACheckConcernsEveryFirm(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a, b := f.firm("Alpha Associates"), f.firm("Beta Chambers")
	lonely := f.tenant("No Admin LLP")
	for _, job := range []string{"send-hearing-reminders", "capture-analytics-snapshot", "check-upcoming-deadlines"} {
		f.exec(`INSERT INTO audit_log (action_type, details, "timestamp") VALUES ('background_job_execution', jsonb_build_object('job_name', $1::text, 'status', 'success'), $2)`,
			job, t0.Add(-time.Hour))
	}
	f.exec(`INSERT INTO audit_log (action_type, details, "timestamp") VALUES ('background_job_execution', '{"job_name":"check-sla-and-overdue","status":"success"}', $1)`,
		t0.Add(-2*time.Hour))

	rep := f.health(t0)
	wantCounts(t, rep, map[string]int64{"incidents_opened": 3, "notifications_sent": 2, "stale_job_count": 1})
	if rep.Results["health"] != unhealthy {
		t.Errorf("health = %v, want unhealthy", rep.Results["health"])
	}
	if len(rep.Errors) != 1 || !strings.HasPrefix(rep.Errors[0], "No Admin LLP: automation is unhealthy but the firm has no admin to notify") {
		t.Errorf("errors = %q, want one naming No Admin LLP", rep.Errors)
	}
	for _, admin := range []uuid.UUID{a.admin, b.admin} {
		if n := f.count(`SELECT count(*) FROM notifications WHERE user_id = $1 AND body LIKE '%SLA & Overdue Check last succeeded 10 Mar 2026 13:30 IST (alert after 30 min)%'`, admin); n != 1 {
			t.Errorf("admin %s got %d notifications naming the stale SLA check, want 1", admin, n)
		}
	}
	_ = lonely
}
