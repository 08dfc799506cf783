-- +goose Up
-- Delivery of a notification on a channel other than in-app (today: e-mail). The
-- in-app channel needs no row here: a notifications row is the in-app delivery.
-- One row per notification and channel, so a job re-run never queues an e-mail twice,
-- and status says what happened: pending (queued, or a temporary failure such as the
-- SMTP server being down: a later run retries it), sent (never sent again), failed
-- (the address is missing or invalid, or the server refused it: retried by later runs
-- while the notification is still relevant, so a corrected address gets through).
CREATE TABLE notification_deliveries (
    id              bigserial PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants(id),
    notification_id uuid NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
    channel         text NOT NULL CHECK (channel IN ('email')),
    -- The job that queued it; each job sends its own queue.
    source          text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','sent','failed')),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    -- The address last tried, for people reading this table.
    recipient       text,
    -- What the notification is about, in words, for error reports
    -- ("hearing GST/SCN/2026/0142 on 2026-03-11 10:30 IST").
    about           text NOT NULL DEFAULT '',
    -- Merged into the notification_sent audit row (hearing_id, task_id, ...).
    audit_details   jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- After this instant the delivery is pointless (the hearing has started) and is
    -- no longer attempted. NULL: no limit.
    not_after       timestamptz,
    -- A sender leases the rows it is sending so that two senders never send the same
    -- e-mail; a lease left by a crashed sender expires.
    locked_by       text,
    locked_until    timestamptz,
    sent_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (notification_id, channel)
);
-- The sender's queue: what is not yet sent, by job.
CREATE INDEX notification_deliveries_unsent ON notification_deliveries (source, channel, not_after)
    WHERE status <> 'sent';
CREATE INDEX notification_deliveries_tenant ON notification_deliveries (tenant_id);

-- +goose Down
DROP TABLE notification_deliveries;
