package sla

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/internal/pgtest"
	"github.com/lexhq/gstjobs/internal/worker"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// t0 is "now" for most tests: 10 March 2026, 15:30 in Kolkata.
var t0 = time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)

// fixture is a fresh, migrated database with helpers to write the rows a test needs.
type fixture struct {
	t    *testing.T
	pool *pgxpool.Pool
	jobs map[string]worker.Func
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, pool: pool, jobs: newJobs(jobservice.Deps{Pool: pool, Location: kolkata}, defaultConfig())}
}

func nullable(id uuid.UUID) any {
	if id == uuid.Nil {
		return nil
	}
	return id
}

func (f *fixture) exec(sql string, args ...any) {
	f.t.Helper()
	if _, err := f.pool.Exec(f.t.Context(), sql, args...); err != nil {
		f.t.Fatalf("exec %s: %v", strings.Join(strings.Fields(sql), " "), err)
	}
}

func (f *fixture) count(sql string, args ...any) int {
	f.t.Helper()
	var n int
	if err := f.pool.QueryRow(f.t.Context(), sql, args...).Scan(&n); err != nil {
		f.t.Fatalf("count %s: %v", strings.Join(strings.Fields(sql), " "), err)
	}
	return n
}

func (f *fixture) tenant(name string) uuid.UUID {
	f.t.Helper()
	id := uuid.New()
	f.exec(`INSERT INTO tenants (id, name) VALUES ($1, $2)`, id, name)
	return id
}

func (f *fixture) profile(tenant uuid.UUID, role string) uuid.UUID {
	f.t.Helper()
	id := uuid.New()
	f.exec(`INSERT INTO profiles (id, tenant_id, full_name, role) VALUES ($1, $2, $3, $4)`,
		id, tenant, role+" "+id.String()[:4], role)
	return id
}

// kase makes a case; owner may be uuid.Nil.
func (f *fixture) kase(tenant, owner uuid.UUID) uuid.UUID {
	f.t.Helper()
	id := uuid.New()
	f.exec(`INSERT INTO cases (id, tenant_id, case_number, title, owner_id) VALUES ($1, $2, $3, 'A case', $4)`,
		id, tenant, "GST/"+id.String()[:8], nullable(owner))
	return id
}

// task is one row of tasks. Zero values: open, medium, created a minute before t0,
// no due date, no case, no assignee.
type task struct {
	tenant, kase, assignee uuid.UUID
	priority, status       string
	due                    time.Time
	created                time.Time
}

func (f *fixture) task(tk task) uuid.UUID {
	f.t.Helper()
	id := uuid.New()
	if tk.priority == "" {
		tk.priority = "medium"
	}
	if tk.status == "" {
		tk.status = "open"
	}
	if tk.created.IsZero() {
		tk.created = t0.Add(-time.Minute)
	}
	var due, completed any
	if !tk.due.IsZero() {
		due = tk.due
	}
	if tk.status == "completed" {
		completed = tk.created.Add(time.Hour)
	}
	f.exec(`INSERT INTO tasks (id, tenant_id, case_id, title, assigned_to, priority, status, due_date, completed_at, created_at)
	        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		id, tk.tenant, nullable(tk.kase), "Task "+id.String()[:8], nullable(tk.assignee), tk.priority, tk.status, due, completed, tk.created)
	return id
}

// rule makes an active automation rule created a day before t0.
func (f *fixture) rule(tenant uuid.UUID, trigger, action string) uuid.UUID {
	f.t.Helper()
	id := uuid.New()
	f.exec(`INSERT INTO automation_rules (id, tenant_id, name, trigger_event, action, created_at)
	        VALUES ($1, $2, $3, $4, $5, $6)`, id, tenant, trigger+" → "+action, trigger, action, t0.Add(-24*time.Hour))
	return id
}

func (f *fixture) run(job string, now time.Time) worker.Report {
	f.t.Helper()
	j, ok := catalog.Lookup(job)
	if !ok {
		f.t.Fatalf("no job %s in the catalog", job)
	}
	rep, err := f.jobs[job](f.t.Context(), worker.Run{ID: uuid.NewString(), Job: j, Now: now, Scope: events.ScopeAll()})
	if err != nil {
		f.t.Fatalf("%s at %s failed: %v", job, now.Format(time.RFC3339), err)
	}
	return rep
}

func (f *fixture) check(now time.Time) worker.Report {
	f.t.Helper()
	return f.run(catalog.CheckSLAAndOverdue, now)
}

func (f *fixture) health(now time.Time) worker.Report {
	f.t.Helper()
	return f.run(catalog.AutomationHealthCheck, now)
}

// num reads a counter from a report.
func num(t testing.TB, rep worker.Report, key string) int64 {
	t.Helper()
	switch v := rep.Results[key].(type) {
	case int:
		return int64(v)
	case int64:
		return v
	default:
		t.Fatalf("results[%q] = %#v (%T), want a number; results: %v", key, rep.Results[key], rep.Results[key], rep.Results)
		return 0
	}
}

// wantCounts checks several counters of a report at once.
func wantCounts(t *testing.T, rep worker.Report, want map[string]int64) {
	t.Helper()
	var bad []string
	for k, w := range want {
		if got := num(t, rep, k); got != w {
			bad = append(bad, fmt.Sprintf("%s = %d, want %d", k, got, w))
		}
	}
	if len(bad) > 0 {
		t.Errorf("%s\nresults: %v\nerrors: %q", strings.Join(bad, "; "), rep.Results, rep.Errors)
	}
}
