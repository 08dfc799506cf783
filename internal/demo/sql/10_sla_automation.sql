-- What the SLA & Overdue Check and the Automation Health Check find in the demo
-- (services/sla):
--   * tasks that breach and that some rules cannot act on: one with no assignee and no
--     case, one with no case;
--   * Mehta's "Tell the case owner about SLA breaches" rule, which fails on tasks with
--     no case: four failures in the last 24 hours already, more on the first SLA check,
--     so the health check reports it as failing;
--   * Iyer's only rule, which failed three times this morning on cases that had no
--     owner then: the health check finds it failing, so Iyer Tax Chambers' automation
--     is unhealthy, an incident opens and Lakshmi Iyer (admin) is notified, once.
-- The whole system is "degraded": 2 of 5 active rules are unhealthy.

INSERT INTO automation_rules (id, tenant_id, name, trigger_event, action, is_active, created_at) VALUES
    ('e0000000-0000-0000-0000-000000000005', '11111111-1111-1111-1111-111111111111', 'Tell the case owner about SLA breaches', 'sla_violation', 'notify_owner', true, now() - interval '30 days');

INSERT INTO tasks (id, tenant_id, case_id, title, assigned_to, priority, status, due_date, completed_at, created_at) VALUES
    ('d0000000-0000-0000-0000-000000000021', '11111111-1111-1111-1111-111111111111', NULL, 'Reconcile e-invoices with GSTR-1 (unassigned)', NULL, 'high', 'open', now() - interval '3 hours', NULL, now() - interval '4 days'),
    ('d0000000-0000-0000-0000-000000000022', '11111111-1111-1111-1111-111111111111', NULL, 'Draft rectification application u/s 161', 'a0000000-0000-0000-0000-000000000005', 'medium', 'in_progress', now() + interval '2 days', NULL, now() - interval '8 days'),
    ('d0000000-0000-0000-0000-000000000023', '22222222-2222-2222-2222-222222222222', 'c0000000-0000-0000-0000-000000000011', 'Reply to DRC-01A intimation', 'b0000000-0000-0000-0000-000000000004', 'high', 'open', now() - interval '90 minutes', NULL, now() - interval '2 days');

-- Past executions, in the format the SLA check writes (occurrence: kind and deadline in UTC).
INSERT INTO automation_logs (tenant_id, rule_id, task_id, entity_type, entity_id, occurrence, job_name, status, error, executed_at)
SELECT tenant_id::uuid, rule_id::uuid, task_id::uuid, 'task', task_id::uuid,
       kind || ':' || to_char((now() - deadline_ago) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       'check-sla-and-overdue', status, error, now() - executed_ago
FROM (VALUES
    ('11111111-1111-1111-1111-111111111111', 'e0000000-0000-0000-0000-000000000005', 'd0000000-0000-0000-0000-000000000008', 'sla', interval '30 hours', 'failed',  'task has no case', interval '20 hours'),
    ('11111111-1111-1111-1111-111111111111', 'e0000000-0000-0000-0000-000000000005', 'd0000000-0000-0000-0000-000000000009', 'sla', interval '26 hours', 'failed',  'task has no case', interval '16 hours'),
    ('11111111-1111-1111-1111-111111111111', 'e0000000-0000-0000-0000-000000000005', 'd0000000-0000-0000-0000-000000000010', 'sla', interval '20 hours', 'failed',  'task has no case', interval '9 hours'),
    ('11111111-1111-1111-1111-111111111111', 'e0000000-0000-0000-0000-000000000005', 'd0000000-0000-0000-0000-000000000007', 'sla', interval '12 hours', 'failed',  'task has no case', interval '4 hours'),
    ('11111111-1111-1111-1111-111111111111', 'e0000000-0000-0000-0000-000000000001', 'd0000000-0000-0000-0000-000000000009', 'overdue', interval '5 days', 'success', NULL,         interval '5 days'),
    ('22222222-2222-2222-2222-222222222222', 'e0000000-0000-0000-0000-000000000011', 'd0000000-0000-0000-0000-000000000012', 'overdue', interval '3 days', 'failed',  'case has no owner', interval '7 hours'),
    ('22222222-2222-2222-2222-222222222222', 'e0000000-0000-0000-0000-000000000011', 'd0000000-0000-0000-0000-000000000013', 'overdue', interval '2 days', 'failed',  'case has no owner', interval '6 hours'),
    ('22222222-2222-2222-2222-222222222222', 'e0000000-0000-0000-0000-000000000011', 'd0000000-0000-0000-0000-000000000014', 'overdue', interval '1 day',  'failed',  'case has no owner', interval '5 hours')
) AS l(tenant_id, rule_id, task_id, kind, deadline_ago, status, error, executed_ago);
