package pgtest_test

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lexhq/gstjobs/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func auditRows(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM audit_log`).Scan(&n); err != nil {
		t.Fatalf("count audit_log (is the database migrated?): %v", err)
	}
	return n
}

func insertAudit(t *testing.T, pool *pgxpool.Pool, action string) {
	t.Helper()
	if _, err := pool.Exec(t.Context(), `INSERT INTO audit_log (action_type) VALUES ($1)`, action); err != nil {
		t.Fatalf("insert into audit_log: %v", err)
	}
}

// Parallel tests each get a migrated, empty database, copied from the template at
// the same time.
func TestNewDBParallel(t *testing.T) {
	for i := range 8 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			pool, _ := pgtest.NewPool(t)
			if n := auditRows(t, pool); n != 0 {
				t.Fatalf("new database has %d audit_log rows, want 0", n)
			}
			insertAudit(t, pool, fmt.Sprint("test ", i))
			if n := auditRows(t, pool); n != 1 {
				t.Errorf("after one insert audit_log has %d rows, want 1: databases are shared", n)
			}
		})
	}
}

func TestDatabasesAreIsolated(t *testing.T) {
	t.Parallel()
	a, urlA := pgtest.NewPool(t)
	b, urlB := pgtest.NewPool(t)
	if urlA == urlB {
		t.Fatalf("two NewPool calls returned the same database %s", urlA)
	}
	insertAudit(t, a, "only in a")
	if _, err := a.Exec(t.Context(), `CREATE TABLE only_in_a (id int)`); err != nil {
		t.Fatal(err)
	}
	if n := auditRows(t, b); n != 0 {
		t.Errorf("database b sees %d audit_log rows written to a, want 0", n)
	}
	var exists bool
	if err := b.QueryRow(t.Context(), `SELECT to_regclass('only_in_a') IS NOT NULL`).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Error("database b has the table created in a")
	}
}

// A test database is dropped when its test ends, even with a connection left open.
func TestDatabaseDroppedAfterTest(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("user", func(t *testing.T) {
		leaked, err := pgx.Connect(t.Context(), pgtest.NewDB(t)) // deliberately never closed
		if err != nil {
			t.Fatal(err)
		}
		if err := leaked.QueryRow(t.Context(), `SELECT current_database()`).Scan(&name); err != nil {
			t.Fatal(err)
		}
	})
	observer, _ := pgtest.NewPool(t)
	var exists bool
	if err := observer.QueryRow(t.Context(), `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s still exists after its test ended", name)
	}
}
