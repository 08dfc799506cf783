package notify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	netmail "net/mail"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// ErrServerUnavailable is returned by SendPending when the SMTP server could not be
// reached or the connection was lost and could not be made again. The e-mails it did
// not send stay pending for a later run; those it sent are recorded as sent.
var ErrServerUnavailable = errors.New("SMTP server unavailable")

// ErrSenderRefused is returned by SendPending when the SMTP server refuses the sender
// address itself (MAIL FROM), which no message can get past: the sender setting or
// the SMTP account needs fixing. The e-mails not sent stay pending.
var ErrSenderRefused = errors.New("SMTP server refused the sender")

// Defaults of SendOptions.
const (
	DefaultMaxAttempts = 10
	DefaultLease       = 10 * time.Minute
	DefaultFlushEvery  = 100
)

// SendOptions selects the queue SendPending works through.
type SendOptions struct {
	// Source is the job whose queue is sent (Batch.Source).
	Source string
	// RunID is the run whose Enqueue asked for the e-mails (required); it names the
	// sender in leases and audit rows too.
	RunID string
	// Now is the run's "now": deliveries whose not_after is before it are skipped.
	Now time.Time
	// MaxAttempts stops retrying a delivery after this many tries (default 10). A try
	// counts when the e-mail was put on the wire or found to have no valid address; one
	// left pending because the server was down does not.
	MaxAttempts int
	// Lease is how long the claimed deliveries are reserved for this sender; make it
	// longer than a run can last (default 10 minutes). The same RunID may claim them
	// again, so a redelivered run picks up its own work at once.
	Lease time.Duration
	// FlushEvery is how many outcomes are recorded per statement (default 100): after a
	// crash, at most this many e-mails that went out are not yet marked sent and go out
	// again.
	FlushEvery int
}

// SendReport is what SendPending did in this call.
type SendReport struct {
	// Claimed is the deliveries taken from the queue.
	Claimed int
	// Sent were accepted by the SMTP server; each has its notification_sent audit row.
	Sent int
	// Failed cannot be delivered as things are: no address, an invalid address, a
	// recipient the server refused. They are retried while still relevant, so a
	// corrected address gets through.
	Failed int
	// Pending were not delivered for a reason that may pass (server down, temporary
	// refusal) and are retried by a later run.
	Pending int
	// Problems lists each failed or deferred delivery, except those left pending only
	// because the server could not be reached (the returned error says that once).
	Problems []Problem
	// Tenants holds the same counts per firm, for each firm's slice of the run.
	Tenants map[string]SendCounts
}

// SendCounts is what SendPending did for one firm.
type SendCounts struct {
	Sent, Failed, Pending int
}

func (r *SendReport) count(tenant, status string) {
	if r.Tenants == nil {
		r.Tenants = map[string]SendCounts{}
	}
	c := r.Tenants[tenant]
	switch status {
	case StatusSent:
		c.Sent++
	case StatusFailed:
		c.Failed++
	default:
		c.Pending++
	}
	r.Tenants[tenant] = c
}

// Problem is one delivery that did not go out.
type Problem struct {
	TenantID       string
	NotificationID string
	// About is what the notification is about ("hearing GST/SCN/2026/0142 on ...").
	About string
	// Recipient is the person's name.
	Recipient string
	Reason    string
	// Temporary problems leave the delivery pending; the others mark it failed.
	Temporary bool
}

func (p Problem) String() string {
	if p.About == "" {
		return p.Reason
	}
	return p.About + ": " + p.Reason
}

// Delivery statuses in notification_deliveries.status.
const (
	StatusPending = "pending"
	StatusSent    = "sent"
	StatusFailed  = "failed"
)

const claimSQL = `
UPDATE notification_deliveries d
SET locked_by = @run_id, locked_until = now() + make_interval(secs => @lease_seconds::float8), updated_at = now()
FROM notifications n JOIN profiles p ON p.id = n.user_id
WHERE n.id = d.notification_id
  AND d.channel = 'email'
  AND d.source = @source
  AND d.wanted_by = @run_id
  AND d.status <> 'sent'
  AND (d.not_after IS NULL OR d.not_after >= @now::timestamptz)
  AND d.attempts < @max_attempts::int
  AND (d.locked_until IS NULL OR d.locked_until < now() OR d.locked_by = @run_id)
RETURNING d.id, d.tenant_id::text, n.id::text, n.title, n.body, p.full_name, coalesce(p.email, ''), d.about`

// flushSQL records outcomes and writes the audit row of each e-mail sent. A delivery
// already marked sent is never changed back.
const flushSQL = `
WITH outcome AS (
    SELECT * FROM unnest(@ids::bigint[], @statuses::text[], @errors::text[], @recipients::text[], @attempted::bool[])
        AS o(id, status, error, recipient, attempted)
),
updated AS (
    UPDATE notification_deliveries d
    SET status = o.status,
        attempts = d.attempts + CASE WHEN o.attempted THEN 1 ELSE 0 END,
        last_error = nullif(o.error, ''),
        recipient = coalesce(nullif(o.recipient, ''), d.recipient),
        sent_at = CASE WHEN o.status = 'sent' THEN now() END,
        locked_by = NULL, locked_until = NULL, updated_at = now()
    FROM outcome o
    WHERE d.id = o.id AND d.status <> 'sent'
    RETURNING d.notification_id, d.status, d.audit_details, d.source, d.recipient
)
INSERT INTO audit_log (tenant_id, user_id, action_type, entity_type, entity_id, details, dedupe_key)
SELECT n.tenant_id, n.user_id, 'notification_sent', n.entity_type, n.entity_id::text,
       u.audit_details || jsonb_build_object(
           'channel', 'email', 'kind', n.kind, 'notification_id', n.id, 'to', u.recipient,
           'job_name', u.source, 'run_id', @run_id::text),
       'notification_sent:email:' || n.id
FROM updated u JOIN notifications n ON n.id = u.notification_id
WHERE u.status = 'sent'
ON CONFLICT (dedupe_key) DO NOTHING`

type delivery struct {
	id             int64
	tenantID       string
	notificationID string
	title, body    string
	name, email    string
	about          string
	address        string
}

type outcome struct {
	id        int64
	status    string
	err       string
	recipient string
	attempted bool
}

// SendPending sends the e-mails of opts.Source that the run opts.RunID asked for (its
// Enqueue) and that are not sent yet: new ones and those earlier runs could not
// deliver, over one SMTP connection. It records each outcome:
//
//   - accepted by the server: sent, with its notification_sent audit row (channel email);
//   - no address, an invalid one, or refused by the server (5xx): failed, with the reason;
//   - deferred by the server (4xx) or cut off: pending, retried by a later run;
//   - the server cannot be reached (or the connection is lost and one reconnection
//     fails): every e-mail not yet sent stays pending with the error, and the returned
//     error wraps ErrServerUnavailable; if the server refuses the sender address, the
//     same with ErrSenderRefused.
//
// With a nil Mailer (e-mail off) it does nothing. Nothing that was accepted by the
// server is sent again, except after a crash between the server's acceptance and the
// next flush of outcomes (see FlushEvery).
func SendPending(ctx context.Context, db DB, m *Mailer, opts SendOptions) (SendReport, error) {
	var rep SendReport
	if m == nil {
		return rep, nil
	}
	if opts.Source == "" {
		return rep, errors.New("notify: send: SendOptions.Source is required")
	}
	if opts.RunID == "" {
		return rep, errors.New("notify: send: SendOptions.RunID is required (the run that enqueued the e-mails)")
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.Lease <= 0 {
		opts.Lease = DefaultLease
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = DefaultFlushEvery
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}

	queue, err := claim(ctx, db, opts)
	if err != nil {
		return rep, err
	}
	rep.Claimed = len(queue)
	if len(queue) == 0 {
		return rep, nil
	}

	s := &sender{db: db, m: m, opts: opts, rep: &rep}
	var ready []*delivery
	for _, d := range queue {
		if reason := checkAddress(d); reason != "" {
			s.record(d, outcome{id: d.id, status: StatusFailed, err: reason, recipient: d.email}, true)
			continue
		}
		ready = append(ready, d)
	}
	sendErr := s.sendAll(ctx, ready)
	if err := s.flush(ctx); err != nil {
		return rep, errors.Join(sendErr, err)
	}
	return rep, sendErr
}

func claim(ctx context.Context, db DB, opts SendOptions) ([]*delivery, error) {
	rows, err := db.Query(ctx, claimSQL, pgx.NamedArgs{
		"run_id": opts.RunID, "lease_seconds": opts.Lease.Seconds(), "source": opts.Source,
		"now": opts.Now, "max_attempts": opts.MaxAttempts,
	})
	if err != nil {
		return nil, fmt.Errorf("notify: claim e-mails of %s: %w", opts.Source, err)
	}
	queue, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*delivery, error) {
		d := &delivery{}
		err := r.Scan(&d.id, &d.tenantID, &d.notificationID, &d.title, &d.body, &d.name, &d.email, &d.about)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("notify: claim e-mails of %s: %w", opts.Source, err)
	}
	// The queue comes back in no particular order; send in a stable one.
	slices.SortFunc(queue, func(a, b *delivery) int {
		return cmp.Or(cmp.Compare(a.about, b.about), cmp.Compare(a.name, b.name), cmp.Compare(a.id, b.id))
	})
	return queue, nil
}

// checkAddress says why d cannot be e-mailed, or "".
func checkAddress(d *delivery) (problem string) {
	addr := strings.TrimSpace(d.email)
	if addr == "" {
		return d.name + " has no e-mail address"
	}
	parsed, err := netmail.ParseAddress(addr)
	if err != nil || parsed.Name != "" || parsed.Address != addr {
		return fmt.Sprintf("%s's e-mail address %q is not valid", d.name, addr)
	}
	d.address = addr
	return ""
}

// message builds d's e-mail; it is built just before it is sent, so that a large
// queue is not held in memory as messages.
func (m *Mailer) message(d *delivery) *mail.Msg {
	msg := mail.NewMsg(mail.WithNoDefaultUserAgent())
	msg.FromMailAddress(m.from)
	msg.AddToMailAddress(&netmail.Address{Name: d.name, Address: d.address})
	msg.Subject(d.title)
	msg.SetBodyString(mail.TypeTextPlain, d.body)
	// The same notification always has the same Message-ID, so a copy sent again after
	// a crash can be recognised by mail clients as the same message.
	msg.SetMessageIDWithValue(d.notificationID + "@gstjobs")
	msg.SetGenHeader("X-Gstjobs-Notification", d.notificationID)
	msg.SetDate()
	return msg
}

type sender struct {
	db      DB
	m       *Mailer
	opts    SendOptions
	rep     *SendReport
	pending []outcome
}

// sendAll sends over one connection, reconnecting once if it is lost midway.
func (s *sender) sendAll(ctx context.Context, ready []*delivery) error {
	if len(ready) == 0 {
		return nil
	}
	client, err := s.m.client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		s.leavePending(ready, "cannot connect to the SMTP server: "+err.Error())
		return fmt.Errorf("%w: cannot connect to %s: %v", ErrServerUnavailable, s.m, err)
	}
	defer func() { _ = s.m.client.CloseWithSMTPClient(client) }()

	reconnected := false
	for i, d := range ready {
		if ctx.Err() != nil {
			s.leavePending(ready[i:], "the run stopped before this e-mail was sent: "+ctx.Err().Error())
			return nil
		}
		msg := s.m.message(d)
		err := s.m.client.SendWithSMTPClient(client, msg)
		if reconnect, resend := transportFailure(err, msg); reconnect {
			if reconnected {
				s.leavePending(ready[i:], "lost the connection to the SMTP server again: "+err.Error())
				return fmt.Errorf("%w: lost the connection to %s twice in one run: %v", ErrServerUnavailable, s.m, err)
			}
			reconnected = true
			_ = s.m.client.CloseWithSMTPClient(client)
			var dialErr error
			if client, dialErr = s.m.client.DialToSMTPClientWithContext(ctx); dialErr != nil {
				s.leavePending(ready[i:], "lost the connection to the SMTP server and cannot reconnect: "+dialErr.Error())
				return fmt.Errorf("%w: lost the connection to %s and cannot reconnect: %v", ErrServerUnavailable, s.m, dialErr)
			}
			if resend {
				err = s.m.client.SendWithSMTPClient(client, msg)
			}
		}
		if senderRefused(err) {
			s.leavePending(ready[i:], "the SMTP server refused the sender "+s.m.from.Address+": "+err.Error())
			return fmt.Errorf("%w %s (%s): %v", ErrSenderRefused, s.m.from.Address, s.m, err)
		}
		s.record(d, classify(d, msg, err), true)
		if len(s.pending) >= s.opts.FlushEvery {
			if err := s.flush(ctx); err != nil {
				// Outcomes could not be recorded: stop sending rather than risk sending
				// more that a later run would send again.
				s.leavePending(ready[i+1:], "not sent: recording earlier outcomes failed")
				return err
			}
		}
	}
	return nil
}

func classify(d *delivery, msg *mail.Msg, err error) outcome {
	o := outcome{id: d.id, recipient: d.address}
	if err == nil || msg.IsDelivered() {
		// A failure after the message was accepted (the RSET that follows) does not
		// make it undelivered.
		o.status = StatusSent
		return o
	}
	o.status = StatusPending
	o.err = fmt.Sprintf("sending to %s failed: %v", d.address, err)
	var se *mail.SendError
	if errors.As(err, &se) {
		reply := serverReply(se)
		switch code := se.ErrorCode(); {
		case code >= 500:
			o.status = StatusFailed
			o.err = fmt.Sprintf("the SMTP server refused %s: %s", d.address, reply)
		case code >= 400:
			o.err = fmt.Sprintf("the SMTP server deferred %s: %s", d.address, reply)
		default:
			o.err = fmt.Sprintf("sending to %s failed: %s", d.address, reply)
		}
	}
	return o
}

// record notes an outcome for the next flush and in the report.
func (s *sender) record(d *delivery, o outcome, attempted bool) {
	o.attempted = attempted
	s.pending = append(s.pending, o)
	s.rep.count(d.tenantID, o.status)
	switch o.status {
	case StatusSent:
		s.rep.Sent++
		return
	case StatusFailed:
		s.rep.Failed++
	default:
		s.rep.Pending++
	}
	s.rep.Problems = append(s.rep.Problems, Problem{
		TenantID: d.tenantID, NotificationID: d.notificationID, About: d.about, Recipient: d.name,
		Reason: o.err, Temporary: o.status == StatusPending,
	})
}

// leavePending releases deliveries that were never put on the wire, with the reason.
func (s *sender) leavePending(ds []*delivery, reason string) {
	for _, d := range ds {
		s.pending = append(s.pending, outcome{id: d.id, status: StatusPending, err: reason, recipient: d.address})
		s.rep.Pending++
		s.rep.count(d.tenantID, StatusPending)
	}
}

// flush records the outcomes so far in one statement. It runs even when ctx is done:
// e-mails that went out must be marked sent, or a later run would send them again.
func (s *sender) flush(ctx context.Context) error {
	if len(s.pending) == 0 {
		return nil
	}
	n := len(s.pending)
	ids := make([]int64, n)
	statuses := make([]string, n)
	errs := make([]string, n)
	recipients := make([]string, n)
	attempted := make([]bool, n)
	for i, o := range s.pending {
		ids[i], statuses[i], errs[i], recipients[i], attempted[i] = o.id, o.status, o.err, o.recipient, o.attempted
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := s.db.Exec(fctx, flushSQL, pgx.NamedArgs{
		"ids": ids, "statuses": statuses, "errors": errs, "recipients": recipients,
		"attempted": attempted, "run_id": s.opts.RunID,
	}); err != nil {
		return fmt.Errorf("notify: record e-mail outcomes of %s: %w", s.opts.Source, err)
	}
	s.pending = s.pending[:0]
	return nil
}

// transportFailure tells a broken connection from a message the server did not
// take: an error with no SMTP reply code is the connection's. reconnect says a new
// connection is needed for what follows; resend, that nothing of this message reached
// the server (the check before it, MAIL FROM or RCPT TO failed), so it may go again at
// once. A failure during DATA is not resent in this run: the server may have kept it.
func transportFailure(err error, msg *mail.Msg) (reconnect, resend bool) {
	if err == nil || msg.IsDelivered() {
		return false, false
	}
	if errors.Is(err, smtp.ErrNoConnection) {
		return true, true
	}
	var se *mail.SendError
	if !errors.As(err, &se) || se.ErrorCode() != 0 {
		return false, false
	}
	switch se.Reason {
	case mail.ErrConnCheck, mail.ErrSMTPMailFrom, mail.ErrSMTPRcptTo:
		return true, true
	case mail.ErrSMTPData, mail.ErrWriteContent, mail.ErrSMTPDataClose:
		return true, false
	}
	return false, false
}

// senderRefused tells a permanent refusal of MAIL FROM, which would refuse every message.
func senderRefused(err error) bool {
	var se *mail.SendError
	return errors.As(err, &se) && se.Reason == mail.ErrSMTPMailFrom && se.ErrorCode() >= 500
}

// serverReply is the server's answer without go-mail's trailer naming the message.
func serverReply(se *mail.SendError) string {
	text := se.Error()
	if i := strings.Index(text, ", affected recipient(s)"); i >= 0 {
		text = text[:i]
	} else if i := strings.Index(text, ", affected message ID"); i >= 0 {
		text = text[:i]
	}
	return text
}
