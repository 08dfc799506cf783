package main

import (
	"strings"
	"testing"
)

const sample = `goos: linux
pkg: github.com/lexhq/gstjobs/services/gateway
BenchmarkIngest/linger=0s-2   	       1	1002735493 ns/op	     65149 copy_rows/s	     13061 insert_loop_rows/s	     19945 results/s	         0.3062 x_copy
--- BENCH: BenchmarkIngest/linger=0s-2
    ingest_bench_test.go:77: ingest 19945 results/s
BenchmarkDashboards/dashboards=10000: 10000 dashboards of one firm; a bare gorilla hub beside
BenchmarkJobs/1M/check_first-2                       	       1	2241028318 ns/op	     67828 backlog	      1241 ms/run	177.1 scan_ms
BenchmarkHearingReminders-2   	       1	3900000000 ns/op	       388.3 counts_ms	       266.0 counts_totals_only_ms	 1300 copy_ms
PASS
`

// What is tried: a bench output with log lines between results (one that starts with
// a benchmark's name and a number), a target missed
// (ingest below 20,000/s and 0.4× COPY), targets met (the SLA first run within 1.5 s,
// reminders within 4 s) and measures absent. What must hold: each row shows its
// value, its baseline and their ratio, each target its verdict, and an absent
// measure reads "not measured", never met.
func TestTableShowsValueBaselineRatioAndTarget(t *testing.T) {
	r, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if got := r["BenchmarkIngest/linger=0s"]["results/s"]; got != 19945 {
		t.Fatalf("results/s = %v; want 19945 (the -2 suffix stripped, the log line skipped)", got)
	}
	var out strings.Builder
	write(&out, r, measures, "1.00 2.00 3.00 1/200 300", "4.00 5.00 6.00 2/200 301")
	table := out.String()
	for _, want := range []string{
		"| ingest into audit_log, results/s | 19,945 /s | COPY 65,149 rows/s | 0.306× | ≥ 20,000 ✘, ≥ 0.4× ✘ |",
		"| SLA check, first run, 1M tasks (fires 20,000 rules) | 1,241 ms | bare scan 177 ms | 7.01× | ≤ 1,500 ✔ |",
		"| hearing reminders, 100k hearings | 3.90 s | COPY of the rows it writes 1.30 s | 3.00× | ≤ 4.00 ✔ |",
		"| deadline alerts, 1M tasks | not measured (BenchmarkDeadlineAlerts/tasks=1000000 ns/op) | | | ≤ 3.00 |",
		"targets met: 2, missed: 2;",
		"load average (1, 5, 15 min) before the run: 1.00 2.00 3.00; after: 4.00 5.00 6.00",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("the table lacks %q:\n%s", want, table)
		}
	}
}

// What is tried: a result line whose value is not a number. What must hold: a clear
// error naming the benchmark, not a table with a wrong figure.
func TestAMalformedLineIsAnError(t *testing.T) {
	_, err := parse(strings.NewReader("BenchmarkX-2  1  12 ns/op  abc scan_ms\n"))
	if err == nil || !strings.Contains(err.Error(), "BenchmarkX") {
		t.Fatalf("err = %v; want one naming BenchmarkX", err)
	}
}
