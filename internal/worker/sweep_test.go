package worker

import (
	"testing"
	"time"
)

// One worker's sweeps of one job, in order: what it re-sends and when it reports a run
// as stuck.
func TestLostOrderObserve(t *testing.T) {
	const every, stuckAfter = 10 * time.Second, 2 * time.Minute
	t0 := time.Date(2026, 3, 10, 2, 30, 0, 0, time.UTC)
	type sweep struct {
		at            time.Duration
		run           string // "" when nothing needs its order again
		resend, stuck bool
	}
	for _, c := range []struct {
		name   string
		sweeps []sweep
	}{
		{"nothing lost", []sweep{{0, "", false, false}, {time.Hour, "", false, false}}},
		{"a lost order is sent again at once, then every 10s", []sweep{
			{0, "x", true, false}, {5 * time.Second, "x", false, false}, {10 * time.Second, "x", true, false}, {15 * time.Second, "x", false, false},
		}},
		{"found again: the run started", []sweep{{0, "x", true, false}, {5 * time.Second, "", false, false}}},
		{"still not started 2 minutes after the first re-send: stuck, once, and still re-sent", []sweep{
			{0, "x", true, false}, {time.Minute, "x", true, false}, {2 * time.Minute, "x", true, true},
			{2*time.Minute + 5*time.Second, "x", false, false}, {3 * time.Minute, "x", true, false},
		}},
		{"another run in its place starts its own count", []sweep{
			{0, "x", true, false}, {time.Minute, "y", true, false}, {2*time.Minute + 30*time.Second, "y", true, false}, {3 * time.Minute, "y", true, true},
		}},
		{"a run lost again after it was found counts afresh", []sweep{
			{0, "x", true, false}, {time.Minute, "", false, false}, {2 * time.Minute, "x", true, false}, {3 * time.Minute, "x", true, false},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var l lostOrder
			for i, s := range c.sweeps {
				resend, stuck := l.observe(s.run, s.run != "", t0.Add(s.at), every, stuckAfter)
				if resend != s.resend || stuck != s.stuck {
					t.Errorf("sweep %d at +%v (run %q): resend %v stuck %v; want %v %v", i, s.at, s.run, resend, stuck, s.resend, s.stuck)
				}
			}
		})
	}
}
