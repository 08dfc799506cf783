package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/demo"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/services/gateway"
)

// The walking skeleton, every part real: the ticker fires the SLA check's 15-minute
// slot on the test's clock, the sla service runs it against PostgreSQL, the gateway
// writes the result to audit_log in the guide's format and pushes the run live to a
// websocket client that got a snapshot first.
func TestScheduleToRunToAuditLogToWebsocket(t *testing.T) {
	// 11:14:30 in Kolkata: the SLA check's next slot is 11:15.
	start := time.Date(2026, 11, 30, 5, 44, 30, 0, time.UTC)
	s := startStack(t, stackOptions{now: start, withTicker: true})
	ws := s.dialWS(s.authHeader("admin"))

	snap := ws.next("snapshot", func(f gateway.Frame) bool { return f.Type == "snapshot" })
	if len(snap.Jobs) != 5 {
		t.Fatalf("snapshot has %d cards, want the 5 jobs", len(snap.Jobs))
	}
	for _, c := range snap.Jobs {
		if c.Status != gateway.CardPending || c.NextRunAt == nil {
			t.Errorf("fresh system: card %s has status %q next %v; want pending with a next run", c.Name, c.Status, c.NextRunAt)
		}
	}

	// The ticker sleeps until 11:15 IST on the fake clock; move the clock there.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatalf("ticker never waited on the clock: %v", err)
	}
	slot := time.Date(2026, 11, 30, 5, 45, 0, 0, time.UTC)
	s.clock.Advance(slot.Sub(start) + time.Second)

	queued := ws.next("queued status of the 11:15 slot", func(f gateway.Frame) bool {
		return f.Type == "status" && f.Job == catalog.CheckSLAAndOverdue && f.Status.State == events.StateQueued
	})
	if queued.Status.Trigger != events.KindSchedule || !queued.Status.Slot.Equal(slot) {
		t.Fatalf("queued status = %+v; want a schedule trigger for slot %v", queued.Status, slot)
	}
	ws.next("running status", func(f gateway.Frame) bool {
		return f.Type == "status" && f.Job == catalog.CheckSLAAndOverdue && f.Status.State == events.StateRunning && f.Status.RunID == queued.Status.RunID
	})
	res := ws.next("result", func(f gateway.Frame) bool {
		return f.Type == "result" && f.Job == catalog.CheckSLAAndOverdue
	})
	if res.Result.RunID != queued.Status.RunID || res.Result.Status != events.StatusSuccess {
		t.Fatalf("result = %+v; want success of run %s", res.Result, queued.Status.RunID)
	}

	// The numbers are the database's, computed independently here at the same instant,
	// for the admin's own firm: a firm's dashboard shows its own slice of the run.
	var overdue int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM tasks WHERE status IN ('open','in_progress') AND due_date < $1 AND tenant_id = $2`,
		slot.Add(time.Second), demo.TenantMehta).Scan(&overdue); err != nil {
		t.Fatal(err)
	}
	if got := res.Result.Results["overdue_tasks"]; got != float64(overdue) || overdue == 0 {
		t.Errorf("overdue_tasks = %v, the database has %d overdue tasks of Mehta & Associates at the slot", got, overdue)
	}
	if !strings.Contains(res.Summary, fmt.Sprintf("Job executed successfully - %d overdue tasks found", overdue)) {
		t.Errorf("toast summary = %q", res.Summary)
	}

	// The guide's query, verbatim, finds the run.
	waitFor(t, "the audit row", func() bool { return s.auditRows(res.Result.RunID) == 1 })
	rows, err := s.pool.Query(ctx, `SELECT 
  id,
  action_type,
  details->>'job_name' as job,
  details->>'status' as status,
  details->>'execution_time_ms' as duration_ms,
  timestamp
FROM audit_log
WHERE action_type = 'background_job_execution'
ORDER BY timestamp DESC
LIMIT 20;`)
	if err != nil {
		t.Fatalf("the user guide's query fails: %v", err)
	}
	var found int
	for rows.Next() {
		var id int64
		var action, job, status, duration string
		var ts time.Time
		if err := rows.Scan(&id, &action, &job, &status, &duration, &ts); err != nil {
			t.Fatal(err)
		}
		if job == catalog.CheckSLAAndOverdue && status == "success" && duration != "" {
			found++
		}
	}
	if found != 1 {
		t.Fatalf("the guide's query shows %d successful SLA runs, want 1", found)
	}
	var details map[string]any
	if err := s.pool.QueryRow(ctx, `SELECT details FROM audit_log WHERE action_type = 'background_job_execution' AND details->>'run_id' = $1`, res.Result.RunID).Scan(&details); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"job_name", "status", "execution_time_ms", "results", "errors", "run_id", "trigger", "started_at", "finished_at"} {
		if _, ok := details[key]; !ok {
			t.Errorf("audit details lack %q: %v", key, details)
		}
	}
	if details["trigger"] != "schedule" {
		t.Errorf("trigger = %v, want schedule", details["trigger"])
	}

	// The API agrees: the card shows success and the run is in its history.
	var cards struct{ Jobs []gateway.Card }
	s.getJSON("admin", "/api/jobs", &cards)
	for _, c := range cards.Jobs {
		if c.Name == catalog.CheckSLAAndOverdue && (c.Status != gateway.CardSuccess || c.LastRun == nil || c.LastRun.RunID != res.Result.RunID) {
			t.Errorf("card after the run: status %q last run %+v", c.Status, c.LastRun)
		}
	}
	var hist struct{ Runs []gateway.RunView }
	s.getJSON("admin", "/api/jobs/check-sla-and-overdue/runs?limit=10", &hist)
	if len(hist.Runs) != 1 || hist.Runs[0].RunID != res.Result.RunID {
		t.Errorf("history = %+v, want the one run", hist.Runs)
	}
}

// Run Now from the API: 202 with the run it started, a trigger row saying who and why,
// and an execution row for the run with trigger manual.
func TestRunNowRecordsWhoAndWhy(t *testing.T) {
	s := startStack(t, stackOptions{services: []string{"sla"}})
	acc := s.runNow("admin", catalog.CheckSLAAndOverdue, `{"reason":"before client meeting"}`, http.StatusAccepted)
	if acc.RunID == "" || acc.TriggerID == "" {
		t.Fatalf("Run Now answered %+v; want the run it started", acc)
	}
	waitFor(t, "the execution row", func() bool { return s.auditRows(acc.RunID) == 1 })
	var reason, trigger string
	if err := s.pool.QueryRow(context.Background(), `SELECT details->>'reason', details->>'trigger' FROM audit_log
		WHERE action_type = 'background_job_execution' AND details->>'run_id' = $1`, acc.RunID).Scan(&reason, &trigger); err != nil {
		t.Fatal(err)
	}
	if reason != "before client meeting" || trigger != "manual" {
		t.Errorf("execution row: reason %q trigger %q", reason, trigger)
	}
	var n int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_log
		WHERE action_type = 'background_job_trigger' AND details->>'trigger_id' = $1 AND details->>'reason' = 'before client meeting'`, acc.TriggerID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d trigger rows for trigger %s, want 1", n, acc.TriggerID)
	}
}

// Bad input gets a clear error and loses nothing: malformed trigger payloads and unknown
// jobs, over NATS and over HTTP. The services go on serving afterwards.
func TestBadInputGetsClearErrorsAndServiceGoesOn(t *testing.T) {
	s := startStack(t, stackOptions{services: []string{"sla"}})
	results := natsCollect(t, s, "jobs.result.>")

	if err := s.nats.NC.Publish("jobs.trigger.check-sla-and-overdue", []byte(`{"reason": oops}`)); err != nil {
		t.Fatal(err)
	}
	r := nextResultOf(t, results, catalog.CheckSLAAndOverdue)
	if r.Status != events.StatusRejected || !strings.Contains(r.ErrorMessage, "not valid JSON") {
		t.Errorf("malformed trigger: %+v; want a rejection saying the body is not valid JSON", r)
	}
	if err := s.nats.NC.Publish("jobs.trigger.send-invoices", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	r = nextResultOf(t, results, "send-invoices")
	if r.Status != events.StatusRejected || !strings.Contains(r.ErrorMessage, `unknown job "send-invoices"`) || !strings.Contains(r.ErrorMessage, catalog.CheckSLAAndOverdue) {
		t.Errorf("unknown job: %+v; want a rejection naming the job and the known ones", r)
	}
	waitFor(t, "rejection rows", func() bool {
		var n int
		_ = s.pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_log WHERE action_type = 'background_job_trigger_rejected'`).Scan(&n)
		return n == 2
	})

	for _, c := range []struct {
		name, job, body string
		code            int
		want            string
	}{
		{"unknown job", "send-invoices", `{}`, http.StatusNotFound, `unknown job "send-invoices"`},
		{"malformed body", catalog.CheckSLAAndOverdue, `{"reason":`, http.StatusBadRequest, "not the expected JSON"},
		{"unknown field", catalog.CheckSLAAndOverdue, `{"why":"x"}`, http.StatusBadRequest, "unknown field"},
		{"reason too long", catalog.CheckSLAAndOverdue, `{"reason":"` + strings.Repeat("r", 501) + `"}`, http.StatusBadRequest, "longer than 500"},
	} {
		code, body := s.do("admin", http.MethodPost, "/api/jobs/"+c.job+"/run", c.body)
		var e struct{ Error string }
		_ = json.Unmarshal(body, &e)
		if code != c.code || !strings.Contains(e.Error, c.want) {
			t.Errorf("%s: HTTP %d %s; want %d with an error mentioning %q", c.name, code, body, c.code, c.want)
		}
	}

	// After all that, a good trigger still runs.
	acc := s.runNow("admin", catalog.CheckSLAAndOverdue, `{}`, http.StatusAccepted)
	r = nextResultOf(t, results, catalog.CheckSLAAndOverdue)
	if r.Status != events.StatusSuccess || r.RunID != acc.RunID {
		t.Fatalf("after bad input, Run Now gave %+v; want success of run %s", r, acc.RunID)
	}
}

// A result delivered twice (a gateway that died between commit and ack) is one row.
func TestRedeliveredResultIsWrittenOnce(t *testing.T) {
	s := startStack(t, stackOptions{services: []string{}})
	res := events.Result{RunID: "2b0f5b1e-7a7c-4c53-9d62-5d0c1c1f0a11", JobName: catalog.CheckSLAAndOverdue, Status: events.StatusSuccess,
		ExecutionTimeMS: 2340, Results: map[string]any{"overdue_tasks": 5, "sla_violations": 2, "automation_rules_triggered": 3}, FinishedAt: time.Now()}
	data, _ := json.Marshal(res)
	for i := range 3 {
		// Different message ids, so JetStream's own dedupe does not hide the repeat.
		if _, err := s.nats.JS.Publish(context.Background(), events.ResultSubject(res.JobName), data, jetstream.WithMsgID(fmt.Sprint("redelivery-", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitForConsumerIdle(t, s)
	if n := s.auditRows(res.RunID); n != 1 {
		t.Fatalf("%d audit rows for one run delivered three times, want 1", n)
	}
}

// The database goes away while results arrive: nothing is acked before its row is
// committed, health says unhealthy, and when the database is back every result lands
// exactly once.
func TestDatabaseOutageLosesNoResult(t *testing.T) {
	s := startStack(t, stackOptions{services: []string{}})
	dbName := s.dbName()
	admin := s.adminConn()
	setAllowConnections(t, admin, dbName, false)
	t.Cleanup(func() { setAllowConnections(t, admin, dbName, true) })

	code, body := s.do("", http.MethodGet, "/api/health", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), `"unhealthy"`) {
		t.Errorf("health during the outage: %d %s; want 503 unhealthy", code, body)
	}
	var ids []string
	for i := range 3 {
		res := events.Result{RunID: fmt.Sprintf("00000000-0000-4000-8000-00000000000%d", i), JobName: catalog.CaptureAnalyticsSnapshot,
			Status: events.StatusSuccess, Results: map[string]any{}, FinishedAt: time.Now()}
		data, _ := json.Marshal(res)
		if _, err := s.nats.JS.Publish(context.Background(), events.ResultSubject(res.JobName), data); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.RunID)
	}
	// The gateway must be failing to write, not ignoring the events.
	waitFor(t, "the gateway to retry a failed write", func() bool {
		info, err := s.nats.JS.Consumer(context.Background(), "JOBS_EVENTS", "gateway-events")
		if err != nil {
			return false
		}
		ci, err := info.Info(context.Background())
		return err == nil && ci.NumRedelivered > 0
	})
	setAllowConnections(t, admin, dbName, true)
	for _, id := range ids {
		waitFor(t, "result "+id+" to land after the outage", func() bool { return s.auditRows(id) == 1 })
	}
	code, _ = s.do("", http.MethodGet, "/api/health", "")
	if code == http.StatusServiceUnavailable {
		// Jobs were never run in this test, which is not a health problem.
		_, body := s.do("", http.MethodGet, "/api/health", "")
		if strings.Contains(string(body), "database") && strings.Contains(string(body), "unreachable") {
			t.Errorf("health after the outage still says the database is unreachable: %s", body)
		}
	}
}

// --- helpers ---

func (s *stack) do(role, method, path, body string) (int, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, strings.TrimSuffix(s.gw.URL(), "/")+path, bytes.NewBufferString(body))
	if err != nil {
		s.t.Fatal(err)
	}
	for k, v := range s.authHeader(role) {
		req.Header[k] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

func (s *stack) getJSON(role, path string, v any) {
	s.t.Helper()
	code, body := s.do(role, http.MethodGet, path, "")
	if code != http.StatusOK {
		s.t.Fatalf("GET %s: HTTP %d %s", path, code, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
}

func (s *stack) runNow(role, job, body string, want int) gateway.Accepted {
	s.t.Helper()
	code, data := s.do(role, http.MethodPost, "/api/jobs/"+job+"/run", body)
	if code != want {
		s.t.Fatalf("Run Now %s: HTTP %d %s, want %d", job, code, data, want)
	}
	var acc gateway.Accepted
	_ = json.Unmarshal(data, &acc)
	return acc
}

// The database goes away while a job runs (the SLA check, then the automation health
// check, whose reads are one batch): the run fails with words for people and the
// cause for engineers, the service stays up, and once the database is back the next run
// succeeds.
func TestJobFailsClearlyWhenTheDatabaseIsGoneAndRecovers(t *testing.T) {
	s := startStack(t, stackOptions{services: []string{"sla"}})
	results := natsCollect(t, s, "jobs.result.>")
	admin := s.adminConn()
	dbName := s.dbName()
	setAllowConnections(t, admin, dbName, false)
	restored := false
	t.Cleanup(func() {
		if !restored {
			setAllowConnections(t, admin, dbName, true)
		}
	})

	// Run Now needs the database for its audit row, so trigger over NATS as a developer
	// would: the SLA check, then the automation health check (whose reads go to the
	// database as one batch on a connection of its own).
	failed := map[string]events.Result{}
	for _, job := range []string{catalog.CheckSLAAndOverdue, catalog.AutomationHealthCheck} {
		if _, err := s.nats.JS.Publish(context.Background(), events.TriggerSubject(job), []byte(`{"reason":"db down"}`)); err != nil {
			t.Fatal(err)
		}
		got := nextResultOf(t, results, job)
		if got.Status != events.StatusFailed || !strings.Contains(got.ErrorMessage, "Database") || !strings.Contains(got.ErrorDetails, "SQLSTATE") {
			// The cause is the server's: the database refusing connections, or the pool's
			// connection having been ended by the administrator.
			t.Fatalf("%s with the database gone: %+v; want failed, error_message naming the database, error_details with the server's error", job, got)
		}
		t.Logf("%s: error_message %q, error_details %q", job, got.ErrorMessage, got.ErrorDetails)
		failed[job] = got
	}

	setAllowConnections(t, admin, dbName, true)
	restored = true
	// The failed runs are persisted, once each, when the gateway can write again.
	for job, r := range failed {
		waitFor(t, job+"'s failed run's audit row", func() bool { return s.auditRows(r.RunID) == 1 })
	}
	for _, job := range []string{catalog.CheckSLAAndOverdue, catalog.AutomationHealthCheck} {
		acc := s.runNow("admin", job, `{"reason":"db back"}`, http.StatusAccepted)
		r2 := nextResultOf(t, results, job)
		if r2.RunID != acc.RunID || r2.Status != events.StatusSuccess {
			t.Fatalf("%s after the database came back: %+v; want success of run %s", job, r2, acc.RunID)
		}
	}
}
