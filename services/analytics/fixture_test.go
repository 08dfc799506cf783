package analytics

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"
	_ "time/tzdata"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/internal/pgtest"
	"github.com/lexhq/gstjobs/internal/worker"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// mustLoad resolves a zone from the embedded tz database (time/tzdata).
func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// The reference run: 00:30 in Kolkata on 10 March 2026, which is 19:00 UTC on 9 March.
var (
	kolkata   = mustLoad("Asia/Kolkata")
	runNow    = time.Date(2026, 3, 10, 0, 30, 0, 0, kolkata)
	dayStart  = time.Date(2026, 3, 9, 18, 30, 0, 0, time.UTC) // 10 March 00:00 IST
	prevStart = dayStart.Add(-24 * time.Hour)                 // 9 March 00:00 IST
	weekEnd   = dayStart.Add(7 * 24 * time.Hour)              // 17 March 00:00 IST
)

const runDate = "2026-03-10"

// fixture writes crafted rows into a test database of its own.
type fixture struct {
	t        *testing.T
	ctx      context.Context
	pool     *pgxpool.Pool
	profiles map[string]string // tenant → a profile to address notifications to
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	return &fixture{t: t, ctx: t.Context(), pool: pool, profiles: map[string]string{}}
}

func (f *fixture) exec(sql string, args ...any) {
	f.t.Helper()
	if _, err := f.pool.Exec(f.ctx, sql, args...); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}

func (f *fixture) id(sql string, args ...any) string {
	f.t.Helper()
	var id string
	if err := f.pool.QueryRow(f.ctx, sql, args...).Scan(&id); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
	return id
}

func (f *fixture) tenant(name string) string {
	f.t.Helper()
	return f.id(`INSERT INTO tenants (id, name) VALUES (gen_random_uuid(), $1) RETURNING id::text`, name)
}

func (f *fixture) legalCase(tenant, status string) string {
	f.t.Helper()
	return f.id(`INSERT INTO cases (id, tenant_id, case_number, title, status)
		VALUES (gen_random_uuid(), $1, 'GST/SCN/' || substr(md5(random()::text), 1, 6), 'crafted', $2)
		RETURNING id::text`, tenant, status)
}

// task is a crafted task; zero times are NULL, except created, which defaults to a
// day before the run.
type task struct {
	priority, status        string
	due, created, completed time.Time
}

func (f *fixture) task(tenant string, tk task) {
	f.t.Helper()
	if tk.priority == "" {
		tk.priority = "medium"
	}
	if tk.created.IsZero() {
		tk.created = runNow.Add(-24 * time.Hour)
	}
	f.exec(`INSERT INTO tasks (id, tenant_id, title, priority, status, due_date, created_at, completed_at)
		VALUES (gen_random_uuid(), $1, 'crafted', $2, $3, $4, $5, $6)`,
		tenant, tk.priority, tk.status, nullTime(tk.due), tk.created, nullTime(tk.completed))
}

// completedTask finished at done, open for the given time before that.
func completedTask(priority string, done time.Time, open time.Duration) task {
	return task{priority: priority, status: "completed", created: done.Add(-open), completed: done}
}

func (f *fixture) hearing(tenant string, at time.Time, status string) {
	f.t.Helper()
	c := f.legalCase(tenant, "closed") // closed, so it does not change active_cases
	f.exec(`INSERT INTO hearings (id, tenant_id, case_id, hearing_date, status)
		VALUES (gen_random_uuid(), $1, $2, $3, $4)`, tenant, c, at, status)
}

// delivery is a notification with its e-mail delivery, created at created and last
// attempted at attempted.
func (f *fixture) delivery(tenant, status string, created, attempted time.Time) {
	f.t.Helper()
	user, ok := f.profiles[tenant]
	if !ok {
		user = f.id(`INSERT INTO profiles (id, tenant_id, full_name, role)
			VALUES (gen_random_uuid(), $1, 'Crafted Advocate', 'advocate') RETURNING id::text`, tenant)
		f.profiles[tenant] = user
	}
	n := f.id(`INSERT INTO notifications (tenant_id, user_id, kind, title, dedupe_key, created_at)
		VALUES ($1, $2, 'hearing_reminder', 'crafted', gen_random_uuid()::text, $3) RETURNING id::text`,
		tenant, user, created)
	f.exec(`INSERT INTO notification_deliveries (tenant_id, notification_id, channel, source, status, attempts,
			last_error, created_at, updated_at)
		VALUES ($1, $2, 'email', 'send-hearing-reminders', $3, 1, CASE WHEN $3 <> 'sent' THEN 'crafted' END, $4, $5)`,
		tenant, n, status, created, attempted)
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// run runs the job as the worker would, at now in loc, and returns its results.
func (f *fixture) run(now time.Time, loc *time.Location) map[string]any {
	f.t.Helper()
	jobs, err := Jobs(jobservice.Deps{Pool: f.pool, Location: loc})
	if err != nil {
		f.t.Fatal(err)
	}
	rep, err := jobs[catalog.CaptureAnalyticsSnapshot](f.ctx, worker.Run{ID: "test", Now: now, Scope: events.ScopeAll()})
	if err != nil {
		f.t.Fatalf("run at %s: %v", now.Format(time.RFC3339), err)
	}
	return rep.Results
}

// snapshot reads one tenant's metrics of one day.
func (f *fixture) snapshot(tenant, date string) map[string]float64 {
	f.t.Helper()
	rows, err := f.pool.Query(f.ctx, `SELECT metric_type, metric_value::float8 FROM analytics_snapshots
		WHERE tenant_id = $1 AND snapshot_date = $2::date`, tenant, date)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]float64{}
	for rows.Next() {
		var k string
		var v float64
		if err := rows.Scan(&k, &v); err != nil {
			f.t.Fatal(err)
		}
		got[k] = v
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
	return got
}

func (f *fixture) count(sql string, args ...any) int {
	f.t.Helper()
	var n int
	if err := f.pool.QueryRow(f.ctx, sql, args...).Scan(&n); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// checkMetrics fails unless got holds exactly the metrics in want, with their values.
func checkMetrics(t *testing.T, who string, got, want map[string]float64) {
	t.Helper()
	if k := slices.Sorted(maps.Keys(got)); !slices.Equal(k, slices.Sorted(slices.Values(metricTypes))) {
		t.Errorf("%s: metrics written %v, want one row for each of %v", who, k, metricTypes)
	}
	for _, m := range metricTypes {
		if got[m] != want[m] {
			t.Errorf("%s: %s = %v, want %v", who, m, got[m], want[m])
		}
	}
}

func zeros() map[string]float64 {
	z := map[string]float64{}
	for _, m := range metricTypes {
		z[m] = 0
	}
	return z
}
