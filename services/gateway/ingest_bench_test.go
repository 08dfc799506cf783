package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/natstest"
	"github.com/lexhq/gstjobs/internal/pgtest"
	"github.com/lexhq/gstjobs/services/gateway"
)

const ingestResults = 20_000

// BenchmarkIngest times the gateway's audit consumer writing 20,000 results that wait
// in JOBS_EVENTS (published before the timer starts) into audit_log, until the last
// row is committed, and reports results/s beside two baselines measured in the same
// run on the same rows: a COPY into audit_log (the fastest PostgreSQL takes rows in)
// and a one-row autocommit INSERT loop (what the consumer did before batching).
// Targets: at least 20,000 results/s and 0.4× COPY. Measured with the default linger
// (none: batches form by themselves) and with the 2 ms linger the consumer had before.
func BenchmarkIngest(b *testing.B) {
	for _, linger := range []time.Duration{0, 2 * time.Millisecond} {
		b.Run("linger="+linger.String(), func(b *testing.B) { benchmarkIngest(b, linger) })
	}
}

func benchmarkIngest(b *testing.B, linger time.Duration) {
	ns := natstest.Start(b)
	pool, _ := pgtest.NewPool(b)
	ctx := context.Background()
	rows := make([][]byte, ingestResults)
	now := time.Now()
	for i := range rows {
		rows[i], _ = json.Marshal(events.Result{
			RunID: fmt.Sprintf("50000000-0000-4000-8000-%012d", i), JobName: catalog.CheckSLAAndOverdue, Status: events.StatusSuccess,
			Scope: &events.Scope{All: true}, ExecutionTimeMS: 12, Trigger: events.KindSchedule,
			Results:    map[string]any{"overdue_tasks": i % 50, "sla_violations": i % 7, "automation_rules_triggered": i % 3},
			FinishedAt: now.Add(time.Duration(i) * time.Millisecond), Instance: "bench",
		})
	}
	copyRate := bestRate(b, pool, func() { copyRows(b, pool, rows) })
	loopRate := bestRate(b, pool, func() { insertLoop(b, pool, rows[:2000]) })

	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		truncate(b, pool)
		for _, data := range rows {
			if _, err := ns.JS.PublishAsync(events.ResultSubject(catalog.CheckSLAAndOverdue), data); err != nil {
				b.Fatal(err)
			}
		}
		<-ns.JS.PublishAsyncComplete()
		g, err := gateway.New(gateway.Config{Pool: pool, NC: ns.NC, JS: ns.JS, Addr: "127.0.0.1:0", JWTSecret: testSecret, AuditLinger: linger})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := g.Start(ctx); err != nil {
			b.Fatal(err)
		}
		waitRows(b, pool, ingestResults)
		total += time.Since(start)
		b.StopTimer()
		g.Stop()
		b.StartTimer()
	}
	rate := float64(ingestResults) * float64(b.N) / total.Seconds()
	b.ReportMetric(rate, "results/s")
	b.ReportMetric(copyRate, "copy_rows/s")
	b.ReportMetric(rate/copyRate, "x_copy")
	b.ReportMetric(loopRate, "insert_loop_rows/s")
	b.ReportMetric(rate/loopRate, "x_insert_loop")
	if rate < 20_000 || rate < 0.4*copyRate {
		b.Logf("ingest %.0f results/s, %.2f× COPY: below the target (20,000/s and 0.4× COPY)", rate, rate/copyRate)
	}
}

func truncate(b *testing.B, pool *pgxpool.Pool) {
	if _, err := pool.Exec(context.Background(), `TRUNCATE audit_log`); err != nil {
		b.Fatal(err)
	}
}

// bestRate is the best rows/s of three runs of fill, each on an empty audit_log.
func bestRate(b *testing.B, pool *pgxpool.Pool, fill func()) float64 {
	best := 0.0
	for range 3 {
		truncate(b, pool)
		start := time.Now()
		fill()
		var n int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_log`).Scan(&n); err != nil {
			b.Fatal(err)
		}
		best = max(best, float64(n)/time.Since(start).Seconds())
	}
	truncate(b, pool)
	return best
}

func copyRows(b *testing.B, pool *pgxpool.Pool, rows [][]byte) {
	src := make([][]any, len(rows))
	for i, d := range rows {
		var r events.Result
		_ = json.Unmarshal(d, &r)
		src[i] = []any{gateway.ActionExecution, "background_job", r.JobName, string(d), "execution:" + r.RunID, r.FinishedAt}
	}
	_, err := pool.CopyFrom(context.Background(), pgx.Identifier{"audit_log"},
		[]string{"action_type", "entity_type", "entity_id", "details", "dedupe_key", "timestamp"}, pgx.CopyFromRows(src))
	if err != nil {
		b.Fatal(err)
	}
}

func insertLoop(b *testing.B, pool *pgxpool.Pool, rows [][]byte) {
	for _, d := range rows {
		var r events.Result
		_ = json.Unmarshal(d, &r)
		if _, err := pool.Exec(context.Background(), `INSERT INTO audit_log (action_type, entity_type, entity_id, details, dedupe_key, "timestamp")
			VALUES ($1, 'background_job', $2, $3, $4, $5) ON CONFLICT (dedupe_key) DO NOTHING`,
			gateway.ActionExecution, r.JobName, d, "execution:"+r.RunID, r.FinishedAt); err != nil {
			b.Fatal(err)
		}
	}
}

func waitRows(b *testing.B, pool *pgxpool.Pool, want int) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var n int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_log WHERE action_type = $1`, gateway.ActionExecution).Scan(&n); err != nil {
			b.Fatal(err)
		}
		if n >= want {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d rows after 2 minutes", n, want)
		}
		<-time.After(2 * time.Millisecond)
	}
}
