-- +goose Up
-- The SLA check (services/sla) reads every open task of every firm every 15 minutes:
-- for the overdue tasks and for the SLA deadlines (created_at plus the hours of the
-- firm's policy for the priority). This index holds all of it, so the scan is
-- index-only over the open tasks instead of a read of the whole table.
CREATE INDEX IF NOT EXISTS tasks_open_sla ON tasks (tenant_id, priority, created_at, due_date) INCLUDE (id)
    WHERE status IN ('open', 'in_progress');

-- +goose Down
DROP INDEX IF EXISTS tasks_open_sla;
