package ticker

import (
	"testing"
	"time"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/jobstate"
)

// Tried: every shape the ticker bucket record and the config can have when a slot is
// looked at.
// Must hold: the protocol's one decision for each (see doc.go), without a server.
func TestDecide(t *testing.T) {
	job, _ := catalog.Lookup(catalog.CheckSLAAndOverdue) // max age 15m
	slot := at("2026-03-10T02:30:00Z")
	rec := func(slot, state, by, claimedAt string) record {
		return record{Slot: at(slot), State: state, By: by, At: at(claimedAt)}
	}
	tests := []struct {
		name string
		rec  record
		rev  uint64
		now  string
		cfg  jobstate.Config
		// since is when the ticker started; default 02:00, before the slot.
		since string
		want  plan
	}{
		{name: "no record at first start: baseline", now: "2026-03-10T02:31:00Z", since: "2026-03-10T02:31:00Z",
			rec: record{}, rev: 0, want: plan{step: stepBaseline}},
		{name: "no record, slot came due while running: fire", now: "2026-03-10T02:30:00Z",
			rec: record{}, rev: 0, want: plan{step: stepFire}},
		{name: "older slot recorded: fire", now: "2026-03-10T02:30:00Z",
			rec: rec("2026-03-10T02:15:00Z", statePublished, "b", "2026-03-10T02:15:00Z"), rev: 3, want: plan{step: stepFire}},
		{name: "within max age: fire late", now: "2026-03-10T02:45:00Z",
			rec: rec("2026-03-10T02:00:00Z", statePublished, "b", "2026-03-10T02:00:00Z"), rev: 3, want: plan{step: stepFire}},
		{name: "beyond max age: miss", now: "2026-03-10T02:45:01Z",
			rec: rec("2026-03-10T02:00:00Z", statePublished, "b", "2026-03-10T02:00:00Z"), rev: 3, want: plan{step: stepMiss}},
		{name: "paused: pause", now: "2026-03-10T02:30:00Z", cfg: jobstate.Config{Paused: true},
			rec: rec("2026-03-10T02:15:00Z", statePublished, "b", "2026-03-10T02:15:00Z"), rev: 3, want: plan{step: stepPause}},
		{name: "slot before the last config change: skip", now: "2026-03-10T02:40:00Z", cfg: jobstate.Config{UpdatedAt: at("2026-03-10T02:35:00Z")},
			rec: rec("2026-03-10T02:15:00Z", statePaused, "b", "2026-03-10T02:15:00Z"), rev: 3, want: plan{step: stepSkip}},
		{name: "published by another: lost", now: "2026-03-10T02:30:00Z",
			rec: rec("2026-03-10T02:30:00Z", statePublished, "b", "2026-03-10T02:30:00Z"), rev: 3, want: plan{step: stepNone, lost: true}},
		{name: "published by us: nothing", now: "2026-03-10T02:30:00Z",
			rec: rec("2026-03-10T02:30:00Z", statePublished, "me", "2026-03-10T02:30:00Z"), rev: 3, want: plan{step: stepNone}},
		{name: "paused slot, now resumed: nothing", now: "2026-03-10T02:31:00Z",
			rec: rec("2026-03-10T02:30:00Z", statePaused, "b", "2026-03-10T02:30:00Z"), rev: 3, want: plan{step: stepNone}},
		{name: "a later slot is recorded: nothing", now: "2026-03-10T02:30:00Z",
			rec: rec("2026-03-10T02:35:00Z", statePublished, "b", "2026-03-10T02:35:00Z"), rev: 3, want: plan{step: stepNone}},
		{name: "fresh claim of another: watch until stale", now: "2026-03-10T02:30:10Z",
			rec: rec("2026-03-10T02:30:00Z", stateClaimed, "b", "2026-03-10T02:30:01Z"), rev: 3,
			want: plan{step: stepWatch, lost: true, until: at("2026-03-10T02:30:31Z")}},
		{name: "stale claim of another: publish it", now: "2026-03-10T02:30:31Z",
			rec: rec("2026-03-10T02:30:00Z", stateClaimed, "b", "2026-03-10T02:30:01Z"), rev: 3, want: plan{step: stepRetry}},
		{name: "our own failed claim: publish again", now: "2026-03-10T02:30:01Z",
			rec: rec("2026-03-10T02:30:00Z", stateClaimed, "me", "2026-03-10T02:30:00Z"), rev: 3, want: plan{step: stepRetry}},
		{name: "claim never published within max age: miss", now: "2026-03-10T02:45:01Z",
			rec: rec("2026-03-10T02:30:00Z", stateClaimed, "me", "2026-03-10T02:30:00Z"), rev: 3, want: plan{step: stepMiss}},
		{name: "an older slot's claim is superseded: fire", now: "2026-03-10T02:30:00Z",
			rec: rec("2026-03-10T02:15:00Z", stateClaimed, "b", "2026-03-10T02:15:00Z"), rev: 3, want: plan{step: stepFire}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			since := at("2026-03-10T02:00:00Z")
			if tt.since != "" {
				since = at(tt.since)
			}
			got := decide(tt.rec, tt.rev, slot, at(tt.now), since, job, tt.cfg, "me")
			if got.step != tt.want.step || got.lost != tt.want.lost || !got.until.Equal(tt.want.until) {
				t.Fatalf("decide = {%v lost=%v until=%s}, want {%v lost=%v until=%s}",
					got.step, got.lost, got.until.Format(time.RFC3339), tt.want.step, tt.want.lost, tt.want.until.Format(time.RFC3339))
			}
		})
	}
}
