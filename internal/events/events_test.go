package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDecodeTrigger(t *testing.T) {
	cases := []struct {
		name, body string
		want       Trigger
		wantErr    string
	}{
		{"empty body is a trigger with no reason", "", Trigger{}, ""},
		{"whitespace body", "  \n", Trigger{}, ""},
		{"reason and requester", `{"reason":"before client meeting","requested_by":"dev@firm"}`, Trigger{Reason: "before client meeting", RequestedBy: "dev@firm"}, ""},
		{"unknown fields are ignored", `{"reason":"x","extra":1}`, Trigger{Reason: "x"}, ""},
		{"not JSON", `{"reason":`, Trigger{}, "not valid JSON"},
		{"plain text", `run please`, Trigger{}, "not valid JSON"},
		{"array", `[1,2]`, Trigger{}, "must be a JSON object, not an array"},
		{"string", `"x"`, Trigger{}, "must be a JSON object, not a string"},
		{"wrong type", `{"reason":42}`, Trigger{}, "cannot unmarshal"},
		{"reason too long", `{"reason":"` + strings.Repeat("a", MaxReasonLen+1) + `"}`, Trigger{}, "longer than 500"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecodeTrigger([]byte(c.body), false)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !errors.Is(err, ErrInvalidPayload) {
					t.Fatalf("DecodeTrigger(%q) error = %v, want ErrInvalidPayload mentioning %q", c.body, err, c.wantErr)
				}
				return
			}
			if err != nil || got.Reason != c.want.Reason || got.RequestedBy != c.want.RequestedBy || got.Requester != nil {
				t.Fatalf("DecodeTrigger(%q) = %+v, %v; want %+v", c.body, got, err, c.want)
			}
		})
	}
}

func TestSubjectsAndMsgID(t *testing.T) {
	if got := ScheduleSubject("check-sla-and-overdue"); got != "jobs.schedule.check-sla-and-overdue" {
		t.Errorf("ScheduleSubject = %q", got)
	}
	if got := JobFromSubject("jobs.result.send-hearing-reminders"); got != "send-hearing-reminders" {
		t.Errorf("JobFromSubject = %q", got)
	}
	ist := time.FixedZone("IST", 5*3600+1800)
	slot := time.Date(2026, 1, 2, 8, 0, 0, 0, ist)
	if got := ScheduleMsgID("send-hearing-reminders", slot); got != "send-hearing-reminders@2026-01-02T02:30:00Z" {
		t.Errorf("ScheduleMsgID = %q: the same instant must give the same id in any zone", got)
	}
}

func TestSummaryUsesTheGuidesWords(t *testing.T) {
	ok := Result{JobName: "check-sla-and-overdue", Status: StatusSuccess, Results: map[string]any{"overdue_tasks": 5}}
	if got := ok.Summary(); got != "Job executed successfully - 5 overdue tasks found" {
		t.Errorf("success summary = %q", got)
	}
	bad := Result{JobName: "check-sla-and-overdue", Status: StatusFailed}
	if got := bad.Summary(); got != "Job execution failed - Check logs for details" {
		t.Errorf("failure summary = %q", got)
	}
}

func TestDecodeResultNeedsRunID(t *testing.T) {
	if _, err := DecodeResult([]byte(`{"job_name":"x","status":"success"}`)); !errors.Is(err, ErrInvalidPayload) {
		t.Errorf("a run result without run_id must be invalid, got %v", err)
	}
	if _, err := DecodeResult([]byte(`{"job_name":"x","status":"rejected","error_message":"bad"}`)); err != nil {
		t.Errorf("a rejection needs no run_id: %v", err)
	}
}

// Who may name a requester: the gateway's Run Now (jobs.trigger.<job>.api) must, a
// developer's trigger (jobs.trigger.<job>) may not, so nobody outside the gateway can
// speak for a firm's person.
func TestDecodeTriggerRequester(t *testing.T) {
	cases := []struct {
		name    string
		body    string
		fromAPI bool
		scope   Scope
		wantErr string
	}{
		{"a firm's Run Now covers that firm", `{"reason":"r","requester":{"tenant_id":"11111111-1111-1111-1111-111111111111","profile_id":"a0000000-0000-0000-0000-000000000001","name":"Anjali"}}`, true, Scope{Tenants: []string{"11111111-1111-1111-1111-111111111111"}}, ""},
		{"a requester's firm must be an id", `{"requester":{"tenant_id":"t1","name":"Anjali"}}`, true, Scope{}, "is not an id"},
		{"the operator's Run Now covers every firm", `{"requester":{"name":"ops","operator":true}}`, true, Scope{All: true}, ""},
		{"a developer's trigger covers every firm", `{"reason":"r","requested_by":"dev@firm"}`, false, Scope{All: true}, ""},
		{"a developer may not claim a firm's person", `{"requester":{"tenant_id":"t1","name":"Anjali"}}`, false, Scope{}, "set by the gateway only"},
		{"the gateway must name the requester", `{"reason":"r"}`, true, Scope{}, "must name its requester"},
		{"an empty Run Now names nobody", ``, true, Scope{}, "must name its requester"},
		{"a requester needs a firm or to be the operator", `{"requester":{"name":"x"}}`, true, Scope{}, "needs a tenant_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecodeTrigger([]byte(c.body), c.fromAPI)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !errors.Is(err, ErrInvalidPayload) {
					t.Fatalf("DecodeTrigger(%q, api=%v) error = %v, want ErrInvalidPayload mentioning %q", c.body, c.fromAPI, err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeTrigger(%q, api=%v): %v", c.body, c.fromAPI, err)
			}
			if sc := got.Scope(); sc.All != c.scope.All || !slices.Equal(sc.Tenants, c.scope.Tenants) {
				t.Errorf("scope = %+v, want %+v", sc, c.scope)
			}
		})
	}
}

func TestScope(t *testing.T) {
	mehta, iyer, third := "t-mehta", "t-iyer", "t-third"
	all := Scope{All: true, Skip: []string{iyer}}
	if !all.Covers(mehta) || all.Covers(iyer) {
		t.Errorf("a run for every firm covers all but the paused ones: %+v", all)
	}
	own := Scope{All: true, Tenants: []string{iyer}, Skip: []string{iyer}}
	if !own.Covers(iyer) {
		t.Errorf("a firm's own Run Now runs even while it paused the job: %+v", own)
	}
	one := ScopeTenant(mehta)
	if !one.Covers(mehta) || one.Covers(iyer) || one.Covers("") {
		t.Errorf("a firm's Run Now covers that firm only: %+v", one)
	}
	u := one.Union(ScopeTenant(third)).Union(ScopeTenant(mehta))
	if u.All || !slices.Equal(u.Tenants, []string{mehta, third}) {
		t.Errorf("union of two firms' Run Now = %+v, want both, once each, sorted", u)
	}
	if u := one.Union(ScopeAll()); !u.All {
		t.Errorf("a schedule joining a firm's run makes it every firm's: %+v", u)
	}
	many := Scope{}
	for i := range MaxScopeTenants + 1 {
		many = many.Union(ScopeTenant(fmt.Sprintf("t%03d", i)))
	}
	if !many.All {
		t.Errorf("past %d firms a run covers every firm, got %d named", MaxScopeTenants, len(many.Tenants))
	}
}

// Tried: the scopes of daily jobs' slots (firms that share a zone and a time of day, and
// every firm but those whose slot is elsewhere), alone, paused and joined with others.
// Must hold: a slot covers exactly its firms, minus those that paused; a firm's own Run
// Now still runs it while paused; joining never drops a firm either side covered, never
// adds one neither covered, and firms named by slots are never capped into "every firm".
func TestScopeOfASlotsFirms(t *testing.T) {
	dubai, delhi, ny, newFirm := "t-dubai", "t-delhi", "t-ny", "t-new"
	slot := ScopeFirms([]string{dubai, dubai})
	if !slot.Covers(dubai) || slot.Covers(delhi) || len(slot.Firms) != 1 {
		t.Errorf("a slot's firms are covered, once, and no other: %+v", slot)
	}
	paused := slot
	paused.Skip = []string{dubai}
	if paused.Covers(dubai) {
		t.Errorf("a firm that paused the job is skipped by its slot: %+v", paused)
	}
	if asked := paused.Asked(); !asked.Covers(dubai) {
		t.Errorf("Asked forgets the pauses: %+v", asked)
	}
	rest := Scope{All: true, Except: []string{dubai, ny}}
	if !rest.Covers(delhi) || !rest.Covers(newFirm) || rest.Covers(dubai) || rest.Covers(ny) {
		t.Errorf("every firm but those whose slot is elsewhere: %+v", rest)
	}
	if u := rest.Union(slot); !u.All || !slices.Equal(u.Except, []string{ny}) {
		t.Errorf("the default slot joined by Dubai's = %+v, want every firm but New York", u)
	}
	if u := slot.Union(ScopeFirms([]string{ny})); u.All || !slices.Equal(u.Firms, []string{dubai, ny}) {
		t.Errorf("two slots' firms joined = %+v, want both named", u)
	}
	if u := slot.Union(ScopeTenant(delhi)); u.All || !u.Covers(dubai) || !u.Covers(delhi) || u.Covers(ny) {
		t.Errorf("a slot joined by a firm's Run Now = %+v, want both firms and no other", u)
	}
	if u := rest.Union(Scope{All: true, Except: []string{ny, delhi}}); !slices.Equal(u.Except, []string{ny}) {
		t.Errorf("two slots for every firm but some: %+v, want every firm but the one neither covers", u)
	}
	if u := rest.Union(ScopeAll()); !u.All || len(u.Except) != 0 {
		t.Errorf("a slot joined by a run for every firm is every firm's: %+v", u)
	}
	if !rest.Includes(ScopeFirms([]string{delhi})) || rest.Includes(slot) || slot.Includes(rest) || !ScopeAll().Includes(rest) {
		t.Error("Includes: a scope does another's work only if it covers every firm the other covers")
	}
	var many []string
	for i := range 3 * MaxScopeTenants {
		many = append(many, fmt.Sprintf("t%03d", i))
	}
	if u := ScopeFirms(many[:MaxScopeTenants]).Union(ScopeFirms(many[MaxScopeTenants:])); u.All || len(u.Firms) != len(many) {
		t.Errorf("slots naming %d firms joined = all %v, %d named; want every one named, no more", len(many), u.All, len(u.Firms))
	}
}

// Tried: schedule events as the ticker writes them and as a hand-written publish might.
// Must hold: a slot's firms travel in scope.firms (or all with except); a slot may not
// claim firms that asked themselves, nor name something that is not a firm; the id of
// a group's slot names the group.
func TestDecodeScheduleScope(t *testing.T) {
	id := "11111111-1111-1111-1111-111111111111"
	for _, c := range []struct {
		body, err string
	}{
		{`{"job_name":"j","slot":"2026-03-10T04:00:00Z"}`, ""},
		{`{"job_name":"j","slot":"2026-03-10T04:00:00Z","group":"Asia/Dubai 08:00","scope":{"firms":["` + id + `"]}}`, ""},
		{`{"job_name":"j","slot":"2026-03-10T04:00:00Z","scope":{"all":true,"except":["` + id + `"]}}`, ""},
		{`{"job_name":"j","slot":"2026-03-10T04:00:00Z","scope":{"tenants":["` + id + `"]}}`, "never tenants"},
		{`{"job_name":"j","slot":"2026-03-10T04:00:00Z","scope":{}}`, "for no firm"},
		{`{"job_name":"j","slot":"2026-03-10T04:00:00Z","scope":{"firms":["mehta"]}}`, "not a firm's id"},
	} {
		s, err := DecodeSchedule([]byte(c.body))
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.body, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want one saying %q", c.body, err, c.err)
		case c.err == "" && s.Scope == nil && !s.For().All:
			t.Errorf("%s: a slot with no scope is for every firm", c.body)
		}
	}
	slot := time.Date(2026, 3, 10, 4, 0, 0, 0, time.UTC)
	if got := GroupMsgID("send-hearing-reminders", slot, "Asia/Dubai 08:00"); got != "send-hearing-reminders@2026-03-10T04:00:00Z#Asia/Dubai 08:00" {
		t.Errorf("GroupMsgID = %q", got)
	}
	if got := GroupMsgID("send-hearing-reminders", slot, ""); got != ScheduleMsgID("send-hearing-reminders", slot) {
		t.Errorf("the group of every firm keeps the slot's id, got %q", got)
	}
}

func TestSplitSlicesStaysUnderThePartLimit(t *testing.T) {
	var all []TenantSlice
	for i := range 10_000 {
		all = append(all, TenantSlice{TenantID: fmt.Sprintf("%08d-0000-0000-0000-000000000000", i),
			Results: map[string]any{"overdue_tasks": i, "sla_violations": i % 7, "automation_rules_triggered": 3},
			Errors:  []string{strings.Repeat("x", i%200)}})
	}
	parts := SplitSlices(all)
	n := 0
	for i, p := range parts {
		b, _ := json.Marshal(Slices{RunID: "r", JobName: "j", Parts: len(parts), Part: i, Tenants: p})
		if len(b) > SlicePartBytes+1024 {
			t.Errorf("part %d is %d bytes, want at most about %d", i, len(b), SlicePartBytes)
		}
		n += len(p)
	}
	if n != len(all) || len(parts) < 2 {
		t.Fatalf("10,000 slices split into %d parts holding %d slices, want every slice once over several parts", len(parts), n)
	}
}

// What is tried: every text field a trigger, a status, a slice or a result can carry,
// with a NUL (valid JSON, refused by PostgreSQL's jsonb), another control character,
// invalid UTF-8 and over-long values. What must hold: each is refused with
// ErrInvalidPayload and words that name the field, before anything is stored.
func TestTextIsRefusedAtTheEdge(t *testing.T) {
	long := strings.Repeat("x", MaxErrorMessageLen+1)
	cases := []struct {
		name, want string
		decode     func() error
	}{
		{"NUL in a trigger's reason", "reason contains a NUL character", func() error { _, err := DecodeTrigger([]byte(`{"reason":"a\u0000b"}`), false); return err }},
		{"a bell in requested_by", "control character U+0007", func() error { _, err := DecodeTrigger([]byte(`{"requested_by":"a\u0007"}`), false); return err }},
		{"invalid UTF-8 in a body", "not valid UTF-8", func() error { _, err := DecodeTrigger([]byte("{\"reason\":\"\xff\xfe\"}"), false); return err }},
		{"NUL in a result's results", "results.rules[0].name contains a NUL", func() error {
			_, err := DecodeResult([]byte(`{"run_id":"r","job_name":"j","status":"success","results":{"rules":[{"name":"x\u0000"}]}}`))
			return err
		}},
		{"NUL in a result's error", "errors[0] contains a NUL", func() error {
			_, err := DecodeResult([]byte(`{"run_id":"r","job_name":"j","status":"failed","errors":["x\u0000"]}`))
			return err
		}},
		{"over-long error_message", "error_message is longer than", func() error {
			_, err := DecodeResult([]byte(`{"run_id":"r","job_name":"j","status":"failed","error_message":"` + long + `"}`))
			return err
		}},
		{"NUL in a status's reason", "reason contains a NUL", func() error {
			_, err := DecodeStatus([]byte(`{"job_name":"j","state":"queued","reason":"\u0000"}`))
			return err
		}},
		{"NUL in a slice", "errors[0] contains a NUL", func() error {
			_, err := DecodeSlices([]byte(`{"run_id":"r","job_name":"j","part":0,"parts":1,"tenants":[{"tenant_id":"11111111-1111-1111-1111-111111111111","results":{},"errors":["\u0000"]}]}`))
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.decode()
			if err == nil || !errors.Is(err, ErrInvalidPayload) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want ErrInvalidPayload saying %q", err, c.want)
			}
		})
	}
}

// A service's own payload with a NUL in it (a server's reply quoted in an error) is
// made storable rather than refused later.
func TestCleanJSONMakesAServicesPayloadStorable(t *testing.T) {
	r := Result{RunID: "r", JobName: "j", Status: StatusFailed, ErrorMessage: "E-mail could not be sent",
		ErrorDetails: "550 mailbox\x00 unavailable", Errors: []string{"a\x07b"}, Results: map[string]any{"who": "x\x00"}}
	data, _ := json.Marshal(r)
	got, err := DecodeResult(CleanJSON(data))
	if err != nil {
		t.Fatalf("a cleaned result is refused: %v", err)
	}
	if got.ErrorDetails != "550 mailbox\uFFFD unavailable" || got.Errors[0] != "a\uFFFDb" || got.Results["who"] != "x\uFFFD" {
		t.Errorf("cleaned = %q %q %v", got.ErrorDetails, got.Errors, got.Results)
	}
	plain, _ := json.Marshal(Result{RunID: "r", JobName: "j", Status: StatusSuccess, Results: map[string]any{"firm": "Mehta & Associates"}})
	if string(CleanJSON(plain)) != string(plain) {
		t.Errorf("a payload with nothing to clean was rewritten")
	}
}
