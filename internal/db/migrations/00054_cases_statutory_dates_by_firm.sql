-- +goose Up
-- The deadline alerts of one slot's twenty firms (firms keep their own hours) read
-- the active cases' reply and appeal dates of the coming days by date alone, for every
-- firm, and kept a twentieth: 10 of a run's 13 ms counting the deadlines on 1M tasks,
-- and as much again in each slice that writes the alerts. By firm, then date, only its
-- own. The run for every firm keeps the indexes by date (migration 00021).
CREATE INDEX IF NOT EXISTS cases_tenant_reply_due ON cases (tenant_id, reply_due_date)
    WHERE status = 'active' AND reply_due_date IS NOT NULL;
CREATE INDEX IF NOT EXISTS cases_tenant_appeal_deadline ON cases (tenant_id, appeal_deadline)
    WHERE status = 'active' AND appeal_deadline IS NOT NULL;

-- +goose Down
DROP INDEX IF EXISTS cases_tenant_appeal_deadline;
DROP INDEX IF EXISTS cases_tenant_reply_due;
