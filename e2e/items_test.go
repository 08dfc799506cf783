package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/demo"
	"github.com/lexhq/gstjobs/services/analytics"
	"github.com/lexhq/gstjobs/services/gateway"
)

// testOperatorSecret signs the platform operator's tokens in these tests.
var testOperatorSecret = []byte("e2e-operator-secret-e2e-operator-32")

func (s *stack) signInOperator() http.Header {
	s.t.Helper()
	tok, err := gateway.IssueOperatorToken(testOperatorSecret, "ops-e2e", "Ops On Call", "oncall@platform.example", s.clock.Now(), time.Hour)
	if err != nil {
		s.t.Fatal(err)
	}
	return http.Header{"Authorization": {"Bearer " + tok}}
}

func (s *stack) runItems(h http.Header, job, runID, key string) gateway.RunItems {
	s.t.Helper()
	code, body := s.get(h, "/api/jobs/"+job+"/runs/"+runID+"/items?key="+key)
	var items gateway.RunItems
	if err := json.Unmarshal([]byte(body), &items); err != nil || code != 200 {
		s.t.Fatalf("items of %s %s = %d %s", job, key, code, body)
	}
	return items
}

func itemText(items gateway.RunItems) string {
	data, _ := json.Marshal(items.Items)
	return string(data)
}

// What is tried: the real jobs on the demo data, every job once for every firm; each
// firm's admin and the platform operator open every number of every run that has items.
// What must hold: what a firm's admin reads is its own firm's (its cases, tasks, rules
// and people; nothing of the other firm, not even in a refusal), and as many items as
// the number says (for the lists that are the run's own record, exactly); the operator
// reads both firms', named; each job reports only keys the catalog describes, and the
// snapshot only metrics it names.
func TestRunItemsWithTheRealJobs(t *testing.T) {
	s := startStack(t, stackOptions{})
	mehta := firmUser{"Mehta's admin", demo.TenantMehta, s.signIn(demo.UserAdmin),
		[]string{"Mehta & Associates", demo.TenantMehta, "GST/APL/2026/0077", "GST/SCN/2026/0142", "Tell the case owner about SLA breaches", "Escalate SLA breaches to managers",
			"anjali@mehta.example", "Kabir Joshi", "Priya Nair", "Draft reply to SCN"}}
	iyer := firmUser{"Iyer's admin", demo.TenantIyer, s.signIn(demo.UserIyerAdmin),
		[]string{"Iyer Tax Chambers", demo.TenantIyer, "GST/SCN/2026/1201", "GST/APL/2026/1188", "Tell the case owner a task is overdue", "lakshmi@iyer.example",
			"Meera Krishnan", "Karthik Menon", "Cross-examination request"}}
	op := s.signInOperator()
	runs := map[string]string{}
	for _, job := range catalog.Names() {
		r := s.runAll(job)
		runs[job] = r.RunID
		c, _ := catalog.Lookup(job)
		for k := range r.Results {
			if _, ok := c.ResultInfo(k); !ok {
				t.Errorf("%s reports %s, which the catalog does not describe (the help page and the cards cannot explain it)", job, k)
			}
		}
	}
	for _, m := range analytics.MetricTypes() {
		if _, ok := catalog.Metric(m); !ok {
			t.Errorf("the analytics snapshot writes %s, which the catalog does not name", m)
		}
	}
	if got, want := len(catalog.Metrics()), len(analytics.MetricTypes()); got != want {
		t.Errorf("the catalog names %d metrics, the snapshot writes %d", got, want)
	}

	// The lists that are the run's own record hold exactly as many items as the
	// number; the recomputed ones (tasks, hearings) do here, where nothing has changed
	// since the run.
	exact := map[string][]string{
		catalog.CheckSLAAndOverdue:       {"overdue_tasks", "sla_violations", "automation_rules_triggered", "automation_failures", "notifications_sent"},
		catalog.SendHearingReminders:     {"hearings_processed", "notifications_sent", "in_app_sent", "failed_notifications"},
		catalog.CaptureAnalyticsSnapshot: {"snapshots_written"},
		catalog.CheckUpcomingDeadlines:   {"alerts_sent", "in_app_sent", "failed_alerts"},
		catalog.AutomationHealthCheck:    {"unhealthy_rules", "stale_job_count", "notifications_sent"},
	}
	read := map[string]map[string]gateway.RunItems{} // viewer → job/key → items
	for _, who := range []firmUser{mehta, iyer, {name: "the operator", header: op}} {
		read[who.name] = map[string]gateway.RunItems{}
		others := mehta
		if who.tenant == demo.TenantMehta {
			others = iyer
		}
		for _, job := range catalog.Names() {
			c, _ := catalog.Lookup(job)
			results := s.lastSlice(who.header, job)
			for _, r := range c.Results {
				if r.Items == "" {
					continue
				}
				items := s.runItems(who.header, job, runs[job], r.Key)
				read[who.name][job+"/"+r.Key] = items
				text := itemText(items)
				if who.tenant != "" {
					for _, w := range others.own {
						if strings.Contains(text, w) {
							t.Errorf("%s reads %q, which is %s's, behind %s %s: %.300s", who.name, w, others.name, job, r.Key, text)
						}
					}
				}
				n, _ := results[r.Key].(float64)
				if slices.Contains(exact[job], r.Key) && items.Total != int(n) {
					t.Errorf("%s: %s %s is %v, but %d items are behind it: %.400s", who.name, job, r.Key, n, items.Total, text)
				}
				if items.Count != results[r.Key] {
					t.Errorf("%s: the items of %s %s say the number is %v, the history %v", who.name, job, r.Key, items.Count, results[r.Key])
				}
			}
		}
	}

	// What a firm reads behind its numbers, in words.
	for _, c := range []struct {
		who, key string
		want     []string
	}{
		{mehta.name, catalog.CheckSLAAndOverdue + "/overdue_tasks", []string{"Draft reply to SCN", "Reconcile e-invoices with GSTR-1 (unassigned)"}},
		{mehta.name, catalog.CheckSLAAndOverdue + "/automation_failures", []string{"Tell the case owner about SLA breaches", "task has no case"}},
		{mehta.name, catalog.CheckSLAAndOverdue + "/notifications_sent", []string{"in-app to"}},
		{iyer.name, catalog.SendHearingReminders + "/hearings_processed", []string{"GST/SCN/2026/1201", "reminded by this run: Karthik Menon, Meera Krishnan"}},
		{iyer.name, catalog.SendHearingReminders + "/notifications_sent", []string{"GST/SCN/2026/1201", "Karthik Menon", "Meera Krishnan"}},
		{mehta.name, catalog.CheckUpcomingDeadlines + "/failed_alerts", []string{"no one is assigned to the task", "GST/SCN/2026/0215", "the case has no owner"}},
		{iyer.name, catalog.CaptureAnalyticsSnapshot + "/snapshots_written", []string{"Active cases: 3", "Hearings in the next 7 days"}},
		{iyer.name, catalog.AutomationHealthCheck + "/unhealthy_rules", []string{"Tell the case owner a task is overdue", "case has no owner"}},
		{iyer.name, catalog.AutomationHealthCheck + "/notifications_sent", []string{"Automation needs attention", "Lakshmi Iyer"}},
		{"the operator", catalog.CheckSLAAndOverdue + "/overdue_tasks", []string{`"tenant":"Mehta \u0026 Associates"`, `"tenant":"Iyer Tax Chambers"`, "Cross-examination request", "Draft reply to SCN"}},
		{"the operator", catalog.AutomationHealthCheck + "/unhealthy_rules", []string{"Tell the case owner a task is overdue", "Tell the case owner about SLA breaches"}},
	} {
		text := itemText(read[c.who][c.key])
		for _, w := range c.want {
			if !strings.Contains(text, w) {
				t.Errorf("%s's items of %s should hold %q: %.600s", c.who, c.key, w, text)
			}
		}
	}
	if it := read[mehta.name][catalog.CheckSLAAndOverdue+"/overdue_tasks"]; it.AsOf == nil || !strings.Contains(it.Note, "As the tasks stand now") {
		t.Errorf("recomputed tasks should say so: %+v", it)
	}

	// Iyer's own Run Now covers Iyer alone: Mehta cannot open its numbers.
	code, body := s.post(iyer.header, "/api/jobs/"+catalog.CheckSLAAndOverdue+"/run", `{"reason":"hearing prep"}`)
	var acc struct {
		RunID string `json:"run_id"`
	}
	if err := json.Unmarshal([]byte(body), &acc); err != nil || code != 202 || acc.RunID == "" {
		t.Fatalf("Iyer's Run Now = %d %s", code, body)
	}
	waitFor(t, "Iyer's run in audit_log", func() bool { return s.auditRows(acc.RunID) == 1 })
	waitForConsumerIdle(t, s)
	code, body = s.get(mehta.header, fmt.Sprintf("/api/jobs/%s/runs/%s/items?key=overdue_tasks", catalog.CheckSLAAndOverdue, acc.RunID))
	if code != 404 {
		t.Errorf("Mehta opens a number of Iyer's own run = %d %s, want 404", code, body)
	}
	for _, w := range iyer.own {
		if strings.Contains(body, w) {
			t.Errorf("Mehta's refusal holds Iyer's %q: %s", w, body)
		}
	}
}
