// Package sla runs two background jobs: the SLA & Overdue Check
// (check-sla-and-overdue, every 15 minutes) and the Automation Health Check
// (automation-health-check, daily). [Jobs] builds them for jobservice.Main; each run
// takes "now" from worker.Run.Now and works on every firm at once, in a handful of
// set-based statements.
//
// # SLA & Overdue Check
//
// A task is overdue when it is open or in progress and its due date is before now
// (due exactly now is not overdue; completed and cancelled tasks never are). It
// violates its SLA when it is open or in progress and created_at plus the resolution
// hours of its priority's policy (the firm's own row, else the default row) is before
// now. Each such breach fires every active automation rule of the firm with the
// matching trigger (task_overdue, sla_violation) once: automation_logs records the
// fire with occurrence = kind and deadline ("overdue:2026-03-10T09:00:00.000000Z"),
// and its unique key makes a re-run fire nothing. Actions: notify_assignee,
// notify_owner (the case owner), notify_managers (every manager of the firm) write an
// in-app notification and a notification_sent audit row each, with dedupe keys made
// of rule, task, occurrence and recipient; escalate_priority raises the task one
// level (critical stays critical). An action that cannot be carried out (no assignee,
// no case or owner, no managers, a recipient of another firm) is recorded as a failed
// fire with the reason and reported in the run's errors; the other firms and rules go
// ahead. Failed fires are not retried; they feed the health check.
//
// A breach fires again only when its deadline moves later and is missed again: a
// task rescheduled into the future stops counting, and missing the new due date is a
// new breach. A deadline that moves earlier is the same breach. That is what keeps
// escalation from churning: raising a priority shortens the SLA, which moves the SLA
// deadline earlier, so escalate_priority raises a breaching task one level once, not
// one level per run until it is critical. When an escalation creates a new SLA breach
// (a medium task old enough to breach high's SLA), the same run acts on it, in a
// second pass, so the next run has nothing left to do.
//
// A run fires at most SLA_MAX_FIRES_PER_RUN (20,000) rules, oldest deadlines first;
// results.automation_backlog says how many are left for the next runs. A first run
// over a large backlog thereby stays far inside the job's timeout instead of rolling
// back and starting over every 15 minutes. A pass that fires 2,000 rules or more
// carries out its actions in two firm-disjoint halves at once, the second in a
// transaction of its own: a run that fails after that half committed leaves it in
// place, whole firms' fires with all their notifications and audit rows, and the next
// run carries out the rest, firing nothing twice.
//
// # Automation Health Check
//
// Over the 24 hours before now, a rule is failing when it failed at least
// AUTOMATION_HEALTH_MIN_FAILURES (3) times and in at least
// AUTOMATION_HEALTH_FAILURE_PERCENT (50) % of its executions; it is not firing when a
// breach of its trigger older than the SLA check's alert threshold (30 minutes) has
// no fire, while the rule has existed that long. A job is stale when its last
// successful execution in audit_log is older than its catalog StaleAfter, or when it
// never succeeded and the system (its first recorded execution) is older than that;
// the health check itself is running, so it is not stale.
//
// Health, for the system (all active rules) and for each firm (its own rules):
// unhealthy if the SLA check is stale, two or more jobs are stale, or more than half
// of the rules are unhealthy; degraded if any rule is unhealthy or any job stale;
// healthy otherwise. A firm that is unhealthy has one open row in
// automation_health_incidents; its admins are notified in-app when it opens, and not
// again until it has closed (the firm is no longer unhealthy) and a new one opens.
package sla
