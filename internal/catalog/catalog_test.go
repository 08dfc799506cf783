package catalog

import (
	"testing"
	"time"
)

func TestCatalogMatchesContract(t *testing.T) {
	want := map[string]struct {
		title, schedule string
		maxAge, stale   time.Duration
	}{
		CheckSLAAndOverdue:       {"SLA & Overdue Check", "*/15 * * * *", 15 * time.Minute, 30 * time.Minute},
		SendHearingReminders:     {"Hearing Reminders", "0 8 * * *", 24 * time.Hour, 36 * time.Hour},
		CaptureAnalyticsSnapshot: {"Analytics Snapshot", "30 0 * * *", 24 * time.Hour, 36 * time.Hour},
		CheckUpcomingDeadlines:   {"Deadline Alerts", "0 7 * * *", 24 * time.Hour, 36 * time.Hour},
		AutomationHealthCheck:    {"Automation Health Check", "0 6 * * *", 24 * time.Hour, 36 * time.Hour},
	}
	if got := len(All()); got != len(want) {
		t.Fatalf("catalog has %d jobs, contract pins %d", got, len(want))
	}
	for _, j := range All() {
		w, ok := want[j.Name]
		if !ok {
			t.Errorf("job %q is not in the contract", j.Name)
			continue
		}
		if j.Title != w.title || j.Schedule != w.schedule || j.MaxAge != w.maxAge || j.StaleAfter != w.stale {
			t.Errorf("job %s = %q %q %v %v, contract says %q %q %v %v", j.Name, j.Title, j.Schedule, j.MaxAge, j.StaleAfter, w.title, w.schedule, w.maxAge, w.stale)
		}
		if _, err := ParseSchedule(j.Schedule); err != nil {
			t.Errorf("job %s: %v", j.Name, err)
		}
		if j.Timeout <= 0 || len(j.ResultKeys) == 0 {
			t.Errorf("job %s needs a timeout and result keys", j.Name)
		}
	}
}

func TestDescribe(t *testing.T) {
	for expr, want := range map[string]string{
		"*/15 * * * *": "Every 15 minutes",
		"0 8 * * *":    "Daily at 8:00 AM",
		"30 0 * * *":   "Daily at 12:30 AM",
		"0 18 * * *":   "Daily at 6:00 PM",
		"0 12 * * *":   "Daily at 12:00 PM",
		"0 * * * *":    "Every hour",
		"0 9 * * 1-5":  "Weekdays at 9:00 AM",
		"0 9 * * 1":    "Every Monday at 9:00 AM",
		"0 9 1 * *":    "Cron 0 9 1 * *",
	} {
		if got := Describe(expr); got != want {
			t.Errorf("Describe(%q) = %q, want %q", expr, got, want)
		}
	}
}

func TestNextAndPrevInKolkata(t *testing.T) {
	loc, err := LoadTimezone("")
	if err != nil {
		t.Fatal(err)
	}
	// 02:29 UTC is 07:59 IST: the 08:00 IST reminder slot is one minute away, at 02:30 UTC.
	now := time.Date(2026, 3, 10, 2, 29, 0, 0, time.UTC)
	next, err := Next("0 8 * * *", loc, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 3, 10, 2, 30, 0, 0, time.UTC); !next.Equal(want) {
		t.Errorf("Next = %v, want %v", next.UTC(), want)
	}
	prev, ok, err := Prev("0 8 * * *", loc, now, 48*time.Hour)
	if err != nil || !ok {
		t.Fatalf("Prev: ok=%v err=%v", ok, err)
	}
	if want := time.Date(2026, 3, 9, 2, 30, 0, 0, time.UTC); !prev.Equal(want) {
		t.Errorf("Prev = %v, want %v", prev.UTC(), want)
	}
	// A slot exactly at t counts as at-or-before t.
	prev, ok, _ = Prev("*/15 * * * *", loc, time.Date(2026, 3, 10, 2, 30, 0, 0, time.UTC), time.Hour)
	if !ok || !prev.Equal(time.Date(2026, 3, 10, 2, 30, 0, 0, time.UTC)) {
		t.Errorf("Prev at a slot instant = %v ok=%v", prev, ok)
	}
	if _, ok, _ := Prev("0 8 * * *", loc, now, time.Hour); ok {
		t.Error("Prev found a slot outside the lookback window")
	}
	if _, err := LoadTimezone("Mars/Olympus"); err == nil {
		t.Error("an unknown time zone must be a configuration error")
	}
}

// Every job describes every key it reports, in words for people: the contract's keys
// among them, one figure for the toast, the words its card summary needs.
func TestEveryResultKeyIsDescribed(t *testing.T) {
	for _, j := range All() {
		if j.Tip == "" || len(j.About) == 0 || j.RunNowWhen == "" {
			t.Errorf("job %s needs a tip, an explanation and when Run Now helps", j.Name)
		}
		seen := map[string]bool{}
		toasts := 0
		for _, r := range j.Results {
			if seen[r.Key] {
				t.Errorf("job %s describes %s twice", j.Name, r.Key)
			}
			seen[r.Key] = true
			if r.Label == "" || r.Meaning == "" {
				t.Errorf("job %s key %s needs a label and a meaning", j.Name, r.Key)
			}
			switch r.Show {
			case "", ShowLead:
			case ShowAlways, ShowNonZero, ShowFallback:
				if r.Words == "" {
					t.Errorf("job %s key %s is in the summary without words", j.Name, r.Key)
				}
			default:
				t.Errorf("job %s key %s: unknown Show %q", j.Name, r.Key, r.Show)
			}
			if r.Toast != "" {
				toasts++
			}
		}
		if toasts != 1 {
			t.Errorf("job %s has %d toast figures, want 1", j.Name, toasts)
		}
		for _, k := range j.ResultKeys {
			if !seen[k] {
				t.Errorf("job %s: contract key %s is not described in Results", j.Name, k)
			}
		}
		if _, ok := j.ResultInfo("tenants_skipped"); !ok {
			t.Errorf("job %s: the worker's tenants_skipped is not described", j.Name)
		}
	}
}

// Tried: the times of day a firm's admin may type, and the schedules of the catalog.
// Must hold: HH:MM on the 24-hour clock is accepted and written as HH:MM; anything else
// is refused with the expected form; a daily schedule and its time of day convert both
// ways; only once-a-day-every-day schedules have a time of day.
func TestTimeOfDay(t *testing.T) {
	for in, want := range map[string]string{"07:30": "07:30", "7:30": "07:30", "00:00": "00:00", "23:59": "23:59", " 18:05 ": "18:05"} {
		got, err := ParseAt(in)
		if err != nil || got != want {
			t.Errorf("ParseAt(%q) = %q, %v; want %q", in, got, err, want)
		}
		if at, ok := DailyAt(DailyCron(got)); !ok || at != want {
			t.Errorf("DailyAt(DailyCron(%q)) = %q, %v", got, at, ok)
		}
	}
	for _, in := range []string{"", "7", "24:00", "07:60", "7:5", "07:30:00", "-1:30", "seven", "07.30", "007:30"} {
		if got, err := ParseAt(in); err == nil {
			t.Errorf("ParseAt(%q) = %q, want an error", in, got)
		}
	}
	if got := Describe(DailyCron("07:30")); got != "Daily at 7:30 AM" {
		t.Errorf("Describe(DailyCron(07:30)) = %q", got)
	}
	for expr, want := range map[string]string{"0 8 * * *": "08:00", "30 0 * * *": "00:30", "*/15 * * * *": "", "0 9 * * 1-5": "", "0 8 1 * *": "", "0 8,9 * * *": ""} {
		at, ok := DailyAt(expr)
		if at != want || ok != (want != "") {
			t.Errorf("DailyAt(%q) = %q, %v; want %q", expr, at, ok, want)
		}
	}
	for _, j := range All() {
		_, daily := DailyAt(j.Schedule)
		if j.FirmHours != daily {
			t.Errorf("%s: FirmHours %v, but its schedule %q daily: %v", j.Name, j.FirmHours, j.Schedule, daily)
		}
	}
}

func TestSummarize(t *testing.T) {
	sla, _ := Lookup(CheckSLAAndOverdue)
	hearings, _ := Lookup(SendHearingReminders)
	health, _ := Lookup(AutomationHealthCheck)
	analytics, _ := Lookup(CaptureAnalyticsSnapshot)
	deadlines, _ := Lookup(CheckUpcomingDeadlines)
	for _, c := range []struct {
		job     Job
		results map[string]any
		want    string
	}{
		{sla, map[string]any{"overdue_tasks": 7.0, "sla_violations": 7.0, "automation_rules_triggered": 3.0, "automation_failures": 0.0}, "7 overdue · 7 SLA breaches · 3 rules fired"},
		{sla, map[string]any{"overdue_tasks": int64(1), "sla_violations": int64(1), "automation_rules_triggered": int64(1), "automation_failures": int64(1)}, "1 overdue · 1 SLA breach · 1 rule fired · 1 could not act"},
		{sla, map[string]any{"overdue_tasks": 5}, "5 overdue"},
		{hearings, map[string]any{"hearings_processed": 4.0, "notifications_sent": 6.0, "failed_notifications": 1.0, "in_app_sent": 6.0}, "4 hearings · 6 reminders sent · 1 failed"},
		{hearings, map[string]any{"hearings_processed": 1.0, "notifications_sent": 2.0, "failed_notifications": 0.0}, "1 hearing · 2 reminders sent"},
		{health, map[string]any{"health": "degraded", "rules_checked": 4.0, "unhealthy_rules": 2.0, "stale_job_count": 0.0}, "degraded: 2 rules failing"},
		{health, map[string]any{"health": "unhealthy", "rules_checked": 4.0, "unhealthy_rules": 1.0, "stale_job_count": 2.0}, "unhealthy: 1 rule failing · 2 jobs stale"},
		{health, map[string]any{"health": "healthy", "rules_checked": 1.0, "unhealthy_rules": 0.0, "stale_job_count": 0.0}, "healthy: 1 rule checked"},
		{analytics, map[string]any{"tenants_processed": 1.0, "snapshots_written": 7.0, "snapshot_date": "2026-03-10"}, "7 metrics captured"},
		{deadlines, map[string]any{"deadlines_found": 9.0, "alerts_sent": 8.0, "failed_alerts": 2.0}, "9 deadlines · 8 alerts sent · 2 failed"},
		{sla, nil, ""},
	} {
		if got := c.job.Summarize(c.results); got != c.want {
			t.Errorf("%s.Summarize(%v) = %q, want %q", c.job.Name, c.results, got, c.want)
		}
	}
}

// Tried: 08:00 every day in New York across the change to daylight saving time (8
// March 2026) and back (1 November 2026).
// Must hold: the slot stays at 08:00 on the wall clock, so its instant moves by an hour.
func TestDailySlotAcrossDaylightSaving(t *testing.T) {
	ny, err := LoadTimezone("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ after, want string }{
		{"2026-03-07T12:00:00Z", "2026-03-07T13:00:00Z"}, // EST, UTC-5
		{"2026-03-07T13:00:00Z", "2026-03-08T12:00:00Z"}, // EDT from 8 March, UTC-4
		{"2026-10-31T12:00:00Z", "2026-11-01T13:00:00Z"}, // EST again from 1 November
	} {
		after, _ := time.Parse(time.RFC3339, tc.after)
		next, err := Next("0 8 * * *", ny, after)
		if err != nil {
			t.Fatal(err)
		}
		if got := next.UTC().Format(time.RFC3339); got != tc.want {
			t.Errorf("next 08:00 New York after %s = %s, want %s", tc.after, got, tc.want)
		}
		if h, m, _ := next.In(ny).Clock(); h != 8 || m != 0 {
			t.Errorf("slot %s is %02d:%02d in New York, want 08:00", next, h, m)
		}
	}
}
