package reminders

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/notify"
	"github.com/lexhq/gstjobs/internal/tenancy"
	"github.com/lexhq/gstjobs/internal/worker"
)

// KindHearingReminder is notifications.kind of a hearing reminder.
const KindHearingReminder = "hearing_reminder"

// hearingsDueSQL is every hearing to remind people of, in every covered firm (of the
// part of the firms a slice delivers): scheduled or adjourned, starting between @now
// and @until, both ends included, with the zone its firm's times are written in
// (firm_zones: the firm's own, else JOBS_TIMEZONE, @fallback_zone), and whom it has to
// remind: the assignee and the case owner when each is a person of the firm (NULL
// otherwise). The covered firms are found first, one row each, so that the hearings
// meet their firms, cases and people in hash joins, not one lookup per reminder.
var hearingsDueSQL = `
firms AS MATERIALIZED (
    SELECT fz.tenant_id, fz.zone
    FROM firm_zones(@fallback_zone::text) fz
    WHERE ` + tenancy.Filter("fz.tenant_id") + `
      AND ` + inPart("fz.tenant_id") + `
),
due AS NOT MATERIALIZED (
    SELECT h.id, h.tenant_id, h.case_id, h.hearing_date, h.forum, h.assigned_to, c.owner_id,
           c.case_number, c.title AS case_title, c.client_name, f.zone,
           pa.id AS assignee, po.id AS owner
    FROM hearings h
    JOIN firms f ON f.tenant_id = h.tenant_id
    JOIN cases c ON c.id = h.case_id AND c.tenant_id = h.tenant_id
    LEFT JOIN profiles pa ON pa.id = h.assigned_to AND pa.tenant_id = h.tenant_id
    LEFT JOIN profiles po ON po.id = c.owner_id AND po.tenant_id = h.tenant_id
    WHERE h.status IN ('scheduled', 'adjourned')
      AND h.hearing_date >= @now::timestamptz
      AND h.hearing_date <= @until::timestamptz
)`

// hearingPerFirmSQL is the per_firm CTE of the hearings due (perFirmCounts), read from
// dated, which holds every row and column of due and each hearing's about: for every
// covered firm of the slice with hearings, the hearings and those with nobody to
// remind: neither the assignee nor the case owner is a person of the firm. Aggregated
// once (MATERIALIZED).
const hearingPerFirmSQL = `per_firm AS MATERIALIZED (
    SELECT d.tenant_id, count(*)::int AS found,
           (count(*) FILTER (WHERE d.assignee IS NULL AND d.owner IS NULL))::int AS missing,
           coalesce((array_agg(d.about || ': nobody to remind: the hearing has no assignee and the case has no owner'
                               ORDER BY d.hearing_date, d.case_number)
                     FILTER (WHERE d.assignee IS NULL AND d.owner IS NULL))[1:@max_listed::int], '{}') AS missing_list
    FROM dated d
    GROUP BY d.tenant_id
)`

// hearingRemindersWith is the CTEs of the delivery's statement (notify.Batch.With):
// the hearings due, their times written (dated), and the per-firm counts, which the
// statement returns beside the reminders (perFirmCounts). The counts are read from
// dated, which is materialized for the reminders: due (its joins, 47,500 hearings of a
// slice of 100,000) is read once, not once more for the counts (about 300 ms a slice).
var hearingRemindersWith = hearingsDueSQL + `,
` + zoneDaysSQL("@until::timestamptz") + `,
dated AS MATERIALIZED (
    SELECT d.*, z.local || ' ' || z.abbrev AS at_local,
           'hearing ' || d.case_number || ' on ' || z.iso || ' ' || z.abbrev AS about
    FROM due d
    ` + zoneDayJoin("d.hearing_date", "d.zone") + `
    CROSS JOIN LATERAL (SELECT ` + abbrevSQL("d.hearing_date", "d.zone") + ` AS abbrev,
                               to_char(d.hearing_date AT TIME ZONE d.zone, 'Dy DD Mon YYYY, HH24:MI') AS local,
                               to_char(d.hearing_date AT TIME ZONE d.zone, 'YYYY-MM-DD HH24:MI') AS iso
                        OFFSET 0) z
),
` + hearingPerFirmSQL

// hearingRemindersSQL is the reminders, as a notify.Batch query: one per person per
// hearing, to the assignee and to the case owner, once when they are the same person.
// Times are written in the firm's zone. Each hearing's times are written once, in
// dated, whatever the number of its reminders: its zone's abbreviation at the hearing
// (abbrevSQL: the zone's for the day, zoneDaysSQL), then the local times with it,
// "YYYY-MM-DD HH24:MI TZ" as to_char_in would write them. The dedupe key holds the
// hearing's date, so a rescheduled hearing is reminded again.
var hearingRemindersSQL = `
SELECT d.tenant_id, r.user_id, '` + KindHearingReminder + `' AS kind,
       'Hearing ' || d.at_local || ': ' || d.case_number AS title,
       concat_ws(E'\n',
           'Case: ' || d.case_number || ' - ' || d.case_title || coalesce(' (' || d.client_name || ')', ''),
           'When: ' || d.at_local,
           'Forum: ' || nullif(d.forum, ''),
           'You are reminded as the ' || r.role || '.') AS body,
       'hearing' AS entity_type, d.id AS entity_id,
       'hearing_reminder:' || d.id || ':' || r.user_id || ':'
           || to_char(d.hearing_date AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS dedupe_key,
       d.about,
       d.hearing_date AS not_after,
       jsonb_build_object('hearing_id', d.id, 'case_id', d.case_id, 'case_number', d.case_number,
                          'hearing_date', d.hearing_date, 'reminded_as', r.role) AS audit_details
FROM dated d
CROSS JOIN LATERAL (VALUES
    (d.assignee, CASE WHEN d.assigned_to = d.owner_id THEN 'assignee and case owner' ELSE 'assignee' END),
    (CASE WHEN d.owner_id IS DISTINCT FROM d.assigned_to THEN d.owner END, 'case owner')
) AS r(user_id, role)
WHERE r.user_id IS NOT NULL`

// inPart keeps the firms (col, their ids) of slice @part of @parts: firm-disjoint
// slices by a hash of the id, its sign bit masked (abs of the lowest integer is out of
// range).
func inPart(col string) string {
	return "(@parts::int = 1 OR (hashtext(" + col + "::text) & 2147483647) % @parts::int = @part::int)"
}

// deliveryParts is how many firm-disjoint slices a large run's reminders (or deadline
// alerts) are delivered in, concurrently, each in its own transaction: writing 180,000
// notifications and their audit rows is the whole cost of a big run, and two backends
// do it in about half the time on two cores. Slices are disjoint by firm, so they never
// touch the same rows.
const deliveryParts = 2

// partsFor is how many slices a run for scope is delivered in: one for a run that
// covers fewer firms than splitAt (a firm's Run Now; a slot's firms less those that
// paused the job: tenancy.Named), else deliveryParts. It is decided before
// anything is read: each slice's statement counts what it finds as it delivers, so
// there is no count to decide on beforehand; for a small run the second slice costs a
// statement of a few milliseconds beside the first.
func (s *service) partsFor(scope events.Scope) int {
	if !scope.All && len(tenancy.Named(scope)) < s.splitAt {
		return 1
	}
	return deliveryParts
}

// sendHearingReminders reminds the assignee and the case owner of every hearing in the
// next 24 hours, in-app and, when e-mail is on, by e-mail.
func (s *service) sendHearingReminders(ctx context.Context, run worker.Run) (worker.Report, error) {
	args := tenancy.With(pgx.NamedArgs{
		"now": run.Now, "until": run.Now.Add(ReminderWindow), "max_listed": maxErrors, "parts": 1, "part": 0,
		"fallback_zone": s.loc.String(),
	}, run.Scope)
	var o outcome
	var err error
	o.firms, o.enq, err = s.enqueueParts(ctx, run, hearingPlans(run.Scope), notify.Batch{
		With: hearingRemindersWith, Query: hearingRemindersSQL, Also: perFirmCounts,
		Args: args, EachRun: hearingsEachRun(run.Scope),
		Source: catalog.SendHearingReminders, RunID: run.ID, Email: s.mailer != nil,
	}, s.partsFor(run.Scope))
	if err != nil {
		return worker.Report{}, worker.Fail("Could not read hearings or save reminders", err)
	}
	o.email, o.emailErr = s.sendEmail(ctx, run, catalog.SendHearingReminders)
	return s.report(catalog.SendHearingReminders, o, "hearings_processed", "notifications_sent", "failed_notifications", "reminders")
}

// enqueueParts delivers run's batch (whose query selects the firms of slice @part of
// @parts, and whose Also is the slice's per-firm counts, perFirmCounts) in parts slices
// at once, and returns every covered firm's counts, in the order of their ids. A slice
// that fails leaves the others delivered, and their e-mails are sent before the failure
// is returned (sendDelivered); the next run delivers the rest and nothing twice.
func (s *service) enqueueParts(ctx context.Context, run worker.Run, plan func(context.Context, pgx.Tx) error, batch notify.Batch, parts int) ([]firmCount, notify.Enqueued, error) {
	var (
		mu    sync.Mutex
		total notify.Enqueued
		firms []firmCount
		errs  []error
		wg    sync.WaitGroup
	)
	for part := range parts {
		wg.Go(func() {
			b := batch
			b.Args = maps.Clone(batch.Args)
			b.Args["parts"], b.Args["part"] = parts, part
			var counts []firmCount
			b.AlsoInto = &counts
			var enq notify.Enqueued
			err := s.inTx(ctx, plan, func(tx pgx.Tx) error {
				var err error
				enq, err = notify.Enqueue(ctx, tx, b)
				return err
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			firms = append(firms, counts...)
			total.InApp += enq.InApp
			total.EmailsQueued += enq.EmailsQueued
			if total.InAppByTenant == nil {
				total.InAppByTenant = map[string]int{}
			}
			maps.Copy(total.InAppByTenant, enq.InAppByTenant) // slices are firm-disjoint
		})
	}
	wg.Wait()
	if len(errs) > 0 && len(errs) < parts {
		s.sendDelivered(ctx, run, batch.Source)
	}
	slices.SortFunc(firms, func(a, b firmCount) int { return strings.Compare(a.TenantID, b.TenantID) })
	return firms, total, errors.Join(errs...)
}
