package ticker

import (
	"context"
	"testing"
	"time"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobstate"
)

// Tried: cron expressions read in Asia/Kolkata while the clock ticks in UTC.
// Must hold: a slot is published exactly at its instant in Kolkata, with the slot and the
// message id in UTC; nothing is published between slots; a late wake-up publishes the
// slot it was late for and the next slot stays on the cron grid (no drift).
func TestSlotsAreInstantsInTheJobsTimezone(t *testing.T) {
	type step struct {
		to   string
		want []string
	}
	tests := []struct {
		name  string
		job   string
		start string
		steps []step
	}{
		{
			name: "08:00 in Kolkata is 02:30 UTC", job: catalog.SendHearingReminders, start: "2026-03-10T02:29:30Z",
			steps: []step{
				{to: "2026-03-10T02:29:59Z"},
				{to: "2026-03-10T02:30:00Z", want: []string{"2026-03-10T02:30:00Z"}},
				{to: "2026-03-11T02:29:59Z"},
				{to: "2026-03-11T02:30:00Z", want: []string{"2026-03-11T02:30:00Z"}},
			},
		},
		{
			name: "every 15 minutes on the grid, never in between", job: catalog.CheckSLAAndOverdue, start: "2026-03-10T02:29:30Z",
			steps: []step{
				{to: "2026-03-10T02:30:00Z", want: []string{"2026-03-10T02:30:00Z"}},
				{to: "2026-03-10T02:44:59Z"},
				// Woken 2m10s late: the slot published is 02:45, not the time of waking...
				{to: "2026-03-10T02:47:10Z", want: []string{"2026-03-10T02:45:00Z"}},
				// ...and the next one is 03:00, not 03:02:10.
				{to: "2026-03-10T02:59:59Z"},
				{to: "2026-03-10T03:00:00Z", want: []string{"2026-03-10T03:00:00Z"}},
			},
		},
		{
			name: "00:30 in Kolkata is 19:00 UTC the day before", job: catalog.CaptureAnalyticsSnapshot, start: "2026-03-10T18:59:30Z",
			steps: []step{
				{to: "2026-03-10T18:59:59Z"},
				{to: "2026-03-10T19:00:00Z", want: []string{"2026-03-10T19:00:00Z"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.start)
			h.start("ticker-a")
			if s := h.drain(); len(s.schedules) != 0 {
				t.Fatalf("first start published %v, want nothing", s.schedules)
			}
			for _, st := range tt.steps {
				h.advanceTo(st.to)
				s := h.drain()
				wantSlots(t, s, tt.job, st.want...)
				for _, m := range s.schedules {
					if want := m.JobName + "@" + m.Slot.UTC().Format(time.RFC3339); m.MsgID != want {
						t.Errorf("Nats-Msg-Id %q, want %q", m.MsgID, want)
					}
					if m.Slot.Location() != time.UTC {
						t.Errorf("slot %s is not written in UTC", m.Slot)
					}
				}
			}
		})
	}

	t.Run("the analytics slot is 00:30 on the next day in Kolkata", func(t *testing.T) {
		slot := at("2026-03-10T19:00:00Z").In(kolkata)
		if slot.Day() != 11 || slot.Hour() != 0 || slot.Minute() != 30 {
			t.Fatalf("19:00 UTC is %s in Kolkata, want 2026-03-11 00:30", slot)
		}
	})
	t.Run("the message id names the slot in UTC", func(t *testing.T) {
		h := newHarness(t, "2026-03-10T02:29:30Z")
		h.start("ticker-a")
		h.advanceTo("2026-03-10T02:30:00Z")
		for _, m := range h.drain().schedules {
			if m.JobName == catalog.SendHearingReminders && m.MsgID != "send-hearing-reminders@2026-03-10T02:30:00Z" {
				t.Fatalf("Nats-Msg-Id %q, want send-hearing-reminders@2026-03-10T02:30:00Z", m.MsgID)
			}
		}
	})
}

// Tried: two tickers on one server and one clock, woken by the same slots, racing for
// each of them over three hours.
// Must hold: every slot is published exactly once, seen from a core subscriber (so
// even a duplicate JetStream would drop counts) and in the stream; for each slot one
// ticker counts it published and the other lost_race.
func TestTwoTickersPublishEachSlotOnce(t *testing.T) {
	h := newHarness(t, "2026-03-10T02:29:30Z")
	a := h.start("ticker-a")
	b := h.start("ticker-b")

	var all seen
	var want []string
	slot := at("2026-03-10T02:30:00Z")
	for range 12 {
		h.advanceTo(slot.Format(time.RFC3339))
		s := h.drain()
		all.schedules = append(all.schedules, s.schedules...)
		want = append(want, slot.Format(time.RFC3339))
		slot = slot.Add(15 * time.Minute)
	}

	wantSlots(t, all, catalog.CheckSLAAndOverdue, want...)
	wantSlots(t, all, catalog.SendHearingReminders, "2026-03-10T02:30:00Z")
	if n := h.stored(catalog.CheckSLAAndOverdue); n != 12 {
		t.Errorf("the stream holds %d check-sla-and-overdue slots, want 12", n)
	}
	for job, slots := range map[string]int{catalog.CheckSLAAndOverdue: 12, catalog.SendHearingReminders: 1} {
		published := count(a, job, outcomePublished) + count(b, job, outcomePublished)
		lost := count(a, job, outcomeLostRace) + count(b, job, outcomeLostRace)
		if published != slots || lost != slots {
			t.Errorf("%s: published %d and lost_race %d across both tickers, want %d each", job, published, lost, slots)
		}
	}
	if rec := h.record(catalog.CheckSLAAndOverdue); rec.State != statePublished || !rec.Slot.Equal(at("2026-03-10T05:15:00Z")) {
		t.Errorf("record %+v, want published at 05:15", rec)
	}
}

// Tried: a ticker stops and another starts, at once, within the job's MaxAge of a slot
// it slept through, and beyond it.
// Must hold: no second publish of a published slot; exactly one catch-up publish of the
// latest slot (never a backlog); beyond MaxAge no publish, a missed status and record.
func TestRestart(t *testing.T) {
	t.Run("at the same instant: the slot is not published again", func(t *testing.T) {
		h := newHarness(t, "2026-03-10T02:29:30Z")
		a := h.start("ticker-a")
		h.advanceTo("2026-03-10T02:30:00Z")
		wantSlots(t, h.drain(), catalog.SendHearingReminders, "2026-03-10T02:30:00Z")
		h.stop(a)

		h.start("ticker-b")
		if s := h.drain(); len(s.schedules) != 0 {
			t.Fatalf("restart at the same instant published %v, want nothing", s.schedules)
		}
		if rec := h.record(catalog.SendHearingReminders); rec.State != statePublished || rec.By != "ticker-a" {
			t.Fatalf("record %+v, want published by ticker-a", rec)
		}
	})

	t.Run("within max age: one catch-up publish of the latest slot only", func(t *testing.T) {
		h := newHarness(t, "2026-03-10T02:29:30Z")
		a := h.start("ticker-a")
		h.stop(a)
		h.advanceTo("2026-03-10T05:10:00Z") // no ticker ran at 02:30, nor at any quarter since

		b := h.start("ticker-b")
		s := h.drain()
		wantSlots(t, s, catalog.SendHearingReminders, "2026-03-10T02:30:00Z")
		// Eleven quarters went by; only the latest, 05:00, is fired, and the ten before
		// it are recorded as missed: one status event naming the latest of them, 04:45.
		wantSlots(t, s, catalog.CheckSLAAndOverdue, "2026-03-10T05:00:00Z")
		var missed []events.Status
		for _, st := range s.statuses {
			if st.JobName == catalog.CheckSLAAndOverdue && st.State == events.StateMissed {
				missed = append(missed, st)
			}
		}
		if len(missed) != 1 || !missed[0].Slot.Equal(at("2026-03-10T04:45:00Z")) {
			t.Errorf("missed statuses %+v, want one for the 04:45 slot, the latest not caught up", missed)
		}
		if n := count(b, catalog.CheckSLAAndOverdue, outcomeMissed); n != 1 {
			t.Errorf("missed count %d, want 1 (one announcement for the gap)", n)
		}

		h.advanceTo("2026-03-10T05:15:00Z")
		s = h.drain()
		wantSlots(t, s, catalog.SendHearingReminders)
		wantSlots(t, s, catalog.CheckSLAAndOverdue, "2026-03-10T05:15:00Z")
		if n := count(b, catalog.SendHearingReminders, outcomePublished); n != 1 {
			t.Errorf("published count %d, want 1", n)
		}
	})

	t.Run("beyond max age: missed, reported, not fired", func(t *testing.T) {
		// Daily at 08:00 Kolkata with a max age of 15 minutes, so a slot can be too old.
		h := newHarness(t, "2026-03-10T02:00:00Z")
		h.setConfig(catalog.CheckSLAAndOverdue, jobstate.Config{Schedule: "0 8 * * *"})
		a := h.start("ticker-a")
		h.stop(a)
		h.advanceTo("2026-03-10T03:00:00Z") // the 02:30 slot is 30 minutes old

		b := h.start("ticker-b")
		s := h.drain()
		wantSlots(t, s, catalog.CheckSLAAndOverdue)
		if len(s.statuses) != 1 {
			t.Fatalf("status events %+v, want one missed", s.statuses)
		}
		st := s.statuses[0]
		if st.JobName != catalog.CheckSLAAndOverdue || st.State != events.StateMissed ||
			!st.Slot.Equal(at("2026-03-10T02:30:00Z")) || !st.At.Equal(at("2026-03-10T03:00:00Z")) {
			t.Fatalf("status %+v, want missed for the 02:30 slot at 03:00", st)
		}
		if rec := h.record(catalog.CheckSLAAndOverdue); rec.State != stateMissed || !rec.Slot.Equal(at("2026-03-10T02:30:00Z")) {
			t.Fatalf("record %+v, want missed at 02:30", rec)
		}
		if n := count(b, catalog.CheckSLAAndOverdue, outcomeMissed); n != 1 {
			t.Errorf("missed count %d, want 1", n)
		}

		// A missed slot does not stop the next one.
		h.advanceTo("2026-03-11T02:30:00Z")
		wantSlots(t, h.drain(), catalog.CheckSLAAndOverdue, "2026-03-11T02:30:00Z")
	})
}

// Tried: the very first start, with slots of every job within their MaxAge behind.
// Must hold: nothing is fired; each job's latest slot is recorded as the baseline, and the
// next slot fires normally.
func TestFirstStartFiresNothing(t *testing.T) {
	h := newHarness(t, "2026-03-10T02:35:00Z") // 5 minutes after 08:00 Kolkata
	h.start("ticker-a")
	s := h.drain()
	if len(s.schedules) != 0 || len(s.statuses) != 0 {
		t.Fatalf("first start published %+v, want nothing", s)
	}
	for _, job := range catalog.All() {
		slot, _, _ := catalog.Prev(job.Schedule, kolkata, h.clock.Now(), 48*time.Hour)
		if rec := h.record(job.Name); rec.State != stateBaseline || !rec.Slot.Equal(slot) {
			t.Errorf("%s: record %+v, want baseline at %s", job.Name, rec, slot.UTC())
		}
	}
	h.advanceTo("2026-03-10T02:45:00Z")
	s = h.drain()
	wantSlots(t, s, catalog.CheckSLAAndOverdue, "2026-03-10T02:45:00Z")
	wantSlots(t, s, catalog.SendHearingReminders)
}

// Tried: pausing, resuming and re-scheduling a job in the config bucket while tickers run
// (and while none does).
// Must hold: a paused slot is not fired but recorded "paused", and not caught up on
// resume; the next slot after resuming fires; a schedule override applies at once,
// without a restart, from its next slot on.
func TestConfigChanges(t *testing.T) {
	t.Run("paused: recorded, not fired, not caught up on resume", func(t *testing.T) {
		h := newHarness(t, "2026-03-10T02:29:30Z")
		a := h.start("ticker-a")
		h.setConfig(catalog.CheckSLAAndOverdue, jobstate.Config{Paused: true}, a)

		h.advanceTo("2026-03-10T02:30:00Z")
		s := h.drain()
		wantSlots(t, s, catalog.CheckSLAAndOverdue)
		wantSlots(t, s, catalog.SendHearingReminders, "2026-03-10T02:30:00Z") // other jobs go on
		if rec := h.record(catalog.CheckSLAAndOverdue); rec.State != statePaused || !rec.Slot.Equal(at("2026-03-10T02:30:00Z")) {
			t.Fatalf("record %+v, want paused at 02:30", rec)
		}
		if n := count(a, catalog.CheckSLAAndOverdue, outcomePaused); n != 1 {
			t.Errorf("paused count %d, want 1", n)
		}

		h.advanceTo("2026-03-10T02:40:00Z")
		h.setConfig(catalog.CheckSLAAndOverdue, jobstate.Config{Paused: false}, a)
		wantSlots(t, h.drain(), catalog.CheckSLAAndOverdue)

		h.advanceTo("2026-03-10T02:45:00Z")
		wantSlots(t, h.drain(), catalog.CheckSLAAndOverdue, "2026-03-10T02:45:00Z")
	})

	t.Run("resumed while no ticker ran: the paused slot is not caught up", func(t *testing.T) {
		h := newHarness(t, "2026-03-10T02:29:30Z")
		a := h.start("ticker-a")
		h.setConfig(catalog.CheckSLAAndOverdue, jobstate.Config{Paused: true}, a)
		h.stop(a)
		h.advanceTo("2026-03-10T02:40:00Z")
		h.setConfig(catalog.CheckSLAAndOverdue, jobstate.Config{Paused: false})

		h.start("ticker-b")
		wantSlots(t, h.drain(), catalog.CheckSLAAndOverdue)
		h.advanceTo("2026-03-10T02:45:00Z")
		wantSlots(t, h.drain(), catalog.CheckSLAAndOverdue, "2026-03-10T02:45:00Z")
	})

	t.Run("a schedule override applies without restart", func(t *testing.T) {
		h := newHarness(t, "2026-03-10T03:00:30Z")
		a := h.start("ticker-a")
		// Daily by default, so the loop sleeps until the 03:15 quarter of check-sla; only
		// the watch can make it wake at 03:05.
		h.setConfig(catalog.SendHearingReminders, jobstate.Config{Schedule: "*/5 * * * *"}, a)
		wantSlots(t, h.drain(), catalog.SendHearingReminders) // 03:00 predates the change

		h.advanceTo("2026-03-10T03:05:00Z")
		wantSlots(t, h.drain(), catalog.SendHearingReminders, "2026-03-10T03:05:00Z")
		h.advanceTo("2026-03-10T03:10:00Z")
		wantSlots(t, h.drain(), catalog.SendHearingReminders, "2026-03-10T03:10:00Z")

		h.setConfig(catalog.SendHearingReminders, jobstate.Config{}, a) // back to the default
		h.advanceTo("2026-03-10T03:15:00Z")
		s := h.drain()
		wantSlots(t, s, catalog.SendHearingReminders)
		wantSlots(t, s, catalog.CheckSLAAndOverdue, "2026-03-10T03:15:00Z")
	})

	// What is tried: a config value and a ticker record that are not JSON at all, as a
	// hand-written `nats kv put` would leave. What must hold: neither stops the
	// schedule: the defaults hold and the slot fires once.
	t.Run("a value that is not a config, or a record that is not one, stops nothing", func(t *testing.T) {
		h := newHarness(t, "2026-03-10T02:29:30Z")
		a := h.start("ticker-a")
		ctx := context.Background()
		cfgKV, err := h.srv.JS.KeyValue(ctx, bus.BucketConfig)
		if err != nil {
			t.Fatal(err)
		}
		rev, err := cfgKV.Put(ctx, catalog.SendHearingReminders, []byte("paused please"))
		if err != nil {
			t.Fatal(err)
		}
		for applied := uint64(0); applied < rev; {
			applied = <-a.signals.applied
		}
		tickKV, err := h.srv.JS.KeyValue(ctx, bus.BucketTicker)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tickKV.Put(ctx, catalog.CheckSLAAndOverdue, []byte("{not json")); err != nil {
			t.Fatal(err)
		}
		h.advanceTo("2026-03-10T02:30:00Z")
		s := h.drain()
		wantSlots(t, s, catalog.SendHearingReminders, "2026-03-10T02:30:00Z")
		wantSlots(t, s, catalog.CheckSLAAndOverdue, "2026-03-10T02:30:00Z")
	})

	t.Run("an invalid override falls back to the default schedule", func(t *testing.T) {
		h := newHarness(t, "2026-03-10T02:29:30Z")
		a := h.start("ticker-a")
		h.setConfig(catalog.SendHearingReminders, jobstate.Config{Schedule: "every day at eight"}, a)
		h.advanceTo("2026-03-10T02:30:00Z")
		wantSlots(t, h.drain(), catalog.SendHearingReminders, "2026-03-10T02:30:00Z")
	})
}

// Tried: a ticker that claimed a slot and died before publishing it, found at the next
// start and by a ticker already running.
// Must hold: the slot is published exactly once, by the ticker that finds the claim,
// and only once the claim is older than staleClaim.
func TestClaimLeftByADeadTicker(t *testing.T) {
	t.Run("found at start", func(t *testing.T) {
		h := newHarness(t, "2026-03-10T02:31:00Z")
		h.putRecord(catalog.SendHearingReminders, record{
			Slot: at("2026-03-10T02:30:00Z"), State: stateClaimed, By: "dead-ticker", At: at("2026-03-10T02:30:01Z"),
		})
		h.start("ticker-a")
		wantSlots(t, h.drain(), catalog.SendHearingReminders, "2026-03-10T02:30:00Z")
		if rec := h.record(catalog.SendHearingReminders); rec.State != statePublished || rec.By != "ticker-a" {
			t.Fatalf("record %+v, want published by ticker-a", rec)
		}
		h.advanceTo("2026-03-10T02:45:00Z")
		wantSlots(t, h.drain(), catalog.SendHearingReminders)
	})

	t.Run("found by a running ticker once stale", func(t *testing.T) {
		h := newHarness(t, "2026-03-10T02:29:30Z")
		a := h.start("ticker-a")
		// Another ticker wins 02:30 and dies before publishing.
		h.putRecord(catalog.SendHearingReminders, record{
			Slot: at("2026-03-10T02:30:00Z"), State: stateClaimed, By: "dead-ticker", At: at("2026-03-10T02:30:00Z"),
		})
		h.advanceTo("2026-03-10T02:30:00Z")
		wantSlots(t, h.drain(), catalog.SendHearingReminders) // a fresh claim is left alone
		h.advanceTo("2026-03-10T02:30:29Z")
		wantSlots(t, h.drain(), catalog.SendHearingReminders)
		h.advanceTo("2026-03-10T02:30:30Z")
		wantSlots(t, h.drain(), catalog.SendHearingReminders, "2026-03-10T02:30:00Z")
		if rec := h.record(catalog.SendHearingReminders); rec.State != statePublished || rec.By != "ticker-a" {
			t.Fatalf("record %+v, want published by ticker-a", rec)
		}
		if n := count(a, catalog.SendHearingReminders, outcomePublished); n != 1 {
			t.Errorf("published count %d, want 1", n)
		}
	})
}

// Tried: JetStream refusing the publishes of a slot the ticker has claimed, and of a
// missed status.
// Must hold: the publish is retried with doubling backoff, on the injected clock, until
// it goes through (once); it is given up as missed when the slot's MaxAge passes; a slot
// still failing when the next one comes due is reported missed; a missed status is
// retried until it is out.
func TestPublishErrorsAreRetried(t *testing.T) {
	subject := events.ScheduleSubject(catalog.SendHearingReminders)

	t.Run("retried with backoff until it goes through", func(t *testing.T) {
		h := newHarness(t, "2026-03-10T02:29:30Z")
		flaky := &flakyJS{subject: subject, failing: 3}
		h.start("ticker-a", func(c *Config) { flaky.JetStream = c.JS; c.JS = flaky })

		for _, st := range []struct {
			to    string
			tries int
		}{
			{"2026-03-10T02:30:00Z", 1},
			{"2026-03-10T02:30:00.999Z", 1},
			{"2026-03-10T02:30:01Z", 2}, // +1s
			{"2026-03-10T02:30:02.999Z", 2},
			{"2026-03-10T02:30:03Z", 3}, // +2s
			{"2026-03-10T02:30:06.999Z", 3},
			{"2026-03-10T02:30:07Z", 4}, // +4s, and it goes through
			{"2026-03-10T02:31:00Z", 4},
		} {
			h.advanceTo(st.to)
			if n := flaky.tries(); n != st.tries {
				t.Fatalf("at %s: %d publish attempts, want %d", st.to, n, st.tries)
			}
			if st.tries < 4 {
				if rec := h.record(catalog.SendHearingReminders); rec.State != stateClaimed {
					t.Fatalf("at %s: record %+v, want claimed while failing", st.to, rec)
				}
			}
		}
		wantSlots(t, h.drain(), catalog.SendHearingReminders, "2026-03-10T02:30:00Z")
		if rec := h.record(catalog.SendHearingReminders); rec.State != statePublished {
			t.Fatalf("record %+v, want published", rec)
		}
	})

	t.Run("given up when the slot's max age passes", func(t *testing.T) {
		// Weekly (Tuesdays), so the next slot is not what ends the retries.
		h := newHarness(t, "2026-03-10T02:29:30Z")
		h.setConfig(catalog.SendHearingReminders, jobstate.Config{Schedule: "0 8 * * 2"})
		flaky := &flakyJS{subject: subject, failing: -1}
		a := h.start("ticker-a", func(c *Config) { flaky.JetStream = c.JS; c.JS = flaky })

		h.advanceTo("2026-03-10T02:30:00Z")
		h.advanceTo("2026-03-10T03:30:00Z")
		h.advanceTo("2026-03-11T02:29:59Z") // 23h59m59s old: still trying
		if rec := h.record(catalog.SendHearingReminders); rec.State != stateClaimed {
			t.Fatalf("record %+v, want claimed while within max age", rec)
		}
		tries := flaky.tries()
		h.advanceTo("2026-03-11T02:30:01Z") // past 24h
		s := h.drain()
		wantSlots(t, s, catalog.SendHearingReminders)
		// The clock jumped a day, so the SLA check also reports the slots it skipped;
		// this test is about the reminders' own slot.
		var mine []events.Status
		for _, st := range s.statuses {
			if st.JobName == catalog.SendHearingReminders {
				mine = append(mine, st)
			}
		}
		if len(mine) != 1 || mine[0].State != events.StateMissed || !mine[0].Slot.Equal(at("2026-03-10T02:30:00Z")) {
			t.Fatalf("status events %+v, want one missed for 02:30", mine)
		}
		if rec := h.record(catalog.SendHearingReminders); rec.State != stateMissed {
			t.Fatalf("record %+v, want missed", rec)
		}
		if tries < 3 || flaky.tries() != tries {
			t.Fatalf("%d attempts within max age and %d after, want several and then none", tries, flaky.tries()-tries)
		}
		if n := count(a, catalog.SendHearingReminders, outcomeMissed); n != 1 {
			t.Errorf("missed count %d, want 1", n)
		}
	})

	t.Run("still failing when the next slot comes due: reported missed", func(t *testing.T) {
		h := newHarness(t, "2026-03-10T02:29:30Z")
		flaky := &flakyJS{subject: events.ScheduleSubject(catalog.CheckSLAAndOverdue), failing: -1}
		h.start("ticker-a", func(c *Config) { flaky.JetStream = c.JS; c.JS = flaky })

		h.advanceTo("2026-03-10T02:30:00Z")
		flaky.set(0)
		h.advanceTo("2026-03-10T02:45:00Z")
		s := h.drain()
		wantSlots(t, s, catalog.CheckSLAAndOverdue, "2026-03-10T02:45:00Z")
		if len(s.statuses) != 1 || s.statuses[0].State != events.StateMissed || !s.statuses[0].Slot.Equal(at("2026-03-10T02:30:00Z")) {
			t.Fatalf("status events %+v, want one missed for 02:30", s.statuses)
		}
	})

	t.Run("a missed status that cannot be published is retried", func(t *testing.T) {
		h := newHarness(t, "2026-03-10T02:00:00Z")
		h.setConfig(catalog.CheckSLAAndOverdue, jobstate.Config{Schedule: "0 8 * * *"})
		a := h.start("ticker-a")
		h.stop(a)
		h.advanceTo("2026-03-10T03:00:00Z") // the 02:30 slot is too old to fire

		flaky := &flakyJS{subject: events.StatusSubject(catalog.CheckSLAAndOverdue), failing: 2}
		h.start("ticker-b", func(c *Config) { flaky.JetStream = c.JS; c.JS = flaky })
		if s := h.drain(); len(s.statuses) != 0 {
			t.Fatalf("status events %+v while publishing fails, want none", s.statuses)
		}
		h.advanceTo("2026-03-10T03:01:00Z")
		h.advanceTo("2026-03-10T03:02:00Z")
		s := h.drain()
		if len(s.statuses) != 1 || s.statuses[0].State != events.StateMissed || flaky.tries() != 3 {
			t.Fatalf("status events %+v after %d attempts, want one missed after 3", s.statuses, flaky.tries())
		}
	})
}
