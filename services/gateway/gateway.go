package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/ops"
)

// Config of a Gateway.
type Config struct {
	Pool     *pgxpool.Pool
	NC       *nats.Conn
	JS       jetstream.JetStream
	Clock    clockwork.Clock
	Location *time.Location
	Log      *slog.Logger
	// Registry receives the gateway's metrics and is served on /metrics.
	Registry *prometheus.Registry
	// Addr to listen on (HTTP_ADDR); ":0" picks a free port (tests).
	Addr string
	// RunNowWait bounds how long Run Now waits for the worker's answer; default 5s.
	RunNowWait time.Duration
	// AuditLinger (AUDIT_LINGER) is how long the audit consumer waits, once an event is
	// in, for more to write with it in one transaction; default 0: what has arrived is
	// written at once, and what arrives during a write is the next batch, so batches
	// grow with the load by themselves. A linger trades each event's delay to its row
	// for fewer, larger transactions at moderate rates.
	AuditLinger time.Duration
	// SessionCheckEvery is how often open websockets re-check the person behind them
	// (sessions.go); default DefaultSessionCheckEvery (15 s). Read on the Clock.
	SessionCheckEvery time.Duration

	// JWTSecret verifies the bearer tokens people sign in with (AUTH_JWT_SECRET): HS256,
	// as the product signs them, with the profile id in `sub`. Required, at least 32
	// bytes, unless DevMode is on; in development an empty secret is replaced by a random
	// one for the life of the process (mint links with Gateway.SignInLinks).
	JWTSecret []byte
	// OperatorSecret (OPERATOR_JWT_SECRET) verifies the platform operator's tokens, which
	// are not firm users' (see RoleOperator). It must differ from JWTSecret. Empty: nobody
	// can sign in as the operator, unless DevMode is on (a random one, see
	// Gateway.OperatorSignInLink).
	OperatorSecret []byte
	// DevMode (GATEWAY_DEV_MODE) is local development: the secret may be short or
	// generated, Gateway.SignInLinks works, and the sign-in page points at the links the
	// launcher prints. Off, there is no way in without a token signed with JWTSecret.
	DevMode bool
	// AllowedOrigins (ALLOWED_ORIGINS) are origins besides the gateway's own
	// (scheme://host[:port]) whose pages may open the websocket and send changes with the
	// session cookie: the public address when a proxy in front rewrites Host.
	AllowedOrigins []string

	// dropAcks (tests, see export_test.go) makes the audit consumer skip its acks.
	dropAcks func() bool
	// committed (benchmarks, see export_test.go) hears the audit_log keys of each batch
	// right after its commit.
	committed func(keys []string)
	// fannedOut (benchmarks) hears how many viewer groups each result's frames went to
	// and how long building, encoding and queueing them took.
	fannedOut func(groups int, took time.Duration)
}

// Gateway serves the API, the dashboard and the live feed, and persists results.
type Gateway struct {
	cfg        Config
	log        *slog.Logger
	buckets    bus.Buckets
	hub        *hub
	snapshots  *snapshotCache
	deps       depsCache
	waiters    waiters
	metrics    gatewayMetrics
	opsHandler http.Handler
	auth       *authState
	configs    *pauses
	dead       *bus.DeadLetters
	rejections *bus.Rejections
	ingest     *ingester
	ops        *opsCollector
	// jetstream says whether JetStream can take Run Now, hand out events and answer
	// the cards' reads now (readiness and health), not only whether a connection is up.
	jetstream *bus.Availability
	revoked   revocations
	runNow    runNowLimiter
	profiles  profileLookups

	done     chan struct{}
	listener net.Listener
	server   *http.Server
	audit    jetstream.ConsumeContext
	subs     []*nats.Subscription
	watchers []jetstream.KeyWatcher
	stopOnce sync.Once
	serveErr chan error
}

type gatewayMetrics struct {
	persisted     prometheus.Counter
	persistErrors prometheus.Counter
	wsClients     prometheus.Gauge
	rejected      prometheus.Counter
	requests      *prometheus.CounterVec
	// wsClosed counts websockets the gateway closed, by reason: expired, signed_out,
	// access_changed, too_many_per_user, too_slow.
	wsClosed      *prometheus.CounterVec
	sessionChecks *prometheus.CounterVec
	runNowLimited prometheus.Counter
	auditWrite    prometheus.Histogram
	auditLag      prometheus.Histogram
}

// New checks the configuration.
func New(cfg Config) (*Gateway, error) {
	if cfg.Pool == nil || cfg.NC == nil || cfg.JS == nil {
		return nil, errors.New("gateway: database pool, NATS connection and JetStream are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = ops.NewRegistry()
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8080"
	}
	if cfg.RunNowWait <= 0 {
		cfg.RunNowWait = 5 * time.Second
	}
	if cfg.SessionCheckEvery <= 0 {
		cfg.SessionCheckEvery = DefaultSessionCheckEvery
	}
	auth, err := newAuthState(&cfg)
	if err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, log: cfg.Log.With("component", "gateway"), hub: newHub(), snapshots: newSnapshotCache(cfg.Clock), configs: newPauses(), auth: auth, done: make(chan struct{}), serveErr: make(chan error, 1)}
	g.hub.changed = g.snapshots.changed
	g.metrics = gatewayMetrics{
		persisted:     prometheus.NewCounter(prometheus.CounterOpts{Name: "gstjobs_gateway_results_persisted_total", Help: "Job results written to audit_log (including redeliveries that were no-ops)."}),
		persistErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "gstjobs_gateway_persist_errors_total", Help: "Attempts to write an event to audit_log that failed and will be retried."}),
		wsClients:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "gstjobs_gateway_websocket_clients", Help: "Connected dashboard websockets."}),
		rejected:      prometheus.NewCounter(prometheus.CounterOpts{Name: "gstjobs_gateway_unknown_job_triggers_total", Help: "Triggers for jobs that do not exist, each answered with a rejection (stored at most once per subject per minute)."}),
		requests:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gstjobs_gateway_http_requests_total", Help: "HTTP requests by route and status."}, []string{"route", "code"}),
		wsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gstjobs_gateway_websockets_closed_total",
			Help: "Dashboard websockets the gateway closed, by reason (expired, signed_out, access_changed, too_many_per_user, too_slow, snapshot_failed)."}, []string{"reason"}),
		sessionChecks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gstjobs_gateway_session_checks_total",
			Help: "Re-checks of the people behind open websockets, by result (ok, failed: the database could not be read; the sockets stay open)."}, []string{"result"}),
		runNowLimited: prometheus.NewCounter(prometheus.CounterOpts{Name: "gstjobs_gateway_run_now_rate_limited_total",
			Help: "Run Now presses refused with 429 because the person pressed it too often."}),
	}
	for _, c := range []prometheus.Collector{g.metrics.persisted, g.metrics.persistErrors, g.metrics.wsClients, g.metrics.requests,
		g.metrics.rejected, g.metrics.wsClosed, g.metrics.sessionChecks, g.metrics.runNowLimited} {
		if err := cfg.Registry.Register(c); err != nil {
			return nil, fmt.Errorf("gateway: metrics: %w", err)
		}
	}
	g.ops = &opsCollector{g: g}
	g.metrics.auditWrite = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gstjobs_audit_write_seconds",
		Help: "Time to write one batch of events to audit_log, commit included.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)})
	g.metrics.auditLag = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gstjobs_audit_lag_seconds",
		Help: "From a run's end (finished_at) to its audit_log row committed.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)})
	for _, c := range []prometheus.Collector{g.ops, g.metrics.auditWrite, g.metrics.auditLag} {
		if err := cfg.Registry.Register(c); err != nil {
			return nil, fmt.Errorf("gateway: metrics: %w", err)
		}
	}
	g.dead = bus.NewDeadLetters(cfg.JS, cfg.Registry)
	g.rejections = bus.NewRejections(ops.Instance())
	g.jetstream = bus.NewAvailability(bus.StreamProbe(cfg.JS, bus.StreamJobs),
		bus.ConsumerProbe(cfg.JS, bus.StreamEvents, bus.ConsumerGatewayEvents), bus.StreamProbe(cfg.JS, "KV_"+bus.BucketRuns))
	g.opsHandler = ops.Handler(cfg.Registry,
		ops.Check{Name: "database", Fn: cfg.Pool.Ping},
		ops.Check{Name: "nats", Fn: func(context.Context) error {
			if !cfg.NC.IsConnected() {
				return fmt.Errorf("not connected (%s)", cfg.NC.Status())
			}
			return nil
		}},
		ops.Check{Name: "jetstream", Fn: g.jetstream.Check},
	)
	return g, nil
}

// Start persists results, follows live events and serves HTTP. The streams and buckets
// must exist (bus.Ensure).
func (g *Gateway) Start(ctx context.Context) error {
	var err error
	if g.buckets, err = bus.OpenBuckets(ctx, g.cfg.JS); err != nil {
		return err
	}
	if g.audit, err = g.consumeAudit(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	subs, watcher, err := g.subscribeLive(context.WithoutCancel(ctx))
	if err != nil {
		g.Stop()
		return fmt.Errorf("gateway: live feed: %w", err)
	}
	g.subs, g.watchers = subs, []jetstream.KeyWatcher{watcher}
	runs, err := g.watchRuns(context.WithoutCancel(ctx))
	if err != nil {
		g.Stop()
		return fmt.Errorf("gateway: watch the runs bucket: %w", err)
	}
	g.watchers = append(g.watchers, runs)
	go g.healthLoop()
	go g.flushRejections()
	go g.ops.staleLoop(g.done)
	signOuts, err := g.hearSignOuts()
	if err != nil {
		g.Stop()
		return fmt.Errorf("gateway: sign-outs: %w", err)
	}
	g.subs = append(g.subs, signOuts)
	// The ticker is made here, not in the loop, so that a test's fake clock has it
	// before the first websocket opens.
	sessionTicker := g.cfg.Clock.NewTicker(g.cfg.SessionCheckEvery)
	go func() {
		defer sessionTicker.Stop()
		g.sessionLoop(sessionTicker)
	}()
	unknown, err := g.answerUnknownJobs()
	if err != nil {
		g.Stop()
		return fmt.Errorf("gateway: unknown-job responder: %w", err)
	}
	g.subs = append(g.subs, unknown)

	g.listener, err = net.Listen("tcp", g.cfg.Addr)
	if err != nil {
		g.Stop()
		return fmt.Errorf("gateway: cannot listen on %s (HTTP_ADDR): %w", g.cfg.Addr, err)
	}
	g.server = &http.Server{
		Handler:           g.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	go func() { g.serveErr <- g.server.Serve(g.listener) }()
	g.log.Info("gateway listening", "url", g.URL())
	return nil
}

// URL is the dashboard's address.
func (g *Gateway) URL() string {
	if g.listener == nil {
		return ""
	}
	addr := g.listener.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "localhost"
	}
	return fmt.Sprintf("http://%s/", net.JoinHostPort(host, fmt.Sprint(addr.Port)))
}

// Handler is the HTTP handler (for tests that bring their own server).
func (g *Gateway) Handler() http.Handler { return g.routes() }

// Stop closes websockets, stops HTTP within 5s and stops persisting. Safe to call twice.
func (g *Gateway) Stop() {
	g.stopOnce.Do(func() {
		close(g.done)
		g.hub.endAll(goingAway)
		if g.server != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := g.server.Shutdown(ctx); err != nil {
				g.log.Warn("http shutdown", "err", err)
			}
			cancel()
			if err := <-g.serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.log.Warn("http server", "err", err)
			}
		}
		for _, s := range g.subs {
			_ = s.Unsubscribe()
		}
		for _, w := range g.watchers {
			_ = w.Stop()
		}
		if g.audit != nil {
			g.audit.Drain()
			<-g.audit.Closed()
			g.ingest.stop()
		}
	})
}
