package reminders_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/pgtest"
	"github.com/lexhq/gstjobs/services/reminders"
)

// Tried: 200 firm ids split into the two slices a large run delivers at once, and the
// same ids as one slice. Must hold: every firm is in exactly one of the two slices, both
// slices have firms, and one slice has them all; a predicate that kept every firm in
// both slices (each would then write the other's alerts, hidden by the dedupe keys)
// fails here.
func TestLargeRunSlicesSplitTheFirms(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	sql := `SELECT count(*) FROM (SELECT md5('firm' || i)::uuid AS id FROM generate_series(1, 200) i) f WHERE ` + reminders.InPart("f.id")
	count := func(parts, part int) int {
		t.Helper()
		var n int
		if err := pool.QueryRow(context.Background(), sql, pgx.NamedArgs{"parts": parts, "part": part}).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	first, second, whole := count(2, 0), count(2, 1), count(1, 0)
	if whole != 200 || first+second != 200 || first == 0 || second == 0 {
		t.Errorf("slices of 2: %d + %d firms, one slice: %d; want two non-empty slices adding up to 200, and 200", first, second, whole)
	}
}

// Tried: runs for every firm, for one firm's Run Now, for two firms' Run Nows coalesced,
// for a slot's three firms, and for a slot's three firms of which two paused the job.
// Must hold: a run is split into slices exactly when it covers two firms or more (the
// default), counting the firms it covers, not those it names: the paused firms of a
// slot are not covered, and a slot left with one firm is one statement.
func TestRunsForSeveralFirmsAreSplit(t *testing.T) {
	a, b, c := "a0000000-0000-4000-8000-000000000001", "a0000000-0000-4000-8000-000000000002", "a0000000-0000-4000-8000-000000000003"
	for _, tc := range []struct {
		name  string
		scope events.Scope
		want  int
	}{
		{"every firm", events.ScopeAll(), 2},
		{"one firm's Run Now", events.ScopeTenant(a), 1},
		{"two firms' Run Nows", events.Scope{Tenants: []string{a, b}}, 2},
		{"a slot's three firms", events.ScopeFirms([]string{a, b, c}), 2},
		{"a slot's three firms, two paused", events.Scope{Firms: []string{a, b, c}, Skip: []string{b, c}}, 1},
	} {
		got, err := reminders.PartsFor(reminders.Config{}, tc.scope)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%s: %d slices, want %d", tc.name, got, tc.want)
		}
	}
}
