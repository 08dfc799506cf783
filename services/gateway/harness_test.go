package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jonboulle/clockwork"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/demo"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/natstest"
	"github.com/lexhq/gstjobs/internal/pgtest"
	"github.com/lexhq/gstjobs/internal/worker"
	"github.com/lexhq/gstjobs/services/gateway"
)

func TestMain(m *testing.M) {
	if os.Getenv(clientProcessEnv) != "" {
		serveDashboardClients() // BenchmarkDashboards' child process, not a test run
		os.Exit(0)
	}
	pgtest.Main(m)
}

// testSecret signs every token the tests make, as the product's secret would;
// testOperatorSecret the platform operator's.
var (
	testSecret         = []byte("test-secret-for-gstjobs-gateway-0123456789")
	testOperatorSecret = []byte("test-operator-secret-for-gstjobs-0123456789")
)

// The demo firm's people by role (demo.UsersByRole) and the other firm's admin.
var (
	mehtaAdmin = demo.UserAdmin
	iyerAdmin  = demo.UserIyerAdmin
)

// system is a running gateway with the real NATS and PostgreSQL, the demo data, and a
// real worker runtime with test jobs:
//   - check-sla-and-overdue finds, in each firm it covers, that firm's overdue tasks:
//     5 at Mehta & Associates, 2 at Iyer Tax Chambers, none elsewhere (7 in all for a
//     run for every firm), each firm's slice naming its own case; with gate set, each
//     run waits for a value on Release, so a test can see it Running;
//   - send-hearing-reminders fails as the guide's example;
//   - automation-health-check finds Mehta & Associates degraded, with two rules
//     failing, and Iyer Tax Chambers healthy (healthReport); with HealthFails set it
//     fails as the guide's example instead.
type system struct {
	owner   *testing.T // the test that started the system; it outlives subtests
	cfg     gateway.Config
	GW      *gateway.Gateway
	URL     string // the dashboard's address, with a trailing slash
	NATS    *natstest.Server
	Pool    *pgxpool.Pool
	dbURL   string
	Release chan struct{}
	// HealthFails makes the test health check fail instead of reporting.
	HealthFails atomic.Bool
}

// takeDatabaseAway refuses new connections to the system's database and ends the
// current ones, until the test ends or it calls the function returned.
func (s *system) takeDatabaseAway(t *testing.T) (bringBack func()) {
	t.Helper()
	cfg, err := pgx.ParseConfig(s.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	db := cfg.Database
	cfg.Database = "postgres"
	ctx := context.Background()
	admin, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	allow := func(ok bool) {
		if _, err := admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s WITH ALLOW_CONNECTIONS %t", pgx.Identifier{db}.Sanitize(), ok)); err != nil {
			t.Errorf("allow connections %t: %v", ok, err)
		}
	}
	allow(false)
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", db); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	bringBack = func() { once.Do(func() { allow(true); admin.Close(ctx) }) }
	t.Cleanup(bringBack)
	return bringBack
}

type systemOptions struct {
	clock          clockwork.Clock
	gate           bool
	devMode        bool
	allowedOrigins []string

	// sessionCheckEvery is Config.SessionCheckEvery (0: the default).
	sessionCheckEvery time.Duration
}

func startSystem(t *testing.T, o systemOptions) *system {
	t.Helper()
	ns := natstest.Start(t)
	pool, dbURL := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := demo.Load(ctx, pool); err != nil {
		t.Fatalf("load the demo firms and users: %v", err)
	}
	loc, err := catalog.LoadTimezone("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	s := &system{owner: t, NATS: ns, Pool: pool, dbURL: dbURL, Release: make(chan struct{})}
	log := testLogger(t)
	s.cfg = gateway.Config{
		Pool: pool, NC: ns.NC, JS: ns.JS, Location: loc, Log: log, Clock: o.clock,
		Addr: "127.0.0.1:0", RunNowWait: 5 * time.Second, SessionCheckEvery: o.sessionCheckEvery,
		JWTSecret: testSecret, OperatorSecret: testOperatorSecret, DevMode: o.devMode, AllowedOrigins: o.allowedOrigins,
	}
	s.startGateway(t)
	s.URL = s.GW.URL()

	sla := func(ctx context.Context, run worker.Run) (worker.Report, error) {
		if o.gate {
			select {
			case <-s.Release:
			case <-ctx.Done():
				return worker.Report{}, ctx.Err()
			}
		}
		return slaReport(run), nil
	}
	failing := func(context.Context, worker.Run) (worker.Report, error) {
		return worker.Report{}, worker.Fail("Database connection timeout", connTimeout{})
	}
	health := func(ctx context.Context, run worker.Run) (worker.Report, error) {
		if s.HealthFails.Load() {
			return failing(ctx, run)
		}
		return healthReport(run), nil
	}
	nc, js := natstest.Connect(t, ns.URL)
	w, err := worker.New(worker.Config{
		NC: nc, JS: js, Log: log, ShutdownGrace: time.Second,
		Jobs: map[string]worker.Func{
			catalog.CheckSLAAndOverdue:    sla,
			catalog.SendHearingReminders:  failing,
			catalog.AutomationHealthCheck: health,
		},
	})
	if err != nil {
		t.Fatalf("worker.New: %v", err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatalf("worker.Start: %v", err)
	}
	t.Cleanup(w.Stop)
	return s
}

func (s *system) startGateway(t *testing.T) {
	t.Helper()
	g, err := gateway.New(s.cfg)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatalf("gateway.Start: %v", err)
	}
	s.owner.Cleanup(g.Stop)
	s.GW = g
}

// connTimeout is a connection timeout as the network reports it: its text says nothing
// of anyone's data, so every firm may read it.
type connTimeout struct{}

func (connTimeout) Error() string   { return "Connection timed out after 10000ms" }
func (connTimeout) Timeout() bool   { return true }
func (connTimeout) Temporary() bool { return true }

// overdueByFirm is what the test SLA job finds in each firm, and the case it names.
var overdueByFirm = map[string]struct {
	overdue int
	problem string
}{
	demo.TenantMehta: {5, "automation rule \"Tell the case owner\" could not act on GST/APL/2026/0077: case has no owner"},
	demo.TenantIyer:  {2, "automation rule \"Escalate to partner\" could not act on GST/SCN/2026/1201: task has no assignee"},
}

// slaReport is the test SLA job's report for a run: a slice for every covered firm
// that exists (the demo's two and any a test adds), zeros for those with no tasks.
func slaReport(run worker.Run) worker.Report {
	rep := worker.Report{Results: map[string]any{}}
	total := 0
	for _, id := range append([]string{demo.TenantMehta, demo.TenantIyer}, extraFirms()...) {
		if !run.Scope.Covers(id) {
			continue
		}
		f := overdueByFirm[id]
		s := events.TenantSlice{TenantID: id, Results: map[string]any{"overdue_tasks": f.overdue, "sla_violations": 0, "automation_rules_triggered": 0}}
		if f.problem != "" {
			s.Errors = []string{f.problem}
			rep.Errors = append(rep.Errors, f.problem)
		}
		rep.Tenants = append(rep.Tenants, s)
		total += f.overdue
	}
	rep.Results["overdue_tasks"], rep.Results["sla_violations"], rep.Results["automation_rules_triggered"] = total, 0, 0
	return rep
}

// failingRules are the rules the test health check finds failing in each firm.
var failingRules = map[string][]map[string]any{
	demo.TenantMehta: {
		{"id": "e0000000-0000-0000-0000-000000000005", "name": "Tell the case owner about SLA breaches", "tenant_id": demo.TenantMehta, "tenant": "Mehta & Associates",
			"trigger_event": "sla_violation", "action": "notify_owner", "executions": 5, "failures": 5, "failure_rate": 1.0, "missed_breaches": 0,
			"last_error": "task has no case", "problems": []string{"failing"}, "reason": "failed 5 of 5 executions in the last 24 h (last error: task has no case)"},
		{"id": "e0000000-0000-0000-0000-000000000002", "name": "Escalate SLA breaches to managers", "tenant_id": demo.TenantMehta, "tenant": "Mehta & Associates",
			"trigger_event": "sla_violation", "action": "notify_managers", "executions": 4, "failures": 3, "failure_rate": 0.75, "missed_breaches": 0,
			"last_error": "firm has no managers", "problems": []string{"failing"}, "reason": "failed 3 of 4 executions in the last 24 h (last error: firm has no managers)"},
	},
}

// rulesByFirm is how many active rules the test health check looks at in each firm.
var rulesByFirm = map[string]int{demo.TenantMehta: 4, demo.TenantIyer: 1}

// healthReport is the test health check's report: each covered firm's own rules and
// verdict (Mehta degraded, the others healthy), and the totals over them.
func healthReport(run worker.Run) worker.Report {
	var all []map[string]any
	checked := 0
	rep := worker.Report{}
	for _, id := range append([]string{demo.TenantMehta, demo.TenantIyer}, extraFirms()...) {
		if !run.Scope.Covers(id) {
			continue
		}
		bad := failingRules[id]
		verdict := "healthy"
		if len(bad) > 0 {
			verdict = "degraded"
		}
		rules := append([]map[string]any{}, bad...)
		rep.Tenants = append(rep.Tenants, events.TenantSlice{TenantID: id, Results: map[string]any{
			"rules_checked": rulesByFirm[id], "unhealthy_rules": len(bad), "stale_jobs": []string{}, "stale_job_count": 0,
			"health": verdict, "rules": rules, "jobs": []any{},
		}})
		all = append(all, bad...)
		checked += rulesByFirm[id]
	}
	verdict := "healthy"
	if len(all) > 0 {
		verdict = "degraded"
	}
	rep.Results = map[string]any{"rules_checked": checked, "unhealthy_rules": len(all), "stale_jobs": []string{}, "stale_job_count": 0,
		"health": verdict, "rules": append([]map[string]any{}, all...), "jobs": []any{}}
	return rep
}

var extra struct {
	sync.Mutex
	firms []string
}

// addFirm adds a firm with an admin to the system's database; the test SLA job
// covers it too (with nothing to report).
func (s *system) addFirm(t *testing.T, name string) (tenantID, adminID string) {
	t.Helper()
	tenantID, adminID = uuid.NewString(), uuid.NewString()
	ctx := context.Background()
	if _, err := s.Pool.Exec(ctx, `INSERT INTO tenants (id, name) VALUES ($1, $2)`, tenantID, name); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool.Exec(ctx, `INSERT INTO profiles (id, tenant_id, full_name, email, role) VALUES ($1, $2, $3, $4, 'admin')`,
		adminID, tenantID, "Admin of "+name, "admin@"+strings.ToLower(strings.Fields(name)[0])+".example"); err != nil {
		t.Fatal(err)
	}
	extra.Lock()
	extra.firms = append(extra.firms, tenantID)
	extra.Unlock()
	return tenantID, adminID
}

func extraFirms() []string {
	extra.Lock()
	defer extra.Unlock()
	return slices.Clone(extra.firms)
}

// operatorToken signs a platform operator's token.
func operatorToken(t *testing.T) string {
	t.Helper()
	tok, err := gateway.IssueOperatorToken(testOperatorSecret, "ops-1", "Ops On Call", "oncall@platform.example", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// restartGateway stops the gateway and starts another on the same address, as a
// deploy or a crash would: connected dashboards lose their websocket for a while.
func (s *system) restartGateway(t *testing.T, whileDown func()) {
	t.Helper()
	s.GW.Stop()
	if whileDown != nil {
		whileDown()
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	s.cfg.Addr = u.Host
	s.startGateway(t)
}

// release lets one gated SLA run finish.
func (s *system) release(t *testing.T) {
	t.Helper()
	select {
	case s.Release <- struct{}{}:
	case <-time.After(30 * time.Second):
		t.Fatal("no SLA run was waiting to be released within 30s: the trigger never reached the worker")
	}
}

// testLogger keeps the components' logs and prints them only if the test fails
// (GATEWAY_TEST_LOG=1 prints them as they come).
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	if os.Getenv("GATEWAY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	buf := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("component logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// logBuffer is a goroutine-safe log sink that keeps the last 512 KiB.
type logBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - 512<<10; over > 0 {
		b.buf = b.buf[over:]
	}
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// token signs a token for a profile as the product does.
func token(t *testing.T, profileID string) string {
	t.Helper()
	tok, err := gateway.IssueToken(testSecret, profileID, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// request is one HTTP call in a test.
type request struct {
	method, path, body string
	bearer             string
	header             map[string]string
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer is not a JSON object (%v): %s", err, r.body)
	}
	return m
}

func (r response) errorText(t *testing.T) string {
	t.Helper()
	msg, _ := r.json(t)["error"].(string)
	if msg == "" {
		t.Fatalf("answer %d has no {\"error\": ...}: %s", r.code, r.body)
	}
	return msg
}

func (s *system) do(t *testing.T, q request) response {
	t.Helper()
	var body io.Reader
	if q.body != "" {
		body = strings.NewReader(q.body)
	}
	req, err := http.NewRequest(q.method, strings.TrimSuffix(s.URL, "/")+q.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if q.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if q.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+q.bearer)
	}
	for k, v := range q.header {
		req.Header.Set(k, v)
	}
	client := &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", q.method, q.path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return response{code: res.StatusCode, header: res.Header, body: data}
}

// waitFor polls cond (a database or API check) until it holds or the deadline passes.
// The system answers asynchronously over NATS; this waits on its effect, not a clock.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// executions counts a job's rows in audit_log.
func (s *system) executions(t *testing.T, job string) int {
	t.Helper()
	var n int
	err := s.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM audit_log WHERE action_type = 'background_job_execution' AND details->>'job_name' = $1`, job).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
