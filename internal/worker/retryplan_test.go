package worker

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/lexhq/gstjobs/internal/catalog"
)

// A daily job's failed run is tried four times in all (after 1, 5 and 15 minutes); a
// panic, a refused statement, and a success are not retried.
func TestRetryPlan(t *testing.T) {
	daily, _ := catalog.Lookup(catalog.SendHearingReminders)
	start := time.Date(2026, 3, 10, 2, 30, 0, 0, time.UTC)
	refused := Fail("Database connection failed", syscall.ECONNREFUSED)
	now := start
	run := Run{ID: "r1", Job: daily, Now: start, SeriesAttempt: 1, SeriesStart: start}
	for attempt, wait := range map[int]time.Duration{2: time.Minute, 3: 5 * time.Minute, 4: 15 * time.Minute} {
		run.SeriesAttempt = attempt - 1
		p := retryPlan(daily, run, refused, now)
		if p == nil || p.Attempt != attempt || !p.At.Equal(now.Add(wait)) || p.Of != "r1" {
			t.Errorf("after attempt %d: %+v, want attempt %d in %s", attempt-1, p, attempt, wait)
		}
	}
	run.SeriesAttempt = 4
	if p := retryPlan(daily, run, refused, now); p != nil {
		t.Errorf("after attempt 4: %+v, want no fifth", p)
	}
	run.SeriesAttempt = 1
	for name, err := range map[string]error{
		"success":           nil,
		"a panic":           &Failure{Message: "Job panicked", Err: errors.New("boom"), Panicked: true},
		"refused statement": Fail("Database query failed", errors.New("syntax error")),
	} {
		if p := retryPlan(daily, run, err, now); p != nil {
			t.Errorf("%s is retried: %+v", name, p)
		}
	}
	if p := retryPlan(daily, run, FailTemporary("E-mail could not be sent", errors.New("smtp down")), now); p == nil {
		t.Errorf("an SMTP outage marked temporary is not retried")
	}
}
