package e2e

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jonboulle/clockwork"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/demo"
	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/internal/natsauth"
	"github.com/lexhq/gstjobs/internal/natstest"
	"github.com/lexhq/gstjobs/internal/ops"
	"github.com/lexhq/gstjobs/internal/pgtest"
	"github.com/lexhq/gstjobs/internal/worker"
	"github.com/lexhq/gstjobs/services/analytics"
	"github.com/lexhq/gstjobs/services/gateway"
	"github.com/lexhq/gstjobs/services/reminders"
	"github.com/lexhq/gstjobs/services/sla"
	"github.com/lexhq/gstjobs/services/ticker"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var kolkata = mustLoc("Asia/Kolkata")

func mustLoc(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

// stack is the whole system in-process, as `make run` runs it, on a clock the test
// controls, against a server with the system's NATS users: each service connects as
// its own, and every permission the server refuses one fails the test.
type stack struct {
	t     *testing.T
	nats  *natstest.Server
	pool  *pgxpool.Pool
	dbURL string
	clock *clockwork.FakeClock
	gw    *gateway.Gateway
	deps  jobservice.Deps
}

type stackOptions struct {
	now        time.Time
	withTicker bool
	// services to start; default all three.
	services []string
}

func startStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	if o.now.IsZero() {
		o.now = time.Now()
	}
	s := &stack{t: t, nats: natstest.StartWithAuth(t), clock: clockwork.NewFakeClockAt(o.now)}
	s.pool, s.dbURL = pgtest.NewPool(t)
	if _, err := demo.Load(context.Background(), s.pool); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Each service's NC and JS are its own user's (startService); the test's own
	// connection, s.nats.NC, may do anything.
	s.deps = jobservice.Deps{Pool: s.pool, Clock: s.clock, Location: kolkata, Log: log, Registry: ops.NewRegistry(), Env: &ops.Env{}}
	if o.services == nil {
		o.services = []string{"sla", "reminders", "analytics"}
	}
	for _, name := range o.services {
		s.startService(name)
	}
	if o.withTicker {
		nc, js := s.nats.ConnectAs(t, natsauth.Ticker)
		firms := ticker.NewPostgresFirms(s.pool, kolkata, log)
		t.Cleanup(firms.Close)
		tk, err := ticker.New(ticker.Config{JS: js, NC: nc, Location: kolkata, Clock: s.clock, Log: log, Firms: firms})
		if err != nil {
			t.Fatal(err)
		}
		if err := tk.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tk.Stop)
	}
	gwNC, gwJS := s.nats.ConnectAs(t, natsauth.Gateway)
	gw, err := gateway.New(gateway.Config{Pool: s.pool, NC: gwNC, JS: gwJS, Clock: s.clock, Location: kolkata, Log: log, Addr: "127.0.0.1:0", JWTSecret: testSecret, OperatorSecret: testOperatorSecret})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Stop)
	s.gw = gw
	return s
}

func (s *stack) startService(name string) *worker.Worker {
	s.t.Helper()
	jobs := map[string]jobservice.Jobs{"sla": sla.Jobs, "reminders": reminders.Jobs, "analytics": analytics.Jobs}[name]
	d := s.deps
	d.NC, d.JS = s.nats.ConnectAs(s.t, name)
	w, err := jobservice.Start(context.Background(), name, d, jobs, func(c *worker.Config) { c.ShutdownGrace = 2 * time.Second })
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(w.Stop)
	return w
}

// auditRows counts execution rows for a run.
func (s *stack) auditRows(runID string) int {
	s.t.Helper()
	var n int
	if err := s.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM audit_log WHERE action_type = 'background_job_execution' AND details->>'run_id' = $1`, runID).Scan(&n); err != nil {
		s.t.Fatal(err)
	}
	return n
}

// waitFor polls a condition that depends on another process (the gateway's commit),
// failing with what was expected.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !poll(20*time.Second, 20*time.Millisecond, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// poll asks cond every interval until it holds, for at most timeout, and says whether
// it held: for state that another process changes and announces to no one (a stream's
// leader, a probe's answer, a commit in another process).
func poll(timeout, every time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// wsClient reads frames from the gateway's websocket.
type wsClient struct {
	t      testing.TB
	conn   *websocket.Conn
	frames chan gateway.Frame
}

func (s *stack) dialWS(header http.Header) *wsClient {
	s.t.Helper()
	return dialWSAt(s.t, s.gw.URL(), header)
}

// dialWSAt opens the websocket of the gateway at base (its dashboard's address).
func dialWSAt(t testing.TB, base string, header http.Header) *wsClient {
	t.Helper()
	url := strings.Replace(base, "http://", "ws://", 1) + "ws"
	conn, resp, err := websocket.DefaultDialer.Dial(url, header)
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		t.Fatalf("websocket dial %s: %v (HTTP %d)", url, err, code)
	}
	c := &wsClient{t: t, conn: conn, frames: make(chan gateway.Frame, 1024)}
	go func() {
		defer close(c.frames)
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			var f gateway.Frame
			if json.Unmarshal(data, &f) == nil {
				c.frames <- f
			}
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return c
}

// next returns the first frame that matches, failing after 20s.
func (c *wsClient) next(what string, match func(gateway.Frame) bool) gateway.Frame {
	c.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				c.t.Fatalf("websocket closed while waiting for %s", what)
			}
			if match(f) {
				return f
			}
		case <-timeout:
			c.t.Fatalf("no websocket frame: %s", what)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

var _ = catalog.Names
