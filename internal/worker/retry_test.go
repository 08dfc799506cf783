package worker_test

import (
	"context"
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/natstest"
	"github.com/lexhq/gstjobs/internal/worker"
)

// sqlError is a statement PostgreSQL refused, as pgconn reports it.
type sqlError struct{ state string }

func (e sqlError) Error() string {
	return "ERROR: relation \"taskz\" does not exist (SQLSTATE " + e.state + ")"
}
func (e sqlError) SQLState() string { return e.state }

// What is tried: a run that fails because its database refuses the connection, then
// succeeds; a run that fails on a statement the database can never run; a run that
// keeps failing for a temporary reason.
// What must hold: the temporary failure says when it is retried (attempt 2 of 4, a
// minute later), the retry runs then as its own run naming the series and succeeds;
// the permanent failure is not retried; a Run Now while a retry waits starts the retry
// at once instead of adding a run; retries stop once the job's expected max age from
// the first attempt would pass (the SLA check's is 15 minutes: its next slot takes
// over after attempts 2 and 3).
func TestFailedRunsAreRetried(t *testing.T) {
	srv := natstest.Start(t)
	results := natstest.Collect(t, srv.NC, events.ResultSubject(job))
	clock := clockwork.NewFakeClockAt(time.Date(2026, 3, 10, 2, 30, 0, 0, time.UTC))
	var mode atomic.Value
	mode.Store("refused-then-ok")
	var calls atomic.Int32
	startWorker(t, srv.URL, func(ctx context.Context, run worker.Run) (worker.Report, error) {
		n := calls.Add(1)
		switch mode.Load() {
		case "refused-then-ok":
			if n == 1 {
				return worker.Report{}, worker.Fail("Database connection failed", &netOpError{})
			}
			return worker.Report{Results: map[string]any{"overdue_tasks": 2}}, nil
		case "bad-sql":
			return worker.Report{}, worker.Fail("Database query failed", sqlError{"42P01"})
		default:
			return worker.Report{}, worker.Fail("Database connection failed", syscall.ECONNREFUSED)
		}
	}, func(c *worker.Config) { c.Clock, c.SweepEvery = clock, 20*time.Millisecond })

	trigger(t, srv.JS, `{"reason":"first"}`)
	failed := nextResult(t, results)
	if failed.Status != events.StatusFailed || failed.NextRetry == nil || failed.NextRetry.Attempt != 2 || failed.NextRetry.MaxAttempts != 4 ||
		!failed.NextRetry.At.Equal(clock.Now().Add(time.Minute)) {
		t.Fatalf("a refused connection: %+v, next retry %+v; want failed, retried as attempt 2 of 4 in a minute", failed, failed.NextRetry)
	}
	noMore(t, results, "result before the retry's time")
	clock.Advance(time.Minute)
	retried := nextResult(t, results)
	if retried.Status != events.StatusSuccess || retried.RetryOf != failed.RunID || retried.SeriesAttempt != 2 || retried.Trigger != events.KindRetry ||
		retried.RunID == failed.RunID || retried.Reason != "first" {
		t.Fatalf("the retry: %+v; want a run of its own, attempt 2 of %s, succeeding, with the first run's reason", retried, failed.RunID)
	}

	mode.Store("bad-sql")
	trigger(t, srv.JS, `{}`)
	if r := nextResult(t, results); r.Status != events.StatusFailed || r.NextRetry != nil {
		t.Fatalf("a statement the database refuses: %+v; want failed and not retried", r)
	}

	mode.Store("always-refused")
	trigger(t, srv.JS, `{"reason":"keeps failing"}`)
	first := nextResult(t, results)
	if first.NextRetry == nil {
		t.Fatalf("a refused connection is not retried: %+v", first)
	}
	// A Run Now while the retry waits starts it now.
	trigger(t, srv.JS, `{"reason":"now please"}`)
	second := nextResult(t, results)
	if second.RetryOf != first.RunID || second.SeriesAttempt != 2 || len(second.Triggers) != 2 {
		t.Fatalf("Run Now while a retry waits: %+v; want it to be the retry (attempt 2) with both triggers", second)
	}
	if second.NextRetry == nil || second.NextRetry.Attempt != 3 || !second.NextRetry.At.Equal(clock.Now().Add(5*time.Minute)) {
		t.Fatalf("attempt 2 failed: next retry %+v, want attempt 3 five minutes later", second.NextRetry)
	}
	clock.Advance(5 * time.Minute)
	third := nextResult(t, results)
	if third.SeriesAttempt != 3 || third.NextRetry != nil {
		t.Fatalf("attempt 3: %+v; want no attempt 4: 15 minutes more would be past the SLA check's 15-minute max age", third)
	}
	clock.Advance(time.Hour)
	noMore(t, results, "an attempt past the job's max age")
}

// netOpError is a connection refused, as the net package reports it.
type netOpError struct{}

func (*netOpError) Error() string   { return "dial tcp 127.0.0.1:5433: connect: connection refused" }
func (*netOpError) Timeout() bool   { return false }
func (*netOpError) Temporary() bool { return true }
func (*netOpError) Unwrap() error   { return errors.New("connection refused") }
