package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/jobstate"
	"github.com/lexhq/gstjobs/services/gateway"
	"github.com/lexhq/gstjobs/services/ticker"
)

// zonedFirm is a firm of the hours test: one admin, who owns its one case and is
// assigned its hearings and its task.
type zonedFirm struct {
	name, id, admin string
	loc             *time.Location
}

func (s *stack) zonedFirm(name, zone string) zonedFirm {
	s.t.Helper()
	ctx := context.Background()
	f := zonedFirm{name: name, id: uuid.NewString(), admin: uuid.NewString(), loc: mustLoc(zone)}
	c := uuid.NewString()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO tenants (id, name, timezone) VALUES ($1, $2, $3)`, []any{f.id, name, zone}},
		{`INSERT INTO profiles (id, tenant_id, full_name, email, role) VALUES ($1, $2, 'Admin of ' || $3, NULL, 'admin')`, []any{f.admin, f.id, name}},
		{`INSERT INTO cases (id, tenant_id, case_number, title, owner_id) VALUES ($1, $2, 'GST/' || $3, 'Case of ' || $3, $4)`, []any{c, f.id, name, f.admin}},
	} {
		if _, err := s.pool.Exec(ctx, q.sql, q.args...); err != nil {
			s.t.Fatal(err)
		}
	}
	// A hearing at 10:00 on the firm's wall clock on each of the three days, and a task
	// due at 09:00 on Tuesday 10 March there.
	for day := 7; day <= 9; day++ {
		if _, err := s.pool.Exec(ctx, `INSERT INTO hearings (id, tenant_id, case_id, hearing_date, assigned_to) VALUES ($1, $2, $3, $4, $5)`,
			uuid.NewString(), f.id, c, time.Date(2026, 3, day, 10, 0, 0, 0, f.loc), f.admin); err != nil {
			s.t.Fatal(err)
		}
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO tasks (id, tenant_id, case_id, title, assigned_to, due_date) VALUES ($1, $2, $3, 'File the reply', $4, $5)`,
		uuid.NewString(), f.id, c, f.admin, time.Date(2026, 3, 10, 9, 0, 0, 0, f.loc)); err != nil {
		s.t.Fatal(err)
	}
	return f
}

// startTicker starts a ticker that reads the firms' zones from the stack's database.
func (s *stack) startTicker(instance string) *ticker.Ticker {
	s.t.Helper()
	firms := ticker.NewPostgresFirms(s.pool, kolkata, s.deps.Log)
	tk, err := ticker.New(ticker.Config{JS: s.nats.JS, NC: s.nats.NC, Location: kolkata, Clock: s.clock, Log: s.deps.Log, Instance: instance, Firms: firms})
	if err != nil {
		s.t.Fatal(err)
	}
	if err := tk.Start(context.Background()); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { tk.Stop(); firms.Close() })
	return tk
}

// visit moves the clock to instant once the tickers (n of them) wait on it, and waits
// until every run it set off is finished and persisted: the jobs then always run at
// the instant they were due, as they would on a real clock.
func (s *stack) visit(instant time.Time, tickers int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.clock.BlockUntilContext(ctx, tickers); err != nil {
		s.t.Fatalf("%d ticker(s) never waited on the clock before %s: %v", tickers, instant, err)
	}
	if d := instant.Sub(s.clock.Now()); d > 0 {
		s.clock.Advance(d)
	}
	if err := s.clock.BlockUntilContext(ctx, tickers); err != nil {
		s.t.Fatalf("%d ticker(s) never waited on the clock after %s: %v", tickers, instant, err)
	}
	s.waitWorkIdle()
}

// waitWorkIdle waits until no schedule slot, trigger or run order is waiting, no run is
// queued or running, and the gateway has persisted every event.
func (s *stack) waitWorkIdle() {
	s.t.Helper()
	ctx := context.Background()
	runs, err := s.nats.JS.KeyValue(ctx, bus.BucketRuns)
	if err != nil {
		s.t.Fatal(err)
	}
	waitFor(s.t, "every job's work done", func() bool {
		for _, job := range catalog.Names() {
			for _, name := range []string{bus.TriggerConsumer(job), bus.RunConsumer(job)} {
				c, err := s.nats.JS.Consumer(ctx, bus.StreamJobs, name)
				if err != nil {
					return false
				}
				ci, err := c.Info(ctx)
				if err != nil || ci.NumPending > 0 || ci.NumAckPending > 0 {
					return false
				}
			}
			r, _, err := jobstate.Get[jobstate.Runs](ctx, runs, job)
			if err != nil || r.Current != nil || r.Next != nil {
				return false
			}
		}
		return true
	})
	waitForConsumerIdle(s.t, s)
}

// dailySlots are the instants in (from, to] at which any of the daily jobs is due in
// any of the zones, at its default hour or at the given extra times of day.
func dailySlots(from, to time.Time, zones []*time.Location, extra ...string) []time.Time {
	var out []time.Time
	for _, job := range catalog.All() {
		at, ok := catalog.DailyAt(job.Schedule)
		if !job.FirmHours || !ok {
			continue
		}
		for _, a := range append([]string{at}, extra...) {
			for _, loc := range zones {
				for t, _ := catalog.Next(catalog.DailyCron(a), loc, from); !t.After(to); t, _ = catalog.Next(catalog.DailyCron(a), loc, t) {
					out = append(out, t.UTC())
				}
			}
		}
	}
	slices.SortFunc(out, time.Time.Compare)
	return slices.Compact(out)
}

func (s *stack) strings(sql string, args ...any) []string {
	s.t.Helper()
	rows, err := s.pool.Query(context.Background(), sql, args...)
	if err != nil {
		s.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			s.t.Fatal(err)
		}
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// Tried: the whole system on a fake clock, from Saturday 7 to Monday 9 March 2026, with
// three firms in Asia/Kolkata (JOBS_TIMEZONE), Asia/Dubai and America/New_York (whose
// clocks go forward at 02:00 on Sunday 8 March), each with a hearing at 10:00 on its
// own wall clock each day and a task due at 09:00 on Tuesday; two tickers; on Monday
// Dubai's admin moves the firm's reminders to 09:00 before the day's run (through the
// API), and Kolkata's admin to 09:00 after it; before New York's Monday reminders both
// tickers stop, and a third starts twenty minutes after the slot.
// Must hold: each firm gets each day's reminder at its own 08:00 (Dubai's on Monday at
// 09:00), one per hearing, none twice, written in its own zone (EST on Saturday, EDT
// after the change); its deadline alerts count days on its own calendar; its analytics
// snapshots are dated by its own days; Kolkata's move after its run adds no run; New
// York's Monday slot, missed by the stopped tickers, is caught up once; Dubai's card
// says "Daily at 9:00 AM" in Asia/Dubai.
func TestEachFirmsOwnHoursEndToEnd(t *testing.T) {
	start := time.Date(2026, 3, 7, 2, 0, 0, 0, time.UTC) // 07:30 in Kolkata, 06:00 in Dubai, 21:00 on Friday in New York
	s := startStack(t, stackOptions{now: start})
	ctx := context.Background()
	cfgKV, err := s.nats.JS.KeyValue(ctx, bus.BucketConfig)
	if err != nil {
		t.Fatal(err)
	}
	// The SLA check is not what this test is about: paused for everyone, it runs nothing.
	paused, _ := json.Marshal(jobstate.Config{Paused: true, UpdatedAt: start, UpdatedBy: "test"})
	if _, err := cfgKV.Put(ctx, catalog.CheckSLAAndOverdue, paused); err != nil {
		t.Fatal(err)
	}
	kol := s.zonedFirm("Kaveri Law", "Asia/Kolkata")
	dxb := s.zonedFirm("Gulf Tax Advisors", "Asia/Dubai")
	nyc := s.zonedFirm("Hudson GST Desk", "America/New_York")
	zones := []*time.Location{kol.loc, dxb.loc, nyc.loc}
	a, b := s.startTicker("ticker-a"), s.startTicker("ticker-b")
	running := 2

	moveDubai := time.Date(2026, 3, 9, 2, 0, 0, 0, time.UTC)   // 06:00 in Dubai, before its 08:00
	moveKolkata := time.Date(2026, 3, 9, 3, 0, 0, 0, time.UTC) // 08:30 in Kolkata, after its 08:00
	stopAll := time.Date(2026, 3, 9, 11, 30, 0, 0, time.UTC)   // 07:30 in New York
	restart := time.Date(2026, 3, 9, 12, 20, 0, 0, time.UTC)   // 08:20 in New York
	end := time.Date(2026, 3, 9, 13, 0, 0, 0, time.UTC)
	setAt := func(f zonedFirm, at string) {
		h := s.signIn(f.admin)
		code, body := s.put(h, "/api/jobs/"+catalog.SendHearingReminders+"/schedule", `{"at":"`+at+`","reason":"court starts later on Mondays"}`)
		if code != 200 {
			t.Fatalf("%s's admin sets %s = %d %s", f.name, at, code, body)
		}
	}
	for _, at := range dailySlots(start, end, zones, "09:00") {
		switch {
		case !at.Before(moveDubai) && moveDubai.After(s.clock.Now()):
			s.visit(moveDubai, running)
			setAt(dxb, "09:00")
		case !at.Before(moveKolkata) && moveKolkata.After(s.clock.Now()):
			s.visit(moveKolkata, running)
			setAt(kol, "09:00")
		}
		if !at.Before(stopAll) && running == 2 {
			s.visit(stopAll, running)
			a.Stop()
			b.Stop()
			running = 0
			s.clock.Advance(restart.Sub(s.clock.Now()))
			s.startTicker("ticker-c")
			running = 1
			s.waitWorkIdle()
		}
		if at.After(s.clock.Now()) {
			s.visit(at, running)
		}
	}

	// Reminders: one per hearing, at the firm's own hour, in its own zone.
	for _, c := range []struct {
		firm zonedFirm
		want []string
	}{
		{kol, []string{"Hearing Mon 09 Mar 2026, 10:00 IST", "Hearing Sat 07 Mar 2026, 10:00 IST", "Hearing Sun 08 Mar 2026, 10:00 IST"}},
		{dxb, []string{"Hearing Mon 09 Mar 2026, 10:00 +04", "Hearing Sat 07 Mar 2026, 10:00 +04", "Hearing Sun 08 Mar 2026, 10:00 +04"}},
		{nyc, []string{"Hearing Mon 09 Mar 2026, 10:00 EDT", "Hearing Sat 07 Mar 2026, 10:00 EST", "Hearing Sun 08 Mar 2026, 10:00 EDT"}},
	} {
		got := s.strings(`SELECT split_part(title, ':', 1) || ':' || split_part(title, ':', 2) FROM notifications WHERE tenant_id = $1 AND kind = 'hearing_reminder'`, c.firm.id)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s's reminders: %q, want %q (one per hearing, in its zone)", c.firm.name, got, c.want)
		}
	}
	// ...and each sent by a run at the firm's hour: 08:00 there (09:00 in Dubai on
	// Monday), New York's Monday one late, caught up at 08:20.
	for _, c := range []struct {
		firm zonedFirm
		want []string
	}{
		{kol, []string{"2026-03-07 08:00", "2026-03-08 08:00", "2026-03-09 08:00"}},
		{dxb, []string{"2026-03-07 08:00", "2026-03-08 08:00", "2026-03-09 09:00"}},
		{nyc, []string{"2026-03-07 08:00", "2026-03-08 08:00", "2026-03-09 08:20"}},
	} {
		var got []string
		for _, ts := range s.strings(`
			SELECT ex.details->>'started_at'
			FROM notifications n
			JOIN audit_log ns ON ns.action_type = 'notification_sent' AND ns.details->>'notification_id' = n.id::text
			JOIN audit_log ex ON ex.dedupe_key = 'execution:' || (ns.details->>'run_id')
			WHERE n.tenant_id = $1 AND n.kind = 'hearing_reminder'`, c.firm.id) {
			at, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil {
				t.Fatalf("started_at %q: %v", ts, err)
			}
			got = append(got, at.In(c.firm.loc).Format("2006-01-02 15:04"))
		}
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s's reminders were sent at %q on its wall clock, want %q", c.firm.name, got, c.want)
		}
	}

	// Deadline alerts, days counted on each firm's calendar: the task due on Tuesday is
	// alerted at the 3-day threshold by the first run that finds it within 3 days
	// (Saturday's in Dubai and New York, 3 days away; Sunday's in Kolkata, whose Saturday
	// run came before the start: 2 days away), and at the 1-day threshold on Monday.
	for _, c := range []struct {
		firm  zonedFirm
		first string
	}{{kol, "Task due in 2 days (10 Mar 2026)"}, {dxb, "Task due in 3 days (10 Mar 2026)"}, {nyc, "Task due in 3 days (10 Mar 2026)"}} {
		got := s.strings(`SELECT split_part(title, ':', 1) FROM notifications WHERE tenant_id = $1 AND kind = 'deadline_alert'`, c.firm.id)
		if want := []string{c.first, "Task due tomorrow (10 Mar 2026)"}; !slices.Equal(got, want) {
			t.Errorf("%s's deadline alerts: %q, want %q", c.firm.name, got, want)
		}
	}

	// Analytics: dated by each firm's own days (New York's 00:30 on Saturday came after
	// the start; Kolkata's and Dubai's did not).
	for _, c := range []struct {
		firm zonedFirm
		want []string
	}{
		{kol, []string{"2026-03-08", "2026-03-09"}},
		{dxb, []string{"2026-03-08", "2026-03-09"}},
		{nyc, []string{"2026-03-07", "2026-03-08", "2026-03-09"}},
	} {
		got := s.strings(`SELECT DISTINCT snapshot_date::text FROM analytics_snapshots WHERE tenant_id = $1`, c.firm.id)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s's snapshots are dated %q, want %q", c.firm.name, got, c.want)
		}
	}

	// Dubai's card: its own hour, in its own zone, the next run on Tuesday at 09:00 there.
	code, body := s.get(s.signIn(dxb.admin), "/api/jobs/"+catalog.SendHearingReminders)
	var card gateway.Card
	if err := json.Unmarshal([]byte(body), &card); err != nil || code != 200 {
		t.Fatalf("Dubai's card = %d %s", code, body)
	}
	if next := time.Date(2026, 3, 10, 9, 0, 0, 0, dxb.loc); card.Frequency != "Daily at 9:00 AM" || card.Timezone != "Asia/Dubai" || card.NextRunAt == nil || !card.NextRunAt.Equal(next) {
		t.Errorf("Dubai's card: %s in %s, next %v; want daily at 9:00 AM in Asia/Dubai, next %v", card.Frequency, card.Timezone, card.NextRunAt, next)
	}
	var changes int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE action_type = 'background_job_schedule_changed' AND tenant_id IN ($1, $2) AND details->>'reason' = 'court starts later on Mondays'`, dxb.id, kol.id).Scan(&changes); err != nil || changes != 2 {
		t.Errorf("the two firms' changes in audit_log: %d (%v), want 2", changes, err)
	}
	t.Log("runs:\n" + strings.Join(s.strings(`SELECT details->>'started_at' || ' ' || (details->'triggers'->0->>'id') FROM audit_log WHERE action_type = 'background_job_execution'`), "\n"))
}

func (s *stack) put(h http.Header, path, body string) (int, string) {
	s.t.Helper()
	req, err := http.NewRequest("PUT", strings.TrimSuffix(s.gw.URL(), "/")+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header = h.Clone()
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("PUT %s: %v", path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(data)
}
