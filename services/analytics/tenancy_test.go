package analytics

import (
	"testing"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/internal/worker"
)

// What is tried: three firms; a firm's Run Now, then the nightly run with one firm paused.
// What must hold: a run writes snapshots for the firms it covers only, and each covered
// firm's slice says what was written for it; a paused firm gets no snapshot from the
// nightly run.
func TestSnapshotPerFirm(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a, b, c := f.tenant("Alpha"), f.tenant("Beta"), f.tenant("Gamma")
	jobs, err := Jobs(jobservice.Deps{Pool: f.pool, Location: kolkata})
	if err != nil {
		t.Fatal(err)
	}
	run := func(scope events.Scope) worker.Report {
		t.Helper()
		rep, err := jobs[catalog.CaptureAnalyticsSnapshot](f.ctx, worker.Run{ID: "test", Now: runNow, Scope: scope})
		if err != nil {
			t.Fatalf("run for %+v: %v", scope, err)
		}
		return rep
	}
	count := func(tenant string) int {
		var n int
		if err := f.pool.QueryRow(f.ctx, `SELECT count(*) FROM analytics_snapshots WHERE tenant_id = $1`, tenant).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	rep := run(events.ScopeTenant(b))
	if len(rep.Tenants) != 1 || rep.Tenants[0].TenantID != b || rep.Tenants[0].Results["snapshots_written"] != int64(len(metricTypes)) {
		t.Errorf("Beta's Run Now: slices %+v, want Beta's alone with %d metrics", rep.Tenants, len(metricTypes))
	}
	if count(a) != 0 || count(c) != 0 || count(b) != len(metricTypes) {
		t.Errorf("after Beta's Run Now: %d, %d, %d snapshots for Alpha, Beta, Gamma; want 0, %d, 0", count(a), count(b), count(c), len(metricTypes))
	}

	rep = run(events.Scope{All: true, Skip: []string{c}})
	if count(c) != 0 || count(a) != len(metricTypes) {
		t.Errorf("nightly run with Gamma paused: Alpha %d, Gamma %d snapshots; want %d and 0", count(a), count(c), len(metricTypes))
	}
	if len(rep.Tenants) != 2 || rep.Results["tenants_processed"] != int64(2) {
		t.Errorf("nightly run with Gamma paused: %d slices, totals %v; want Alpha and Beta", len(rep.Tenants), rep.Results)
	}
}
