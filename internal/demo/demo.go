// Package demo loads the demonstration data `make run` starts with: two firms with users
// of all six roles, cases, hearings, tasks (some overdue, some past their SLA), SLA
// policies and automation rules, arranged so that every job finds something to do.
//
// The data is SQL in sql/*.sql, applied in name order in one transaction. Times are
// relative to now(), so the demo looks alive whenever it is loaded. It loads once: a
// database that already has tenants is left alone.
package demo

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"

	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed sql/*.sql
var files embed.FS

// Load applies the demo data unless the database already has tenants. It reports
// whether it loaded anything.
func Load(ctx context.Context, pool *pgxpool.Pool) (loaded bool, err error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("demo: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// Two launchers starting at once must not both load.
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(7262001)"); err != nil {
		return false, fmt.Errorf("demo: lock: %w", err)
	}
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM tenants)").Scan(&exists); err != nil {
		return false, fmt.Errorf("demo: check: %w", err)
	}
	if exists {
		return false, nil
	}
	names, err := fs.Glob(files, "sql/*.sql")
	if err != nil {
		return false, err
	}
	sort.Strings(names)
	for _, name := range names {
		body, err := files.ReadFile(name)
		if err != nil {
			return false, err
		}
		if _, err := tx.Exec(ctx, string(body)); err != nil {
			return false, fmt.Errorf("demo: %s: %w", name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("demo: commit: %w", err)
	}
	return true, nil
}

// Demo users, one per role per firm, for sign-in links and tests.
const (
	TenantMehta = "11111111-1111-1111-1111-111111111111"
	TenantIyer  = "22222222-2222-2222-2222-222222222222"

	UserAdmin    = "a0000000-0000-0000-0000-000000000001"
	UserPartner  = "a0000000-0000-0000-0000-000000000002"
	UserManager  = "a0000000-0000-0000-0000-000000000003"
	UserCA       = "a0000000-0000-0000-0000-000000000004"
	UserAdvocate = "a0000000-0000-0000-0000-000000000005"
	UserUser     = "a0000000-0000-0000-0000-000000000006"
	// UserNoContact has neither e-mail nor phone: reminders to them fail, visibly.
	UserNoContact = "a0000000-0000-0000-0000-000000000007"

	UserIyerAdmin = "b0000000-0000-0000-0000-000000000001"
)

// UsersByRole maps each role to a demo user of the first firm.
var UsersByRole = map[string]string{
	"admin": UserAdmin, "partner": UserPartner, "manager": UserManager,
	"ca": UserCA, "advocate": UserAdvocate, "user": UserUser,
}
