package gateway

import (
	"fmt"
	"testing"
	"time"
)

// What is tried: 25,000 people press Run Now once each, in the same second; a minute
// later one more presses.
// What must hold: the limiter never remembers more than limiterMaxUsers people, and
// once they have been idle for a minute it forgets them all.
func TestRunNowLimiterMemoryIsBounded(t *testing.T) {
	var l runNowLimiter
	t0 := time.Date(2026, 1, 15, 8, 0, 0, 0, time.UTC)
	for i := range 25_000 {
		if _, ok := l.allow(fmt.Sprint("user-", i), t0); !ok {
			t.Fatalf("user %d's first press was refused", i)
		}
		if n := l.remembered(); n > limiterMaxUsers {
			t.Fatalf("after %d people the limiter remembers %d, more than %d", i+1, n, limiterMaxUsers)
		}
	}
	if _, ok := l.allow("late", t0.Add(pressWindow)); !ok {
		t.Fatal("a new person's first press was refused")
	}
	if n := l.remembered(); n != 1 {
		t.Errorf("a minute on, the limiter remembers %d people, want only the one who just pressed", n)
	}
}

// What is tried: one person presses Run Now every second for a minute and a half.
// What must hold: 3 at once, then one every 12 s; the refusal names the presses of the
// last minute (at most "at least 20"), and the wait it gives is the wait until the
// next press is accepted.
func TestRunNowLimiterRefills(t *testing.T) {
	var l runNowLimiter
	t0 := time.Date(2026, 1, 15, 8, 0, 0, 0, time.UTC)
	var accepted []int
	var last refusal
	for s := range 90 {
		why, ok := l.allow("anjali", t0.Add(time.Duration(s)*time.Second))
		if ok {
			accepted = append(accepted, s)
			continue
		}
		if why.RetryAfter() > 12 {
			t.Errorf("at %d s the wait is %d s, more than one refill", s, why.RetryAfter())
		}
		last = why
	}
	want := []int{0, 1, 2, 12, 24, 36, 48, 60, 72, 84}
	if fmt.Sprint(accepted) != fmt.Sprint(want) {
		t.Errorf("accepted presses at %v s, want %v", accepted, want)
	}
	if got := last.Error(); got != "You have pressed Run Now at least 20 times in the last minute; try again in 7 s. Runs already queued will still run." {
		t.Errorf("the last refusal says %q", got)
	}
}
