package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jonboulle/clockwork"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/demo"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/services/gateway"
)

// TestBadInput sends what a careless script or a broken page might. What must hold:
// each is answered 4xx with a JSON {"error": ...} that says what is wrong, and
// nothing is triggered or changed.
func TestBadInput(t *testing.T) {
	s := startSystem(t, systemOptions{})
	tok := token(t, mehtaAdmin)
	sla := "/api/jobs/" + catalog.CheckSLAAndOverdue
	long := strings.Repeat("x", events.MaxReasonLen+1)
	cases := []struct {
		name               string
		method, path, body string
		wantCode           int
		wantWords          string
	}{
		{"unknown job", "POST", "/api/jobs/send-invoices/run", `{}`, 404, "unknown job \"send-invoices\": known jobs are check-sla-and-overdue"},
		{"unknown job's history", "GET", "/api/jobs/send-invoices/runs", "", 404, "unknown job"},
		{"body not JSON", "POST", sla + "/run", `reason=now`, 400, "not the expected JSON"},
		{"body a JSON array", "POST", sla + "/run", `["now"]`, 400, "not the expected JSON"},
		{"unknown field", "POST", sla + "/run", `{"reason":"x","priority":"high"}`, 400, `unknown field "priority"`},
		{"reason too long", "POST", sla + "/run", `{"reason":"` + long + `"}`, 400, "reason is longer than 500 characters"},
		{"pause reason too long", "POST", sla + "/pause", `{"reason":"` + long + `"}`, 400, "reason is longer than 500 characters"},
		// Valid JSON that PostgreSQL's jsonb would refuse: answered 400 here, never a 503.
		{"NUL in a reason", "POST", sla + "/run", `{"reason":"a\u0000b"}`, 400, "reason contains a NUL character"},
		{"NUL in a pause reason", "POST", sla + "/pause", `{"reason":"\u0000"}`, 400, "reason contains a NUL character"},
		{"a control character in a reason", "POST", sla + "/run", `{"reason":"ring \u0007"}`, 400, "control character U+0007"},
		{"invalid UTF-8", "POST", sla + "/run", "{\"reason\":\"\xff\xfe\"}", 400, "not valid UTF-8"},
		{"body too large", "POST", sla + "/run", `{"reason":"` + strings.Repeat("x", gateway.MaxBody) + `"}`, 400, "larger than"},
		{"schedule not cron", "PUT", sla + "/schedule", `{"schedule":"every day"}`, 400, "not a five-field cron expression"},
		{"schedule six fields", "PUT", sla + "/schedule", `{"schedule":"0 */5 * * * *"}`, 400, "five-field"},
		{"schedule @every", "PUT", sla + "/schedule", `{"schedule":"@every 1s"}`, 400, "not @every"},
		{"schedule that never runs", "PUT", sla + "/schedule", `{"schedule":"0 0 30 2 *"}`, 400, "never runs"},
		{"limit zero", "GET", sla + "/runs?limit=0", "", 400, "limit must be a whole number from 1 to 100"},
		{"limit not a number", "GET", sla + "/runs?limit=ten", "", 400, "limit must be"},
		{"limit too big", "GET", sla + "/runs?limit=1000", "", 400, "limit must be"},
		{"cursor garbage", "GET", sla + "/runs?before=yesterday", "", 400, "cursor"},
		{"no such API route", "GET", "/api/jobz", "", 404, "no such API route"},
		{"wrong method", "DELETE", sla + "/run", "", 405, "DELETE is not allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := tok
			if strings.HasSuffix(tc.path, "/schedule") {
				tok = operatorToken(t) // schedules are the operator's
			}
			res := s.do(t, request{method: tc.method, path: tc.path, body: tc.body, bearer: tok})
			if res.code != tc.wantCode {
				t.Fatalf("%s %s = %d, want %d: %s", tc.method, tc.path, res.code, tc.wantCode, res.body)
			}
			if msg := res.errorText(t); !strings.Contains(msg, tc.wantWords) {
				t.Errorf("error %q should say %q", msg, tc.wantWords)
			}
		})
	}
	var triggers int
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_log WHERE action_type LIKE 'background_job_%'`).Scan(&triggers); err != nil {
		t.Fatal(err)
	}
	if triggers != 0 {
		t.Errorf("bad requests wrote %d audit rows, want none", triggers)
	}
}

// TestRunsPagination: the history pages newest first, 10 at a time, and the cursor
// of the last page leads to the rest and then to nothing, for a firm (its slices) and
// for the operator (the runs' totals) alike.
func TestRunsPagination(t *testing.T) {
	s := startSystem(t, systemOptions{})
	base := time.Date(2026, 1, 15, 8, 0, 0, 0, time.UTC)
	for i := range 12 {
		runID := fmt.Sprintf("00000000-0000-0000-0000-%012d", i)
		at := base.Add(time.Duration(i) * 15 * time.Minute)
		details, _ := json.Marshal(events.Result{
			RunID: runID, JobName: catalog.CheckSLAAndOverdue, Status: events.StatusSuccess, Scope: &events.Scope{All: true},
			Results: map[string]any{"overdue_tasks": i}, Trigger: events.KindSchedule, FinishedAt: at,
		})
		if _, err := s.Pool.Exec(context.Background(),
			`INSERT INTO audit_log (action_type, entity_type, entity_id, details, dedupe_key, "timestamp") VALUES ('background_job_execution', 'background_job', $1, $2, $3, $4)`,
			catalog.CheckSLAAndOverdue, details, "execution:"+runID, at); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Pool.Exec(context.Background(),
			`INSERT INTO job_run_tenants (tenant_id, run_id, job_name, status, results, finished_at) VALUES ($1, $2, $3, 'success', $4, $5)`,
			demo.TenantMehta, runID, catalog.CheckSLAAndOverdue, fmt.Sprintf(`{"overdue_tasks": %d}`, i), at); err != nil {
			t.Fatal(err)
		}
	}
	for _, viewer := range []struct{ name, tok string }{{"a partner", token(t, demo.UserPartner)}, {"the operator", operatorToken(t)}} {
		t.Run(viewer.name, func(t *testing.T) { paginate(t, s, viewer.tok) })
	}
}

func paginate(t *testing.T, s *system, tok string) {
	type page struct {
		Runs       []gateway.RunView `json:"runs"`
		NextCursor string            `json:"next_cursor"`
	}
	get := func(query string) page {
		res := s.do(t, request{method: "GET", path: "/api/jobs/" + catalog.CheckSLAAndOverdue + "/runs" + query, bearer: tok})
		if res.code != 200 {
			t.Fatalf("GET runs%s = %d: %s", query, res.code, res.body)
		}
		var p page
		if err := json.Unmarshal(res.body, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	first := get("?limit=10")
	if len(first.Runs) != 10 || first.NextCursor == "" {
		t.Fatalf("first page: %d runs, cursor %q; want 10 and a cursor", len(first.Runs), first.NextCursor)
	}
	if got := first.Runs[0].Results["overdue_tasks"]; got != float64(11) {
		t.Errorf("newest first: the first run should be the 12th (overdue_tasks 11), got %v", got)
	}
	second := get("?limit=10&before=" + first.NextCursor)
	if len(second.Runs) != 2 || second.NextCursor != "" {
		t.Fatalf("second page: %d runs, cursor %q; want the 2 oldest and no cursor", len(second.Runs), second.NextCursor)
	}
	if got := second.Runs[1].Results["overdue_tasks"]; got != float64(0) {
		t.Errorf("the last run should be the oldest, got overdue_tasks %v", got)
	}
}

// wsClient reads frames from a dashboard websocket.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func (s *system) connectWS(t *testing.T, tok string) *wsClient {
	t.Helper()
	code, conn := s.dialWS(t, bearer(tok))
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("websocket handshake = %d, want 101", code)
	}
	return &wsClient{t: t, conn: conn}
}

// next reads frames until one satisfies match; it fails after 20s.
func (c *wsClient) next(what string, match func(gateway.Frame, string) bool) gateway.Frame {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			c.t.Fatalf("waiting for %s on the websocket: %v", what, err)
		}
		var f gateway.Frame
		if err := json.Unmarshal(data, &f); err != nil {
			c.t.Fatalf("frame is not JSON: %v: %s", err, data)
		}
		if match(f, string(data)) {
			return f
		}
	}
}

// TestLiveFrames: a dashboard gets a snapshot (cards and health) first, then the
// queued, running and result changes of a run, the result with the toast's words.
func TestLiveFrames(t *testing.T) {
	s := startSystem(t, systemOptions{})
	tok := token(t, mehtaAdmin)
	ws := s.connectWS(t, tok)
	snap := ws.next("the snapshot", func(f gateway.Frame, _ string) bool { return true })
	if snap.Type != "snapshot" || len(snap.Jobs) != 5 || snap.Health == nil {
		t.Fatalf("first frame: type %q, %d jobs, health %v; want a snapshot of 5 cards with health", snap.Type, len(snap.Jobs), snap.Health)
	}
	if res := s.do(t, request{method: "POST", path: "/api/jobs/" + catalog.CheckSLAAndOverdue + "/run", body: `{"reason":"live"}`, bearer: tok}); res.code != 202 {
		t.Fatalf("Run Now = %d: %s", res.code, res.body)
	}
	// Statuses and results travel on different subjects, so a result may overtake the
	// running status: accept them in any order.
	seen := map[string]bool{}
	var res gateway.Frame
	for !(seen[events.StateQueued] && seen[events.StateRunning] && seen["result"]) {
		ws.next("queued, running and the result", func(f gateway.Frame, _ string) bool {
			switch {
			case f.Type == "status" && f.Status != nil && f.Job == catalog.CheckSLAAndOverdue:
				seen[f.Status.State] = true
			case f.Type == "result":
				seen["result"], res = true, f
			}
			return true
		})
	}
	// Mehta's admin pressed Run Now: the run is Mehta's, and so are its numbers.
	if res.Summary != "Job executed successfully - 5 overdue tasks found" {
		t.Errorf("result summary = %q", res.Summary)
	}
	if res.Result == nil || res.Result.RequestedBy != "anjali@mehta.example" || res.Result.Reason != "live" {
		t.Errorf("the result should carry who and why: %+v", res.Result)
	}
}

// TestSessionExpiryClosesWebsocket: a dashboard left open past its token's expiry is
// disconnected with close code 4001, so it asks the person to sign in again.
func TestSessionExpiryClosesWebsocket(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Now())
	s := startSystem(t, systemOptions{clock: clock})
	tok, err := gateway.IssueToken(testSecret, mehtaAdmin, clock.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ws := s.connectWS(t, tok)
	ws.next("the snapshot", func(f gateway.Frame, _ string) bool { return f.Type == "snapshot" })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Two waiters on the clock: the session check's ticker and the socket's expiry timer.
	if err := clock.BlockUntilContext(ctx, 2); err != nil {
		t.Fatalf("the websocket set no expiry timer: %v", err)
	}
	clock.Advance(2 * time.Minute)
	_ = ws.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := ws.conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != gateway.CloseSessionExpired {
			t.Fatalf("want the connection closed with 4001 (session expired), got %v", err)
		}
		return
	}
}

// What is tried: JSON answers of several routes and outcomes: 200, 401, 403, 404, 405
// and 503 or 200 of the open health route.
// What must hold: each carries X-Content-Type-Options: nosniff and a JSON content type,
// so no browser reads one as a page.
func TestJSONAnswersAreNotSniffed(t *testing.T) {
	s := startSystem(t, systemOptions{})
	admin := token(t, mehtaAdmin)
	for _, q := range []request{
		{method: "GET", path: "/api/jobs", bearer: admin},
		{method: "GET", path: "/api/me", bearer: admin},
		{method: "GET", path: "/api/jobs/" + catalog.CheckSLAAndOverdue + "/runs", bearer: admin},
		{method: "GET", path: "/api/health"},
		{method: "GET", path: "/api/jobs"},
		{method: "GET", path: "/api/jobs", bearer: token(t, demo.UserAdvocate)},
		{method: "GET", path: "/api/jobz", bearer: admin},
		{method: "DELETE", path: "/api/jobs/" + catalog.CheckSLAAndOverdue + "/run", bearer: admin},
		{method: "POST", path: "/api/jobs/" + catalog.CheckSLAAndOverdue + "/run", body: `{"reason":"sniff"}`, bearer: admin},
	} {
		res := s.do(t, q)
		if got := res.header.Get("X-Content-Type-Options"); got != "nosniff" || !strings.HasPrefix(res.header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s (%d): X-Content-Type-Options %q, Content-Type %q; want nosniff on JSON", q.method, q.path, res.code, got, res.header.Get("Content-Type"))
		}
	}
}
