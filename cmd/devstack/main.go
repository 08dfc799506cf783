// Command devstack is `make run`: the whole system in one process for development. It
// starts an embedded NATS server with JetStream and, unless DATABASE_URL is given, a
// private PostgreSQL, both keeping their data in DATA_DIR (.data); applies the
// migrations; loads the demo data once; runs the ticker, the three job services and
// the gateway in-process, each connected to NATS as its own user (natsauth), with
// random passwords made at every start and kept in memory; and prints the dashboard's
// address. A client without credentials, such as the nats CLI, is the developer user:
// it may trigger, watch and read, and nothing else. Ctrl-C stops everything within
// seconds; the next start keeps the data.
//
// As root, PostgreSQL runs as the postgres OS user, which cannot enter a checkout in
// a 0700 home; its files then live in /var/lib/gstjobs/<hash of DATA_DIR>/pg instead
// (see rootPGHome), and the banner says so. Every start-up error names the setting to
// change (see problems.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/db"
	"github.com/lexhq/gstjobs/internal/demo"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/internal/localpg"
	"github.com/lexhq/gstjobs/internal/natsauth"
	"github.com/lexhq/gstjobs/internal/natsembed"
	"github.com/lexhq/gstjobs/internal/ops"
	"github.com/lexhq/gstjobs/services/analytics"
	"github.com/lexhq/gstjobs/services/gateway"
	"github.com/lexhq/gstjobs/services/reminders"
	"github.com/lexhq/gstjobs/services/sla"
	"github.com/lexhq/gstjobs/services/ticker"
)

func main() {
	if os.Getenv("LOG_FORMAT") == "" {
		os.Setenv("LOG_FORMAT", "text")
	}
	cluster := flag.Bool("cluster", false, "make cluster: the production topology, every service a process of its own, on a three-node NATS cluster")
	flag.Parse()
	log := ops.NewLogger("")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	run, what := run, "make run"
	if *cluster {
		run, what = runCluster, "make cluster"
	}
	if err := run(ctx, log); err != nil {
		fmt.Fprintln(os.Stderr, "\n"+what+" failed:", message(err))
		os.Exit(1)
	}
}

type config struct {
	dataDir   string
	natsURL   string // given: use that server; empty: start one on natsPort
	natsPort  int
	dbURL     string // given: use that server; empty: start one on pgPort
	pgPort    int
	httpAddr  string
	tz        *time.Location
	jwtSecret string
	// operatorSecret signs the platform operator's sign-in (OPERATOR_JWT_SECRET).
	operatorSecret string
	devMode        bool

	// natsCreds are every connection's with NATS_URL set (NATS_USER…); unused otherwise:
	// the embedded server's users get random passwords at each start.
	natsCreds natsauth.Credentials

	natsGiven, dbGiven bool              // NATS_URL, DATABASE_URL set: start no server of our own
	pg                 localpg.Placement // where the private PostgreSQL keeps its files, once started

	// cluster is make cluster (cluster.go): three NATS nodes on ports from natsPort, two
	// gateways on httpAddr's port and the next, the other services' health on opsPort
	// and after.
	cluster bool
	opsPort int
}

// loadConfig reads the launcher's settings; cluster is make cluster's, whose data stay
// apart from make run's (its streams are replicated three times, make run's once).
func loadConfig(cluster bool) (config, error) {
	env := &ops.Env{}
	dataDir := ".data"
	if cluster {
		dataDir = filepath.Join(".data", "cluster")
	}
	c := config{
		cluster:  cluster,
		opsPort:  env.Int("OPS_PORT", 9101),
		dataDir:  env.String("DATA_DIR", dataDir),
		natsURL:  env.String("NATS_URL", ""),
		natsPort: env.Int("NATS_PORT", 4222),
		dbURL:    env.String("DATABASE_URL", ""),
		pgPort:   env.Int("PG_PORT", 5433),
		httpAddr: env.String("HTTP_ADDR", ":8080"),
		devMode:  env.Bool("GATEWAY_DEV_MODE", true),
	}
	c.natsGiven, c.dbGiven = c.natsURL != "", c.dbURL != ""
	switch {
	case c.natsGiven && cluster:
		env.Check(fmt.Errorf("NATS_URL=%s is set, but make cluster starts a NATS cluster of its own: unset NATS_URL", c.natsURL))
	case c.natsGiven:
		c.natsCreds = natsauth.FromEnv(env, c.natsURL)
	}
	env.Check(checkPort("NATS_PORT", c.natsPort))
	env.Check(checkPort("PG_PORT", c.pgPort))
	if cluster {
		env.Check(checkPortRange("NATS_PORT", c.natsPort, clusterPortSpan))
		env.Check(checkPortRange("OPS_PORT", c.opsPort, opsPortSpan))
	}
	if _, _, err := net.SplitHostPort(c.httpAddr); err != nil {
		env.Check(fmt.Errorf("HTTP_ADDR=%q is not host:port: set HTTP_ADDR to, for example, :8080 or 127.0.0.1:8080", c.httpAddr))
	}
	var err error
	c.tz, err = catalog.LoadTimezone(env.String("JOBS_TIMEZONE", catalog.DefaultTimezone))
	env.Check(err)
	c.jwtSecret = os.Getenv("AUTH_JWT_SECRET")
	c.operatorSecret = os.Getenv("OPERATOR_JWT_SECRET")
	if err := env.Err(); err != nil {
		return c, err
	}
	abs, err := filepath.Abs(c.dataDir)
	if err != nil {
		return c, dataDirProblem(c.dataDir, "cannot be made absolute", err)
	}
	c.dataDir = abs
	return c, nil
}

// prepare is what both launchers do before any server starts: the configuration, and
// everything that would stop a server from starting (DATA_DIR's lock, the addresses),
// then the development secrets. release gives DATA_DIR back.
func prepare(cluster bool) (cfg config, release func(), err error) {
	if cfg, err = loadConfig(cluster); err != nil {
		return cfg, nil, err
	}
	lock, err := claimDataDir(cfg.dataDir)
	if err != nil {
		return cfg, nil, err
	}
	release = func() { lock.Close() }
	if err := checkAddresses(cfg.listeners()); err != nil {
		release()
		return cfg, nil, err
	}
	for _, s := range []struct {
		secret *string
		file   string
	}{{&cfg.jwtSecret, "jwt-secret"}, {&cfg.operatorSecret, "operator-secret"}} {
		if *s.secret == "" {
			if *s.secret, err = devSecret(cfg.dataDir, s.file); err != nil {
				release()
				return cfg, nil, err
			}
		}
	}
	return cfg, release, nil
}

// startDatabase starts the private PostgreSQL unless DATABASE_URL is given, applies
// the migrations and loads the demo data once (fresh: it was loaded now). stop stops
// what it started.
func startDatabase(ctx context.Context, cfg *config, log *slog.Logger) (pool *pgxpool.Pool, fresh bool, stop func(), err error) {
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	if !cfg.dbGiven {
		pgDir, err := pgDataDir(cfg.dataDir)
		if err != nil {
			return nil, false, stop, err
		}
		pg, err := localpg.Start(ctx, localpg.Config{DataDir: pgDir.Dir, Port: cfg.pgPort, Database: "gstjobs", Log: log})
		if err != nil {
			return nil, false, stop, pgStartProblem(*cfg, pgDir, err)
		}
		stops = append(stops, func() {
			if err := pg.Stop(); err != nil {
				log.Warn("postgres stop", "err", err)
			}
		})
		cfg.dbURL, cfg.pg = pg.URL(), pgDir
		if pgDir.Moved() {
			noteCheckout(pgDir, cfg.dataDir, log)
		}
		log.Info("private PostgreSQL started", "url", cfg.dbURL, "data", pgDir.Dir)
	}
	if err := db.Migrate(ctx, cfg.dbURL, log); err != nil {
		return nil, false, stop, cfg.dbProblem("apply the migrations", err)
	}
	if pool, err = db.Open(ctx, cfg.dbURL); err != nil {
		return nil, false, stop, cfg.dbProblem("connect", err)
	}
	stops = append(stops, pool.Close)
	if fresh, err = demo.Load(ctx, pool); err != nil {
		return nil, false, stop, cfg.dbProblem("load the demo data", err)
	}
	if fresh {
		log.Info("demo data loaded: two firms with users of every role, cases, hearings, tasks, rules")
	}
	return pool, fresh, stop, nil
}

func run(ctx context.Context, log *slog.Logger) error {
	cfg, release, err := prepare(false)
	if err != nil {
		return err
	}
	defer release()

	// Dependencies: NATS and PostgreSQL, started here unless given. The embedded
	// server has the system's users, with passwords made now, and gives connections
	// without credentials the developer user.
	creds := func(string) natsauth.Credentials { return cfg.natsCreds }
	if !cfg.natsGiven {
		store := filepath.Join(cfg.dataDir, "nats")
		passwords := natsauth.NewPasswords()
		ns, err := natsembed.Start(natsembed.Config{
			Host: "127.0.0.1", Port: cfg.natsPort, StoreDir: store, ServerName: "gstjobs-dev",
			Users: natsauth.ServerUsers(passwords), NoAuthUser: natsauth.Developer,
		})
		if err != nil {
			return natsStartProblem(cfg, err)
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
		cfg.natsURL = ns.ClientURL()
		creds = func(user string) natsauth.Credentials {
			if user == natsauth.Developer {
				return natsauth.Credentials{} // as a developer's nats CLI connects
			}
			return natsauth.Password(user, passwords[user])
		}
		log.Info("embedded NATS with JetStream started", "url", cfg.natsURL, "store", store, "users", natsauth.Users(), "default_user", natsauth.Developer)
	}
	pool, freshDemo, stopDB, err := startDatabase(ctx, &cfg, log)
	defer stopDB()
	if err != nil {
		return err
	}
	// Each service, the declarations and the demo's first runs connect as their own
	// NATS users.
	type conn struct {
		NC *nats.Conn
		JS jetstream.JetStream
	}
	conns := map[string]conn{}
	for _, user := range natsauth.Users() {
		opts, err := creds(user).Options()
		if err != nil {
			return cfg.natsProblem("connect", err)
		}
		nc, js, err := bus.Connect(ctx, cfg.natsURL, "devstack "+user, ops.ForService(log, user), opts...)
		if err != nil {
			return cfg.natsProblem("connect as the "+user+" user", err)
		}
		defer nc.Close()
		conns[user] = conn{nc, js}
	}
	if err := bus.Ensure(ctx, conns[natsauth.Setup].JS, bus.Options{}); err != nil {
		return cfg.natsProblem("declare the streams and buckets", err)
	}

	// Start every service in this process, each as it would run alone.
	reg := ops.NewRegistry()
	clock := clockwork.NewRealClock()
	deps := jobservice.Deps{Pool: pool, Clock: clock, Location: cfg.tz, Log: log, Registry: reg, Env: &ops.Env{}}
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()
	for _, svc := range []struct {
		name string
		jobs jobservice.Jobs
	}{{"sla", sla.Jobs}, {"reminders", reminders.Jobs}, {"analytics", analytics.Jobs}} {
		d := deps
		d.Log = ops.ForService(log, svc.name)
		d.NC, d.JS = conns[svc.name].NC, conns[svc.name].JS
		w, err := jobservice.Start(ctx, svc.name, d, svc.jobs)
		if err != nil {
			return serviceProblem(svc.name, err)
		}
		stops = append(stops, w.Stop)
	}
	if err := deps.Env.Err(); err != nil {
		return err
	}
	firms := ticker.NewPostgresFirms(pool, cfg.tz, ops.ForService(log, "ticker"))
	stops = append(stops, firms.Close)
	tk, err := ticker.New(ticker.Config{JS: conns[natsauth.Ticker].JS, NC: conns[natsauth.Ticker].NC, Location: cfg.tz, Clock: clock, Log: ops.ForService(log, "ticker"), Registerer: reg, Firms: firms})
	if err != nil {
		return serviceProblem("ticker", err)
	}
	if err := tk.Start(ctx); err != nil {
		return serviceProblem("ticker", err)
	}
	stops = append(stops, tk.Stop)
	gw, err := gateway.New(gateway.Config{
		Pool: pool, NC: conns[natsauth.Gateway].NC, JS: conns[natsauth.Gateway].JS, Clock: clock, Location: cfg.tz, Log: ops.ForService(log, "gateway"),
		Registry: reg, Addr: cfg.httpAddr, JWTSecret: []byte(cfg.jwtSecret), OperatorSecret: []byte(cfg.operatorSecret), DevMode: cfg.devMode,
	})
	if err != nil {
		return serviceProblem("gateway", err)
	}
	if err := gw.Start(ctx); err != nil {
		if errors.Is(err, syscall.EADDRINUSE) { // taken since checkAddresses
			return listenProblem("HTTP_ADDR", cfg.httpAddr, err)
		}
		return serviceProblem("gateway", err)
	}
	stops = append(stops, gw.Stop)

	if freshDemo {
		// So that every card shows real numbers at once instead of waiting for 08:00:
		// a developer's trigger, as `nats pub` sends it.
		if err := triggerAll(ctx, conns[natsauth.Developer].JS); err != nil {
			log.Warn("could not run the jobs once for the demo", "err", err)
		}
	}
	links, err := cfg.signInLinks(gw.URL())
	if err != nil {
		return serviceProblem("gateway", err)
	}
	printBanner(gw.URL(), cfg, links)

	// Wait, then shut down in reverse order of start.
	<-ctx.Done()
	fmt.Println("\nStopping…")
	return nil
}

func triggerAll(ctx context.Context, js jetstream.JetStream) error {
	var errs []error
	for _, name := range catalog.Names() {
		body := []byte(`{"reason":"first start with demo data","requested_by":"make run"}`)
		if _, err := js.Publish(ctx, events.TriggerSubject(name), body, jetstream.WithMsgID("demo-first-run:"+name)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// signInLinks are the development links that sign in as the demo users and the
// platform operator at the dashboard at url; none outside development.
func (c config) signInLinks(url string) (map[string]string, error) {
	if !c.devMode {
		return nil, nil
	}
	users := maps.Clone(demo.UsersByRole)
	users["iyer-admin"] = demo.UserIyerAdmin
	links, err := gateway.SignInLinks([]byte(c.jwtSecret), url, users, 12*time.Hour)
	if err != nil {
		return nil, err
	}
	if links["operator"], err = gateway.OperatorSignInLinkFor([]byte(c.operatorSecret), url, 12*time.Hour); err != nil {
		return nil, err
	}
	return links, nil
}

func printBanner(url string, cfg config, links map[string]string) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n  Background Jobs Monitor is running.\n\n")
	fmt.Fprintf(&b, "  Dashboard:  %s\n", url)
	fmt.Fprintf(&b, "  NATS:       %s   (try: nats sub 'jobs.>')\n", cfg.natsURL)
	if !cfg.natsGiven {
		fmt.Fprintf(&b, "              one user per service; a client without credentials may trigger, watch and read\n")
	}
	writeBannerEnd(&b, cfg, links)
	fmt.Println(b.String())
}

// writeBannerEnd is what both launchers' banners end with: where PostgreSQL and the
// data are, the time zone, the sign-in links.
func writeBannerEnd(b *strings.Builder, cfg config, links map[string]string) {
	fmt.Fprintf(b, "  PostgreSQL: %s\n", db.Redact(cfg.dbURL))
	if !cfg.dbGiven {
		fmt.Fprintf(b, "              files in %s\n", cfg.pg.Dir)
		if cfg.pg.Moved() {
			fmt.Fprintf(b, "              not in DATA_DIR because %s\n", cfg.pg.Why)
		}
	}
	fmt.Fprintf(b, "  Data:       %s   (DATA_DIR)\n", cfg.dataDir)
	fmt.Fprintf(b, "  Time zone:  %s\n\n", cfg.tz)
	if len(links) > 0 {
		fmt.Fprintf(b, "  Sign in as a demo user of Mehta & Associates (links valid 12 hours):\n")
		for _, role := range []string{"admin", "partner", "manager", "ca", "advocate", "user"} {
			if l, ok := links[role]; ok {
				fmt.Fprintf(b, "    %-9s %s\n", role+":", l)
			}
		}
		fmt.Fprintf(b, "  Only admin and partner may use the dashboard; the others see why not.\n")
		fmt.Fprintf(b, "  Iyer Tax Chambers' admin, who sees only Iyer's part of every run:\n    %-9s %s\n", "admin:", links["iyer-admin"])
		fmt.Fprintf(b, "  The platform operator, who sees every firm (not a firm's role; development only):\n    %-9s %s\n\n", "operator:", links["operator"])
	}
	fmt.Fprintf(b, "  Press Ctrl-C to stop.\n")
}
