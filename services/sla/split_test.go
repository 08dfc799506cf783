package sla

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/internal/worker"
)

// splitWorld is five firms with every kind of rule and breach: notifications to
// assignees, owners and managers, failures (no assignee, no case), and an overdue
// escalation that creates an SLA breach the run's next pass acts on. Firm i has i+1
// of each task, so the firms' attempts differ in number.
func splitWorld(t *testing.T, f *fixture) {
	t.Helper()
	h := time.Hour
	for i := range 5 {
		fm := f.firm(fmt.Sprintf("Firm %d", i))
		f.rule(fm.id, "task_overdue", "notify_assignee")
		f.rule(fm.id, "task_overdue", "notify_owner")
		f.rule(fm.id, "task_overdue", "escalate_priority")
		f.rule(fm.id, "sla_violation", "notify_managers")
		f.rule(fm.id, "sla_violation", "notify_assignee")
		for range i + 1 {
			f.task(task{tenant: fm.id, kase: fm.kase, assignee: fm.ca, priority: "high", created: t0.Add(-10 * h), due: t0.Add(-2 * h)})
			f.task(task{tenant: fm.id, priority: "low", created: t0.Add(-400 * h), due: t0.Add(-100 * h)})
			// Within medium's 168 h, past high's 72 h: the escalation breaches the SLA.
			f.task(task{tenant: fm.id, kase: fm.kase, assignee: fm.ca, priority: "medium", created: t0.Add(-100 * h), due: t0.Add(-h)})
		}
	}
}

// written is what a check run leaves in the database, in a comparable form.
func written(t *testing.T, f *fixture) string {
	t.Helper()
	var s string
	err := f.pool.QueryRow(t.Context(), `SELECT concat_ws(E'\n',
		(SELECT string_agg(concat_ws(' ', rule_id, task_id, occurrence, status, error), E'\n' ORDER BY rule_id, task_id, occurrence) FROM automation_logs),
		(SELECT string_agg(concat_ws(' ', dedupe_key, user_id, title, body), E'\n' ORDER BY dedupe_key) FROM notifications),
		(SELECT string_agg(concat_ws(' ', dedupe_key, tenant_id, user_id, details - 'run_id' - 'notification_id'), E'\n' ORDER BY dedupe_key) FROM audit_log WHERE action_type = 'notification_sent'),
		(SELECT string_agg(concat_ws(' ', id, priority), E'\n' ORDER BY id) FROM tasks))`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// What is tried: the same first SLA check, over five firms with every kind of action,
// failure and a second pass, run with its actions split into two firm-disjoint halves
// at once (splitAt 1), then, on the same data reset, in one transaction; then the split
// run again.
// What must hold: the split run was split (its log says two parts) and writes exactly
// what the single transaction writes, fire for fire, notification for notification,
// audit row for audit row and priority for priority, and reports the same totals,
// slices and errors; the run after it fires nothing.
func TestSplitActionsWriteWhatOneTransactionWrites(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	splitWorld(t, f)
	f.exec(`CREATE TABLE priorities_before AS SELECT id, priority FROM tasks`)

	rec := &recorder{mu: &sync.Mutex{}, lines: new([]logLine)}
	split := defaultConfig()
	split.splitAt = 1
	whole := defaultConfig()
	whole.splitAt = 0

	f.jobs = newJobs(jobservice.Deps{Pool: f.pool, Log: slogOf(rec)}, split)
	splitRep := f.check(t0)
	var parts []string
	for _, l := range *rec.lines {
		if l.msg == "sla check pass" {
			parts = append(parts, l.value("pass")+":"+l.value("parts"))
		}
	}
	if !slices.Contains(parts, "1:2") || !slices.Contains(parts, "2:2") {
		t.Fatalf("passes (pass:parts) of the split run = %v, want passes 1 and 2 each in 2 parts", parts)
	}
	splitRows := written(t, f)

	f.exec(`TRUNCATE automation_logs, notifications, audit_log CASCADE`)
	f.exec(`UPDATE tasks t SET priority = b.priority FROM priorities_before b WHERE b.id = t.id`)
	f.jobs = newJobs(jobservice.Deps{Pool: f.pool}, whole)
	wholeRep := f.check(t0)
	wholeRows := written(t, f)

	// 45 tasks, all overdue: 3 overdue rules each (135 fires) and 2 SLA rules on the 15
	// low tasks past their SLA and the 15 medium ones the escalation puts past high's
	// (60); no assignee for 15 tasks × 2 rules, no case for 15.
	wantCounts(t, wholeRep, map[string]int64{"overdue_tasks": 45, "sla_violations": 30, "automation_rules_triggered": 195, "automation_failures": 45})
	if splitRows != wholeRows {
		t.Errorf("the split run and one transaction wrote differently:\n%s", lineDiff(splitRows, wholeRows))
	}
	if got, want := fmt.Sprint(splitRep.Results), fmt.Sprint(wholeRep.Results); got != want {
		t.Errorf("split run's results %s, one transaction's %s", got, want)
	}
	if got, want := strings.Join(splitRep.Errors, "\n"), strings.Join(wholeRep.Errors, "\n"); got != want || got == "" {
		t.Errorf("split run's errors\n%s\none transaction's\n%s\n(want the same, and some)", got, want)
	}
	if got, want := fmt.Sprint(splitRep.Tenants), fmt.Sprint(wholeRep.Tenants); got != want {
		t.Errorf("split run's slices %s, one transaction's %s", got, want)
	}

	f.jobs = newJobs(jobservice.Deps{Pool: f.pool}, split)
	wantCounts(t, f.check(t0.Add(15*time.Minute)), map[string]int64{"automation_rules_triggered": 0, "notifications_sent": 0, "priorities_escalated": 0})
	if got := written(t, f); got != wholeRows {
		t.Errorf("the run after changed what was written:\n%s", got)
	}
}

// What is tried: a split first run (splitAt 1) over two firms with the same number of
// attempts, so that one is in each half (the kept half is the firm whose id sorts
// first, the other is moved to a transaction of its own), while the database refuses
// (a trigger raising an error) every notification of one of them: the kept firm's, then
// the moved firm's; then the trigger is dropped and the check runs again.
// What must hold: the failed run fails naming the refusal. When the kept half fails,
// the moved half stands, whole (its fires with all their notifications and audit rows);
// when the moved half fails, the run's transaction is rolled back and nothing stands.
// The next run completes the rest: every firm's rules fired once each, one notification
// and one audit row per person per fire, none twice.
func TestFailedHalfLosesNothingAndFiresNothingTwice(t *testing.T) {
	t.Parallel()
	for _, refuseKept := range []bool{true, false} {
		t.Run(fmt.Sprintf("kept half refused %v", refuseKept), func(t *testing.T) {
			t.Parallel()
			failedHalf(t, refuseKept)
		})
	}
}

func failedHalf(t *testing.T, refuseKept bool) {
	f := newFixture(t)
	var firms []firm
	for i := range 2 {
		fm := f.firm(fmt.Sprintf("Firm %d", i))
		f.rule(fm.id, "task_overdue", "notify_assignee")
		f.rule(fm.id, "task_overdue", "notify_managers")
		for range 3 {
			f.task(task{tenant: fm.id, kase: fm.kase, assignee: fm.ca, priority: "high", created: t0.Add(-10 * time.Hour), due: t0.Add(-2 * time.Hour)})
		}
		firms = append(firms, fm)
	}
	slices.SortFunc(firms, func(a, b firm) int { return strings.Compare(a.id.String(), b.id.String()) })
	kept, moved := firms[0].id, firms[1].id
	refused, other := moved, kept
	if refuseKept {
		refused, other = kept, moved
	}
	f.exec(`CREATE FUNCTION refuse_notification() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'notifications of this firm are refused'; END $$`)
	f.exec(fmt.Sprintf(`CREATE TRIGGER refuse BEFORE INSERT ON notifications FOR EACH ROW
		WHEN (NEW.tenant_id = '%s') EXECUTE FUNCTION refuse_notification()`, refused))

	cfg := defaultConfig()
	cfg.splitAt = 1
	rec := &recorder{mu: &sync.Mutex{}, lines: new([]logLine)}
	f.jobs = newJobs(jobservice.Deps{Pool: f.pool, Log: slogOf(rec)}, cfg)
	run := func(at time.Time) error {
		t.Helper()
		j, _ := catalog.Lookup(catalog.CheckSLAAndOverdue)
		_, err := f.jobs[j.Name](t.Context(), worker.Run{ID: uuid.NewString(), Job: j, Now: at, Scope: events.ScopeAll()})
		return err
	}
	if err := run(t0); err == nil || !strings.Contains(err.Error(), "notifications of this firm are refused") {
		t.Fatalf("run with one firm refused: err = %v, want the refusal", err)
	}
	perFirm := func() map[uuid.UUID][3]int {
		t.Helper()
		out := map[uuid.UUID][3]int{}
		rows, err := f.pool.Query(t.Context(), `SELECT t.id,
			(SELECT count(*) FROM automation_logs l WHERE l.tenant_id = t.id),
			(SELECT count(*) FROM notifications n WHERE n.tenant_id = t.id),
			(SELECT count(*) FROM audit_log a WHERE a.tenant_id = t.id AND a.action_type = 'notification_sent')
			FROM tenants t`)
		if err != nil {
			t.Fatal(err)
		}
		var id uuid.UUID
		var c [3]int
		if _, err := pgx.ForEachRow(rows, []any{&id, &c[0], &c[1], &c[2]}, func() error { out[id] = c; return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// Per firm: 3 tasks × 2 rules fired; 3 to the assignee and 3 × 2 to the managers.
	whole, none := [3]int{6, 9, 9}, [3]int{}
	wantOther := none
	if refuseKept {
		wantOther = whole
	}
	got := perFirm()
	if got[refused] != none || got[other] != wantOther {
		t.Errorf("after the failed run, fires/notifications/audit rows: refused firm %v, other firm %v; want %v and %v",
			got[refused], got[other], none, wantOther)
	}
	split := false
	for _, l := range *rec.lines {
		split = split || (l.msg == "sla check pass" && l.value("parts") == "2")
	}
	if !split {
		t.Error("the failed run's pass was not split in two (no log line with parts=2)")
	}

	f.exec(`DROP TRIGGER refuse ON notifications`)
	if err := run(t0.Add(15 * time.Minute)); err != nil {
		t.Fatalf("run after the refusal ended: %v", err)
	}
	for id, c := range perFirm() {
		if c != whole {
			t.Errorf("after the next run, firm %s has fires/notifications/audit rows %v, want %v: each once", id, c, whole)
		}
	}
	if n := f.count(`SELECT count(*) FROM (SELECT dedupe_key FROM notifications GROUP BY 1 HAVING count(*) > 1) d`); n != 0 {
		t.Errorf("%d notifications delivered twice", n)
	}
}

// lineDiff is the lines of a not in b (-) and of b not in a (+).
func lineDiff(a, b string) string {
	as, bs := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, l := range as {
		if !slices.Contains(bs, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range bs {
		if !slices.Contains(as, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

func slogOf(h *recorder) *slog.Logger { return slog.New(h).With("service", "sla") }

// What is tried: moveHalf on attempts of three firms, 5, 3 and 2 of them, and on
// attempts of one firm only.
// What must hold: the moved attempts are whole firms and are gone from the table, the
// kept ones are the other firms' and still there, the halves are balanced (the firm of
// 5 against the other two), and nothing is moved when one firm has every attempt.
func TestMoveHalfSplitsWholeFirms(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	big, mid, small := uuid.New(), uuid.New(), uuid.New()
	tx, err := f.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(t.Context()) }()
	if _, err := tx.Exec(t.Context(), createAttemptsSQL); err != nil {
		t.Fatal(err)
	}
	add := func(firm uuid.UUID, n int) {
		for range n {
			if _, err := tx.Exec(t.Context(), `INSERT INTO sla_attempts VALUES ($1, $2, $3, 'r', 'notify_assignee', 'overdue', 'task_overdue', now(), 'o', 't', 'high', NULL, NULL)`,
				firm, uuid.New(), uuid.New()); err != nil {
				t.Fatal(err)
			}
		}
	}
	firmsIn := func(rows [][]any) map[uuid.UUID]int {
		out := map[uuid.UUID]int{}
		for _, r := range rows {
			out[uuid.UUID(r[0].([16]byte))]++
		}
		return out
	}
	kept := func() map[uuid.UUID]int {
		t.Helper()
		out := map[uuid.UUID]int{}
		rows, _ := tx.Query(t.Context(), `SELECT tenant_id FROM sla_attempts`)
		var id uuid.UUID
		if _, err := pgx.ForEachRow(rows, []any{&id}, func() error { out[id]++; return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	add(big, 5)
	add(mid, 3)
	add(small, 2)
	moved, err := moveHalf(t.Context(), tx)
	if err != nil {
		t.Fatal(err)
	}
	m, k := firmsIn(moved), kept()
	want := map[bool]string{true: fmt.Sprint(map[uuid.UUID]int{big: 5}), false: fmt.Sprint(map[uuid.UUID]int{mid: 3, small: 2})}
	if got := [2]string{fmt.Sprint(m), fmt.Sprint(k)}; !(got == [2]string{want[true], want[false]} || got == [2]string{want[false], want[true]}) {
		t.Errorf("moved %v, kept %v; want the firm of 5 in one half and the firms of 3 and 2 in the other", m, k)
	}

	if _, err := tx.Exec(t.Context(), `TRUNCATE sla_attempts`); err != nil {
		t.Fatal(err)
	}
	add(big, 4)
	moved, err = moveHalf(t.Context(), tx)
	if err != nil || len(moved) != 0 || kept()[big] != 4 {
		t.Errorf("one firm's 4 attempts: moved %d (err %v), kept %v; want none moved, all 4 kept", len(moved), err, kept())
	}
}
