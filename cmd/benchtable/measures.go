package main

// The measures make bench reports, with the benchmarks and metrics they come from.
// A benchmark renamed or a metric dropped shows as "not measured", never as met.

const (
	nsToS  = 1e-9
	nsToMs = 1e-6
	msToS  = 1e-3
	usToMs = 1e-3
)

func atMost(limit float64) target      { return target{Max: true, Limit: limit} }
func atLeast(limit float64) target     { return target{Limit: limit} }
func ratioAtMost(r float64) target     { return target{OnRatio: true, Max: true, Limit: r} }
func ratioAtLeast(r float64) target    { return target{OnRatio: true, Limit: r} }
func ms(bench, unit string) ref        { return ref{Bench: bench, Unit: unit, Show: "ms"} }
func nsAsS(bench string) ref           { return ref{Bench: bench, Unit: "ns/op", Scale: nsToS, Show: "s"} }
func msAsS(bench, unit string) ref     { return ref{Bench: bench, Unit: unit, Scale: msToS, Show: "s"} }
func labelled(r ref, label string) ref { r.Label = label; return r }

const (
	ingest     = "BenchmarkIngest/linger=0s"
	eventPath  = "BenchmarkEventPath/rate="
	dash10k    = "BenchmarkDashboards/dashboards=10000"
	dashFirms  = "BenchmarkDashboards/firms=1000"
	slaJobs    = "BenchmarkJobs/"
	hearings   = "BenchmarkHearingReminders"
	deadlines  = "BenchmarkDeadlineAlerts/tasks="
	capture    = "BenchmarkCapture/tenants=1000/tasks="
	tickerDay  = "BenchmarkTickerDay/firms=1000/pairs="
	triggerRun = "BenchmarkTriggerToResult"
)

var measures = []measure{
	// Issue 9: the gateway's ingest, the event path, the dashboards.
	{What: "ingest into audit_log, results/s", Value: ref{Bench: ingest, Unit: "results/s", Show: "/s"},
		Baseline: ref{Bench: ingest, Unit: "copy_rows/s", Show: "rows/s", Label: "COPY"}, Targets: []target{atLeast(20000), ratioAtLeast(0.4)}},
	{What: "Run Now → result frame, 1/s, p50", Value: ms(eventPath+"1/s", "p50_ms"),
		Baseline: labelled(ms(eventPath+"1/s", "roundtrip_p50_ms"), "NATS round trip p50"), Targets: []target{atMost(3), ratioAtMost(15)}},
	{What: "Run Now → result frame, 1/s, p99", Value: ms(eventPath+"1/s", "p99_ms"),
		Baseline: labelled(ms(eventPath+"1/s", "roundtrip_p50_ms"), "NATS round trip p50"), Targets: []target{atMost(10)}},
	{What: "result → audit_log row, 1/s, p99", Value: ms(eventPath+"1/s", "row_p99_ms"), Targets: []target{atMost(15)}},
	{What: "Run Now → result frame, 10/s, p50", Value: ms(eventPath+"10/s", "p50_ms"),
		Baseline: labelled(ms(eventPath+"10/s", "roundtrip_p50_ms"), "NATS round trip p50")},
	{What: "Run Now → result frame, 10/s, p99", Value: ms(eventPath+"10/s", "p99_ms"),
		Baseline: labelled(ms(eventPath+"10/s", "roundtrip_p50_ms"), "NATS round trip p50")},
	{What: "Run Now → result frame, 100/s, p50", Value: ms(eventPath+"100/s", "p50_ms"),
		Baseline: labelled(ms(eventPath+"100/s", "roundtrip_p50_ms"), "NATS round trip p50")},
	{What: "Run Now → result frame, 100/s, p99", Value: ms(eventPath+"100/s", "p99_ms"),
		Baseline: labelled(ms(eventPath+"100/s", "roundtrip_p50_ms"), "NATS round trip p50")},
	{What: "trigger → result in the worker runtime, empty job", Value: ref{Bench: triggerRun, Unit: "ns/op", Scale: nsToMs, Show: "ms"},
		Baseline: ref{Bench: triggerRun, Unit: "roundtrip_µs", Scale: usToMs, Show: "ms", Label: "NATS round trip"}},
	{What: "10,000 dashboards: 1,000 connecting at once", Value: ms(dash10k, "connect1000_ms"),
		Baseline: labelled(ms(dash10k, "bare_connect1000_ms"), "bare gorilla hub"), Targets: []target{atMost(500)}},
	{What: "10,000 dashboards: memory per idle socket", Value: ref{Bench: dash10k, Unit: "KB/conn", Show: "KB"},
		Baseline: ref{Bench: dash10k, Unit: "bare_KB/conn", Show: "KB", Label: "bare gorilla hub"}, Targets: []target{atMost(20)}},
	{What: "10,000 dashboards: one result to all, p99", Value: ms(dash10k, "fanout_p99_ms"),
		Baseline: labelled(ms(dash10k, "bare_fanout_p99_ms"), "bare gorilla hub"), Targets: []target{atMost(100)}},
	{What: "1,000 dashboards of 1,000 firms: connecting at once", Value: ms(dashFirms, "connect1000firms_ms"),
		Baseline: labelled(ms(dashFirms, "connect1000_one_firm_ms"), "of one firm")},
	{What: "1,000 dashboards of 1,000 firms: one result to all, p99", Value: ms(dashFirms, "fanout_p99_ms"),
		Baseline: labelled(ms(dashFirms, "one_firm_fanout_p99_ms"), "of one firm")},

	// Issue 9 item 4 and issue 7 item 8: the jobs, and what the per-firm slices add.
	{What: "SLA check, first run, 1M tasks (fires 20,000 rules)", Value: ms(slaJobs+"1M/check_first", "ms/run"),
		Baseline: labelled(ms(slaJobs+"1M/check_first", "scan_ms"), "bare scan"), Targets: []target{atMost(1500)}},
	{What: "SLA check, steady, 1M tasks, 1,000 firms", Value: ms(slaJobs+"1M/check_steady", "ms/run"),
		Baseline: labelled(ms(slaJobs+"1M/check_steady", "totals_only_ms"), "totals only"), Targets: []target{ratioAtMost(1.5)}},
	{What: "SLA check, steady, 10k tasks, 1,000 firms", Value: ms(slaJobs+"10k/check_steady", "ms/run"),
		Baseline: labelled(ms(slaJobs+"10k/check_steady", "totals_only_ms"), "totals only"), Targets: []target{ratioAtMost(1.5)}},
	{What: "SLA check, steady, 1M tasks, against a scan", Value: ms(slaJobs+"1M/check_steady", "ms/run"),
		Baseline: labelled(ms(slaJobs+"1M/check_steady", "scan_ms"), "bare scan")},
	{What: "automation health check, 1M tasks", Value: ms(slaJobs+"1M/health", "ms/run"),
		Baseline: labelled(ms(slaJobs+"1M/health", "scan_ms"), "bare scan")},
	{What: "hearing reminders, 100k hearings", Value: nsAsS(hearings),
		Baseline: labelled(msAsS(hearings, "copy_ms"), "COPY of the rows it writes"), Targets: []target{atMost(4)}},
	{What: "hearing reminders: the firms' counts timed alone, per firm vs totals", Value: ms(hearings, "counts_ms"),
		Baseline: labelled(ms(hearings, "counts_totals_only_ms"), "totals only")},
	{What: "deadline alerts, 1M tasks", Value: nsAsS(deadlines + "1000000"),
		Baseline: labelled(msAsS(deadlines+"1000000", "copy_ms"), "COPY of the rows it writes"), Targets: []target{atMost(3)}},
	{What: "deadline alerts: the firms' counts timed alone, per firm vs totals", Value: ms(deadlines+"1000000", "counts_ms"),
		Baseline: labelled(ms(deadlines+"1000000", "counts_totals_only_ms"), "totals only")},
	{What: "analytics snapshot, 1M tasks, 1,000 firms", Value: ref{Bench: capture + "1M/nightly", Unit: "ns/op", Scale: nsToMs, Show: "ms"},
		Baseline: ref{Bench: capture + "1M/nightly_totals_only", Unit: "ns/op", Scale: nsToMs, Show: "ms", Label: "totals only"}, Targets: []target{ratioAtMost(1.5)}},
	{What: "analytics snapshot, 10k tasks, 1,000 firms", Value: ref{Bench: capture + "10k/nightly", Unit: "ns/op", Scale: nsToMs, Show: "ms"},
		Baseline: ref{Bench: capture + "10k/nightly_totals_only", Unit: "ns/op", Scale: nsToMs, Show: "ms", Label: "totals only"}, Targets: []target{ratioAtMost(1.5)}},

	// Issue 12 item 4: 1,000 firms over 50 (zone, time of day) pairs against one schedule.
	{What: "firms' own hours: ticker work per minute, 50 pairs", Value: ref{Bench: tickerDay + "50", Unit: "work_us/minute", Show: "µs"},
		Baseline: ref{Bench: tickerDay + "1", Unit: "work_us/minute", Show: "µs", Label: "one schedule"}, Targets: []target{ratioAtMost(1.5)}},
	{What: "firms' own hours: hearing reminders' day, 50 groups", Value: ms("BenchmarkFirmHoursHearingReminders", "groups_ms"),
		Baseline: labelled(ms("BenchmarkFirmHoursHearingReminders", "single_ms"), "one schedule"), Targets: []target{ratioAtMost(1.5)}},
	{What: "firms' own hours: deadline alerts' day, 1M tasks, 50 groups", Value: ms("BenchmarkFirmHoursDeadlineAlerts/tasks=1000000", "groups_ms"),
		Baseline: labelled(ms("BenchmarkFirmHoursDeadlineAlerts/tasks=1000000", "single_ms"), "one schedule"), Targets: []target{ratioAtMost(1.5)}},
	{What: "firms' own hours: analytics' day, 1M tasks, 50 groups", Value: ms(capture+"1M/firm_hours", "groups_ms"),
		Baseline: labelled(ms(capture+"1M/firm_hours", "single_ms"), "one schedule"), Targets: []target{ratioAtMost(1.5)}},
	{What: "firms' own hours: health check's day, 1M tasks, 50 groups", Value: ms(slaJobs+"1M/health_firm_hours", "groups_ms"),
		Baseline: labelled(ms(slaJobs+"1M/health_firm_hours", "single_ms"), "one schedule"), Targets: []target{ratioAtMost(1.5)}},
}
