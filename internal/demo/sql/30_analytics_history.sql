-- Six days of analytics snapshots before today for both firms, so that the history
-- has something to show from the first start. The capture-analytics-snapshot job
-- writes today's (at 00:30, or on Run Now) and every day after; these rows are dated
-- by the calendar of Asia/Kolkata, the default JOBS_TIMEZONE, like the job's.
-- Values run oldest first (six days ago … yesterday) and agree with each other:
-- sla_compliance_percent is the share of tasks_completed_previous_day done within
-- their SLA, and 0 on a day with no completions.
INSERT INTO analytics_snapshots (tenant_id, snapshot_date, metric_type, metric_value)
SELECT h.tenant_id::uuid,
       (now() AT TIME ZONE 'Asia/Kolkata')::date - 7 + d.i,
       h.metric_type,
       h.vals[d.i]
FROM (VALUES
    ('11111111-1111-1111-1111-111111111111', 'active_cases',                      ARRAY[3, 3, 4, 4, 4, 4]),
    ('11111111-1111-1111-1111-111111111111', 'open_tasks',                        ARRAY[9, 8, 8, 7, 8, 7]),
    ('11111111-1111-1111-1111-111111111111', 'overdue_tasks',                     ARRAY[2, 3, 3, 3, 4, 4]),
    ('11111111-1111-1111-1111-111111111111', 'sla_compliance_percent',            ARRAY[100, 75, 66.67, 100, 50, 80]),
    ('11111111-1111-1111-1111-111111111111', 'hearings_next_7_days',              ARRAY[3, 3, 2, 2, 3, 3]),
    ('11111111-1111-1111-1111-111111111111', 'tasks_completed_previous_day',      ARRAY[2, 4, 3, 1, 2, 5]),
    ('11111111-1111-1111-1111-111111111111', 'notifications_failed_previous_day', ARRAY[0, 1, 0, 0, 2, 1]),
    ('22222222-2222-2222-2222-222222222222', 'active_cases',                      ARRAY[2, 2, 2, 2, 2, 2]),
    ('22222222-2222-2222-2222-222222222222', 'open_tasks',                        ARRAY[3, 3, 2, 2, 2, 2]),
    ('22222222-2222-2222-2222-222222222222', 'overdue_tasks',                     ARRAY[0, 0, 1, 1, 1, 1]),
    ('22222222-2222-2222-2222-222222222222', 'sla_compliance_percent',            ARRAY[100, 0, 100, 50, 0, 100]),
    ('22222222-2222-2222-2222-222222222222', 'hearings_next_7_days',              ARRAY[1, 1, 1, 2, 2, 1]),
    ('22222222-2222-2222-2222-222222222222', 'tasks_completed_previous_day',      ARRAY[1, 0, 1, 2, 0, 1]),
    ('22222222-2222-2222-2222-222222222222', 'notifications_failed_previous_day', ARRAY[0, 0, 0, 0, 0, 0])
) AS h (tenant_id, metric_type, vals)
CROSS JOIN generate_series(1, 6) AS d (i)
ON CONFLICT (tenant_id, snapshot_date, metric_type) DO NOTHING;
