package ticker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobstate"
)

// A daily job whose firms keep their own hours (catalog.Job.FirmHours, while the job's
// schedule is once a day) has one slot per firm per day: the firm's time of day (its
// own, else the job's default hour) in the firm's zone. Firms that share a zone and a
// time of day share a slot, and form a group; the ticker publishes one schedule event
// per group and slot, for exactly the group's firms (see doc.go).

// pendingSlot is a group's slot claimed in the ticker bucket, with the message that
// publishes it, so that whoever publishes it (the claimer, or another ticker after the
// claimer died) publishes the same message under the same id.
type pendingSlot struct {
	MsgID    string          `json:"msg_id"`
	Schedule events.Schedule `json:"schedule"`
}

// groupMark is a group's latest slot fired and how many times it was: a firm that moves
// into a group after the group's slot fired, and has not had the day's run, is fired
// for the same slot again, under the id <job>@<slot>#<group>~<n>.
type groupMark struct {
	Slot time.Time `json:"slot"`
	N    int       `json:"n"`
}

// dailyFirm is one known firm as the decision needs it.
type dailyFirm struct {
	id  string
	loc *time.Location
	// at is the firm's time of day for the job: its own or the job's default; label
	// its group's name (groupLabel), and group its number among the decision's firms
	// (0, 1, …), so that the decision finds a firm's group without hashing its name.
	// Both are set by numberGroups, which every decision's firms come from.
	at, label string
	group     int
}

// numberGroups names and numbers the groups of firms (their id, zone and time of day
// set): firms that share a zone and a time of day share a group.
func numberGroups(firms []dailyFirm) []dailyFirm {
	number := map[string]int{}
	for i, f := range firms {
		f.label = groupLabel(f.loc.String(), f.at)
		n, ok := number[f.label]
		if !ok {
			n = len(number)
			number[f.label] = n
		}
		f.group = n
		firms[i] = f
	}
	return firms
}

// dailyInput is everything a daily decision is taken on.
type dailyInput struct {
	rec record
	rev uint64
	now time.Time
	job catalog.Job
	// cfg is the job's own config: the pause for everyone and the last change, before
	// which no slot is owed.
	cfg jobstate.Config
	// defaultAt is the job's default time of day, read in fallback (JOBS_TIMEZONE) for
	// firms of the default group: every firm the ticker does not know yet is in it.
	defaultAt string
	fallback  *time.Location
	firms     []dailyFirm
	self      string
	// known is the firms' ids, last the record's firms (firmSlots), when the caller has
	// them already (nil: computed here).
	known map[string]bool
	last  map[string]time.Time
}

// dailyPlan is a daily decision: the record to write (if changed), the groups' slots to
// publish (in the record's Pending), the missed slots to announce, and what to count.
type dailyPlan struct {
	rec     record
	changed bool
	// last is every firm's last slot as rec.Firms holds it (firmSlots(rec)), when
	// changed: kept by the caller so that its next decision does not parse it back.
	last     map[string]time.Time
	fires    []pendingSlot
	missed   []events.Status
	paused   int
	baseline bool
	// logs are the decisions worth a line each.
	logs []string
}

// dailyGroup is the firms that share a zone and a time of day, at one wake-up.
type dailyGroup struct {
	label string // "Asia/Dubai 08:00"
	loc   *time.Location
	at    string
	// slot is the group's latest slot at or before now, day the start of its day there,
	// before the slot of the day before.
	slot, day, before time.Time
	isDefault         bool
	fire              []string
	paused            []string
	missed            []string
	skipped           map[time.Time][]string
}

func groupLabel(zone, at string) string { return zone + " " + at }

// clockOf reads "HH:MM".
func clockOf(at string) (h, m int, ok bool) {
	if len(at) != 5 || at[2] != ':' {
		return 0, 0, false
	}
	h, errH := strconv.Atoi(at[:2])
	m, errM := strconv.Atoi(at[3:])
	return h, m, errH == nil && errM == nil
}

// onDay is at (HH:MM) on the local day of t in loc. A time the clocks skip (a change to
// daylight saving time) is the instant it would have been (02:30 becomes 03:30).
func onDay(at string, loc *time.Location, t time.Time, days int) time.Time {
	h, m, ok := clockOf(at)
	if !ok {
		return time.Time{}
	}
	y, mo, d := t.In(loc).Date()
	return time.Date(y, mo, d+days, h, m, 0, 0, loc).UTC()
}

// latestDaily is the latest instant at or before now that is at (HH:MM) in loc.
func latestDaily(at string, loc *time.Location, now time.Time) time.Time {
	for days := 0; days >= -2; days-- {
		if s := onDay(at, loc, now, days); !s.IsZero() && !s.After(now) {
			return s
		}
	}
	return time.Time{}
}

// nextDaily is the first instant after t that is at in loc.
func nextDaily(at string, loc *time.Location, t time.Time) time.Time {
	for days := 0; days <= 2; days++ {
		if s := onDay(at, loc, t, days); !s.IsZero() && s.After(t) {
			return s
		}
	}
	return time.Time{}
}

// dayStart is the instant the local day of t starts in loc: a slot falls on a later day
// of a firm's calendar than its last run exactly when the run came before the slot's
// day began.
func dayStart(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// firmSlots reads the record's firms: each firm the record names → the slot of its
// last run of the day. A firm it does not name had its last at rec.Slot (the default
// group's), as every firm did before firms kept hours.
func firmSlots(rec record) map[string]time.Time {
	out := map[string]time.Time{}
	for slot, ids := range rec.Firms {
		t, err := time.Parse(time.RFC3339, slot)
		if err != nil {
			continue
		}
		for _, id := range ids {
			if cur, ok := out[id]; !ok || t.After(cur) {
				out[id] = t
			}
		}
	}
	return out
}

// packFirms writes firms' last slots back in the record's form, one list per slot.
func packFirms(last map[string]time.Time) map[string][]string {
	if len(last) == 0 {
		return nil
	}
	out := map[string][]string{}
	keys := map[int64]string{} // each slot formatted once: a few slots, many firms
	for id, t := range last {
		k, ok := keys[t.Unix()]
		if !ok {
			k = t.UTC().Format(time.RFC3339)
			keys[t.Unix()] = k
		}
		out[k] = append(out[k], id)
	}
	return out // each list in no order: the record is read by firm, never by position
}

// owed: some of the group's firms are due at its slot (to fire, or to record paused or
// missed).
func (g *dailyGroup) owed() bool { return len(g.fire)+len(g.paused)+len(g.missed) > 0 }

// decideDaily is the daily protocol, as a pure function of what the ticker read.
//
// A firm is due when its latest slot (its time of day in its zone, at or before now)
// falls on a later day of its own calendar than its last run of the day, and came no
// earlier than the operator's last change of the job: a firm is never run twice on one
// of its days, and a day is never skipped because its hour moved. So a firm that moves
// to a later hour after that day's run waits for the next day; one that moves to a later
// hour before it runs at the new hour; one that moves to an hour already past, before
// the day's run, runs at once (late, as a catch-up). A due slot older than the job's
// max age is recorded missed; days skipped before it (no ticker ran) are announced
// missed, the latest of them per group.
func decideDaily(in dailyInput) dailyPlan {
	p := dailyPlan{rec: in.rec}
	p.rec.Pending = nil
	// last is read only until the decision changes something (most wake-ups change
	// nothing): then it is copied, and the copy is written.
	last := in.last
	if last == nil {
		last = firmSlots(in.rec)
	}
	known := in.known
	if known == nil {
		known = make(map[string]bool, len(in.firms))
		for _, f := range in.firms {
			known[f.id] = true
		}
	}
	defaultSlot := latestDaily(in.defaultAt, in.fallback, in.now)
	defaultLabel := groupLabel(in.fallback.String(), in.defaultAt)

	groups := map[string]*dailyGroup{}
	numbered := make([]*dailyGroup, len(in.firms)) // by dailyFirm.group
	groupOf := func(f dailyFirm) *dailyGroup {
		if g := numbered[f.group]; g != nil {
			return g
		}
		g := &dailyGroup{label: f.label, loc: f.loc, at: f.at, isDefault: f.label == defaultLabel, skipped: map[time.Time][]string{}}
		if g.isDefault {
			g.slot = defaultSlot
		} else {
			g.slot = latestDaily(f.at, f.loc, in.now)
		}
		if !g.slot.IsZero() {
			g.day = dayStart(g.slot, g.loc)
			g.before = latestDaily(g.at, g.loc, g.slot.Add(-time.Second))
		}
		numbered[f.group], groups[f.label] = g, g
		return g
	}

	if in.rev == 0 {
		// First start ever: every firm counts from its latest slot; nothing is fired.
		p.rec = record{Slot: defaultSlot, State: stateBaseline, By: in.self, At: in.now}
		last = maps.Clone(last)
		for _, f := range in.firms {
			if g := groupOf(f); !g.isDefault && !g.slot.IsZero() {
				last[f.id] = g.slot
			} else {
				delete(last, f.id)
			}
		}
		p.rec.Firms, p.last = packFirms(last), last
		p.changed, p.baseline = true, true
		p.logs = append(p.logs, "first start: counting slots from here, nothing fired")
		return p
	}

	named := 0 // known firms that last names: when it names others too, they are dropped
	lastOf := func(id string) time.Time {
		if t, ok := last[id]; ok {
			named++
			return t
		}
		return in.rec.Slot
	}
	floor := func(t time.Time) time.Time {
		if in.cfg.UpdatedAt.After(t) {
			return in.cfg.UpdatedAt.Add(-time.Nanosecond)
		}
		return t
	}
	// due sorts a firm (id "" is every firm the ticker does not know: the default group
	// with no known firm) into its group's fire, paused or missed list.
	due := func(g *dailyGroup, id string) bool {
		prev := lastOf(id)
		if g.slot.IsZero() || g.slot.Before(in.cfg.UpdatedAt) || !prev.Before(g.day) {
			return false
		}
		switch {
		case in.cfg.Paused:
			g.paused = append(g.paused, id)
		case in.now.Sub(g.slot) > in.job.MaxAge:
			g.missed = append(g.missed, id)
		default:
			g.fire = append(g.fire, id)
		}
		// The day before the slot's, if it too was owed and not run: missed while no
		// ticker ran (only the latest slot is ever caught up).
		if before := g.before; !before.IsZero() && before.After(floor(prev)) && !prev.IsZero() {
			g.skipped[before] = append(g.skipped[before], id)
		}
		return true
	}
	for _, f := range in.firms {
		due(groupOf(f), f.id)
	}
	strangers := len(last) > named
	def := groups[defaultLabel]
	if def == nil {
		def = &dailyGroup{label: defaultLabel, loc: in.fallback, at: in.defaultAt, slot: defaultSlot, isDefault: true, skipped: map[time.Time][]string{}}
		if !defaultSlot.IsZero() {
			def.day = dayStart(defaultSlot, in.fallback)
			def.before = latestDaily(in.defaultAt, in.fallback, defaultSlot.Add(-time.Second))
		}
	}
	// The default group's slot for every firm fires when it is newer than the record's,
	// for the default group's due firms, or, when the ticker knows no firm at all, for
	// every firm as before firms kept hours. A default-group firm that is due while the
	// slot is settled (it moved into the group) is fired by name, as any group's.
	defaultFires := defaultSlot.After(in.rec.Slot) && !defaultSlot.IsZero() &&
		(len(def.fire)+len(def.paused)+len(def.missed) > 0 || (len(in.firms) == 0 && due(def, "")))
	owed := defaultFires
	for _, g := range groups {
		owed = owed || g.owed()
	}
	if !owed {
		return p // nothing is due: the record stays as it is
	}
	last = maps.Clone(last)
	// Groups in the order of their slots, earliest first.
	labels := slices.SortedFunc(maps.Keys(groups), func(a, b string) int {
		if c := groups[a].slot.Compare(groups[b].slot); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	marks := maps.Clone(in.rec.Groups)
	if marks == nil {
		marks = map[string]groupMark{}
	}
	for label := range marks {
		if groups[label] == nil && label != defaultLabel {
			delete(marks, label) // no firm is in the group any more
		}
	}
	status := func(slot time.Time, scope *events.Scope) events.Status {
		return events.Status{JobName: in.job.Name, State: events.StateMissed, Slot: slot, At: in.now, Instance: in.self, Scope: scope}
	}

	if defaultFires {
		// Every firm but the known ones not due in the default group now.
		dueHere := map[string]bool{}
		for _, list := range [][]string{def.fire, def.paused, def.missed} {
			for _, id := range list {
				dueHere[id] = true
			}
		}
		var except []string
		for _, f := range in.firms {
			if !dueHere[f.id] {
				except = append(except, f.id)
				if _, ok := last[f.id]; !ok && !in.rec.Slot.IsZero() {
					last[f.id] = in.rec.Slot // its last run is no longer the record's slot
				}
			}
		}
		for id := range dueHere {
			delete(last, id)
		}
		var scope *events.Scope
		if len(except) > 0 {
			slices.Sort(except)
			scope = &events.Scope{All: true, Except: except}
		}
		prevSlot := in.rec.Slot
		p.rec.Slot, p.rec.By, p.rec.At = defaultSlot, in.self, in.now
		switch {
		case in.cfg.Paused:
			p.rec.State = statePaused
			p.paused++
			p.logs = append(p.logs, "slot skipped: job paused")
		case in.now.Sub(defaultSlot) > in.job.MaxAge:
			p.rec.State = stateMissed
			p.missed = append(p.missed, status(defaultSlot, scope))
			p.logs = append(p.logs, fmt.Sprintf("slot %s missed: too late to fire (max age %s)", defaultSlot.Format(time.RFC3339), in.job.MaxAge))
		default:
			p.rec.State = stateClaimed
			p.fires = append(p.fires, pendingSlot{
				MsgID:    events.GroupMsgID(in.job.Name, defaultSlot, ""),
				Schedule: events.Schedule{JobName: in.job.Name, Slot: defaultSlot, Scope: scope},
			})
			marks[defaultLabel] = groupMark{Slot: defaultSlot, N: 1}
		}
		if before := latestDaily(in.defaultAt, in.fallback, defaultSlot.Add(-time.Second)); !prevSlot.IsZero() && before.After(floor(prevSlot)) {
			p.missed = append(p.missed, status(before, scope))
			p.logs = append(p.logs, fmt.Sprintf("slots missed while no ticker was running: the latest, %s, is announced; %s is fired instead", before.Format(time.RFC3339), defaultSlot.Format(time.RFC3339)))
		}
		def.fire, def.paused, def.missed, def.skipped = nil, nil, nil, nil
	}

	for _, label := range labels {
		g := groups[label]
		if defaultFires && g.isDefault {
			continue
		}
		for _, id := range slices.Concat(g.fire, g.paused, g.missed) {
			last[id] = g.slot
		}
		if len(g.fire) > 0 {
			n := 1
			if m := marks[label]; m.Slot.Equal(g.slot) {
				n = m.N + 1
			}
			marks[label] = groupMark{Slot: g.slot, N: n}
			name := label
			if n > 1 {
				name += "~" + strconv.Itoa(n)
			}
			scope := events.ScopeFirms(g.fire)
			p.fires = append(p.fires, pendingSlot{
				MsgID:    events.GroupMsgID(in.job.Name, g.slot, name),
				Schedule: events.Schedule{JobName: in.job.Name, Slot: g.slot, Group: name, Scope: &scope},
			})
		}
		if len(g.paused) > 0 {
			p.paused++
			p.logs = append(p.logs, fmt.Sprintf("slot of %s skipped for %d firm(s): job paused", label, len(g.paused)))
		}
		if len(g.missed) > 0 {
			scope := events.ScopeFirms(g.missed)
			p.missed = append(p.missed, status(g.slot, &scope))
			p.logs = append(p.logs, fmt.Sprintf("slot of %s missed for %d firm(s): too late to fire (max age %s)", label, len(g.missed), in.job.MaxAge))
		}
		for _, before := range slices.SortedFunc(maps.Keys(g.skipped), time.Time.Compare) {
			scope := events.ScopeFirms(g.skipped[before])
			p.missed = append(p.missed, status(before, &scope))
			p.logs = append(p.logs, fmt.Sprintf("slots of %s missed while no ticker was running, for %d firm(s): the latest, %s, is announced", label, len(scope.Firms), before.Format(time.RFC3339)))
		}
		if g.owed() {
			p.changed = true
		}
	}
	if defaultFires {
		p.changed = true
	}
	if !p.changed {
		return p
	}
	if len(in.firms) > 0 && strangers {
		for id := range last {
			if !known[id] {
				delete(last, id) // a firm that is no more
			}
		}
	}
	p.rec.Firms, p.last = packFirms(last), last
	p.rec.Groups = marks
	if len(marks) == 0 {
		p.rec.Groups = nil
	}
	if len(p.fires) > 0 {
		p.rec.State, p.rec.By, p.rec.At, p.rec.Pending = stateClaimed, in.self, in.now, p.fires
	}
	return p
}

// nextDailyWake is the earliest slot of any of the job's groups after now.
func nextDailyWake(in dailyInput) time.Time {
	next := nextDaily(in.defaultAt, in.fallback, in.now)
	seen := make([]bool, len(in.firms)) // by dailyFirm.group
	for _, f := range in.firms {
		if seen[f.group] {
			continue
		}
		seen[f.group] = true
		if n := nextDaily(f.at, f.loc, in.now); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	return next
}

// settleDaily brings a daily job whose firms keep their own hours up to date at now:
// it publishes what a claim left unpublished, then decides on the record (cached, so a
// wake-up with nothing due reads nothing) and carries the decision out with a
// compare-and-set on the record's revision: claim the groups' slots, publish them, mark
// them published.
func (t *Ticker) settleDaily(ctx context.Context, j *jobTicker, now time.Time, cfg jobstate.Config, defaultAt string) error {
	gen := t.configs.generation() + t.firmsGen
	if j.cached != nil && j.lookAgain.IsZero() && now.Before(j.quietUntil) && gen == j.quietGen {
		return nil
	}
	j.lookAgain, j.quietUntil = time.Time{}, time.Time{}
	firms, known := t.dailyFirms(j, defaultAt, gen)
	in := dailyInput{now: now, job: j.job, cfg: cfg, defaultAt: defaultAt, fallback: t.cfg.Location, firms: firms, known: known, self: t.cfg.Instance}
	for range 5 {
		fresh := j.cached == nil
		if fresh {
			rec, rev, err := jobstate.Get[record](ctx, t.buckets.Ticker, j.job.Name)
			j.unreadable = errors.Is(err, jobstate.ErrUndecodable)
			if j.unreadable {
				// Decided as at a first start (no old slot is owed); the write replaces it.
				t.log.Error("ticker record unreadable; deciding as at a first start", "job_name", j.job.Name, "err", err)
				err = nil
			}
			if err != nil {
				return err
			}
			j.cached, j.cachedRev = &rec, rev
		}
		rec, rev := *j.cached, j.cachedRev
		if rec.State == stateClaimed && rev > 0 {
			if !fresh {
				// Whose claim it is and how old, and whether it is still unpublished, is
				// decided on the latest record only.
				j.cached = nil
				continue
			}
			done, err := t.publishPending(ctx, j, rec, rev, now)
			if err != nil || !done {
				return err
			}
			continue
		}
		if j.lastIndex == nil || j.lastIndexRev != rev {
			j.lastIndex, j.lastIndexRev = firmSlots(rec), rev
		}
		in.rec, in.rev, in.last = rec, rev, j.lastIndex
		if j.unreadable {
			in.rev = 0
		}
		p := decideDaily(in)
		if !p.changed {
			t.noteOthersSlots(j, rec, groupLabel(t.cfg.Location.String(), defaultAt))
			j.quietUntil, j.quietGen = nextDailyWake(in), gen
			return nil
		}
		newRev, won, err := t.write(ctx, j, rev, p.rec)
		if err != nil {
			return err
		}
		if !won {
			// Another ticker wrote first: decide again on what it wrote.
			for _, f := range p.fires {
				t.lostDaily(j, f.MsgID)
			}
			j.cached = nil
			continue
		}
		log := t.log.With("job_name", j.job.Name)
		for _, l := range p.logs {
			log.Info(l)
		}
		if p.paused > 0 {
			t.metrics.slots.WithLabelValues(j.job.Name, outcomePaused).Add(float64(p.paused))
		}
		for _, m := range p.missed {
			t.metrics.slots.WithLabelValues(j.job.Name, outcomeMissed).Inc()
			j.announce = append(j.announce, m)
		}
		j.cached, j.cachedRev, j.unreadable = &p.rec, newRev, false
		j.lastIndex, j.lastIndexRev = p.last, newRev
		for _, f := range p.fires {
			j.ownIDs = appendCapped(j.ownIDs, f.MsgID)
		}
		j.seenMarks = seenAs(p.rec.Groups)
		if len(p.fires) > 0 {
			done, err := t.publishPending(ctx, j, p.rec, newRev, now)
			if err != nil {
				return err
			}
			if !done {
				continue // the mark was not written: decide on what is there now
			}
		}
		// The decision took every group due at now: the next is at a later slot.
		j.quietUntil, j.quietGen = nextDailyWake(in), gen
		return nil
	}
	return fmt.Errorf("ticker: %s: the record kept changing", j.job.Name)
}

// publishPending publishes the slots a claim holds and marks them published. A claim of
// another ticker is left alone until it is staleClaim old (its owner died); one older
// than the job's max age is given up as missed. done is false when the caller must
// read the record again (it was written in between) or wait (lookAgain is set).
func (t *Ticker) publishPending(ctx context.Context, j *jobTicker, rec record, rev uint64, now time.Time) (done bool, err error) {
	pending := rec.Pending
	if len(pending) == 0 {
		// A claim written before firms kept hours: the slot of every firm.
		pending = []pendingSlot{{MsgID: events.ScheduleMsgID(j.job.Name, rec.Slot), Schedule: events.Schedule{JobName: j.job.Name, Slot: rec.Slot}}}
	}
	log := t.log.With("job_name", j.job.Name)
	if rec.By != t.cfg.Instance && now.Sub(rec.At) < staleClaim {
		for _, p := range pending {
			t.lostDaily(j, p.MsgID)
		}
		j.lookAgain = rec.At.Add(staleClaim)
		return false, nil
	}
	if rec.By != t.cfg.Instance {
		log.Warn("publishing slots another ticker claimed and never published", "claimed_by", rec.By, "claimed_at", rec.At, "slots", len(pending))
	}
	for _, p := range pending {
		if now.Sub(p.Schedule.Slot) > j.job.MaxAge {
			log.Warn("slot missed: not published within the job's max age, giving up", "slot", p.Schedule.Slot, "group", p.Schedule.Group, "max_age", j.job.MaxAge)
			t.metrics.slots.WithLabelValues(j.job.Name, outcomeMissed).Inc()
			j.announce = append(j.announce, events.Status{JobName: j.job.Name, State: events.StateMissed, Slot: p.Schedule.Slot, At: now, Instance: t.cfg.Instance, Scope: p.Schedule.Scope})
			continue
		}
		if err := t.publish(ctx, events.ScheduleSubject(j.job.Name), p.MsgID, p.Schedule); err != nil {
			// The record stays "claimed": the retry publishes the same messages.
			log.Warn("slot not published, will retry until its max age", "slot", p.Schedule.Slot, "group", p.Schedule.Group, "give_up_at", p.Schedule.Slot.Add(j.job.MaxAge), "err", err)
			return false, err
		}
		t.metrics.slots.WithLabelValues(j.job.Name, outcomePublished).Inc()
		scope := "every firm"
		if s := p.Schedule.Scope; s != nil && !s.All {
			scope = fmt.Sprintf("%d firm(s)", len(s.Firms))
		} else if s != nil {
			scope = fmt.Sprintf("every firm but %d", len(s.Except))
		}
		log.Info("slot published", "slot", p.Schedule.Slot, "group", p.Schedule.Group, "for", scope, "late_by", now.Sub(p.Schedule.Slot))
	}
	marked := rec
	marked.State, marked.Pending, marked.By, marked.At = statePublished, nil, t.cfg.Instance, now
	newRev, won, err := t.write(ctx, j, rev, marked)
	switch {
	case err != nil || !won:
		// Harmless: the events are out. A record left "claimed" is published again under
		// the same message ids, which JetStream and the worker both drop.
		log.Warn("slots published but not marked so", "err", err)
		j.cached = nil
		return false, nil
	}
	if j.lastIndexRev == rev {
		j.lastIndexRev = newRev // the mark keeps the firms as they were
	}
	j.cached, j.cachedRev = &marked, newRev
	return true, nil
}

// noteOthersSlots counts, once each, the groups' slots another ticker fired since this
// one last looked (it finds them in the record's marks, which it did not write).
func (t *Ticker) noteOthersSlots(j *jobTicker, rec record, defaultLabel string) {
	if j.seenMarks != nil {
		for label, m := range rec.Groups {
			if old, ok := j.seenMarks[label]; ok && old == m {
				continue
			}
			name := label
			if m.N > 1 {
				name += "~" + strconv.Itoa(m.N)
			} else if label == defaultLabel {
				name = ""
			}
			id := events.GroupMsgID(j.job.Name, m.Slot, name)
			if !slices.Contains(j.ownIDs, id) {
				t.lostDaily(j, id)
			}
		}
	}
	j.seenMarks = seenAs(rec.Groups)
}

// seenAs is a record's marks as the ticker keeps them once it has seen the record:
// never nil, which means "not looked yet" (marks found at the first look after a start
// were fired before it, and are not counted lost_race). A ticker whose first write was
// its first start's baseline, which has no marks, has looked.
func seenAs(marks map[string]groupMark) map[string]groupMark {
	if marks == nil {
		return map[string]groupMark{}
	}
	return marks
}

func appendCapped(ids []string, id string) []string {
	if len(ids) >= 1000 {
		ids = ids[len(ids)-500:]
	}
	return append(ids, id)
}

func (t *Ticker) lostDaily(j *jobTicker, msgID string) {
	if j.lostIDs == nil {
		j.lostIDs = map[string]bool{}
	}
	if j.lostIDs[msgID] {
		return
	}
	if len(j.lostIDs) > 1000 {
		clear(j.lostIDs)
	}
	j.lostIDs[msgID] = true
	t.metrics.slots.WithLabelValues(j.job.Name, outcomeLostRace).Inc()
	t.log.Debug("slot taken by another ticker", "job_name", j.job.Name, "msg_id", msgID)
}

// dailyFirms is every known firm with its zone and its time of day for the job, kept
// until the firms or the config change (gen).
func (t *Ticker) dailyFirms(j *jobTicker, defaultAt string, gen uint64) ([]dailyFirm, map[string]bool) {
	if j.firmsList != nil && j.firmsListGen == gen && j.firmsListAt == defaultAt {
		return j.firmsList, j.firmsKnown
	}
	own := t.configs.firmsAt(j.job.Name)
	out := make([]dailyFirm, 0, len(t.firms))
	known := make(map[string]bool, len(t.firms))
	for _, f := range t.firms {
		at := own[f.id]
		if at == "" {
			at = defaultAt
		}
		out = append(out, dailyFirm{id: f.id, loc: f.loc, at: at})
		known[f.id] = true
	}
	out = numberGroups(out)
	j.firmsList, j.firmsKnown, j.firmsListGen, j.firmsListAt = out, known, gen, defaultAt
	return out, known
}
