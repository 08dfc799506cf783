package reminders_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/worker"
	"github.com/lexhq/gstjobs/services/reminders"
)

func runScope(t *testing.T, jobs map[string]worker.Func, name string, scope events.Scope) worker.Report {
	t.Helper()
	job, _ := catalog.Lookup(name)
	rep, err := jobs[name](context.Background(), worker.Run{ID: uuid.NewString(), Job: job, Now: morning, Scope: scope})
	if err != nil {
		t.Fatalf("%s for %+v: %v", name, scope, err)
	}
	return rep
}

func sliceOf(t *testing.T, rep worker.Report, tenant string) (events.TenantSlice, bool) {
	t.Helper()
	for _, s := range rep.Tenants {
		if s.TenantID == tenant {
			return s, true
		}
	}
	return events.TenantSlice{}, false
}

// What is tried: two firms with hearings tomorrow morning and a third with none; a run
// that skips the first (it paused hearing reminders), then the first firm's own Run Now.
// What must hold: the paused firm's people get nothing from the schedule's run and the
// other firm's people get theirs; each covered firm's slice counts its own hearings
// and reminders, the empty firm's zeros, once; the paused firm's own Run Now reminds its
// people, and only them.
func TestHearingRemindersPerFirm(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	mehta, iyer, empty := w.tenant("Mehta & Associates"), w.tenant("Iyer Tax Chambers"), w.tenant("Empty Chambers")
	priya, rohan := w.person(mehta, "Priya Nair", "priya@mehta.example"), w.person(mehta, "Rohan Kapoor", "rohan@mehta.example")
	meera, karthik := w.person(iyer, "Meera Krishnan", "meera@iyer.example"), w.person(iyer, "Karthik Menon", "karthik@iyer.example")
	w.hearing(w.legalCase(mehta, "GST/SCN/2026/0142", rohan), priya, ist(2026, 3, 10, 10, 30, 0), "scheduled")
	w.hearing(w.legalCase(mehta, "GST/APL/2026/0077", rohan), priya, ist(2026, 3, 10, 15, 0, 0), "scheduled")
	w.hearing(w.legalCase(iyer, "GST/SCN/2026/1201", karthik), meera, ist(2026, 3, 10, 10, 0, 0), "scheduled")
	jobs := w.jobs(reminders.Config{})

	rep := runScope(t, jobs, catalog.SendHearingReminders, events.Scope{All: true, Skip: []string{mehta}})
	if n := w.count(`SELECT count(*) FROM notifications WHERE tenant_id = $1`, mehta); n != 0 {
		t.Errorf("the paused firm's people got %d reminders from the schedule's run, want 0", n)
	}
	if _, ok := sliceOf(t, rep, mehta); ok {
		t.Errorf("the paused firm has a slice from the job; the worker, not the job, reports it skipped")
	}
	is, ok := sliceOf(t, rep, iyer)
	if !ok || is.Results["hearings_processed"] != 1 || is.Results["notifications_sent"] != 2 || is.Results["failed_notifications"] != 0 {
		t.Errorf("Iyer's slice = %+v, want 1 hearing, 2 reminders, 0 failed", is)
	}
	es, ok := sliceOf(t, rep, empty)
	if !ok || es.Results["hearings_processed"] != 0 || es.Results["notifications_sent"] != 0 {
		t.Errorf("the empty firm's slice = %+v, want zeros", es)
	}
	results(t, rep, map[string]int{"hearings_processed": 1, "notifications_sent": 2})
	// The run is delivered in two firm-disjoint slices, each counting its own firms:
	// every covered firm has one slice, not one from each.
	if len(rep.Tenants) != 2 {
		t.Errorf("the schedule's run has %d firms' slices, want 2 (Iyer's and the empty firm's): %+v", len(rep.Tenants), rep.Tenants)
	}

	rep = runScope(t, jobs, catalog.SendHearingReminders, events.ScopeTenant(mehta))
	if len(rep.Tenants) != 1 {
		t.Fatalf("Mehta's Run Now has %d slices, want Mehta's alone: %+v", len(rep.Tenants), rep.Tenants)
	}
	if ms := rep.Tenants[0]; ms.TenantID != mehta || ms.Results["hearings_processed"] != 2 || ms.Results["notifications_sent"] != 4 {
		t.Errorf("Mehta's slice = %+v, want 2 hearings and 4 reminders", ms)
	}
	if n := w.count(`SELECT count(*) FROM notifications WHERE tenant_id = $1`, iyer); n != 2 {
		t.Errorf("Iyer has %d reminders after Mehta's Run Now, want its 2 from before and none more", n)
	}
}
