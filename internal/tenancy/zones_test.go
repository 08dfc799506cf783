package tenancy_test

import (
	"context"
	"testing"

	"github.com/lexhq/gstjobs/internal/pgtest"
	"github.com/lexhq/gstjobs/internal/tenancy"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Tried: firms whose tenants.timezone is a zone, a zone's old name, an abbreviation,
// a POSIX spec, a zone spelled in lower case, and nonsense.
// Must hold: a firm's zone is its own only when it is a name of the tz database,
// spelled exactly (what Go's tz database, and so the ticker, can read too); otherwise
// it is JOBS_TIMEZONE's, and Own says so.
func TestAFirmsZoneIsItsOwnOnlyWhenItIsAZone(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	want := map[string]struct {
		zone string
		own  bool
	}{
		"Asia/Dubai":        {"Asia/Dubai", true},
		"America/New_York":  {"America/New_York", true},
		"Asia/Calcutta":     {"Asia/Calcutta", true},
		"UTC":               {"UTC", true},
		"IST":               {"Europe/London", false},
		"UTC+5":             {"Europe/London", false},
		"asia/kolkata":      {"Europe/London", false},
		"Mars/Olympus_Mons": {"Europe/London", false},
	}
	ids := map[string]string{}
	for stored := range want {
		var id string
		if err := pool.QueryRow(ctx, `INSERT INTO tenants (id, name, timezone) VALUES (gen_random_uuid(), $1, $1) RETURNING id::text`, stored).Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids[id] = stored
	}
	list, err := tenancy.Zones(ctx, pool, "Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(want) {
		t.Fatalf("%d firms listed, want %d", len(list), len(want))
	}
	for _, z := range list {
		w := want[ids[z.TenantID]]
		if z.Zone != w.zone || z.Own != w.own || z.Stored != ids[z.TenantID] {
			t.Errorf("firm with timezone %q: zone %q own %v (stored %q), want %q own %v", ids[z.TenantID], z.Zone, z.Own, z.Stored, w.zone, w.own)
		}
	}
	for id, stored := range ids {
		z, ok, err := tenancy.ZoneOf(ctx, pool, id, "Europe/London")
		if err != nil || !ok || z.Zone != want[stored].zone {
			t.Errorf("ZoneOf(firm with %q) = %+v, %v, %v", stored, z, ok, err)
		}
	}
	if _, ok, err := tenancy.ZoneOf(ctx, pool, "00000000-0000-0000-0000-000000000000", "UTC"); ok || err != nil {
		t.Errorf("ZoneOf(no such firm) = %v, %v", ok, err)
	}
}
