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
