-- +goose Up
-- Deadline alerts look up active cases whose reply or appeal date falls in the next
-- few days; without these they read every case of every firm each run.
CREATE INDEX cases_reply_due ON cases (reply_due_date)
    WHERE status = 'active' AND reply_due_date IS NOT NULL;
CREATE INDEX cases_appeal_deadline ON cases (appeal_deadline)
    WHERE status = 'active' AND appeal_deadline IS NOT NULL;

-- +goose Down
DROP INDEX cases_appeal_deadline;
DROP INDEX cases_reply_due;
