package reminders

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/notify"
	"github.com/lexhq/gstjobs/internal/tenancy"
	"github.com/lexhq/gstjobs/internal/worker"
)

// KindDeadlineAlert is notifications.kind of a deadline alert.
const KindDeadlineAlert = "deadline_alert"

// deadlinesSQL is every deadline within the widest threshold, in every covered firm,
// each with the tightest threshold it is within. Days are counted on each firm's own
// calendar (firm_zones: its own zone, else JOBS_TIMEZONE, @fallback_zone), in the same
// statement for every firm: "today" is today where the firm is, a task's due date is
// its calendar date there, and a statutory date ends at midnight there.
//
//	item             what is due                  who is alerted
//	task             an open task's due_date      its assignee
//	reply_due_date   reply to a show-cause notice the case owner (active cases)
//	appeal_deadline  last day to appeal           the case owner (active cases)
//
// A task whose due time has passed is overdue (the SLA job's business), not upcoming;
// a statutory date is upcoming until its day is over. Beside each firm's own bounds,
// each branch has bounds that hold for every zone (no firm's today is more than a day
// from UTC's), which the indexes on the dates use.
var deadlinesSQL = `
firms AS MATERIALIZED (
    SELECT fz.tenant_id, fz.zone, (@now::timestamptz AT TIME ZONE fz.zone)::date AS today
    FROM firm_zones(@fallback_zone::text) fz
    WHERE ` + tenancy.Filter("fz.tenant_id") + `
      AND ` + inPart("fz.tenant_id") + `
),
items AS (
    SELECT t.tenant_id, 'task'::text AS item, t.id AS item_id, 'task'::text AS entity_type,
           t.assigned_to AS user_id, (t.due_date AT TIME ZONE f.zone)::date AS due_on, t.due_date AS not_after,
           t.title AS task_title, c.id AS case_id, c.case_number, c.title AS case_title, f.zone, f.today
    FROM tasks t
    JOIN firms f ON f.tenant_id = t.tenant_id
    LEFT JOIN cases c ON c.id = t.case_id AND c.tenant_id = t.tenant_id
    WHERE t.status IN ('open', 'in_progress')
      AND t.due_date >= @now::timestamptz
      AND t.due_date < @now::timestamptz + make_interval(days => @max_days::int + 2)
      AND t.due_date < ((f.today + @max_days::int + 1)::timestamp AT TIME ZONE f.zone)
  UNION ALL
    SELECT c.tenant_id, 'reply_due_date', c.id, 'case', c.owner_id, c.reply_due_date,
           ((c.reply_due_date + 1)::timestamp AT TIME ZONE f.zone), NULL, c.id, c.case_number, c.title, f.zone, f.today
    FROM cases c
    JOIN firms f ON f.tenant_id = c.tenant_id
    WHERE c.status = 'active' AND c.reply_due_date IS NOT NULL
      AND c.reply_due_date BETWEEN (@now::timestamptz AT TIME ZONE 'UTC')::date - 1 AND (@now::timestamptz AT TIME ZONE 'UTC')::date + 1 + @max_days::int
      AND c.reply_due_date BETWEEN f.today AND f.today + @max_days::int
  UNION ALL
    SELECT c.tenant_id, 'appeal_deadline', c.id, 'case', c.owner_id, c.appeal_deadline,
           ((c.appeal_deadline + 1)::timestamp AT TIME ZONE f.zone), NULL, c.id, c.case_number, c.title, f.zone, f.today
    FROM cases c
    JOIN firms f ON f.tenant_id = c.tenant_id
    WHERE c.status = 'active' AND c.appeal_deadline IS NOT NULL
      AND c.appeal_deadline BETWEEN (@now::timestamptz AT TIME ZONE 'UTC')::date - 1 AND (@now::timestamptz AT TIME ZONE 'UTC')::date + 1 + @max_days::int
      AND c.appeal_deadline BETWEEN f.today AND f.today + @max_days::int
),
deadlines AS NOT MATERIALIZED (
    SELECT i.*, d.days_left, th.threshold,
           to_char(i.due_on, 'YYYY-MM-DD') AS due_iso,
           CASE d.days_left WHEN 0 THEN 'today' WHEN 1 THEN 'tomorrow' ELSE 'in ' || d.days_left || ' days' END AS due_in,
           CASE i.item
               WHEN 'task' THEN 'task "' || i.task_title || '"' || coalesce(' (' || i.case_number || ')', '')
                                || ' due ' || to_char(i.due_on, 'YYYY-MM-DD')
               WHEN 'reply_due_date' THEN 'case ' || i.case_number || ': reply to show-cause notice due '
                                || to_char(i.due_on, 'YYYY-MM-DD')
               ELSE 'case ' || i.case_number || ': appeal deadline ' || to_char(i.due_on, 'YYYY-MM-DD')
           END AS about
    FROM items i
    CROSS JOIN LATERAL (SELECT i.due_on - i.today AS days_left) AS d
    -- Once per deadline: as a scalar subquery in the select list it was run again for
    -- each place that names the threshold (the key, the audit row, the tighter check).
    CROSS JOIN LATERAL (SELECT min(th) AS threshold FROM unnest(@thresholds::int[]) AS th WHERE th >= d.days_left) AS th
)`

// deadlinePerFirmSQL is the per_firm CTE of the deadlines (perFirmCounts): for every
// covered firm of the slice with deadlines, the deadlines and those with no one to alert.
//
// The deadlines CTE is NOT MATERIALIZED: the counts and the alerts each read it inlined,
// in the plans they had as two statements. Materialized (it is named twice), its rows
// are a CTE scan the planner cannot estimate, and one run of the firms' hours benchmark
// took 165 s instead of 3 s for 1,000 firms on 1M tasks with it so (a nested loop over
// it, most likely). per_firm is MATERIALIZED: aggregated once, whatever the join to the
// covered firms (perFirmCounts) is planned as.
var deadlinePerFirmSQL = `per_firm AS MATERIALIZED (
    SELECT dl.tenant_id, count(*)::int AS found,
           (count(*) FILTER (WHERE p.id IS NULL))::int AS missing,
           coalesce((array_agg(dl.about || CASE dl.item WHEN 'task' THEN ': no one is assigned to the task'
                                                        ELSE ': the case has no owner' END
                               ORDER BY dl.due_on, dl.about)
                     FILTER (WHERE p.id IS NULL))[1:@max_listed::int], '{}') AS missing_list
    FROM deadlines dl
    LEFT JOIN profiles p ON p.id = dl.user_id AND p.tenant_id = dl.tenant_id
    GROUP BY dl.tenant_id
)`

// deadlineAlertsWith is the CTEs of the delivery's statement (notify.Batch.With): the
// deadlines, the per-firm counts the statement returns beside the alerts
// (perFirmCounts), from the same rows, and the zones' abbreviations.
var deadlineAlertsWith = deadlinesSQL + `,
` + deadlinePerFirmSQL + `,
` + zoneDaysSQL("@now::timestamptz + make_interval(days => @max_days::int + 2)")

// deadlineAlertsSQL is the alerts, as a notify.Batch query: one per deadline per
// threshold, keyed by item, threshold and date. The tightest threshold alerts; an
// item already alerted at a tighter one (it came closer, then the run's clock or the
// thresholds changed) is not alerted at a looser one. A moved date alerts afresh.
var deadlineAlertsSQL = `
SELECT dl.tenant_id, p.id AS user_id, '` + KindDeadlineAlert + `' AS kind,
       CASE dl.item
           WHEN 'task' THEN 'Task due ' || dl.due_in || ' (' || to_char(dl.due_on, 'DD Mon YYYY') || '): ' || dl.task_title
           WHEN 'reply_due_date' THEN 'Reply to show-cause notice due ' || dl.due_in
                || ' (' || to_char(dl.due_on, 'DD Mon YYYY') || '): ' || dl.case_number
           ELSE 'Appeal deadline ' || dl.due_in || ' (' || to_char(dl.due_on, 'DD Mon YYYY') || '): ' || dl.case_number
       END AS title,
       concat_ws(E'\n',
           CASE WHEN dl.item = 'task' THEN 'Task: ' || dl.task_title END,
           'Case: ' || dl.case_number || ' - ' || dl.case_title,
           CASE dl.item
               WHEN 'task' THEN 'Due: ' || to_char(dl.not_after AT TIME ZONE dl.zone, 'Dy DD Mon YYYY, HH24:MI')
                                || ' ' || ` + abbrevSQL("dl.not_after", "dl.zone") + `
               WHEN 'reply_due_date' THEN 'Reply to the show-cause notice due: ' || to_char(dl.due_on, 'Dy DD Mon YYYY')
               ELSE 'Last day to file the appeal: ' || to_char(dl.due_on, 'Dy DD Mon YYYY')
           END,
           CASE WHEN dl.item = 'task' THEN 'You are the assignee.' ELSE 'You are the case owner.' END) AS body,
       dl.entity_type, dl.item_id AS entity_id,
       'deadline_alert:' || dl.item || ':' || dl.item_id || ':' || dl.threshold || 'd:' || dl.due_iso AS dedupe_key,
       dl.about,
       dl.not_after,
       jsonb_strip_nulls(jsonb_build_object(
           'item', dl.item, 'task_id', CASE WHEN dl.item = 'task' THEN dl.item_id END,
           'case_id', dl.case_id, 'case_number', dl.case_number, 'due_date', dl.due_iso,
           'days_left', dl.days_left, 'threshold_days', dl.threshold)) AS audit_details
FROM deadlines dl
JOIN profiles p ON p.id = dl.user_id AND p.tenant_id = dl.tenant_id
` + zoneDayJoin("dl.not_after", "dl.zone") + `
WHERE NOT EXISTS (
    SELECT 1
    FROM unnest(@thresholds::int[]) AS tighter(th)
    JOIN notifications n
      ON n.dedupe_key = 'deadline_alert:' || dl.item || ':' || dl.item_id || ':' || tighter.th || 'd:' || dl.due_iso
    WHERE tighter.th < dl.threshold)`

// checkUpcomingDeadlines alerts task assignees and case owners to deadlines within
// each threshold, once per item per threshold.
// A large run's alerts are delivered in firm-disjoint slices at once, as the hearing
// reminders are (enqueueParts).
func (s *service) checkUpcomingDeadlines(ctx context.Context, run worker.Run) (worker.Report, error) {
	args := tenancy.With(pgx.NamedArgs{
		"now": run.Now, "thresholds": s.thresholds, "max_days": s.thresholds[len(s.thresholds)-1],
		"max_listed": maxErrors, "fallback_zone": s.loc.String(), "parts": 1, "part": 0,
	}, run.Scope)
	var o outcome
	var err error
	o.firms, o.enq, err = s.enqueueParts(ctx, run, nil, notify.Batch{
		With: deadlineAlertsWith, Query: deadlineAlertsSQL, Also: perFirmCounts,
		Args: args, EachRun: deadlinesEachRun,
		Source: catalog.CheckUpcomingDeadlines, RunID: run.ID, Email: s.mailer != nil,
	}, s.partsFor(run.Scope))
	if err != nil {
		return worker.Report{}, worker.Fail("Could not read deadlines or save alerts", err)
	}
	o.email, o.emailErr = s.sendEmail(ctx, run, catalog.CheckUpcomingDeadlines)
	return s.report(catalog.CheckUpcomingDeadlines, o, "deadlines_found", "alerts_sent", "failed_alerts", "alerts")
}
