package tenancy_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/pgtest"
	"github.com/lexhq/gstjobs/internal/tenancy"
)

// Tried: a run's one statement queued in one transaction, for named firms and for
// every firm, on a pool of one connection, so that every run and check meets the same
// session; then a statement that writes and then fails (division by zero).
// Must hold: the statement runs inside a transaction (SET LOCAL takes effect only in
// one), with generic plans for named firms and PostgreSQL's choice for every firm, and
// the setting ends with it; a failure comes back as the run's error, writes nothing,
// and the next run on the pool succeeds (the failed session is not handed out again).
func TestQueueInOneTransaction(t *testing.T) {
	ctx := context.Background()
	pool := oneSession(t)
	run := func(s events.Scope, sql string, scan func(pgx.Row) error) error {
		var b pgx.Batch
		tenancy.QueueInOneTransaction(&b, s, sql, pgx.NamedArgs{}, scan)
		return pool.SendBatch(ctx, &b).Close()
	}
	named := events.ScopeFirms([]string{"a0000000-0000-4000-8000-000000000001"})
	for _, c := range []struct {
		scope events.Scope
		want  string
	}{{named, "force_generic_plan"}, {events.ScopeAll(), "auto"}} {
		var mode string
		err := run(c.scope, `SELECT current_setting('plan_cache_mode')`, func(r pgx.Row) error { return r.Scan(&mode) })
		if err != nil || mode != c.want {
			t.Fatalf("all=%v: plan_cache_mode %q, err %v; want %q", c.scope.All, mode, err, c.want)
		}
		var after string
		if err := pool.QueryRow(ctx, `SELECT current_setting('plan_cache_mode')`).Scan(&after); err != nil || after != "auto" {
			t.Fatalf("after the run: plan_cache_mode %q, err %v; want auto (SET LOCAL ends with the transaction)", after, err)
		}
	}

	if _, err := pool.Exec(ctx, `CREATE TABLE batch_probe (n int)`); err != nil {
		t.Fatal(err)
	}
	err := run(named, `WITH w AS (INSERT INTO batch_probe VALUES (1) RETURNING n) SELECT (SELECT n FROM w) / 0`, func(r pgx.Row) error { var n int; return r.Scan(&n) })
	if err == nil {
		t.Fatal("a statement dividing by zero returned no error")
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM batch_probe`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("after the failed run: %d rows written (err %v), want 0", rows, err)
	}
	var one int
	if err := run(named, `SELECT 1`, func(r pgx.Row) error { return r.Scan(&one) }); err != nil || one != 1 {
		t.Fatalf("the pool after a failed run: %d, %v", one, err)
	}
}

// oneSession is a pool of one connection to a test database of its own.
func oneSession(t *testing.T) *pgxpool.Pool {
	t.Helper()
	shared, _ := pgtest.NewPool(t)
	return pgtest.OneSession(t, shared)
}
