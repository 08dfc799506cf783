-- One analytics snapshot: every metric for every tenant, computed and upserted in one
-- statement. Each aggregate below reads only the rows its metric needs, through an
-- index (migration 00030); tenants CROSS JOIN the metric list, so a tenant with no
-- rows gets zeros, and ON CONFLICT makes a re-run on the same day replace its values.
--
-- @snapshot_date   the calendar day of @now in the jobs' time zone
-- @now             the run's now
-- @day_start       midnight starting @snapshot_date, as an instant
-- @prev_day_start  midnight starting the day before
-- @week_end        midnight seven days after @day_start
-- covered(col)     the firms the run covers (tenancy.Expand), for every aggregate: a
--                  run for one firm reads that firm's rows only
WITH open_tasks AS (
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
    WHERE t.status = 'completed' AND covered(t.tenant_id)
      AND t.completed_at >= @prev_day_start
      AND t.completed_at < @day_start
    GROUP BY t.tenant_id
),
active_cases AS (
    SELECT tenant_id, count(*) AS n
    FROM cases
    WHERE status = 'active' AND covered(tenant_id)
    GROUP BY tenant_id
),
hearings_week AS (
    SELECT tenant_id, count(*) AS n
    FROM hearings
    WHERE status = 'scheduled' AND covered(tenant_id)
      AND hearing_date >= @day_start
      AND hearing_date < @week_end
    GROUP BY tenant_id
),
failed_notifications AS (
    -- A notification failed the previous day when its delivery (today: e-mail) is
    -- failed now, existed before today, and was last attempted at or after the previous
    -- day's midnight. Senders retry failed deliveries and each attempt moves updated_at,
    -- so "last attempted within the previous day" alone would lose every failure retried
    -- between midnight and this run.
    SELECT tenant_id, count(DISTINCT notification_id) AS n
    FROM notification_deliveries
    WHERE status = 'failed' AND covered(tenant_id)
      AND updated_at >= @prev_day_start
      AND created_at < @day_start
    GROUP BY tenant_id
),
written AS (
    INSERT INTO analytics_snapshots AS s (tenant_id, snapshot_date, metric_type, metric_value)
    SELECT tn.id, @snapshot_date::date, m.metric_type, m.metric_value
    FROM tenants tn
    LEFT JOIN open_tasks o              ON o.tenant_id = tn.id
    LEFT JOIN completed_previous_day c  ON c.tenant_id = tn.id
    LEFT JOIN active_cases ac           ON ac.tenant_id = tn.id
    LEFT JOIN hearings_week h           ON h.tenant_id = tn.id
    LEFT JOIN failed_notifications f    ON f.tenant_id = tn.id
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
    WHERE covered(tn.id)
    -- A fixed order of row locks: two overlapping runs wait for each other instead of
    -- deadlocking.
    ORDER BY tn.id, m.metric_type
    ON CONFLICT (tenant_id, snapshot_date, metric_type) DO UPDATE
        SET metric_value = EXCLUDED.metric_value,
            created_at   = EXCLUDED.created_at
    RETURNING s.tenant_id
)
-- Each covered firm's count of metrics written, for its slice.
SELECT coalesce(array_agg(tenant_id::text ORDER BY tenant_id), '{}'), coalesce(array_agg(n ORDER BY tenant_id), '{}')
FROM (SELECT tenant_id, count(*) AS n FROM written GROUP BY tenant_id) w;
