-- +goose Up
-- A notification is for a person of its own firm, and an automation log row is of a
-- rule of its own firm: one reference each, to (id, tenant_id), says both what the
-- separate references to the person (the rule) and to the firm said, and also that
-- the two belong together, which nothing enforced before.
--
-- It is also one check a row instead of two. The jobs write their notifications in
-- bulk (180,000 hearing reminders in a run), and PostgreSQL checks a reference with
-- one lookup a row: each reference dropped is about 0.5 s of such a run on 2 cores.
--
-- audit_log keeps no reference to tenants, as it never had one to its user_id or
-- entity_id: it is an append-only record that outlives what it names, and the lookup
-- was paid a row on the bulk paths. What it records is vouched for where it is
-- written: a notification's audit row comes in the statement that writes the
-- notification, under the reference above; a Run Now's row names the firm of the
-- signed-in person who pressed it; a run's row names no firm (its firms' slices go to
-- job_run_tenants, which keeps its reference to tenants).
CREATE UNIQUE INDEX IF NOT EXISTS profiles_id_tenant ON profiles (id, tenant_id);
CREATE UNIQUE INDEX IF NOT EXISTS automation_rules_id_tenant ON automation_rules (id, tenant_id);

ALTER TABLE notifications
    ADD CONSTRAINT notifications_user_tenant_fkey FOREIGN KEY (user_id, tenant_id) REFERENCES profiles (id, tenant_id),
    DROP CONSTRAINT IF EXISTS notifications_user_id_fkey,
    DROP CONSTRAINT IF EXISTS notifications_tenant_id_fkey;

ALTER TABLE automation_logs
    ADD CONSTRAINT automation_logs_rule_tenant_fkey FOREIGN KEY (rule_id, tenant_id) REFERENCES automation_rules (id, tenant_id),
    DROP CONSTRAINT IF EXISTS automation_logs_rule_id_fkey,
    DROP CONSTRAINT IF EXISTS automation_logs_tenant_id_fkey;

ALTER TABLE audit_log DROP CONSTRAINT IF EXISTS audit_log_tenant_id_fkey;

-- +goose Down
ALTER TABLE audit_log ADD CONSTRAINT audit_log_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE automation_logs
    ADD CONSTRAINT automation_logs_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id),
    ADD CONSTRAINT automation_logs_rule_id_fkey FOREIGN KEY (rule_id) REFERENCES automation_rules (id),
    DROP CONSTRAINT IF EXISTS automation_logs_rule_tenant_fkey;
ALTER TABLE notifications
    ADD CONSTRAINT notifications_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id),
    ADD CONSTRAINT notifications_user_id_fkey FOREIGN KEY (user_id) REFERENCES profiles (id),
    DROP CONSTRAINT IF EXISTS notifications_user_tenant_fkey;
DROP INDEX IF EXISTS automation_rules_id_tenant;
DROP INDEX IF EXISTS profiles_id_tenant;
