-- +goose Up
-- A daily job's run covers the twenty firms of one slot (firms keep their own hours,
-- fifty runs a day). The analytics snapshot reads each covered firm's tasks completed
-- the day before and its hearings of the coming week; by date alone each of those runs
-- read every firm's, and kept a twentieth (7 of a run's 12 ms on 1M tasks). By firm,
-- then date, it reads only its own. The run for every firm keeps its range by date.
CREATE INDEX IF NOT EXISTS tasks_tenant_completed ON tasks (tenant_id, completed_at)
    WHERE status = 'completed';
CREATE INDEX IF NOT EXISTS hearings_tenant_date ON hearings (tenant_id, hearing_date);

-- +goose Down
DROP INDEX IF EXISTS hearings_tenant_date;
DROP INDEX IF EXISTS tasks_tenant_completed;
