package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Copied is a set of rows a job wrote, for [CopyMillis]: the rows Select returns (in
// Table's column order), or Rows, given in that order by the caller (what a job hands
// on rather than writes itself, such as each firm's slice of a run).
type Copied struct {
	Table  string
	Select string
	Rows   [][]any
}

// CopyMillis is a benchmark's baseline for what a job writes: the time, best of three,
// that COPY takes to write the same rows again into unlogged copies of their tables
// (CREATE UNLOGGED TABLE ... (LIKE table), no indexes, no constraints), the cheapest
// way PostgreSQL has to store them. The rows are read before any timing, and each
// attempt starts from empty copies, which are dropped on return. A job's time over
// this baseline is the price of its indexes, keys, checks and computing, beyond
// putting the bytes on disk.
func CopyMillis(tb testing.TB, pool *pgxpool.Pool, sets ...Copied) float64 {
	tb.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		tb.Fatalf("pgtest: copy baseline: %v", err)
	}
	defer conn.Release()
	exec := func(sql string, args ...any) {
		tb.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			tb.Fatalf("pgtest: copy baseline: %s: %v", sql, err)
		}
	}

	copies := make([]string, len(sets))
	data := make([][]byte, len(sets))
	for i, s := range sets {
		copies[i] = fmt.Sprintf("pgtest_copy_%d", i)
		exec(fmt.Sprintf("DROP TABLE IF EXISTS %s", copies[i]))
		exec(fmt.Sprintf("CREATE UNLOGGED TABLE %s (LIKE %s)", copies[i], pgx.Identifier{s.Table}.Sanitize()))
		source := s.Select
		if s.Rows != nil {
			// Rows given by the caller: staged in a copy of their own, then read back as
			// COPY text like the others.
			staging := copies[i] + "_rows"
			exec(fmt.Sprintf("DROP TABLE IF EXISTS %s", staging))
			exec(fmt.Sprintf("CREATE TEMPORARY TABLE %s (LIKE %s)", staging, pgx.Identifier{s.Table}.Sanitize()))
			defer func() { _, _ = conn.Exec(ctx, "DROP TABLE IF EXISTS "+staging) }()
			if _, err := conn.CopyFrom(ctx, pgx.Identifier{staging}, columns(tb, conn, s.Table), pgx.CopyFromRows(s.Rows)); err != nil {
				tb.Fatalf("pgtest: copy baseline: stage %d rows of %s: %v", len(s.Rows), s.Table, err)
			}
			source = "SELECT * FROM " + staging
		}
		var buf bytes.Buffer
		if _, err := conn.Conn().PgConn().CopyTo(ctx, &buf, "COPY ("+source+") TO STDOUT"); err != nil {
			tb.Fatalf("pgtest: copy baseline: read the rows of %s: %v", s.Table, err)
		}
		data[i] = buf.Bytes()
	}
	defer func() {
		for _, c := range copies {
			_, _ = conn.Exec(ctx, "DROP TABLE IF EXISTS "+c)
		}
	}()

	best := time.Duration(1 << 62)
	for range 3 {
		for _, c := range copies {
			exec("TRUNCATE " + c)
		}
		start := time.Now()
		for i, c := range copies {
			if _, err := conn.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(data[i]), "COPY "+c+" FROM STDIN"); err != nil {
				tb.Fatalf("pgtest: copy baseline: COPY into %s: %v", c, err)
			}
		}
		best = min(best, time.Since(start))
	}
	return float64(best.Microseconds()) / 1000
}

// columns is a table's column names in order.
func columns(tb testing.TB, conn *pgxpool.Conn, table string) []string {
	tb.Helper()
	rows, err := conn.Query(context.Background(), `
		SELECT attname FROM pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, table)
	if err != nil {
		tb.Fatalf("pgtest: columns of %s: %v", table, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatalf("pgtest: columns of %s: %v", table, err)
	}
	return names
}
