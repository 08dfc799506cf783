-- +goose Up
-- The practice-management domain the jobs read, plus audit_log that every job run
-- writes. Every domain table carries tenant_id; a tenant is one law or CA firm.

CREATE TABLE tenants (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    timezone   text NOT NULL DEFAULT 'Asia/Kolkata',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE profiles (
    id         uuid PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenants(id),
    full_name  text NOT NULL,
    email      text,
    phone      text,
    role       text NOT NULL CHECK (role IN ('admin','partner','manager','ca','advocate','user')),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX profiles_tenant_role ON profiles (tenant_id, role);

CREATE TABLE cases (
    id                   uuid PRIMARY KEY,
    tenant_id            uuid NOT NULL REFERENCES tenants(id),
    case_number          text NOT NULL,
    title                text NOT NULL,
    client_name          text,
    owner_id             uuid REFERENCES profiles(id),
    status               text NOT NULL DEFAULT 'active' CHECK (status IN ('active','on_hold','closed')),
    -- Statutory dates that deadline alerts watch.
    reply_due_date       date,
    appeal_deadline      date,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cases_tenant ON cases (tenant_id, status);

CREATE TABLE hearings (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    case_id      uuid NOT NULL REFERENCES cases(id),
    hearing_date timestamptz NOT NULL,
    forum        text,
    assigned_to  uuid REFERENCES profiles(id),
    status       text NOT NULL DEFAULT 'scheduled' CHECK (status IN ('scheduled','adjourned','completed','cancelled')),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hearings_date ON hearings (hearing_date);

CREATE TABLE tasks (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    case_id      uuid REFERENCES cases(id),
    title        text NOT NULL,
    assigned_to  uuid REFERENCES profiles(id),
    priority     text NOT NULL DEFAULT 'medium' CHECK (priority IN ('critical','high','medium','low')),
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open','in_progress','completed','cancelled')),
    due_date     timestamptz,
    completed_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
-- The jobs scan open tasks only; a partial index keeps that cheap at millions of rows.
CREATE INDEX tasks_open_due ON tasks (due_date) WHERE status IN ('open','in_progress');
CREATE INDEX tasks_tenant ON tasks (tenant_id);

-- How long a task of each priority may stay open before it breaches its SLA.
-- A tenant without a row for a priority falls back to the row with tenant_id NULL.
CREATE TABLE sla_policies (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid REFERENCES tenants(id),
    priority         text NOT NULL CHECK (priority IN ('critical','high','medium','low')),
    resolution_hours integer NOT NULL CHECK (resolution_hours > 0),
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX sla_policies_tenant_priority ON sla_policies (coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid), priority);
INSERT INTO sla_policies (tenant_id, priority, resolution_hours) VALUES
    (NULL, 'critical', 24), (NULL, 'high', 72), (NULL, 'medium', 168), (NULL, 'low', 336);

CREATE TABLE automation_rules (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants(id),
    name          text NOT NULL,
    trigger_event text NOT NULL CHECK (trigger_event IN ('task_overdue','sla_violation','deadline_approaching','hearing_upcoming')),
    action        text NOT NULL CHECK (action IN ('notify_assignee','notify_owner','notify_managers','escalate_priority')),
    is_active     boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX automation_rules_tenant ON automation_rules (tenant_id, trigger_event) WHERE is_active;

-- One row per automation rule a job fired. occurrence says which occurrence of the
-- event it was (for an overdue task: the due date it missed), so a rule fires once per
-- violation and again only if the task is rescheduled and breaches again.
CREATE TABLE automation_logs (
    id          bigserial PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    rule_id     uuid NOT NULL REFERENCES automation_rules(id),
    task_id     uuid REFERENCES tasks(id),
    entity_type text NOT NULL DEFAULT 'task',
    entity_id   uuid NOT NULL,
    occurrence  text NOT NULL,
    run_id      uuid,
    job_name    text,
    status      text NOT NULL DEFAULT 'success' CHECK (status IN ('success','failed')),
    error       text,
    executed_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (rule_id, entity_id, occurrence)
);
CREATE INDEX automation_logs_executed ON automation_logs (executed_at);

CREATE TABLE notifications (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    user_id     uuid NOT NULL REFERENCES profiles(id),
    kind        text NOT NULL,
    title       text NOT NULL,
    body        text NOT NULL DEFAULT '',
    entity_type text,
    entity_id   uuid,
    -- Makes delivery idempotent: a job re-run never notifies the same thing twice.
    dedupe_key  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    read_at     timestamptz
);
CREATE INDEX notifications_user ON notifications (user_id, created_at DESC);

CREATE TABLE analytics_snapshots (
    id            bigserial PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants(id),
    snapshot_date date NOT NULL,
    metric_type   text NOT NULL,
    metric_value  numeric NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, snapshot_date, metric_type)
);

-- The system's own record. Job executions, manual triggers and notifications land
-- here. dedupe_key makes every writer idempotent under at-least-once delivery.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    tenant_id   uuid REFERENCES tenants(id),
    user_id     uuid,
    action_type text NOT NULL,
    entity_type text,
    entity_id   text,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    dedupe_key  text UNIQUE,
    "timestamp" timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_action_time ON audit_log (action_type, "timestamp" DESC);
CREATE INDEX audit_log_job_time ON audit_log ((details->>'job_name'), "timestamp" DESC)
    WHERE action_type = 'background_job_execution';

-- +goose Down
DROP TABLE audit_log, analytics_snapshots, notifications, automation_logs,
    automation_rules, sla_policies, tasks, hearings, cases, profiles, tenants;
