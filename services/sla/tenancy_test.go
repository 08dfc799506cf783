package sla

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/worker"
)

// runScoped runs a job for a scope, as the worker would.
func (f *fixture) runScoped(job string, now time.Time, scope events.Scope) worker.Report {
	f.t.Helper()
	j, _ := catalog.Lookup(job)
	rep, err := f.jobs[job](f.t.Context(), worker.Run{ID: uuid.NewString(), Job: j, Now: now, Scope: scope})
	if err != nil {
		f.t.Fatalf("%s for %+v failed: %v", job, scope, err)
	}
	return rep
}

func slicesByFirm(t *testing.T, rep worker.Report) map[string]events.TenantSlice {
	t.Helper()
	m := map[string]events.TenantSlice{}
	for _, s := range rep.Tenants {
		if _, dup := m[s.TenantID]; dup {
			t.Fatalf("firm %s has two slices", s.TenantID)
		}
		m[s.TenantID] = s
	}
	return m
}

func sliceNum(t *testing.T, s events.TenantSlice, key string) int64 {
	t.Helper()
	return num(t, worker.Report{Results: s.Results}, key)
}

// Every covered firm gets its own slice of an SLA check, with the contract's keys for
// that firm alone and its own problems; a firm with no data gets zeros; a run for one
// firm (its Run Now) reads, counts and fires for that firm only; a paused firm is not
// touched by a run for every firm.
func TestCheckSlicesPerFirm(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a, b := f.firm("Alpha Associates"), f.firm("Beta Chambers")
	empty := f.tenant("Empty Chambers")
	for _, fm := range []firm{a, b} {
		f.rule(fm.id, "task_overdue", "notify_assignee")
	}
	for range 3 {
		f.task(task{tenant: a.id, assignee: a.ca, priority: "low", due: t0.Add(-time.Hour)})
	}
	f.task(task{tenant: b.id, assignee: b.ca, priority: "low", due: t0.Add(-time.Hour)})
	f.task(task{tenant: b.id, priority: "low", due: t0.Add(-2 * time.Hour)}) // nobody to notify

	// Beta's Run Now: Beta only.
	rep := f.runScoped(catalog.CheckSLAAndOverdue, t0, events.ScopeTenant(b.id.String()))
	got := slicesByFirm(t, rep)
	if len(got) != 1 {
		t.Fatalf("a run for Beta has slices for %d firms, want 1: %+v", len(got), rep.Tenants)
	}
	bs := got[b.id.String()]
	if n := sliceNum(t, bs, "overdue_tasks"); n != 2 {
		t.Errorf("Beta overdue_tasks = %d, want 2", n)
	}
	if n := sliceNum(t, bs, "automation_rules_triggered"); n != 2 {
		t.Errorf("Beta automation_rules_triggered = %d, want 2", n)
	}
	if len(bs.Errors) != 1 || !strings.Contains(bs.Errors[0], "task has no assignee") || strings.Contains(bs.Errors[0], "Beta") {
		t.Errorf("Beta's own errors = %q, want the one rule failure, without its own name", bs.Errors)
	}
	if n := f.count(`SELECT count(*) FROM automation_logs WHERE tenant_id = $1`, a.id); n != 0 {
		t.Errorf("a run for Beta fired %d rules of Alpha, want 0", n)
	}
	wantCounts(t, rep, map[string]int64{"overdue_tasks": 2, "automation_rules_triggered": 2})

	// The schedule, with Alpha paused: Beta and the empty firm, not Alpha.
	rep = f.runScoped(catalog.CheckSLAAndOverdue, t0, events.Scope{All: true, Skip: []string{a.id.String()}})
	got = slicesByFirm(t, rep)
	if _, ok := got[a.id.String()]; ok {
		t.Errorf("a paused firm got a slice from the job: %+v", got[a.id.String()])
	}
	es, ok := got[empty.String()]
	if !ok {
		t.Fatalf("the firm with no data has no slice; slices: %+v", rep.Tenants)
	}
	for _, k := range checkResultKeys {
		if n := sliceNum(t, es, k); n != 0 {
			t.Errorf("empty firm %s = %d, want 0", k, n)
		}
	}
	if n := f.count(`SELECT count(*) FROM automation_logs WHERE tenant_id = $1`, a.id); n != 0 {
		t.Errorf("a run that skips Alpha fired %d of its rules, want 0", n)
	}

	// Every firm: each slice adds up to the totals.
	rep = f.runScoped(catalog.CheckSLAAndOverdue, t0, events.ScopeAll())
	got = slicesByFirm(t, rep)
	if len(got) != 3 {
		t.Fatalf("a run for every firm has %d slices, want 3 (zeros included)", len(got))
	}
	if n := sliceNum(t, got[a.id.String()], "automation_rules_triggered"); n != 3 {
		t.Errorf("Alpha automation_rules_triggered = %d, want 3 (its rules fire once, now)", n)
	}
	if n := sliceNum(t, got[a.id.String()], "overdue_tasks"); n != 3 {
		t.Errorf("Alpha overdue_tasks = %d, want 3", n)
	}
	for _, k := range []string{"overdue_tasks", "sla_violations", "automation_rules_triggered"} {
		var sum int64
		for _, s := range got {
			sum += sliceNum(t, s, k)
		}
		if tot := num(t, rep, k); sum != tot {
			t.Errorf("%s: firms add up to %d, run total %d", k, sum, tot)
		}
	}
}

// The health check judges each firm by its own rules, opens and closes only the
// covered firms' incidents, and gives a firm with no rules its own "healthy" slice.
func TestHealthSlicesPerFirm(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a, b := f.firm("Alpha Associates"), f.firm("Beta Chambers")
	empty := f.tenant("Empty Chambers")
	failing := f.rule(a.id, "task_overdue", "notify_assignee")
	for i := range 4 {
		f.exec(`INSERT INTO automation_logs (tenant_id, rule_id, entity_id, occurrence, status, error, executed_at)
		        VALUES ($1, $2, $3, $4, 'failed', 'task has no assignee', $5)`,
			a.id, failing, uuid.New(), "overdue:x"+string(rune('a'+i)), t0.Add(-time.Hour))
	}
	f.rule(b.id, "task_overdue", "notify_assignee")

	rep := f.runScoped(catalog.AutomationHealthCheck, t0, events.ScopeTenant(b.id.String()))
	got := slicesByFirm(t, rep)
	if len(got) != 1 || got[b.id.String()].Results["health"] != healthy {
		t.Fatalf("a run for Beta: slices %+v, want Beta's alone, healthy", rep.Tenants)
	}
	if n := f.count(`SELECT count(*) FROM automation_health_incidents WHERE tenant_id = $1`, a.id); n != 0 {
		t.Errorf("a run for Beta opened %d incidents for Alpha, want 0", n)
	}

	rep = f.runScoped(catalog.AutomationHealthCheck, t0, events.ScopeAll())
	got = slicesByFirm(t, rep)
	as := got[a.id.String()]
	if as.Results["health"] != unhealthy || sliceNum(t, as, "unhealthy_rules") != 1 || sliceNum(t, as, "incidents_opened") != 1 {
		t.Errorf("Alpha's slice = %v, want unhealthy, 1 unhealthy rule, its incident opened", as.Results)
	}
	rules, _ := as.Results["rules"].([]ruleHealth)
	if len(rules) != 1 || rules[0].TenantID != a.id.String() {
		t.Errorf("Alpha's slice lists rules %+v, want its one failing rule", rules)
	}
	if bs := got[b.id.String()]; bs.Results["health"] != healthy || sliceNum(t, bs, "rules_checked") != 1 {
		t.Errorf("Beta's slice = %v, want healthy with its 1 rule", bs.Results)
	}
	if es := got[empty.String()]; es.Results["health"] != healthy || sliceNum(t, es, "rules_checked") != 0 {
		t.Errorf("empty firm's slice = %v, want healthy with no rules", es.Results)
	}

	// A run for Beta alone leaves Alpha's open incident open.
	f.runScoped(catalog.AutomationHealthCheck, t0.Add(time.Hour), events.ScopeTenant(b.id.String()))
	if n := f.count(`SELECT count(*) FROM automation_health_incidents WHERE tenant_id = $1 AND closed_at IS NULL`, a.id); n != 1 {
		t.Errorf("after a run for Beta, Alpha has %d open incidents, want its 1 still open", n)
	}
}
