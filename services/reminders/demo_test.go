package reminders_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lexhq/gstjobs/internal/demo"
	"github.com/lexhq/gstjobs/internal/notify/smtptest"
	"github.com/lexhq/gstjobs/services/reminders"
)

// What is tried: the demo data `make run` loads, with both jobs run now (real clock)
// and e-mail on, as on the dashboard's Run Now.
// What must hold: the demo's hearings in the next 24 hours are reminded (not the
// one in 30 hours, the cancelled or the past one); Kabir Joshi's hearing is reminded
// in-app, his e-mail fails with the reason, and the guide's hearings-without-phone
// query, run verbatim, lists it; every deadline threshold is exercised and the
// unassigned task and the ownerless case are reported.
func TestDemoData(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	if loaded, err := demo.Load(t.Context(), w.pool); err != nil || !loaded {
		t.Fatalf("demo.Load = %v, %v", loaded, err)
	}
	srv := smtptest.Start(t)
	jobs := w.jobs(reminders.Config{SMTPURL: srv.URL(), SMTPFrom: from})
	now := time.Now()

	rep := mustRun(t, jobs, hearingJob, now)
	t.Logf("hearing reminders: %v; errors %q", rep.Results, rep.Errors)
	reminded := w.strings(`SELECT DISTINCT entity_id::text FROM notifications WHERE kind = 'hearing_reminder'`)
	for id, want := range map[string]bool{
		"f2000000-0000-0000-0000-000000000001": true, "f2000000-0000-0000-0000-000000000002": true,
		"f2000000-0000-0000-0000-000000000003": true, "f2000000-0000-0000-0000-000000000004": true,
		"f2000000-0000-0000-0000-000000000005": true, "f2000000-0000-0000-0000-000000000006": false,
		"f2000000-0000-0000-0000-000000000007": false, "f2000000-0000-0000-0000-000000000008": false,
	} {
		if slices.Contains(reminded, id) != want {
			t.Errorf("demo hearing %s reminded = %v, want %v", id, !want, want)
		}
	}
	if n := w.count(`SELECT count(*) FROM notifications WHERE entity_id::text LIKE 'f2000000-%'`); n != 8 {
		t.Errorf("reminders for the demo's hearings = %d, want 8 (2+1+1+2+2)", n)
	}
	if !slices.ContainsFunc(rep.Errors, func(e string) bool {
		return strings.HasPrefix(e, "hearing GST/AAR/2025/0031 on ") && strings.HasSuffix(e, ": Kabir Joshi has no e-mail address")
	}) {
		t.Errorf("errors %q do not report Kabir Joshi's missing e-mail address", rep.Errors)
	}

	// The user guide's query, verbatim.
	guide := w.strings(`
SELECT h.id::text
FROM hearings h
JOIN cases c ON h.case_id = c.id
LEFT JOIN profiles p ON c.owner_id = p.id
WHERE h.hearing_date >= NOW()
  AND h.hearing_date <= NOW() + INTERVAL '24 hours'
  AND (p.phone IS NULL OR p.phone = '')`)
	if !slices.Contains(guide, "f2000000-0000-0000-0000-000000000003") {
		t.Errorf("the guide's hearings-without-phone query returns %q, want Kabir Joshi's hearing among them", guide)
	}

	rep = mustRun(t, jobs, deadlineJob, now)
	t.Logf("deadline alerts: %v; errors %q", rep.Results, rep.Errors)
	thresholds := w.strings(`SELECT DISTINCT split_part(dedupe_key, ':', 4) FROM notifications WHERE kind = 'deadline_alert'`)
	if want := []string{"1d", "3d", "7d"}; !slices.Equal(thresholds, want) {
		t.Errorf("demo deadlines alerted at thresholds %q, want %q", thresholds, want)
	}
	for _, want := range []string{
		`task "Obtain certified copy of the demand order" (GST/APL/2026/0077) due `,
		"case GST/SCN/2026/0215: reply to show-cause notice due ",
		`task "Draft rejoinder to the ruling authority" (GST/AAR/2025/0031) due `,
	} {
		if !slices.ContainsFunc(rep.Errors, func(e string) bool { return strings.HasPrefix(e, want) }) {
			t.Errorf("deadline errors %q have nothing about %s…", rep.Errors, want)
		}
	}
	for _, id := range []string{"d2000000-0000-0000-0000-000000000004", "c2000000-0000-0000-0000-000000000002"} {
		if n := w.count(`SELECT count(*) FROM notifications WHERE entity_id::text = $1`, id); n != 0 {
			t.Errorf("%s (beyond every threshold, or on hold) was alerted", id)
		}
	}
}
