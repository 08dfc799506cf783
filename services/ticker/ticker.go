package ticker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/ops"
)

// Config of a Ticker.
type Config struct {
	JS jetstream.JetStream
	// NC is the connection JS was built on; its status is logged when a publish fails.
	NC *nats.Conn
	// Location is JOBS_TIMEZONE, where cron expressions are read; default Asia/Kolkata.
	Location *time.Location
	// Clock decides when slots come due; tests use a fake one. Default: the real clock.
	Clock clockwork.Clock
	// Log already names the service (ops.NewLogger, ops.ForService); the ticker adds
	// only its instance.
	Log *slog.Logger
	// Instance names this ticker in logs and in the records it writes; default host-pid.
	Instance string
	// Registerer exports gstjobs_ticker_slots_total; nil: not exported.
	Registerer prometheus.Registerer
	// Firms are the firms and their time zones, for the daily jobs whose firms keep
	// their own hours; nil: no firm is known, and each daily slot is every firm's, in
	// Location, as before firms kept hours.
	Firms Firms
}

// Ticker publishes schedule events. Start it once; Stop is safe to call twice.
type Ticker struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	jobs    []*jobTicker
	buckets bus.Buckets
	// started is when Start ran: a job with no record whose slot came due after it is a
	// job that is new while this ticker runs, and fires; before it, it is a first start.
	started time.Time
	signals *testSignals
	// configs is the config bucket, from the watch.
	configs *configCache
	// firms are the known firms and their zones, read at start and again when one
	// changes (or firmsRefresh after the last read); firmsGen counts the changes.
	firms      []knownFirm
	firmsGen   uint64
	firmsRead  time.Time
	firmsDirty bool
	zones      map[string]*time.Location
	// unknownZone is each firm whose own zone is unknown, as last logged.
	unknownZone map[string]string

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// staleClaim is how long a claim may stay unpublished before another ticker assumes
// its owner died and publishes the slot itself. A publish takes milliseconds; 30s
// leaves room for a slow JetStream without leaving a slot unpublished for long.
const staleClaim = 30 * time.Second

// opTimeout bounds the key-value reads, writes and publishes of one job's turn, so a
// hung NATS delays that job only until the next retry.
const opTimeout = 10 * time.Second

// New checks the configuration.
func New(cfg Config) (*Ticker, error) {
	if cfg.JS == nil {
		return nil, errors.New("ticker: JetStream is required")
	}
	if cfg.Location == nil {
		loc, err := catalog.LoadTimezone("")
		if err != nil {
			return nil, err
		}
		cfg.Location = loc
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Instance == "" {
		cfg.Instance = ops.Instance()
	}
	t := &Ticker{
		cfg:     cfg,
		log:     cfg.Log.With("instance", cfg.Instance),
		metrics: newMetrics(cfg.Registerer),
	}
	for _, job := range catalog.All() {
		t.jobs = append(t.jobs, &jobTicker{job: job, expr: job.Schedule})
	}
	return t, nil
}

// Start settles every job's latest slot (the catch-up), then runs the loop in a
// goroutine until ctx ends or Stop is called. The buckets must exist (bus.Ensure).
func (t *Ticker) Start(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done != nil {
		return errors.New("ticker: already started")
	}
	b, err := bus.OpenBuckets(ctx, t.cfg.JS)
	if err != nil {
		return fmt.Errorf("ticker: %w", err)
	}
	t.buckets = b
	loopCtx, cancel := context.WithCancel(ctx)
	// The watch starts before the catch-up, so a config change made during it still
	// wakes the loop; it delivers the current config first.
	t.configs = newConfigCache()
	watcher, err := t.watchConfig(loopCtx)
	if err != nil {
		cancel()
		return err
	}
	if err := t.readCurrentConfig(ctx, watcher); err != nil {
		_ = watcher.Stop()
		cancel()
		return err
	}
	t.started = t.cfg.Clock.Now()
	t.firmsDirty = true
	t.refreshFirms(loopCtx, t.started)
	t.settleAll(loopCtx, t.started)
	for _, j := range t.jobs {
		next, _ := catalog.Next(j.expr, t.cfg.Location, t.started)
		t.log.Info("job scheduled", "job_name", j.job.Name, "schedule", j.expr, "next_slot", next.UTC())
	}

	t.cancel, t.done = cancel, make(chan struct{})
	go t.loop(loopCtx, watcher)
	t.log.Info("ticker started", "jobs", len(t.jobs), "timezone", t.cfg.Location.String(), "firms", len(t.firms))
	return nil
}

// Stop ends the loop and waits for it. A job's turn in progress (claim, publish, mark)
// finishes first, within opTimeout.
func (t *Ticker) Stop() {
	t.mu.Lock()
	cancel, done := t.cancel, t.done
	t.mu.Unlock()
	if done == nil {
		return
	}
	cancel()
	<-done
}

func (t *Ticker) watchConfig(ctx context.Context) (jetstream.KeyWatcher, error) {
	w, err := t.buckets.Config.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("ticker: watch %s: %w", bus.BucketConfig, err)
	}
	return w, nil
}

// readCurrentConfig takes the watch's current values, up to the marker that ends them.
func (t *Ticker) readCurrentConfig(ctx context.Context, w jetstream.KeyWatcher) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return errNoInitialConfig
			}
			if e == nil {
				return nil
			}
			t.configs.apply(e, t.log)
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", errNoInitialConfig, ctx.Err())
		}
	}
}

// loop sleeps until the earliest thing due (a slot, a retry, another ticker's claim
// going stale) or a config change, then settles every job. One goroutine owns all
// job state, so nothing here needs a lock.
func (t *Ticker) loop(ctx context.Context, watcher jetstream.KeyWatcher) {
	defer close(t.done)
	defer func() {
		if watcher != nil {
			_ = watcher.Stop()
		}
	}()
	var applied uint64     // config revision acted on, told to tests once the loop waits again
	firmsNotified := false // firms read again, told to tests once the loop waits again
	settled := t.started   // the instant every job was last settled at
	for {
		if watcher == nil {
			// The watch ended (the subscription closed); without it a schedule change
			// would wait for the next slot, so it is re-made at every wake-up.
			if w, err := t.watchConfig(ctx); err == nil {
				watcher = w
			} else if ctx.Err() == nil {
				t.log.Warn("config watch unavailable; changes apply at the next slot", "err", err)
			}
		}
		var updates <-chan jetstream.KeyValueEntry
		if watcher != nil {
			updates = watcher.Updates()
		}
		var firmsChanged <-chan struct{}
		if t.cfg.Firms != nil {
			firmsChanged = t.cfg.Firms.Changed()
		}
		// The next wake after the instant last settled, not after now: a slot that came
		// due while settling (a slow database, NATS retrying, a paused process) wakes the
		// loop at once instead of being left for the wake after it.
		timer := t.cfg.Clock.NewTimer(t.cfg.Clock.Until(t.nextWake(settled)))
		if applied != 0 {
			t.signals.configApplied(applied)
			applied = 0
		}
		if firmsNotified {
			t.signals.firmsRead()
			firmsNotified = false
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.Chan():
		case e, ok := <-updates:
			timer.Stop()
			if !ok {
				watcher = nil
			} else if e != nil {
				t.configs.apply(e, t.log)
				t.log.Info("config changed", "key", e.Key(), "revision", e.Revision())
				applied = e.Revision()
			}
		case <-firmsChanged:
			timer.Stop()
			t.firmsDirty, firmsNotified = true, true
		}
		now := t.cfg.Clock.Now()
		t.refreshFirms(ctx, now)
		t.settleAll(ctx, now)
		settled = now
	}
}

// nextWake is the earliest slot or retry of any job after now.
func (t *Ticker) nextWake(now time.Time) time.Time {
	// At most an hour: a config change that a broken watch did not deliver still
	// applies within the hour; and the firms are read again when they are due to be.
	wake := now.Add(time.Hour)
	if t.cfg.Firms != nil && t.firmsRead.Add(firmsRefresh).Before(wake) {
		wake = t.firmsRead.Add(firmsRefresh)
	}
	for _, j := range t.jobs {
		if next, err := catalog.Next(j.expr, t.cfg.Location, now); err == nil && !next.IsZero() && next.Before(wake) {
			wake = next
		}
		if !j.lookAgain.IsZero() && j.lookAgain.Before(wake) {
			wake = j.lookAgain
		}
		if j.quietUntil.After(now) && j.quietUntil.Before(wake) {
			wake = j.quietUntil
		}
	}
	return wake
}

// knownFirm is a firm and the zone its daily jobs run in.
type knownFirm struct {
	id  string
	loc *time.Location
}

// refreshFirms reads the firms and their zones when they may have changed, or when the
// last read is firmsRefresh old. A read that fails keeps the last list, and is tried
// again at the next wake-up.
func (t *Ticker) refreshFirms(ctx context.Context, now time.Time) {
	if t.cfg.Firms == nil || (!t.firmsDirty && now.Sub(t.firmsRead) < firmsRefresh) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()
	list, err := t.cfg.Firms.Zones(ctx)
	if err != nil {
		t.log.Warn("cannot read the firms' time zones; the last ones read hold", "firms", len(t.firms), "err", err)
		t.firmsDirty = true
		return
	}
	t.firmsDirty, t.firmsRead = false, now
	if t.zones == nil {
		t.zones, t.unknownZone = map[string]*time.Location{}, map[string]string{}
	}
	firms := make([]knownFirm, 0, len(list))
	changed := len(list) != len(t.firms)
	for i, z := range list {
		loc := t.zones[z.Zone]
		if loc == nil {
			var err error
			if loc, err = time.LoadLocation(z.Zone); err != nil {
				// PostgreSQL's tz database knows a zone Go's does not: the firm's hours are
				// read in JOBS_TIMEZONE.
				t.log.Error("a firm's time zone is unknown to the ticker; its daily jobs run at their hours in JOBS_TIMEZONE", "tenant_id", z.TenantID, "timezone", z.Zone, "err", err)
				loc = t.cfg.Location
			}
			t.zones[z.Zone] = loc
		}
		firms = append(firms, knownFirm{id: z.TenantID, loc: loc})
		if !changed && (t.firms[i].id != z.TenantID || t.firms[i].loc != loc) {
			changed = true
		}
		switch was, logged := t.unknownZone[z.TenantID]; {
		case !z.Own && (!logged || was != z.Stored):
			t.log.Warn("a firm's time zone is unknown; its daily jobs run at their hours in JOBS_TIMEZONE until it is corrected",
				"tenant_id", z.TenantID, "timezone", z.Stored, "jobs_timezone", t.cfg.Location.String())
			t.unknownZone[z.TenantID] = z.Stored
		case z.Own && logged:
			t.log.Info("a firm's time zone is known again", "tenant_id", z.TenantID, "timezone", z.Stored, "was", was)
			delete(t.unknownZone, z.TenantID)
		}
	}
	if changed {
		t.firms = firms
		t.firmsGen++
		t.log.Info("firms' time zones read", "firms", len(firms))
	}
}

// settleAll settles every job at now, each in its own goroutine: the jobs' records are
// their own, so one job's compare-and-sets and publishes need not wait for another's
// (four daily jobs due at a firm's hour publish together), and a job whose turn hangs
// on NATS (opTimeout) delays no other. The turn ends when every job's has.
func (t *Ticker) settleAll(ctx context.Context, now time.Time) {
	var wg sync.WaitGroup
	for _, j := range t.jobs {
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() { t.settle(ctx, j, now) })
	}
	wg.Wait()
}

// testSignals lets tests wait for the loop instead of sleeping; nil outside tests.
type testSignals struct {
	// applied receives the revision of a config change once the loop has settled every
	// job after it and waits again.
	applied chan uint64
	// firms receives once the firms were read, every job settled, and the loop waits.
	firms chan struct{}
}

func (s *testSignals) firmsRead() {
	if s != nil && s.firms != nil {
		s.firms <- struct{}{}
	}
}

func (s *testSignals) configApplied(rev uint64) {
	if s != nil {
		s.applied <- rev
	}
}
