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
	s, err := capture(ctx, pool, windowAt(now, loc), scope)
	if err != nil {
		return worker.Report{}, worker.Fail("Analytics snapshot not captured", err)
	}
	rep := worker.Report{Results: map[string]any{
		"tenants_processed": s.Tenants,
		"snapshots_written": s.Snapshots,
		"snapshot_date":     s.Date,
	}}
	for i, id := range s.firms {
		rep.Tenants = append(rep.Tenants, events.TenantSlice{TenantID: id, Results: map[string]any{
			"tenants_processed": int64(1), "snapshots_written": s.firmSnapshots[i], "snapshot_date": s.Date,
		}})
	}
	return rep, nil
}

// window is the calendar a snapshot is taken against: all bounds are instants, the
// calendar days are those of the jobs' time zone.
type window struct {
	Date      string    // YYYY-MM-DD, the day of Now in the zone: the snapshot_date
	Now       time.Time // the run's now
	DayStart  time.Time // midnight starting Date
	PrevStart time.Time // midnight starting the day before Date
	WeekEnd   time.Time // midnight seven days after DayStart
}

func windowAt(now time.Time, loc *time.Location) window {
	y, m, d := now.In(loc).Date()
	// time.Date normalises day overflow and resolves each midnight in the zone on its
	// own, so a day next to a DST change is 23 or 25 hours long, as on the wall clock.
	return window{
		Date:      fmt.Sprintf("%04d-%02d-%02d", y, int(m), d),
		Now:       now,
		DayStart:  time.Date(y, m, d, 0, 0, 0, 0, loc),
		PrevStart: time.Date(y, m, d-1, 0, 0, 0, 0, loc),
		WeekEnd:   time.Date(y, m, d+7, 0, 0, 0, 0, loc),
	}
}

// summary is what one capture wrote, in all and per firm (every covered firm gets
// every metric, so every covered firm is listed).
type summary struct {
	Date          string
	Tenants       int64
	Snapshots     int64
	firms         []string
	firmSnapshots []int64
}

// captureSQL computes every metric for every tenant and upserts them in one statement.
//
//go:embed capture.sql
var captureFile string

var captureSQL = tenancy.Expand(captureFile)

func capture(ctx context.Context, pool *pgxpool.Pool, w window, scope events.Scope) (summary, error) {
	s := summary{Date: w.Date}
	err := pool.QueryRow(ctx, captureSQL, tenancy.With(pgx.NamedArgs{
		"snapshot_date":  w.Date,
		"now":            w.Now,
		"day_start":      w.DayStart,
		"prev_day_start": w.PrevStart,
		"week_end":       w.WeekEnd,
	}, scope)).Scan(&s.firms, &s.firmSnapshots)
	if err != nil {
		return summary{}, fmt.Errorf("analytics: capture snapshot for %s: %w", w.Date, err)
	}
	s.Tenants = int64(len(s.firms))
	for _, n := range s.firmSnapshots {
		s.Snapshots += n
	}
	return s, nil
}
