package gateway_test

import (
	"context"
	"encoding/json"
	"html"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/demo"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/services/gateway"
)

// runForAll runs a job for every firm, as a developer's `nats pub` does, and waits
// until its execution row and every covered firm's slice are in the database.
func (s *system) runForAll(t *testing.T, job string, firms int) string {
	t.Helper()
	before := s.executions(t, job)
	if err := s.NATS.NC.Publish(events.TriggerSubject(job), []byte(`{"reason":"items test"}`)); err != nil {
		t.Fatal(err)
	}
	var runID string
	waitFor(t, "the run of "+job+" and its slices in the database", 20*time.Second, func() bool {
		var n int
		err := s.Pool.QueryRow(context.Background(), `
SELECT a.details->>'run_id', (SELECT count(*) FROM job_run_tenants s WHERE s.run_id = (a.details->>'run_id')::uuid)
FROM audit_log a WHERE a.action_type = 'background_job_execution' AND a.details->>'job_name' = $1
ORDER BY a.id DESC LIMIT 1`, job).Scan(&runID, &n)
		return err == nil && n == firms && s.executions(t, job) == before+1
	})
	return runID
}

func (s *system) items(t *testing.T, tok, job, runID, key string) (int, gateway.RunItems, string) {
	t.Helper()
	res := s.do(t, request{method: "GET", path: "/api/jobs/" + job + "/runs/" + runID + "/items?key=" + key, bearer: tok})
	var items gateway.RunItems
	if res.code == 200 {
		if err := json.Unmarshal(res.body, &items); err != nil {
			t.Fatalf("items answer is not RunItems: %v: %s", err, res.body)
		}
	}
	return res.code, items, string(res.body)
}

func titles(items []gateway.Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Title)
	}
	slices.Sort(out)
	return out
}

// The demo's overdue tasks, which the test SLA job's numbers (5 and 2) stand for.
var (
	mehtaOverdue = []string{"Collect GSTR-2A reconciliation", "Compute pre-deposit (10%)", "Draft reply to SCN", "Obtain transporter affidavit", "Reconcile e-invoices with GSTR-1 (unassigned)"}
	iyerOverdue  = []string{"Cross-examination request", "Reply to DRC-01A intimation"}
)

// What is tried: a run of the SLA check and of the health check for every firm; each
// firm's admin, the platform operator and wrong requests ask for the items behind the
// numbers.
// What must hold: a firm gets its own overdue tasks (the demo's, recomputed at the
// run's time, which is said) and its own unhealthy rules, nothing of another firm; the
// operator gets every firm's, each with the firm's name; a run that did not cover the
// firm is not found; a bad key or run id is a 400 that says what would do.
func TestRunItems(t *testing.T) {
	s := startSystem(t, systemOptions{})
	mehta, iyer, op := token(t, mehtaAdmin), token(t, iyerAdmin), operatorToken(t)
	sla := catalog.CheckSLAAndOverdue
	run := s.runForAll(t, sla, 2)

	for _, c := range []struct {
		who, tok string
		want     []string
		others   [][]string
	}{
		{"Mehta's admin", mehta, mehtaOverdue, [][]string{secretsOf(demo.TenantIyer), iyerOverdue}},
		{"Iyer's admin", iyer, iyerOverdue, [][]string{secretsOf(demo.TenantMehta), mehtaOverdue}},
	} {
		code, items, body := s.items(t, c.tok, sla, run, "overdue_tasks")
		if code != 200 {
			t.Fatalf("%s's overdue tasks = %d %s", c.who, code, body)
		}
		if got := titles(items.Items); !slices.Equal(got, c.want) || items.Total != len(c.want) || items.Rest != 0 {
			t.Errorf("%s's overdue tasks = %q (total %d), want %q", c.who, got, items.Total, c.want)
		}
		if items.Label != "Overdue tasks" || items.AsOf == nil || !strings.Contains(items.Note, "As the tasks stand now") {
			t.Errorf("%s's overdue tasks should be labelled and say they are recomputed: %+v", c.who, items)
		}
		if items.Items[0].Tenant != "" || items.Items[0].TenantID != "" {
			t.Errorf("%s's items name a firm: %+v", c.who, items.Items[0])
		}
		leakCheck(t, c.who, c.others, "the overdue tasks", body)
	}
	code, items, body := s.items(t, op, sla, run, "overdue_tasks")
	if code != 200 || items.Total != 7 || items.Count != float64(7) {
		t.Fatalf("the operator's overdue tasks = %d %s, want all 7", code, body)
	}
	firmsSeen := map[string]int{}
	for _, it := range items.Items {
		firmsSeen[it.Tenant]++
	}
	if firmsSeen["Mehta & Associates"] != 5 || firmsSeen["Iyer Tax Chambers"] != 2 {
		t.Errorf("the operator's overdue tasks by firm = %v, want 5 at Mehta and 2 at Iyer, named", firmsSeen)
	}

	// Iyer's own Run Now covers Iyer alone: Mehta cannot read its items.
	acc := s.do(t, request{method: "POST", path: "/api/jobs/" + sla + "/run", body: `{}`, bearer: iyer}).json(t)
	iyerRun, _ := acc["run_id"].(string)
	waitFor(t, "Iyer's run in job_run_tenants", 20*time.Second, func() bool {
		var n int
		_ = s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM job_run_tenants WHERE run_id = $1`, iyerRun).Scan(&n)
		return n == 1
	})
	if code, _, body := s.items(t, mehta, sla, iyerRun, "overdue_tasks"); code != 404 || !strings.Contains(body, "covered your firm") {
		t.Errorf("Mehta asks for the items of Iyer's own run = %d %s, want 404", code, body)
	} else {
		leakCheck(t, "Mehta's admin", [][]string{secretsOf(demo.TenantIyer), iyerOverdue}, "a refused items answer", body)
	}
	if code, items, _ := s.items(t, iyer, sla, iyerRun, "overdue_tasks"); code != 200 || items.Total != 2 {
		t.Errorf("Iyer's own run's overdue tasks = %d %+v", code, items)
	}

	// Wrong requests.
	for _, c := range []struct {
		path, want string
		code       int
	}{
		{"/api/jobs/" + sla + "/runs/" + run + "/items?key=nope", `check-sla-and-overdue reports no results key "nope"; keys with items are overdue_tasks, sla_violations`, 400},
		{"/api/jobs/" + sla + "/runs/" + run + "/items?key=automation_backlog", "automation_backlog of check-sla-and-overdue is a count with no items behind it", 400},
		{"/api/jobs/" + sla + "/runs/" + run + "/items", "key is required", 400},
		{"/api/jobs/" + sla + "/runs/not-a-run/items?key=overdue_tasks", `run "not-a-run" is not a run id`, 400},
		{"/api/jobs/" + sla + "/runs/" + uuid.NewString() + "/items?key=overdue_tasks", "covered your firm", 404},
		{"/api/jobs/send-invoices/runs/" + run + "/items?key=overdue_tasks", `unknown job "send-invoices"`, 404},
		{"/api/jobs/" + catalog.SendHearingReminders + "/runs/" + run + "/items?key=notifications_sent", "covered your firm", 404},
	} {
		res := s.do(t, request{method: "GET", path: c.path, bearer: mehta})
		if res.code != c.code || !strings.Contains(res.errorText(t), c.want) {
			t.Errorf("GET %s = %d %s, want %d saying %q", c.path, res.code, res.body, c.code, c.want)
		}
	}
	if res := s.do(t, request{method: "GET", path: "/api/jobs/" + sla + "/runs/" + run + "/items?key=overdue_tasks", bearer: token(t, demo.UserManager)}); res.code != 403 {
		t.Errorf("a manager reads items = %d, want 403 like the rest of the dashboard", res.code)
	}

	// The health check: each firm's own unhealthy rules, from its own slice.
	health := catalog.AutomationHealthCheck
	hrun := s.runForAll(t, health, 2)
	code, items, body = s.items(t, mehta, health, hrun, "unhealthy_rules")
	if want := []string{"Escalate SLA breaches to managers", "Tell the case owner about SLA breaches"}; code != 200 || !slices.Equal(titles(items.Items), want) {
		t.Fatalf("Mehta's unhealthy rules = %d %s, want %q", code, body, want)
	}
	for _, it := range items.Items {
		if it.Title == "Escalate SLA breaches to managers" && (!strings.Contains(it.Detail, "failed 3 of 4 executions") || it.Error != "firm has no managers" || it.Status != "failing") {
			t.Errorf("an unhealthy rule should say what is wrong: %+v", it)
		}
	}
	if code, items, _ := s.items(t, iyer, health, hrun, "unhealthy_rules"); code != 200 || len(items.Items) != 0 || items.Total != 0 {
		t.Errorf("Iyer's unhealthy rules = %d %+v, want none (Iyer is healthy)", code, items)
	}
	if code, items, _ := s.items(t, op, health, hrun, "unhealthy_rules"); code != 200 || len(items.Items) != 2 || items.Items[0].Tenant != "Mehta & Associates" {
		t.Errorf("the operator's unhealthy rules = %d %+v, want Mehta's two, named", code, items)
	}
}

// What is tried: the cards and the health after the health check found Mehta degraded.
// What must hold: each card carries the catalog's tip, its help link and what its keys
// mean; a run's one line is the viewer's own ("5 overdue …" for Mehta, the totals for
// the operator); Mehta's health says "Automation degraded: 2 rules failing", Iyer's
// says nothing of it, and neither is unhealthy for it.
func TestCardsSayWhatTheRunFound(t *testing.T) {
	s := startSystem(t, systemOptions{})
	mehta, iyer, op := token(t, mehtaAdmin), token(t, iyerAdmin), operatorToken(t)
	s.runForAll(t, catalog.CheckSLAAndOverdue, 2)
	s.runForAll(t, catalog.AutomationHealthCheck, 2)

	cards := func(tok string) map[string]gateway.Card {
		var body struct{ Jobs []gateway.Card }
		res := s.do(t, request{method: "GET", path: "/api/jobs", bearer: tok})
		if err := json.Unmarshal(res.body, &body); err != nil {
			t.Fatalf("cards: %v %s", err, res.body)
		}
		m := map[string]gateway.Card{}
		for _, c := range body.Jobs {
			m[c.Name] = c
		}
		return m
	}
	for _, c := range []struct {
		who, tok, sla, health string
	}{
		{"Mehta's admin", mehta, "5 overdue · 0 SLA breaches · 0 rules fired", "degraded: 2 rules failing"},
		{"Iyer's admin", iyer, "2 overdue · 0 SLA breaches · 0 rules fired", "healthy: 1 rule checked"},
		{"the operator", op, "7 overdue · 0 SLA breaches · 0 rules fired", "degraded: 2 rules failing"},
	} {
		got := cards(c.tok)
		if l := got[catalog.CheckSLAAndOverdue].LastRun; l == nil || l.Headline != c.sla {
			t.Errorf("%s's SLA card says %+v, want %q", c.who, l, c.sla)
		}
		if l := got[catalog.AutomationHealthCheck].LastRun; l == nil || l.Headline != c.health {
			t.Errorf("%s's health card says %+v, want %q", c.who, l, c.health)
		}
		hearings := got[catalog.SendHearingReminders]
		job, _ := catalog.Lookup(catalog.SendHearingReminders)
		if hearings.Tip != job.Tip || hearings.HelpURL != "/help#send-hearing-reminders" || len(hearings.ResultInfo) == 0 ||
			!slices.Contains(hearings.ItemKeys, "failed_notifications") {
			t.Errorf("%s's hearings card lacks the catalog's tip, help link or keys: %+v", c.who, hearings)
		}
	}
	for _, c := range []struct {
		who, tok, want string
	}{
		{"Mehta's admin", mehta, "Automation degraded: 2 rules failing"},
		{"Iyer's admin", iyer, ""},
	} {
		res := s.do(t, request{method: "GET", path: "/api/health", bearer: c.tok})
		var h gateway.Health
		if err := json.Unmarshal(res.body, &h); err != nil {
			t.Fatal(err)
		}
		if h.Automation != c.want || h.Status != "healthy" || res.code != 200 {
			t.Errorf("%s's health = %d %+v, want healthy with automation %q", c.who, res.code, h, c.want)
		}
	}
}

// What is tried: the help page, without signing in.
// What must hold: it is this system's guide, rendered from the catalog (every job's
// section with its tip, schedule, thresholds and keys), with the guide's three queries
// verbatim, under the strict CSP with no inline script, style or handler; and every
// query it shows runs against the schema.
func TestHelpPage(t *testing.T) {
	s := startSystem(t, systemOptions{})
	res := s.do(t, request{method: "GET", path: "/help"})
	if res.code != 200 || !strings.HasPrefix(res.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /help = %d %s", res.code, res.header.Get("Content-Type"))
	}
	csp := res.header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("the help page's CSP %q lacks %q", csp, want)
		}
	}
	page := string(res.body)
	if regexp.MustCompile(`(?i)<script|<style|\sstyle=|\son[a-z]+=`).MatchString(page) {
		t.Errorf("the help page has inline script or style, which the CSP forbids")
	}
	text := html.UnescapeString(page)
	for _, j := range catalog.All() {
		for _, want := range []string{`id="` + j.Name + `"`, j.Title, j.Tip, j.About[0], j.RunNowWhen, catalog.Describe(j.Schedule)} {
			if !strings.Contains(text, want) {
				t.Errorf("the help page lacks %q of %s", want, j.Name)
			}
		}
		for _, r := range j.Results {
			if !strings.Contains(text, r.Meaning) {
				t.Errorf("the help page lacks what %s's %s means", j.Name, r.Key)
			}
		}
	}
	for _, want := range []string{"Asia/Kolkata", "30 minutes", "36 hours", "no <code>cron.job</code> table", "Edge Functions", "Platform operator", "for that firm alone"} {
		if !strings.Contains(text, want) && !strings.Contains(page, want) {
			t.Errorf("the help page should say %q", want)
		}
	}
	for _, q := range []string{gateway.GuideExecutionsQuery, gateway.GuideHearingsQuery, gateway.GuideAnalyticsQuery} {
		if !strings.Contains(text, q) {
			t.Errorf("the help page lacks the guide's query verbatim:\n%s", q)
		}
	}
	for _, q := range gateway.HelpQueries {
		q = strings.NewReplacer("your-tenant-id", demo.TenantMehta, "the-run-id", uuid.NewString()).Replace(q)
		rows, err := s.Pool.Query(context.Background(), q)
		if err == nil {
			rows.Close()
			err = rows.Err()
		}
		if err != nil {
			t.Errorf("a query the help page shows does not run: %v\n%s", err, q)
		}
	}
}
