package reminders

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/internal/notify"
	"github.com/lexhq/gstjobs/internal/ops"
	"github.com/lexhq/gstjobs/internal/tenancy"
	"github.com/lexhq/gstjobs/internal/worker"
)

// Environment variables the service reads, beyond those every job service reads.
const (
	EnvSMTPURL            = "SMTP_URL"
	EnvSMTPFrom           = "SMTP_FROM"
	EnvDeadlineThresholds = "DEADLINE_THRESHOLDS"
)

// ReminderWindow is how far ahead hearing reminders look: hearings starting between
// the run's now and now + ReminderWindow, both ends included. The catalog holds it,
// because the dashboard lists the hearings of a run's window too.
const ReminderWindow = catalog.HearingReminderWindow

// DefaultDeadlineThresholds are the days before a deadline at which alerts go out.
var DefaultDeadlineThresholds = []int{7, 3, 1}

// maxThreshold keeps DEADLINE_THRESHOLDS to something a person means.
const maxThreshold = 366

// maxErrors bounds Report.Errors, which travels in the run's result event.
const maxErrors = 100

// Config is the service's own settings.
type Config struct {
	// SMTPURL turns e-mail on (see the package documentation); empty: in-app only.
	SMTPURL string
	// SMTPFrom is the sender of the e-mails; required with SMTPURL.
	SMTPFrom string
	// DeadlineThresholds are days before a deadline, in any order; nil: 7, 3, 1.
	DeadlineThresholds []int
	// SplitAt is the number of firms from which a run for named firms delivers its
	// reminders (alerts) in firm-disjoint slices at once; 0: 2. A run for every firm
	// always does.
	SplitAt int
}

// ConfigFromEnv reads SMTP_URL, SMTP_FROM and DEADLINE_THRESHOLDS. It does no I/O
// beyond reading the environment.
func ConfigFromEnv(env *ops.Env) (Config, error) {
	if env == nil {
		env = &ops.Env{}
	}
	cfg := Config{
		SMTPURL:  env.String(EnvSMTPURL, ""),
		SMTPFrom: env.String(EnvSMTPFrom, ""),
	}
	raw := env.String(EnvDeadlineThresholds, "")
	if raw == "" {
		return cfg, nil
	}
	days, err := ParseThresholds(raw)
	if err != nil {
		return cfg, fmt.Errorf("%s=%q %v (for example 7,3,1)", EnvDeadlineThresholds, raw, err)
	}
	cfg.DeadlineThresholds = days
	return cfg, nil
}

// ParseThresholds reads a comma-separated list of whole days such as "7,3,1".
func ParseThresholds(s string) ([]int, error) {
	var days []int
	for field := range strings.SplitSeq(s, ",") {
		field = strings.TrimSpace(field)
		n, err := strconv.Atoi(field)
		if err != nil {
			return nil, fmt.Errorf("is not a comma-separated list of days: %q is not a whole number", field)
		}
		days = append(days, n)
	}
	return days, validateThresholds(days)
}

func validateThresholds(days []int) error {
	if len(days) == 0 {
		return errors.New("lists no days")
	}
	seen := map[int]bool{}
	for _, d := range days {
		if d < 0 || d > maxThreshold {
			return fmt.Errorf("has %d: each threshold must be between 0 (due today) and %d days", d, maxThreshold)
		}
		if seen[d] {
			return fmt.Errorf("lists %d twice", d)
		}
		seen[d] = true
	}
	return nil
}

// Jobs builds the service's two jobs from the environment (through d.Env). It does
// no I/O: the SMTP server is first contacted when there is an e-mail to send.
func Jobs(d jobservice.Deps) (map[string]worker.Func, error) {
	cfg, cfgErr := ConfigFromEnv(d.Env)
	jobs, err := New(d, cfg)
	if err := joinProblems(cfgErr, err); err != nil {
		return nil, err
	}
	return jobs, nil
}

// joinProblems reports every configuration problem in one line, as ops.Env does.
func joinProblems(errs ...error) error {
	var msgs []string
	for _, err := range errs {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
}

// New builds the jobs from an explicit configuration (tests, launchers).
func New(d jobservice.Deps, cfg Config) (map[string]worker.Func, error) {
	s, err := newService(d, cfg)
	if err != nil {
		return nil, err
	}
	return map[string]worker.Func{
		catalog.SendHearingReminders:   s.sendHearingReminders,
		catalog.CheckUpcomingDeadlines: s.checkUpcomingDeadlines,
	}, nil
}

type service struct {
	pool       *pgxpool.Pool
	mailer     *notify.Mailer
	loc        *time.Location
	log        *slog.Logger
	thresholds []int // ascending
	splitAt    int
	// delivered counts notifications by job, channel (in_app, email) and outcome
	// (sent, failed, pending, no_recipient): gstjobs_notifications_total.
	delivered *prometheus.CounterVec
}

func newService(d jobservice.Deps, cfg Config) (*service, error) {
	var problems []error
	s := &service{pool: d.Pool, loc: d.Location, log: d.Log, splitAt: cfg.SplitAt, delivered: notificationsCounter(d.Registry)}
	if s.splitAt <= 0 {
		s.splitAt = 2
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.loc == nil {
		loc, err := catalog.LoadTimezone(catalog.DefaultTimezone)
		if err != nil {
			return nil, err
		}
		s.loc = loc
	}
	// The zone is handed to PostgreSQL by name, so it must be an IANA name.
	if name := s.loc.String(); name == "" || name == "Local" {
		problems = append(problems, fmt.Errorf("JOBS_TIMEZONE must name an IANA time zone such as %s, not %q", catalog.DefaultTimezone, name))
	}

	s.thresholds = slices.Clone(cfg.DeadlineThresholds)
	if s.thresholds == nil {
		s.thresholds = slices.Clone(DefaultDeadlineThresholds)
	}
	if err := validateThresholds(s.thresholds); err != nil {
		problems = append(problems, fmt.Errorf("%s %v (for example 7,3,1)", EnvDeadlineThresholds, err))
	}
	slices.Sort(s.thresholds)

	switch {
	case cfg.SMTPURL == "" && cfg.SMTPFrom != "":
		s.log.Warn("SMTP_FROM is set but SMTP_URL is not: e-mail is off, notifications are in-app only")
	case cfg.SMTPURL != "":
		m, err := notify.NewMailer(cfg.SMTPURL, cfg.SMTPFrom)
		switch {
		case errors.Is(err, notify.ErrInvalidSender) && cfg.SMTPFrom == "":
			problems = append(problems, fmt.Errorf("%s is not set: e-mail (SMTP_URL is set) needs a sender such as \"GST Jobs <noreply@firm.example>\"", EnvSMTPFrom))
		case errors.Is(err, notify.ErrInvalidSender):
			problems = append(problems, fmt.Errorf("%s: %w", EnvSMTPFrom, err))
		case err != nil:
			problems = append(problems, fmt.Errorf("%s: %w; unset it to send in-app notifications only", EnvSMTPURL, err))
		}
		s.mailer = m
	}
	if err := joinProblems(problems...); err != nil {
		return nil, err
	}
	return s, nil
}

// inTx runs fn in a transaction whose statements are planned as plan says (nil: left
// to the session). The statements name each firm's zone themselves (firm_zones,
// to_char_in): nothing depends on the session's time zone, so one statement serves
// firms in Kolkata, Dubai and New York alike.
func (s *service) inTx(ctx context.Context, plan func(context.Context, pgx.Tx) error, fn func(pgx.Tx) error) error {
	if s.pool == nil {
		return errors.New("no database pool")
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// A large run's batch (180,000 reminders) is read twice by Enqueue's statement,
		// for the notifications and for their audit rows: held in memory, not spilled
		// to temporary files and read back.
		if _, err := tx.Exec(ctx, "SET LOCAL work_mem = '64MB'"); err != nil {
			return err
		}
		if plan != nil {
			if err := plan(ctx, tx); err != nil {
				return err
			}
		}
		return fn(tx)
	})
}

// zoneDaysSQL is a CTE, zone_days: for each zone of the covered firms (the statement's
// firms CTE) and each UTC day from @now's to the instant until (an SQL expression), the
// zone's abbreviation at the day's first and last microsecond (to_char_in, which sets
// the session's zone: about 3.6 µs a call, the dearest part of writing a time). A
// zone's abbreviation changes at most once a day, so where both ends agree it is the
// whole day's, and a reminder or alert looks it up (abbrevSQL) instead of calling
// to_char_in itself: a few hundred calls a run instead of one per hearing or task
// (100,000 in the hearing reminders' benchmark). On a day when it changes, each instant
// asks to_char_in for its own (TestAbbreviationsAcrossTheChangeToDaylightSavingTime).
func zoneDaysSQL(until string) string {
	return `zone_days AS MATERIALIZED (
    SELECT z.zone, d.day, to_char_in(d.day, z.zone, 'TZ') AS first,
           to_char_in(d.day + interval '1 day' - interval '1 microsecond', z.zone, 'TZ') AS last
    FROM (SELECT DISTINCT f.zone FROM firms f) z
    CROSS JOIN generate_series(date_trunc('day', @now::timestamptz, 'UTC'), ` + until + `, interval '1 day') AS d(day)
)`
}

// zoneDayJoin joins the zone_days row of the instant ts in zone (SQL expressions), as zd.
func zoneDayJoin(ts, zone string) string {
	return `LEFT JOIN zone_days zd ON zd.zone = ` + zone + ` AND zd.day = date_trunc('day', ` + ts + `, 'UTC')`
}

// abbrevSQL is the abbreviation of the instant ts in zone, as to_char_in(ts, zone, 'TZ')
// writes it, from the zone_days row zoneDayJoin joined.
func abbrevSQL(ts, zone string) string {
	return `CASE WHEN zd.first = zd.last THEN zd.first ELSE to_char_in(` + ts + `, ` + zone + `, 'TZ') END`
}

// How each job's statements are planned. The hearing reminders' statements read the
// hearings of the next 24 hours by date whatever the firms, so a run for named firms
// (a slot's) keeps one plan per connection (hearingPlans), and a run for every firm is
// planned for its own arguments (hearingsEachRun: tenancy.EachRun). The deadline
// alerts' are planned for the run's own arguments always (deadlinesEachRun): their
// generic plan reads every firm's deadlines to alert twenty, and for every firm it is
// costed for five firms of 1,000, which took 90 s instead of 3.6 s on 1M tasks.
func hearingPlans(scope events.Scope) func(context.Context, pgx.Tx) error {
	return func(ctx context.Context, tx pgx.Tx) error { return tenancy.ReusePlansForNamed(ctx, tx, scope) }
}

func hearingsEachRun(scope events.Scope) bool { return scope.All }

const deadlinesEachRun = true

// perFirmCounts ends a counts query whose per_firm CTE has tenant_id, found, missing
// and missing_list: one row per covered firm of the slice (@part of @parts), zeros for
// a firm with nothing due.
var perFirmCounts = `
SELECT coalesce(jsonb_agg(jsonb_build_object(
           'tenant_id', t.id, 'found', coalesce(p.found, 0), 'missing', coalesce(p.missing, 0),
           'missing_list', coalesce(to_jsonb(p.missing_list), '[]'::jsonb)) ORDER BY t.id), '[]')
FROM tenants t
LEFT JOIN per_firm p ON p.tenant_id = t.id
WHERE ` + tenancy.Filter("t.id") + `
  AND ` + inPart("t.id")

// firmCount is one firm's line of a counts query.
type firmCount struct {
	TenantID    string   `json:"tenant_id"`
	Found       int      `json:"found"`
	Missing     int      `json:"missing"`
	MissingList []string `json:"missing_list"` // what has no one to notify, with the reason
}

// outcome is what one run of either job did, in the words of its result keys.
type outcome struct {
	firms    []firmCount
	enq      notify.Enqueued
	email    notify.SendReport
	emailErr error
}

// tally is the counters of the whole run or of one firm.
type tally struct {
	found, missing, inApp          int
	emailSent, emailFail, emailPen int
	missingList                    []string
	problems                       []notify.Problem
}

func (t tally) sent() int   { return t.inApp + t.emailSent }
func (t tally) failed() int { return t.missing + t.emailFail + t.emailPen }

func (s *service) results(t tally, foundKey, sentKey, failedKey string) map[string]any {
	return map[string]any{
		foundKey:         t.found,
		sentKey:          t.sent(),
		failedKey:        t.failed(),
		"in_app_sent":    t.inApp,
		"emails_sent":    t.emailSent,
		"emails_failed":  t.emailFail,
		"emails_pending": t.emailPen,
		"email_enabled":  s.mailer != nil,
	}
}

// errorsOf lists a tally's problems, capped at maxErrors.
func (s *service) errorsOf(t tally, emailErr error) []string {
	errs := slices.Clone(t.missingList)
	if extra := t.missing - len(t.missingList); extra > 0 {
		errs = append(errs, fmt.Sprintf("… and %d more with no one to notify", extra))
	}
	for _, p := range t.problems {
		errs = append(errs, p.String())
	}
	if emailErr != nil {
		errs = append(errs, fmt.Sprintf("e-mail: %v; %d e-mails will be retried by the next run", emailErr, t.emailPen))
	}
	if len(errs) > maxErrors {
		errs = append(errs[:maxErrors-1], fmt.Sprintf("… and %d more problems", len(errs)-maxErrors+1))
	}
	return errs
}

// notificationsCounter is gstjobs_notifications_total, registered once per registry.
func notificationsCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gstjobs_notifications_total",
		Help: "Notifications by job, channel (in_app, email) and outcome (sent, failed, pending, no_recipient).",
	}, []string{"job", "channel", "outcome"})
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			return already.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	return c
}

func (s *service) count(job string, t tally) {
	for _, c := range []struct {
		channel, outcome string
		n                int
	}{
		{notify.ChannelInApp, "sent", t.inApp}, {notify.ChannelInApp, "no_recipient", t.missing},
		{notify.ChannelEmail, "sent", t.emailSent}, {notify.ChannelEmail, "failed", t.emailFail}, {notify.ChannelEmail, "pending", t.emailPen},
	} {
		if c.n > 0 {
			s.delivered.WithLabelValues(job, c.channel, c.outcome).Add(float64(c.n))
		}
	}
}

// report turns an outcome into the run's report, its totals and each firm's slice,
// and, when e-mail could not be delivered at all, the error that marks the run failed.
func (s *service) report(job string, o outcome, foundKey, sentKey, failedKey, what string) (worker.Report, error) {
	var total tally
	byFirm := make(map[string]*tally, len(o.firms))
	for _, f := range o.firms {
		byFirm[f.TenantID] = &tally{found: f.Found, missing: f.Missing, missingList: f.MissingList, inApp: o.enq.InAppByTenant[f.TenantID]}
		total.found += f.Found
		total.missing += f.Missing
		total.missingList = append(total.missingList, f.MissingList...)
	}
	total.missingList = total.missingList[:min(len(total.missingList), maxErrors)]
	total.inApp = o.enq.InApp
	total.emailSent, total.emailFail, total.emailPen = o.email.Sent, o.email.Failed, o.email.Pending
	total.problems = o.email.Problems
	for id, c := range o.email.Tenants {
		if t := byFirm[id]; t != nil {
			t.emailSent, t.emailFail, t.emailPen = c.Sent, c.Failed, c.Pending
		}
	}
	for _, p := range o.email.Problems {
		if t := byFirm[p.TenantID]; t != nil {
			t.problems = append(t.problems, p)
		}
	}
	s.count(job, total)
	rep := worker.Report{Results: s.results(total, foundKey, sentKey, failedKey), Errors: s.errorsOf(total, o.emailErr)}
	for _, f := range o.firms {
		t := byFirm[f.TenantID]
		var firmErr error
		if o.emailErr != nil && t.emailPen > 0 {
			firmErr = o.emailErr
		}
		rep.Tenants = append(rep.Tenants, events.TenantSlice{
			TenantID: f.TenantID, Results: s.results(*t, foundKey, sentKey, failedKey), Errors: s.errorsOf(*t, firmErr),
		})
	}

	switch {
	case o.emailErr == nil:
		return rep, nil
	case errors.Is(o.emailErr, notify.ErrServerUnavailable), errors.Is(o.emailErr, notify.ErrSenderRefused):
		// The e-mail channel is down for everyone: the run is failed so that the
		// dashboard shows it, though the in-app notifications went out. The words name
		// no count: each firm reads its own in its slice.
		// Temporary: the run is retried (after 1, 5 and 15 minutes), and sends only
		// what is still pending.
		return rep, worker.FailTemporary(fmt.Sprintf("E-mail could not be sent: in-app %s were delivered, e-mails are left for the next run", what), o.emailErr)
	default:
		return rep, worker.Fail("Could not record e-mail deliveries", o.emailErr)
	}
}

// sendEmail sends the job's queued e-mails (nothing when e-mail is off).
func (s *service) sendEmail(ctx context.Context, run worker.Run, source string) (notify.SendReport, error) {
	lease := run.Job.Timeout + time.Minute
	if run.Job.Timeout <= 0 {
		lease = notify.DefaultLease
	}
	return notify.SendPending(ctx, s.pool, s.mailer, notify.SendOptions{
		Source: source, RunID: run.ID, Now: run.Now, Lease: lease,
	})
}

// sendDelivered sends, after a slice of a run failed (enqueueParts), the e-mails the
// slices that were delivered queued for the run: their in-app notifications stand, and
// the run's failure is retried only when it is temporary (the database went away), so
// a slice refused for good would otherwise leave its firms' e-mails unsent until the
// next day's run, or for ever once the hearing is past. Nothing is sent twice: a retry
// sends only what is still unsent. What goes wrong here is logged; the run's failure
// is the slice's.
func (s *service) sendDelivered(ctx context.Context, run worker.Run, source string) {
	if s.mailer == nil {
		return
	}
	rep, err := s.sendEmail(ctx, run, source)
	log := s.log.With("run_id", run.ID, "job_name", source)
	if err != nil {
		log.Warn("a slice failed; the e-mails of the delivered slices could not be sent", "error", err, "sent", rep.Sent, "pending", rep.Pending)
		return
	}
	log.Info("a slice failed; the e-mails of the delivered slices were sent", "sent", rep.Sent, "failed", rep.Failed)
}
