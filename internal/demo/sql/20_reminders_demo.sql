-- Hearings and deadlines for the reminders service (send-hearing-reminders,
-- check-upcoming-deadlines), on top of 00_base.sql.
--
-- Hearings are set at the next 10:00, 10:30, 11:00 ... in Kolkata after the demo is
-- loaded: tomorrow morning when it is loaded after those hours, this morning
-- otherwise; either way inside the 24-hour reminder window, so Run Now finds them.
-- Run Now on Hearing Reminders with the data as loaded: 5 hearings, 8 reminders
-- (with e-mail on, 7 e-mails and one failure: Kabir Joshi has no e-mail address).
-- The guide's "hearings with missing contact details" query lists Kabir's hearing.
INSERT INTO hearings (id, tenant_id, case_id, hearing_date, forum, assigned_to, status)
SELECT v.id::uuid, c.tenant_id, c.id,
       CASE WHEN v.at IS NULL THEN now() + v.later
            WHEN today_at > now() THEN today_at
            ELSE today_at + interval '1 day' END + coalesce(v.shift, interval '0'),
       v.forum, v.assigned_to::uuid, v.status
FROM (VALUES
    -- Owner Rohan Kapoor, assignee Priya Nair: both reminded.
    ('f2000000-0000-0000-0000-000000000001', 'c0000000-0000-0000-0000-000000000001', time '10:30', NULL::interval, NULL::interval,
     'Joint Commissioner (Appeals), Mumbai', 'a0000000-0000-0000-0000-000000000005', 'scheduled'),
    -- Priya Nair owns the case and argues it: one reminder.
    ('f2000000-0000-0000-0000-000000000002', 'c0000000-0000-0000-0000-000000000003', time '11:00', NULL, NULL,
     'Deputy Commissioner, State Tax, Pune', 'a0000000-0000-0000-0000-000000000005', 'scheduled'),
    -- Kabir Joshi (no e-mail, no phone) owns and argues it: in-app only; an e-mail
    -- failure when SMTP_URL is set.
    ('f2000000-0000-0000-0000-000000000003', 'c0000000-0000-0000-0000-000000000004', time '11:30', NULL, NULL,
     'Authority for Advance Ruling, Maharashtra', 'a0000000-0000-0000-0000-000000000007', 'scheduled'),
    -- Adjourned hearings are reminded too. Owner Rohan Kapoor, assignee Vikram Shah.
    ('f2000000-0000-0000-0000-000000000004', 'c0000000-0000-0000-0000-000000000002', time '14:30', NULL, NULL,
     'GST Appellate Tribunal, Mumbai Bench', 'a0000000-0000-0000-0000-000000000004', 'adjourned'),
    -- Iyer Tax Chambers: owner Karthik Menon, assignee Meera Krishnan.
    ('f2000000-0000-0000-0000-000000000005', 'c0000000-0000-0000-0000-000000000011', time '10:00', NULL, NULL,
     'Additional Commissioner, CGST Chennai', 'b0000000-0000-0000-0000-000000000005', 'scheduled'),
    -- In 30 hours: outside the window, reminded by a later run.
    ('f2000000-0000-0000-0000-000000000006', 'c0000000-0000-0000-0000-000000000012', NULL, interval '30 hours', NULL,
     'Appellate Authority, Chennai', 'b0000000-0000-0000-0000-000000000005', 'scheduled'),
    -- Cancelled: never reminded.
    ('f2000000-0000-0000-0000-000000000007', 'c0000000-0000-0000-0000-000000000003', time '12:00', NULL, NULL,
     'Deputy Commissioner, State Tax, Pune', 'a0000000-0000-0000-0000-000000000005', 'cancelled'),
    -- Yesterday's hearing, completed: in the past.
    ('f2000000-0000-0000-0000-000000000008', 'c0000000-0000-0000-0000-000000000001', time '10:30', NULL, interval '-2 days',
     'Joint Commissioner (Appeals), Mumbai', 'a0000000-0000-0000-0000-000000000005', 'completed')
) AS v(id, case_id, at, later, shift, forum, assigned_to, status)
JOIN cases c ON c.id = v.case_id::uuid
CROSS JOIN LATERAL (
    SELECT (((now() AT TIME ZONE 'Asia/Kolkata')::date + v.at) AT TIME ZONE 'Asia/Kolkata') AS today_at
) AS t;

-- Deadlines. 00_base.sql already has tasks due in 20 hours, 1, 3, 6 and 7 days, replies
-- to show-cause notices due in 1, 3 and 7 days and appeals due in 1 and 7 days. Added
-- here: a task at 2 days (3-day threshold), Kabir's task at 4 days (7-day threshold,
-- e-mail fails), an unassigned task and an ownerless case (failed alerts with reasons),
-- a task beyond every threshold, a case on hold (not alerted) and a reply due today.
INSERT INTO cases (id, tenant_id, case_number, title, client_name, owner_id, status, reply_due_date, appeal_deadline) VALUES
    ('c2000000-0000-0000-0000-000000000001', '11111111-1111-1111-1111-111111111111', 'GST/SCN/2026/0215', 'Blocked ITC u/s 17(5) - FY 2022-23', 'Western Ghats Resorts',
     NULL, 'active', (now() AT TIME ZONE 'Asia/Kolkata')::date + 2, NULL),
    ('c2000000-0000-0000-0000-000000000002', '11111111-1111-1111-1111-111111111111', 'GST/APL/2026/0093', 'Appeal - classification of ready-to-eat snacks', 'Vidarbha Foods',
     'a0000000-0000-0000-0000-000000000002', 'on_hold', NULL, (now() AT TIME ZONE 'Asia/Kolkata')::date + 3),
    ('c2000000-0000-0000-0000-000000000003', '22222222-2222-2222-2222-222222222222', 'GST/SCN/2026/1230', 'Excess ITC claimed in GSTR-3B', 'Nilgiri Tea Traders',
     'b0000000-0000-0000-0000-000000000002', 'active', (now() AT TIME ZONE 'Asia/Kolkata')::date, NULL);

INSERT INTO tasks (id, tenant_id, case_id, title, assigned_to, priority, status, due_date, created_at) VALUES
    ('d2000000-0000-0000-0000-000000000001', '11111111-1111-1111-1111-111111111111', 'c0000000-0000-0000-0000-000000000001', 'Prepare written submissions',
     'a0000000-0000-0000-0000-000000000005', 'high', 'open', now() + interval '2 days', now() - interval '1 day'),
    ('d2000000-0000-0000-0000-000000000002', '11111111-1111-1111-1111-111111111111', 'c0000000-0000-0000-0000-000000000004', 'Draft rejoinder to the ruling authority',
     'a0000000-0000-0000-0000-000000000007', 'medium', 'open', now() + interval '4 days', now() - interval '2 days'),
    ('d2000000-0000-0000-0000-000000000003', '11111111-1111-1111-1111-111111111111', 'c0000000-0000-0000-0000-000000000002', 'Obtain certified copy of the demand order',
     NULL, 'high', 'open', now() + interval '1 day', now() - interval '1 day'),
    ('d2000000-0000-0000-0000-000000000004', '22222222-2222-2222-2222-222222222222', 'c0000000-0000-0000-0000-000000000011', 'Reconcile GSTR-2B with purchase register',
     'b0000000-0000-0000-0000-000000000004', 'medium', 'in_progress', now() + interval '10 days', now() - interval '1 day');
