package pgtest_test

import (
	"testing"

	"github.com/lexhq/gstjobs/internal/pgtest"
)

// What is tried: to_char_in (an instant in a firm's zone, its abbreviation included) in a
// statement the planner runs in parallel, as it may choose for the reminders' and the
// deadline alerts' statements on large data (force_parallel_mode makes it choose so on
// any data). What must hold: the statement answers, each row in its own zone, rather
// than failing with "cannot set parameters during a parallel operation" and failing the
// run.
func TestAFirmsTimeFormatsInAParallelPlan(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	conn, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, set := range []string{"SET force_parallel_mode = on", "SET parallel_setup_cost = 0", "SET parallel_tuple_cost = 0", "SET min_parallel_table_scan_size = 0"} {
		if _, err := conn.Exec(t.Context(), set); err != nil {
			t.Fatal(err)
		}
	}
	var dubai, kolkata int
	err = conn.QueryRow(t.Context(), `
		SELECT count(*) FILTER (WHERE s LIKE '%+04'), count(*) FILTER (WHERE s LIKE '%IST')
		FROM (SELECT to_char_in('2026-03-10 04:30:00+00'::timestamptz + i * interval '1 second',
		                        CASE WHEN i % 2 = 0 THEN 'Asia/Dubai' ELSE 'Asia/Kolkata' END, 'HH24:MI TZ') AS s
		      FROM generate_series(1, 1000) i) x`).Scan(&dubai, &kolkata)
	if err != nil {
		t.Fatalf("to_char_in in a parallel plan: %v", err)
	}
	if dubai != 500 || kolkata != 500 {
		t.Fatalf("%d rows in Dubai's time and %d in Kolkata's; want 500 of each", dubai, kolkata)
	}
}
