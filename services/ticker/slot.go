package ticker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobstate"
)

// States of a record in the ticker bucket.
const (
	stateClaimed   = "claimed"   // a ticker is publishing the slot (or died doing so)
	statePublished = "published" // the schedule event is in JetStream
	stateMissed    = "missed"    // too late to fire: a missed status was published instead
	statePaused    = "paused"    // the job was paused when the slot came due
	stateBaseline  = "baseline"  // first start ever: the slot is where counting starts
)

// record is a job's value in the ticker bucket: the latest slot a ticker settled (for
// a daily job whose firms keep their own hours, the default group's: see daily.go).
type record struct {
	Slot  time.Time `json:"slot"`
	State string    `json:"state"`
	By    string    `json:"by"`
	At    time.Time `json:"at"`
	// Firms, for a daily job, is each firm whose last run of the day was not at Slot,
	// by that run's slot (RFC 3339): a firm with its own zone or hour, or that moved.
	Firms map[string][]string `json:"firms,omitempty"`
	// Groups is each group's latest slot fired, and how often it was.
	Groups map[string]groupMark `json:"groups,omitempty"`
	// Pending is the groups' slots claimed (State claimed) and not yet published.
	Pending []pendingSlot `json:"pending,omitempty"`
}

// carry keeps a daily job's firms in a record written by the single-schedule path, so
// that an operator's schedule for every firm and back loses no firm's day.
func (r record) carry(from record) record {
	r.Firms, r.Groups = from.Firms, from.Groups
	return r
}

// encode is the record as JSON, as json.Marshal writes it but for the order of its
// fields (firms first). Firms is written without reflection: it names up to every firm
// (40 KB for 1,000), and a group's slot writes the record twice.
func (r record) encode() ([]byte, error) {
	firms := r.Firms
	r.Firms = nil
	rest, err := json.Marshal(r)
	if err != nil || len(firms) == 0 {
		return rest, err
	}
	n := len(rest) + 16
	for k, ids := range firms {
		n += len(k) + 4 + len(ids)*40
	}
	b := append(make([]byte, 0, n), `{"firms":{`...)
	for i, k := range slices.Sorted(maps.Keys(firms)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':', '[')
		for i, id := range firms[k] {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, id)
		}
		b = append(b, ']')
	}
	b = append(b, '}', ',')
	return append(b, rest[1:]...), nil // rest is an object with fields: slot, state, …
}

// appendJSONString appends s as a JSON string: as it is when nothing in it needs
// escaping (a firm's id, a slot's time), else as encoding/json writes it.
func appendJSONString(b []byte, s string) []byte {
	for i := range len(s) {
		if escaped[s[i]] {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// escaped is the bytes encoding/json does not write as they are.
var escaped = func() (e [256]bool) {
	for c := range 256 {
		e[c] = c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&'
	}
	return e
}()

// jobTicker is what the loop remembers about one job between wake-ups.
type jobTicker struct {
	job catalog.Job
	// expr is the effective schedule, as last read from the config bucket.
	expr string
	// override is the config's schedule as last read, so a bad one is logged once.
	override string
	// unreadable: the cached ticker record could not be decoded; decided as at a first
	// start until a write replaces it.
	unreadable bool
	// settled is the latest slot this ticker has decided; it is not looked at again
	// unless lookAgain comes due.
	settled time.Time
	// lookAgain is when to retry after an error, or when another ticker's claim on the
	// settled slot goes stale.
	lookAgain time.Time
	attempt   int
	// lost is the latest slot counted as lost_race, so a slot is counted once.
	lost time.Time
	// failing is a slot this ticker claimed but could not publish yet: if a newer slot
	// supersedes it, it is announced as missed.
	failing time.Time
	// announce holds missed status events not yet published.
	announce []events.Status

	// Daily jobs whose firms keep their own hours (daily.go): the record as last read or
	// written, so a wake-up with nothing due reads nothing (any decision is still a
	// compare-and-set on its revision); quietUntil is the next slot of any group, and gen
	// the config and firms it was computed on.
	cached     *record
	cachedRev  uint64
	quietUntil time.Time
	quietGen   uint64
	lostIDs    map[string]bool
	// The firms as the daily decision reads them, and the record's firms parsed, kept
	// while they do not change.
	firmsList    []dailyFirm
	firmsKnown   map[string]bool
	firmsListGen uint64
	firmsListAt  string
	lastIndex    map[string]time.Time
	lastIndexRev uint64
	// seenMarks are the groups' marks as this ticker last saw them, ownIDs the slots it
	// fired, so a slot another ticker fired is counted lost_race once.
	seenMarks map[string]groupMark
	ownIDs    []string
}

// step is what a ticker does about a job's latest slot.
type step int

const (
	stepNone     step = iota // the record is at this slot or later: someone settled it
	stepWatch                // another ticker's fresh claim: look again when it goes stale
	stepSkip                 // the slot is older than the last config change: not owed
	stepBaseline             // no record, first start: count from here, fire nothing
	stepPause                // paused: record the slot so resuming does not catch it up
	stepMiss                 // too old to fire: record it missed and say so
	stepFire                 // claim the slot and publish it
	stepRetry                // the slot is claimed but unpublished (our failed attempt, or a dead ticker's): publish it
)

var stepNames = [...]string{"none", "watch", "skip", "baseline", "pause", "miss", "fire", "retry"}

func (s step) String() string { return stepNames[s] }

// plan is a decision about one slot.
type plan struct {
	step step
	// lost is set when another ticker has, or had, this slot.
	lost bool
	// until is, for stepWatch, when the other ticker's claim goes stale.
	until time.Time
}

// decide is the whole protocol, as a pure function of what the ticker read: the record
// (rev 0: none), the job's latest slot at or before now, and the job's config. since is
// when this ticker started: a missing record before it means a first start.
func decide(rec record, rev uint64, slot, now, since time.Time, job catalog.Job, cfg jobstate.Config, self string) plan {
	if rev > 0 && rec.Slot.Equal(slot) && rec.State == stateClaimed {
		if rec.By != self && now.Sub(rec.At) < staleClaim {
			return plan{step: stepWatch, lost: true, until: rec.At.Add(staleClaim)}
		}
		if now.Sub(slot) > job.MaxAge {
			return plan{step: stepMiss}
		}
		return plan{step: stepRetry}
	}
	if rev > 0 && !rec.Slot.Before(slot) {
		return plan{step: stepNone, lost: rec.Slot.Equal(slot) && rec.State == statePublished && rec.By != self}
	}
	if rev == 0 && slot.Before(since) {
		return plan{step: stepBaseline}
	}
	if slot.Before(cfg.UpdatedAt) {
		return plan{step: stepSkip}
	}
	if cfg.Paused {
		return plan{step: stepPause}
	}
	if now.Sub(slot) > job.MaxAge {
		return plan{step: stepMiss}
	}
	return plan{step: stepFire}
}

// lookback is how far back the latest slot is searched for: far enough to find a slot
// still within MaxAge, and a missed one to report, for any schedule the catalog has.
func lookback(job catalog.Job) time.Duration {
	return max(2*job.MaxAge, 48*time.Hour)
}

// settle brings one job up to date at now. Errors are retried with backoff by the loop.
func (t *Ticker) settle(ctx context.Context, j *jobTicker, now time.Time) {
	// A turn that has begun finishes even when the ticker is stopping: abandoning it
	// between claim and publish would leave a slot for staleClaim to rescue.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()
	// A status stream in trouble must not hold up the schedule: announce after settling.
	if err := errors.Join(t.settleSlot(ctx, j, now), t.flushAnnouncements(ctx, j)); err != nil {
		j.attempt++
		j.lookAgain = now.Add(backoff(j.attempt))
		t.log.Warn("job not settled, will retry", "job_name", j.job.Name, "retry_at", j.lookAgain, "attempt", j.attempt, "err", err)
		return
	}
	j.attempt = 0
}

// backoff doubles from 1s up to a minute.
func backoff(attempt int) time.Duration {
	return min(time.Second<<min(attempt-1, 6), time.Minute)
}

func (t *Ticker) settleSlot(ctx context.Context, j *jobTicker, now time.Time) error {
	cfg := t.configs.job(j.job.Name)
	t.useSchedule(j, cfg.Schedule)
	if defaultAt, daily := catalog.DailyAt(j.expr); daily && j.job.FirmHours {
		return t.settleDaily(ctx, j, now, cfg, defaultAt)
	}
	j.cached = nil
	slot, ok, err := catalog.Prev(j.expr, t.cfg.Location, now, lookback(j.job))
	if err != nil || !ok {
		return err
	}
	slot = slot.UTC()
	if slot.Equal(j.settled) && (j.lookAgain.IsZero() || now.Before(j.lookAgain)) {
		return nil
	}
	j.lookAgain = time.Time{}
	// A lost compare-and-set means the record changed under us: decide again on what
	// the winner wrote. Two rounds settle any race; the third is slack.
	for range 3 {
		rec, rev, err := jobstate.Get[record](ctx, t.buckets.Ticker, j.job.Name)
		decideRev := rev
		if errors.Is(err, jobstate.ErrUndecodable) {
			// Decided as at a first start (nothing recorded, so no old slot is owed); the
			// compare-and-set writes over it.
			t.log.Error("ticker record unreadable; deciding as at a first start", "job_name", j.job.Name, "err", err)
			err, decideRev = nil, 0
		}
		if err != nil {
			return err
		}
		if rec.State == stateClaimed && len(rec.Pending) > 0 {
			// A daily job's groups claimed before the schedule stopped being daily: publish
			// them first.
			if done, err := t.publishPending(ctx, j, rec, rev, now); !done || err != nil {
				return err
			}
			continue
		}
		p := decide(rec, decideRev, slot, now, t.started, j.job, cfg, t.cfg.Instance)
		if p.lost {
			t.lostRace(j, slot)
		}
		done, err := t.apply(ctx, j, p, rec, rev, slot, now, cfg)
		if done {
			j.settled = slot
		}
		if done || err != nil {
			return err
		}
	}
	return fmt.Errorf("ticker: %s slot %s: the record kept changing", j.job.Name, slot.Format(time.RFC3339))
}

// useSchedule makes the override the effective schedule, unless it does not parse.
func (t *Ticker) useSchedule(j *jobTicker, override string) {
	expr := j.job.Schedule
	if override != "" {
		if _, err := catalog.ParseSchedule(override); err == nil {
			expr = override
		} else if override != j.override {
			// The gateway validates overrides; this is a hand-written key. Say so once.
			t.log.Error("schedule override ignored, using the default", "job_name", j.job.Name, "override", override, "default", expr, "err", err)
		}
	}
	j.override = override
	if expr != j.expr {
		t.log.Info("schedule in effect", "job_name", j.job.Name, "schedule", expr, "description", catalog.Describe(expr))
		j.expr = expr
	}
}

// apply carries out a plan. done reports that the slot is decided; false with a nil
// error means another ticker wrote first and the caller decides again.
func (t *Ticker) apply(ctx context.Context, j *jobTicker, p plan, rec record, rev uint64, slot, now time.Time, cfg jobstate.Config) (done bool, err error) {
	log := t.log.With("job_name", j.job.Name, "slot", slot)
	switch p.step {
	case stepNone, stepSkip:
		return true, nil
	case stepWatch:
		j.lookAgain = p.until
		return true, nil
	case stepBaseline:
		if _, won, err := t.write(ctx, j, 0, record{Slot: slot, State: stateBaseline, By: t.cfg.Instance, At: now}.carry(rec)); !won {
			return false, err
		}
		log.Info("first start: counting slots from here, nothing fired")
		return true, nil
	case stepPause:
		if _, won, err := t.write(ctx, j, rev, record{Slot: slot, State: statePaused, By: t.cfg.Instance, At: now}.carry(rec)); !won {
			return false, err
		}
		t.superseded(j, rec, slot, now)
		t.metrics.slots.WithLabelValues(j.job.Name, outcomePaused).Inc()
		log.Info("slot skipped: job paused")
		return true, nil
	case stepMiss:
		if _, won, err := t.write(ctx, j, rev, record{Slot: slot, State: stateMissed, By: t.cfg.Instance, At: now}.carry(rec)); !won {
			return false, err
		}
		if rec.Slot.Equal(slot) {
			log.Warn("slot missed: not published within the job's max age, giving up", "max_age", j.job.MaxAge)
			j.failing = time.Time{}
		} else {
			t.superseded(j, rec, slot, now)
			log.Warn("slot missed: too late to fire", "age", now.Sub(slot), "max_age", j.job.MaxAge)
		}
		t.skipped(j, rec, rev, slot, now, cfg)
		t.missed(j, slot, now)
		return true, nil
	case stepFire, stepRetry:
		if p.step == stepRetry && rec.By != t.cfg.Instance {
			log.Warn("publishing a slot another ticker claimed and never published", "claimed_by", rec.By, "claimed_at", rec.At)
		}
		rev, won, err := t.write(ctx, j, rev, record{Slot: slot, State: stateClaimed, By: t.cfg.Instance, At: now}.carry(rec))
		if !won {
			if err == nil {
				t.lostRace(j, slot)
			}
			return false, err
		}
		t.superseded(j, rec, slot, now)
		if p.step == stepFire {
			t.skipped(j, rec, rev, slot, now, cfg)
		}
		msg := events.Schedule{JobName: j.job.Name, Slot: slot}
		if err := t.publish(ctx, events.ScheduleSubject(j.job.Name), events.ScheduleMsgID(j.job.Name, slot), msg); err != nil {
			// The record stays "claimed" by us: the retry republishes the same slot.
			j.failing = slot
			log.Warn("slot not published, will retry until its max age", "give_up_at", slot.Add(j.job.MaxAge), "err", err)
			return false, err
		}
		j.failing = time.Time{}
		t.metrics.slots.WithLabelValues(j.job.Name, outcomePublished).Inc()
		log.Info("slot published", "late_by", now.Sub(slot))
		if _, won, err := t.write(ctx, j, rev, record{Slot: slot, State: statePublished, By: t.cfg.Instance, At: now}.carry(rec)); !won {
			// Harmless: the event is out. A record left "claimed" is republished under
			// the same message id, which JetStream and the worker both drop.
			log.Warn("slot published but not marked so", "err", err)
		}
		return true, nil
	}
	return false, fmt.Errorf("ticker: unknown step %v", p.step)
}

// superseded announces, as missed, a slot of ours whose publish kept failing until a
// newer slot replaced its record. Another ticker's unpublished claim is not announced:
// it may have published and died before marking it.
func (t *Ticker) superseded(j *jobTicker, prev record, slot, now time.Time) {
	if prev.State != stateClaimed || !prev.Slot.Before(slot) {
		return
	}
	if !j.failing.IsZero() && prev.Slot.Equal(j.failing) {
		t.log.Warn("slot never published before the next one came due", "job_name", j.job.Name, "slot", prev.Slot)
		j.failing = time.Time{}
		t.missed(j, prev.Slot, now)
		return
	}
	t.log.Warn("an older claim was never marked published; the newer slot replaces it",
		"job_name", j.job.Name, "claimed_slot", prev.Slot, "claimed_by", prev.By, "slot", slot)
}

// skipped records the slots that fell due while no ticker ran and that catch-up does
// not fire (only the latest slot is ever caught up): the latest of them is announced as
// missed, with how many there were in the log. Slots before the operator's last change
// (a pause, a resume, a new schedule) are not owed, so they are not missed either.
func (t *Ticker) skipped(j *jobTicker, rec record, rev uint64, slot, now time.Time, cfg jobstate.Config) {
	// No slot recorded (no record, or one that is not a record): nothing is known to
	// have been skipped, and counting from year 1 would take seconds.
	if rev == 0 || rec.Slot.IsZero() {
		return
	}
	sched, err := catalog.ParseSchedule(j.expr)
	if err != nil {
		return
	}
	floor := rec.Slot
	if cfg.UpdatedAt.After(floor) {
		floor = cfg.UpdatedAt.Add(-time.Nanosecond)
	}
	var last time.Time
	n := 0
	for next := sched.Next(floor.In(t.cfg.Location)); next.Before(slot) && n < 100000; next = sched.Next(next) {
		last, n = next.UTC(), n+1
	}
	if n == 0 {
		return
	}
	t.log.Warn("slots missed while no ticker was running", "job_name", j.job.Name, "count", n, "from", floor, "latest_missed", last, "fired_instead", slot)
	t.missed(j, last, now)
}

// missed counts a missed slot and queues its status event.
func (t *Ticker) missed(j *jobTicker, slot, now time.Time) {
	t.metrics.slots.WithLabelValues(j.job.Name, outcomeMissed).Inc()
	j.announce = append(j.announce, events.Status{
		JobName: j.job.Name, State: events.StateMissed, Slot: slot, At: now, Instance: t.cfg.Instance,
	})
}

func (t *Ticker) flushAnnouncements(ctx context.Context, j *jobTicker) error {
	for len(j.announce) > 0 {
		s := j.announce[0]
		// The id makes a repeat (this retry, or another ticker's) stored once.
		id := "missed:" + events.ScheduleMsgID(s.JobName, s.Slot)
		if err := t.publish(ctx, events.StatusSubject(s.JobName), id, s); err != nil {
			return err
		}
		j.announce = j.announce[1:]
	}
	return nil
}

func (t *Ticker) lostRace(j *jobTicker, slot time.Time) {
	if j.lost.Equal(slot) {
		return
	}
	j.lost = slot
	t.metrics.slots.WithLabelValues(j.job.Name, outcomeLostRace).Inc()
	t.log.Debug("slot taken by another ticker", "job_name", j.job.Name, "slot", slot)
}

// write is the compare-and-set on the job's record: Create when rev is 0, else Update
// at rev. won is false, with a nil error, when another ticker wrote first.
func (t *Ticker) write(ctx context.Context, j *jobTicker, rev uint64, rec record) (newRev uint64, won bool, err error) {
	data, err := rec.encode()
	if err != nil {
		return 0, false, fmt.Errorf("ticker: encode record: %w", err)
	}
	if rev == 0 {
		newRev, err = t.buckets.Ticker.Create(ctx, j.job.Name, data)
	} else {
		newRev, err = t.buckets.Ticker.Update(ctx, j.job.Name, data, rev)
	}
	switch {
	case err == nil:
		return newRev, true, nil
	case bus.IsConflict(err):
		return 0, false, nil
	default:
		return 0, false, fmt.Errorf("ticker: write %s/%s: %w", bus.BucketTicker, j.job.Name, err)
	}
}

func (t *Ticker) publish(ctx context.Context, subject, msgID string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("ticker: encode %s: %w", subject, err)
	}
	if _, err := t.cfg.JS.Publish(ctx, subject, data, jetstream.WithMsgID(msgID)); err != nil {
		status := "unknown"
		if t.cfg.NC != nil {
			status = t.cfg.NC.Status().String()
		}
		return fmt.Errorf("ticker: publish %s (nats %s): %w", subject, status, err)
	}
	return nil
}
