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

// Tried: on one connection, a statement with the scope's filter and a condition of
// its own on the run's arguments (the reminders' slice of the firms, @parts = 1 OR
// hash % @parts = @part), over 400 firms of 50 rows each joined to a table of 200,000,
// run eight times for every firm through each way a job begins a run's transaction
// (PlanEachNamedRun, ReusePlansForNamed, QueueBegin), after six runs for twenty firms;
// and, as the control, the same in a transaction left to PostgreSQL (plan_cache_mode
// auto).
// Must hold: every run for every firm is planned for its own arguments, none gets the
// generic plan; the control does get it, so the statement is one whose generic plan
// PostgreSQL would pick. From the sixth run of a statement on a connection, auto picks
// the generic plan whenever it costs less than the custom plans so far, and the generic
// plan cannot know the arguments: it is costed for the few rows that conditions on
// unknown values let through (nested loops throughout). The deadline alerts' statement,
// run for each group of twenty firms and then for every firm, took 90 s that way
// instead of 3.6 s on 1M tasks.
func TestARunForEveryFirmIsPlannedForEveryFirm(t *testing.T) {
	shared, _ := pgtest.NewPool(t)
	ctx := context.Background()
	cfg := shared.Config()
	cfg.MaxConns = 1 // one session: its prepared statements are the ones counted
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
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
	args := func(s events.Scope) pgx.NamedArgs { return tenancy.With(pgx.NamedArgs{"parts": 1, "part": 0}, s) }
	inTx := func(begin func(context.Context, pgx.Tx, events.Scope) error) func(string, events.Scope) (int, error) {
		return func(sql string, s events.Scope) (n int, err error) {
			err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if err := begin(ctx, tx, s); err != nil {
					return err
				}
				return tx.QueryRow(ctx, sql, args(s)).Scan(&n)
			})
			return n, err
		}
	}
	ways := []struct {
		name    string
		run     func(sql string, s events.Scope) (int, error)
		control bool // left to PostgreSQL: must get the generic plan
	}{
		{"auto", inTx(func(context.Context, pgx.Tx, events.Scope) error { return nil }), true},
		{"PlanEachNamedRun", inTx(tenancy.PlanEachNamedRun), false},
		{"ReusePlansForNamed", inTx(tenancy.ReusePlansForNamed), false},
		{"QueueBegin", func(sql string, s events.Scope) (n int, err error) {
			var b pgx.Batch
			tenancy.QueueBegin(&b, s)
			b.Queue(sql, args(s)).QueryRow(func(r pgx.Row) error { return r.Scan(&n) })
			b.Queue("COMMIT")
			return n, pool.SendBatch(ctx, &b).Close()
		}, false},
	}
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			sql := "/* " + w.name + " */ " + query + tenancy.Filter("r.tenant_id")
			for range 6 {
				if n, err := w.run(sql, named); err != nil || n != 20*50 {
					t.Fatalf("a run for twenty firms counted %d rows (err %v), want %d", n, err, 20*50)
				}
			}
			var before int64
			if err := pool.QueryRow(ctx, `SELECT coalesce(sum(generic_plans), 0) FROM pg_prepared_statements WHERE statement LIKE $1`,
				"/* "+w.name+" */%").Scan(&before); err != nil {
				t.Fatal(err)
			}
			for i := range 8 {
				if n, err := w.run(sql, all); err != nil || n != 20000 {
					t.Fatalf("run %d for every firm counted %d rows (err %v), want 20000", i+1, n, err)
				}
			}
			var generic, custom int64
			if err := pool.QueryRow(ctx, `SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0)
				FROM pg_prepared_statements WHERE statement LIKE $1`, "/* "+w.name+" */%").Scan(&generic, &custom); err != nil {
				t.Fatal(err)
			}
			if custom == 0 {
				t.Fatalf("no custom plan counted for the statement (generic %d): the statement was not prepared on this session", generic)
			}
			if w.control {
				if generic == before {
					t.Fatalf("left to PostgreSQL, the runs for every firm never got the generic plan (custom plans: %d): this test cannot tell the ways from auto", custom)
				}
				return
			}
			if generic != before {
				t.Errorf("runs for every firm used the generic plan %d times of 8 (custom plans in all: %d): a plan costed for a few firms", generic-before, custom)
			}
		})
	}
}
