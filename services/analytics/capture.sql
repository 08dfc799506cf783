-- One analytics snapshot: every metric for every tenant, computed and upserted in one
-- statement. Each aggregate below reads only the rows its metric needs, through an
-- index (migration 00030); the covered firms CROSS JOIN the metric list, so a tenant
-- with no rows gets zeros, and ON CONFLICT makes a re-run on the same day replace its
-- values.
--
-- Each firm's calendar is its own (firm_zones: tenants.timezone, else JOBS_TIMEZONE):
-- its snapshot_date is the day of @now where it is, and "the previous day" and "the
-- next seven days" run from its own midnights, so one statement dates a firm in Dubai
-- and one in New York each by its own day. Beside each firm's own bounds, each
-- aggregate has bounds that hold for every firm of the run (their envelope), which the
-- indexes on the dates use.
--
-- @now             the run's now
-- @fallback_zone   JOBS_TIMEZONE, for a firm whose own zone is unknown
-- covered(col)     the firms the run covers (tenancy.Expand), for every aggregate: a
--                  run for one firm reads that firm's rows only
WITH firms AS MATERIALIZED (
    SELECT fz.tenant_id, d.day AS snapshot_date,
           d.day::timestamp AT TIME ZONE fz.zone       AS day_start,
           (d.day - 1)::timestamp AT TIME ZONE fz.zone AS prev_day_start,
           (d.day + 7)::timestamp AT TIME ZONE fz.zone AS week_end
    FROM firm_zones(@fallback_zone::text) fz
    CROSS JOIN LATERAL (SELECT (@now::timestamptz AT TIME ZONE fz.zone)::date AS day) d
    WHERE covered(fz.tenant_id)
),
envelope AS MATERIALIZED (
    SELECT min(prev_day_start) AS prev_day_start, min(day_start) AS first_day_start,
           max(day_start) AS last_day_start, max(week_end) AS week_end
    FROM firms
),
open_tasks AS (
    SELECT tenant_id,
           count(*)                                AS open_tasks,
           count(*) FILTER (WHERE due_date < @now) AS overdue_tasks
    FROM tasks
    WHERE status IN ('open', 'in_progress') AND covered(tenant_id)
    GROUP BY tenant_id
),
completed_previous_day AS (
    SELECT t.tenant_id,
           count(*) AS completed,
           count(*) FILTER (
               WHERE sla.resolution_hours IS NULL
                  OR t.completed_at <= t.created_at + make_interval(hours => sla.resolution_hours)
           ) AS within_sla
    FROM tasks t
    -- The firm's own policy for the priority, else the default (tenant_id NULL).
    LEFT JOIN LATERAL (
        SELECT p.resolution_hours
        FROM sla_policies p
        WHERE p.priority = t.priority
          AND (p.tenant_id = t.tenant_id OR p.tenant_id IS NULL)
        ORDER BY p.tenant_id NULLS LAST
        LIMIT 1
    ) sla ON true
    JOIN firms fd ON fd.tenant_id = t.tenant_id
    WHERE t.status = 'completed'
      AND t.completed_at >= (SELECT prev_day_start FROM envelope)
      AND t.completed_at < (SELECT last_day_start FROM envelope)
      AND t.completed_at >= fd.prev_day_start
      AND t.completed_at < fd.day_start
    GROUP BY t.tenant_id
),
active_cases AS (
    SELECT tenant_id, count(*) AS n
    FROM cases
    WHERE status = 'active' AND covered(tenant_id)
    GROUP BY tenant_id
),
hearings_week AS (
    SELECT h.tenant_id, count(*) AS n
    FROM hearings h
    JOIN firms fd ON fd.tenant_id = h.tenant_id
    WHERE h.status = 'scheduled'
      AND h.hearing_date >= (SELECT first_day_start FROM envelope)
      AND h.hearing_date < (SELECT week_end FROM envelope)
      AND h.hearing_date >= fd.day_start
      AND h.hearing_date < fd.week_end
    GROUP BY h.tenant_id
),
failed_notifications AS (
    -- A notification failed the previous day when its delivery (today: e-mail) is
    -- failed now, existed before today, and was last attempted at or after the previous
    -- day's midnight. Senders retry failed deliveries and each attempt moves updated_at,
    -- so "last attempted within the previous day" alone would lose every failure retried
    -- between midnight and this run.
    SELECT nd.tenant_id, count(DISTINCT nd.notification_id) AS n
    FROM notification_deliveries nd
    JOIN firms fd ON fd.tenant_id = nd.tenant_id
    WHERE nd.status = 'failed'
      AND nd.updated_at >= (SELECT prev_day_start FROM envelope)
      AND nd.updated_at >= fd.prev_day_start
      AND nd.created_at < fd.day_start
    GROUP BY nd.tenant_id
),
written AS (
    INSERT INTO analytics_snapshots AS s (tenant_id, snapshot_date, metric_type, metric_value)
    SELECT tn.tenant_id, tn.snapshot_date, m.metric_type, m.metric_value
    FROM firms tn
    LEFT JOIN open_tasks o              ON o.tenant_id = tn.tenant_id
    LEFT JOIN completed_previous_day c  ON c.tenant_id = tn.tenant_id
    LEFT JOIN active_cases ac           ON ac.tenant_id = tn.tenant_id
    LEFT JOIN hearings_week h           ON h.tenant_id = tn.tenant_id
    LEFT JOIN failed_notifications f    ON f.tenant_id = tn.tenant_id
    CROSS JOIN LATERAL (VALUES
        ('active_cases',                      coalesce(ac.n, 0)::numeric),
        ('open_tasks',                        coalesce(o.open_tasks, 0)),
        ('overdue_tasks',                     coalesce(o.overdue_tasks, 0)),
        ('sla_compliance_percent',            CASE WHEN coalesce(c.completed, 0) = 0 THEN 0
                                                   ELSE round(100.0 * c.within_sla / c.completed, 2) END),
        ('hearings_next_7_days',              coalesce(h.n, 0)),
        ('tasks_completed_previous_day',      coalesce(c.completed, 0)),
        ('notifications_failed_previous_day', coalesce(f.n, 0))
    ) AS m (metric_type, metric_value)
    -- A fixed order of row locks: two overlapping runs wait for each other instead of
    -- deadlocking.
    ORDER BY tn.tenant_id, m.metric_type
    ON CONFLICT (tenant_id, snapshot_date, metric_type) DO UPDATE
        SET metric_value = EXCLUDED.metric_value,
            created_at   = EXCLUDED.created_at
    RETURNING s.tenant_id, s.snapshot_date
)
-- Each covered firm's count of metrics written and its snapshot date, for its slice.
SELECT coalesce(array_agg(tenant_id::text ORDER BY tenant_id), '{}'), coalesce(array_agg(n ORDER BY tenant_id), '{}'),
       coalesce(array_agg(snapshot_date::text ORDER BY tenant_id), '{}')
FROM (SELECT tenant_id, snapshot_date, count(*) AS n FROM written GROUP BY tenant_id, snapshot_date) w;
