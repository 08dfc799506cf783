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

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/internal/notify"
	"github.com/lexhq/gstjobs/internal/ops"
	"github.com/lexhq/gstjobs/internal/worker"
)

// Environment variables the service reads, beyond those every job service reads.
const (
	EnvSMTPURL            = "SMTP_URL"
	EnvSMTPFrom           = "SMTP_FROM"
	EnvDeadlineThresholds = "DEADLINE_THRESHOLDS"
)

// ReminderWindow is how far ahead hearing reminders look: hearings starting between
// the run's now and now + ReminderWindow, both ends included.
const ReminderWindow = 24 * time.Hour

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
	// SplitAt is the number of hearings from which a run delivers its reminders in
	// firm-disjoint slices at once; 0: 5000.
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
}

func newService(d jobservice.Deps, cfg Config) (*service, error) {
	var problems []error
	s := &service{pool: d.Pool, loc: d.Location, log: d.Log, splitAt: cfg.SplitAt}
	if s.splitAt <= 0 {
		s.splitAt = 5000
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

// inTx runs fn in a transaction whose session time zone is the firms' zone, so that
// SQL's "date of a timestamptz", "midnight of a date" and the zone shown in
// notification text (to_char ... TZ) are those of the firm, not of the server.
func (s *service) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	if s.pool == nil {
		return errors.New("no database pool")
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('TimeZone', $1, true)`, s.loc.String()); err != nil {
			return fmt.Errorf("set time zone %s: %w", s.loc, err)
		}
		return fn(tx)
	})
}

// outcome is what one run of either job did, in the words of its result keys.
type outcome struct {
	found, missing int
	missingList    []string // what has no one to notify, with the reason
	enq            notify.Enqueued
	email          notify.SendReport
	emailErr       error
}

func (o outcome) sent() int   { return o.enq.InApp + o.email.Sent }
func (o outcome) failed() int { return o.missing + o.email.Failed + o.email.Pending }

// report turns an outcome into the run's report and, when e-mail could not be
// delivered at all, the error that marks the run failed.
func (s *service) report(o outcome, foundKey, sentKey, failedKey, what string) (worker.Report, error) {
	rep := worker.Report{Results: map[string]any{
		foundKey:         o.found,
		sentKey:          o.sent(),
		failedKey:        o.failed(),
		"in_app_sent":    o.enq.InApp,
		"emails_sent":    o.email.Sent,
		"emails_failed":  o.email.Failed,
		"emails_pending": o.email.Pending,
		"email_enabled":  s.mailer != nil,
	}}
	errs := slices.Clone(o.missingList)
	if extra := o.missing - len(o.missingList); extra > 0 {
		errs = append(errs, fmt.Sprintf("… and %d more with no one to notify", extra))
	}
	for _, p := range o.email.Problems {
		errs = append(errs, p.String())
	}
	if o.emailErr != nil {
		errs = append(errs, fmt.Sprintf("e-mail: %v; %d e-mails will be retried by the next run", o.emailErr, o.email.Pending))
	}
	if len(errs) > maxErrors {
		errs = append(errs[:maxErrors-1], fmt.Sprintf("… and %d more problems", len(errs)-maxErrors+1))
	}
	rep.Errors = errs

	switch {
	case o.emailErr == nil:
		return rep, nil
	case errors.Is(o.emailErr, notify.ErrServerUnavailable), errors.Is(o.emailErr, notify.ErrSenderRefused):
		// The e-mail channel is down for everyone: the run is failed so that the
		// dashboard shows it, though the in-app notifications went out.
		return rep, worker.Fail(fmt.Sprintf("E-mail could not be sent: %d in-app %s delivered, %d e-mails left for the next run",
			o.enq.InApp, what, o.email.Pending), o.emailErr)
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
