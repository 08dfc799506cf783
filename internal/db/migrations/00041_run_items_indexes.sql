-- +goose Up
-- The dashboard's history lists the items behind a run's numbers
-- (GET /api/jobs/{job}/runs/{run}/items, services/gateway/items.go), each read by the
-- run's id and the viewer's firm. Two of the tables it reads grow with every run and
-- had no index on the run:
--   - automation_logs: the rules a run of the SLA check fired, by run_id (one row per
--     rule per breach, forever);
--   - audit_log: the notification_sent rows a run wrote, by details->>'run_id' (one
--     row per notification per channel: most of the table).
-- The other items come from indexed reads already: notification_deliveries by
-- (source, wanted_by) (00022), tasks by the open-task indexes (00012, 00030), hearings
-- by date, analytics_snapshots and job_run_tenants by their keys.
CREATE INDEX IF NOT EXISTS automation_logs_run ON automation_logs (run_id, tenant_id)
    WHERE run_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_log_notification_run ON audit_log ((details->>'run_id'), tenant_id)
    WHERE action_type = 'notification_sent';

-- +goose Down
DROP INDEX IF EXISTS audit_log_notification_run;
DROP INDEX IF EXISTS automation_logs_run;
