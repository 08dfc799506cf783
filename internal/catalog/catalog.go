// Package catalog is the one list of background jobs: their names, what the dashboard
// calls them, when they run and when a missing run becomes an alert, and the words
// people read about them: the ℹ️ tip, the help page's explanation, what each results
// key means and how a run's numbers read on a card (results.go). The gateway serves
// these facts to the dashboard and renders the help page from them, so the cards, the
// API and the help agree.
package catalog

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Job names, as pinned by the contract. They appear in subjects, audit rows and URLs.
const (
	CheckSLAAndOverdue       = "check-sla-and-overdue"
	SendHearingReminders     = "send-hearing-reminders"
	CaptureAnalyticsSnapshot = "capture-analytics-snapshot"
	CheckUpcomingDeadlines   = "check-upcoming-deadlines"
	AutomationHealthCheck    = "automation-health-check"
)

// DefaultTimezone is where the firms using this are: Indian GST practices.
const DefaultTimezone = "Asia/Kolkata"

// Job describes one background job.
type Job struct {
	Name        string
	Title       string
	Description string
	// Schedule is a five-field cron expression evaluated in the jobs' time zone.
	Schedule string
	// MaxAge is how old the last run may normally be; a slot missed while no ticker ran
	// is caught up only within it.
	MaxAge time.Duration
	// StaleAfter is when an old last run turns into a warning on the dashboard.
	StaleAfter time.Duration
	// Timeout bounds one run; a stuck run fails instead of blocking the queue.
	Timeout time.Duration
	// ResultKeys are the results keys CONTRACT.md pins, in display order.
	ResultKeys []string
	// Results describes every key the job reports (the pinned ones and more), in
	// display order: what it means and how a card's one-line summary says it.
	Results []Result
	// Tip is the ℹ️ tip on the job's card: when to look at it and what to do.
	Tip string
	// About explains, in a few paragraphs for the help page, what the job does.
	About []string
	// RunNowWhen says when pressing Run Now on this job helps.
	RunNowWhen string
	// Service runs the job (ServiceSLA, ServiceReminders, ServiceAnalytics). Its NATS
	// user may publish the job's run orders, statuses, slices and results, and no
	// other service's (natsauth).
	Service string
	// FirmHours: the job runs once a day, and each firm may choose its own time of day
	// for it (read in the firm's own time zone). The SLA check runs every 15 minutes for
	// every firm: a firm may pause it, not slow it.
	FirmHours bool
}

// The job services, each of which runs some of the jobs.
const (
	ServiceSLA       = "sla"
	ServiceReminders = "reminders"
	ServiceAnalytics = "analytics"
)

var jobs = []Job{
	{
		Name:        CheckSLAAndOverdue,
		Title:       "SLA & Overdue Check",
		Description: "Checks tasks for SLA violations and overdue deadlines, and escalates them through automation rules.",
		Schedule:    "*/15 * * * *",
		MaxAge:      15 * time.Minute,
		StaleAfter:  30 * time.Minute,
		Timeout:     2 * time.Minute,
		ResultKeys:  []string{"overdue_tasks", "sla_violations", "automation_rules_triggered"},
		Results:     slaResults,
		Tip:         "Finds tasks past their due date or their SLA and fires the matching automation rules (escalations, notifications), so overdue work is caught within 15 minutes.",
		About: []string{
			"A task is overdue when it is open or in progress and its due date has passed. It breaches its SLA when it has stayed open longer than the resolution hours of its priority: your firm's own SLA policy for that priority, else the default one (critical 24 h, high 72 h, medium 168 h, low 336 h).",
			"Each breach fires each of your firm's active automation rules for it (trigger task_overdue or sla_violation) once: notify the assignee, the case owner or the managers in-app, or raise the task's priority one level. A rule that cannot act (the task has no assignee, no case or no case owner; the firm has no managers) is recorded as failed, with the reason; the Automation Health Check watches for such rules.",
			"A breach fires again only when its deadline moves later (the task was rescheduled) and is missed again, so a re-run notifies no one twice. One run fires at most 20,000 rules (SLA_MAX_FIRES_PER_RUN), oldest breaches first; the rest, the automation backlog, wait for the next runs.",
		},
		RunNowWhen: "Before a client meeting or a review, to see the overdue work as it stands now; after correcting due dates or assignees, to fire the rules again.",
		Service:    ServiceSLA,
	},
	{
		Name:        SendHearingReminders,
		Title:       "Hearing Reminders",
		Description: "Sends daily reminders for hearings in the next 24 hours to the assignee and the case owner.",
		Schedule:    "0 8 * * *",
		MaxAge:      24 * time.Hour,
		StaleAfter:  36 * time.Hour,
		Timeout:     5 * time.Minute,
		ResultKeys:  []string{"hearings_processed", "notifications_sent", "failed_notifications"},
		Results:     hearingResults,
		Tip:         "Reminds the assignee and the case owner of every hearing in the next 24 hours. If it fails, check that hearings have an assignee and an owner, and that their profiles have e-mail addresses.",
		About: []string{
			"Every hearing that is scheduled or adjourned and starts within the next 24 hours is reminded to the hearing's assignee and to the case's owner (once, when they are the same person): in-app always, and by e-mail when the deployment has e-mail on (SMTP_URL).",
			"Nobody is reminded twice of the same hearing; a hearing moved to another time is reminded again. A reminder fails when there is no one to remind (the hearing has no assignee and the case no owner) or when its e-mail cannot be delivered (no address, an invalid one, a recipient the mail server refused). Correct the data and press Run Now: what was delivered is not delivered again, and the rest goes out.",
		},
		RunNowWhen: "After adding or moving a hearing for the next 24 hours, or after fixing an address, to send the reminders now instead of at 08:00.",
		Service:    ServiceReminders,
		FirmHours:  true,
	},
	{
		Name:        CaptureAnalyticsSnapshot,
		Title:       "Analytics Snapshot",
		Description: "Captures each firm's daily metrics for historical reporting.",
		Schedule:    "30 0 * * *",
		MaxAge:      24 * time.Hour,
		StaleAfter:  36 * time.Hour,
		Timeout:     5 * time.Minute,
		ResultKeys:  []string{"tenants_processed", "snapshots_written"},
		Results:     analyticsResults,
		Tip:         "Records each firm's daily metrics for historical reports; can take up to 30 seconds. Run it before a report if last night's snapshot looks wrong.",
		About: []string{
			"Writes seven metrics per firm for the day (the date in the jobs' time zone): active cases, open tasks, overdue tasks, SLA compliance (the percentage of the tasks completed the previous day that were completed within their SLA), hearings in the next 7 days, tasks completed the previous day, and notifications whose e-mail failed the previous day.",
			"The metrics are the tables as they are when the job runs: a snapshot can be taken, not recomputed later. A second run on the same day replaces that day's values; the next day's run adds a new set.",
		},
		RunNowWhen: "Before generating a report, when today's snapshot is missing or was taken before the day's data was entered.",
		Service:    ServiceAnalytics,
		FirmHours:  true,
	},
	{
		Name:        CheckUpcomingDeadlines,
		Title:       "Deadline Alerts",
		Description: "Alerts assignees and owners to task deadlines and statutory dates that are coming up.",
		Schedule:    "0 7 * * *",
		MaxAge:      24 * time.Hour,
		StaleAfter:  36 * time.Hour,
		Timeout:     5 * time.Minute,
		ResultKeys:  []string{"deadlines_found", "alerts_sent", "failed_alerts"},
		Results:     deadlineResults,
		Tip:         "Alerts people to task deadlines and statutory dates (replies, appeals) that are coming up. Run it in the morning if you need the alerts urgently.",
		About: []string{
			"Alerts the assignee of every open task due within the alert thresholds (7, 3 and 1 days ahead unless the deployment sets DEADLINE_THRESHOLDS), and the owner of every active case whose reply to a show-cause notice or appeal deadline falls within them. Days are calendar days in the jobs' time zone.",
			"Each deadline is alerted once per threshold, at the tightest threshold it is within. A task whose due time has passed is overdue (the SLA & Overdue Check's business), not upcoming; a statutory date is upcoming until its day is over. An alert fails when there is no one to alert (no assignee, no case owner) or its e-mail cannot be delivered.",
		},
		RunNowWhen: "In the morning before 07:00, or after entering a new deadline, when the people concerned must know today.",
		Service:    ServiceReminders,
		FirmHours:  true,
	},
	{
		Name:        AutomationHealthCheck,
		Title:       "Automation Health Check",
		Description: "Checks automation rules for failures and the background jobs for missed runs.",
		Schedule:    "0 6 * * *",
		MaxAge:      24 * time.Hour,
		StaleAfter:  36 * time.Hour,
		Timeout:     2 * time.Minute,
		ResultKeys:  []string{"rules_checked", "unhealthy_rules", "stale_jobs", "health"},
		Results:     healthResults,
		Tip:         "Checks automation rules for failures and these jobs for missed runs. If it reports 'unhealthy' again and again, escalate to the development team.",
		About: []string{
			"Looks at the last 24 hours of your firm's active automation rules. A rule is failing when it failed at least 3 times and in at least half of its executions (AUTOMATION_HEALTH_MIN_FAILURES, AUTOMATION_HEALTH_FAILURE_PERCENT); it is not firing when a breach older than 30 minutes has no fire of it. It also checks the background jobs: a job is stale when its last success is older than its alert threshold.",
			"Healthy: nothing is wrong. Degraded: a rule is unhealthy or a job is stale. Unhealthy: the SLA & Overdue Check is stale, two or more jobs are stale, or more than half of the rules are unhealthy. When your firm turns unhealthy its admins get one in-app notification, and another only after it has been healthy again. The dashboard shows a degraded or unhealthy verdict under its header and on this card.",
		},
		RunNowWhen: "After fixing a rule or the data it failed on, to see the verdict change without waiting for 06:00.",
		Service:    ServiceSLA,
		FirmHours:  true,
	},
}

// All returns the jobs in dashboard order. The slice is a copy.
func All() []Job { return slices.Clone(jobs) }

// Names returns the job names in dashboard order.
func Names() []string {
	names := make([]string, len(jobs))
	for i, j := range jobs {
		names[i] = j.Name
	}
	return names
}

// Services returns the job services in a fixed order.
func Services() []string { return []string{ServiceSLA, ServiceReminders, ServiceAnalytics} }

// JobsOf returns the names of the jobs service runs, in dashboard order.
func JobsOf(service string) []string {
	var names []string
	for _, j := range jobs {
		if j.Service == service {
			names = append(names, j.Name)
		}
	}
	return names
}

// Lookup finds a job by name.
func Lookup(name string) (Job, bool) {
	for _, j := range jobs {
		if j.Name == name {
			return j, true
		}
	}
	return Job{}, false
}

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule validates a five-field cron expression.
func ParseSchedule(expr string) (cron.Schedule, error) {
	s, err := parser.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("catalog: schedule %q is not a five-field cron expression (minute hour day-of-month month day-of-week): %w", expr, err)
	}
	return s, nil
}

// LoadTimezone resolves JOBS_TIMEZONE; the tz database is compiled into the binaries
// (time/tzdata is imported by each main package), so containers need none.
func LoadTimezone(name string) (*time.Location, error) {
	if name == "" {
		name = DefaultTimezone
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("catalog: JOBS_TIMEZONE=%q is not an IANA time zone (for example Asia/Kolkata): %w", name, err)
	}
	return loc, nil
}

// Next is the first slot of expr strictly after t, in loc.
func Next(expr string, loc *time.Location, t time.Time) (time.Time, error) {
	s, err := ParseSchedule(expr)
	if err != nil {
		return time.Time{}, err
	}
	return s.Next(t.In(loc)), nil
}

// Prev is the latest slot of expr at or before t, looking back at most lookback.
// ok is false when no slot falls in that window.
func Prev(expr string, loc *time.Location, t time.Time, lookback time.Duration) (slot time.Time, ok bool, err error) {
	s, err := ParseSchedule(expr)
	if err != nil {
		return time.Time{}, false, err
	}
	// cron only walks forward: walk from the start of the window and keep the last
	// slot that is not after t. Slots are at least a minute apart, so this is bounded.
	cur := t.Add(-lookback).In(loc).Add(-time.Second)
	for {
		n := s.Next(cur)
		if n.IsZero() || n.After(t) {
			return slot, ok, nil
		}
		slot, ok, cur = n, true, n
	}
}

// Describe turns a cron expression into the words the dashboard shows
// ("Every 15 minutes", "Daily at 8:00 AM"). Unusual expressions are shown as they are.
func Describe(expr string) string {
	f := strings.Fields(expr)
	if len(f) != 5 {
		return "Cron " + expr
	}
	min, hour, dom, mon, dow := f[0], f[1], f[2], f[3], f[4]
	if dom != "*" || mon != "*" {
		return "Cron " + expr
	}
	if hour == "*" && dow == "*" {
		if n, ok := strings.CutPrefix(min, "*/"); ok {
			if n == "1" {
				return "Every minute"
			}
			return "Every " + n + " minutes"
		}
		if min == "*" {
			return "Every minute"
		}
		if m, err := strconv.Atoi(min); err == nil {
			if m == 0 {
				return "Every hour"
			}
			return fmt.Sprintf("Every hour at :%02d", m)
		}
		return "Cron " + expr
	}
	m, errM := strconv.Atoi(min)
	h, errH := strconv.Atoi(hour)
	if errM != nil || errH != nil {
		return "Cron " + expr
	}
	at := clock12(h, m)
	switch dow {
	case "*":
		return "Daily at " + at
	case "1-5", "MON-FRI":
		return "Weekdays at " + at
	}
	if d, err := strconv.Atoi(dow); err == nil && d >= 0 && d <= 7 {
		return "Every " + time.Weekday(d%7).String() + " at " + at
	}
	return "Cron " + expr
}

// DailyAt is the time of day of a schedule that runs once a day, every day ("30 7 * *
// *" is "07:30"); ok is false for any other schedule.
func DailyAt(expr string) (at string, ok bool) {
	f := strings.Fields(expr)
	if len(f) != 5 || f[2] != "*" || f[3] != "*" || f[4] != "*" {
		return "", false
	}
	m, errM := strconv.Atoi(f[0])
	h, errH := strconv.Atoi(f[1])
	if errM != nil || errH != nil || m < 0 || m > 59 || h < 0 || h > 23 {
		return "", false
	}
	return fmt.Sprintf("%02d:%02d", h, m), true
}

// ParseAt reads a firm's time of day for a daily job, "HH:MM" on the 24-hour clock
// ("7:30" is accepted), and returns it as "07:30".
func ParseAt(s string) (string, error) {
	hh, mm, ok := strings.Cut(strings.TrimSpace(s), ":")
	h, errH := strconv.Atoi(hh)
	m, errM := strconv.Atoi(mm)
	if !ok || errH != nil || errM != nil || len(mm) != 2 || len(hh) < 1 || len(hh) > 2 || h < 0 || h > 23 || m < 0 || m > 59 {
		return "", fmt.Errorf("catalog: time of day %q is not HH:MM on the 24-hour clock (for example 07:30 or 18:00)", s)
	}
	return fmt.Sprintf("%02d:%02d", h, m), nil
}

// DailyCron is the schedule that runs every day at at ("07:30" is "30 7 * * *"); at
// must come from ParseAt or DailyAt.
func DailyCron(at string) string {
	h, m, _ := strings.Cut(at, ":")
	hour, _ := strconv.Atoi(h)
	minute, _ := strconv.Atoi(m)
	return fmt.Sprintf("%d %d * * *", minute, hour)
}

func clock12(h, m int) string {
	suffix := "AM"
	if h >= 12 {
		suffix = "PM"
	}
	h12 := h % 12
	if h12 == 0 {
		h12 = 12
	}
	return fmt.Sprintf("%d:%02d %s", h12, m, suffix)
}
