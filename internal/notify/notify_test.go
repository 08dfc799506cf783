package notify_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lexhq/gstjobs/internal/notify"
	"github.com/lexhq/gstjobs/internal/notify/smtptest"
	"github.com/lexhq/gstjobs/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	tenant  = "11111111-1111-1111-1111-111111111111"
	other   = "22222222-2222-2222-2222-222222222222"
	asha    = "a0000000-0000-0000-0000-000000000001"
	bina    = "a0000000-0000-0000-0000-000000000002"
	chetan  = "a0000000-0000-0000-0000-000000000003"
	kabir   = "a0000000-0000-0000-0000-000000000004" // no e-mail address
	dev     = "a0000000-0000-0000-0000-000000000005" // an address that is not one
	rejects = "a0000000-0000-0000-0000-000000000006" // the server refuses this one
	from    = "GST Jobs <jobs@firm.example>"
)

var now = time.Date(2026, 3, 10, 8, 0, 0, 0, time.FixedZone("IST", 5*3600+1800))

// seed makes one firm with six people: three reachable by e-mail, one with no
// address, one with an invalid one, one whose mailbox the test server refuses. A
// second firm exists with one person, to show batches stay within their query.
func seed(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	exec(t, pool, `INSERT INTO tenants (id, name) VALUES ($1, 'Mehta & Associates'), ($2, 'Iyer Tax Chambers')`, tenant, other)
	exec(t, pool, `
INSERT INTO profiles (id, tenant_id, full_name, email, role) VALUES
  ($3, $1, 'Asha Rao',    'asha@firm.example',   'partner'),
  ($4, $1, 'Bina Shah',   'bina@firm.example',   'advocate'),
  ($5, $1, 'Chetan Iyer', 'chetan@firm.example', 'ca'),
  ($6, $1, 'Kabir Joshi', NULL,                  'advocate'),
  ($7, $1, 'Dev Patel',   'dev@',                'user'),
  ($8, $1, 'Rita Sen',    'rita@firm.example',   'manager'),
  ('b0000000-0000-0000-0000-000000000001', $2, 'Lakshmi Iyer', 'lakshmi@iyer.example', 'admin')`,
		tenant, other, asha, bina, chetan, kabir, dev, rejects)
}

// batch notifies every person of the first firm once per round (but those excluded),
// as run `run` would.
func batch(round, run string, email bool, notAfter time.Time, exclude ...string) notify.Batch {
	if exclude == nil {
		exclude = []string{}
	}
	return notify.Batch{
		Query: `
SELECT p.tenant_id, p.id AS user_id, 'test_kind' AS kind,
       'Reminder ' || @round || ' for ' || p.full_name AS title,
       'Hello ' || p.full_name AS body,
       'profile' AS entity_type, p.id AS entity_id,
       'test:' || @round || ':' || p.id AS dedupe_key,
       'item ' || @round || ' of ' || p.full_name AS about,
       @not_after::timestamptz AS not_after,
       jsonb_build_object('profile_id', p.id) AS audit_details
FROM profiles p WHERE p.tenant_id = @tenant AND NOT p.id = ANY(@exclude::uuid[])`,
		Args:   pgx.NamedArgs{"round": round, "not_after": notAfter, "tenant": tenant, "exclude": exclude},
		Source: "test-job",
		RunID:  run,
		Email:  email,
	}
}

func exec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("exec %s: %v", firstLine(sql), err)
	}
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", firstLine(sql), err)
	}
	return n
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i > 0 {
		return s[:i]
	}
	return s
}

func newMailer(t *testing.T, url string) *notify.Mailer {
	t.Helper()
	m, err := notify.NewMailer(url, from, notify.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("NewMailer(%q): %v", url, err)
	}
	return m
}

func send(t *testing.T, pool *pgxpool.Pool, m *notify.Mailer, run string) (notify.SendReport, error) {
	t.Helper()
	return notify.SendPending(context.Background(), pool, m, notify.SendOptions{Source: "test-job", RunID: run, Now: now})
}

// runOnce is one run of a job with e-mail on: enqueue round 1 (minus those excluded),
// then send what the run asked for.
func runOnce(t *testing.T, pool *pgxpool.Pool, m *notify.Mailer, run string, exclude ...string) (notify.SendReport, error) {
	t.Helper()
	if _, err := notify.Enqueue(context.Background(), pool, batch("1", run, true, now.Add(time.Hour), exclude...)); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	return send(t, pool, m, run)
}

func problems(rep notify.SendReport) []string {
	var out []string
	for _, p := range rep.Problems {
		out = append(out, p.String())
	}
	slices.Sort(out)
	return out
}

// What is tried: every form of SMTP_URL people will write, and mistakes.
// What must hold: defaults ports by scheme, hides the password, and names the fix.
func TestNewMailer(t *testing.T) {
	t.Parallel()
	ok := []struct{ url, want string }{
		{"smtp://mail.firm.example", "smtp://mail.firm.example:587"},
		{"smtp://mail.firm.example:25", "smtp://mail.firm.example:25"},
		{"smtps://jobs:s3cr%40t@mail.firm.example", "smtps://jobs@mail.firm.example:465"},
		{"smtp://jobs:pw@mail.firm.example:2525/", "smtp://jobs@mail.firm.example:2525"},
	}
	for _, c := range ok {
		m, err := notify.NewMailer(c.url, from)
		if err != nil {
			t.Errorf("NewMailer(%q): %v", c.url, err)
			continue
		}
		if got := m.String(); got != c.want {
			t.Errorf("NewMailer(%q).String() = %q, want %q", c.url, got, c.want)
		}
	}
	if m, err := notify.NewMailer("", ""); m != nil || err != nil {
		t.Errorf("NewMailer(\"\") = %v, %v; want nil, nil (e-mail off)", m, err)
	}
	bad := []struct {
		url, from string
		is        error
		want      string
	}{
		{"http://mail.firm.example", from, notify.ErrInvalidSMTPURL, "must start with smtp://"},
		{"smtp://", from, notify.ErrInvalidSMTPURL, "names no host"},
		{"smtp://mail.firm.example:99999", from, notify.ErrInvalidSMTPURL, "not a port number"},
		{"smtp://u:topsecret@mail.firm.example?tls=no", from, notify.ErrInvalidSMTPURL, "takes no path or parameters"},
		{"smtp://u:topsecret@mail.firm.example:x", from, notify.ErrInvalidSMTPURL, "not a URL"},
		{"smtp://mail.firm.example", "", notify.ErrInvalidSender, "needs a sender address"},
		{"smtp://mail.firm.example", "jobs at firm", notify.ErrInvalidSender, "is not an e-mail address"},
	}
	for _, c := range bad {
		_, err := notify.NewMailer(c.url, c.from)
		if err == nil || !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewMailer(%q, %q) = %v; want %v saying %q", c.url, c.from, err, c.is, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "topsecret") {
			t.Errorf("NewMailer(%q) error shows the password: %v", c.url, err)
		}
	}
}

// What is tried: the same batch enqueued twice.
// What must hold: the first time each of the six people gets one notification and one
// in-app audit row (with the job, run and the batch's own details); the second time
// nothing is created and no audit row is added.
func TestEnqueueIsIdempotent(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	seed(t, pool)
	ctx := context.Background()

	first, err := notify.Enqueue(ctx, pool, batch("1", "run-1", false, now.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if first.InApp != 6 || first.EmailsQueued != 0 {
		t.Errorf("first enqueue = %+v, want 6 in-app and no e-mail (e-mail off)", first)
	}
	second, err := notify.Enqueue(ctx, pool, batch("1", "run-1", false, now.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if second.InApp != 0 {
		t.Errorf("second enqueue created %d notifications, want 0", second.InApp)
	}
	if n := count(t, pool, `SELECT count(*) FROM notifications`); n != 6 {
		t.Errorf("notifications = %d, want 6", n)
	}
	if n := count(t, pool, `
SELECT count(*) FROM audit_log a JOIN notifications n ON n.id = (a.details->>'notification_id')::uuid
WHERE a.action_type = 'notification_sent' AND a.details->>'channel' = 'in_app'
  AND a.details->>'job_name' = 'test-job' AND a.details->>'run_id' = 'run-1'
  AND a.details->>'kind' = 'test_kind' AND a.details->>'profile_id' = n.user_id::text
  AND a.user_id = n.user_id AND a.tenant_id = n.tenant_id`); n != 6 {
		t.Errorf("in-app audit rows with job, run, kind and details = %d, want 6", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM audit_log`); n != 6 {
		t.Errorf("audit rows = %d, want 6 (one per notification, written once)", n)
	}
}

// What is tried: a batch whose query is built on a CTE of its own (With), returning
// beside its deliveries a count over that CTE (Also), with e-mail off and on, twice;
// and an Also without a destination.
// What must hold: Also answers from the same rows the batch delivered (the six people,
// each time, whatever was delivered before), the deliveries are as without With, and
// Also without AlsoInto is refused before anything is written.
func TestEnqueueAnswersAlsoFromItsOwnRows(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	seed(t, pool)
	ctx := context.Background()
	withBatch := func(email bool, into any) notify.Batch {
		b := batch("1", "run-1", email, now.Add(time.Hour))
		b.With = `people AS (SELECT p.* FROM profiles p WHERE p.tenant_id = @tenant AND NOT p.id = ANY(@exclude::uuid[]))`
		b.Query = strings.Replace(b.Query, "FROM profiles p WHERE p.tenant_id = @tenant AND NOT p.id = ANY(@exclude::uuid[])", "FROM people p", 1)
		b.Also = `SELECT count(*)::int FROM people`
		b.AlsoInto = into
		return b
	}
	for i, email := range []bool{false, true} {
		var people int
		enq, err := notify.Enqueue(ctx, pool, withBatch(email, &people))
		if err != nil {
			t.Fatalf("enqueue %d: %v", i, err)
		}
		wantInApp := map[bool]int{false: 6, true: 0}[email]
		if people != 6 || enq.InApp != wantInApp {
			t.Errorf("enqueue %d (e-mail %v): Also = %d, in-app %d; want 6 people and %d in-app", i, email, people, enq.InApp, wantInApp)
		}
		if email && enq.EmailsQueued != 6 {
			t.Errorf("enqueue with e-mail on queued %d e-mails, want 6", enq.EmailsQueued)
		}
	}
	if n := count(t, pool, `SELECT count(*) FROM audit_log WHERE action_type = 'notification_sent'`); n != 6 {
		t.Errorf("audit rows = %d, want 6", n)
	}
	if _, err := notify.Enqueue(ctx, pool, withBatch(false, nil)); err == nil || !strings.Contains(err.Error(), "Also and AlsoInto") {
		t.Errorf("Also without AlsoInto: err = %v, want it refused", err)
	}
}

// What is tried: a batch delivered in-app while e-mail was off, then again with e-mail on.
// What must hold: the second enqueue creates no notification but queues the six
// e-mails, and a third queues none.
func TestEnqueueQueuesEmailForEarlierNotifications(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	seed(t, pool)
	ctx := context.Background()
	if _, err := notify.Enqueue(ctx, pool, batch("1", "run-1", false, now.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	got, err := notify.Enqueue(ctx, pool, batch("1", "run-1", true, now.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if got.InApp != 0 || got.EmailsQueued != 6 {
		t.Errorf("enqueue with e-mail on = %+v, want 0 in-app and 6 e-mails", got)
	}
	got, err = notify.Enqueue(ctx, pool, batch("1", "run-1", true, now.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if got.InApp != 0 || got.EmailsQueued != 0 {
		t.Errorf("enqueue again = %+v, want nothing", got)
	}
}

// What is tried: six e-mails in one run: three good, no address, an invalid address,
// a recipient the server refuses; then a second run; then the missing address is
// filled in and a third run goes.
// What must hold: the three good ones arrive over one connection with the subject,
// sender, recipient and a Message-ID naming the notification; the other three are
// failed with the reason (names and addresses); a second run sends nothing again;
// once Kabir has an address his e-mail goes out, and only his.
func TestSendPending(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	seed(t, pool)
	srv := smtptest.Start(t)
	srv.Reject("rita@firm.example")
	m := newMailer(t, srv.URL())
	ctx := context.Background()

	rep, err := runOnce(t, pool, m, "run-1")
	if err != nil {
		t.Fatalf("SendPending: %v", err)
	}
	if rep.Claimed != 6 || rep.Sent != 3 || rep.Failed != 3 || rep.Pending != 0 {
		t.Errorf("report = claimed %d sent %d failed %d pending %d, want 6 3 3 0", rep.Claimed, rep.Sent, rep.Failed, rep.Pending)
	}
	wantProblems := []string{
		`item 1 of Dev Patel: Dev Patel's e-mail address "dev@" is not valid`,
		`item 1 of Kabir Joshi: Kabir Joshi has no e-mail address`,
		`item 1 of Rita Sen: the SMTP server refused rita@firm.example: sending SMTP RCPT TO command: 550 "5.1.1 No such user here"`,
	}
	if got := problems(rep); !slices.Equal(got, wantProblems) {
		t.Errorf("problems:\n got %q\nwant %q", got, wantProblems)
	}
	if got, want := srv.Recipients(), []string{"asha@firm.example", "bina@firm.example", "chetan@firm.example"}; !slices.Equal(got, want) {
		t.Errorf("server received mail for %q, want %q", got, want)
	}
	if n := srv.Sessions(); n != 1 {
		t.Errorf("SMTP sessions = %d, want 1 (one connection for the run)", n)
	}
	msg := srv.Messages()[0]
	var asha1 string
	if err := pool.QueryRow(ctx, `SELECT id::text FROM notifications WHERE dedupe_key = 'test:1:'||$1`, asha).Scan(&asha1); err != nil {
		t.Fatal(err)
	}
	if got := msg.Subject(); got != "Reminder 1 for Asha Rao" {
		t.Errorf("subject = %q", got)
	}
	if got := msg.Header.Get("Message-Id"); got != "<"+asha1+"@gstjobs>" {
		t.Errorf("Message-ID = %q, want <%s@gstjobs>", got, asha1)
	}
	if got := msg.Header.Get("From"); !strings.Contains(got, "jobs@firm.example") || msg.From != "jobs@firm.example" {
		t.Errorf("From header %q / envelope %q, want jobs@firm.example", got, msg.From)
	}
	if got := msg.Header.Get("To"); !strings.Contains(got, "Asha Rao") || !strings.Contains(got, "<asha@firm.example>") {
		t.Errorf("To = %q, want Asha Rao <asha@firm.example>", got)
	}
	if !strings.Contains(msg.Body, "Hello Asha Rao") {
		t.Errorf("body = %q", msg.Body)
	}
	if n := count(t, pool, `SELECT count(*) FROM notification_deliveries WHERE status = 'sent' AND sent_at IS NOT NULL AND attempts = 1 AND locked_by IS NULL`); n != 3 {
		t.Errorf("sent deliveries = %d, want 3", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM notification_deliveries WHERE status = 'failed' AND last_error <> ''`); n != 3 {
		t.Errorf("failed deliveries with a reason = %d, want 3", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM audit_log WHERE action_type = 'notification_sent' AND details->>'channel' = 'email'
		AND details->>'run_id' = 'run-1' AND details->>'job_name' = 'test-job' AND details ? 'profile_id' AND details ? 'to'`); n != 3 {
		t.Errorf("e-mail audit rows = %d, want 3", n)
	}

	rep, err = runOnce(t, pool, m, "run-2")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 0 || rep.Failed != 3 {
		t.Errorf("second run sent %d failed %d, want 0 sent and the 3 still undeliverable", rep.Sent, rep.Failed)
	}
	if n := len(srv.Messages()); n != 3 {
		t.Errorf("server has %d messages after the second run, want still 3", n)
	}

	exec(t, pool, `UPDATE profiles SET email = 'kabir@firm.example' WHERE id = $1`, kabir)
	rep, err = runOnce(t, pool, m, "run-3")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 1 || rep.Failed != 2 {
		t.Errorf("after fixing Kabir's address: sent %d failed %d, want 1 and 2", rep.Sent, rep.Failed)
	}
	if got := srv.Recipients(); len(got) != 4 || got[3] != "kabir@firm.example" {
		t.Errorf("server recipients = %q, want the three and then kabir@firm.example", got)
	}
	if n := count(t, pool, `SELECT count(*) FROM audit_log WHERE details->>'channel' = 'email'`); n != 4 {
		t.Errorf("e-mail audit rows = %d, want 4 (one per e-mail sent, once)", n)
	}
}

// What is tried: the SMTP server is down (a closed port) for the first run, and back
// on the same address for the second; a third run follows.
// What must hold: the first run returns ErrServerUnavailable, sends nothing, leaves the
// three good e-mails pending with the error and without counting an attempt; the second
// delivers exactly those three; the third sends nothing. Each arrives once.
func TestSendPendingServerDownThenBack(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	seed(t, pool)
	addr := smtptest.ClosedAddr(t)
	m := newMailer(t, smtptest.URL(addr))
	rep, err := runOnce(t, pool, m, "run-1")
	if !errors.Is(err, notify.ErrServerUnavailable) {
		t.Fatalf("SendPending with the server down: err = %v, want ErrServerUnavailable", err)
	}
	if !strings.Contains(err.Error(), "smtp://"+addr) {
		t.Errorf("error %q does not name the server", err)
	}
	if rep.Sent != 0 || rep.Pending != 4 || rep.Failed != 2 {
		// Rita's address is fine as far as we can tell without the server: pending too.
		t.Errorf("report = sent %d pending %d failed %d, want 0, 4, 2", rep.Sent, rep.Pending, rep.Failed)
	}
	if n := count(t, pool, `SELECT count(*) FROM notification_deliveries WHERE status = 'pending' AND attempts = 0
		AND last_error LIKE 'cannot connect to the SMTP server%' AND locked_by IS NULL`); n != 4 {
		t.Errorf("pending deliveries with the connection error and no attempt counted = %d, want 4", n)
	}

	srv := smtptest.StartAt(t, addr)
	srv.Reject("rita@firm.example")
	rep, err = runOnce(t, pool, m, "run-2")
	if err != nil {
		t.Fatalf("SendPending with the server back: %v", err)
	}
	if rep.Sent != 3 || rep.Pending != 0 {
		t.Errorf("second run sent %d pending %d, want 3 and 0", rep.Sent, rep.Pending)
	}
	rep, err = runOnce(t, pool, m, "run-3")
	if err != nil || rep.Sent != 0 {
		t.Errorf("third run: sent %d, err %v; want nothing sent", rep.Sent, err)
	}
	if got, want := srv.Recipients(), []string{"asha@firm.example", "bina@firm.example", "chetan@firm.example"}; !slices.Equal(got, want) {
		t.Errorf("server received %q, want each good address once: %q", got, want)
	}
}

// What is tried: e-mail off (nil Mailer); an e-mail past its not_after; e-mails
// leased by another sender, then by an earlier attempt of the same run; a refused
// address retried run after run.
// What must hold: nothing is sent or claimed in the first three cases; a run takes
// back its own lease; a refused address stops being tried after MaxAttempts.
func TestSendPendingSelection(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	seed(t, pool)
	srv := smtptest.Start(t)
	srv.Reject("rita@firm.example")
	m := newMailer(t, srv.URL())
	ctx := context.Background()

	if _, err := notify.Enqueue(ctx, pool, batch("past", "run-past", true, now.Add(-time.Second))); err != nil {
		t.Fatal(err)
	}
	if rep, err := send(t, pool, nil, "run-past"); err != nil || rep.Claimed != 0 {
		t.Errorf("nil mailer: claimed %d, err %v; want nothing", rep.Claimed, err)
	}
	if rep, err := send(t, pool, m, "run-past"); err != nil || rep.Claimed != 0 {
		t.Errorf("past not_after: claimed %d, err %v; want nothing", rep.Claimed, err)
	}

	if _, err := notify.Enqueue(ctx, pool, batch("leased", "run-x", true, now.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	exec(t, pool, `UPDATE notification_deliveries SET locked_by = 'other-sender', locked_until = now() + interval '1 hour'
		WHERE about LIKE 'item leased%'`)
	if rep, err := send(t, pool, m, "run-x"); err != nil || rep.Claimed != 0 {
		t.Errorf("leased by another sender: claimed %d, err %v; want nothing", rep.Claimed, err)
	}
	exec(t, pool, `UPDATE notification_deliveries SET locked_by = 'run-x' WHERE about LIKE 'item leased%'`)
	rep, err := send(t, pool, m, "run-x")
	if err != nil || rep.Sent != 3 {
		t.Errorf("leased by an earlier attempt of the same run: sent %d, err %v; want 3", rep.Sent, err)
	}

	for i := range 20 {
		run := fmt.Sprint("r", i)
		if _, err := notify.Enqueue(ctx, pool, batch("leased", run, true, now.Add(time.Hour))); err != nil {
			t.Fatal(err)
		}
		if _, err := notify.SendPending(ctx, pool, m, notify.SendOptions{Source: "test-job", RunID: run, Now: now, MaxAttempts: 3}); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, pool, `SELECT attempts FROM notification_deliveries d JOIN notifications n ON n.id = d.notification_id
		WHERE n.user_id = $1 AND d.about LIKE 'item leased%'`, rejects); n != 3 {
		t.Errorf("a refused address was tried %d times, want MaxAttempts = 3", n)
	}
	if n := len(srv.Messages()); n != 3 {
		t.Errorf("server has %d messages, want 3", n)
	}
}

// What is tried: the server is down for a run that queues e-mails for everyone; by
// the next run Bina is no longer among those to notify (say her hearing was
// cancelled); the server is back.
// What must hold: the next run sends the e-mails it asked for, not Bina's, which an
// earlier run queued and no run wants any more.
func TestSendPendingSendsOnlyWhatTheRunAskedFor(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	seed(t, pool)
	addr := smtptest.ClosedAddr(t)
	m := newMailer(t, smtptest.URL(addr))
	if _, err := runOnce(t, pool, m, "run-1"); !errors.Is(err, notify.ErrServerUnavailable) {
		t.Fatalf("first run: err = %v, want ErrServerUnavailable", err)
	}
	srv := smtptest.StartAt(t, addr)
	rep, err := runOnce(t, pool, m, "run-2", bina)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 3 {
		t.Errorf("second run sent %d, want 3 (Asha, Chetan, Rita)", rep.Sent)
	}
	if got, want := srv.Recipients(), []string{"asha@firm.example", "chetan@firm.example", "rita@firm.example"}; !slices.Equal(got, want) {
		t.Errorf("server received %q, want %q", got, want)
	}
	if n := count(t, pool, `SELECT count(*) FROM notification_deliveries d JOIN notifications n ON n.id = d.notification_id
		WHERE n.user_id = $1 AND d.status = 'pending' AND d.wanted_by = 'run-1'`, bina); n != 1 {
		t.Errorf("Bina's delivery should stay pending, wanted by run-1 only")
	}
}

// What is tried: the SMTP server refuses the sender address (MAIL FROM) itself.
// What must hold: SendPending stops at the first refusal with ErrSenderRefused naming
// the sender, sends nothing, and leaves every e-mail with an address pending (not
// failed: the recipients are not at fault), to go out once the sender is fixed.
func TestSendPendingSenderRefused(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	seed(t, pool)
	srv := smtptest.Start(t)
	srv.RejectSender("jobs@firm.example")
	m := newMailer(t, srv.URL())
	rep, err := runOnce(t, pool, m, "run-1")
	if !errors.Is(err, notify.ErrSenderRefused) || !strings.Contains(err.Error(), "jobs@firm.example") {
		t.Fatalf("err = %v, want ErrSenderRefused naming jobs@firm.example", err)
	}
	if rep.Sent != 0 || rep.Pending != 4 || rep.Failed != 2 {
		t.Errorf("report = sent %d pending %d failed %d, want 0, 4, 2 (the two without a valid address)", rep.Sent, rep.Pending, rep.Failed)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("server accepted %d messages, want 0", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM notification_deliveries WHERE status = 'pending' AND last_error LIKE 'the SMTP server refused the sender%'`); n != 4 {
		t.Errorf("pending deliveries with the sender refusal = %d, want 4", n)
	}
}

// What is tried: the server cuts the connection after two messages, when the client
// starts the third (and would again after two more).
// What must hold: SendPending reconnects once and sends the rest, the interrupted
// e-mail included, in the same run: the four deliverable e-mails arrive once each
// over two sessions.
func TestSendPendingReconnectsOnce(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	seed(t, pool)
	srv := smtptest.Start(t)
	srv.DropEach(2)
	m := newMailer(t, srv.URL())
	rep, err := runOnce(t, pool, m, "run-1")
	if err != nil {
		t.Fatalf("SendPending: %v", err)
	}
	if rep.Sent != 4 || rep.Pending != 0 || rep.Failed != 2 {
		t.Errorf("report = sent %d pending %d failed %d, want 4, 0, 2; problems %q", rep.Sent, rep.Pending, rep.Failed, problems(rep))
	}
	if got, want := srv.Recipients(), []string{"asha@firm.example", "bina@firm.example", "chetan@firm.example", "rita@firm.example"}; !slices.Equal(got, want) {
		t.Errorf("server received %q, want %q", got, want)
	}
	if n := srv.Sessions(); n != 2 {
		t.Errorf("sessions = %d, want 2 (one reconnection)", n)
	}
}

// What is tried: two jobs share one Mailer and send at the same time (the service's
// two jobs may run at once).
// What must hold: each gets its own connection and sends its own e-mails, once each,
// and the race detector finds nothing.
func TestSendPendingConcurrentJobsShareAMailer(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	seed(t, pool)
	srv := smtptest.Start(t)
	m := newMailer(t, srv.URL())
	ctx := context.Background()
	errs := make(chan error, 2)
	for _, source := range []string{"job-a", "job-b"} {
		b := batch(source, "run-"+source, true, now.Add(time.Hour))
		b.Source = source
		if _, err := notify.Enqueue(ctx, pool, b); err != nil {
			t.Fatal(err)
		}
		go func() {
			rep, err := notify.SendPending(ctx, pool, m, notify.SendOptions{Source: source, RunID: "run-" + source, Now: now})
			if err == nil && rep.Sent != 4 {
				err = fmt.Errorf("%s sent %d, want 4", source, rep.Sent)
			}
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if n := len(srv.Messages()); n != 8 {
		t.Errorf("server received %d messages, want 8", n)
	}
	if n := srv.Sessions(); n != 2 {
		t.Errorf("sessions = %d, want 2", n)
	}
}

// What is tried: a batch whose rows give one person of the second firm as a recipient
// under the first firm (a job's query that joined people by id alone), beside rows
// that are right.
// What must hold: the database refuses the whole batch (a notification is for a
// person of its own firm: notifications_user_tenant_fkey); nothing is delivered, no
// audit row is written, and the error names the reference.
func TestEnqueueRefusesAnotherFirmsPerson(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	seed(t, pool)
	b := batch("1", "run-cross", false, now.Add(time.Hour))
	b.Query = strings.Replace(b.Query, "WHERE p.tenant_id = @tenant",
		"WHERE (p.tenant_id = @tenant OR p.full_name = 'Lakshmi Iyer')", 1)
	b.Query = strings.Replace(b.Query, "SELECT p.tenant_id,", "SELECT @tenant::uuid AS tenant_id,", 1)
	_, err := notify.Enqueue(context.Background(), pool, b)
	if err == nil || !strings.Contains(err.Error(), "notifications_user_tenant_fkey") {
		t.Fatalf("Enqueue with another firm's person as recipient: err = %v, want a violation of notifications_user_tenant_fkey", err)
	}
	if n := count(t, pool, `SELECT count(*) FROM notifications`); n != 0 {
		t.Errorf("%d notifications written, want 0: the batch is refused whole", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM audit_log`); n != 0 {
		t.Errorf("%d audit rows written, want 0", n)
	}
	// The same batch without the stranger is delivered: the refusal was the stranger's.
	b = batch("1", "run-cross", false, now.Add(time.Hour))
	enq, err := notify.Enqueue(context.Background(), pool, b)
	if err != nil || enq.InApp != 6 {
		t.Fatalf("Enqueue of the firm's own people: %+v, %v; want 6 delivered", enq, err)
	}
}
