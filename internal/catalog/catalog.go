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
	// FirmHours: the job runs once a day, and each firm may choose its own time of day
	// for it (read in the firm's own time zone). The SLA check runs every 15 minutes for
	// every firm: a firm may pause it, not slow it.
	FirmHours bool
}

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
		FirmHours:   true,
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
		FirmHours:   true,
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
		FirmHours:   true,
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
		FirmHours:   true,
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
