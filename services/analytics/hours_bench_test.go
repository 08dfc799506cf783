package analytics

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/worker"
)

// The firms of the benchmark of firms' hours are spread over 50 (zone, time of day)
// pairs, 20 firms each: 10 zones, from Sydney to Los Angeles, at 5 times of day.
var (
	hoursZones = []string{"Asia/Kolkata", "Asia/Dubai", "America/New_York", "Europe/London", "Asia/Singapore",
		"Australia/Sydney", "Asia/Kathmandu", "Asia/Tokyo", "Europe/Berlin", "America/Los_Angeles"}
	hoursTimes = []string{"00:30", "01:00", "02:00", "03:00", "04:00"}
)

// firmHours (BenchmarkCapture's firm_hours) times the day's snapshots of the 1,000
// firms both ways, on the benchmark's data: today's single schedule (one run for every
// firm at 00:30 in Kolkata) and the firms' own hours (50 runs, one per (zone, time)
// pair at its own slot on 10 March, for its 20 firms). x_single is the 50 runs' total
// over the single run. The firms are back in Kolkata when it returns.
func firmHours(b *testing.B, pool *pgxpool.Pool, job worker.Func) {
	ctx := context.Background()
	type group struct {
		slot  time.Time
		firms []string
	}
	groups := make([]group, 50)
	for p := range groups {
		loc, _ := time.LoadLocation(hoursZones[p%10])
		at := hoursTimes[p/10]
		h, _ := strconv.Atoi(at[:2])
		m, _ := strconv.Atoi(at[3:])
		groups[p].slot = time.Date(2026, 3, 10, h, m, 0, 0, loc)
	}
	for i := range benchTenants {
		groups[i%50].firms = append(groups[i%50].firms, fmt.Sprintf("10000000-0000-0000-0000-%012d", i))
	}
	exec := func(sql string, args ...any) {
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			b.Fatal(err)
		}
	}
	setZones := func(spread bool) {
		if !spread {
			exec(`UPDATE tenants SET timezone = 'Asia/Kolkata'`)
		} else {
			exec(`UPDATE tenants SET timezone = ($1::text[])[(right(id::text, 12)::int % 50) % 10 + 1]`, hoursZones)
		}
		exec(`DELETE FROM analytics_snapshots`)
		exec(`VACUUM analytics_snapshots, tenants`)
	}
	run := func(now time.Time, scope events.Scope) worker.Report {
		rep, err := job(ctx, worker.Run{ID: "bench", Now: now, Scope: scope})
		if err != nil {
			b.Fatal(err)
		}
		return rep
	}
	var single, spread time.Duration
	var singleN, spreadN int64
	n := 0
	for b.Loop() {
		b.StopTimer()
		setZones(false)
		b.StartTimer()
		start := time.Now()
		singleN = run(time.Date(2026, 3, 10, 0, 30, 0, 0, kolkata), events.ScopeAll()).Results["snapshots_written"].(int64)
		single += time.Since(start)
		b.StopTimer()
		setZones(true)
		b.StartTimer()
		spreadN = 0
		for _, g := range groups {
			start := time.Now()
			spreadN += run(g.slot, events.ScopeFirms(g.firms)).Results["snapshots_written"].(int64)
			spread += time.Since(start)
		}
		n++
	}
	s, g := float64(single.Microseconds())/1000/float64(n), float64(spread.Microseconds())/1000/float64(n)
	b.ReportMetric(s, "single_ms")
	b.ReportMetric(g, "groups_ms")
	b.ReportMetric(g/s, "x_single")
	b.ReportMetric(1, "single_runs/day")
	b.ReportMetric(50, "groups_runs/day")
	b.ReportMetric(float64(singleN), "single_snapshots")
	b.ReportMetric(float64(spreadN), "groups_snapshots")
	b.StopTimer()
	setZones(false)
}
