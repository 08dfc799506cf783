package reminders_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

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
