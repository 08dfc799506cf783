package reminders_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/notify"
	"github.com/lexhq/gstjobs/internal/notify/smtptest"
	"github.com/lexhq/gstjobs/services/reminders"
)

const hearingJob = catalog.SendHearingReminders

// The daily run at 08:00 in Kolkata.
var morning = ist(2026, 3, 10, 8, 0, 0)

const from = "GST Jobs <jobs@mehta.example>"

// What is tried: hearings at the edges of the 24-hour window and in every status.
// What must hold: a hearing starting exactly now and one exactly 24 h away are
// reminded; one a second past 24 h, one a second in the past, one in 30 h, and
// completed or cancelled ones are not; scheduled and adjourned ones are.
func TestHearingWindowEdges(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	firm := w.tenant("Mehta & Associates")
	priya := w.person(firm, "Priya Nair", "priya@mehta.example")
	rohan := w.person(firm, "Rohan Kapoor", "rohan@mehta.example")
	c := w.legalCase(firm, "GST/SCN/2026/0142", rohan)

	in := map[string]string{
		"starts now":        w.hearing(c, priya, morning, "scheduled"),
		"in 1 hour":         w.hearing(c, priya, morning.Add(time.Hour), "scheduled"),
		"adjourned, in 3 h": w.hearing(c, priya, morning.Add(3*time.Hour), "adjourned"),
		"exactly 24 h away": w.hearing(c, priya, morning.Add(24*time.Hour), "scheduled"),
	}
	out := map[string]string{
		"24 h and 1 s away": w.hearing(c, priya, morning.Add(24*time.Hour+time.Second), "scheduled"),
		"started 1 s ago":   w.hearing(c, priya, morning.Add(-time.Second), "scheduled"),
		"in 30 hours":       w.hearing(c, priya, morning.Add(30*time.Hour), "scheduled"),
		"completed, in 2 h": w.hearing(c, priya, morning.Add(2*time.Hour), "completed"),
		"cancelled, in 2 h": w.hearing(c, priya, morning.Add(2*time.Hour), "cancelled"),
	}

	rep := mustRun(t, w.jobs(reminders.Config{}), hearingJob, morning)
	results(t, rep, map[string]int{"hearings_processed": 4, "notifications_sent": 8, "failed_notifications": 0})
	if len(rep.Errors) != 0 {
		t.Errorf("errors = %q, want none", rep.Errors)
	}
	reminded := w.strings(`SELECT DISTINCT entity_id::text FROM notifications WHERE kind = 'hearing_reminder'`)
	for name, id := range in {
		if !slices.Contains(reminded, id) {
			t.Errorf("hearing %s was not reminded", name)
		}
	}
	for name, id := range out {
		if slices.Contains(reminded, id) {
			t.Errorf("hearing %s was reminded; it is outside the window", name)
		}
	}
}

// What is tried: who is reminded, for hearings whose assignee and owner are two
// people, the same person, only one of them, neither, or a person of another firm.
// What must hold: one notification per person per hearing; a hearing with nobody to
// remind counts as a failed notification with a reason naming the hearing.
func TestHearingRecipients(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	firm := w.tenant("Mehta & Associates")
	otherFirm := w.tenant("Iyer Tax Chambers")
	priya := w.person(firm, "Priya Nair", "priya@mehta.example")
	rohan := w.person(firm, "Rohan Kapoor", "rohan@mehta.example")
	lakshmi := w.person(otherFirm, "Lakshmi Iyer", "lakshmi@iyer.example")

	at := ist(2026, 3, 10, 10, 30, 0)
	both := w.hearing(w.legalCase(firm, "GST/SCN/2026/0001", rohan), priya, at, "scheduled")
	same := w.hearing(w.legalCase(firm, "GST/SCN/2026/0002", priya), priya, at, "scheduled")
	ownerOnly := w.hearing(w.legalCase(firm, "GST/SCN/2026/0003", rohan), "", at, "scheduled")
	assigneeOnly := w.hearing(w.legalCase(firm, "GST/SCN/2026/0004", ""), priya, at, "scheduled")
	w.hearing(w.legalCase(firm, "GST/SCN/2026/0005", ""), "", at, "scheduled")
	// A hearing assigned to someone of another firm reminds the owner only.
	foreign := w.hearing(w.legalCase(firm, "GST/SCN/2026/0006", rohan), lakshmi, at, "scheduled")

	rep := mustRun(t, w.jobs(reminders.Config{}), hearingJob, morning)
	results(t, rep, map[string]int{"hearings_processed": 6, "notifications_sent": 6, "failed_notifications": 1})
	wantErrors := []string{"hearing GST/SCN/2026/0005 on 2026-03-10 10:30 IST: nobody to remind: the hearing has no assignee and the case has no owner"}
	if !slices.Equal(rep.Errors, wantErrors) {
		t.Errorf("errors:\n got %q\nwant %q", rep.Errors, wantErrors)
	}
	got := w.strings(`SELECT entity_id || ' ' || user_id FROM notifications`)
	want := []string{both + " " + priya, both + " " + rohan, same + " " + priya, ownerOnly + " " + rohan,
		assigneeOnly + " " + priya, foreign + " " + rohan}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("notifications (hearing user):\n got %q\nwant %q", got, want)
	}
	var body string
	if err := w.pool.QueryRow(t.Context(), `SELECT body FROM notifications WHERE entity_id = $1`, same).Scan(&body); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, "assignee and case owner") {
		t.Errorf("body of the reminder to the assignee who owns the case = %q, want it to say both", body)
	}
	var title string
	if err := w.pool.QueryRow(t.Context(), `SELECT title FROM notifications WHERE entity_id = $1`, ownerOnly).Scan(&title); err != nil {
		t.Fatal(err)
	}
	if want := "Hearing Tue 10 Mar 2026, 10:30 IST: GST/SCN/2026/0003"; title != want {
		t.Errorf("title = %q, want %q (the firm's local time)", title, want)
	}
}

// What is tried: a run with e-mail on, the same run again, then one hearing moved
// by an hour and a third run.
// What must hold: the first run delivers every reminder in-app and by e-mail (over
// one SMTP connection) with one audit row per delivery; the second sends nothing, the
// SMTP server receives nothing new and no audit row is added; the moved hearing is
// reminded again, to both people, in-app and by e-mail.
func TestHearingRemindersAreIdempotent(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	srv := smtptest.Start(t)
	firm := w.tenant("Mehta & Associates")
	priya := w.person(firm, "Priya Nair", "priya@mehta.example")
	rohan := w.person(firm, "Rohan Kapoor", "rohan@mehta.example")
	vikram := w.person(firm, "Vikram Shah", "vikram@mehta.example")
	h1 := w.hearing(w.legalCase(firm, "GST/SCN/2026/0142", rohan), priya, ist(2026, 3, 10, 10, 30, 0), "scheduled")
	w.hearing(w.legalCase(firm, "GST/APL/2026/0077", rohan), vikram, ist(2026, 3, 10, 14, 0, 0), "adjourned")
	w.hearing(w.legalCase(firm, "GST/SCN/2026/0188", priya), vikram, ist(2026, 3, 11, 7, 0, 0), "scheduled")
	jobs := w.jobs(reminders.Config{SMTPURL: srv.URL(), SMTPFrom: from})

	first := mustRun(t, jobs, hearingJob, morning)
	results(t, first, map[string]int{"hearings_processed": 3, "notifications_sent": 12, "failed_notifications": 0,
		"in_app_sent": 6, "emails_sent": 6})
	if n := len(srv.Messages()); n != 6 {
		t.Errorf("SMTP server received %d messages, want 6", n)
	}
	if n := srv.Sessions(); n != 1 {
		t.Errorf("SMTP sessions = %d, want 1 per run", n)
	}
	if n := w.count(`SELECT count(*) FROM audit_log WHERE action_type = 'notification_sent'`); n != 12 {
		t.Errorf("notification_sent audit rows = %d, want 12 (6 in-app, 6 e-mail)", n)
	}
	// Every audit row names its channel, the hearing, the notification, the job and the run.
	if n := w.count(`
SELECT count(*) FROM audit_log a
JOIN notifications n ON n.id = (a.details->>'notification_id')::uuid
WHERE a.action_type = 'notification_sent'
  AND a.details->>'channel' IN ('in_app', 'email') AND a.details->>'kind' = 'hearing_reminder'
  AND a.details->>'hearing_id' = n.entity_id::text AND a.details->>'job_name' = 'send-hearing-reminders'
  AND a.details->>'run_id' <> '' AND a.tenant_id = n.tenant_id AND a.user_id = n.user_id
  AND a.dedupe_key = 'notification_sent:' || (a.details->>'channel') || ':' || n.id`); n != 12 {
		t.Errorf("audit rows with channel, kind, hearing, notification, job and run = %d, want 12", n)
	}

	second := mustRun(t, jobs, hearingJob, morning.Add(5*time.Minute))
	results(t, second, map[string]int{"hearings_processed": 3, "notifications_sent": 0, "failed_notifications": 0})
	if n := len(srv.Messages()); n != 6 {
		t.Errorf("after the second run the SMTP server has %d messages, want still 6", n)
	}
	if n := w.count(`SELECT count(*) FROM audit_log`); n != 12 {
		t.Errorf("audit rows after the second run = %d, want still 12", n)
	}

	w.exec(`UPDATE hearings SET hearing_date = hearing_date + interval '1 hour' WHERE id = $1`, h1)
	third := mustRun(t, jobs, hearingJob, morning.Add(10*time.Minute))
	results(t, third, map[string]int{"notifications_sent": 4, "in_app_sent": 2, "emails_sent": 2})
	got := srv.Recipients()[6:]
	slices.Sort(got)
	if want := []string{"priya@mehta.example", "rohan@mehta.example"}; !slices.Equal(got, want) {
		t.Errorf("the rescheduled hearing was e-mailed to %q, want %q", got, want)
	}
}

// What is tried: e-mail on; one hearing's assignee has no e-mail address, another's
// owner is refused by the SMTP server, the rest are fine.
// What must hold: the run succeeds; the two problems are counted in
// failed_notifications with reasons naming the hearing and the person; everyone gets
// the in-app reminder and every other e-mail goes out.
func TestHearingBadRecipients(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	srv := smtptest.Start(t)
	srv.Reject("rita@mehta.example")
	firm := w.tenant("Mehta & Associates")
	priya := w.person(firm, "Priya Nair", "priya@mehta.example")
	rohan := w.person(firm, "Rohan Kapoor", "rohan@mehta.example")
	kabir := w.person(firm, "Kabir Joshi", "")
	rita := w.person(firm, "Rita Sen", "rita@mehta.example")
	w.hearing(w.legalCase(firm, "GST/SCN/2026/0142", rohan), kabir, ist(2026, 3, 10, 10, 30, 0), "scheduled")
	w.hearing(w.legalCase(firm, "GST/APL/2026/0077", rita), priya, ist(2026, 3, 10, 11, 0, 0), "scheduled")
	w.hearing(w.legalCase(firm, "GST/SCN/2026/0188", rohan), priya, ist(2026, 3, 11, 7, 0, 0), "scheduled")

	rep, err := run(t, w.jobs(reminders.Config{SMTPURL: srv.URL(), SMTPFrom: from}), hearingJob, morning)
	if err != nil {
		t.Fatalf("run failed: %v; single bad recipients must not fail the run", err)
	}
	results(t, rep, map[string]int{"hearings_processed": 3, "in_app_sent": 6, "emails_sent": 4,
		"notifications_sent": 10, "failed_notifications": 2, "emails_failed": 2})
	wantErrors := []string{
		"hearing GST/SCN/2026/0142 on 2026-03-10 10:30 IST: Kabir Joshi has no e-mail address",
		`hearing GST/APL/2026/0077 on 2026-03-10 11:00 IST: the SMTP server refused rita@mehta.example: sending SMTP RCPT TO command: 550 "5.1.1 No such user here"`,
	}
	if !slices.Equal(rep.Errors, wantErrors) {
		t.Errorf("errors:\n got %q\nwant %q", rep.Errors, wantErrors)
	}
	got := srv.Recipients()
	slices.Sort(got)
	if want := []string{"priya@mehta.example", "priya@mehta.example", "rohan@mehta.example", "rohan@mehta.example"}; !slices.Equal(got, want) {
		t.Errorf("e-mails went to %q, want %q", got, want)
	}
	if n := w.count(`SELECT count(*) FROM notifications WHERE user_id IN ($1, $2)`, kabir, rita); n != 2 {
		t.Errorf("in-app reminders for Kabir and Rita = %d, want 2", n)
	}
}

// What is tried: e-mail off; a hearing assigned to someone with no e-mail address.
// What must hold: the in-app reminder reaches them and nothing counts as failed.
func TestHearingNoEmailAddressWithEmailOff(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	firm := w.tenant("Mehta & Associates")
	kabir := w.person(firm, "Kabir Joshi", "")
	w.hearing(w.legalCase(firm, "GST/AAR/2025/0031", kabir), kabir, ist(2026, 3, 10, 11, 0, 0), "scheduled")

	rep := mustRun(t, w.jobs(reminders.Config{}), hearingJob, morning)
	results(t, rep, map[string]int{"hearings_processed": 1, "notifications_sent": 1, "failed_notifications": 0, "emails_sent": 0})
	if len(rep.Errors) != 0 {
		t.Errorf("errors = %q, want none: with e-mail off a missing address is not a failure", rep.Errors)
	}
	if rep.Results["email_enabled"] != false {
		t.Errorf("email_enabled = %v, want false", rep.Results["email_enabled"])
	}
	if n := w.count(`SELECT count(*) FROM notification_deliveries`); n != 0 {
		t.Errorf("e-mail deliveries queued with e-mail off: %d, want 0", n)
	}
}

// What is tried: the SMTP server is down (nothing listens on its port) at the first
// run, back at the second, and a third run follows.
// What must hold: the first run is failed with a message that the in-app reminders
// went out and the e-mails wait; the in-app reminders and their audit rows are there;
// the second run delivers exactly the waiting e-mails; the third sends nothing; the
// server receives each e-mail once.
func TestHearingSMTPDownThenBack(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	addr := smtptest.ClosedAddr(t)
	firm := w.tenant("Mehta & Associates")
	priya := w.person(firm, "Priya Nair", "priya@mehta.example")
	rohan := w.person(firm, "Rohan Kapoor", "rohan@mehta.example")
	w.hearing(w.legalCase(firm, "GST/SCN/2026/0142", rohan), priya, ist(2026, 3, 10, 10, 30, 0), "scheduled")
	w.hearing(w.legalCase(firm, "GST/APL/2026/0077", rohan), priya, ist(2026, 3, 10, 15, 0, 0), "scheduled")
	jobs := w.jobs(reminders.Config{SMTPURL: smtptest.URL(addr), SMTPFrom: from})

	rep, err := run(t, jobs, hearingJob, morning)
	f := failure(err)
	if f == nil || !errors.Is(err, notify.ErrServerUnavailable) {
		t.Fatalf("run with the SMTP server down: err = %v, want a failure wrapping ErrServerUnavailable", err)
	}
	// The run's words name no count (every firm reads them); each firm's slice has its own.
	if want := "E-mail could not be sent: in-app reminders were delivered, e-mails are left for the next run"; f.Message != want {
		t.Errorf("error_message = %q, want %q", f.Message, want)
	}
	if len(rep.Tenants) != 1 || rep.Tenants[0].Results["emails_pending"] != 4 || len(rep.Tenants[0].Errors) != 1 ||
		!strings.Contains(rep.Tenants[0].Errors[0], "4 e-mails will be retried") {
		t.Errorf("the firm's slice = %+v, want its 4 pending e-mails and the outage in its errors", rep.Tenants)
	}
	results(t, rep, map[string]int{"hearings_processed": 2, "notifications_sent": 4, "in_app_sent": 4,
		"emails_sent": 0, "emails_pending": 4, "failed_notifications": 4})
	if len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0], "cannot connect to smtp://"+addr) {
		t.Errorf("errors = %q, want one line saying the server at %s cannot be reached", rep.Errors, addr)
	}
	if n := w.count(`SELECT count(*) FROM notifications`); n != 4 {
		t.Errorf("in-app reminders after the failed run = %d, want 4", n)
	}
	if n := w.count(`SELECT count(*) FROM audit_log WHERE details->>'channel' = 'in_app'`); n != 4 {
		t.Errorf("in-app audit rows = %d, want 4", n)
	}

	srv := smtptest.StartAt(t, addr)
	rep = mustRun(t, jobs, hearingJob, morning.Add(30*time.Minute))
	results(t, rep, map[string]int{"notifications_sent": 4, "in_app_sent": 0, "emails_sent": 4, "failed_notifications": 0})
	rep = mustRun(t, jobs, hearingJob, morning.Add(time.Hour))
	results(t, rep, map[string]int{"notifications_sent": 0, "failed_notifications": 0})
	got := srv.Recipients()
	slices.Sort(got)
	if want := []string{"priya@mehta.example", "priya@mehta.example", "rohan@mehta.example", "rohan@mehta.example"}; !slices.Equal(got, want) {
		t.Errorf("server received %q, want each reminder once: %q", got, want)
	}
	if n := w.count(`SELECT count(*) FROM audit_log WHERE details->>'channel' = 'email'`); n != 4 {
		t.Errorf("e-mail audit rows = %d, want 4", n)
	}
}

// What is tried: a firm with people but no hearings, cases or tasks, next to a firm
// with a hearing; and a database with no firms at all.
// What must hold: the empty firm gets nothing and causes no error; an empty
// database reports zeros for both jobs.
func TestTenantWithNoData(t *testing.T) {
	t.Parallel()
	empty := newWorld(t)
	for _, job := range []string{catalog.SendHearingReminders, catalog.CheckUpcomingDeadlines} {
		rep := mustRun(t, empty.jobs(reminders.Config{}), job, morning)
		if len(rep.Errors) != 0 {
			t.Errorf("%s on an empty database: errors %q", job, rep.Errors)
		}
		for k, v := range rep.Results {
			if n, ok := v.(int); ok && n != 0 {
				t.Errorf("%s on an empty database: %s = %d, want 0", job, k, n)
			}
		}
	}

	w := newWorld(t)
	quiet := w.tenant("Quiet Chambers")
	w.person(quiet, "Nobody Busy", "nobody@quiet.example")
	firm := w.tenant("Mehta & Associates")
	priya := w.person(firm, "Priya Nair", "priya@mehta.example")
	w.hearing(w.legalCase(firm, "GST/SCN/2026/0142", priya), priya, ist(2026, 3, 10, 10, 30, 0), "scheduled")
	rep := mustRun(t, w.jobs(reminders.Config{}), hearingJob, morning)
	results(t, rep, map[string]int{"hearings_processed": 1, "notifications_sent": 1, "failed_notifications": 0})
	if n := w.count(`SELECT count(*) FROM notifications WHERE tenant_id = $1`, quiet); n != 0 {
		t.Errorf("the firm with no data got %d notifications", n)
	}
}

// What is tried: a run large enough to deliver its reminders in firm-disjoint slices
// at once (SplitAt 1 forces it), over several firms, then the same run again.
// What must hold: every reminder is delivered exactly once, with its audit row, as in
// one transaction; the second run delivers nothing.
func TestHearingRemindersDeliveredInSlices(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	want := 0
	for i := range 6 {
		firm := w.tenant(fmt.Sprintf("Firm %d", i))
		advocate := w.person(firm, "Advocate", fmt.Sprintf("adv%d@firm.example", i))
		owner := w.person(firm, "Owner", fmt.Sprintf("owner%d@firm.example", i))
		c := w.legalCase(firm, fmt.Sprintf("GST/SCN/2026/%04d", i), owner)
		for h := range i + 1 {
			w.hearing(c, advocate, morning.Add(time.Duration(h+1)*time.Hour), "scheduled")
			want += 2
		}
	}
	jobs := w.jobs(reminders.Config{SplitAt: 1})
	rep := mustRun(t, jobs, hearingJob, morning)
	results(t, rep, map[string]int{"hearings_processed": want / 2, "notifications_sent": want, "failed_notifications": 0})
	if n := w.count(`SELECT count(*) FROM notifications WHERE kind = 'hearing_reminder'`); n != want {
		t.Errorf("%d notifications, want %d", n, want)
	}
	if n := w.count(`SELECT count(*) FROM audit_log WHERE action_type = 'notification_sent'`); n != want {
		t.Errorf("%d notification_sent audit rows, want %d", n, want)
	}
	rep = mustRun(t, jobs, hearingJob, morning)
	results(t, rep, map[string]int{"hearings_processed": want / 2, "notifications_sent": 0, "failed_notifications": 0})
}

// What is tried: e-mail on, a run large enough to deliver in two firm-disjoint slices
// at once (SplitAt 1), two firms, one in each slice; the database refuses for good
// (a trigger raising an error, not a lost connection) every notification of the
// second firm, so its slice fails and the other is delivered.
// What must hold: the run fails, naming the refusal; the first firm's reminders stand
// in-app and its e-mails are sent by this run (they are not left for a retry that a
// permanent failure does not get); the second firm has no notification and no e-mail.
func TestFailedSliceStillSendsTheDeliveredSlicesEmails(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	srv := smtptest.Start(t)
	// One firm in each of the two slices: ids are tried until both slices have one.
	firms := map[int]string{}
	for i := 0; len(firms) < 2; i++ {
		id := uuid.NewString()
		if part := w.count(`SELECT (hashtext($1) & 2147483647) % 2`, id); firms[part] == "" {
			firms[part] = id
			w.exec(`INSERT INTO tenants (id, name) VALUES ($1, $2)`, id, fmt.Sprintf("Firm %d", part))
		}
		if i > 100 {
			t.Fatal("no firm id for one of the slices in 100 tries")
		}
	}
	good, bad := firms[0], firms[1]
	asha := w.person(good, "Asha Rao", "asha@good.example")
	bina := w.person(good, "Bina Shah", "bina@good.example")
	w.hearing(w.legalCase(good, "GST/SCN/2026/0001", bina), asha, ist(2026, 3, 10, 10, 30, 0), "scheduled")
	chetan := w.person(bad, "Chetan Iyer", "chetan@bad.example")
	w.hearing(w.legalCase(bad, "GST/SCN/2026/0002", chetan), chetan, ist(2026, 3, 10, 11, 0, 0), "scheduled")
	w.exec(`CREATE FUNCTION refuse_notification() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'notifications of this firm are refused'; END $$`)
	w.exec(fmt.Sprintf(`CREATE TRIGGER refuse BEFORE INSERT ON notifications FOR EACH ROW
		WHEN (NEW.tenant_id = '%s') EXECUTE FUNCTION refuse_notification()`, bad))

	jobs := w.jobs(reminders.Config{SMTPURL: srv.URL(), SMTPFrom: from, SplitAt: 1})
	_, err := run(t, jobs, hearingJob, morning)
	if err == nil || !strings.Contains(err.Error(), "notifications of this firm are refused") {
		t.Fatalf("run with one slice refused: err = %v, want the refusal", err)
	}
	got := srv.Recipients()
	slices.Sort(got)
	if want := []string{"asha@good.example", "bina@good.example"}; !slices.Equal(got, want) {
		t.Errorf("e-mails sent by the failed run: %q, want the delivered slice's %q", got, want)
	}
	if n := w.count(`SELECT count(*) FROM notifications WHERE tenant_id = $1`, good); n != 2 {
		t.Errorf("the delivered firm has %d in-app reminders, want 2", n)
	}
	if n := w.count(`SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND details->>'channel' = 'email'`, good); n != 2 {
		t.Errorf("the delivered firm has %d e-mail audit rows, want 2", n)
	}
	if n := w.count(`SELECT count(*) FROM notifications WHERE tenant_id = $1`, bad); n != 0 {
		t.Errorf("the refused firm has %d notifications, want 0", n)
	}
}
