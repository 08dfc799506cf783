-- Two firms. Mehta & Associates (Mumbai) is the busy one; Iyer Tax Chambers is small.
INSERT INTO tenants (id, name) VALUES
    ('11111111-1111-1111-1111-111111111111', 'Mehta & Associates'),
    ('22222222-2222-2222-2222-222222222222', 'Iyer Tax Chambers');

INSERT INTO profiles (id, tenant_id, full_name, email, phone, role) VALUES
    ('a0000000-0000-0000-0000-000000000001', '11111111-1111-1111-1111-111111111111', 'Anjali Mehta',    'anjali@mehta.example',   '+91 98200 00001', 'admin'),
    ('a0000000-0000-0000-0000-000000000002', '11111111-1111-1111-1111-111111111111', 'Rohan Kapoor',    'rohan@mehta.example',    '+91 98200 00002', 'partner'),
    ('a0000000-0000-0000-0000-000000000003', '11111111-1111-1111-1111-111111111111', 'Sneha Rao',       'sneha@mehta.example',    '+91 98200 00003', 'manager'),
    ('a0000000-0000-0000-0000-000000000004', '11111111-1111-1111-1111-111111111111', 'Vikram Shah',     'vikram@mehta.example',   '+91 98200 00004', 'ca'),
    ('a0000000-0000-0000-0000-000000000005', '11111111-1111-1111-1111-111111111111', 'Priya Nair',      'priya@mehta.example',    '+91 98200 00005', 'advocate'),
    ('a0000000-0000-0000-0000-000000000006', '11111111-1111-1111-1111-111111111111', 'Arjun Desai',     'arjun@mehta.example',    '+91 98200 00006', 'user'),
    ('a0000000-0000-0000-0000-000000000007', '11111111-1111-1111-1111-111111111111', 'Kabir Joshi',     NULL,                     NULL,              'advocate'),
    ('b0000000-0000-0000-0000-000000000001', '22222222-2222-2222-2222-222222222222', 'Lakshmi Iyer',    'lakshmi@iyer.example',   '+91 94440 00001', 'admin'),
    ('b0000000-0000-0000-0000-000000000002', '22222222-2222-2222-2222-222222222222', 'Karthik Menon',   'karthik@iyer.example',   '+91 94440 00002', 'partner'),
    ('b0000000-0000-0000-0000-000000000003', '22222222-2222-2222-2222-222222222222', 'Divya Subramanian','divya@iyer.example',    '+91 94440 00003', 'manager'),
    ('b0000000-0000-0000-0000-000000000004', '22222222-2222-2222-2222-222222222222', 'Suresh Pillai',   'suresh@iyer.example',    '+91 94440 00004', 'ca'),
    ('b0000000-0000-0000-0000-000000000005', '22222222-2222-2222-2222-222222222222', 'Meera Krishnan',  'meera@iyer.example',     '+91 94440 00005', 'advocate'),
    ('b0000000-0000-0000-0000-000000000006', '22222222-2222-2222-2222-222222222222', 'Ravi Kumar',      'ravi@iyer.example',      '+91 94440 00006', 'user');

-- Cases: GST show-cause notices and appeals, with statutory dates around today.
INSERT INTO cases (id, tenant_id, case_number, title, client_name, owner_id, status, reply_due_date, appeal_deadline) VALUES
    ('c0000000-0000-0000-0000-000000000001', '11111111-1111-1111-1111-111111111111', 'GST/SCN/2026/0142', 'ITC mismatch u/s 73 - FY 2021-22',       'Sahyadri Textiles Pvt Ltd', 'a0000000-0000-0000-0000-000000000002', 'active', current_date + 3, NULL),
    ('c0000000-0000-0000-0000-000000000002', '11111111-1111-1111-1111-111111111111', 'GST/APL/2026/0077', 'Appeal against demand order - Rule 86A', 'Konkan Logistics LLP',      'a0000000-0000-0000-0000-000000000002', 'active', NULL, current_date + 7),
    ('c0000000-0000-0000-0000-000000000003', '11111111-1111-1111-1111-111111111111', 'GST/SCN/2026/0188', 'E-way bill penalty u/s 129',             'Deccan Agro Foods',         'a0000000-0000-0000-0000-000000000005', 'active', current_date + 1, NULL),
    ('c0000000-0000-0000-0000-000000000004', '11111111-1111-1111-1111-111111111111', 'GST/AAR/2025/0031', 'Advance ruling - classification of services', 'Bluewave Software',    'a0000000-0000-0000-0000-000000000007', 'active', NULL, NULL),
    ('c0000000-0000-0000-0000-000000000005', '11111111-1111-1111-1111-111111111111', 'GST/SCN/2025/0904', 'Refund rejection - inverted duty',       'Malabar Spices Exports',    'a0000000-0000-0000-0000-000000000002', 'closed', NULL, NULL),
    ('c0000000-0000-0000-0000-000000000011', '22222222-2222-2222-2222-222222222222', 'GST/SCN/2026/1201', 'Fake invoice allegation u/s 74',         'Coromandel Metals',         'b0000000-0000-0000-0000-000000000002', 'active', current_date + 7, NULL),
    ('c0000000-0000-0000-0000-000000000012', '22222222-2222-2222-2222-222222222222', 'GST/APL/2026/1188', 'Appeal - interest on delayed payment',   'Kaveri Textiles',           'b0000000-0000-0000-0000-000000000005', 'active', NULL, current_date + 1);

-- Tasks: open, overdue (some for weeks, so they are past their SLA as well), completed
-- on time, completed late, and cancelled.
INSERT INTO tasks (id, tenant_id, case_id, title, assigned_to, priority, status, due_date, completed_at, created_at) VALUES
    ('d0000000-0000-0000-0000-000000000001', '11111111-1111-1111-1111-111111111111', 'c0000000-0000-0000-0000-000000000001', 'Draft reply to SCN',                    'a0000000-0000-0000-0000-000000000005', 'critical', 'in_progress', now() - interval '2 days',  NULL, now() - interval '6 days'),
    ('d0000000-0000-0000-0000-000000000002', '11111111-1111-1111-1111-111111111111', 'c0000000-0000-0000-0000-000000000001', 'Collect GSTR-2A reconciliation',        'a0000000-0000-0000-0000-000000000004', 'high',     'open',        now() - interval '5 hours', NULL, now() - interval '4 days'),
    ('d0000000-0000-0000-0000-000000000003', '11111111-1111-1111-1111-111111111111', 'c0000000-0000-0000-0000-000000000002', 'Prepare appeal grounds',                'a0000000-0000-0000-0000-000000000005', 'high',     'open',        now() + interval '6 days',  NULL, now() - interval '1 day'),
    ('d0000000-0000-0000-0000-000000000004', '11111111-1111-1111-1111-111111111111', 'c0000000-0000-0000-0000-000000000002', 'Compute pre-deposit (10%)',             'a0000000-0000-0000-0000-000000000004', 'medium',   'open',        now() - interval '9 days',  NULL, now() - interval '20 days'),
    ('d0000000-0000-0000-0000-000000000005', '11111111-1111-1111-1111-111111111111', 'c0000000-0000-0000-0000-000000000003', 'File reply with e-way bill evidence',   'a0000000-0000-0000-0000-000000000007', 'critical', 'open',        now() + interval '20 hours', NULL, now() - interval '2 days'),
    ('d0000000-0000-0000-0000-000000000006', '11111111-1111-1111-1111-111111111111', 'c0000000-0000-0000-0000-000000000003', 'Obtain transporter affidavit',          'a0000000-0000-0000-0000-000000000006', 'low',      'open',        now() - interval '1 hour',  NULL, now() - interval '3 days'),
    ('d0000000-0000-0000-0000-000000000007', '11111111-1111-1111-1111-111111111111', 'c0000000-0000-0000-0000-000000000004', 'Research precedent rulings',            'a0000000-0000-0000-0000-000000000005', 'medium',   'open',        now() + interval '3 days',  NULL, now() - interval '2 days'),
    ('d0000000-0000-0000-0000-000000000008', '11111111-1111-1111-1111-111111111111', 'c0000000-0000-0000-0000-000000000001', 'Client meeting notes',                  'a0000000-0000-0000-0000-000000000003', 'low',      'completed',   now() - interval '3 days',  now() - interval '4 days', now() - interval '10 days'),
    ('d0000000-0000-0000-0000-000000000009', '11111111-1111-1111-1111-111111111111', 'c0000000-0000-0000-0000-000000000002', 'Certified copy of order',               'a0000000-0000-0000-0000-000000000006', 'medium',   'completed',   now() - interval '5 days',  now() - interval '1 day', now() - interval '12 days'),
    ('d0000000-0000-0000-0000-000000000010', '11111111-1111-1111-1111-111111111111', 'c0000000-0000-0000-0000-000000000005', 'Close file',                            'a0000000-0000-0000-0000-000000000003', 'low',      'cancelled',   now() - interval '30 days', NULL, now() - interval '40 days'),
    ('d0000000-0000-0000-0000-000000000011', '22222222-2222-2222-2222-222222222222', 'c0000000-0000-0000-0000-000000000011', 'Cross-examination request',             'b0000000-0000-0000-0000-000000000005', 'critical', 'open',        now() - interval '3 days',  NULL, now() - interval '5 days'),
    ('d0000000-0000-0000-0000-000000000012', '22222222-2222-2222-2222-222222222222', 'c0000000-0000-0000-0000-000000000011', 'Vendor confirmations',                  'b0000000-0000-0000-0000-000000000004', 'medium',   'open',        now() + interval '1 day',   NULL, now() - interval '1 day'),
    ('d0000000-0000-0000-0000-000000000013', '22222222-2222-2222-2222-222222222222', 'c0000000-0000-0000-0000-000000000012', 'Appeal memo (APL-01)',                  'b0000000-0000-0000-0000-000000000005', 'high',     'open',        now() + interval '7 days',  NULL, now() - interval '1 day'),
    ('d0000000-0000-0000-0000-000000000014', '22222222-2222-2222-2222-222222222222', 'c0000000-0000-0000-0000-000000000012', 'Interest computation sheet',            'b0000000-0000-0000-0000-000000000004', 'low',      'completed',   now() - interval '1 day',   now() - interval '20 hours', now() - interval '6 days');

-- A firm-specific SLA: Mehta resolves critical work within 12 hours, not the default 24.
INSERT INTO sla_policies (tenant_id, priority, resolution_hours) VALUES
    ('11111111-1111-1111-1111-111111111111', 'critical', 12);

INSERT INTO automation_rules (id, tenant_id, name, trigger_event, action, is_active) VALUES
    ('e0000000-0000-0000-0000-000000000001', '11111111-1111-1111-1111-111111111111', 'Tell the assignee a task is overdue',      'task_overdue',  'notify_assignee',   true),
    ('e0000000-0000-0000-0000-000000000002', '11111111-1111-1111-1111-111111111111', 'Escalate SLA breaches to managers',        'sla_violation', 'notify_managers',   true),
    ('e0000000-0000-0000-0000-000000000003', '11111111-1111-1111-1111-111111111111', 'Raise priority of SLA breaches',           'sla_violation', 'escalate_priority', true),
    ('e0000000-0000-0000-0000-000000000004', '11111111-1111-1111-1111-111111111111', 'Old rule (switched off)',                  'task_overdue',  'notify_owner',      false),
    ('e0000000-0000-0000-0000-000000000011', '22222222-2222-2222-2222-222222222222', 'Tell the case owner a task is overdue',    'task_overdue',  'notify_owner',      true);
