package analytics

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/internal/worker"
)

// Jobs is the service's one job, built without touching the database: jobservice.Main
// calls it before connecting. A run without a pool fails cleanly instead of panicking.
func TestJobsBuildsTheSnapshotJobWithoutIO(t *testing.T) {
	t.Parallel()
	jobs, err := Jobs(jobservice.Deps{Location: kolkata})
	if err != nil {
		t.Fatalf("Jobs with no pool: %v; it must not need one until a run", err)
	}
	if names := slices.Collect(maps.Keys(jobs)); !slices.Equal(names, []string{catalog.CaptureAnalyticsSnapshot}) {
		t.Fatalf("Jobs returned %v, want only %s", names, catalog.CaptureAnalyticsSnapshot)
	}
	_, err = jobs[catalog.CaptureAnalyticsSnapshot](t.Context(), worker.Run{Now: runNow, Scope: events.ScopeAll()})
	if !errors.Is(err, ErrNoDatabase) {
		t.Errorf("run without a pool returned %v, want ErrNoDatabase", err)
	}
	var f *worker.Failure
	if !errors.As(err, &f) || f.Message == "" {
		t.Errorf("run without a pool returned %v, want a worker.Failure with a message for the dashboard", err)
	}

	if _, err := Jobs(jobservice.Deps{}); err == nil {
		t.Error("Jobs without a Location succeeded; it must say the time zone is missing")
	}
}

// Every metric, on crafted data whose expected numbers are worked out by hand below,
// for a busy firm, a firm with its own SLA policy, and a firm with nothing at all; one
// firm's rows never count towards another's.
func TestCaptureComputesEveryMetric(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	mehta, iyer, empty := f.tenant("Mehta & Associates"), f.tenant("Iyer Tax Chambers"), f.tenant("Empty LLP")

	// active_cases = 3: on_hold and closed cases are not active.
	for _, s := range []string{"active", "active", "active", "on_hold", "closed"} {
		f.legalCase(mehta, s)
	}
	// open_tasks = 5, overdue_tasks = 2.
	f.task(mehta, task{status: "open", due: runNow.Add(-time.Hour)})             // open, overdue
	f.task(mehta, task{status: "in_progress", due: runNow.Add(-72 * time.Hour)}) // open, overdue
	f.task(mehta, task{status: "open", due: runNow.Add(time.Hour)})              // open, due later
	f.task(mehta, task{status: "in_progress", due: runNow})                      // open, due this instant: not yet overdue
	f.task(mehta, task{status: "open"})                                          // open, no due date
	f.task(mehta, task{status: "cancelled", due: runNow.Add(-120 * time.Hour)})  // neither
	f.task(mehta, task{status: "completed", due: runNow.Add(-120 * time.Hour),   // neither: done long ago
		completed: runNow.Add(-100 * time.Hour)})
	// tasks_completed_previous_day = 7, of which 4 within the default SLA
	// (critical 24 h, high 72 h, medium 168 h, low 336 h): 4/7 = 57.142… → 57.14.
	noon := prevStart.Add(12 * time.Hour)
	f.task(mehta, completedTask("critical", noon, 10*time.Hour)) // within
	f.task(mehta, completedTask("critical", noon, 30*time.Hour)) // breached
	f.task(mehta, completedTask("high", noon, 72*time.Hour))     // exactly at the end: within
	f.task(mehta, completedTask("high", noon, 73*time.Hour))     // breached
	f.task(mehta, completedTask("medium", noon, 200*time.Hour))  // breached
	f.task(mehta, completedTask("low", noon, 100*time.Hour))     // within
	f.task(mehta, completedTask("low", noon, time.Hour))         // within
	// Not the previous day's completions: finished today before the run, finished the
	// day before yesterday, and cancelled with a completed_at in the window.
	f.task(mehta, completedTask("high", dayStart.Add(10*time.Minute), time.Hour))
	f.task(mehta, completedTask("high", prevStart.Add(-time.Second), time.Hour))
	f.task(mehta, task{priority: "high", status: "cancelled", created: noon.Add(-time.Hour), completed: noon})
	// hearings_next_7_days = 3: scheduled ones from today's midnight to seven days on.
	f.hearing(mehta, dayStart.Add(9*time.Hour), "scheduled")  // today 09:00
	f.hearing(mehta, dayStart.Add(75*time.Hour), "scheduled") // in three days
	f.hearing(mehta, weekEnd.Add(-time.Minute), "scheduled")  // 16 March 23:59
	f.hearing(mehta, weekEnd, "scheduled")                    // 17 March 00:00: outside
	f.hearing(mehta, dayStart.Add(-time.Hour), "scheduled")   // yesterday: outside
	f.hearing(mehta, dayStart.Add(48*time.Hour), "adjourned") // not scheduled
	f.hearing(mehta, dayStart.Add(48*time.Hour), "cancelled") // not scheduled
	f.hearing(mehta, dayStart.Add(10*time.Hour), "completed") // not scheduled
	// notifications_failed_previous_day = 2: deliveries failed now, existing before
	// today, attempted since the previous day's midnight.
	morning := prevStart.Add(8 * time.Hour)
	f.delivery(mehta, "failed", morning, morning.Add(time.Minute))                          // failed yesterday at 08:01
	f.delivery(mehta, "failed", morning.Add(-48*time.Hour), dayStart.Add(15*time.Minute))   // failing for days, retried at 00:15 today
	f.delivery(mehta, "sent", morning, morning.Add(time.Minute))                            // delivered
	f.delivery(mehta, "pending", morning, morning.Add(time.Minute))                         // SMTP down: will be retried, not failed
	f.delivery(mehta, "failed", morning.Add(-72*time.Hour), morning.Add(-48*time.Hour))     // given up two days ago
	f.delivery(mehta, "failed", dayStart.Add(10*time.Minute), dayStart.Add(11*time.Minute)) // today's failure
	f.delivery(iyer, "sent", morning, morning.Add(time.Minute))

	// Iyer resolves critical work within 12 hours, not the default 24: a critical task
	// done in 20 hours breached its SLA there. 1 of 2 within → 50.
	f.exec(`INSERT INTO sla_policies (tenant_id, priority, resolution_hours) VALUES ($1, 'critical', 12)`, iyer)
	f.task(iyer, completedTask("critical", noon, 20*time.Hour)) // breached (12 h)
	f.task(iyer, completedTask("critical", noon, 11*time.Hour)) // within
	f.legalCase(iyer, "active")
	f.task(iyer, task{status: "open", due: runNow.Add(48 * time.Hour)})

	res := f.run(runNow, kolkata)

	checkMetrics(t, "Mehta", f.snapshot(mehta, runDate), map[string]float64{
		MetricActiveCases:                    3,
		MetricOpenTasks:                      5,
		MetricOverdueTasks:                   2,
		MetricSLACompliancePercent:           57.14,
		MetricHearingsNext7Days:              3,
		MetricTasksCompletedPreviousDay:      7,
		MetricNotificationsFailedPreviousDay: 2,
	})
	checkMetrics(t, "Iyer", f.snapshot(iyer, runDate), map[string]float64{
		MetricActiveCases:               1,
		MetricOpenTasks:                 1,
		MetricSLACompliancePercent:      50,
		MetricTasksCompletedPreviousDay: 2,
	})
	checkMetrics(t, "Empty", f.snapshot(empty, runDate), zeros())

	want := map[string]any{"tenants_processed": int64(3), "snapshots_written": int64(3 * len(metricTypes)), "snapshot_date": runDate}
	if !maps.Equal(res, want) {
		t.Errorf("results = %v, want %v", res, want)
	}
}

// A firm with no cases, tasks, hearings or notifications gets a full row set of
// zeros, not missing rows (a chart of it shows a flat line, not a gap).
func TestEmptyTenantGetsZeros(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	empty := f.tenant("New Firm")

	res := f.run(runNow, kolkata)

	checkMetrics(t, "new firm", f.snapshot(empty, runDate), zeros())
	if res["tenants_processed"] != int64(1) || res["snapshots_written"] != int64(len(metricTypes)) {
		t.Errorf("results = %v, want 1 tenant and %d snapshots", res, len(metricTypes))
	}
}

// Running again on the same day (Run Now after the nightly run) replaces that day's
// values: the row count stays the same and the values follow the data.
func TestRerunSameDayReplaces(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	firm := f.tenant("Mehta & Associates")
	f.task(firm, task{status: "open", due: runNow.Add(time.Hour)})
	f.task(firm, task{status: "open", due: runNow.Add(time.Hour)})

	f.run(runNow, kolkata)
	if got := f.snapshot(firm, runDate)[MetricOpenTasks]; got != 2 {
		t.Fatalf("first run: open_tasks = %v, want 2", got)
	}
	rowsBefore := f.count(`SELECT count(*) FROM analytics_snapshots`)

	// The data changes during the day; an afternoon re-run sees one more open task,
	// and one of them now overdue.
	f.task(firm, task{status: "open", due: runNow.Add(2 * time.Hour)})
	later := runNow.Add(14 * time.Hour) // 14:30 IST, same date
	res := f.run(later, kolkata)

	if rows := f.count(`SELECT count(*) FROM analytics_snapshots`); rows != rowsBefore {
		t.Errorf("re-run changed the row count from %d to %d; it must replace, not add", rowsBefore, rows)
	}
	got := f.snapshot(firm, runDate)
	if got[MetricOpenTasks] != 3 || got[MetricOverdueTasks] != 3 {
		t.Errorf("after re-run open_tasks = %v, overdue_tasks = %v; want 3 and 3 (the afternoon's values)",
			got[MetricOpenTasks], got[MetricOverdueTasks])
	}
	if res["snapshot_date"] != runDate || res["snapshots_written"] != int64(len(metricTypes)) {
		t.Errorf("re-run results = %v, want snapshot_date %s and %d snapshots written (replaced)", res, runDate, len(metricTypes))
	}
}

// The next day's run adds a new set of rows and leaves the previous day's alone.
func TestNextDayAddsRows(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	firm := f.tenant("Mehta & Associates")
	f.task(firm, task{status: "open", due: runNow.Add(time.Hour)})

	f.run(runNow, kolkata)
	f.task(firm, task{status: "open"})
	res := f.run(runNow.Add(24*time.Hour), kolkata)

	if res["snapshot_date"] != "2026-03-11" {
		t.Errorf("next day's run dated %v, want 2026-03-11", res["snapshot_date"])
	}
	if rows := f.count(`SELECT count(*) FROM analytics_snapshots WHERE tenant_id = $1`, firm); rows != 2*len(metricTypes) {
		t.Errorf("after two days the firm has %d rows, want %d", rows, 2*len(metricTypes))
	}
	if got := f.snapshot(firm, runDate)[MetricOpenTasks]; got != 1 {
		t.Errorf("first day's open_tasks became %v after the next day's run, want it left at 1", got)
	}
	if got := f.snapshot(firm, "2026-03-11")[MetricOpenTasks]; got != 2 {
		t.Errorf("second day's open_tasks = %v, want 2", got)
	}
}

// A snapshot is dated by the calendar of the firm's time zone (here tenants.timezone's
// default, Asia/Kolkata), not UTC: the 00:30 IST run on 10 March happens on 9 March in
// UTC and must be dated 10 March. JOBS_TIMEZONE dates it only when the firm's zone is
// not a zone.
func TestSnapshotDateFollowsTheFirmsTimezone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		now      time.Time
		loc      *time.Location
		want     string
		firmZone string
	}{
		{"00:30 IST on 10 March is 19:00 UTC on 9 March", time.Date(2026, 3, 9, 19, 0, 0, 0, time.UTC), kolkata, "2026-03-10", ""},
		{"midnight IST exactly starts the new day", time.Date(2026, 3, 9, 18, 30, 0, 0, time.UTC), kolkata, "2026-03-10", ""},
		{"a second before midnight IST is still the old day", time.Date(2026, 3, 9, 18, 29, 59, 0, time.UTC), kolkata, "2026-03-09", ""},
		{"the same instant with JOBS_TIMEZONE=UTC: still the firm's day", time.Date(2026, 3, 9, 19, 0, 0, 0, time.UTC), time.UTC, "2026-03-10", ""},
		{"the firm's zone unknown, JOBS_TIMEZONE=UTC", time.Date(2026, 3, 9, 19, 0, 0, 0, time.UTC), time.UTC, "2026-03-09", "Mars/Olympus_Mons"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			firm := f.tenant("Mehta & Associates")
			if tc.firmZone != "" {
				f.exec(`UPDATE tenants SET timezone = $1 WHERE id = $2`, tc.firmZone, firm)
			}
			res := f.run(tc.now, tc.loc)
			if res["snapshot_date"] != tc.want {
				t.Errorf("results snapshot_date = %v, want %s", res["snapshot_date"], tc.want)
			}
			var dates []string
			rows, err := f.pool.Query(f.ctx, `SELECT DISTINCT snapshot_date::text FROM analytics_snapshots`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var d string
				if err := rows.Scan(&d); err != nil {
					t.Fatal(err)
				}
				dates = append(dates, d)
			}
			if !slices.Equal(dates, []string{tc.want}) {
				t.Errorf("rows dated %v, want only %s", dates, tc.want)
			}
		})
	}
}

// "The previous day" is the calendar day before, midnight to midnight in the zone, as
// instants; "now" and the seven days of hearings are bounded the same way. Each row
// sits a microsecond (PostgreSQL's resolution) inside or outside a bound; each firm
// holds one row, so a wrong bound names the case it got wrong.
func TestWindowBoundaries(t *testing.T) {
	t.Parallel()
	const µs = time.Microsecond
	f := newFixture(t)
	type boundaryCase struct {
		name   string
		add    func(tenant string)
		metric string
		want   float64
	}
	var cases []boundaryCase
	done := func(at time.Time) func(string) {
		return func(tn string) { f.task(tn, completedTask("low", at, time.Hour)) }
	}
	hearing := func(at time.Time) func(string) {
		return func(tn string) { f.hearing(tn, at, "scheduled") }
	}
	due := func(at time.Time) func(string) {
		return func(tn string) { f.task(tn, task{status: "open", due: at}) }
	}
	cases = append(cases,
		boundaryCase{"completed just before the previous day", done(prevStart.Add(-µs)), MetricTasksCompletedPreviousDay, 0},
		boundaryCase{"completed at the previous day's midnight", done(prevStart), MetricTasksCompletedPreviousDay, 1},
		boundaryCase{"completed at the previous day's last microsecond", done(dayStart.Add(-µs)), MetricTasksCompletedPreviousDay, 1},
		boundaryCase{"completed at today's midnight", done(dayStart), MetricTasksCompletedPreviousDay, 0},
		boundaryCase{"hearing just before today", hearing(dayStart.Add(-µs)), MetricHearingsNext7Days, 0},
		boundaryCase{"hearing at today's midnight", hearing(dayStart), MetricHearingsNext7Days, 1},
		boundaryCase{"hearing at the seventh day's last microsecond", hearing(weekEnd.Add(-µs)), MetricHearingsNext7Days, 1},
		boundaryCase{"hearing at the eighth day's midnight", hearing(weekEnd), MetricHearingsNext7Days, 0},
		boundaryCase{"task due a microsecond before now", due(runNow.Add(-µs)), MetricOverdueTasks, 1},
		boundaryCase{"task due at now", due(runNow), MetricOverdueTasks, 0},
	)
	failed := func(created, attempted time.Time) func(string) {
		return func(tn string) { f.delivery(tn, "failed", created, attempted) }
	}
	old := prevStart.Add(-72 * time.Hour)
	cases = append(cases,
		boundaryCase{"delivery last attempted just before the previous day", failed(old, prevStart.Add(-µs)), MetricNotificationsFailedPreviousDay, 0},
		boundaryCase{"delivery last attempted at the previous day's midnight", failed(old, prevStart), MetricNotificationsFailedPreviousDay, 1},
		boundaryCase{"delivery created at the previous day's last microsecond", failed(dayStart.Add(-µs), dayStart.Add(-µs)), MetricNotificationsFailedPreviousDay, 1},
		boundaryCase{"delivery created at today's midnight", failed(dayStart, dayStart), MetricNotificationsFailedPreviousDay, 0},
	)

	tenants := make([]string, len(cases))
	for i, c := range cases {
		tenants[i] = f.tenant(c.name)
		c.add(tenants[i])
	}
	f.run(runNow, kolkata)
	for i, c := range cases {
		if got := f.snapshot(tenants[i], runDate)[c.metric]; got != c.want {
			t.Errorf("%s: %s = %v, want %v", c.name, c.metric, got, c.want)
		}
	}
}

// Tried: a firm in New York (tenants.timezone) on 9 March 2026, the day after its
// clocks went forward (8 March lasted 23 hours), with tasks completed a microsecond
// either side of each of its midnights, and a firm in Kolkata in the same run.
// Must hold: "the previous day" is the New York firm's calendar day, 23 hours long, not
// 24 hours and not Kolkata's day; the Kolkata firm's bounds are its own.
func TestWindowFollowsEachFirmsWallClock(t *testing.T) {
	t.Parallel()
	const µs = time.Microsecond
	ny := mustLoad("America/New_York")
	f := newFixture(t)
	nyFirm, kolFirm := f.tenant("Hudson GST Desk"), f.tenant("Mehta & Associates")
	f.exec(`UPDATE tenants SET timezone = 'America/New_York' WHERE id = $1`, nyFirm)
	prev := time.Date(2026, 3, 8, 0, 0, 0, 0, ny) // 05:00 UTC: midnight EST
	day := time.Date(2026, 3, 9, 0, 0, 0, 0, ny)  // 04:00 UTC: midnight EDT
	if got := day.Sub(prev); got != 23*time.Hour {
		t.Fatalf("8 March in New York lasted %v, want 23h", got)
	}
	for _, at := range []time.Time{prev.Add(-µs), prev, day.Add(-µs), day} {
		f.task(nyFirm, completedTask("low", at, time.Hour))
	}
	// In Kolkata (no daylight saving) the previous day of 9 March is 8 March 00:00 to
	// 9 March 00:00 IST; of these only the one at New York's midnight EST (10:30 IST on
	// 8 March) falls in it, with one of its own.
	f.task(kolFirm, completedTask("low", prev, time.Hour))
	f.task(kolFirm, completedTask("low", time.Date(2026, 3, 9, 0, 0, 0, 0, kolkata).Add(-µs), time.Hour))

	res := f.run(time.Date(2026, 3, 9, 0, 30, 0, 0, ny), kolkata)
	if res["snapshot_date"] != "2026-03-09" {
		t.Errorf("snapshot_date = %v, want 2026-03-09 for both firms", res["snapshot_date"])
	}
	if got := f.snapshot(nyFirm, "2026-03-09")[MetricTasksCompletedPreviousDay]; got != 2 {
		t.Errorf("New York: %v tasks completed on its 23-hour 8 March, want 2 (at its midnight EST and just before its midnight EDT)", got)
	}
	if got := f.snapshot(kolFirm, "2026-03-09")[MetricTasksCompletedPreviousDay]; got != 2 {
		t.Errorf("Kolkata: %v tasks completed on its 8 March, want 2", got)
	}
}

// Tried: one run for three firms, in Kolkata, Dubai and New York, at 20:00 UTC on 9
// March (01:30 and 00:00 on 10 March in Kolkata and Dubai, 16:00 on 9 March in New
// York), and a firm whose zone is not one.
// Must hold: each firm's snapshot is dated by its own calendar in the one statement;
// the unknown zone is dated by JOBS_TIMEZONE; each slice names its firm's date; the
// run's totals name the span of dates.
func TestSnapshotDateInEachFirmsZone(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	zones := map[string]string{"Asia/Kolkata": "2026-03-10", "Asia/Dubai": "2026-03-10", "America/New_York": "2026-03-09", "Mars/Olympus_Mons": "2026-03-09"}
	firms := map[string]string{}
	for zone := range zones {
		firms[zone] = f.tenant("Firm in " + zone)
		f.exec(`UPDATE tenants SET timezone = $1 WHERE id = $2`, zone, firms[zone])
	}
	jobs, err := Jobs(jobservice.Deps{Pool: f.pool, Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := jobs[catalog.CaptureAnalyticsSnapshot](f.ctx, worker.Run{ID: "test", Now: time.Date(2026, 3, 9, 20, 0, 0, 0, time.UTC), Scope: events.ScopeAll()})
	if err != nil {
		t.Fatal(err)
	}
	for zone, date := range zones {
		if n := f.count(`SELECT count(*) FROM analytics_snapshots WHERE tenant_id = $1 AND snapshot_date = $2::date`, firms[zone], date); n != len(metricTypes) {
			t.Errorf("firm in %s: %d metrics dated %s, want %d", zone, n, date, len(metricTypes))
		}
	}
	for _, sl := range rep.Tenants {
		for zone, id := range firms {
			if sl.TenantID == id && sl.Results["snapshot_date"] != zones[zone] {
				t.Errorf("firm in %s: its slice is dated %v, want %s", zone, sl.Results["snapshot_date"], zones[zone])
			}
		}
	}
	if got := rep.Results["snapshot_date"]; got != "2026-03-09 to 2026-03-10" {
		t.Errorf("the run's snapshot_date = %v, want the span 2026-03-09 to 2026-03-10", got)
	}
}
