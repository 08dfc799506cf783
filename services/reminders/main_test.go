package reminders_test

import (
	"context"
	"errors"
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
	"github.com/lexhq/gstjobs/internal/worker"
	"github.com/lexhq/gstjobs/services/reminders"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var kolkata = mustZone("Asia/Kolkata")

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// ist is a wall-clock time in Kolkata.
func ist(y int, m time.Month, d, hh, mm, ss int) time.Time {
	return time.Date(y, m, d, hh, mm, ss, 0, kolkata)
}

// world builds a firm's data row by row, with readable names, for one test database.
type world struct {
	t    testing.TB
	pool *pgxpool.Pool
}

func newWorld(t testing.TB) *world {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	return &world{t: t, pool: pool}
}

func (w *world) exec(sql string, args ...any) {
	w.t.Helper()
	if _, err := w.pool.Exec(context.Background(), sql, args...); err != nil {
		w.t.Fatalf("%s: %v", strings.TrimSpace(sql), err)
	}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (w *world) tenant(name string) string {
	w.t.Helper()
	id := uuid.NewString()
	w.exec(`INSERT INTO tenants (id, name) VALUES ($1, $2)`, id, name)
	return id
}

// person adds a profile; email "" leaves it NULL.
func (w *world) person(tenant, name, email string) string {
	w.t.Helper()
	id := uuid.NewString()
	w.exec(`INSERT INTO profiles (id, tenant_id, full_name, email, role) VALUES ($1, $2, $3, $4, 'advocate')`,
		id, tenant, name, nullable(email))
	return id
}

// legalCase adds an active case; owner "" leaves it without one.
func (w *world) legalCase(tenant, number, owner string) string {
	w.t.Helper()
	id := uuid.NewString()
	w.exec(`INSERT INTO cases (id, tenant_id, case_number, title, client_name, owner_id) VALUES ($1, $2, $3, 'Title of '||$3, 'Client of '||$3, $4)`,
		id, tenant, number, nullable(owner))
	return id
}

func (w *world) hearing(caseID, assignee string, at time.Time, status string) string {
	w.t.Helper()
	id := uuid.NewString()
	w.exec(`INSERT INTO hearings (id, tenant_id, case_id, hearing_date, forum, assigned_to, status)
		SELECT $1, tenant_id, id, $2, 'Joint Commissioner (Appeals), Mumbai', $3, $4 FROM cases WHERE id = $5`,
		id, at, nullable(assignee), status, caseID)
	return id
}

func (w *world) task(caseID, title, assignee string, due time.Time, status string) string {
	w.t.Helper()
	id := uuid.NewString()
	w.exec(`INSERT INTO tasks (id, tenant_id, case_id, title, assigned_to, status, due_date)
		SELECT $1, tenant_id, id, $2, $3, $4, $5 FROM cases WHERE id = $6`,
		id, title, nullable(assignee), status, due, caseID)
	return id
}

func (w *world) count(sql string, args ...any) int {
	w.t.Helper()
	var n int
	if err := w.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		w.t.Fatalf("%s: %v", strings.TrimSpace(sql), err)
	}
	return n
}

func (w *world) strings(sql string, args ...any) []string {
	w.t.Helper()
	rows, err := w.pool.Query(context.Background(), sql, args...)
	if err != nil {
		w.t.Fatalf("%s: %v", strings.TrimSpace(sql), err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		w.t.Fatalf("%s: %v", strings.TrimSpace(sql), err)
	}
	slices.Sort(out)
	return out
}

// jobs builds the service's jobs on this database, in Kolkata unless loc says otherwise.
func (w *world) jobs(cfg reminders.Config, loc ...*time.Location) map[string]worker.Func {
	w.t.Helper()
	d := jobservice.Deps{Pool: w.pool, Location: kolkata}
	if len(loc) > 0 {
		d.Location = loc[0]
	}
	jobs, err := reminders.New(d, cfg)
	if err != nil {
		w.t.Fatalf("reminders.New: %v", err)
	}
	return jobs
}

// run runs a job as the worker would, at now.
func run(t testing.TB, jobs map[string]worker.Func, name string, now time.Time) (worker.Report, error) {
	t.Helper()
	job, ok := catalog.Lookup(name)
	if !ok {
		t.Fatalf("job %s is not in the catalog", name)
	}
	fn, ok := jobs[name]
	if !ok {
		t.Fatalf("service has no job %s", name)
	}
	return fn(context.Background(), worker.Run{ID: uuid.NewString(), Job: job, Trigger: "manual", Now: now, Scope: events.ScopeAll()})
}

// mustRun is run for runs that must succeed.
func mustRun(t testing.TB, jobs map[string]worker.Func, name string, now time.Time) worker.Report {
	t.Helper()
	rep, err := run(t, jobs, name, now)
	if err != nil {
		t.Fatalf("%s at %s: %v", name, now, err)
	}
	return rep
}

// results checks the named results of a report.
func results(t *testing.T, rep worker.Report, want map[string]int) {
	t.Helper()
	for k, v := range want {
		got, ok := rep.Results[k]
		if !ok {
			t.Errorf("results has no %q: %v", k, rep.Results)
			continue
		}
		if got != v {
			t.Errorf("results[%q] = %v, want %d (all results: %v; errors: %q)", k, got, v, rep.Results, rep.Errors)
		}
	}
}

func failure(err error) *worker.Failure {
	var f *worker.Failure
	if errors.As(err, &f) {
		return f
	}
	return nil
}
