package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/demo"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/services/gateway"
)

// secretsOf are, per firm, words that belong to that firm alone: its name, its id, its
// people's e-mails, the case its slice names. None may reach another firm's people.
func secretsOf(firm string) []string {
	switch firm {
	case demo.TenantMehta:
		return []string{"Mehta & Associates", demo.TenantMehta, "anjali@mehta.example", "rohan@mehta.example", "GST/APL/2026/0077", "Tell the case owner"}
	case demo.TenantIyer:
		return []string{"Iyer Tax Chambers", demo.TenantIyer, "lakshmi@iyer.example", "GST/SCN/2026/1201", "Escalate to partner"}
	}
	return []string{firm}
}

// leakCheck fails the test when text a firm's user received holds another firm's words.
func leakCheck(t *testing.T, viewer string, others [][]string, where, text string) {
	t.Helper()
	for _, words := range others {
		for _, w := range words {
			if strings.Contains(text, w) {
				t.Errorf("%s received %q, which belongs to another firm, in %s: %.300s", viewer, w, where, text)
			}
		}
	}
}

func runsOf(t *testing.T, s *system, tok, job string) []gateway.RunView {
	t.Helper()
	res := s.do(t, request{method: "GET", path: "/api/jobs/" + job + "/runs", bearer: tok})
	if res.code != 200 {
		t.Fatalf("history = %d: %s", res.code, res.body)
	}
	var p struct{ Runs []gateway.RunView }
	if err := json.Unmarshal(res.body, &p); err != nil {
		t.Fatal(err)
	}
	return p.Runs
}

// resultFrame reads a dashboard's frames up to the result of a run, checking each
// frame for other firms' words.
func (c *wsClient) resultFrame(viewer string, others [][]string, runID string) gateway.Frame {
	c.t.Helper()
	return c.next("the result of run "+runID, func(f gateway.Frame, raw string) bool {
		leakCheck(c.t, viewer, others, f.Type+" frame", raw)
		return f.Type == "result" && f.Result != nil && (runID == "" || f.Result.RunID == runID)
	})
}

// What is tried: three firms (Mehta & Associates with 5 overdue tasks, Iyer Tax
// Chambers with 2, Pillai & Co with none) watch their dashboards while a run for every
// firm (a developer's `nats pub`) and then one firm's Run Now go through.
// What must hold: each firm's admin sees its own numbers, written here, in the toast,
// the history and the cards, and the platform operator sees the totals and every
// firm's slice; a firm's Run Now is that firm's run alone: the others get no frame and
// no history row of it; nothing any firm's user receives (API answers, snapshot, live
// frames, health) holds another firm's name, id, e-mails, case numbers or rule names.
func TestEachFirmSeesOnlyItsOwnSlice(t *testing.T) {
	s := startSystem(t, systemOptions{})
	pillai, pillaiAdmin := s.addFirm(t, "Pillai & Co")
	firms := []struct {
		name, tenant, token string
		overdue             float64
	}{
		{"Mehta's admin", demo.TenantMehta, token(t, mehtaAdmin), 5},
		{"Iyer's admin", demo.TenantIyer, token(t, iyerAdmin), 2},
		{"Pillai's admin", pillai, token(t, pillaiAdmin), 0},
	}
	others := func(tenant string) [][]string {
		var o [][]string
		for _, f := range firms {
			if f.tenant != tenant {
				o = append(o, secretsOf(f.tenant))
			}
		}
		if tenant != pillai {
			o = append(o, []string{"Pillai & Co", "admin@pillai.example"})
		}
		return o
	}
	sockets := map[string]*wsClient{}
	for _, f := range firms {
		ws := s.connectWS(t, f.token)
		ws.next("the snapshot", func(fr gateway.Frame, raw string) bool {
			leakCheck(t, f.name, others(f.tenant), "the snapshot", raw)
			return fr.Type == "snapshot"
		})
		sockets[f.tenant] = ws
	}
	op := operatorToken(t)
	opWS := s.connectWS(t, op)
	opWS.next("the operator's snapshot", func(fr gateway.Frame, _ string) bool { return fr.Type == "snapshot" })

	// A run for every firm.
	if err := s.NATS.NC.Publish(events.TriggerSubject(catalog.CheckSLAAndOverdue), []byte(`{"reason":"smoke test","requested_by":"dev@platform"}`)); err != nil {
		t.Fatal(err)
	}
	var runID string
	for _, f := range firms {
		fr := sockets[f.tenant].resultFrame(f.name, others(f.tenant), "")
		runID = fr.Result.RunID
		want := fmt.Sprintf("Job executed successfully - %d overdue tasks found", int(f.overdue))
		if fr.Summary != want {
			t.Errorf("%s's toast = %q, want %q", f.name, fr.Summary, want)
		}
		if fr.Result.RequestedBy != gateway.DeveloperClient || fr.Result.Reason != "" {
			t.Errorf("%s sees the developer's trigger as %q / %q, want %q and no reason", f.name, fr.Result.RequestedBy, fr.Result.Reason, gateway.DeveloperClient)
		}
	}
	opFrame := opWS.resultFrame("the operator", nil, runID)
	if opFrame.Summary != "Job executed successfully - 7 overdue tasks found" || opFrame.Result.RequestedBy != "dev@platform" {
		t.Errorf("the operator's toast = %q by %q, want the totals (7) and the developer's own words", opFrame.Summary, opFrame.Result.RequestedBy)
	}
	waitFor(t, "the run's slices in job_run_tenants", 20*time.Second, func() bool {
		var n int
		_ = s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM job_run_tenants WHERE run_id = $1`, runID).Scan(&n)
		return n == 3 && s.executions(t, catalog.CheckSLAAndOverdue) == 1
	})

	// The history, the cards, one card, me and health, as each firm gets them.
	for _, f := range firms {
		runs := runsOf(t, s, f.token, catalog.CheckSLAAndOverdue)
		if len(runs) != 1 || runs[0].Results["overdue_tasks"] != f.overdue {
			t.Errorf("%s's history = %+v, want the one run with %v overdue tasks", f.name, runs, f.overdue)
		}
		if len(runs) == 1 && f.overdue > 0 && len(runs[0].Errors) != 1 {
			t.Errorf("%s's history shows errors %q, want its own one", f.name, runs[0].Errors)
		}
		for _, path := range []string{"/api/jobs", "/api/jobs/" + catalog.CheckSLAAndOverdue, "/api/jobs/" + catalog.CheckSLAAndOverdue + "/runs", "/api/me", "/api/health"} {
			res := s.do(t, request{method: "GET", path: path, bearer: f.token})
			leakCheck(t, f.name, others(f.tenant), path, string(res.body))
		}
	}
	runs := runsOf(t, s, op, catalog.CheckSLAAndOverdue)
	if len(runs) != 1 || runs[0].Results["overdue_tasks"] != float64(7) || runs[0].RequestedBy != "dev@platform" {
		t.Errorf("the operator's history = %+v, want the run's totals (7) and who asked", runs)
	}
	res := s.do(t, request{method: "GET", path: "/api/jobs/" + catalog.CheckSLAAndOverdue + "/runs/" + runID + "/firms", bearer: op})
	var firmsOfRun struct{ Firms []gateway.FirmSlice }
	if err := json.Unmarshal(res.body, &firmsOfRun); err != nil || len(firmsOfRun.Firms) != 3 {
		t.Fatalf("the operator's view of the run's firms = %d %s, want 3 firms", res.code, res.body)
	}
	for _, fs := range firmsOfRun.Firms {
		if fs.Tenant == "Iyer Tax Chambers" && fs.Results["overdue_tasks"] != float64(2) {
			t.Errorf("the operator sees Iyer's slice as %+v, want 2 overdue tasks", fs)
		}
	}
	for _, f := range firms {
		if res := s.do(t, request{method: "GET", path: "/api/jobs/" + catalog.CheckSLAAndOverdue + "/runs/" + runID + "/firms", bearer: f.token}); res.code != 403 {
			t.Errorf("%s reads every firm's slices: %d %s, want 403", f.name, res.code, res.body)
		}
	}

	// Iyer's Run Now is Iyer's run: Mehta and Pillai hear nothing of it.
	acc := s.do(t, request{method: "POST", path: "/api/jobs/" + catalog.CheckSLAAndOverdue + "/run", body: `{"reason":"Coromandel Metals hearing prep"}`, bearer: firms[1].token}).json(t)
	iyerRun, _ := acc["run_id"].(string)
	if iyerRun == "" {
		t.Fatalf("Iyer's Run Now = %v, want a run", acc)
	}
	fr := sockets[demo.TenantIyer].resultFrame("Iyer's admin", others(demo.TenantIyer), iyerRun)
	if fr.Summary != "Job executed successfully - 2 overdue tasks found" || fr.Result.RequestedBy != "lakshmi@iyer.example" || fr.Result.Reason != "Coromandel Metals hearing prep" {
		t.Errorf("Iyer's own Run Now, to Iyer: %q by %q for %q", fr.Summary, fr.Result.RequestedBy, fr.Result.Reason)
	}
	// Then Mehta's: its dashboard's frames up to its own result hold nothing of Iyer's run.
	acc = s.do(t, request{method: "POST", path: "/api/jobs/" + catalog.CheckSLAAndOverdue + "/run", body: `{}`, bearer: firms[0].token}).json(t)
	mehtaRun, _ := acc["run_id"].(string)
	sockets[demo.TenantMehta].next("Mehta's own result", func(f gateway.Frame, raw string) bool {
		leakCheck(t, "Mehta's admin", others(demo.TenantMehta), f.Type+" frame", raw)
		if strings.Contains(raw, iyerRun) {
			t.Errorf("Mehta's dashboard got a %s frame of Iyer's Run Now: %s", f.Type, raw)
		}
		return f.Type == "result" && f.Result != nil && f.Result.RunID == mehtaRun
	})
	waitFor(t, "both Run Now runs in audit_log", 20*time.Second, func() bool { return s.executions(t, catalog.CheckSLAAndOverdue) == 3 })
	if runs := runsOf(t, s, firms[2].token, catalog.CheckSLAAndOverdue); len(runs) != 1 {
		t.Errorf("Pillai's history has %d runs, want only the one that covered Pillai", len(runs))
	}
	if runs := runsOf(t, s, firms[1].token, catalog.CheckSLAAndOverdue); len(runs) != 2 || runs[0].RequestedBy != "lakshmi@iyer.example" {
		t.Errorf("Iyer's history = %+v, want its own Run Now (by Lakshmi) and the run for every firm", runs)
	}
}

// What is tried: Mehta's admin pauses the SLA check for Mehta, a run for every firm
// follows, then the admin resumes; Iyer's admin tries to pause for every firm and to
// change the schedule; the platform operator pauses for everyone.
// What must hold: the pause is Mehta's alone (its card, its config frame, its audit
// row with who, why and which firm); the run skips Mehta (no slice, no toast) and
// counts one skipped firm; after the resume the next run covers Mehta again; a firm
// admin gets 403s that say the rest is the operator's; the operator's pause is for all.
func TestPausePerFirm(t *testing.T) {
	s := startSystem(t, systemOptions{})
	mehta, iyer, op := token(t, mehtaAdmin), token(t, iyerAdmin), operatorToken(t)
	mehtaWS, iyerWS := s.connectWS(t, mehta), s.connectWS(t, iyer)
	for _, ws := range []*wsClient{mehtaWS, iyerWS} {
		ws.next("the snapshot", func(f gateway.Frame, _ string) bool { return f.Type == "snapshot" })
	}
	sla := "/api/jobs/" + catalog.CheckSLAAndOverdue
	res := s.do(t, request{method: "POST", path: sla + "/pause", body: `{"reason":"year-end audit"}`, bearer: mehta})
	if res.code != 200 || res.json(t)["for"] != "firm" {
		t.Fatalf("Mehta's admin pauses = %d %s, want 200 for the firm", res.code, res.body)
	}
	cfgFrame := mehtaWS.next("Mehta's config frame", func(f gateway.Frame, _ string) bool { return f.Type == "config" })
	if cfgFrame.Config == nil || !cfgFrame.Config.Paused || !cfgFrame.ForFirm || cfgFrame.Job != catalog.CheckSLAAndOverdue {
		t.Errorf("Mehta's config frame = %+v, want the SLA check paused for the firm", cfgFrame)
	}
	card := func(tok string) gateway.Card {
		var c gateway.Card
		if err := json.Unmarshal(s.do(t, request{method: "GET", path: sla, bearer: tok}).body, &c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := card(mehta); !c.Paused || !c.PausedForFirm || c.PausedForEveryone || c.NextRunAt != nil {
		t.Errorf("Mehta's card = paused %v, for firm %v, for everyone %v, next %v; want paused for the firm, no next run", c.Paused, c.PausedForFirm, c.PausedForEveryone, c.NextRunAt)
	}
	if c := card(iyer); c.Paused {
		t.Errorf("Iyer's card shows Mehta's pause")
	}
	var who, tenant, why string
	if err := s.Pool.QueryRow(context.Background(), `SELECT details->>'requested_by', coalesce(tenant_id::text, ''), details->>'reason'
		FROM audit_log WHERE action_type = 'background_job_paused'`).Scan(&who, &tenant, &why); err != nil {
		t.Fatalf("the pause's audit row: %v", err)
	}
	if who != "anjali@mehta.example" || tenant != demo.TenantMehta || why != "year-end audit" {
		t.Errorf("the pause's audit row says %q, firm %q, why %q", who, tenant, why)
	}
	// The operator pausing a firm that is not one is told so, and nothing is written.
	res = s.do(t, request{method: "POST", path: sla + "/pause", body: `{"tenant_id":"` + noFirm + `","reason":"typo"}`, bearer: op})
	if res.code != 404 || !strings.Contains(res.errorText(t), "no firm has the id") {
		t.Errorf("the operator pauses a firm that is not one = %d %s, want 404 saying no firm has the id", res.code, res.body)
	}
	var typos int
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_log WHERE details->>'reason' = 'typo'`).Scan(&typos); err != nil || typos != 0 {
		t.Errorf("audit rows of the refused pause = %d (%v), want 0", typos, err)
	}

	// A run for every firm skips Mehta: Iyer's toast, nothing for Mehta, one firm skipped.
	if err := s.NATS.NC.Publish(events.TriggerSubject(catalog.CheckSLAAndOverdue), nil); err != nil {
		t.Fatal(err)
	}
	fr := iyerWS.resultFrame("Iyer's admin", [][]string{secretsOf(demo.TenantMehta)}, "")
	skipRun := fr.Result.RunID
	waitFor(t, "the run in audit_log", 20*time.Second, func() bool { return s.executions(t, catalog.CheckSLAAndOverdue) == 1 })
	if runs := runsOf(t, s, mehta, catalog.CheckSLAAndOverdue); len(runs) != 0 {
		t.Errorf("Mehta's history has %d runs while paused, want none", len(runs))
	}
	if runs := runsOf(t, s, op, catalog.CheckSLAAndOverdue); len(runs) != 1 || runs[0].Results["tenants_skipped"] != float64(1) || runs[0].Results["overdue_tasks"] != float64(2) {
		t.Errorf("the operator's view of the run = %+v, want 1 firm skipped and Iyer's 2 overdue", runs)
	}

	// Resumed: the next run covers Mehta again.
	if res := s.do(t, request{method: "POST", path: sla + "/resume", body: `{}`, bearer: mehta}); res.code != 200 {
		t.Fatalf("resume = %d %s", res.code, res.body)
	}
	mehtaWS.next("Mehta's resume frame", func(f gateway.Frame, _ string) bool {
		if f.Type == "result" && f.Result != nil && f.Result.RunID == skipRun {
			t.Errorf("Mehta got the result of a run that skipped it")
		}
		return f.Type == "config" && f.Config != nil && !f.Config.Paused
	})
	if err := s.NATS.NC.Publish(events.TriggerSubject(catalog.CheckSLAAndOverdue), nil); err != nil {
		t.Fatal(err)
	}
	if fr := mehtaWS.resultFrame("Mehta's admin", [][]string{secretsOf(demo.TenantIyer)}, ""); fr.Summary != "Job executed successfully - 5 overdue tasks found" {
		t.Errorf("after the resume Mehta's toast = %q", fr.Summary)
	}

	// What holds for every firm is the operator's.
	for _, c := range []struct{ method, path, body string }{
		{"POST", sla + "/pause", `{"for":"everyone"}`},
		{"POST", sla + "/pause", `{"tenant_id":"` + demo.TenantMehta + `"}`},
		{"PUT", sla + "/schedule", `{"schedule":"*/30 * * * *"}`},
	} {
		res := s.do(t, request{method: c.method, path: c.path, body: c.body, bearer: iyer})
		if res.code != 403 || !strings.Contains(res.errorText(t), "platform operator") {
			t.Errorf("Iyer's admin: %s %s %s = %d %s, want 403 saying it is the platform operator's", c.method, c.path, c.body, res.code, res.body)
		}
	}
	if res := s.do(t, request{method: "POST", path: sla + "/pause", body: `{"reason":"maintenance"}`, bearer: op}); res.code != 200 || res.json(t)["for"] != "everyone" {
		t.Fatalf("the operator's pause = %d %s, want 200 for everyone", res.code, res.body)
	}
	for _, tok := range []string{mehta, iyer} {
		if c := card(tok); !c.PausedForEveryone || c.PausedForFirm {
			t.Errorf("after the operator's pause a firm's card: for everyone %v, for firm %v", c.PausedForEveryone, c.PausedForFirm)
		}
	}
	if res := s.do(t, request{method: "PUT", path: sla + "/schedule", body: `{"schedule":"*/30 * * * *"}`, bearer: op}); res.code != 200 {
		t.Errorf("the operator's schedule change = %d %s", res.code, res.body)
	}
}

// What is tried: with dashboards connected, PostgreSQL is taken away and a run goes
// through. What must hold: the live frames arrive as they do with the database up,
// because the live path reads neither the database nor a bucket.
func TestLiveFramesWithoutTheDatabase(t *testing.T) {
	s := startSystem(t, systemOptions{})
	ws := s.connectWS(t, token(t, iyerAdmin))
	ws.next("the snapshot", func(f gateway.Frame, _ string) bool { return f.Type == "snapshot" })
	s.takeDatabaseAway(t)
	start := time.Now()
	if err := s.NATS.NC.Publish(events.TriggerSubject(catalog.CheckSLAAndOverdue), nil); err != nil {
		t.Fatal(err)
	}
	fr := ws.resultFrame("Iyer's admin", [][]string{secretsOf(demo.TenantMehta)}, "")
	if fr.Summary != "Job executed successfully - 2 overdue tasks found" {
		t.Errorf("Iyer's toast with the database away = %q", fr.Summary)
	}
	// Not a timing assertion on the machine's speed: a live path that waited on the
	// database would wait for its timeouts (seconds), not milliseconds.
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the result frame took %s with the database away, want it as fast as with it (the live path waits on nothing)", took)
	}
}

// What is tried: a run for 10,000 firms, published as a worker publishes it (every
// firm's slice in parts, then the result), with Iyer among them.
// What must hold: every message stays far below NATS's default 1 MB payload limit, and
// Iyer's dashboard gets its own slice of the run live.
func TestTenThousandFirmsStayUnderThePayloadLimit(t *testing.T) {
	s := startSystem(t, systemOptions{})
	ws := s.connectWS(t, token(t, iyerAdmin))
	ws.next("the snapshot", func(f gateway.Frame, _ string) bool { return f.Type == "snapshot" })
	const firms = 10_000
	runID := "10000000-0000-4000-8000-000000010000"
	var all []events.TenantSlice
	for i := range firms {
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", 0xf1, i)
		results := map[string]any{"overdue_tasks": i % 17, "sla_violations": i % 5, "automation_rules_triggered": i % 3}
		all = append(all, events.TenantSlice{TenantID: id, Status: events.StatusSuccess, Results: results,
			Errors: []string{fmt.Sprintf("automation rule \"Rule %d\" could not act on 1 task(s): task has no assignee", i%4)}})
	}
	all[4321] = events.TenantSlice{TenantID: demo.TenantIyer, Status: events.StatusSuccess,
		Results: map[string]any{"overdue_tasks": 2, "sla_violations": 1, "automation_rules_triggered": 1}}
	parts := events.SplitSlices(all)
	now := time.Now()
	ctx := context.Background()
	for i, p := range parts {
		data, _ := json.Marshal(events.Slices{RunID: runID, JobName: catalog.CheckSLAAndOverdue, Attempt: 1, Part: i, Parts: len(parts), FinishedAt: now, Tenants: p})
		if len(data) > 256<<10 {
			t.Errorf("slices part %d is %d bytes, want far below 1 MB", i, len(data))
		}
		if _, err := s.NATS.JS.Publish(ctx, events.SlicesSubject(catalog.CheckSLAAndOverdue), data); err != nil {
			t.Fatalf("publish part %d of %d (%d bytes): %v", i, len(parts), len(data), err)
		}
	}
	res := events.Result{RunID: runID, JobName: catalog.CheckSLAAndOverdue, Status: events.StatusSuccess, Scope: &events.Scope{All: true},
		Results: map[string]any{"overdue_tasks": 80000}, Slices: firms, SliceParts: len(parts), Attempt: 1, Trigger: events.KindSchedule,
		Triggers: []events.TriggerRef{{ID: "slot", Kind: events.KindSchedule, Source: events.SourceSchedule, At: now}}, StartedAt: now, FinishedAt: now}
	data, _ := json.Marshal(res)
	if len(data) > 16<<10 {
		t.Errorf("the result of a 10,000-firm run is %d bytes: it carries totals, not slices", len(data))
	}
	if _, err := s.NATS.JS.Publish(ctx, events.ResultSubject(catalog.CheckSLAAndOverdue), data); err != nil {
		t.Fatal(err)
	}
	fr := ws.resultFrame("Iyer's admin", nil, runID)
	if fr.Summary != "Job executed successfully - 2 overdue tasks found" || fr.Result.Results["sla_violations"] != float64(1) {
		t.Errorf("Iyer's frame of the 10,000-firm run = %q %v, want its own slice", fr.Summary, fr.Result.Results)
	}
	t.Logf("10,000 firms: %d slices parts, largest %d KB; result %d bytes", len(parts), maxPart(parts)>>10, len(data))
}

func maxPart(parts [][]events.TenantSlice) int {
	m := 0
	for _, p := range parts {
		b, _ := json.Marshal(p)
		m = max(m, len(b))
	}
	return m
}

// What is tried: 1,000 firms, each with 200 runs of the SLA check in job_run_tenants
// (200,000 slices) and the runs' audit rows; the planner's view of one firm's history.
// What must hold: one range of the index job_run_tenants_history and a probe of
// audit_log's unique key per row; no sequential scan, no sort, nothing of another firm.
func TestFirmHistoryIsOneIndexedRead(t *testing.T) {
	s := startSystem(t, systemOptions{})
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO tenants (id, name) SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(f), 12, '0'))::uuid, 'Firm ' || f FROM generate_series(1, 1000) f`,
		`INSERT INTO audit_log (action_type, entity_type, entity_id, details, dedupe_key, "timestamp")
		 SELECT 'background_job_execution', 'background_job', 'check-sla-and-overdue',
		        jsonb_build_object('job_name', 'check-sla-and-overdue', 'run_id', r.id, 'status', 'success', 'results', '{}'::jsonb),
		        'execution:' || r.id, now() - r.n * interval '15 minutes'
		 FROM (SELECT n, ('10000000-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid AS id FROM generate_series(1, 200) n) r`,
		`INSERT INTO job_run_tenants (tenant_id, run_id, job_name, status, results, finished_at)
		 SELECT t.id, ('10000000-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid, 'check-sla-and-overdue', 'success',
		        '{"overdue_tasks": 3}', now() - n * interval '15 minutes'
		 FROM tenants t, generate_series(1, 200) n`,
		`ANALYZE tenants, audit_log, job_run_tenants`,
	} {
		if _, err := s.Pool.Exec(ctx, q); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}
	rows, err := s.Pool.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "+gateway.FirmHistoryQuery,
		demo.TenantIyer, catalog.CheckSLAAndOverdue, time.Now().Add(time.Hour), "ffffffff-ffff-ffff-ffff-ffffffffffff", 11)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	text := strings.Join(plan, "\n")
	t.Logf("a firm's history, 1,000 firms × 200 runs:\n%s", text)
	if !strings.Contains(text, "Index Scan using job_run_tenants_history on job_run_tenants") ||
		strings.Contains(text, "Seq Scan") || strings.Contains(text, "Sort") || !strings.Contains(text, "audit_log_dedupe_key_key") {
		t.Errorf("a firm's history should be one range of job_run_tenants_history and a probe of audit_log's unique key per row; plan:\n%s", text)
	}
}
