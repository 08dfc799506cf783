package sla

import (
	"testing"
	"time"

	"github.com/lexhq/gstjobs/internal/demo"
)

// The demo data `make run` starts with gives both jobs something real to report:
// overdue tasks, SLA breaches, rules that fire and rules that fail, a failing rule
// in the health check and an incident for Iyer Tax Chambers, whose admin is told once.
func TestDemoData(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	loaded, err := demo.Load(t.Context(), f.pool)
	if err != nil || !loaded {
		t.Fatalf("demo.Load = %v, %v; want the demo loaded", loaded, err)
	}
	now := time.Now()

	check := f.check(now)
	for _, key := range []string{"overdue_tasks", "sla_violations", "automation_rules_triggered", "automation_failures", "notifications_sent"} {
		if num(t, check, key) == 0 {
			t.Errorf("SLA check on the demo: %s = 0, want some; results %v", key, check.Results)
		}
	}
	if n := f.count(`SELECT count(*) FROM automation_logs WHERE rule_id = 'e0000000-0000-0000-0000-000000000005'
		AND status = 'failed' AND error = 'task has no case' AND run_id IS NOT NULL`); n != 2 {
		t.Errorf("the owner rule failed %d times on the first check, want 2 (the two tasks with no case)", n)
	}
	if again := f.check(now.Add(time.Second)); num(t, again, "automation_rules_triggered") != 0 {
		t.Errorf("a second SLA check on the demo fired %d rules, want 0", num(t, again, "automation_rules_triggered"))
	}

	health := f.health(now.Add(2 * time.Second))
	if health.Results["health"] != degraded || num(t, health, "unhealthy_rules") < 2 || num(t, health, "incidents_opened") < 1 {
		t.Errorf("health check on the demo: %v; want degraded, at least 2 unhealthy rules and an incident", health.Results)
	}
	const lakshmi = "b0000000-0000-0000-0000-000000000001"
	if n := f.count(`SELECT count(*) FROM notifications WHERE user_id = $1 AND kind = 'automation_health'`, lakshmi); n != 1 {
		t.Errorf("Iyer's admin got %d automation health notifications, want 1", n)
	}
	f.health(now.Add(3 * time.Second))
	if n := f.count(`SELECT count(*) FROM notifications WHERE user_id = $1 AND kind = 'automation_health'`, lakshmi); n != 1 {
		t.Errorf("after a second health check Iyer's admin has %d automation health notifications, want still 1", n)
	}
}
