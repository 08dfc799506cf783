package ticker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/jobstate"
	"github.com/lexhq/gstjobs/internal/tenancy"
)

// Firms tells the ticker which firms there are and the zone each one's daily jobs run
// in (tenancy.FirmZone: the firm's own, else JOBS_TIMEZONE).
type Firms interface {
	Zones(ctx context.Context) ([]tenancy.FirmZone, error)
	// Changed receives when a firm's zone may have changed (a firm added, removed or
	// moved; or changes may have been missed); nil: the ticker reads the zones again
	// every firmsRefresh only.
	Changed() <-chan struct{}
}

// firmsRefresh is how old the ticker lets its list of firms get even with no change
// notified: a notification lost with its connection costs at most this.
const firmsRefresh = time.Hour

// PostgresFirms reads the firms' zones from PostgreSQL, and listens for their changes
// (migration 00050 notifies gstjobs_firm_zones on every change of tenants).
type PostgresFirms struct {
	pool     *pgxpool.Pool
	fallback string
	log      *slog.Logger
	changed  chan struct{}
	cancel   context.CancelFunc
	done     chan struct{}
}

// NewPostgresFirms starts listening; Close stops it. fallback is JOBS_TIMEZONE.
func NewPostgresFirms(pool *pgxpool.Pool, fallback *time.Location, log *slog.Logger) *PostgresFirms {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &PostgresFirms{pool: pool, fallback: fallback.String(), log: log, changed: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	go p.listen(ctx)
	return p
}

func (p *PostgresFirms) Zones(ctx context.Context) ([]tenancy.FirmZone, error) {
	return tenancy.Zones(ctx, p.pool, p.fallback)
}

func (p *PostgresFirms) Changed() <-chan struct{} { return p.changed }

// Close stops listening and waits for it.
func (p *PostgresFirms) Close() {
	p.cancel()
	<-p.done
}

func (p *PostgresFirms) signal() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// listen holds one connection with LISTEN gstjobs_firm_zones. After it is (re)made,
// changes made while there was none may have been missed: it signals once.
func (p *PostgresFirms) listen(ctx context.Context) {
	defer close(p.done)
	for attempt := 0; ctx.Err() == nil; attempt++ {
		err := p.listenOnce(ctx, func() { attempt = 0 })
		if ctx.Err() != nil {
			return
		}
		wait := min(time.Second<<min(attempt, 5), 30*time.Second)
		p.log.Warn("not listening for changes of firms' time zones; reading them every "+firmsRefresh.String()+" meanwhile", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (p *PostgresFirms) listenOnce(ctx context.Context, listening func()) error {
	pooled, err := p.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection that listened is not handed back to other users of the pool.
	conn := pooled.Hijack()
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN gstjobs_firm_zones"); err != nil {
		return err
	}
	listening()
	p.signal()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		p.signal()
	}
}

// configCache is the config bucket as the ticker last saw it: the operator's config of
// each job and each firm's own time of day, kept from a watch so that a wake-up reads
// nothing.
type configCache struct {
	mu   sync.Mutex
	jobs map[string]jobstate.Config
	// at is each job's firms' own times of day (validated; a bad one is dropped).
	at map[string]map[string]string
	// bad remembers values already reported as unreadable, so each is logged once.
	bad map[string]string
	// gen counts changes, so a job's settled state knows when to look again.
	gen uint64
}

func newConfigCache() *configCache {
	return &configCache{jobs: map[string]jobstate.Config{}, at: map[string]map[string]string{}, bad: map[string]string{}}
}

// apply takes one watched entry.
func (c *configCache) apply(e jetstream.KeyValueEntry, log *slog.Logger) {
	job, tenant := jobstate.SplitConfigKey(e.Key())
	if _, ok := catalog.Lookup(job); !ok {
		return
	}
	var cfg jobstate.Config
	if e.Operation() == jetstream.KeyValuePut {
		if err := json.Unmarshal(e.Value(), &cfg); err != nil {
			c.mu.Lock()
			reported := c.bad[e.Key()] == string(e.Value())
			c.bad[e.Key()] = string(e.Value())
			c.mu.Unlock()
			if !reported {
				// A value that is not a config (put by hand) must not stop the schedule: the
				// defaults hold until someone writes a real one.
				log.Error("job config ignored, using the defaults (not paused, default schedule and hour)", "key", e.Key(), "err", err)
			}
			cfg = jobstate.Config{}
		}
	}
	if tenant != "" && cfg.At != "" {
		at, err := catalog.ParseAt(cfg.At)
		if err != nil {
			log.Error("a firm's time of day ignored, using the job's default", "key", e.Key(), "at", cfg.At, "err", err)
		}
		cfg.At = at
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if tenant == "" {
		c.jobs[job] = cfg
		return
	}
	if c.at[job] == nil {
		c.at[job] = map[string]string{}
	}
	if cfg.At == "" {
		delete(c.at[job], tenant)
	} else {
		c.at[job][tenant] = cfg.At
	}
}

func (c *configCache) job(name string) jobstate.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.jobs[name]
}

// firmsAt is each firm's own time of day for job (a copy).
func (c *configCache) firmsAt(job string) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.at[job]))
	for k, v := range c.at[job] {
		out[k] = v
	}
	return out
}

func (c *configCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// errNoInitialConfig is returned when the watch did not deliver the current config.
var errNoInitialConfig = errors.New("ticker: the config watch did not deliver the current values")
