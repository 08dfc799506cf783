package sla

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/internal/pgtest"
	"github.com/lexhq/gstjobs/internal/worker"
)

// What is tried: on a pool of one connection, the SLA check run six times for the firm
// alone (its Run Now) and then three times for every firm, every 15 minutes, with an
// overdue task and a rule that fires on it (a new task each run, so every run acts).
// What must hold: every run fires the rule once, and the check's scan, act and zone
// report are never kept prepared on the session: each is planned for its own run's
// firms (tenancy.EachRun), never given the generic plan PostgreSQL picks for a
// statement from its sixth run on a connection.
func TestCheckStatementsArePlannedForEachRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	one := pgtest.OneSession(t, f.pool)
	jobs := newJobs(jobservice.Deps{Pool: one, Location: kolkata}, defaultConfig())
	fm := f.firm("Mehta & Associates")
	f.rule(fm.id, "task_overdue", "notify_assignee")
	job, _ := catalog.Lookup(catalog.CheckSLAAndOverdue)
	for i := range 9 {
		scope := events.ScopeFirms([]string{fm.id.String()})
		if i >= 6 {
			scope = events.ScopeAll()
		}
		now := t0.Add(time.Duration(i) * 15 * time.Minute)
		f.task(task{tenant: fm.id, kase: fm.kase, assignee: fm.ca, created: now.Add(-3 * time.Hour), due: now.Add(-time.Hour)})
		rep, err := jobs[catalog.CheckSLAAndOverdue](t.Context(), worker.Run{ID: uuid.NewString(), Job: job, Now: now, Scope: scope})
		if err != nil {
			t.Fatalf("run %d (every firm: %v): %v", i+1, scope.All, err)
		}
		wantCounts(t, rep, map[string]int64{"automation_rules_triggered": 1})
	}
	rows, err := one.Query(t.Context(), `SELECT statement FROM pg_prepared_statements`)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for name, sql := range map[string]string{"scan": scanSQL, "act": actSQL, "zone report": zoneReportsSQL} {
		mark := firstPlainLine(sql)
		for _, k := range kept {
			if strings.Contains(k, mark) {
				t.Errorf("the check's %s is kept prepared on the session, where it gets a generic plan from its sixth run", name)
			}
		}
	}
}

// firstPlainLine is the first line of sql long enough to tell it from others and free
// of named arguments, which pgx rewrites before the statement reaches the server.
func firstPlainLine(sql string) string {
	for line := range strings.Lines(sql) {
		if l := strings.TrimSpace(line); len(l) >= 30 && !strings.Contains(l, "@") && !strings.HasPrefix(l, "--") {
			return l
		}
	}
	panic("no plain line in:\n" + sql)
}
