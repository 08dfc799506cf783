-- +goose Up
-- One row per period in which a firm's automation was unhealthy, as judged by the
-- automation-health-check job (services/sla). A firm has at most one open incident
-- (closed_at IS NULL); its admins are notified when it opens, not on every run, and a
-- new incident can open only after the previous one closed.
CREATE TABLE automation_health_incidents (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL REFERENCES tenants(id),
    opened_at      timestamptz NOT NULL,
    closed_at      timestamptz,
    opened_run_id  uuid,
    closed_run_id  uuid,
    -- Why it opened, in words for people: ["SLA & Overdue Check has not succeeded for 2h", ...].
    reasons        jsonb NOT NULL DEFAULT '[]'::jsonb,
    CHECK (closed_at IS NULL OR closed_at >= opened_at)
);
CREATE UNIQUE INDEX automation_health_incidents_one_open
    ON automation_health_incidents (tenant_id) WHERE closed_at IS NULL;
CREATE INDEX automation_health_incidents_tenant
    ON automation_health_incidents (tenant_id, opened_at DESC);

-- +goose Down
DROP TABLE automation_health_incidents;
