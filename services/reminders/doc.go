// Package reminders is the service that tells people what is coming: it hosts two
// background jobs on the shared worker runtime.
//
// # send-hearing-reminders (daily at 08:00)
//
// Every hearing that is scheduled or adjourned and starts between the run's now and
// now + 24 hours (both ends included) is reminded to its assignee (hearings.assigned_to)
// and to the case owner (cases.owner_id): one notification per person per hearing, one
// only when they are the same person. The notification's dedupe key is hearing, person
// and hearing date, so a second run reminds no one twice and a rescheduled hearing is
// reminded again. Results: hearings_processed (hearings in the window),
// notifications_sent, failed_notifications.
//
// # check-upcoming-deadlines (daily at 07:00)
//
// Every open or in-progress task due within the widest threshold (its assignee is
// alerted) and every active case whose reply to a show-cause notice (reply_due_date) or
// appeal deadline (appeal_deadline) falls within it (its owner is alerted). Thresholds
// are days, DEADLINE_THRESHOLDS, default "7,3,1". Days are calendar days in the firms'
// time zone (JOBS_TIMEZONE, default Asia/Kolkata): a task due at 06:00 IST tomorrow is
// due "tomorrow" at 04:00 IST today, even though in UTC that is two calendar days apart.
// An item is alerted once per threshold, at the tightest threshold it is within (the
// dedupe key is item, threshold and date), and never at a looser threshold after a
// tighter one. A task whose due time has passed is overdue, not upcoming (the SLA job
// reports it); a statutory date is upcoming until its day is over. Results:
// deadlines_found (items within the widest threshold), alerts_sent, failed_alerts.
//
// # Delivery
//
// Both jobs deliver through internal/notify: in-app always (a notifications row),
// and by e-mail when SMTP_URL is set. Each delivery, per channel, writes one audit_log
// row with action_type 'notification_sent' and details {channel (in_app or email),
// kind, notification_id, hearing_id or task_id/case_id, job_name, run_id}. Selection,
// in-app delivery, audit rows and each firm's counts are one SQL statement over all
// firms (a run for more than one firm runs it as two, over disjoint halves of the
// firms, at once); e-mails go out over one SMTP connection per run.
//
// Counting: notifications_sent / alerts_sent count deliveries made by this run, one
// per channel (a reminder delivered in-app and by e-mail counts two; in_app_sent and
// emails_sent split them). failed_notifications / failed_alerts count what this run
// could not deliver: things with no one to notify (a hearing with neither assignee
// nor case owner, a task with no assignee, a case with no owner), e-mails that failed
// (no e-mail address, an invalid one, a recipient the server refused) and e-mails left
// pending because the server could not be reached. Each has a line in the run's
// errors, such as
//
//	hearing GST/SCN/2026/0142 on 2026-03-11 10:30 IST: Kabir Joshi has no e-mail address
//
// Such problems are not retried blindly but reconsidered by each run while the
// hearing or deadline is still ahead: fix the address and use Run Now, and the e-mail
// goes out; what was delivered is never delivered again.
//
// With e-mail off (SMTP_URL unset) a person without an e-mail address is not a
// failure: the in-app notification reaches them.
//
// An SMTP server that cannot be reached (or refuses the sender) makes the run
// failed: the in-app notifications are delivered and committed first, the e-mails
// stay pending, the results still carry the counts, and error_message says how many
// e-mails wait for the next run (or Run Now). Problems with single recipients leave
// the run successful, with the problems counted and listed.
//
// A run for more than one firm (a slot's group, every firm) delivers in two
// firm-disjoint slices at once, each in its own transaction, whose statement also
// counts what it found for its firms. When one fails, the run fails and the
// other stays delivered, its e-mails sent by the failed run all the same; the next
// run (or the retry of a temporary failure) delivers the rest, and nothing twice.
//
// # Configuration
//
//	SMTP_URL             unset: e-mail off, in-app notifications only.
//	                     smtp://user:pass@host:port   STARTTLS when the server offers it
//	                                                  (port 587 when none is given)
//	                     smtps://user:pass@host:port  TLS from the start (port 465 by default)
//	                     User and password are optional and URL-encoded (%40 for @).
//	                     With them, SMTP AUTH uses the best mechanism offered; PLAIN and
//	                     LOGIN only over TLS.
//	SMTP_FROM            the sender, required with SMTP_URL: "GST Jobs <noreply@firm.example>".
//	DEADLINE_THRESHOLDS  days before a deadline to alert at, default "7,3,1"; 0 means
//	                     "due today".
//	JOBS_TIMEZONE        the firms' time zone (shared with every service).
//
// Undelivered e-mails are in notification_deliveries (see internal/notify).
package reminders
