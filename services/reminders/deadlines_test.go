package reminders_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/internal/notify/smtptest"
	"github.com/lexhq/gstjobs/internal/pgtest"
	"github.com/lexhq/gstjobs/internal/worker"
	"github.com/lexhq/gstjobs/services/reminders"
)

const deadlineJob = catalog.CheckUpcomingDeadlines

// The daily run at 07:00 in Kolkata.
var seven = ist(2026, 3, 10, 7, 0, 0)

// statutory sets a case's reply and appeal dates ("" leaves one NULL) and status.
func (w *world) statutory(caseID, reply, appeal, status string) {
	w.t.Helper()
	w.exec(`UPDATE cases SET reply_due_date = $2::date, appeal_deadline = $3::date, status = $4 WHERE id = $1`,
		caseID, nullable(reply), nullable(appeal), status)
}

func key(item, id string, days int, date string) string {
	return "deadline_alert:" + item + ":" + id + ":" + strconv.Itoa(days) + "d:" + date
}

// What is tried: tasks and statutory dates at every distance from today (default
// thresholds 7, 3, 1), in every state that should not alert, and without anyone to
// alert.
// What must hold: each item in reach is alerted once, at the tightest threshold it is
// within (0-1 days: 1, 2-3: 3, 4-7: 7); overdue, completed, closed-case and farther
// items are not; items with nobody to alert are counted in failed_alerts with reasons.
func TestDeadlineThresholds(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	firm := w.tenant("Mehta & Associates")
	priya := w.person(firm, "Priya Nair", "priya@mehta.example")
	rohan := w.person(firm, "Rohan Kapoor", "rohan@mehta.example")
	c := w.legalCase(firm, "GST/SCN/2026/0142", rohan)

	tasks := map[string]struct {
		due   time.Time
		alert int // 0: no alert
	}{
		"this evening":           {ist(2026, 3, 10, 18, 0, 0), 1},
		"tomorrow":               {ist(2026, 3, 11, 10, 0, 0), 1},
		"in 2 days":              {ist(2026, 3, 12, 12, 0, 0), 3},
		"in 3 days":              {ist(2026, 3, 13, 9, 0, 0), 3},
		"in 4 days":              {ist(2026, 3, 14, 9, 0, 0), 7},
		"in 7 days, last minute": {ist(2026, 3, 17, 23, 59, 0), 7},
		"in 8 days":              {ist(2026, 3, 18, 0, 0, 0), 0},
		"overdue since 06:00":    {ist(2026, 3, 10, 6, 0, 0), 0},
	}
	var want []string
	for title, tc := range tasks {
		id := w.task(c, title, priya, tc.due, "open")
		if tc.alert > 0 {
			want = append(want, key("task", id, tc.alert, tc.due.Format(time.DateOnly)))
		}
	}
	w.task(c, "Completed already", priya, ist(2026, 3, 11, 10, 0, 0), "completed")
	w.task(c, "Unassigned task", "", ist(2026, 3, 12, 10, 0, 0), "in_progress")

	cases := []struct {
		number, reply, appeal, status string
		item                          string
		alert                         int
	}{
		{"GST/SCN/2026/0901", "2026-03-10", "", "active", "reply_due_date", 1},
		{"GST/SCN/2026/0902", "2026-03-13", "", "active", "reply_due_date", 3},
		{"GST/SCN/2026/0903", "2026-03-17", "", "active", "reply_due_date", 7},
		{"GST/APL/2026/0904", "", "2026-03-11", "active", "appeal_deadline", 1},
		{"GST/APL/2026/0905", "", "2026-03-18", "active", "appeal_deadline", 0},
		{"GST/SCN/2026/0906", "2026-03-11", "", "closed", "reply_due_date", 0},
		{"GST/SCN/2026/0908", "2026-03-09", "", "active", "reply_due_date", 0},
	}
	for _, cc := range cases {
		id := w.legalCase(firm, cc.number, rohan)
		w.statutory(id, cc.reply, cc.appeal, cc.status)
		if cc.alert > 0 {
			want = append(want, key(cc.item, id, cc.alert, cc.reply+cc.appeal))
		}
	}
	w.statutory(w.legalCase(firm, "GST/SCN/2026/0907", ""), "2026-03-12", "", "active")

	rep := mustRun(t, w.jobs(reminders.Config{}), deadlineJob, seven)
	results(t, rep, map[string]int{"deadlines_found": 12, "alerts_sent": 10, "failed_alerts": 2})
	wantErrors := []string{
		"case GST/SCN/2026/0907: reply to show-cause notice due 2026-03-12: the case has no owner",
		`task "Unassigned task" (GST/SCN/2026/0142) due 2026-03-12: no one is assigned to the task`,
	}
	if !slices.Equal(rep.Errors, wantErrors) {
		t.Errorf("errors:\n got %q\nwant %q", rep.Errors, wantErrors)
	}
	slices.Sort(want)
	if got := w.strings(`SELECT dedupe_key FROM notifications`); !slices.Equal(got, want) {
		t.Errorf("alerts (dedupe keys):\n got %q\nwant %q", got, want)
	}
	if n := w.count(`SELECT count(*) FROM notifications WHERE entity_type = 'task' AND user_id <> $1`, priya); n != 0 {
		t.Errorf("%d task alerts went to someone other than the assignee", n)
	}
	if n := w.count(`SELECT count(*) FROM notifications WHERE entity_type = 'case' AND user_id <> $1`, rohan); n != 0 {
		t.Errorf("%d statutory alerts went to someone other than the case owner", n)
	}
	if n := w.count(`SELECT count(*) FROM audit_log WHERE action_type = 'notification_sent'
		AND details->>'channel' = 'in_app' AND details->>'kind' = 'deadline_alert'
		AND details ? 'threshold_days' AND details ? 'due_date' AND details->>'job_name' = 'check-upcoming-deadlines'`); n != 10 {
		t.Errorf("deadline audit rows = %d, want 10", n)
	}

	again := mustRun(t, w.jobs(reminders.Config{}), deadlineJob, seven.Add(time.Hour))
	results(t, again, map[string]int{"deadlines_found": 12, "alerts_sent": 0, "failed_alerts": 2})
	if n := w.count(`SELECT count(*) FROM audit_log`); n != 10 {
		t.Errorf("audit rows after a second run = %d, want still 10", n)
	}
}

// What is tried: one task due on 17 March, checked each morning as it comes closer,
// then with the clock set back to 10 March, then with its due date moved.
// What must hold: it is alerted at 7 days, then at 3, then at 1, once each; nothing
// in between; an item alerted at a tighter threshold is not alerted at 7 days again;
// a moved due date alerts afresh.
func TestDeadlineOncePerThreshold(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	firm := w.tenant("Mehta & Associates")
	priya := w.person(firm, "Priya Nair", "priya@mehta.example")
	c := w.legalCase(firm, "GST/APL/2026/0077", priya)
	task := w.task(c, "Prepare appeal grounds", priya, ist(2026, 3, 17, 12, 0, 0), "open")
	jobs := w.jobs(reminders.Config{})

	steps := []struct {
		day     int // of March, at 07:00 IST
		alerts  int
		newKeys []string
	}{
		{10, 1, []string{key("task", task, 7, "2026-03-17")}},
		{11, 0, nil},
		{14, 1, []string{key("task", task, 3, "2026-03-17")}},
		{14, 0, nil},
		{16, 1, []string{key("task", task, 1, "2026-03-17")}},
		{10, 0, nil}, // the clock goes back: 7 days away again, but 3 and 1 were alerted
	}
	var keys []string
	for _, s := range steps {
		rep := mustRun(t, jobs, deadlineJob, ist(2026, 3, s.day, 7, 0, 0))
		results(t, rep, map[string]int{"deadlines_found": 1, "alerts_sent": s.alerts})
		keys = append(keys, s.newKeys...)
		slices.Sort(keys)
		if got := w.strings(`SELECT dedupe_key FROM notifications`); !slices.Equal(got, keys) {
			t.Fatalf("after the run of %d March: alerts\n got %q\nwant %q", s.day, got, keys)
		}
	}

	w.exec(`UPDATE tasks SET due_date = $2 WHERE id = $1`, task, ist(2026, 3, 20, 12, 0, 0))
	rep := mustRun(t, jobs, deadlineJob, ist(2026, 3, 14, 7, 0, 0))
	results(t, rep, map[string]int{"alerts_sent": 1})
	if n := w.count(`SELECT count(*) FROM notifications WHERE dedupe_key = $1`, key("task", task, 7, "2026-03-20")); n != 1 {
		t.Errorf("the moved task was not alerted at 7 days for its new date")
	}
}

// What is tried: the same deadlines and the same instant, 04:00 on 10 March in
// Kolkata (22:30 on 9 March in UTC), with the firm's own zone (tenants.timezone) in
// Kolkata and in UTC, with JOBS_TIMEZONE in either, and with a firm's zone that is not
// one ("Mars/Olympus_Mons", or "IST", an abbreviation PostgreSQL would read as
// Israel's); and a run one second either side of midnight in Kolkata.
// What must hold: "due within 1 day" is counted in calendar days of the firm's own zone,
// whatever JOBS_TIMEZONE says, and in JOBS_TIMEZONE's when the firm's is not a zone:
// in Kolkata a task due at 06:00 on 11 March is due tomorrow (threshold 1), in UTC
// (00:30 on 11 March) it is two days away (threshold 3); a reply due on 9 March is past
// in Kolkata but due today in UTC. At 23:59:59 a task due 00:30 on 14 March is four
// days away (threshold 7), at 00:00:00 three (threshold 3).
func TestDeadlineDaysInKolkataNotUTC(t *testing.T) {
	t.Parallel()
	now := ist(2026, 3, 10, 4, 0, 0)
	inKolkata := func(a, b, x, y string) []string {
		return []string{key("task", a, 1, "2026-03-11"), key("task", b, 7, "2026-03-17"), key("reply_due_date", x, 1, "2026-03-11")}
	}
	inUTC := func(a, b, x, y string) []string {
		return []string{key("task", a, 3, "2026-03-11"), key("reply_due_date", x, 3, "2026-03-11"), key("reply_due_date", y, 1, "2026-03-09")}
	}
	for _, tc := range []struct {
		name string
		// firmZone is tenants.timezone ("" leaves the column's default, Asia/Kolkata);
		// jobsZone is JOBS_TIMEZONE, which counts only when the firm's zone is unknown.
		firmZone, jobsZone string
		want               func(taskA, taskB, caseX, caseY string) []string
		// title of the alert for taskA
		title string
	}{
		{"the firm in Kolkata", "", "Asia/Kolkata", inKolkata, "Task due tomorrow (11 Mar 2026): File reply"},
		{"the firm in UTC", "UTC", "Asia/Kolkata", inUTC, "Task due in 2 days (11 Mar 2026): File reply"},
		{"the firm in Kolkata, JOBS_TIMEZONE in UTC", "", "UTC", inKolkata, "Task due tomorrow (11 Mar 2026): File reply"},
		{"the firm's zone unknown, JOBS_TIMEZONE in UTC", "Mars/Olympus_Mons", "UTC", inUTC, "Task due in 2 days (11 Mar 2026): File reply"},
		{"the firm's zone an abbreviation, not a zone", "IST", "UTC", inUTC, "Task due in 2 days (11 Mar 2026): File reply"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			firm := w.tenant("Mehta & Associates")
			if tc.firmZone != "" {
				w.exec(`UPDATE tenants SET timezone = $1 WHERE id = $2`, tc.firmZone, firm)
			}
			priya := w.person(firm, "Priya Nair", "priya@mehta.example")
			c := w.legalCase(firm, "GST/SCN/2026/0188", priya)
			taskA := w.task(c, "File reply", priya, ist(2026, 3, 11, 6, 0, 0), "open")
			taskB := w.task(c, "Collect evidence", priya, ist(2026, 3, 17, 23, 0, 0), "open")
			caseX := w.legalCase(firm, "GST/SCN/2026/0201", priya)
			w.statutory(caseX, "2026-03-11", "", "active")
			caseY := w.legalCase(firm, "GST/SCN/2026/0202", priya)
			w.statutory(caseY, "2026-03-09", "", "active")

			mustRun(t, w.jobs(reminders.Config{}, mustZone(tc.jobsZone)), deadlineJob, now)
			want := tc.want(taskA, taskB, caseX, caseY)
			slices.Sort(want)
			if got := w.strings(`SELECT dedupe_key FROM notifications`); !slices.Equal(got, want) {
				t.Errorf("alerts for a firm in %q (JOBS_TIMEZONE %s) at %s:\n got %q\nwant %q", tc.firmZone, tc.jobsZone, now.UTC(), got, want)
			}
			if got := w.strings(`SELECT title FROM notifications WHERE entity_id = $1`, taskA); len(got) != 1 || got[0] != tc.title {
				t.Errorf("title = %q, want %q", got, tc.title)
			}
		})
	}

	for _, tc := range []struct {
		name string
		now  time.Time
		days int
	}{
		{"a second before midnight in Kolkata", ist(2026, 3, 10, 23, 59, 59), 7},
		{"midnight in Kolkata", ist(2026, 3, 11, 0, 0, 0), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			firm := w.tenant("Mehta & Associates")
			priya := w.person(firm, "Priya Nair", "priya@mehta.example")
			task := w.task(w.legalCase(firm, "GST/SCN/2026/0188", priya), "Hearing brief", priya, ist(2026, 3, 14, 0, 30, 0), "open")
			mustRun(t, w.jobs(reminders.Config{}), deadlineJob, tc.now)
			want := []string{key("task", task, tc.days, "2026-03-14")}
			if got := w.strings(`SELECT dedupe_key FROM notifications`); !slices.Equal(got, want) {
				t.Errorf("at %s (%s UTC): alerts %q, want %q", tc.now, tc.now.UTC().Format(time.DateTime), got, want)
			}
		})
	}
}

// What is tried: thresholds configured as 5 and 2, e-mail on, one assignee without an
// e-mail address.
// What must hold: items alert at 2 days (0-2 away) or 5 days (3-5 away); every alert
// lands in-app; the e-mails go out except the one with no address, which is counted
// in failed_alerts with the reason; a second run sends nothing.
func TestDeadlineAlertsByEmailWithConfiguredThresholds(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	srv := smtptest.Start(t)
	firm := w.tenant("Mehta & Associates")
	priya := w.person(firm, "Priya Nair", "priya@mehta.example")
	rohan := w.person(firm, "Rohan Kapoor", "rohan@mehta.example")
	kabir := w.person(firm, "Kabir Joshi", "")
	c := w.legalCase(firm, "GST/SCN/2026/0188", rohan)
	w.statutory(c, "2026-03-11", "", "active")
	t1 := w.task(c, "File reply with e-way bill evidence", kabir, ist(2026, 3, 12, 10, 0, 0), "open")
	t2 := w.task(c, "Research precedent rulings", priya, ist(2026, 3, 14, 10, 0, 0), "open")
	w.task(c, "Later work", priya, ist(2026, 3, 16, 10, 0, 0), "open")
	jobs := w.jobs(reminders.Config{SMTPURL: srv.URL(), SMTPFrom: from, DeadlineThresholds: []int{5, 2}})

	rep := mustRun(t, jobs, deadlineJob, seven)
	results(t, rep, map[string]int{"deadlines_found": 3, "in_app_sent": 3, "emails_sent": 2,
		"alerts_sent": 5, "failed_alerts": 1})
	wantErrors := []string{`task "File reply with e-way bill evidence" (GST/SCN/2026/0188) due 2026-03-12: Kabir Joshi has no e-mail address`}
	if !slices.Equal(rep.Errors, wantErrors) {
		t.Errorf("errors:\n got %q\nwant %q", rep.Errors, wantErrors)
	}
	want := []string{key("reply_due_date", c, 2, "2026-03-11"), key("task", t1, 2, "2026-03-12"), key("task", t2, 5, "2026-03-14")}
	slices.Sort(want)
	if got := w.strings(`SELECT dedupe_key FROM notifications`); !slices.Equal(got, want) {
		t.Errorf("alerts:\n got %q\nwant %q", got, want)
	}
	got := srv.Recipients()
	slices.Sort(got)
	if want := []string{"priya@mehta.example", "rohan@mehta.example"}; !slices.Equal(got, want) {
		t.Errorf("e-mails to %q, want %q", got, want)
	}
	if n := w.count(`SELECT count(*) FROM audit_log WHERE details->>'channel' = 'email' AND details->>'task_id' = $1`, t2); n != 1 {
		t.Errorf("e-mail audit rows for the task = %d, want 1", n)
	}

	rep = mustRun(t, jobs, deadlineJob, seven.Add(time.Hour))
	results(t, rep, map[string]int{"alerts_sent": 0, "emails_sent": 0})
	if n := len(srv.Messages()); n != 2 {
		t.Errorf("SMTP server has %d messages after the second run, want still 2", n)
	}
}

// What is tried: a run large enough to deliver its alerts in firm-disjoint slices at
// once (SplitAt 1 forces it), over several firms, then the same run again.
// What must hold: every alert is delivered exactly once, with its audit row, as in one
// transaction, and each firm's slice counts its own; the second run delivers nothing.
func TestDeadlineAlertsDeliveredInSlices(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	want := 0
	wantByFirm := map[string]int{}
	for i := range 6 {
		firm := w.tenant(fmt.Sprintf("Firm %d", i))
		advocate := w.person(firm, "Advocate", fmt.Sprintf("adv%d@firm.example", i))
		c := w.legalCase(firm, fmt.Sprintf("GST/SCN/2026/%04d", i), advocate)
		for d := range i + 1 {
			w.task(c, fmt.Sprintf("Task %d", d), advocate, ist(2026, 3, 11+d, 12, 0, 0), "open")
			want++
			wantByFirm[firm]++
		}
	}
	jobs := w.jobs(reminders.Config{SplitAt: 1})
	rep := mustRun(t, jobs, deadlineJob, ist(2026, 3, 10, 7, 0, 0))
	results(t, rep, map[string]int{"deadlines_found": want, "alerts_sent": want, "failed_alerts": 0})
	for _, s := range rep.Tenants {
		if got := s.Results["alerts_sent"]; got != wantByFirm[s.TenantID] {
			t.Errorf("firm %s: alerts_sent %v, want %d", s.TenantID, got, wantByFirm[s.TenantID])
		}
	}
	if n := w.count(`SELECT count(*) FROM notifications WHERE kind = 'deadline_alert'`); n != want {
		t.Errorf("%d alerts, want %d", n, want)
	}
	if n := w.count(`SELECT count(*) FROM audit_log WHERE action_type = 'notification_sent'`); n != want {
		t.Errorf("%d notification_sent audit rows, want %d", n, want)
	}
	rep = mustRun(t, jobs, deadlineJob, ist(2026, 3, 10, 7, 0, 0))
	results(t, rep, map[string]int{"deadlines_found": want, "alerts_sent": 0, "failed_alerts": 0})
}

// What is tried: on a pool of one connection, the deadline alerts run six times for
// the firm alone (a slot's run for named firms) and then three times for every firm,
// with a task due in three days; then the hearing reminders three times for every firm,
// with a hearing that afternoon; what each run delivered deleted before the next.
// What must hold: every run alerts or reminds once, and none of the deadline alerts'
// statements, nor the hearing reminders' of a run for every firm, is kept prepared on
// the session: each is planned for its own run's firms (tenancy.EachRun). A statement
// kept prepared there gets PostgreSQL's generic plan from its sixth run, made for no
// firms in particular; the deadline alerts for every firm after a day's groups of
// twenty firms took 90 s that way instead of 3.6 s on 1M tasks.
func TestReminderStatementsArePlannedForEachRun(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	firm := w.tenant("Mehta & Associates")
	priya := w.person(firm, "Priya Nair", "priya@mehta.example")
	c := w.legalCase(firm, "GST/APL/2026/0077", priya)
	w.task(c, "Prepare appeal grounds", priya, ist(2026, 3, 13, 12, 0, 0), "open")
	w.hearing(c, priya, ist(2026, 3, 10, 15, 30, 0), "scheduled")
	ctx := context.Background()
	one := pgtest.OneSession(t, w.pool)
	jobs, err := reminders.New(jobservice.Deps{Pool: one, Location: kolkata}, reminders.Config{})
	if err != nil {
		t.Fatal(err)
	}
	runAt := func(name string, i int, scope events.Scope, want map[string]int) {
		t.Helper()
		w.exec(`DELETE FROM audit_log WHERE action_type = 'notification_sent'`)
		w.exec(`DELETE FROM notifications`)
		job, _ := catalog.Lookup(name)
		rep, err := jobs[name](ctx, worker.Run{ID: uuid.NewString(), Job: job, Trigger: events.KindSchedule, Now: seven, Scope: scope})
		if err != nil {
			t.Fatalf("%s run %d (every firm: %v): %v", name, i+1, scope.All, err)
		}
		results(t, rep, want)
	}
	for i := range 9 {
		scope := events.ScopeFirms([]string{firm})
		if i >= 6 {
			scope = events.ScopeAll()
		}
		runAt(deadlineJob, i, scope, map[string]int{"deadlines_found": 1, "alerts_sent": 1})
	}
	for i := range 3 {
		runAt(hearingJob, i, events.ScopeAll(), map[string]int{"hearings_processed": 1, "notifications_sent": 1})
	}
	var kept []string
	rows, err := one.Query(ctx, `SELECT left(regexp_replace(statement, '\s+', ' ', 'g'), 80) FROM pg_prepared_statements
		WHERE (statement LIKE '%deadline_alert%' OR statement LIKE '%reply_due_date%' OR statement LIKE '%hearing_date%')
		  AND statement NOT LIKE '%pg_prepared_statements%'`)
	if err == nil {
		kept, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) > 0 {
		t.Fatalf("statements of the reminders kept prepared on the session, where they get a generic plan from their sixth run: %q", kept)
	}
}
