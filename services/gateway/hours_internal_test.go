package gateway

import (
	"testing"
	"time"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/demo"
	"github.com/lexhq/gstjobs/internal/events"
)

// Tried: a firm's next run as its card computes it, on days it has and has not run.
// Must hold: the next slot of its time of day in its zone, or, when its run of that
// day already happened (it moved to a later hour after it), the one the day after.
func TestNextFirmRun(t *testing.T) {
	dubai, _ := time.LoadLocation("Asia/Dubai")
	job, _ := catalog.Lookup(catalog.SendHearingReminders)
	h := hoursOf(job, job.Schedule, "09:00", firmZone{Name: "Asia/Dubai", Loc: dubai, Own: true}, time.UTC)
	now := time.Date(2026, 3, 10, 4, 30, 0, 0, time.UTC) // 08:30 in Dubai
	for _, c := range []struct {
		name string
		last time.Time
		want time.Time
	}{
		{"no run yet", time.Time{}, time.Date(2026, 3, 10, 5, 0, 0, 0, time.UTC)},
		{"ran yesterday", time.Date(2026, 3, 9, 4, 0, 0, 0, time.UTC), time.Date(2026, 3, 10, 5, 0, 0, 0, time.UTC)},
		{"ran at 08:00 today, then moved to 09:00", time.Date(2026, 3, 10, 4, 0, 0, 0, time.UTC), time.Date(2026, 3, 11, 5, 0, 0, 0, time.UTC)},
	} {
		if got := nextFirmRun(h, now, c.last); got == nil || !got.Equal(c.want) {
			t.Errorf("%s: next %v, want %v", c.name, got, c.want)
		}
	}
}

// Tried: missed slots of a group of firms (a scope naming them) and of every firm (none).
// Must hold: a firm sees a missed slot only when it was for the firm, and without the
// list of firms it was for.
func TestAMissedSlotIsShownToItsFirms(t *testing.T) {
	group := events.ScopeFirms([]string{demo.TenantIyer})
	st := events.Status{JobName: catalog.SendHearingReminders, State: events.StateMissed, Scope: &group}
	if _, ok := viewStatus(st, Viewer{TenantID: demo.TenantMehta}); ok {
		t.Error("Mehta was shown Iyer's group's missed slot")
	}
	if seen, ok := viewStatus(st, Viewer{TenantID: demo.TenantIyer}); !ok || seen.Scope != nil {
		t.Errorf("Iyer's own missed slot: shown %v, scope %+v (want shown, no scope)", ok, seen.Scope)
	}
	st.Scope = nil
	if _, ok := viewStatus(st, Viewer{TenantID: demo.TenantMehta}); !ok {
		t.Error("a missed slot of every firm is every firm's")
	}
}
