// Command ticker publishes each job's schedule slots to jobs.schedule.<job>, once per
// slot (for a daily job, once per group of firms that share a zone and a time of day)
// across every replica, catching up at start on a slot it missed.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
	_ "time/tzdata" // JOBS_TIMEZONE must resolve in containers without tzdata

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jonboulle/clockwork"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/healthcheck"
	"github.com/lexhq/gstjobs/internal/natsauth"
	"github.com/lexhq/gstjobs/internal/ops"
	"github.com/lexhq/gstjobs/services/ticker"
)

// defaultOpsAddr is where the ticker serves health and metrics without OPS_ADDR.
const defaultOpsAddr = ":9102"

func main() {
	healthcheck.Main("OPS_ADDR", defaultOpsAddr) // `ticker healthcheck`: the container's health check
	log := ops.NewLogger("ticker")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log); err != nil {
		log.Error("stopped with an error", "err", err)
		os.Exit(1)
	}
}

// shutdownTimeout bounds the time from a signal to exit: the loop finishes the job turn
// in progress (at most 10s), then the ops server and NATS are closed.
const shutdownTimeout = 20 * time.Second

func run(ctx context.Context, log *slog.Logger) error {
	// Configuration.
	env := &ops.Env{}
	natsURL := env.Required("NATS_URL", "point it at a NATS server with JetStream (nats://host:4222, started with nats-server -js), or use `make run`, which starts one")
	creds := natsauth.FromEnv(env, natsURL)
	databaseURL := env.Required("DATABASE_URL", "point it at the jobs' PostgreSQL (postgres://user:pass@host:5432/gstjobs): the ticker reads each firm's time zone there, for the hours of its daily jobs")
	loc, err := catalog.LoadTimezone(env.String("JOBS_TIMEZONE", catalog.DefaultTimezone))
	env.Check(err)
	opsAddr := env.String("OPS_ADDR", defaultOpsAddr)
	instance := env.String("TICKER_INSTANCE", ops.Instance())
	if err := env.Err(); err != nil {
		return err
	}
	log.Info("starting", "nats_url", redactURL(natsURL), "nats_credentials", creds.String(), "database_url", redactURL(databaseURL),
		"jobs_timezone", loc.String(), "ops_addr", opsAddr, "instance", instance)

	// Dependencies.
	natsOpts, err := creds.Options()
	if err != nil {
		return err
	}
	nc, js, err := bus.Connect(ctx, natsURL, natsauth.Ticker, log, natsOpts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := natsauth.CheckDeclared(ctx, js, natsauth.Ticker); err != nil {
		return err
	}
	pool, err := openPool(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	firms := ticker.NewPostgresFirms(pool, loc, log)
	defer firms.Close()
	reg := ops.NewRegistry()
	tk, err := ticker.New(ticker.Config{
		JS: js, NC: nc, Location: loc, Clock: clockwork.NewRealClock(), Log: log,
		Instance: instance, Registerer: reg, Firms: firms,
	})
	if err != nil {
		return err
	}
	natsReady := ops.Check{Name: "nats", Fn: func(ctx context.Context) error {
		if !nc.IsConnected() {
			return errors.New("not connected to NATS (" + nc.Status().String() + ")")
		}
		return nc.FlushWithContext(ctx)
	}}
	dbReady := ops.Check{Name: "database", Fn: func(ctx context.Context) error { return pool.Ping(ctx) }}
	stopOps, err := ops.Serve(ctx, opsAddr, ops.Handler(reg, natsReady, dbReady), log)
	if err != nil {
		return err
	}

	// Start: catch up on missed slots, then tick.
	if err := tk.Start(ctx); err != nil {
		_ = stopOps()
		return err
	}

	// Wait for a signal, then shut down within a deadline.
	<-ctx.Done()
	log.Info("shutting down")
	done := make(chan error, 1)
	go func() {
		// Publishes are acknowledged one by one, so nothing is left for NATS to flush:
		// the deferred Close is enough once the loop is done.
		tk.Stop()
		done <- stopOps()
	}()
	select {
	case err := <-done:
		if err != nil {
			log.Warn("shutdown", "err", err)
		}
	case <-time.After(shutdownTimeout):
		return errors.New("shutdown: still busy after " + shutdownTimeout.String())
	}
	log.Info("stopped")
	return nil
}

// openPool connects to PostgreSQL, where the firms' time zones are, and checks it
// answers, so a wrong DATABASE_URL fails at start.
func openPool(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL is not a PostgreSQL URL: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "gstjobs-ticker"
	cfg.MaxConns = 3 // one listens for changes of the firms' zones
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("cannot reach PostgreSQL at %s (check DATABASE_URL): %w", redactURL(databaseURL), err)
	}
	return pool, nil
}

// redactURL hides a password in NATS_URL (nats://user:secret@host) or DATABASE_URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}
