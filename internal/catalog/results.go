package catalog

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// HearingReminderWindow is how far ahead the hearing reminders look: hearings starting
// between a run's now and now + 24 hours, both ends included.
const HearingReminderWindow = 24 * time.Hour

// Result is one key of a job's results: what it means, and how the dashboard says it.
type Result struct {
	Key string `json:"key"`
	// Label names the number in the history ("Overdue tasks").
	Label string `json:"label"`
	// Meaning is one sentence for the help page and the history's tooltip.
	Meaning string `json:"meaning"`
	// Words say the number in a card's one-line summary ("7 overdue", "7 SLA breaches"),
	// One when it is exactly 1 ("1 SLA breach"); Show says when the key is in it.
	Words string `json:"words,omitempty"`
	One   string `json:"one,omitempty"`
	Show  Show   `json:"show,omitempty"`
	// Toast marks the one figure the Run Now toast names, in these words after the
	// number (the guide's "5 overdue tasks found").
	Toast string `json:"-"`
	// Items says what the history lists behind the number; "" when the number is a
	// count only.
	Items string `json:"items,omitempty"`
	// Detail marks a list kept for the items and the API (the health check's rules),
	// not shown as a number.
	Detail bool `json:"detail,omitempty"`
	// Operator marks a key only the platform operator's totals carry.
	Operator bool `json:"operator,omitempty"`
}

// Show says when a key is in a card's one-line summary.
type Show string

const (
	// ShowAlways: the number is always said, zero included ("0 overdue").
	ShowAlways Show = "always"
	// ShowNonZero: said only when it is not zero ("1 failed").
	ShowNonZero Show = "nonzero"
	// ShowLead: a word that starts the summary ("degraded: …").
	ShowLead Show = "lead"
	// ShowFallback: said only when nothing after the lead was ("healthy: 5 rules checked").
	ShowFallback Show = "fallback"
)

// The keys every job's totals may carry.
var commonResults = []Result{
	{Key: "tenants_skipped", Label: "Firms skipped", Operator: true,
		Meaning: "Firms the run did not cover because they had paused the job (the platform operator's totals only)."},
}

var slaResults = []Result{
	{Key: "overdue_tasks", Label: "Overdue tasks", Words: "overdue", One: "overdue", Show: ShowAlways, Toast: "overdue tasks found",
		Meaning: "Open or in-progress tasks whose due date had passed when the run looked.",
		Items:   "The tasks that were overdue at the run's time, as the tasks stand now."},
	{Key: "sla_violations", Label: "SLA violations", Words: "SLA breaches", One: "SLA breach", Show: ShowAlways,
		Meaning: "Open or in-progress tasks open longer than their priority's SLA resolution hours.",
		Items:   "The tasks that had breached their SLA at the run's time, as the tasks stand now."},
	{Key: "automation_rules_triggered", Label: "Automation rules triggered", Words: "rules fired", One: "rule fired", Show: ShowAlways,
		Meaning: "Automation rule fires this run recorded (one per rule per breach), including those that could not act.",
		Items:   "Each rule fired, on which task, and whether it acted."},
	{Key: "automation_failures", Label: "Automation failures", Words: "could not act", One: "could not act", Show: ShowNonZero,
		Meaning: "Rule fires that could not act: no assignee, no case or case owner, no managers.",
		Items:   "Each rule that could not act, on which task, and why."},
	{Key: "notifications_sent", Label: "Notifications sent", Words: "notifications sent", One: "notification sent",
		Meaning: "In-app notifications the rules sent.",
		Items:   "Each notification, to whom, about which task."},
	{Key: "priorities_escalated", Label: "Priorities escalated",
		Meaning: "Tasks whose priority a rule raised one level.",
		Items:   "The tasks whose priority was raised, by which rule."},
	{Key: "automation_backlog", Label: "Automation backlog", Words: "rule fires left for the next runs", One: "rule fire left for the next run", Show: ShowNonZero,
		Meaning: "Rule fires left for the next runs because this one reached its limit (SLA_MAX_FIRES_PER_RUN)."},
}

var hearingResults = append([]Result{
	{Key: "hearings_processed", Label: "Hearings processed", Words: "hearings", One: "hearing", Show: ShowAlways,
		Meaning: "Scheduled or adjourned hearings starting within 24 hours of the run.",
		Items:   "The hearings in the run's 24-hour window, as they stand now, and whom this run reminded."},
	{Key: "notifications_sent", Label: "Notifications sent", Words: "reminders sent", One: "reminder sent", Show: ShowAlways, Toast: "reminders sent",
		Meaning: "Reminders this run delivered, one per person per hearing per channel (in-app and e-mail count one each).",
		Items:   "Each reminder: which hearing, to whom, on which channel."},
	{Key: "failed_notifications", Label: "Failed notifications", Words: "failed", One: "failed", Show: ShowNonZero,
		Meaning: "Reminders this run could not deliver: hearings with no one to remind, e-mails that failed or wait for the mail server.",
		Items:   "Each reminder that did not go out, to whom, and why."},
}, channelResults("reminder", "hearing")...)

var analyticsResults = []Result{
	{Key: "tenants_processed", Label: "Firms processed",
		Meaning: "Firms whose metrics the run captured."},
	{Key: "snapshots_written", Label: "Snapshots written", Words: "metrics captured", One: "metric captured", Show: ShowAlways, Toast: "metrics captured",
		Meaning: "Metric values written (seven per firm per day).",
		Items:   "Each metric and its value for the day, as stored now."},
	{Key: "snapshot_date", Label: "Snapshot date",
		Meaning: "The day the metrics are for, in the jobs' time zone."},
}

var deadlineResults = append([]Result{
	{Key: "deadlines_found", Label: "Deadlines found", Words: "deadlines", One: "deadline", Show: ShowAlways,
		Meaning: "Task due dates, replies to show-cause notices and appeal deadlines within the widest alert threshold."},
	{Key: "alerts_sent", Label: "Alerts sent", Words: "alerts sent", One: "alert sent", Show: ShowAlways, Toast: "deadline alerts sent",
		Meaning: "Alerts this run delivered (in-app and e-mail count one each); a deadline already alerted at its threshold is not alerted again.",
		Items:   "Each alert: which deadline, to whom, on which channel."},
	{Key: "failed_alerts", Label: "Failed alerts", Words: "failed", One: "failed", Show: ShowNonZero,
		Meaning: "Alerts this run could not deliver: deadlines with no one to alert, e-mails that failed or wait for the mail server.",
		Items:   "Each alert that did not go out, to whom, and why."},
}, channelResults("alert", "deadline")...)

var healthResults = []Result{
	{Key: "health", Label: "Health", Show: ShowLead, Toast: "automation",
		Meaning: "healthy, degraded or unhealthy (see above): for a firm, its own rules and the jobs; for the platform operator, every firm's."},
	{Key: "rules_checked", Label: "Rules checked", Words: "rules checked", One: "rule checked", Show: ShowFallback,
		Meaning: "Active automation rules looked at."},
	{Key: "unhealthy_rules", Label: "Unhealthy rules", Words: "rules failing", One: "rule failing", Show: ShowNonZero,
		Meaning: "Rules failing or not firing in the last 24 hours.",
		Items:   "Each unhealthy rule and what is wrong with it: how often it failed, on what, or which breaches it did not fire for."},
	{Key: "stale_job_count", Label: "Stale jobs", Words: "jobs stale", One: "job stale", Show: ShowNonZero,
		Meaning: "Background jobs whose last success is older than their alert threshold.",
		Items:   "Each stale job, when it last succeeded and when it should have."},
	{Key: "stale_jobs", Label: "Stale job names", Detail: true,
		Meaning: "The names of the stale jobs."},
	{Key: "rules", Label: "Rules", Detail: true,
		Meaning: "The unhealthy rules in detail (at most 100; rules_not_listed says how many more)."},
	{Key: "rules_not_listed", Label: "Rules not listed",
		Meaning: "Unhealthy rules beyond the 100 listed."},
	{Key: "jobs", Label: "Jobs", Detail: true,
		Meaning: "Each background job's last success and alert threshold."},
	{Key: "unhealthy_tenants", Label: "Unhealthy firms",
		Meaning: "Firms with an open automation incident (for a firm: 1 when its own is open)."},
	{Key: "incidents_opened", Label: "Incidents opened",
		Meaning: "Automation incidents this run opened (a firm turned unhealthy)."},
	{Key: "incidents_closed", Label: "Incidents closed",
		Meaning: "Automation incidents this run closed (a firm is no longer unhealthy)."},
	{Key: "notifications_sent", Label: "Notifications sent",
		Meaning: "In-app notifications to admins of firms that turned unhealthy.",
		Items:   "Each notification, to which admin."},
}

// ResultInfo describes a key the job reports; ok is false for a key it does not.
func (j Job) ResultInfo(key string) (Result, bool) {
	for _, r := range j.Results {
		if r.Key == key {
			return r, true
		}
	}
	for _, r := range commonResults {
		if r.Key == key {
			return r, true
		}
	}
	return Result{}, false
}

// AllResults is the job's keys and the keys every job's totals may carry.
func (j Job) AllResults() []Result {
	return append(append([]Result(nil), j.Results...), commonResults...)
}

// Summarize is a successful run's one line on its card, from the viewer's results:
// "7 overdue · 7 SLA breaches · 3 rules fired", "degraded: 2 rules failing". Keys the
// results lack are left out; "" when none of the summary's keys is there.
func (j Job) Summarize(results map[string]any) string {
	lead := ""
	var parts, fallback []string
	for _, r := range j.Results {
		v, ok := results[r.Key]
		if !ok || r.Show == "" {
			continue
		}
		if r.Show == ShowLead {
			if s, isString := v.(string); isString && s != "" {
				lead = s
			}
			continue
		}
		n, isNumber := number(v)
		if !isNumber {
			continue
		}
		words := r.Words
		if n == 1 && r.One != "" {
			words = r.One
		}
		part := formatNumber(n) + " " + words
		switch r.Show {
		case ShowAlways:
			parts = append(parts, part)
		case ShowNonZero:
			if n != 0 {
				parts = append(parts, part)
			}
		case ShowFallback:
			fallback = append(fallback, part)
		}
	}
	if len(parts) == 0 {
		parts = fallback
	}
	line := strings.Join(parts, " · ")
	switch {
	case lead != "" && line != "":
		return lead + ": " + line
	case lead != "":
		return lead
	}
	return line
}

// ToastFigure is the figure the Run Now toast names and its words, or ok false.
func (j Job) ToastFigure(results map[string]any) (figure string, ok bool) {
	for _, r := range j.Results {
		if r.Toast == "" {
			continue
		}
		v, present := results[r.Key]
		if !present {
			return "", false
		}
		if s, isString := v.(string); isString {
			return r.Toast + " " + s, true
		}
		return fmt.Sprintf("%v %s", v, r.Toast), true
	}
	return "", false
}

// number reads a count as JSON or a job's report holds it.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case float64:
		return n, true
	case float32:
		return float64(n), true
	}
	return 0, false
}

func formatNumber(n float64) string {
	if n == math.Trunc(n) && math.Abs(n) < 1e15 {
		return fmt.Sprintf("%d", int64(n))
	}
	return fmt.Sprintf("%g", n)
}

// MetricInfo is one metric of the analytics snapshot (analytics_snapshots.metric_type).
type MetricInfo struct {
	Type, Label, Meaning string
}

// Metrics are the analytics snapshot's metrics, as services/analytics writes them.
var metrics = []MetricInfo{
	{"active_cases", "Active cases", "Cases with status active."},
	{"open_tasks", "Open tasks", "Tasks open or in progress."},
	{"overdue_tasks", "Overdue tasks", "Open tasks whose due date had passed when the snapshot was taken."},
	{"sla_compliance_percent", "SLA compliance (%)", "Of the tasks completed the previous day, the percentage completed within their SLA (0 when none was completed)."},
	{"hearings_next_7_days", "Hearings in the next 7 days", "Scheduled hearings in the seven days starting with the snapshot's date."},
	{"tasks_completed_previous_day", "Tasks completed the previous day", "Tasks completed on the day before the snapshot's date."},
	{"notifications_failed_previous_day", "Notifications failed the previous day", "Notifications whose e-mail delivery failed, last attempted the previous day."},
}

// Metrics lists the analytics snapshot's metrics, in the order the help page shows them.
func Metrics() []MetricInfo { return append([]MetricInfo(nil), metrics...) }

// Metric describes one metric type.
func Metric(metricType string) (MetricInfo, bool) {
	for _, m := range metrics {
		if m.Type == metricType {
			return m, true
		}
	}
	return MetricInfo{}, false
}

// channelResults are the per-channel counts both notifying jobs report, in their words:
// what (a reminder, an alert) about what (a hearing, a deadline).
func channelResults(what, about string) []Result {
	What := strings.ToUpper(what[:1]) + what[1:]
	return []Result{
		{Key: "in_app_sent", Label: "In-app sent", Meaning: What + "s delivered in-app.",
			Items: "Each in-app " + what + ": which " + about + ", to whom."},
		{Key: "emails_sent", Label: "E-mails sent", Meaning: What + "s the mail server accepted.",
			Items: "Each e-mail: which " + about + ", to whom, at which address."},
		{Key: "emails_failed", Label: "E-mails failed", Meaning: "E-mails that cannot be delivered as things are (no or invalid address, refused recipient); retried by later runs while the " + about + " is ahead.",
			Items: "Each e-mail that failed, to whom, and why."},
		{Key: "emails_pending", Label: "E-mails pending", Meaning: "E-mails left for the next run because the mail server could not be reached or deferred them.",
			Items: "Each e-mail waiting, to whom, and why."},
		{Key: "email_enabled", Label: "E-mail on", Meaning: "Whether the deployment sends e-mail (SMTP_URL); off, " + what + "s are in-app only."},
	}
}
