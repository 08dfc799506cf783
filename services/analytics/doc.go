// Package analytics captures each firm's daily metrics into analytics_snapshots: the
// capture-analytics-snapshot job, run daily at 00:30 in JOBS_TIMEZONE.
//
// # Dating
//
// A run's snapshot_date is the calendar date of run.Now in the jobs' time zone
// (JOBS_TIMEZONE, default Asia/Kolkata). The 00:30 IST run of 10 March 2026 happens at
// 19:00 UTC on 9 March and is dated 2026-03-10. "Today" is [midnight, next midnight) of
// that date in the zone, and "the previous day" is the calendar day before it, both
// converted to instants: for the run above, [2026-03-08 18:30 UTC, 2026-03-09 18:30 UTC).
// Days next to a DST change keep their wall-clock length (23 or 25 hours). Every firm
// is dated by JOBS_TIMEZONE, not by its tenants.timezone: one run captures all firms.
//
// # Metrics
//
// One row per tenant, date and metric. Every tenant gets every metric; a tenant with no
// data gets zeros. State metrics are the tables as they are when the job runs (the
// schema keeps no history, so a snapshot can only be taken, never recomputed later).
//
//   - active_cases: cases with status 'active'.
//   - open_tasks: tasks with status 'open' or 'in_progress'.
//   - overdue_tasks: open tasks (as above) whose due_date is before run.Now.
//   - tasks_completed_previous_day: tasks with status 'completed' whose completed_at
//     falls in the previous day. Cancelled tasks are not completed.
//   - sla_compliance_percent: of the tasks counted in tasks_completed_previous_day, the
//     percentage completed within their SLA, rounded to two decimals (0 to 100). A task's
//     SLA ends resolution_hours after its created_at, resolution_hours being the firm's
//     sla_policies row for the task's priority, else the default row (tenant_id NULL);
//     completing exactly at the end is within it, and a priority with no policy at all
//     has no SLA to breach. When no task was completed the previous day the value is 0:
//     read it together with tasks_completed_previous_day, which is then 0 too.
//   - hearings_next_7_days: hearings with status 'scheduled' whose hearing_date falls in
//     the seven calendar days starting with snapshot_date, [today's midnight, midnight
//     seven days later); so a re-run later the same day counts the same days.
//   - notifications_failed_previous_day: notifications whose delivery on a channel
//     other than in-app (notification_deliveries, today e-mail) has status 'failed'
//     when the job runs, was created before today's midnight, and was last attempted
//     (updated_at) at or after the previous day's midnight. Senders retry failed
//     deliveries while they are relevant, and each attempt moves updated_at, so a
//     delivery failing since last week and retried at 00:15 today counts; one given up
//     before the previous day, one delivered by a retry, and one merely pending (a
//     temporary failure, such as the SMTP server being down, to be retried) do not.
//     A notification counts once however many of its channels failed.
//
// # Running
//
// The whole snapshot is one INSERT … SELECT over all tenants (capture.sql): per-tenant
// aggregates, each read through an index, LEFT JOINed to tenants CROSS JOIN the metric
// list, upserted ON CONFLICT (tenant_id, snapshot_date, metric_type). A re-run on the
// same day replaces that day's values (and created_at) without adding rows; the next
// day's run adds a new set. The run reports tenants_processed, snapshots_written and
// snapshot_date.
//
// With seven metrics a day, the user guide's verification query (ORDER BY
// snapshot_date DESC LIMIT 7 for one tenant) shows exactly the latest day's snapshot.
package analytics
