package gateway_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/demo"
	"github.com/lexhq/gstjobs/internal/jobstate"
	"github.com/lexhq/gstjobs/services/gateway"
)

// Tried: Mehta's admin sets the firm's hearing reminders to 07:30, with a reason; the
// firm is then moved to Dubai; the admin resets the time; then tries 7:5, 24:00, the SLA
// check, and the cron of every firm; Mehta's partner tries too; the operator sets
// Iyer's time by naming the firm, and tries without naming one.
// Must hold: the time is validated, kept in the firm's config key (what the ticker
// reads, so no restart), recorded in audit_log with who, why and the firm; the firm's
// card says "Daily at 7:30 AM", its zone and its next run at 07:30 there, and Iyer's
// card is untouched; a reset brings back the default hour; each refusal says why (the
// SLA check: a firm may pause it, not slow it; the cron: the operator's; a partner: only
// admins); the operator sets one firm's time only by naming it.
// noFirm is a well-formed id that no firm of the demo data has.
const noFirm = "0dd0f1e5-0000-4000-8000-000000000000"

func TestAFirmAdminSetsTheFirmsHours(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)) // 05:30 in Kolkata
	s := startSystem(t, systemOptions{clock: clock})
	mehta, iyer, op := token(t, mehtaAdmin), token(t, iyerAdmin), operatorToken(t)
	const path = "/api/jobs/" + catalog.SendHearingReminders + "/schedule"
	card := func(tok string) gateway.Card {
		t.Helper()
		res := s.do(t, request{method: "GET", path: "/api/jobs/" + catalog.SendHearingReminders, bearer: tok})
		var c gateway.Card
		if err := json.Unmarshal(res.body, &c); err != nil || res.code != 200 {
			t.Fatalf("card = %d %s", res.code, res.body)
		}
		return c
	}
	if c := card(mehta); !c.FirmHours || c.Frequency != "Daily at 8:00 AM" || c.DefaultAt != "08:00" || c.At != "" || c.Timezone != "Asia/Kolkata" {
		t.Fatalf("Mehta's card before: %+v", c)
	}

	res := s.do(t, request{method: "PUT", path: path, body: `{"at":"07:30","reason":"before the 10:00 hearings"}`, bearer: mehta})
	if res.code != 200 || res.json(t)["frequency"] != "Daily at 7:30 AM" || res.json(t)["for"] != "firm" {
		t.Fatalf("Mehta's admin sets 07:30 = %d %s", res.code, res.body)
	}
	cfg, _, err := jobstate.Get[jobstate.Config](context.Background(), kvConfig(t, s), jobstate.ConfigKey(catalog.SendHearingReminders, demo.TenantMehta))
	if err != nil || cfg.At != "07:30" {
		t.Fatalf("Mehta's config key = %+v, %v; want at 07:30", cfg, err)
	}
	c := card(mehta)
	if c.Frequency != "Daily at 7:30 AM" || c.Schedule != "30 7 * * *" || c.At != "07:30" || c.NextRunAt == nil ||
		!c.NextRunAt.Equal(time.Date(2026, 3, 10, 2, 0, 0, 0, time.UTC)) {
		t.Errorf("Mehta's card after 07:30: %s at %s (%s), next %v; want daily at 7:30 AM, next 07:30 IST (02:00 UTC)", c.Frequency, c.At, c.Schedule, c.NextRunAt)
	}
	if c := card(iyer); c.Frequency != "Daily at 8:00 AM" || c.At != "" {
		t.Errorf("Iyer's card changed with Mehta's hours: %s %q", c.Frequency, c.At)
	}
	var who, tenant, reason, at string
	if err := s.Pool.QueryRow(context.Background(), `
		SELECT details->>'requested_by', coalesce(tenant_id::text, ''), details->>'reason', details->>'at'
		FROM audit_log WHERE action_type = 'background_job_schedule_changed' ORDER BY id DESC LIMIT 1`).Scan(&who, &tenant, &reason, &at); err != nil {
		t.Fatal(err)
	}
	if who != "anjali@mehta.example" || tenant != demo.TenantMehta || reason != "before the 10:00 hearings" || at != "07:30" {
		t.Errorf("audit row: by %q, firm %q, reason %q, at %q", who, tenant, reason, at)
	}

	// The firm moves to Dubai: its card's zone and next run are Dubai's.
	if _, err := s.Pool.Exec(context.Background(), `UPDATE tenants SET timezone = 'Asia/Dubai' WHERE id = $1`, demo.TenantMehta); err != nil {
		t.Fatal(err)
	}
	if c := card(mehta); c.Timezone != "Asia/Dubai" || c.NextRunAt == nil || !c.NextRunAt.Equal(time.Date(2026, 3, 10, 3, 30, 0, 0, time.UTC)) {
		t.Errorf("Mehta's card in Dubai: zone %s, next %v; want Asia/Dubai and 07:30 there (03:30 UTC)", c.Timezone, c.NextRunAt)
	}
	if me := s.do(t, request{method: "GET", path: "/api/me", bearer: mehta}).json(t); me["timezone"] != "Asia/Dubai" {
		t.Errorf("/api/me timezone = %v, want the firm's, Asia/Dubai", me["timezone"])
	}
	if me := s.do(t, request{method: "GET", path: "/api/me", bearer: op}).json(t); me["timezone"] != "Asia/Kolkata" {
		t.Errorf("the operator's /api/me timezone = %v, want JOBS_TIMEZONE", me["timezone"])
	}

	if res := s.do(t, request{method: "PUT", path: path, body: `{"at":"","reason":"back to normal"}`, bearer: mehta}); res.code != 200 {
		t.Fatalf("reset = %d %s", res.code, res.body)
	}
	if c := card(mehta); c.Frequency != "Daily at 8:00 AM" || c.At != "" {
		t.Errorf("after the reset: %s %q, want the default hour", c.Frequency, c.At)
	}

	partner := token(t, demo.UsersByRole["partner"])
	for _, c := range []struct {
		name, path, body, tok string
		code                  int
		says                  string
	}{
		{"a time that is not HH:MM", path, `{"at":"7:5"}`, mehta, 400, "HH:MM"},
		{"a time past midnight", path, `{"at":"24:00"}`, mehta, 400, "HH:MM"},
		{"the SLA check", "/api/jobs/" + catalog.CheckSLAAndOverdue + "/schedule", `{"at":"09:00"}`, mehta, 403, "a firm may pause it, not slow it"},
		{"the cron of every firm", path, `{"schedule":"0 9 * * *"}`, mehta, 403, "platform operator"},
		{"another firm's hours", path, `{"at":"09:00","tenant_id":"` + demo.TenantIyer + `"}`, mehta, 403, "its own"},
		{"a partner", path, `{"at":"09:00"}`, partner, 403, "Only admins"},
		{"the operator without a firm", path, `{"at":"09:00"}`, op, 400, "name it"},
		{"the operator naming no firm's id", path, `{"at":"09:00","tenant_id":"Iyer"}`, op, 400, "not a firm's id"},
		{"the operator naming a firm that is not one", path, `{"at":"09:00","tenant_id":"` + noFirm + `"}`, op, 404, "no firm has the id"},
		{"both at once", path, `{"at":"09:00","schedule":"0 9 * * *"}`, op, 400, "not both"},
	} {
		res := s.do(t, request{method: "PUT", path: c.path, body: c.body, bearer: c.tok})
		if res.code != c.code || !strings.Contains(res.errorText(t), c.says) {
			t.Errorf("%s: %d %s, want %d saying %q", c.name, res.code, res.body, c.code, c.says)
		}
	}
	if res := s.do(t, request{method: "PUT", path: path, body: `{"at":"06:45","tenant_id":"` + demo.TenantIyer + `","reason":"asked by phone"}`, bearer: op}); res.code != 200 {
		t.Fatalf("the operator sets Iyer's time = %d %s", res.code, res.body)
	}
	if c := card(iyer); c.Frequency != "Daily at 6:45 AM" {
		t.Errorf("Iyer's card after the operator set 06:45: %s", c.Frequency)
	}
}

func kvConfig(t *testing.T, s *system) jobstate.Bucket {
	t.Helper()
	kv, err := s.NATS.JS.KeyValue(context.Background(), bus.BucketConfig)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}
