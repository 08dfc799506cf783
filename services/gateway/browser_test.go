package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/demo"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobstate"
	"github.com/lexhq/gstjobs/services/gateway"
)

// The browser tests drive the real dashboard in headless Chromium against a running
// gateway, the real NATS and PostgreSQL, and a real worker runtime. They wait on what
// the page shows (DOM conditions), never on a clock, and save screenshots to
// .artifacts/screenshots at the repository root.

const defaultChromium = "/usr/bin/chromium"

func chromiumPath(t *testing.T) string {
	t.Helper()
	path := os.Getenv("CHROMIUM_PATH")
	if path == "" {
		path = defaultChromium
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the browser tests need headless Chromium at %s and it is not there (%v): install it with `apt-get install -y chromium` (CI does), or set CHROMIUM_PATH", path, err)
	}
	return path
}

// newBrowser starts Chromium for the test. The network here is closed, so everything
// that would call home is off.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // we run as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,CertificateTransparencyComponentUpdater"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium (%s): %v", chromiumPath(t), err)
	}
	return ctx
}

// tab is a page in its own browser context (its own cookies): one signed-in user.
type tab struct {
	t     *testing.T
	ctx   context.Context
	shots string

	mu       *sync.Mutex
	problems *[]string // uncaught exceptions and CSP violations seen on the page
}

func newTab(t *testing.T, browser context.Context) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	p := &tab{t: t, ctx: ctx, shots: screenshotDir(t), mu: &sync.Mutex{}, problems: &[]string{}}
	// The page must run clean: no uncaught exception, nothing the CSP blocked. (Failed
	// connections while the gateway restarts are expected and not counted.)
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Source == "security" || strings.Contains(m.Text, "Content Security Policy") {
				p.mu.Lock()
				*p.problems = append(*p.problems, m.String())
				p.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, m := range *p.problems {
			t.Errorf("the page logged an error: %s", m)
		}
	})
	return p
}

// with runs steps on the tab's page under the test that asks for them, starting with
// no dialog open, so that one failed step does not leave the next one a wrong page.
func (p *tab) with(t *testing.T) *tab {
	c := *p
	c.t = t
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	_ = chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.querySelectorAll('dialog[open]').forEach(d => d.close())`))
	return &c
}

func (p *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 45*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v\nthe page shows:\n%s", what, err, p.describe())
	}
}

// until waits for a JavaScript condition on the page.
func (p *tab) until(what, js string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 45*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(40*time.Second))); err != nil {
		p.t.Fatalf("waiting for %s: %v\nthe page shows:\n%s", what, err, p.describe())
	}
}

// untilLoaded waits for a JavaScript condition on a page that is being navigated to:
// the old page's context goes away under the poll, which is tried again on the new one.
func (p *tab) untilLoaded(what, js string) {
	p.t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(p.ctx, 45*time.Second)
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(time.Until(deadline))))
		cancel()
		if err == nil {
			return
		}
		gone := strings.Contains(err.Error(), "Cannot find context") || strings.Contains(err.Error(), "Execution context was destroyed") || strings.Contains(err.Error(), "Inspected target navigated or closed")
		if !gone || time.Now().After(deadline) {
			p.t.Fatalf("waiting for %s: %v\nthe page shows:\n%s", what, err, p.describe())
		}
	}
}

func (p *tab) eval(js string, opts ...chromedp.EvaluateOption) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, opts...))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", js, err)
	}
	return s
}

func (p *tab) describe() string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.body ? document.body.innerText : '').slice(0, 3000)`))
	if err != nil {
		return "(cannot read the page: " + err.Error() + ")"
	}
	return s
}

func (p *tab) screenshot(name string) { p.shoot(name, chromedp.FullScreenshot(100)) }

// windowShot saves what the window shows (a long page's full screenshot is too tall to read).
func (p *tab) windowShot(name string) { p.shoot(name, chromedp.CaptureScreenshot()) }

func (p *tab) shoot(name string, capture chromedp.Action[[]byte]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	img, err := chromedp.Run(ctx, capture)
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(p.shots, name)
	if err := os.WriteFile(path, img, 0o644); err != nil {
		p.t.Fatalf("save screenshot: %v", err)
	}
	p.t.Logf("screenshot: %s", path)
}

// screenshotDir is .artifacts/screenshots at the repository root; the directory
// ignores itself in git.
func screenshotDir(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("create %s: %v", dir, err)
	}
	if err := os.WriteFile(filepath.Join(root, ".gitignore"), []byte("# test artifacts: screenshots and the like\n*\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// js quotes a Go string for JavaScript.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// card returns a JavaScript expression for the text of part of a job's card.
func card(job, sel string) string {
	return fmt.Sprintf(`((document.querySelector(%s) || {}).textContent || '')`, js("#job-"+job+" "+sel))
}

func hasText(expr, want string) string { return fmt.Sprintf(`%s.includes(%s)`, expr, js(want)) }

const toasts = `((document.querySelector('#toasts') || {}).textContent || '')`

// tabUntil presses Tab until the JavaScript condition on the focused element holds:
// the keyboard alone reaches it.
func (p *tab) tabUntil(what, cond string, most int) {
	p.t.Helper()
	for range most {
		if p.eval(`String(Boolean(`+cond+`))`) == "true" {
			return
		}
		p.do("press Tab", chromedp.KeyEvent(kb.Tab))
	}
	if p.eval(`String(Boolean(`+cond+`))`) != "true" {
		p.t.Fatalf("%d presses of Tab did not reach %s; focus is on %s", most, what, p.eval(`document.activeElement ? document.activeElement.outerHTML.slice(0, 200) : 'nothing'`))
	}
}

// itemsText is the text of the items open under the first run of the history.
const itemsText = `((document.querySelector('#runs .run .run-items') || {}).textContent || '')`

// TestDashboardInBrowser walks through the guide with an admin, a partner, an
// advocate and a phone.
func TestDashboardInBrowser(t *testing.T) {
	browser := newBrowser(t)
	// Open dashboards re-check their people every 250 ms, so that a demotion shows
	// at once rather than within the 15 s of the default.
	s := startSystem(t, systemOptions{gate: true, devMode: true, sessionCheckEvery: 250 * time.Millisecond})
	links, err := s.GW.SignInLinks(demo.UsersByRole, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	const sla, hearings, health = catalog.CheckSLAAndOverdue, catalog.SendHearingReminders, catalog.AutomationHealthCheck
	admin := newTab(t, browser)

	t.Run("an admin signs in with the development link and sees the five cards", func(t *testing.T) {
		p := admin.with(t)
		p.do("open the admin's sign-in link", chromedp.Navigate(links["admin"]), chromedp.WaitVisible(chromedp.CSS("#cards .card")))
		p.until("five cards and a live connection", `document.querySelectorAll('#cards .card').length === 5 && document.querySelector('#conn').dataset.state === 'live'`)
		titles := p.eval(`[...document.querySelectorAll('#cards .title-btn')].map(b => b.textContent).join('|')`)
		if want := "SLA & Overdue Check|Hearing Reminders|Analytics Snapshot|Deadline Alerts|Automation Health Check"; titles != want {
			t.Errorf("card titles = %q, want %q", titles, want)
		}
		for job, want := range map[string]string{sla: "Every 15 minutes", hearings: "Daily at 8:00 AM"} {
			if got := p.eval(card(job, ".freq-text")); got != want {
				t.Errorf("%s frequency = %q, want %q", job, got, want)
			}
		}
		if got := p.eval(card(sla, ".badge-text")); got != "Pending" {
			t.Errorf("a job that never ran should be Pending, got %q", got)
		}
		if got := p.eval(card(sla, ".last")); got != "Never" {
			t.Errorf("last run of a job that never ran = %q, want Never", got)
		}
		if tip := p.eval(card(sla, ".tip-text")); !strings.Contains(tip, "warns after 30 minutes") {
			t.Errorf("the ℹ️ tip should give the stale threshold: %q", tip)
		}
		if tz := p.eval(`document.querySelector('#tz').textContent`); !strings.Contains(tz, "Asia/Kolkata") {
			t.Errorf("the page should say times are in Asia/Kolkata, says %q", tz)
		}
		if me := p.eval(`document.querySelector('#me').textContent`); me != "Anjali Mehta · Admin · Mehta & Associates" {
			t.Errorf("signed-in user shown as %q", me)
		}
		p.eval(`window.noReload = 'still here'; 'ok'`) // gone if the page ever reloads
		p.screenshot("01-dashboard-admin.png")
	})

	t.Run("Run Now turns the card Running at once, then Success with the guide's toast", func(t *testing.T) {
		p := admin.with(t)
		p.do("press Run Now on the SLA card", chromedp.Click(chromedp.CSS("#job-"+sla+" .run-now")), chromedp.WaitVisible(chromedp.CSS("#run-dialog")))
		p.do("give a reason and confirm", chromedp.SendKeys(chromedp.CSS("#run-reason"), "before client meeting"), chromedp.Click(chromedp.CSS("#run-confirm")))
		p.until("the SLA card Running with Run Now disabled",
			hasText(card(sla, ".badge-text"), "Running")+` && document.querySelector('#job-`+sla+` .run-now').disabled`)
		p.until("the running run on the card", hasText(card(sla, ".run-state"), "Started"))
		if got := p.eval(card(sla, ".last")); got != "just now" {
			t.Errorf("while running, Last run should be the run in progress, 'just now'; got %q", got)
		}
		p.screenshot("02-run-now-running.png")
		s.release(t)
		p.until("Success on the SLA card", hasText(card(sla, ".badge-text"), "Success"))
		p.until("the success toast", hasText(toasts, "Job executed successfully - 5 overdue tasks found"))
		p.until("Run Now enabled again", `!document.querySelector('#job-`+sla+` .run-now').disabled`)
		if got := p.eval(card(sla, ".last")); got != "just now" {
			t.Errorf("Last run after the run = %q, want 'just now'", got)
		}
		// What the run found, for Mehta: the line the live result wrote is the one the
		// server writes for the card.
		p.until("what the run found on the card", hasText(card(sla, ".outcome"), "5 overdue · 0 SLA breaches · 0 rules fired"))
		var apiCard gateway.Card
		waitFor(t, "the run on the API's card", 20*time.Second, func() bool {
			res := s.do(t, request{method: "GET", path: "/api/jobs/" + sla, bearer: token(t, mehtaAdmin)})
			return json.Unmarshal(res.body, &apiCard) == nil && apiCard.LastRun != nil
		})
		if got := p.eval(card(sla, ".outcome")); got != apiCard.LastRun.Headline {
			t.Errorf("the card's line %q is not the API's %q", got, apiCard.LastRun.Headline)
		}
		p.screenshot("03-run-now-success-toast.png")
	})

	t.Run("another firm's admin gets its own run, its own toast, and sees nothing of Mehta's", func(t *testing.T) {
		iyerLinks, err := gateway.SignInLinks(testSecret, s.URL, map[string]string{"admin": iyerAdmin}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		p := newTab(t, browser)
		p.do("sign in as Iyer Tax Chambers' admin", chromedp.Navigate(iyerLinks["admin"]), chromedp.WaitVisible(chromedp.CSS("#cards .card")))
		p.until("Iyer's header and its own cards", hasText(`document.querySelector('#me').textContent`, "Lakshmi Iyer · Admin · Iyer Tax Chambers"))
		if got := p.eval(card(sla, ".last")); got != "Never" {
			t.Errorf("Mehta's Run Now was Mehta's run; Iyer's SLA card says last run %q, want Never", got)
		}
		p.do("press Run Now on the SLA card", chromedp.Click(chromedp.CSS("#job-"+sla+" .run-now")), chromedp.WaitVisible(chromedp.CSS("#run-dialog")),
			chromedp.Click(chromedp.CSS("#run-confirm")))
		s.release(t)
		p.until("Iyer's own toast", hasText(toasts, "Job executed successfully - 2 overdue tasks found"))
		p.until("Iyer's own line on the card", hasText(card(sla, ".outcome"), "2 overdue · 0 SLA breaches · 0 rules fired"))
		page := p.eval(`document.body.innerText`)
		for _, w := range []string{"Mehta", "anjali@", "GST/APL/2026/0077", "before client meeting"} {
			if strings.Contains(page, w) {
				t.Errorf("Iyer's dashboard shows %q, which is Mehta's", w)
			}
		}
		p.screenshot("03b-other-firm-toast.png")
	})

	t.Run("clicking the card shows the run in its history", func(t *testing.T) {
		p := admin.with(t)
		p.do("open the SLA history", chromedp.Click(chromedp.CSS("#job-"+sla+" .title-btn")))
		p.until("the history with one run", `document.querySelector('#history-dialog').open && document.querySelectorAll('#runs .run').length === 1`)
		run := p.eval(`document.querySelector('#runs .run').innerText`)
		// Mehta's own slice of the run: its 5 overdue tasks and its own problem.
		for _, want := range []string{"Success", "Manual: anjali@mehta.example", "before client meeting", "Overdue tasks", "5", "SLA violations", "Automation rules triggered",
			"could not act on GST/APL/2026/0077", "IST"} {
			if !strings.Contains(run, want) {
				t.Errorf("the history entry should show %q:\n%s", want, run)
			}
		}
		p.screenshot("04-history.png")
		// The number opens the tasks behind it, Mehta's own, with the keyboard.
		p.do("focus the number of overdue tasks and press Enter", chromedp.Focus(chromedp.CSS(`#runs .run .count[data-key="overdue_tasks"]`)), chromedp.KeyEvent(kb.Enter))
		p.until("the five overdue tasks", `document.querySelectorAll('#runs .run .run-items li').length === 5`)
		items := p.eval(itemsText)
		for _, want := range append(slices.Clone(mehtaOverdue), "Overdue tasks: 5", "As the tasks stand now") {
			if !strings.Contains(items, want) {
				t.Errorf("the overdue tasks should show %q:\n%s", want, items)
			}
		}
		for _, not := range iyerOverdue {
			if strings.Contains(items, not) {
				t.Errorf("Mehta's overdue tasks show Iyer's %q", not)
			}
		}
		if got := p.eval(`document.querySelector('#runs .run .count[data-key="overdue_tasks"]').getAttribute('aria-expanded')`); got != "true" {
			t.Errorf("the open number says aria-expanded=%s", got)
		}
		p.screenshot("04b-history-items.png")
		p.do("press the number again", chromedp.KeyEvent(kb.Enter))
		p.until("the items closed", `document.querySelector('#runs .run .run-items').hidden`)
		p.do("close the history with Escape", chromedp.KeyEvent(kb.Escape))
		p.until("the history closed", `!document.querySelector('#history-dialog').open`)
	})

	t.Run("a failed run triggered through the API arrives live and shows its error details", func(t *testing.T) {
		p := admin.with(t)
		if res := s.do(t, request{method: "POST", path: "/api/jobs/" + hearings + "/run", body: `{"reason":"check reminders"}`, bearer: token(t, demo.UserPartner)}); res.code != 202 {
			t.Fatalf("Run Now through the API = %d: %s", res.code, res.body)
		}
		p.until("Failed on the Hearing Reminders card, without a reload",
			hasText(card(hearings, ".badge-text"), "Failed")+` && window.noReload === 'still here'`)
		p.do("open the Hearing Reminders history", chromedp.Click(chromedp.CSS("#job-"+hearings+" .desc")))
		p.until("the failure's details", `document.querySelectorAll('#runs .run').length === 1 && !document.querySelector('#runs .run-error').hidden`)
		if got := p.eval(`document.querySelector('#runs .error-message').textContent`); got != "Database connection timeout" {
			t.Errorf("error_message shown = %q", got)
		}
		if got := p.eval(`document.querySelector('#runs .error-details').textContent`); got != "Connection timed out after 10000ms" {
			t.Errorf("error_details shown = %q", got)
		}
		if got := p.eval(`document.querySelector('#runs .run-trigger').textContent`); !strings.Contains(got, "rohan@mehta.example") || !strings.Contains(got, "check reminders") {
			t.Errorf("who and why of the run = %q", got)
		}
		p.screenshot("05-failed-run-details.png")
		p.do("close the history", chromedp.Click(chromedp.CSS("#history-close")))
		p.until("the history closed", `!document.querySelector('#history-dialog').open`)

		p.do("press Run Now on the failed job", chromedp.Click(chromedp.CSS("#job-"+hearings+" .run-now")), chromedp.WaitVisible(chromedp.CSS("#run-dialog")), chromedp.Click(chromedp.CSS("#run-confirm")))
		p.until("the failure toast", hasText(toasts, "Job execution failed - Check logs for details"))
	})

	t.Run("a run triggered with nats pub appears live without a reload", func(t *testing.T) {
		p := admin.with(t)
		body := `{"reason":"before client meeting","requested_by":"dev@firm"}`
		if err := s.NATS.NC.Publish(events.TriggerSubject(sla), []byte(body)); err != nil {
			t.Fatal(err)
		}
		// A firm's people see a developer's trigger as what it is, not as the name it typed.
		p.until("the SLA card Running", hasText(card(sla, ".badge-text"), "Running")+` && `+hasText(card(sla, ".run-state"), "a developer's client"))
		s.release(t)
		p.until("Success again, on the same page", hasText(card(sla, ".badge-text"), "Success")+` && window.noReload === 'still here'`)
		p.do("open the SLA history", chromedp.Click(chromedp.CSS("#job-"+sla+" .title-btn")))
		p.until("both runs, newest first, the newest from a developer's client", `document.querySelectorAll('#runs .run').length === 2 && document.querySelector('#runs .run-trigger').textContent.includes("a developer's client")`)
		p.do("close the history", chromedp.KeyEvent(kb.Escape))
	})

	t.Run("a health banner when more than one job's last run failed", func(t *testing.T) {
		p := admin.with(t)
		s.HealthFails.Store(true)
		defer s.HealthFails.Store(false)
		if res := s.do(t, request{method: "POST", path: "/api/jobs/" + health + "/run", body: `{}`, bearer: token(t, mehtaAdmin)}); res.code != 202 {
			t.Fatalf("Run Now through the API = %d: %s", res.code, res.body)
		}
		p.until("the unhealthy banner", `!document.querySelector('#health').hidden && document.querySelector('#health').textContent.includes('failed their last run')`)
		p.screenshot("06-unhealthy-banner.png")
	})

	t.Run("a degraded automation health check shows on the dashboard without opening anything", func(t *testing.T) {
		p := admin.with(t)
		// The partner presses it: the admin has used the burst Run Now allows a person.
		if res := s.do(t, request{method: "POST", path: "/api/jobs/" + health + "/run", body: `{"reason":"after fixing a rule"}`, bearer: token(t, demo.UserPartner)}); res.code != 202 {
			t.Fatalf("Run Now through the API = %d: %s", res.code, res.body)
		}
		p.until("the health card's line in the warning style", hasText(card(health, ".outcome"), "degraded: 2 rules failing")+
			` && document.querySelector('#job-`+health+`').dataset.health === 'degraded' && document.querySelector('#job-`+health+` .outcome').dataset.kind === 'warn'`)
		p.until("the automation line under the header", `!document.querySelector('#automation').hidden && `+
			hasText(`document.querySelector('#automation').textContent`, "Automation degraded: 2 rules failing"))
		if got := p.eval(`getComputedStyle(document.querySelector('#job-` + health + `')).borderLeftColor`); got == p.eval(`getComputedStyle(document.querySelector('#job-`+catalog.CaptureAnalyticsSnapshot+`')).borderLeftColor`) {
			t.Errorf("the degraded card's border (%s) looks like a healthy card's", got)
		}
		p.screenshot("06b-automation-degraded.png")
		p.do("open the rules from the automation line", chromedp.Click(chromedp.CSS("#automation-open")))
		p.until("the health check's history", `document.querySelector('#history-dialog').open && document.querySelector('#runs .run .count[data-key="unhealthy_rules"]') !== null`)
		p.do("press the number of unhealthy rules", chromedp.Click(chromedp.CSS(`#runs .run .count[data-key="unhealthy_rules"]`)))
		p.until("the two failing rules and why", hasText(itemsText, "Tell the case owner about SLA breaches")+` && `+hasText(itemsText, "Escalate SLA breaches to managers")+
			` && `+hasText(itemsText, "Why: firm has no managers"))
		p.screenshot("06c-unhealthy-rules.png")
		p.do("close the history", chromedp.KeyEvent(kb.Escape))
	})

	t.Run("an admin pauses and resumes a job for the firm, with a confirmation", func(t *testing.T) {
		p := admin.with(t)
		p.do("open the Deadline Alerts history", chromedp.Click(chromedp.CSS("#job-"+catalog.CheckUpcomingDeadlines+" .title-btn")))
		p.until("the history loaded", `!document.querySelector('#runs-empty').hidden || document.querySelectorAll('#runs .run').length > 0`)
		// WaitVisible cannot tell: a closed <details> keeps its content's boxes.
		p.do("open its schedule settings", chromedp.Click(chromedp.CSS("#admin-summary")))
		p.until("the schedule settings open", `document.querySelector('#admin-controls').open`)
		if got := p.eval(`document.querySelector('#pause-btn').textContent`); got != "Pause for Mehta & Associates" {
			t.Errorf("the pause button says %q, want it to name the firm", got)
		}
		if p.eval(`String(document.querySelector('#schedule-form').hidden && !document.querySelector('#hours-form').hidden)`) != "true" {
			t.Errorf("a firm's admin sees the cron form of every firm, or not the firm's own time of day")
		}
		p.do("press Pause", chromedp.Click(chromedp.CSS("#pause-btn")), chromedp.WaitVisible(chromedp.CSS("#confirm-dialog")))
		if got := p.eval(`document.querySelector('#confirm-title').textContent`); got != "Pause Deadline Alerts?" {
			t.Errorf("confirmation asks %q", got)
		}
		if got := p.eval(`document.querySelector('#confirm-text').textContent`); !strings.Contains(got, "other firms are not affected") {
			t.Errorf("the confirmation should say the pause is the firm's alone: %q", got)
		}
		p.screenshot("07-pause-confirmation.png")
		p.do("confirm", chromedp.SendKeys(chromedp.CSS("#confirm-reason"), "court holiday"), chromedp.Click(chromedp.CSS("#confirm-ok")))
		p.until("the card paused for the firm", hasText(card(catalog.CheckUpcomingDeadlines, ".paused-chip"), "Paused for your firm")+` && `+hasText(card(catalog.CheckUpcomingDeadlines, ".next"), "Paused"))
		p.do("press Resume and confirm", chromedp.Click(chromedp.CSS("#pause-btn")), chromedp.WaitVisible(chromedp.CSS("#confirm-dialog")), chromedp.Click(chromedp.CSS("#confirm-ok")))
		p.until("the card running on schedule again", `document.querySelector('#job-`+catalog.CheckUpcomingDeadlines+` .paused-chip').hidden && `+hasText(card(catalog.CheckUpcomingDeadlines, ".next"), "in "))
		p.do("close the history", chromedp.KeyEvent(kb.Escape))
	})

	// Tried: Mehta's admin sets the firm's Deadline Alerts to 07:30 in the schedule
	// settings, with a reason, then resets it; then opens the SLA check's settings.
	// Must hold: the card says "Daily at 7:30 AM" at once, then the default again; the
	// SLA check offers no time of day and says why.
	t.Run("an admin sets the firm's own time of day", func(t *testing.T) {
		p := admin.with(t)
		const deadlines = catalog.CheckUpcomingDeadlines
		p.do("open the Deadline Alerts schedule settings", chromedp.Click(chromedp.CSS("#job-"+deadlines+" .title-btn")),
			chromedp.Click(chromedp.CSS("#admin-summary")), chromedp.WaitVisible(chromedp.CSS("#hours-input")))
		p.until("the history loaded", `!document.querySelector('#runs-empty').hidden || document.querySelectorAll('#runs .run').length > 0`)
		if got := p.eval(`document.querySelector('#hours-input').value`); got != "07:00" {
			t.Errorf("the time of day shows %q, want the default 07:00", got)
		}
		p.do("set 07:30", chromedp.SetValue(chromedp.CSS("#hours-input"), "07:30"), chromedp.SendKeys(chromedp.CSS("#hours-reason"), "before the morning hearings"),
			chromedp.Click(chromedp.CSS("#hours-save")))
		p.until("the card at 7:30", hasText(card(deadlines, ".freq-text"), "Daily at 7:30 AM"))
		p.screenshot("07b-firm-hours.png")
		p.do("reset to the default", chromedp.Click(chromedp.CSS("#hours-reset")))
		p.until("the card at the default hour", hasText(card(deadlines, ".freq-text"), "Daily at 7:00 AM"))
		p.do("close the history", chromedp.KeyEvent(kb.Escape))
		p.do("open the SLA check's schedule settings", chromedp.Click(chromedp.CSS("#job-"+sla+" .title-btn")),
			chromedp.Click(chromedp.CSS("#admin-summary")), chromedp.WaitVisible(chromedp.CSS("#schedule-note")))
		if p.eval(`String(document.querySelector('#hours-form').hidden)`) != "true" || !strings.Contains(p.eval(`document.querySelector('#schedule-note').textContent`), "not slow it") {
			t.Errorf("the SLA check's settings offer a time of day, or do not say a firm may pause it, not slow it")
		}
		p.do("close the history", chromedp.KeyEvent(kb.Escape))
	})

	t.Run("the platform operator sees every firm and sets the schedule for all", func(t *testing.T) {
		p := newTab(t, browser)
		p.do("sign in as the platform operator", chromedp.Navigate(s.URL+"signin?token="+operatorToken(t)), chromedp.WaitVisible(chromedp.CSS("#cards .card")))
		p.until("the operator's header", hasText(`document.querySelector('#me').textContent`, "Platform operator · every firm"))
		p.do("open the SLA history", chromedp.Click(chromedp.CSS("#job-"+sla+" .title-btn")))
		p.until("the runs' totals", `document.querySelectorAll('#runs .run').length > 0 && document.querySelector('#runs .run').innerText.includes('7')`)
		p.do("open every firm's part of the newest run", chromedp.Click(chromedp.CSS("#runs .run .run-firms summary")))
		p.until("each firm's slice", hasText(`document.querySelector('#runs .run .firms-list').textContent`, "Iyer Tax Chambers: success")+` && `+
			hasText(`document.querySelector('#runs .run .firms-list').textContent`, "Mehta & Associates: success"))
		p.screenshot("08-operator-firms.png")
		p.do("open the run's overdue tasks", chromedp.Click(chromedp.CSS(`#runs .run .count[data-key="overdue_tasks"]`)))
		p.until("every firm's overdue tasks, named by firm", `document.querySelectorAll('#runs .run .run-items li').length === 7 && `+
			hasText(itemsText, "Mehta & Associates: Draft reply to SCN")+` && `+hasText(itemsText, "Iyer Tax Chambers: Cross-examination request"))
		p.do("open the schedule settings", chromedp.Click(chromedp.CSS("#admin-summary")))
		p.until("the schedule settings open", `document.querySelector('#admin-controls').open`)
		p.do("enter a bad schedule", chromedp.SetValue(chromedp.CSS("#schedule-input"), "every day"), chromedp.Click(chromedp.CSS("#schedule-save")))
		p.until("the schedule error", `!document.querySelector('#schedule-error').hidden && document.querySelector('#schedule-error').textContent.includes('five-field cron')`)
		p.do("enter a good schedule", chromedp.SetValue(chromedp.CSS("#schedule-input"), "*/30 * * * *"), chromedp.Click(chromedp.CSS("#schedule-save")))
		p.until("the new frequency on the card", hasText(card(sla, ".freq-text"), "Every 30 minutes"))
		p.do("close the history", chromedp.KeyEvent(kb.Escape))
		admin.with(t).until("the firm's card follows, live", hasText(card(sla, ".freq-text"), "Every 30 minutes"))
	})

	t.Run("the keyboard alone opens a job's history", func(t *testing.T) {
		p := admin.with(t)
		p.do("focus a job's name and press Enter", chromedp.Focus(chromedp.CSS("#job-"+catalog.CaptureAnalyticsSnapshot+" .title-btn")), chromedp.KeyEvent(kb.Enter))
		p.until("the history open, with no runs yet", `document.querySelector('#history-dialog').open && !document.querySelector('#runs-empty').hidden`)
		p.do("Escape closes it", chromedp.KeyEvent(kb.Escape))
		p.until("the history closed", `!document.querySelector('#history-dialog').open`)
		p.until("focus back on the job's name", `document.activeElement === document.querySelector('#job-`+catalog.CaptureAnalyticsSnapshot+` .title-btn')`)
	})

	t.Run("after a gateway restart the page reconnects and catches up from a fresh snapshot", func(t *testing.T) {
		p := admin.with(t)
		s.restartGateway(t, func() {
			p.until("the connection indicator to show the loss", `document.querySelector('#conn').dataset.state !== 'live'`)
			// A change while the page is disconnected: no frame will tell it.
			ctx := context.Background()
			kv, err := s.NATS.JS.KeyValue(ctx, bus.BucketConfig)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jobstate.Update(ctx, kv, catalog.CaptureAnalyticsSnapshot, func(c *jobstate.Config) error { c.Paused = true; return nil }); err != nil {
				t.Fatal(err)
			}
		})
		p.until("live again", `document.querySelector('#conn').dataset.state === 'live'`)
		p.until("the change made during the gap, on the same page",
			`!document.querySelector('#job-`+catalog.CaptureAnalyticsSnapshot+` .paused-chip').hidden && window.noReload === 'still here'`)
	})

	t.Run("a partner sees stale and possibly stuck jobs, and may run but not pause them", func(t *testing.T) {
		// A run whose executor has been silent for two minutes, and a daily job whose
		// last run was two days ago.
		ctx := context.Background()
		now := time.Now()
		runs, err := s.NATS.JS.KeyValue(ctx, bus.BucketRuns)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := jobstate.Update(ctx, runs, catalog.CaptureAnalyticsSnapshot, func(r *jobstate.Runs) error {
			r.Current = &jobstate.RunInfo{RunID: "stuck-run", Trigger: events.KindSchedule, QueuedAt: now.Add(-3 * time.Minute),
				StartedAt: now.Add(-3 * time.Minute), HeartbeatAt: now.Add(-2 * time.Minute)}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_, _ = jobstate.Update(context.Background(), runs, catalog.CaptureAnalyticsSnapshot, func(r *jobstate.Runs) error { r.Current = nil; return nil })
		})
		old, _ := json.Marshal(events.Result{RunID: "00000000-0000-0000-0000-0000000001d0", JobName: catalog.CheckUpcomingDeadlines, Status: events.StatusSuccess,
			Results: map[string]any{"deadlines_found": 4}, Trigger: events.KindSchedule, FinishedAt: now.Add(-48 * time.Hour)})
		if _, err := s.Pool.Exec(ctx, `INSERT INTO audit_log (action_type, entity_type, entity_id, details, dedupe_key, "timestamp") VALUES ('background_job_execution', 'background_job', $1, $2, 'execution:00000000-0000-0000-0000-0000000001d0', $3)`,
			catalog.CheckUpcomingDeadlines, old, now.Add(-48*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Pool.Exec(ctx, `INSERT INTO job_run_tenants (tenant_id, run_id, job_name, status, results, finished_at) VALUES ($1, '00000000-0000-0000-0000-0000000001d0', $2, 'success', '{"deadlines_found": 4}', $3)`,
			demo.TenantMehta, catalog.CheckUpcomingDeadlines, now.Add(-48*time.Hour)); err != nil {
			t.Fatal(err)
		}

		p := newTab(t, browser)
		p.do("sign in as a partner", chromedp.Navigate(links["partner"]), chromedp.WaitVisible(chromedp.CSS("#cards .card")))
		p.until("the possibly-stuck warning", `!document.querySelector('#job-`+catalog.CaptureAnalyticsSnapshot+` .stuck').hidden && `+
			hasText(card(catalog.CaptureAnalyticsSnapshot, ".stuck"), "Possibly stuck")+` && `+hasText(card(catalog.CaptureAnalyticsSnapshot, ".badge-text"), "Running"))
		p.until("the stale warning", `!document.querySelector('#job-`+catalog.CheckUpcomingDeadlines+` .stale').hidden && `+
			hasText(card(catalog.CheckUpcomingDeadlines, ".stale"), "Last run was 2 days ago: more than 36 hours ago"))
		if got := p.eval(card(catalog.CheckUpcomingDeadlines, ".last")); got != "2 days ago" {
			t.Errorf("last run two days ago reads %q", got)
		}
		p.screenshot("10-stale-and-stuck-partner.png")
		p.do("open a history", chromedp.Click(chromedp.CSS("#job-"+sla+" .title-btn")))
		p.until("the note on who may pause", `document.querySelector('#history-dialog').open && !document.querySelector('#admin-note').hidden && document.querySelector('#admin-controls').hidden`)
		if note := p.eval(`document.querySelector('#admin-note').textContent`); !strings.Contains(note, "Only admins") || !strings.Contains(note, "Anjali Mehta") {
			t.Errorf("the partner's note = %q", note)
		}
	})

	t.Run("on a phone", func(t *testing.T) {
		p := newTab(t, browser)
		p.do("sign in on a phone-sized screen", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
			chromedp.Navigate(links["admin"]), chromedp.WaitVisible(chromedp.CSS("#cards .card")))
		p.until("five cards, live", `document.querySelectorAll('#cards .card').length === 5 && document.querySelector('#conn').dataset.state === 'live'`)
		if w := p.eval(`String(document.documentElement.scrollWidth)`); w != "390" {
			t.Errorf("on a 390 px wide phone the page is %s px wide: it scrolls sideways", w)
		}
		if got := p.eval(card(sla, ".outcome")); !strings.Contains(got, "overdue") {
			t.Errorf("on a phone the SLA card should say what its last run found, says %q", got)
		}
		p.screenshot("08-phone.png")
		p.do("open the help from a card's ℹ️", chromedp.Click(chromedp.CSS("#job-"+hearings+" .tip")))
		p.untilLoaded("the help page at Hearing Reminders", `location.pathname === '/help' && location.hash === '#send-hearing-reminders' && document.readyState === 'complete'`)
		if w := p.eval(`String(document.documentElement.scrollWidth)`); w != "390" {
			t.Errorf("on a 390 px wide phone the help page is %s px wide: it scrolls sideways", w)
		}
		if fs := p.eval(`getComputedStyle(document.querySelector('.job-help p')).fontSize`); p.eval(`String(parseFloat(`+js(fs)+`) >= 14)`) != "true" {
			t.Errorf("the help's text is %s on a phone: too small to read", fs)
		}
		p.windowShot("08b-help-phone.png")
	})

	t.Run("the header's Help opens this system's guide, and each ℹ️ its job's section", func(t *testing.T) {
		p := newTab(t, browser)
		p.do("sign in", chromedp.Navigate(links["admin"]), chromedp.WaitVisible(chromedp.CSS("#cards .card")))
		p.do("press Help in the header", chromedp.Click(chromedp.CSS("#help-link")))
		p.untilLoaded("the help page", `location.pathname === '/help' && document.readyState === 'complete' && document.querySelector('h1') !== null`)
		if h := p.eval(`document.querySelector('h1').textContent`); h != "Background Jobs: help" {
			t.Errorf("the help's heading = %q", h)
		}
		text := p.eval(`document.body.innerText`)
		for _, want := range []string{"SLA & Overdue Check", "Every 15 minutes", "Asia/Kolkata", "Run Now", "for that firm alone", "Platform operator", "cron.job", "job_run_tenants",
			"SELECT h.id, h.hearing_date, c.case_number, p.full_name, p.phone"} {
			if !strings.Contains(text, want) {
				t.Errorf("the help page should say %q", want)
			}
		}
		p.windowShot("11-help.png")
		p.do("back to the dashboard", chromedp.NavigateBack(), chromedp.WaitVisible(chromedp.CSS("#cards .card")))
		p.do("press the SLA card's ℹ️", chromedp.Click(chromedp.CSS("#job-"+sla+" .tip")))
		p.untilLoaded("the SLA check's section of the help", `location.pathname === '/help' && location.hash === '#`+sla+`' && document.readyState === 'complete'`)
		if got := p.eval(`(document.querySelector(':target') || {}).id || ''`); got != sla {
			t.Errorf("the ℹ️ lands on %q, want the SLA check's section", got)
		}
		if top := p.eval(`String(Math.round(document.getElementById('` + sla + `').getBoundingClientRect().top))`); p.eval(`String(Math.abs(`+top+`) < 40)`) != "true" {
			t.Errorf("the SLA check's section is %s px from the top of the window, want it scrolled to the top", top)
		}
		job, _ := catalog.Lookup(sla)
		if got := p.eval(`document.getElementById('` + sla + `').innerText`); !strings.Contains(got, job.Tip) || !strings.Contains(got, "30 minutes") {
			t.Errorf("the SLA check's section should hold its tip and threshold:\n%s", got)
		}
		p.windowShot("12-help-sla-section.png")
	})

	t.Run("the keyboard alone reaches the help and moves through it", func(t *testing.T) {
		p := newTab(t, browser)
		p.do("sign in", chromedp.Navigate(links["admin"]), chromedp.WaitVisible(chromedp.CSS("#cards .card")))
		p.tabUntil("the header's Help", `document.activeElement === document.querySelector('#help-link')`, 10)
		p.do("press Enter on Help", chromedp.KeyEvent(kb.Enter))
		p.untilLoaded("the help page", `location.pathname === '/help' && document.readyState === 'complete'`)
		p.tabUntil("the skip link", `document.activeElement && document.activeElement.classList.contains('skip')`, 3)
		p.do("press Enter on the skip link", chromedp.KeyEvent(kb.Enter))
		p.until("the contents focused", `document.activeElement === document.querySelector('#contents')`)
		p.tabUntil("the contents' link to Hearing Reminders", `document.activeElement && document.activeElement.getAttribute('href') === '#`+hearings+`'`, 12)
		p.do("press Enter on it", chromedp.KeyEvent(kb.Enter))
		p.until("the Hearing Reminders section", `location.hash === '#`+hearings+`'`)
		p.do("back to the dashboard", chromedp.Navigate(s.URL), chromedp.WaitVisible(chromedp.CSS("#cards .card")))
		p.tabUntil("the SLA card's ℹ️", `document.activeElement === document.querySelector('#job-`+sla+` .tip')`, 20)
		if got := p.eval(`getComputedStyle(document.querySelector('#job-` + sla + ` .tip-text')).display`); got == "none" {
			t.Errorf("the ℹ️ tip is not shown when the keyboard focuses it")
		}
		p.do("press Enter on the ℹ️", chromedp.KeyEvent(kb.Enter))
		p.untilLoaded("the SLA check's section of the help", `location.pathname === '/help' && location.hash === '#`+sla+`'`)
	})

	t.Run("an advocate is told why not and whom to ask", func(t *testing.T) {
		p := newTab(t, browser)
		p.do("open the advocate's sign-in link", chromedp.Navigate(links["advocate"]), chromedp.WaitVisible(chromedp.CSS("#notice h2")))
		p.until("the refusal page", `document.querySelector('#notice h2').textContent.includes("don't have access")`)
		text := p.eval(`document.querySelector('#notice').innerText`)
		for _, want := range []string{"Admin and Partner roles only", "Priya Nair (Advocate) at Mehta & Associates", "Anjali Mehta", "anjali@mehta.example"} {
			if !strings.Contains(text, want) {
				t.Errorf("the refusal should say %q:\n%s", want, text)
			}
		}
		p.screenshot("09-advocate-refused.png")
	})

	// What is tried: a partner has the dashboard open and is demoted to user.
	// What must hold: the page says, in words, that their access changed and what it is
	// now, names whom to ask, and opens no further connection. The
	// absence of a reconnect can only be watched over a while: 3 s, longer than the
	// page's first two retry delays (0.5-1 s, then 1-2 s).
	t.Run("a partner demoted while the page is open is told why, and the page stops", func(t *testing.T) {
		p := newTab(t, browser)
		p.do("sign in as the partner", chromedp.Navigate(links["partner"]), chromedp.WaitVisible(chromedp.CSS("#cards .card")))
		p.until("live", `document.querySelector('#conn').dataset.state === 'live'`)
		p.eval(`window.socketsOpened = 0; const Real = window.WebSocket;
			window.WebSocket = function (...args) { window.socketsOpened++; return new Real(...args); }; 'ok'`)
		if _, err := s.Pool.Exec(context.Background(), `UPDATE profiles SET role = 'user' WHERE id = $1`, demo.UserPartner); err != nil {
			t.Fatal(err)
		}
		p.until("the explanation", `!document.querySelector('#signed-out').hidden && `+
			hasText(`document.querySelector('#signed-out-text').textContent`, "Your access to Background Jobs has changed (your role is now User)"))
		text := p.eval(`document.querySelector('#signed-out-text').textContent`)
		for _, want := range []string{"stopped updating", "Anjali Mehta (anjali@mehta.example)"} {
			if !strings.Contains(text, want) {
				t.Errorf("the explanation should say %q: %q", want, text)
			}
		}
		p.screenshot("11-partner-demoted.png")
		opened := p.eval(`new Promise(r => setTimeout(() => r(String(window.socketsOpened)), 3000))`, chromedp.EvalAwaitPromise)
		if opened != "0" {
			t.Errorf("after the explanation the page opened %s more websockets; it should stop", opened)
		}
		if got := p.eval(`document.querySelector('#conn').dataset.state`); got != "offline" {
			t.Errorf("the connection indicator says %q, want offline", got)
		}
	})

	// What is tried: an admin presses Sign out on the dashboard (the form posts with
	// Origin: null, as Chromium sends it under the page's no-referrer policy).
	// What must hold: the sign-out is accepted and says so, and the token no longer works.
	t.Run("Sign out on the dashboard ends the session", func(t *testing.T) {
		tok, err := gateway.IssueToken(testSecret, iyerAdmin, time.Now(), 3*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		p := newTab(t, browser)
		p.do("sign in", chromedp.Navigate(s.URL+"signin?token="+tok), chromedp.WaitVisible(chromedp.CSS("#cards .card")))
		p.until("live", `document.querySelector('#conn').dataset.state === 'live'`)
		p.do("press Sign out and wait for the page it opens", chromedp.Click(chromedp.CSS("form.signout button")), chromedp.WaitVisible(chromedp.CSS("#notice h1, #notice h2")))
		p.until("the signed-out page", hasText(`document.body.innerText`, "You have signed out."))
		if res := s.do(t, request{method: "GET", path: "/api/me", bearer: tok}); res.code != 401 {
			t.Errorf("the signed-out token = %d on /api/me, want 401", res.code)
		}
	})
}
