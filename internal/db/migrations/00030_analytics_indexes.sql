-- +goose Up
-- What the analytics snapshot reads, so that it reads no more than its metrics need:
--   - every firm's open tasks, from this index alone (an index-only scan grouped by
--     tenant_id, with due_date for "overdue");
--   - the tasks completed the previous day: a short range instead of every task ever
--     completed;
--   - the failed e-mail deliveries attempted since the previous day (migration 00020).
CREATE INDEX IF NOT EXISTS tasks_open_tenant_due ON tasks (tenant_id, due_date)
    WHERE status IN ('open', 'in_progress');
CREATE INDEX IF NOT EXISTS tasks_completed_at ON tasks (completed_at)
    WHERE status = 'completed';
CREATE INDEX IF NOT EXISTS notification_deliveries_failed ON notification_deliveries (updated_at)
    WHERE status = 'failed';

-- +goose Down
DROP INDEX IF EXISTS notification_deliveries_failed;
DROP INDEX IF EXISTS tasks_completed_at;
DROP INDEX IF EXISTS tasks_open_tenant_due;
