-- +goose Up
-- Each firm's part of each run: its slice. A run of a job covers many firms; the run's
-- audit_log row ('background_job_execution') keeps the run's totals over all of them,
-- for the platform operator and the user guide's query, and each covered firm gets one
-- row here with its own results, its own problems and its own status. A firm's people
-- read only these rows: the history of a firm's job is one index range scan on
-- (tenant_id, job_name, finished_at), newest first, whatever the number of firms or
-- runs, and no row of another firm is ever read to answer it.
--
-- Rows are written by the gateway from the run's jobs.slices.<job> events (and, for a
-- run that failed before it could compute any firm's part, one failed row per covered
-- firm from its result), keyed by (run_id, tenant_id): a redelivered event writes
-- nothing twice; a later attempt of the same run replaces an earlier one's rows. A firm
-- a run skipped (it had paused the job) has no row: the run did none of its work.
CREATE TABLE job_run_tenants (
    tenant_id     uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    run_id        uuid NOT NULL,
    job_name      text NOT NULL,
    attempt       integer NOT NULL DEFAULT 1,
    status        text NOT NULL CHECK (status IN ('success', 'failed')),
    -- The contract's results keys for this firm alone (the same keys as the run's).
    results       jsonb NOT NULL DEFAULT '{}'::jsonb,
    errors        jsonb NOT NULL DEFAULT '[]'::jsonb,
    error_message text,
    finished_at   timestamptz NOT NULL,
    PRIMARY KEY (run_id, tenant_id)
);
CREATE INDEX job_run_tenants_history ON job_run_tenants (tenant_id, job_name, finished_at DESC, run_id DESC);

-- +goose Down
DROP TABLE job_run_tenants;
