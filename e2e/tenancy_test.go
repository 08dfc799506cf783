package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/demo"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/services/gateway"
)

// firmUser is a signed-in admin of one firm, with the words that are that firm's alone.
type firmUser struct {
	name, tenant string
	header       http.Header
	own          []string
}

func (s *stack) signIn(profile string) http.Header {
	s.t.Helper()
	token, err := gateway.IssueToken(testSecret, profile, s.clock.Now(), time.Hour)
	if err != nil {
		s.t.Fatal(err)
	}
	return http.Header{"Authorization": {"Bearer " + token}}
}

func (s *stack) get(h http.Header, path string) (int, string) {
	s.t.Helper()
	req, err := http.NewRequest("GET", strings.TrimSuffix(s.gw.URL(), "/")+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header = h.Clone()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

func (s *stack) post(h http.Header, path, body string) (int, string) {
	s.t.Helper()
	req, err := http.NewRequest("POST", strings.TrimSuffix(s.gw.URL(), "/")+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header = h.Clone()
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(data)
}

// runAll runs a job for every firm, as a developer's `nats pub` does, and waits until
// the gateway has persisted it.
func (s *stack) runAll(job string) events.Result {
	s.t.Helper()
	results := natsCollect(s.t, s, events.ResultSubject(job))
	if err := s.nats.NC.Publish(events.TriggerSubject(job), []byte(`{"reason":"tenancy test"}`)); err != nil {
		s.t.Fatal(err)
	}
	r := nextResultOf(s.t, results, job)
	waitFor(s.t, "the run in audit_log", func() bool { return s.auditRows(r.RunID) == 1 })
	waitForConsumerIdle(s.t, s)
	return r
}

func (s *stack) lastSlice(h http.Header, job string) map[string]any {
	s.t.Helper()
	code, body := s.get(h, "/api/jobs/"+job+"/runs?limit=1")
	var page struct{ Runs []gateway.RunView }
	if err := json.Unmarshal([]byte(body), &page); err != nil || code != 200 {
		s.t.Fatalf("history of %s = %d %s", job, code, body)
	}
	if len(page.Runs) == 0 {
		return nil
	}
	return page.Runs[0].Results
}

func (s *stack) remindersOf(tenant string) int {
	s.t.Helper()
	var n int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM notifications WHERE kind = 'hearing_reminder' AND tenant_id = $1`, tenant).Scan(&n); err != nil {
		s.t.Fatal(err)
	}
	return n
}

// What is tried: the real jobs on the demo data (Mehta & Associates, Iyer Tax Chambers)
// and a third firm with no data; every job runs for every firm; Mehta's admin pauses the
// hearing reminders for Mehta, a run goes through, and the admin resumes them.
// What must hold: each firm's admin reads its own numbers (written here) from the API;
// the paused firm's people get no reminders while the other firm's get theirs, and the
// resume brings Mehta's back; no answer a firm's admin can get (cards, every job's
// history, health, me) holds another firm's name, id, case numbers, rule names or
// people's e-mails.
func TestFirmsWithTheRealJobs(t *testing.T) {
	s := startStack(t, stackOptions{})
	ctx := context.Background()
	pillai, pillaiAdmin := uuid.NewString(), uuid.NewString()
	if _, err := s.pool.Exec(ctx, `INSERT INTO tenants (id, name) VALUES ($1, 'Pillai & Co')`, pillai); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO profiles (id, tenant_id, full_name, email, role) VALUES ($1, $2, 'Nandini Pillai', 'nandini@pillai.example', 'admin')`, pillaiAdmin, pillai); err != nil {
		t.Fatal(err)
	}
	mehta := firmUser{"Mehta's admin", demo.TenantMehta, s.signIn(demo.UserAdmin),
		[]string{"Mehta & Associates", demo.TenantMehta, "GST/APL/2026/0077", "GST/SCN/2026/0142", "Tell the case owner about SLA breaches", "Escalate SLA breaches to managers", "anjali@mehta.example", "Kabir Joshi"}}
	iyer := firmUser{"Iyer's admin", demo.TenantIyer, s.signIn(demo.UserIyerAdmin),
		[]string{"Iyer Tax Chambers", demo.TenantIyer, "GST/SCN/2026/1201", "GST/APL/2026/1188", "Tell the case owner a task is overdue", "lakshmi@iyer.example", "Meera Krishnan"}}
	third := firmUser{"Pillai's admin", pillai, s.signIn(pillaiAdmin), []string{"Pillai & Co", pillai, "nandini@pillai.example"}}
	firms := []firmUser{mehta, iyer, third}

	// Mehta pauses its hearing reminders; then every job runs for every firm.
	reminders := "/api/jobs/" + catalog.SendHearingReminders
	if code, body := s.post(mehta.header, reminders+"/pause", `{"reason":"firm retreat"}`); code != 200 {
		t.Fatalf("Mehta's admin pauses reminders = %d %s", code, body)
	}
	waitFor(t, "the workers to know of Mehta's pause", func() bool {
		_, body := s.get(mehta.header, reminders)
		return strings.Contains(body, `"paused_for_firm":true`)
	})
	var remindersRun events.Result
	for _, job := range catalog.Names() {
		r := s.runAll(job)
		if job == catalog.SendHearingReminders {
			remindersRun = r
		}
	}
	if n := s.remindersOf(demo.TenantMehta); n != 0 {
		t.Errorf("Mehta's people got %d hearing reminders while Mehta had paused them, want 0", n)
	}
	if n := s.remindersOf(demo.TenantIyer); n != 2 {
		t.Errorf("Iyer's people got %d hearing reminders, want 2 (Karthik and Meera, for their one hearing)", n)
	}
	if remindersRun.Results["tenants_skipped"] != float64(1) {
		t.Errorf("the reminders run's totals = %v, want 1 firm skipped", remindersRun.Results)
	}

	// Each firm's own numbers.
	for _, c := range []struct {
		who  firmUser
		job  string
		want map[string]float64
	}{
		{mehta, catalog.CheckSLAAndOverdue, map[string]float64{"overdue_tasks": 5}},
		{iyer, catalog.CheckSLAAndOverdue, map[string]float64{"overdue_tasks": 2}},
		{third, catalog.CheckSLAAndOverdue, map[string]float64{"overdue_tasks": 0, "sla_violations": 0, "automation_rules_triggered": 0}},
		{iyer, catalog.SendHearingReminders, map[string]float64{"hearings_processed": 1, "notifications_sent": 2, "failed_notifications": 0}},
		{third, catalog.SendHearingReminders, map[string]float64{"hearings_processed": 0, "notifications_sent": 0}},
		{third, catalog.CaptureAnalyticsSnapshot, map[string]float64{"tenants_processed": 1, "snapshots_written": 7}},
		{iyer, catalog.CaptureAnalyticsSnapshot, map[string]float64{"tenants_processed": 1, "snapshots_written": 7}},
		{third, catalog.AutomationHealthCheck, map[string]float64{"rules_checked": 0, "unhealthy_rules": 0}},
		{iyer, catalog.AutomationHealthCheck, map[string]float64{"rules_checked": 1}},
	} {
		got := s.lastSlice(c.who.header, c.job)
		for k, w := range c.want {
			if got[k] != w {
				t.Errorf("%s reads %s %s = %v, want %v (slice %v)", c.who.name, c.job, k, got[k], w, got)
			}
		}
	}
	if got := s.lastSlice(mehta.header, catalog.SendHearingReminders); got != nil {
		t.Errorf("Mehta's history of hearing reminders shows a run that skipped it: %v", got)
	}

	// Nothing of another firm in anything a firm's admin can read.
	paths := []string{"/api/jobs", "/api/me", "/api/health"}
	for _, job := range catalog.Names() {
		paths = append(paths, "/api/jobs/"+job, "/api/jobs/"+job+"/runs?limit=100")
	}
	for _, f := range firms {
		for _, path := range paths {
			_, body := s.get(f.header, path)
			for _, o := range firms {
				if o.tenant == f.tenant {
					continue
				}
				for _, w := range o.own {
					if strings.Contains(body, w) {
						t.Errorf("%s reads %q, which is %s's, in GET %s: %.300s", f.name, w, o.name[:strings.Index(o.name, "'")], path, body)
					}
				}
			}
		}
	}

	// Resumed: Mehta's reminders go out with the next run; Iyer's are not sent twice.
	if code, body := s.post(mehta.header, reminders+"/resume", `{}`); code != 200 {
		t.Fatalf("resume = %d %s", code, body)
	}
	waitFor(t, "the workers to know of Mehta's resume", func() bool {
		_, body := s.get(mehta.header, reminders)
		return strings.Contains(body, `"paused_for_firm":false`)
	})
	s.runAll(catalog.SendHearingReminders)
	if n := s.remindersOf(demo.TenantMehta); n != 6 {
		t.Errorf("after the resume Mehta's people have %d hearing reminders, want 6 (4 hearings, owners and assignees)", n)
	}
	if n := s.remindersOf(demo.TenantIyer); n != 2 {
		t.Errorf("after the resume Iyer's people have %d hearing reminders, want still 2: none twice", n)
	}
	if got := s.lastSlice(mehta.header, catalog.SendHearingReminders); got["hearings_processed"] != float64(4) || got["notifications_sent"] != float64(6) {
		t.Errorf("Mehta's reminders slice after the resume = %v, want 4 hearings and 6 reminders", got)
	}
}
