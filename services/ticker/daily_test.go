package ticker

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobstate"
	"github.com/lexhq/gstjobs/internal/tenancy"
)

// Three firms, as the tests of firms' hours name them.
const (
	kol = "11111111-1111-1111-1111-111111111111" // Mehta & Associates, Asia/Kolkata (JOBS_TIMEZONE)
	dxb = "22222222-2222-2222-2222-222222222222" // Gulf Tax Advisors, Asia/Dubai
	nyc = "33333333-3333-3333-3333-333333333333" // Hudson GST Desk, America/New_York
)

const reminders = catalog.SendHearingReminders

// fakeFirms is the firms' zones as a test sets them; a change is notified as
// PostgreSQL's trigger does.
type fakeFirms struct {
	mu      sync.Mutex
	list    []tenancy.FirmZone
	changed chan struct{}
}

func newFakeFirms(zones map[string]string) *fakeFirms {
	f := &fakeFirms{changed: make(chan struct{}, 1)}
	f.list = zoneList(zones)
	return f
}

func zoneList(zones map[string]string) []tenancy.FirmZone {
	var list []tenancy.FirmZone
	for id, zone := range zones {
		z := tenancy.FirmZone{TenantID: id, Zone: zone, Own: true, Stored: zone}
		if _, err := time.LoadLocation(zone); err != nil || zone == "" {
			z.Zone, z.Own = "Asia/Kolkata", false
		}
		list = append(list, z)
	}
	slices.SortFunc(list, func(a, b tenancy.FirmZone) int { return strings.Compare(a.TenantID, b.TenantID) })
	return list
}

func (f *fakeFirms) Zones(context.Context) ([]tenancy.FirmZone, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.list), nil
}

func (f *fakeFirms) Changed() <-chan struct{} { return f.changed }

// setZones changes the firms' zones and waits until each ticker has read them and
// acted on them.
func (h *harness) setZones(f *fakeFirms, zones map[string]string, tickers ...*Ticker) {
	h.t.Helper()
	f.mu.Lock()
	f.list = zoneList(zones)
	f.mu.Unlock()
	for _, tk := range tickers {
		for len(tk.signals.firms) > 0 {
			<-tk.signals.firms
		}
	}
	for _, tk := range tickers {
		f.changed <- struct{}{}
		select {
		case <-tk.signals.firms:
		case <-time.After(10 * time.Second):
			h.t.Fatalf("ticker %s never read the firms' new zones", tk.cfg.Instance)
		}
	}
}

// withFirms starts a ticker that knows the firms.
func withFirms(f *fakeFirms) func(*Config) { return func(c *Config) { c.Firms = f } }

// setAt sets a firm's own time of day for job, as the gateway does for its admin.
func (h *harness) setAt(job, tenant, at string, tickers ...*Ticker) {
	h.t.Helper()
	h.setConfig(jobstate.ConfigKey(job, tenant), jobstate.Config{At: at}, tickers...)
}

// fired is one published slot of a job, in words a test compares: the message id and
// the firms it is for, "all" or "all-<firms>" for every firm (but those).
func fired(s seen, job string) []string {
	var out []string
	for _, m := range s.schedules {
		if m.JobName != job {
			continue
		}
		out = append(out, m.MsgID+" for "+scopeWords(m.Scope))
	}
	return out
}

func scopeWords(sc *events.Scope) string {
	switch {
	case sc == nil:
		return "all"
	case sc.All && len(sc.Except) == 0:
		return "all"
	case sc.All:
		return "all-" + strings.Join(names(sc.Except), ",")
	default:
		return strings.Join(names(sc.Firms), ",")
	}
}

func names(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = map[string]string{kol: "kol", dxb: "dxb", nyc: "nyc"}[id]
		if out[i] == "" {
			out[i] = id
		}
	}
	slices.Sort(out)
	return out
}

func wantFired(t *testing.T, s seen, job string, want ...string) {
	t.Helper()
	if got := fired(s, job); !slices.Equal(got, want) {
		t.Fatalf("%s: published\n  %q\nwant\n  %q", job, got, want)
	}
}

var threeZones = map[string]string{kol: "Asia/Kolkata", dxb: "Asia/Dubai", nyc: "America/New_York"}

// Tried: three firms, in Kolkata (JOBS_TIMEZONE), Dubai and New York, none with an hour
// of its own, through three days around New York's change to daylight saving time (02:00
// on Sunday 8 March 2026).
// Must hold: each firm's reminders come at 08:00 on its own wall clock, every day and on
// both sides of the change (13:00 UTC on Saturday, 12:00 UTC on Sunday): Kolkata's as the
// slot of every firm but the other two (under the slot's own id, as before firms kept
// hours), Dubai's and New York's as their own groups' slots (<job>@<slot>#<group>), each
// for exactly its firm; one publish per firm per day, nothing in between.
func TestEachFirmAtEightOnItsOwnClock(t *testing.T) {
	h := newHarness(t, "2026-03-06T20:00:00Z")
	h.start("ticker-a", withFirms(newFakeFirms(threeZones)))
	wantFired(t, h.drain(), reminders)
	steps := []struct {
		to   string
		want []string
	}{
		{"2026-03-07T02:29:59Z", nil},
		{"2026-03-07T02:30:00Z", []string{"send-hearing-reminders@2026-03-07T02:30:00Z for all-dxb,nyc"}},
		{"2026-03-07T04:00:00Z", []string{"send-hearing-reminders@2026-03-07T04:00:00Z#Asia/Dubai 08:00 for dxb"}},
		{"2026-03-07T12:59:59Z", nil},
		{"2026-03-07T13:00:00Z", []string{"send-hearing-reminders@2026-03-07T13:00:00Z#America/New_York 08:00 for nyc"}}, // EST
		{"2026-03-08T02:30:00Z", []string{"send-hearing-reminders@2026-03-08T02:30:00Z for all-dxb,nyc"}},
		{"2026-03-08T04:00:00Z", []string{"send-hearing-reminders@2026-03-08T04:00:00Z#Asia/Dubai 08:00 for dxb"}},
		{"2026-03-08T12:00:00Z", []string{"send-hearing-reminders@2026-03-08T12:00:00Z#America/New_York 08:00 for nyc"}}, // EDT
		{"2026-03-08T13:00:00Z", nil},
		{"2026-03-09T12:00:00Z", []string{
			"send-hearing-reminders@2026-03-09T02:30:00Z for all-dxb,nyc",
			"send-hearing-reminders@2026-03-09T04:00:00Z#Asia/Dubai 08:00 for dxb",
			"send-hearing-reminders@2026-03-09T12:00:00Z#America/New_York 08:00 for nyc",
		}},
	}
	for _, st := range steps {
		if st.to == "2026-03-09T12:00:00Z" {
			// A day in steps of the slots: each fires at its own instant.
			var all seen
			for _, at := range []string{"2026-03-09T02:30:00Z", "2026-03-09T04:00:00Z", "2026-03-09T12:00:00Z"} {
				h.advanceTo(at)
				all.schedules = append(all.schedules, h.drain().schedules...)
			}
			wantFired(t, all, reminders, st.want...)
			continue
		}
		h.advanceTo(st.to)
		wantFired(t, h.drain(), reminders, st.want...)
	}
}

// Tried: a firm's admin moves the firm's reminders (i) to a later hour after that day's
// run, (ii) to a later hour before it, (iii) to an hour already past, before it, (iv)
// back to the default hour after the run of the day at its own, and (v) into the
// default hour after that hour's slot fired, with the day's run still to come.
// Must hold: a firm whose run of the day already happened is not run again that day of
// its calendar, and the new hour holds from the next day; a firm that has not had the
// day's run runs at the new hour if it is still to come, and at once if it has passed
// (a catch-up, under an id of its own: <group>~2 when the group's slot already fired);
// no firm is run twice on one of its days and none skips a day.
func TestAFirmMovesItsHourWithinTheDay(t *testing.T) {
	h := newHarness(t, "2026-03-09T20:00:00Z")
	firms := newFakeFirms(map[string]string{kol: "Asia/Kolkata", dxb: "Asia/Kolkata", nyc: "Asia/Kolkata"})
	a := h.start("ticker-a", withFirms(firms))
	wantFired(t, h.drain(), reminders)

	// 08:00 IST (02:30 UTC): everyone runs at the default hour.
	h.advanceTo("2026-03-10T02:30:00Z")
	wantFired(t, h.drain(), reminders, "send-hearing-reminders@2026-03-10T02:30:00Z for all")

	// (i) 08:30 IST: kol moves to 09:00, after its run of the day: not again at 09:00.
	h.advanceTo("2026-03-10T03:00:00Z")
	h.setAt(reminders, kol, "09:00", a)
	h.advanceTo("2026-03-10T03:30:00Z")
	wantFired(t, h.drain(), reminders)

	// (ii) 07:00 IST the next day: dxb moves to 10:00 before its run: not at 08:00 with
	// the others, at 10:00 alone. (iii) 07:30: nyc moves to 06:00, already past: at once.
	h.advanceTo("2026-03-11T01:30:00Z")
	h.setAt(reminders, dxb, "10:00", a)
	h.advanceTo("2026-03-11T02:00:00Z")
	h.setAt(reminders, nyc, "06:00", a)
	wantFired(t, h.drain(), reminders, "send-hearing-reminders@2026-03-11T00:30:00Z#Asia/Kolkata 06:00 for nyc")
	h.advanceTo("2026-03-11T02:30:00Z")
	wantFired(t, h.drain(), reminders) // nobody is left at 08:00: kol is at 09:00 now
	h.advanceTo("2026-03-11T03:30:00Z")
	wantFired(t, h.drain(), reminders, "send-hearing-reminders@2026-03-11T03:30:00Z#Asia/Kolkata 09:00 for kol")
	h.advanceTo("2026-03-11T04:30:00Z")
	wantFired(t, h.drain(), reminders, "send-hearing-reminders@2026-03-11T04:30:00Z#Asia/Kolkata 10:00 for dxb")

	// (iv) 12 March: nyc runs at 06:00, then moves back to the default hour at 07:00: not
	// again at 08:00 (the slot of every firm leaves it out). kol is back at 08:00 too.
	h.advanceTo("2026-03-12T00:30:00Z")
	wantFired(t, h.drain(), reminders, "send-hearing-reminders@2026-03-12T00:30:00Z#Asia/Kolkata 06:00 for nyc")
	h.advanceTo("2026-03-12T01:30:00Z")
	h.setAt(reminders, nyc, "", a)
	h.setAt(reminders, kol, "", a)
	h.advanceTo("2026-03-12T02:30:00Z")
	wantFired(t, h.drain(), reminders, "send-hearing-reminders@2026-03-12T02:30:00Z for all-dxb,nyc")

	// (v) 08:30: dxb (at 10:00, not run today) moves to the default hour, whose slot has
	// fired: it runs at once, by name, under the group's second id of the slot.
	h.advanceTo("2026-03-12T03:00:00Z")
	h.setAt(reminders, dxb, "", a)
	wantFired(t, h.drain(), reminders, "send-hearing-reminders@2026-03-12T02:30:00Z#Asia/Kolkata 08:00~2 for dxb")
	h.advanceTo("2026-03-12T04:30:00Z")
	wantFired(t, h.drain(), reminders)

	// The next day everyone is at 08:00 again, in one slot.
	h.advanceTo("2026-03-13T02:30:00Z")
	wantFired(t, h.drain(), reminders, "send-hearing-reminders@2026-03-13T02:30:00Z for all")
}

// Tried: two tickers on one server and one clock, three firms in three zones with a
// fourth firm of Kolkata at 07:30, through a day.
// Must hold: every group's slot is published exactly once (seen from a core
// subscriber, and in the stream); one ticker counts each published and the other
// lost_race.
func TestTwoTickersPublishEachGroupsSlotOnce(t *testing.T) {
	const early = "44444444-4444-4444-4444-444444444444"
	zones := map[string]string{kol: "Asia/Kolkata", dxb: "Asia/Dubai", nyc: "America/New_York", early: "Asia/Kolkata"}
	h := newHarness(t, "2026-03-09T20:00:00Z")
	h.setAt(reminders, early, "07:30")
	firms := newFakeFirms(zones)
	a := h.start("ticker-a", withFirms(firms))
	b := h.start("ticker-b", withFirms(firms))
	var all seen
	for _, at := range []string{"2026-03-10T02:00:00Z", "2026-03-10T02:30:00Z", "2026-03-10T04:00:00Z", "2026-03-10T12:00:00Z", "2026-03-10T19:00:00Z"} {
		h.advanceTo(at)
		all.schedules = append(all.schedules, h.drain().schedules...)
	}
	wantFired(t, all, reminders,
		"send-hearing-reminders@2026-03-10T02:00:00Z#Asia/Kolkata 07:30 for "+early,
		"send-hearing-reminders@2026-03-10T02:30:00Z for all-"+strings.Join(names([]string{dxb, early, nyc}), ","),
		"send-hearing-reminders@2026-03-10T04:00:00Z#Asia/Dubai 08:00 for dxb",
		"send-hearing-reminders@2026-03-10T12:00:00Z#America/New_York 08:00 for nyc",
	)
	if n := h.stored(reminders); n != 4 {
		t.Errorf("the stream holds %d reminders slots, want 4", n)
	}
	published := count(a, reminders, outcomePublished) + count(b, reminders, outcomePublished)
	lost := count(a, reminders, outcomeLostRace) + count(b, reminders, outcomeLostRace)
	if published != 4 || lost != 4 {
		t.Errorf("published %d and lost_race %d across both tickers, want 4 each", published, lost)
	}
}

// Tried: the only ticker stops at 07:59 in Kolkata, and another starts (i) at 08:20 in
// Dubai, after Kolkata's and Dubai's slots came with no ticker running, (ii) two days
// later, after a day with no ticker at all.
// Must hold: (i) each firm's missed slot is caught up once, late, for that firm's group;
// the firm in New York, whose hour has not come, is not run. (ii) only the latest slot
// of each group is caught up; the day before is announced missed for that group's
// firms (its scope names them), once.
func TestRestartAcrossAFirmsSlot(t *testing.T) {
	h := newHarness(t, "2026-03-09T20:00:00Z")
	firms := newFakeFirms(threeZones)
	a := h.start("ticker-a", withFirms(firms))
	h.advanceTo("2026-03-10T02:29:00Z")
	h.stop(a)
	h.advanceTo("2026-03-10T04:20:00Z")
	b := h.start("ticker-b", withFirms(firms))
	wantFired(t, h.drain(), reminders,
		"send-hearing-reminders@2026-03-10T02:30:00Z for all-dxb,nyc",
		"send-hearing-reminders@2026-03-10T04:00:00Z#Asia/Dubai 08:00 for dxb",
	)
	h.advanceTo("2026-03-10T12:00:00Z")
	wantFired(t, h.drain(), reminders, "send-hearing-reminders@2026-03-10T12:00:00Z#America/New_York 08:00 for nyc")

	h.stop(b)
	h.advanceTo("2026-03-12T13:00:00Z") // 11 March went by with no ticker
	h.start("ticker-c", withFirms(firms))
	s := h.drain()
	wantFired(t, s, reminders,
		"send-hearing-reminders@2026-03-12T02:30:00Z for all-dxb,nyc",
		"send-hearing-reminders@2026-03-12T04:00:00Z#Asia/Dubai 08:00 for dxb",
		"send-hearing-reminders@2026-03-12T12:00:00Z#America/New_York 08:00 for nyc",
	)
	var missed []string
	for _, st := range s.statuses {
		if st.JobName == reminders && st.State == events.StateMissed {
			missed = append(missed, st.Slot.UTC().Format(time.RFC3339)+" for "+scopeWords(st.Scope))
		}
	}
	slices.Sort(missed)
	want := []string{"2026-03-11T02:30:00Z for all-dxb,nyc", "2026-03-11T04:00:00Z for dxb", "2026-03-11T12:00:00Z for nyc"}
	if !slices.Equal(missed, want) {
		t.Errorf("missed statuses %q, want %q", missed, want)
	}
}

// Tried: the firm in Dubai moves to New York (its tenants.timezone is changed) at
// 07:00 Dubai, before its run of the day; later a firm's zone becomes one that is not a
// zone.
// Must hold: the change is read without a restart; the firm runs at 08:00 in New York
// that day (it had not run), not at 08:00 in Dubai; a firm whose zone is unknown runs at
// its hour in JOBS_TIMEZONE, with the firms there.
func TestAFirmsZoneChangesWithoutARestart(t *testing.T) {
	h := newHarness(t, "2026-03-09T20:00:00Z")
	firms := newFakeFirms(threeZones)
	a := h.start("ticker-a", withFirms(firms))
	h.advanceTo("2026-03-10T03:00:00Z") // 07:00 in Dubai
	wantFired(t, h.drain(), reminders, "send-hearing-reminders@2026-03-10T02:30:00Z for all-dxb,nyc")
	h.setZones(firms, map[string]string{kol: "Asia/Kolkata", dxb: "America/New_York", nyc: "America/New_York"}, a)
	h.advanceTo("2026-03-10T04:00:00Z")
	wantFired(t, h.drain(), reminders)
	h.advanceTo("2026-03-10T12:00:00Z")
	wantFired(t, h.drain(), reminders, "send-hearing-reminders@2026-03-10T12:00:00Z#America/New_York 08:00 for dxb,nyc")

	h.setZones(firms, map[string]string{kol: "Asia/Kolkata", dxb: "America/New_York", nyc: "Mars/Olympus_Mons"}, a)
	h.advanceTo("2026-03-11T02:30:00Z")
	wantFired(t, h.drain(), reminders, "send-hearing-reminders@2026-03-11T02:30:00Z for all-dxb")
}

// Tried: the daily protocol's decision on records and firms a ticker can meet.
// Must hold: the rules of decideDaily (see its comment), without a server.
func TestDecideDaily(t *testing.T) {
	job, _ := catalog.Lookup(reminders)
	dubai, _ := time.LoadLocation("Asia/Dubai")
	now := at("2026-03-10T04:00:00Z") // 08:00 in Dubai, 09:30 in Kolkata
	firms := numberGroups([]dailyFirm{{id: kol, loc: kolkata, at: "08:00"}, {id: dxb, loc: dubai, at: "08:00"}})
	base := dailyInput{now: now, job: job, defaultAt: "08:00", fallback: kolkata, firms: firms, self: "me"}
	published := func(slot string, firms map[string][]string) record {
		return record{Slot: at(slot), State: statePublished, By: "b", At: at(slot), Firms: firms}
	}
	tests := []struct {
		name  string
		in    func(dailyInput) dailyInput
		fires []string
		state string
	}{
		{"no record: baseline, nothing fired", func(in dailyInput) dailyInput { return in }, nil, stateBaseline},
		{"Dubai's slot, its last run yesterday: fire Dubai", func(in dailyInput) dailyInput {
			in.rec, in.rev = published("2026-03-10T02:30:00Z", map[string][]string{"2026-03-09T04:00:00Z": {dxb}}), 3
			return in
		}, []string{"send-hearing-reminders@2026-03-10T04:00:00Z#Asia/Dubai 08:00"}, stateClaimed},
		{"Dubai ran today already: nothing", func(in dailyInput) dailyInput {
			in.rec, in.rev = published("2026-03-10T02:30:00Z", map[string][]string{"2026-03-10T04:00:00Z": {dxb}}), 3
			return in
		}, nil, statePublished},
		{"the job paused for everyone: recorded, not fired", func(in dailyInput) dailyInput {
			in.rec, in.rev = published("2026-03-10T02:30:00Z", map[string][]string{"2026-03-09T04:00:00Z": {dxb}}), 3
			in.cfg.Paused = true
			return in
		}, nil, statePublished},
		{"the slot came before the operator's last change: not owed", func(in dailyInput) dailyInput {
			in.rec, in.rev = published("2026-03-10T02:30:00Z", map[string][]string{"2026-03-09T04:00:00Z": {dxb}}), 3
			in.cfg.UpdatedAt = at("2026-03-10T04:00:01Z")
			return in
		}, nil, statePublished},
		{"Dubai's last run two days ago and Kolkata's yesterday: fire both, Dubai's day between missed", func(in dailyInput) dailyInput {
			in.rec, in.rev = published("2026-03-09T02:30:00Z", map[string][]string{"2026-03-08T04:00:00Z": {dxb}}), 3
			return in
		}, []string{"send-hearing-reminders@2026-03-10T02:30:00Z", "send-hearing-reminders@2026-03-10T04:00:00Z#Asia/Dubai 08:00"}, stateClaimed},
		{"no firm known: the default slot, for every firm", func(in dailyInput) dailyInput {
			in.rec, in.rev, in.firms = published("2026-03-09T02:30:00Z", nil), 3, nil
			return in
		}, []string{"send-hearing-reminders@2026-03-10T02:30:00Z"}, stateClaimed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := decideDaily(tt.in(base))
			var ids []string
			for _, f := range p.fires {
				ids = append(ids, f.MsgID)
			}
			if !slices.Equal(ids, tt.fires) || p.rec.State != tt.state {
				t.Fatalf("fires %q, state %s; want %q, %s (plan %+v)", ids, p.rec.State, tt.fires, tt.state, p)
			}
			if !p.changed {
				return
			}
			// The ticker keeps p.last for its next decision, and takes no second one at
			// the same instant: p.last must be what the record reads back to, and a
			// decision on the record written must find nothing more to do.
			if want := firmSlots(p.rec); !maps.EqualFunc(p.last, want, time.Time.Equal) {
				t.Fatalf("plan's last slots %v; the record it writes reads %v", p.last, want)
			}
			again := tt.in(base)
			again.rec, again.rev, again.last = p.rec, again.rev+1, p.last
			again.rec.State, again.rec.Pending = statePublished, nil
			if q := decideDaily(again); q.changed {
				t.Fatalf("a second decision at the same instant changed the record: fires %+v, missed %+v, logs %q", q.fires, q.missed, q.logs)
			}
		})
	}
}
