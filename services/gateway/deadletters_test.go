package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/demo"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/services/gateway"
)

func (s *system) deadLetters(t *testing.T) uint64 {
	t.Helper()
	st, err := s.NATS.JS.Stream(context.Background(), bus.StreamDead)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// What is tried: 600 events the audit consumer can never write (more than its 512
// pending), published on the results, statuses and slices subjects as if by a broken
// service: not JSON, a NUL in a result's text (valid JSON that jsonb refuses), a slice
// whose status breaks the table's CHECK, and then one ordinary result.
// What must hold: the poison is terminated and kept in JOBS_DEAD with its reason (none
// is retried, none blocks), the ordinary result lands in audit_log, and the operator
// can read the dead letters; a firm's admin cannot.
func TestPoisonCannotStopTheAuditLog(t *testing.T) {
	s := startSystem(t, systemOptions{})
	ctx := context.Background()
	js := s.NATS.JS
	sla := catalog.CheckSLAAndOverdue
	for i := range 600 {
		var subject string
		var data []byte
		switch i % 3 {
		case 0:
			subject, data = events.ResultSubject(sla), []byte(`{"run_id": not json`)
		case 1:
			subject, data = events.ResultSubject(sla), []byte(fmt.Sprintf(`{"run_id":"%08d-0000-4000-8000-000000000000","job_name":"%s","status":"success","results":{"x":"a\u0000b"},"finished_at":"2026-01-01T00:00:00Z"}`, i, sla))
		default:
			subject, data = events.SlicesSubject(sla), []byte(fmt.Sprintf(`{"run_id":"%08d-0000-4000-8000-000000000001","job_name":"%s","attempt":1,"part":0,"parts":1,"finished_at":"2026-01-01T00:00:00Z","tenants":[{"tenant_id":"%s","status":"weird","results":{}}]}`, i, sla, demo.TenantMehta))
		}
		if _, err := js.Publish(ctx, subject, data); err != nil {
			t.Fatal(err)
		}
	}
	good := events.Result{RunID: "20000000-0000-4000-8000-000000000001", JobName: sla, Status: events.StatusSuccess, Scope: &events.Scope{All: true},
		Results: map[string]any{"overdue_tasks": 7}, FinishedAt: time.Now()}
	data, _ := json.Marshal(good)
	start := time.Now()
	if _, err := js.Publish(ctx, events.ResultSubject(sla), data); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ordinary result in audit_log behind 600 poisoned events", 20*time.Second, func() bool { return s.executions(t, sla) == 1 })
	t.Logf("the ordinary result landed %s after it was published, behind 600 poisoned events", time.Since(start).Round(time.Millisecond))
	waitFor(t, "every poisoned event kept in JOBS_DEAD", 20*time.Second, func() bool { return s.deadLetters(t) == 600 })

	res := s.do(t, request{method: "GET", path: "/api/dead-letters?limit=3", bearer: operatorToken(t)})
	var page struct {
		DeadLetters []struct {
			Seq                              uint64
			Consumer, Subject, Class, Reason string
		} `json:"dead_letters"`
		Total int `json:"total"`
	}
	if err := json.Unmarshal(res.body, &page); err != nil || res.code != 200 || page.Total != 600 || len(page.DeadLetters) != 3 {
		t.Fatalf("the operator's dead letters = %d %s", res.code, res.body)
	}
	for _, d := range page.DeadLetters {
		if d.Consumer != bus.ConsumerGatewayEvents || d.Class != bus.DeadPermanent || d.Reason == "" || !strings.HasPrefix(d.Subject, "jobs.") {
			t.Errorf("dead letter %+v: want the consumer, the subject, class permanent and why", d)
		}
	}
	if res := s.do(t, request{method: "GET", path: "/api/dead-letters", bearer: token(t, mehtaAdmin)}); res.code != 403 {
		t.Errorf("a firm's admin reads the dead letters: %d", res.code)
	}
	var h struct {
		DeadLetters *int `json:"dead_letters"`
	}
	_ = json.Unmarshal(s.do(t, request{method: "GET", path: "/api/health", bearer: operatorToken(t)}).body, &h)
	if h.DeadLetters == nil || *h.DeadLetters != 600 {
		t.Errorf("the operator's health says dead_letters %v, want 600", h.DeadLetters)
	}
}

// What is tried: a result that went to JOBS_DEAD while the database was away for a
// day (as the audit consumer does at its bound), then the operator's replay.
// What must hold: the replay writes it to audit_log once, removes it from JOBS_DEAD and
// records who replayed it; a second replay finds nothing.
func TestOperatorReplaysADeadLetter(t *testing.T) {
	s := startSystem(t, systemOptions{})
	ctx := context.Background()
	sla := catalog.CheckSLAAndOverdue
	r := events.Result{RunID: "30000000-0000-4000-8000-000000000001", JobName: sla, Status: events.StatusSuccess, Scope: &events.Scope{All: true},
		Results: map[string]any{"overdue_tasks": 3}, FinishedAt: time.Now()}
	data, _ := json.Marshal(r)
	m := &nats.Msg{Subject: bus.DeadSubject(bus.ConsumerGatewayEvents), Data: data, Header: nats.Header{}}
	m.Header.Set(bus.HeaderDeadSubject, events.ResultSubject(sla))
	m.Header.Set(bus.HeaderDeadConsumer, bus.ConsumerGatewayEvents)
	m.Header.Set(bus.HeaderDeadClass, bus.DeadExhausted)
	m.Header.Set(bus.HeaderDeadReason, "failed 3000 times, the last: connection refused")
	ack, err := s.NATS.JS.PublishMsg(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/api/dead-letters/%d/replay", ack.Sequence)
	if res := s.do(t, request{method: "POST", path: path, body: `{"reason":"database back"}`, bearer: token(t, mehtaAdmin)}); res.code != 403 {
		t.Errorf("a firm's admin replays a dead letter: %d", res.code)
	}
	if res := s.do(t, request{method: "POST", path: path, body: `{"reason":"database back"}`, bearer: operatorToken(t)}); res.code != 202 {
		t.Fatalf("replay = %d %s", res.code, res.body)
	}
	waitFor(t, "the replayed result in audit_log", 20*time.Second, func() bool { return s.executions(t, sla) == 1 })
	if n := s.deadLetters(t); n != 0 {
		t.Errorf("JOBS_DEAD holds %d after the replay, want 0", n)
	}
	var who string
	if err := s.Pool.QueryRow(ctx, `SELECT details->>'requested_by' FROM audit_log WHERE action_type = 'background_job_dead_letter_replayed'`).Scan(&who); err != nil || who != "oncall@platform.example" {
		t.Errorf("the replay's audit row: %q, %v", who, err)
	}
	if res := s.do(t, request{method: "POST", path: path, body: `{}`, bearer: operatorToken(t)}); res.code != 404 {
		t.Errorf("a second replay = %d %s, want 404", res.code, res.body)
	}
}

// What is tried: a schedule slot an intake gave up on (kept in JOBS_DEAD), replayed by
// the operator.
// What must hold: the gateway does not publish on the ticker's subject; the job is
// ordered again on jobs.trigger.<job>.api as the operator's Run Now (every firm), whose
// reason names the dead letter; the letter leaves JOBS_DEAD.
func TestReplayingALostSlotRunsTheJobAsTheOperator(t *testing.T) {
	s := startSystem(t, systemOptions{})
	ctx := context.Background()
	job := catalog.SendHearingReminders
	orders := make(chan *nats.Msg, 16)
	sub, err := s.NATS.NC.ChanSubscribe("jobs.>", orders)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	m := &nats.Msg{Subject: bus.DeadSubject(bus.TriggerConsumer(job)), Data: []byte(`{"slot":"2026-12-01T08:00:00+05:30"}`), Header: nats.Header{}}
	m.Header.Set(bus.HeaderDeadSubject, events.PrefixSchedule+job)
	m.Header.Set(bus.HeaderDeadConsumer, bus.TriggerConsumer(job))
	m.Header.Set(bus.HeaderDeadClass, bus.DeadExhausted)
	m.Header.Set(bus.HeaderDeadReason, "failed 40 times, the last: connection refused")
	ack, err := s.NATS.JS.PublishMsg(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	res := s.do(t, request{method: "POST", path: fmt.Sprintf("/api/dead-letters/%d/replay", ack.Sequence), body: `{"reason":"database back"}`, bearer: operatorToken(t)})
	if res.code != 202 || !strings.Contains(string(res.body), `"run_now"`) {
		t.Fatalf("replay = %d %s; want 202 with the Run Now it started", res.code, res.body)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case o := <-orders:
			if strings.HasPrefix(o.Subject, events.PrefixSchedule) {
				t.Fatalf("the gateway published %s: it may not speak for the ticker", o.Subject)
			}
			if o.Subject != events.APITriggerSubject(job) {
				continue
			}
			tr, err := events.DecodeTrigger(o.Data, true)
			if err != nil || tr.Requester == nil || !tr.Requester.Operator || !strings.Contains(tr.Reason, fmt.Sprintf("dead letter %d", ack.Sequence)) || !strings.Contains(tr.Reason, "database back") {
				t.Fatalf("the replayed order %s: %+v, %v; want the operator's Run Now naming the dead letter", o.Data, tr, err)
			}
			if n := s.deadLetters(t); n != 0 {
				t.Errorf("JOBS_DEAD holds %d after the replay, want 0", n)
			}
			return
		case <-deadline:
			t.Fatal("no Run Now on jobs.trigger.<job>.api within 10s of the replay")
		}
	}
}

// What is tried: 300 triggers for a job that does not exist, then two processes' samples
// and final counts of one minute of rejections (one of them delivered twice).
// What must hold: the gateway stores one rejection for the 300 in that minute; the
// audit log keeps one row per subject and minute whose count is the sum of each
// process's (a repeat changes nothing).
func TestRejectionsAreStoredOncePerSubjectPerMinute(t *testing.T) {
	s := startSystem(t, systemOptions{})
	ctx := context.Background()
	for range 300 {
		if err := s.NATS.NC.Publish("jobs.trigger.send-invoices", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	rows := func(job string) (n int, count float64) {
		_ = s.Pool.QueryRow(ctx, `SELECT count(*), coalesce(max((details->>'count')::float8), 0) FROM audit_log
			WHERE action_type = 'background_job_trigger_rejected' AND entity_id = $1`, job).Scan(&n, &count)
		return n, count
	}
	waitFor(t, "the unknown job's rejection in audit_log", 20*time.Second, func() bool { n, _ := rows("send-invoices"); return n == 1 })
	st, err := s.NATS.JS.Stream(ctx, "JOBS_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter("jobs.result.send-invoices"))
	if err != nil {
		t.Fatal(err)
	}
	if got := info.State.Subjects["jobs.result.send-invoices"]; got != 1 {
		t.Errorf("JOBS_EVENTS stores %d rejections of 300 triggers in one minute, want 1", got)
	}

	minute := time.Date(2026, 3, 10, 8, 0, 0, 0, time.UTC)
	publish := func(instance string, count int, id string) {
		t.Helper()
		r := events.Result{JobName: catalog.CheckSLAAndOverdue, Status: events.StatusRejected, ErrorMessage: "Trigger rejected: body is not valid JSON",
			Subject: events.TriggerSubject(catalog.CheckSLAAndOverdue), Minute: minute, Count: count, Instance: instance, FinishedAt: minute.Add(time.Second)}
		data, _ := json.Marshal(r)
		if _, err := s.NATS.JS.Publish(ctx, events.ResultSubject(catalog.CheckSLAAndOverdue), data, jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
	}
	publish("sla-1", 1, "a1")
	publish("sla-2", 1, "b1")
	publish("sla-1", 50, "a-final")
	publish("sla-1", 50, "a-final-again")
	waitFor(t, "the minute's counts summed", 20*time.Second, func() bool { n, c := rows(catalog.CheckSLAAndOverdue); return n == 1 && c == 51 })
}

// What is tried: Run Now on a job whose database connection times out (the harness's
// hearing reminders). What must hold: the card says the run failed and when it is
// retried (attempt 2 of 4), for the firm that asked; another firm sees no retry of a
// run that was not theirs.
func TestCardSaysWhenAFailedRunIsRetried(t *testing.T) {
	s := startSystem(t, systemOptions{})
	path := "/api/jobs/" + catalog.SendHearingReminders
	if res := s.do(t, request{method: "POST", path: path + "/run", body: `{}`, bearer: token(t, mehtaAdmin)}); res.code != 202 {
		t.Fatalf("Run Now = %d %s", res.code, res.body)
	}
	var c struct {
		Status string `json:"status"`
		Retry  *struct {
			At          time.Time `json:"at"`
			Attempt     int       `json:"attempt"`
			MaxAttempts int       `json:"max_attempts"`
		} `json:"retry"`
	}
	waitFor(t, "the failed run's retry on the card", 20*time.Second, func() bool {
		_ = json.Unmarshal(s.do(t, request{method: "GET", path: path, bearer: token(t, mehtaAdmin)}).body, &c)
		return c.Retry != nil && c.Status == "failed" // the retry is in the bucket at once, the failed run in the history a moment later
	})
	if c.Status != "failed" || c.Retry.Attempt != 2 || c.Retry.MaxAttempts != 4 || time.Until(c.Retry.At) > time.Minute+5*time.Second {
		t.Errorf("Mehta's card: status %q, retry %+v; want failed, attempt 2 of 4 within a minute", c.Status, c.Retry)
	}
	c.Retry = nil
	_ = json.Unmarshal(s.do(t, request{method: "GET", path: path, bearer: token(t, iyerAdmin)}).body, &c)
	if c.Retry != nil {
		t.Errorf("Iyer's card shows the retry of Mehta's run: %+v", c.Retry)
	}
}

// What is tried: the gateway commits a batch of 200 results and dies before acking any
// (as a crash right after the commit would), and another gateway takes over.
// What must hold: every event is delivered again, and every run still has exactly one
// audit_log row.
func TestACrashBetweenCommitAndAckAddsNoRow(t *testing.T) {
	s := startSystem(t, systemOptions{})
	s.GW.Stop()
	var dropping atomic.Bool
	dropping.Store(true)
	cfg := s.cfg
	gateway.DropAcksAfterCommit(&cfg, dropping.Load)
	s.cfg = cfg
	u, _ := url.Parse(s.URL)
	s.cfg.Addr = u.Host
	s.startGateway(t)

	ctx := context.Background()
	sla := catalog.CheckSLAAndOverdue
	for i := range 200 {
		r := events.Result{RunID: fmt.Sprintf("40000000-0000-4000-8000-%012d", i), JobName: sla, Status: events.StatusSuccess,
			Scope: &events.Scope{All: true}, Results: map[string]any{"overdue_tasks": i}, FinishedAt: time.Now()}
		data, _ := json.Marshal(r)
		if _, err := s.NATS.JS.Publish(ctx, events.ResultSubject(sla), data); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the 200 rows committed", 20*time.Second, func() bool { return s.executions(t, sla) == 200 })
	// None was acked: the consumer has them all pending.
	c, err := s.NATS.JS.Consumer(ctx, bus.StreamEvents, bus.ConsumerGatewayEvents)
	if err != nil {
		t.Fatal(err)
	}
	if ci, err := c.Info(ctx); err != nil || ci.NumAckPending < 200 {
		t.Fatalf("ack pending = %v (%v), want the 200 committed events unacked", ci, err)
	}
	// The crash: this gateway goes, another comes, and the events are delivered again.
	s.GW.Stop()
	dropping.Store(false)
	s.startGateway(t)
	waitFor(t, "every redelivered event acked", 60*time.Second, func() bool {
		ci, err := c.Info(ctx)
		return err == nil && ci.NumAckPending == 0 && ci.NumPending == 0
	})
	var rows, runs int
	if err := s.Pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT details->>'run_id') FROM audit_log WHERE action_type = 'background_job_execution'`).Scan(&rows, &runs); err != nil {
		t.Fatal(err)
	}
	if rows != 200 || runs != 200 {
		t.Errorf("after the redelivery: %d rows for %d runs, want 200 and 200", rows, runs)
	}
}
