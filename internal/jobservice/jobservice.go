// Package jobservice is the shared shape of the three job services (sla, reminders,
// analytics): read the configuration, connect to PostgreSQL and to NATS as the
// service's own user, check that its streams and consumers are declared, run the
// service's jobs on the worker runtime, serve health and metrics, and shut down
// gracefully on a signal. A service is its list of jobs, which the catalog assigns it.
package jobservice

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/db"
	"github.com/lexhq/gstjobs/internal/healthcheck"
	"github.com/lexhq/gstjobs/internal/natsauth"
	"github.com/lexhq/gstjobs/internal/ops"
	"github.com/lexhq/gstjobs/internal/worker"
)

// Deps is what a job needs from the outside world.
type Deps struct {
	Pool     *pgxpool.Pool
	NC       *nats.Conn
	JS       jetstream.JetStream
	Clock    clockwork.Clock
	Location *time.Location
	// Log already names the service (ops.NewLogger, ops.ForService); jobs add no
	// service key of their own.
	Log      *slog.Logger
	Registry prometheus.Registerer
	// Env lets a service read its own settings (SMTP_URL, thresholds) with the same
	// error reporting as the common ones.
	Env *ops.Env
}

// Jobs builds a service's job functions from its dependencies.
type Jobs func(d Deps) (map[string]worker.Func, error)

// Start runs jobs on a worker. The caller owns the connections in d, which should be
// the service's own NATS user's (natsauth); d.Log should already name the service.
// Every job must be the service's in the catalog: its user may publish no other's.
func Start(ctx context.Context, name string, d Deps, jobs Jobs, opts ...func(*worker.Config)) (*worker.Worker, error) {
	fns, err := jobs(d)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for job := range fns {
		if j, ok := catalog.Lookup(job); ok && j.Service != name {
			return nil, fmt.Errorf("%s: job %s is the %s service's in the catalog: the %s user may not publish its results", name, job, j.Service, name)
		}
	}
	cfg := worker.Config{
		NC: d.NC, JS: d.JS, Jobs: fns, Clock: d.Clock, Log: d.Log,
		Metrics: worker.NewMetrics(d.Registry), DeadLetters: bus.NewDeadLetters(d.JS, d.Registry),
	}
	for _, o := range opts {
		o(&cfg)
	}
	w, err := worker.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := w.Start(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return w, nil
}

// defaultOpsAddr gives each service its own health and metrics port, so that all of
// them can run side by side on one machine without configuration (the ticker has 9102).
var defaultOpsAddr = map[string]string{"sla": ":9101", "reminders": ":9103", "analytics": ":9104"}

// Main is a job service's whole main function. `service healthcheck` asks the
// service's /readyz on OPS_ADDR instead (healthcheck).
func Main(name string, jobs Jobs) {
	healthcheck.Main("OPS_ADDR", defaultOpsAddr[name])
	log := ops.NewLogger(name)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, name, log, jobs); err != nil {
		log.Error("stopped with an error", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, name string, log *slog.Logger, jobs Jobs) error {
	// Configuration.
	env := &ops.Env{}
	natsURL := env.Required("NATS_URL", "point it at a NATS server with JetStream (nats://host:4222), or use `make run`, which starts one")
	dbURL := env.Required("DATABASE_URL", "point it at PostgreSQL (postgres://user:pass@host:5432/db), or use `make run`, which starts one")
	tzName := env.String("JOBS_TIMEZONE", catalog.DefaultTimezone)
	opsAddr := env.String("OPS_ADDR", defaultOpsAddr[name])
	grace := env.Duration("SHUTDOWN_GRACE", DefaultShutdownGrace)
	creds := natsauth.FromEnv(env, natsURL)
	loc, err := catalog.LoadTimezone(tzName)
	env.Check(err)
	reg := ops.NewRegistry()
	d := Deps{Clock: clockwork.NewRealClock(), Location: loc, Log: log, Registry: reg, Env: env}
	// Services read their own variables inside jobs(); collect those problems too.
	if _, jerr := jobs(d); jerr != nil {
		env.Check(jerr)
	}
	if err := env.Err(); err != nil {
		return err
	}
	log.Info("starting", "nats_url", natsURL, "nats_credentials", creds.String(), "database", db.Redact(dbURL), "jobs_timezone", loc.String(), "ops_addr", opsAddr,
		"shutdown_grace", grace)

	// Dependencies.
	pool, nc, js, closeAll, err := Connect(ctx, name, natsURL, dbURL, creds, log)
	if err != nil {
		return err
	}
	defer closeAll()
	d.Pool, d.NC, d.JS = pool, nc, js

	// Start.
	w, err := Start(ctx, name, d, jobs, func(c *worker.Config) { c.ShutdownGrace = grace })
	if err != nil {
		return err
	}
	stopHTTP, err := ops.Serve(ctx, opsAddr, ops.Handler(reg,
		ops.Check{Name: "database", Fn: pool.Ping},
		ops.Check{Name: "nats", Fn: func(context.Context) error {
			if !nc.IsConnected() {
				return fmt.Errorf("not connected (%s)", nc.Status())
			}
			return nil
		}},
		ops.Check{Name: "jetstream", Fn: jetstreamFor(js, name).Check},
	), log)
	if err != nil {
		w.Stop()
		return err
	}

	// Wait, then shut down: stop taking work, let the run in progress finish.
	<-ctx.Done()
	log.Info("shutting down")
	w.Stop()
	if err := stopHTTP(); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	if err := nc.Drain(); err != nil {
		log.Warn("nats drain", "err", err)
	}
	log.Info("stopped")
	return nil
}

// DefaultShutdownGrace is how long a stopping service lets a run in progress finish
// (SHUTDOWN_GRACE) before it hands the run back for another replica: an orchestrator
// must wait longer than this before it kills the process (compose's
// stop_grace_period: 30s).
const DefaultShutdownGrace = 20 * time.Second

// jetstreamFor says whether JetStream can do the service's work: the runs bucket its
// decisions are taken on and the consumers of its jobs answer, each with a leader in
// touch with a quorum.
func jetstreamFor(js jetstream.JetStream, service string) *bus.Availability {
	probes := []bus.Probe{bus.StreamProbe(js, "KV_"+bus.BucketRuns)}
	_, consumers := natsauth.Uses(service)
	for _, c := range consumers {
		probes = append(probes, bus.ConsumerProbe(js, c.Stream, c.Name))
	}
	return bus.NewAvailability(probes...)
}

// Connect prepares what every service binary that uses the database needs, the same
// way: migrations applied (under a lock, so replicas may race), a checked pool, a NATS
// connection as the service's user (creds), and a check that the streams, buckets and
// consumers the service uses are declared (the setup user declares them). closeAll
// closes both.
func Connect(ctx context.Context, name, natsURL, dbURL string, creds natsauth.Credentials, log *slog.Logger) (
	pool *pgxpool.Pool, nc *nats.Conn, js jetstream.JetStream, closeAll func(), err error) {
	if err := db.Migrate(ctx, dbURL, log); err != nil {
		return nil, nil, nil, nil, err
	}
	if pool, err = db.Open(ctx, dbURL); err != nil {
		return nil, nil, nil, nil, err
	}
	opts, err := creds.Options()
	if err != nil {
		pool.Close()
		return nil, nil, nil, nil, err
	}
	if nc, js, err = bus.Connect(ctx, natsURL, name, log, opts...); err != nil {
		pool.Close()
		return nil, nil, nil, nil, err
	}
	if err := natsauth.CheckDeclared(ctx, js, name); err != nil {
		nc.Close()
		pool.Close()
		return nil, nil, nil, nil, err
	}
	return pool, nc, js, func() { nc.Close(); pool.Close() }, nil
}
