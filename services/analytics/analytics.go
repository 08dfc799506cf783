package analytics

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/internal/tenancy"
	"github.com/lexhq/gstjobs/internal/worker"
)

// The metric_type values written for every tenant and day; doc.go defines each.
const (
	MetricActiveCases                    = "active_cases"
	MetricOpenTasks                      = "open_tasks"
	MetricOverdueTasks                   = "overdue_tasks"
	MetricSLACompliancePercent           = "sla_compliance_percent"
	MetricHearingsNext7Days              = "hearings_next_7_days"
	MetricTasksCompletedPreviousDay      = "tasks_completed_previous_day"
	MetricNotificationsFailedPreviousDay = "notifications_failed_previous_day"
)

var metricTypes = []string{
	MetricActiveCases,
	MetricOpenTasks,
	MetricOverdueTasks,
	MetricSLACompliancePercent,
	MetricHearingsNext7Days,
	MetricTasksCompletedPreviousDay,
	MetricNotificationsFailedPreviousDay,
}

// MetricTypes lists the metrics a snapshot holds for each tenant.
func MetricTypes() []string { return slices.Clone(metricTypes) }

// ErrNoDatabase is returned by a run whose Deps had no pool.
var ErrNoDatabase = errors.New("analytics: no database pool")

// Jobs returns the job this service runs. It does no I/O: jobservice.Main calls it once
// before connecting, to validate the configuration.
func Jobs(d jobservice.Deps) (map[string]worker.Func, error) {
	if d.Location == nil {
		return nil, errors.New("analytics: Deps.Location is nil: set it from JOBS_TIMEZONE with catalog.LoadTimezone")
	}
	// A firm whose own zone is unknown is dated in JOBS_TIMEZONE, which is handed to
	// PostgreSQL by name.
	if name := d.Location.String(); name == "" || name == "Local" {
		return nil, fmt.Errorf("analytics: JOBS_TIMEZONE must name an IANA time zone such as %s, not %q", catalog.DefaultTimezone, name)
	}
	return map[string]worker.Func{
		catalog.CaptureAnalyticsSnapshot: func(ctx context.Context, run worker.Run) (worker.Report, error) {
			return captureJob(ctx, d.Pool, d.Location, run.Now, run.Scope)
		},
	}, nil
}

func captureJob(ctx context.Context, pool *pgxpool.Pool, loc *time.Location, now time.Time, scope events.Scope) (worker.Report, error) {
	if pool == nil {
		return worker.Report{}, worker.Fail("Analytics snapshot not captured", ErrNoDatabase)
	}
	s, err := capture(ctx, pool, now, loc, scope)
	if err != nil {
		return worker.Report{}, worker.Fail("Analytics snapshot not captured", err)
	}
	rep := worker.Report{Results: map[string]any{
		"tenants_processed": s.Tenants,
		"snapshots_written": s.Snapshots,
		"snapshot_date":     s.date(),
	}}
	for i, id := range s.firms {
		rep.Tenants = append(rep.Tenants, events.TenantSlice{TenantID: id, Results: map[string]any{
			"tenants_processed": int64(1), "snapshots_written": s.firmSnapshots[i], "snapshot_date": s.firmDates[i],
		}})
	}
	return rep, nil
}

// summary is what one capture wrote, in all and per firm (every covered firm gets
// every metric, so every covered firm is listed, with its own snapshot date: the day
// of the run's now in the firm's time zone).
type summary struct {
	Tenants       int64
	Snapshots     int64
	firms         []string
	firmSnapshots []int64
	firmDates     []string
}

// date is the run's snapshot date: the covered firms' date when they share one (a
// slot's firms share a zone), else the first and the last ("2026-03-09 to 2026-03-10":
// a run for every firm at an hour when it is not the same day everywhere).
func (s summary) date() string {
	if len(s.firmDates) == 0 {
		return ""
	}
	first, last := slices.Min(s.firmDates), slices.Max(s.firmDates)
	if first == last {
		return first
	}
	return first + " to " + last
}

// captureSQL computes every metric for every tenant and upserts them in one statement.
//
//go:embed capture.sql
var captureFile string

var captureSQL = tenancy.NewStatement(tenancy.Expand(captureFile))

func capture(ctx context.Context, pool *pgxpool.Pool, now time.Time, loc *time.Location, scope events.Scope) (summary, error) {
	var s summary
	// One round trip for the transaction of the one statement: a run for named firms
	// (a slot's twenty, a firm's Run Now) keeps one plan per connection of the
	// statement's form for named firms, which reads them by index.
	var b pgx.Batch
	tenancy.QueueInOneTransaction(&b, scope, captureSQL.For(scope), tenancy.With(pgx.NamedArgs{
		"now":           now,
		"fallback_zone": loc.String(),
	}, scope), func(row pgx.Row) error { return row.Scan(&s.firms, &s.firmSnapshots, &s.firmDates) })
	err := pool.SendBatch(ctx, &b).Close()
	if err != nil {
		return summary{}, fmt.Errorf("analytics: capture snapshot at %s: %w", now.UTC().Format(time.RFC3339), err)
	}
	s.Tenants = int64(len(s.firms))
	for _, n := range s.firmSnapshots {
		s.Snapshots += n
	}
	return s, nil
}
