package reminders_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/worker"
	"github.com/lexhq/gstjobs/services/reminders"
)

var (
	dubai   = mustZone("Asia/Dubai")
	newYork = mustZone("America/New_York")
)

// zonedFirm is a firm with its own time zone and one person, who owns its one case.
type zonedFirm struct {
	id, person, legalCase string
}

func (w *world) zonedFirm(name, zone, number string) zonedFirm {
	w.t.Helper()
	f := zonedFirm{id: w.tenant(name)}
	w.exec(`UPDATE tenants SET timezone = $1 WHERE id = $2`, zone, f.id)
	f.person = w.person(f.id, "Partner of "+name, "")
	f.legalCase = w.legalCase(f.id, number, f.person)
	return f
}

// runFor runs a job as a schedule slot for the given firms does, at now.
func runFor(t *testing.T, jobs map[string]worker.Func, name string, now time.Time, firms ...string) worker.Report {
	t.Helper()
	job, _ := catalog.Lookup(name)
	rep, err := jobs[name](context.Background(), worker.Run{
		ID: uuid.NewString(), Job: job, Trigger: events.KindSchedule, Now: now, Scope: events.ScopeFirms(firms),
	})
	if err != nil {
		t.Fatalf("%s at %s: %v", name, now.UTC(), err)
	}
	return rep
}

// Tried: three firms, in Kolkata, Dubai and New York, each with a hearing two hours
// after its own 08:00; each firm's reminders run at its own 08:00, as its slot does:
// New York's on Saturday 7 March (EST) and again on Sunday 8 March, after the clocks
// went forward (EDT).
// Must hold: each run reminds its firm of its own hearing only, written in its own
// zone, abbreviation included, on both sides of the change to daylight saving time;
// one statement serves them all (no session time zone: JOBS_TIMEZONE is Kolkata).
func TestHearingRemindersInEachFirmsZone(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	kol := w.zonedFirm("Mehta & Associates", "Asia/Kolkata", "GST/SCN/2026/0001")
	dxb := w.zonedFirm("Gulf Tax Advisors", "Asia/Dubai", "GST/SCN/2026/0002")
	nyc := w.zonedFirm("Hudson GST Desk", "America/New_York", "GST/SCN/2026/0003")
	w.hearing(kol.legalCase, kol.person, time.Date(2026, 3, 10, 10, 30, 0, 0, kolkata), "scheduled")
	w.hearing(dxb.legalCase, dxb.person, time.Date(2026, 3, 10, 10, 0, 0, 0, dubai), "scheduled")
	w.hearing(nyc.legalCase, nyc.person, time.Date(2026, 3, 7, 9, 30, 0, 0, newYork), "scheduled")
	w.hearing(nyc.legalCase, nyc.person, time.Date(2026, 3, 8, 9, 30, 0, 0, newYork), "scheduled")
	jobs := w.jobs(reminders.Config{})

	for _, tc := range []struct {
		firm zonedFirm
		at   time.Time
		want string
	}{
		{kol, time.Date(2026, 3, 10, 8, 0, 0, 0, kolkata), "Hearing Tue 10 Mar 2026, 10:30 IST: GST/SCN/2026/0001"},
		{dxb, time.Date(2026, 3, 10, 8, 0, 0, 0, dubai), "Hearing Tue 10 Mar 2026, 10:00 +04: GST/SCN/2026/0002"},
		{nyc, time.Date(2026, 3, 7, 8, 0, 0, 0, newYork), "Hearing Sat 07 Mar 2026, 09:30 EST: GST/SCN/2026/0003"},
		{nyc, time.Date(2026, 3, 8, 8, 0, 0, 0, newYork), "Hearing Sun 08 Mar 2026, 09:30 EDT: GST/SCN/2026/0003"},
	} {
		rep := runFor(t, jobs, catalog.SendHearingReminders, tc.at, tc.firm.id)
		results(t, rep, map[string]int{"hearings_processed": 1, "notifications_sent": 1})
		titles := w.strings(`SELECT title FROM notifications WHERE tenant_id = $1`, tc.firm.id)
		if !slices.Contains(titles, tc.want) {
			t.Errorf("the run at %s (%s UTC) for its firm: reminders %q, want one titled %q",
				tc.at, tc.at.UTC().Format(time.DateTime), titles, tc.want)
		}
	}
	if n := w.count(`SELECT count(*) FROM notifications`); n != 4 {
		t.Errorf("%d reminders in all, want 4: one per firm's hearing, none for another firm's", n)
	}
}

// Tried: one run for all three firms at one instant, 20:00 UTC on 10 March (01:30 on
// 11 March in Kolkata, 00:00 on 11 March in Dubai, 16:00 on 10 March in New York, on
// daylight saving time), each firm with a reply due on 11 March and a task due at
// 21:00 on 11 March New York time (07:30 on 12 March in Kolkata, 05:00 in Dubai).
// Must hold: the days before a deadline are counted on each firm's own calendar in the
// same statement: the reply is due today in Kolkata and Dubai and tomorrow in New York;
// the task is due tomorrow everywhere, but tomorrow is 12 March in Kolkata and Dubai and
// 11 March in New York, and the alert's text and key say so.
func TestDeadlineDaysInEachFirmsZone(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	kol := w.zonedFirm("Mehta & Associates", "Asia/Kolkata", "GST/SCN/2026/0001")
	dxb := w.zonedFirm("Gulf Tax Advisors", "Asia/Dubai", "GST/SCN/2026/0002")
	nyc := w.zonedFirm("Hudson GST Desk", "America/New_York", "GST/SCN/2026/0003")
	due := time.Date(2026, 3, 11, 21, 0, 0, 0, newYork)
	tasks := map[string]string{}
	for _, f := range []zonedFirm{kol, dxb, nyc} {
		w.statutory(f.legalCase, "2026-03-11", "", "active")
		tasks[f.id] = w.task(f.legalCase, "File reply", f.person, due, "open")
	}
	now := time.Date(2026, 3, 10, 20, 0, 0, 0, time.UTC)
	rep := mustRun(t, w.jobs(reminders.Config{}), deadlineJob, now)
	results(t, rep, map[string]int{"deadlines_found": 6, "alerts_sent": 6})

	for _, tc := range []struct {
		firm              zonedFirm
		reply, task, date string
	}{
		{kol, "Reply to show-cause notice due today (11 Mar 2026): GST/SCN/2026/0001", "Task due tomorrow (12 Mar 2026): File reply", "2026-03-12"},
		{dxb, "Reply to show-cause notice due today (11 Mar 2026): GST/SCN/2026/0002", "Task due tomorrow (12 Mar 2026): File reply", "2026-03-12"},
		{nyc, "Reply to show-cause notice due tomorrow (11 Mar 2026): GST/SCN/2026/0003", "Task due tomorrow (11 Mar 2026): File reply", "2026-03-11"},
	} {
		want := []string{tc.reply, tc.task}
		slices.Sort(want)
		if got := w.strings(`SELECT title FROM notifications WHERE tenant_id = $1`, tc.firm.id); !slices.Equal(got, want) {
			t.Errorf("firm %s: alerts %q, want %q", tc.firm.id, got, want)
		}
		if n := w.count(`SELECT count(*) FROM notifications WHERE dedupe_key = $1`, key("task", tasks[tc.firm.id], 1, tc.date)); n != 1 {
			t.Errorf("firm %s: the task is not keyed by its date on the firm's calendar (%s)", tc.firm.id, tc.date)
		}
	}
	var body string
	if err := w.pool.QueryRow(context.Background(), `SELECT body FROM notifications WHERE entity_id = $1`, tasks[dxb.id]).Scan(&body); err != nil {
		t.Fatal(err)
	}
	if want := "Due: Thu 12 Mar 2026, 05:00 +04"; !strings.Contains(body, want) {
		t.Errorf("Dubai's task alert says %q, want its due time in Dubai: %q", body, want)
	}
}

// Tried: in New York, where the clocks went forward at 07:00 UTC on 8 March 2026
// (02:00 EST became 03:00 EDT), two hearings 40 seconds apart on either side of that
// instant and two tasks due at the same two instants, reminded and alerted in one run
// each.
// Must hold: the hearing and task of 06:59:40 UTC say 01:59 EST, those of 07:00:20 UTC
// say 03:00 EDT: each instant is written with its own offset and abbreviation.
func TestAbbreviationsAcrossTheChangeToDaylightSavingTime(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	nyc := w.zonedFirm("Hudson GST Desk", "America/New_York", "GST/SCN/2026/0003")
	before := time.Date(2026, 3, 8, 6, 59, 40, 0, time.UTC)
	after := time.Date(2026, 3, 8, 7, 0, 20, 0, time.UTC)
	for _, at := range []time.Time{before, after} {
		w.hearing(nyc.legalCase, nyc.person, at, "scheduled")
		w.task(nyc.legalCase, "File reply "+at.Format("15:04:05"), nyc.person, at, "open")
	}
	jobs := w.jobs(reminders.Config{})
	now := time.Date(2026, 3, 7, 20, 0, 0, 0, time.UTC)
	results(t, runFor(t, jobs, catalog.SendHearingReminders, now, nyc.id), map[string]int{"hearings_processed": 2, "notifications_sent": 2})
	results(t, runFor(t, jobs, deadlineJob, now, nyc.id), map[string]int{"deadlines_found": 2, "alerts_sent": 2})

	titles := w.strings(`SELECT title FROM notifications WHERE kind = 'hearing_reminder'`)
	want := []string{"Hearing Sun 08 Mar 2026, 01:59 EST: GST/SCN/2026/0003", "Hearing Sun 08 Mar 2026, 03:00 EDT: GST/SCN/2026/0003"}
	if !slices.Equal(titles, want) {
		t.Errorf("reminders %q, want %q", titles, want)
	}
	bodies := strings.Join(w.strings(`SELECT body FROM notifications WHERE kind = 'deadline_alert'`), "\n")
	for _, want := range []string{"Due: Sun 08 Mar 2026, 01:59 EST", "Due: Sun 08 Mar 2026, 03:00 EDT"} {
		if !strings.Contains(bodies, want) {
			t.Errorf("deadline alerts say %q, want one with %q", bodies, want)
		}
	}
}
