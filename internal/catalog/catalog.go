// Package catalog is the one list of background jobs: their names, what the dashboard
// calls them, when they run and when a missing run becomes an alert.
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
	// ResultKeys are the counters the job reports, in display order.
	ResultKeys []string
	// Service runs the job (ServiceSLA, ServiceReminders, ServiceAnalytics). Its NATS
	// user may publish the job's run orders, statuses, slices and results, and no
	// other service's (natsauth).
	Service string
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
		Service:     ServiceSLA,
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
		Service:     ServiceReminders,
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
		Service:     ServiceAnalytics,
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
		Service:     ServiceReminders,
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
		Service:     ServiceSLA,
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
