package sla

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/internal/tenancy"
	"github.com/lexhq/gstjobs/internal/worker"
)

// Settings read from the environment, with their defaults.
const (
	envMinFailures    = "AUTOMATION_HEALTH_MIN_FAILURES"
	envFailurePercent = "AUTOMATION_HEALTH_FAILURE_PERCENT"
	envMaxFires       = "SLA_MAX_FIRES_PER_RUN"

	defaultMinFailures    = 3
	defaultFailurePercent = 50
	defaultMaxFires       = 20_000
)

// healthWindow is how far back the health check looks at automation_logs.
const healthWindow = 24 * time.Hour

// maxErrors caps Report.Errors: a thousand firms with the same bad data make one
// readable log entry, not a thousand lines.
const maxErrors = 50

// config is what the jobs need beyond their dependencies.
type config struct {
	// A rule is failing when, within healthWindow, it failed at least minFailures
	// times and at least failurePercent of its executions failed.
	minFailures    int
	failurePercent int
	// maxFires bounds the rule fires of one SLA check run. A first run over years of
	// overdue tasks could otherwise take longer than the job's timeout, roll back, and
	// do so again on every run; bounded, the backlog drains over a few runs, oldest
	// breaches first.
	maxFires int
	// splitAt is the fires from which a pass acts in two firm-disjoint halves at once
	// (defaultSplitAt; 0: never).
	splitAt int
	// zone is where times in notification texts are shown when a firm's own time zone
	// is unusable (JOBS_TIMEZONE).
	zone string
}

func defaultConfig() config {
	return config{
		minFailures: defaultMinFailures, failurePercent: defaultFailurePercent,
		maxFires: defaultMaxFires, splitAt: defaultSplitAt, zone: catalog.DefaultTimezone,
	}
}

// Jobs builds the two jobs the sla service runs. It does no I/O: it reads and checks
// the service's settings, and the jobs use d.Pool when they run.
func Jobs(d jobservice.Deps) (map[string]worker.Func, error) {
	cfg := defaultConfig()
	if d.Location != nil && d.Location.String() != "Local" && d.Location.String() != "" {
		cfg.zone = d.Location.String()
	}
	if d.Env != nil {
		cfg.minFailures = d.Env.Int(envMinFailures, cfg.minFailures)
		cfg.failurePercent = d.Env.Int(envFailurePercent, cfg.failurePercent)
		cfg.maxFires = d.Env.Int(envMaxFires, cfg.maxFires)
	}
	var errs []error
	if cfg.minFailures < 1 {
		errs = append(errs, fmt.Errorf("%s=%d must be at least 1 (failures in 24 h before a rule counts as failing)", envMinFailures, cfg.minFailures))
	}
	if cfg.failurePercent < 1 || cfg.failurePercent > 100 {
		errs = append(errs, fmt.Errorf("%s=%d must be between 1 and 100 (percent of a rule's executions that failed)", envFailurePercent, cfg.failurePercent))
	}
	if cfg.maxFires < 1 {
		errs = append(errs, fmt.Errorf("%s=%d must be at least 1 (rule fires per SLA check run; default %d)", envMaxFires, cfg.maxFires, defaultMaxFires))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("sla: %w", err)
	}
	return newJobs(d, cfg), nil
}

func newJobs(d jobservice.Deps, cfg config) map[string]worker.Func {
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &service{deps: d, cfg: cfg, log: log}
	return map[string]worker.Func{
		catalog.CheckSLAAndOverdue:    s.checkSLAAndOverdue,
		catalog.AutomationHealthCheck: s.automationHealthCheck,
	}
}

type service struct {
	deps jobservice.Deps
	cfg  config
	log  *slog.Logger
}

// begin validates what every run needs and returns the pool and the run's id.
func (s *service) begin(run worker.Run) (*pgxpool.Pool, uuid.UUID, error) {
	if s.deps.Pool == nil {
		return nil, uuid.Nil, worker.Fail("Job is not connected to the database", errors.New("sla: Deps.Pool is nil"))
	}
	id, err := uuid.Parse(run.ID)
	if err != nil {
		return nil, uuid.Nil, worker.Fail("Run has no valid id", fmt.Errorf("sla: run id %q: %w", run.ID, err))
	}
	if run.Now.IsZero() {
		return nil, uuid.Nil, worker.Fail("Run has no start time", errors.New("sla: run.Now is zero"))
	}
	return s.deps.Pool, id, nil
}

// errorList collects the problems a run reports without failing, capped at maxErrors.
type errorList struct {
	items   []string
	omitted int
}

// firms collects each covered firm's slice of a run, in the order the firms were
// first seen, with the same results keys as the run's totals.
type firms struct {
	order  []string
	byID   map[string]*firmSlice
	zeroes map[string]any
}

type firmSlice struct {
	results map[string]any
	errors  errorList
}

// newFirms starts a slice for every covered firm, each holding zeros for keys.
func newFirms(ids []string, zeroes map[string]any) *firms {
	f := &firms{byID: make(map[string]*firmSlice, len(ids)), zeroes: zeroes}
	for _, id := range ids {
		f.get(id)
	}
	return f
}

func (f *firms) get(id string) *firmSlice {
	if x, ok := f.byID[id]; ok {
		return x
	}
	x := &firmSlice{results: maps.Clone(f.zeroes)}
	if x.results == nil {
		x.results = map[string]any{}
	}
	f.byID[id] = x
	f.order = append(f.order, id)
	return x
}

// add adds n to a counter of one firm.
func (f *firms) add(id, key string, n int64) {
	r := f.get(id).results
	v, _ := r[key].(int64)
	r[key] = v + n
}

// problem records a problem in one firm's slice.
func (f *firms) problem(id, format string, args ...any) {
	f.get(id).errors.add(format, args...)
}

// slices is every firm's slice, in order.
func (f *firms) slices() []events.TenantSlice {
	out := make([]events.TenantSlice, 0, len(f.order))
	for _, id := range f.order {
		x := f.byID[id]
		out = append(out, events.TenantSlice{TenantID: id, Results: x.results, Errors: x.errors.list()})
	}
	return out
}

func (l *errorList) add(format string, args ...any) {
	if len(l.items) >= maxErrors {
		l.omitted++
		return
	}
	l.items = append(l.items, fmt.Sprintf(format, args...))
}

func (l *errorList) list() []string {
	if l.omitted > 0 {
		return append(l.items, fmt.Sprintf("… and %d more problems of the same kinds", l.omitted))
	}
	return l.items
}

// breachesCTE is the one definition of what the SLA check acts on and the health check
// expects it to have acted on: every open task past its due date (kind 'overdue',
// trigger_event 'task_overdue') and every open task past created_at plus the
// resolution hours of its priority's SLA policy, the firm's own row or else the
// default row (kind 'sla', trigger_event 'sla_violation'). Exactly at the deadline is
// not yet a breach. A task whose priority has no policy at all has no SLA deadline;
// noPolicySQL reports it.
//
// occurrence identifies the breach in automation_logs: the kind and the deadline in
// UTC with microseconds, so occurrences of one kind sort by deadline as text (in the
// "C" collation: a linguistic one ignores the punctuation).
//
// The scan reads the partial index tasks_open_sla alone (migration 00012).
//
// Only the firms the run covers are read (tenancy.Filter on both branches).
var breachesCTE = `
breaches AS MATERIALIZED (
    SELECT task_id, tenant_id, trigger_event, kind, deadline,
           kind || ':' || to_char(deadline AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS occurrence
    FROM (
        SELECT t.id AS task_id, t.tenant_id, 'task_overdue' AS trigger_event, 'overdue' AS kind, t.due_date AS deadline
        FROM tasks t
        WHERE t.status IN ('open', 'in_progress') AND t.due_date < @now::timestamptz
          AND ` + tenantsCovered + `
        UNION ALL
        SELECT t.id, t.tenant_id, 'sla_violation', 'sla',
               t.created_at + coalesce(tp.resolution_hours, dp.resolution_hours) * interval '1 hour'
        FROM tasks t
        LEFT JOIN sla_policies tp ON tp.tenant_id = t.tenant_id AND tp.priority = t.priority
        LEFT JOIN sla_policies dp ON dp.tenant_id IS NULL AND dp.priority = t.priority
        WHERE t.status IN ('open', 'in_progress')
          AND t.created_at + coalesce(tp.resolution_hours, dp.resolution_hours) * interval '1 hour' < @now::timestamptz
          AND ` + tenantsCovered + `
    ) b
)`

// tenantsCovered keeps the tasks of the firms the run covers.
var tenantsCovered = tenancy.Filter("t.tenant_id")

// alreadyFired is true when rule r already has an automation_logs row for task b whose
// occurrence is of the same kind and not earlier than b's deadline. A breach therefore
// fires again only when its deadline moved later (the task was rescheduled, or its
// priority lowered) and was missed again; a deadline that moved earlier (a priority
// escalated by a rule, a due date corrected backwards) is the same breach.
const alreadyFired = `EXISTS (
    SELECT 1 FROM automation_logs l
    WHERE l.rule_id = r.id AND l.entity_id = b.task_id
      AND l.occurrence COLLATE "C" >= b.occurrence
      AND l.occurrence COLLATE "C" < b.kind || ';')`

// jobName is the name the run is recorded under.
func jobName(run worker.Run, def string) string {
	if run.Job.Name != "" {
		return run.Job.Name
	}
	return def
}

// runLog names the run on each line a job logs about it, with the keys the worker uses.
func (s *service) runLog(run worker.Run, def string) *slog.Logger {
	return s.log.With("run_id", run.ID, "job_name", jobName(run, def))
}
