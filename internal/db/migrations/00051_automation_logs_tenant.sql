-- +goose Up
-- The automation health check reads each covered firm's rule executions of the last
-- 24 hours. A daily job's run now covers the twenty firms of one slot (firms keep their
-- own hours, fifty runs a day), and by executed_at alone each of those runs read every
-- firm's executions of the day (100 ms a run on 1M tasks); by firm, only its own.
CREATE INDEX IF NOT EXISTS automation_logs_tenant_executed ON automation_logs (tenant_id, executed_at);

-- +goose Down
DROP INDEX IF EXISTS automation_logs_tenant_executed;
