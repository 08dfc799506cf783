// Package notify delivers the notifications jobs produce: in-app (a row in
// notifications) and, when an SMTP server is configured, by e-mail. Every delivery,
// per channel, writes one audit_log row with action_type 'notification_sent'.
//
// A job describes what it wants delivered as one SQL query (a [Batch]) and delivery
// happens in two steps:
//
//  1. [Enqueue] runs one statement over all tenants: it inserts the notifications
//     (ON CONFLICT (dedupe_key) DO NOTHING, so nothing is delivered twice), writes the
//     in-app audit rows of the new ones and, with e-mail on, queues one e-mail per
//     notification in notification_deliveries and marks the batch's unsent e-mails
//     as wanted by this run. Call it inside the job's transaction.
//  2. [SendPending] sends the e-mails this run wanted that are not sent yet (new ones
//     and those earlier runs could not deliver), over one SMTP connection, and
//     records each outcome in batches: sent (with its audit row, channel 'email'),
//     failed (no or invalid address, recipient refused: tried again by the next run
//     that still wants it, so a corrected address gets through) or pending (server
//     down or deferring: the next run that wants it retries it). An e-mail no later
//     run wants (the hearing was cancelled) is never sent late. A server that cannot
//     be reached is reported once, as an error wrapping [ErrServerUnavailable]; the
//     in-app deliveries of step 1 are already committed.
//
// Deliveries are leased to the sender that claimed them, so two senders never send the
// same e-mail, and a lease left by a crashed sender expires. An e-mail accepted by the
// server is never sent again, except when the process dies between the server's
// acceptance and the recording of the outcome (at most [SendOptions.FlushEvery]
// e-mails); the Message-ID is the notification's id, so such a copy is recognisable.
//
// To see what did not go out:
//
//	SELECT d.status, d.attempts, d.last_error, d.about, p.full_name, d.recipient
//	FROM notification_deliveries d
//	JOIN notifications n ON n.id = d.notification_id
//	JOIN profiles p ON p.id = n.user_id
//	WHERE d.status <> 'sent' ORDER BY d.updated_at DESC;
package notify
