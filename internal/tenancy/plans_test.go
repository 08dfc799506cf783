package tenancy_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/tenancy"
)

// Tried: on one connection, a statement with the scope's filter and a condition of
// its own on the run's arguments (the reminders' slice of the firms, @parts = 1 OR
// hash % @parts = @part), over 400 firms of 50 rows each joined to a table of 200,000,
// run six times for twenty firms and then eight times for every firm: as a cached
// prepared statement in transactions left to PostgreSQL (the control), and with
// tenancy.EachRun, in transactions left alone and begun by ReusePlansForNamed.
// Must hold: the control gets its generic plan for runs for every firm, so the
// statement is one whose generic plan PostgreSQL picks (from a statement's sixth run,
// when it costs less on paper than the custom plans so far: here costed for the few
// rows that conditions on unknown values let through, nested loops throughout; the
// deadline alerts' statement took 90 s that way instead of 3.6 s on 1M tasks). With
// EachRun every run counts the right rows and the statement is never kept prepared on
// the session (an unnamed statement, which PostgreSQL plans at each execution for its
// arguments), and the transaction of a run for every firm leaves plan_cache_mode to
// PostgreSQL, so the foreign-key checks of the rows it writes keep their cached plans.
func TestEachRunPlansAStatementForItsRun(t *testing.T) {
	ctx := context.Background()
	pool := oneSession(t) // its prepared statements are the ones counted
	for _, q := range []string{
		`CREATE TABLE plan_rows (tenant_id uuid NOT NULL, ref int NOT NULL)`,
		`CREATE TABLE plan_refs (id int PRIMARY KEY, v int NOT NULL)`,
		`INSERT INTO plan_rows SELECT md5('f' || (i % 400))::uuid, i FROM generate_series(1, 20000) i`,
		`INSERT INTO plan_refs SELECT i, i % 7 FROM generate_series(1, 200000) i`,
		`CREATE INDEX ON plan_rows (tenant_id)`,
		`ANALYZE plan_rows, plan_refs`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	rows, err := pool.Query(ctx, `SELECT DISTINCT tenant_id::text FROM plan_rows ORDER BY 1 LIMIT 20`)
	if err != nil {
		t.Fatal(err)
	}
	twenty, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(twenty) != 20 {
		t.Fatalf("twenty firms: %v, %v", twenty, err)
	}
	named, all := events.ScopeFirms(twenty), events.ScopeAll()

	const query = `SELECT count(*) FROM plan_rows r JOIN plan_refs f ON f.id = r.ref * 10
		WHERE (@parts::int = 1 OR (hashtext(r.tenant_id::text) & 2147483647) % @parts::int = @part::int) AND `
	// run runs the statement in a transaction of scope s, begun as begin says; mode, if
	// not nil, goes before its arguments.
	run := func(sql string, s events.Scope, begin func(context.Context, pgx.Tx, events.Scope) error, mode []any) (n int, planMode string, err error) {
		err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if err := begin(ctx, tx, s); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, `SELECT current_setting('plan_cache_mode')`).Scan(&planMode); err != nil {
				return err
			}
			args := append(mode, tenancy.With(pgx.NamedArgs{"parts": 1, "part": 0}, s))
			return tx.QueryRow(ctx, sql, args...).Scan(&n)
		})
		return n, planMode, err
	}
	prepared := func(tag string) (statements, generic int64) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(generic_plans), 0) FROM pg_prepared_statements WHERE statement LIKE $1`,
			"/* "+tag+" */%").Scan(&statements, &generic); err != nil {
			t.Fatal(err)
		}
		return statements, generic
	}
	leftAlone := func(context.Context, pgx.Tx, events.Scope) error { return nil }
	runs := func(t *testing.T, sql string, begin func(context.Context, pgx.Tx, events.Scope) error, mode []any) {
		t.Helper()
		for range 6 {
			if n, _, err := run(sql, named, begin, mode); err != nil || n != 20*50 {
				t.Fatalf("a run for twenty firms counted %d rows (err %v), want %d", n, err, 20*50)
			}
		}
		for i := range 8 {
			n, planMode, err := run(sql, all, begin, mode)
			if err != nil || n != 20000 {
				t.Fatalf("run %d for every firm counted %d rows (err %v), want 20000", i+1, n, err)
			}
			if planMode != "auto" {
				t.Fatalf("run %d for every firm: plan_cache_mode %q, want auto (every cached plan of the session, the foreign-key checks' too, follows it)", i+1, planMode)
			}
		}
	}

	t.Run("control", func(t *testing.T) {
		runs(t, "/* control */ "+query+tenancy.Filter("r.tenant_id"), leftAlone, nil)
		if statements, generic := prepared("control"); statements != 1 || generic == 0 {
			t.Fatalf("the cached statement: %d prepared, %d generic plans; want 1 prepared and a generic plan for the runs for every firm, or this test cannot tell EachRun from the default", statements, generic)
		}
	})
	t.Run("EachRun", func(t *testing.T) {
		sql := "/* EachRun */ " + query + tenancy.Filter("r.tenant_id")
		runs(t, sql, leftAlone, []any{tenancy.EachRun})
		runs(t, sql, tenancy.ReusePlansForNamed, []any{tenancy.EachRun})
		if statements, generic := prepared("EachRun"); statements != 0 {
			t.Fatalf("with EachRun the statement is kept prepared on the session (%d, %d generic plans): its plan may be reused", statements, generic)
		}
	})
}
