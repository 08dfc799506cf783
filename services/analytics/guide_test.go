package analytics

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lexhq/gstjobs/internal/demo"
)

// guideVerificationQuery is the user guide's "Analytics Snapshot Missing Data"
// verification query, verbatim; people paste it with their firm's id in place of
// 'your-tenant-id'.
const guideVerificationQuery = `-- Check if snapshots are being created
SELECT snapshot_date, metric_type, metric_value
FROM analytics_snapshots
WHERE tenant_id = 'your-tenant-id'
ORDER BY snapshot_date DESC
LIMIT 7;`

// On the demo data, after a run, the guide's verification query (with a firm's id
// written in, as a person would) returns the seven metrics of the day the run
// captured, and the demo's history fills the week before it.
func TestGuideVerificationQueryShowsTheSnapshot(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if loaded, err := demo.Load(f.ctx, f.pool); err != nil || !loaded {
		t.Fatalf("demo.Load = %v, %v; want the demo data loaded into the empty database", loaded, err)
	}
	// The demo's dates are relative to the database's clock, so the run uses it too.
	var now time.Time
	if err := f.pool.QueryRow(f.ctx, `SELECT now()`).Scan(&now); err != nil {
		t.Fatal(err)
	}
	res := f.run(now, kolkata)
	today := res["snapshot_date"].(string)

	for _, tenant := range []string{demo.TenantMehta, demo.TenantIyer} {
		q := strings.Replace(guideVerificationQuery, "your-tenant-id", tenant, 1)
		rows, err := f.pool.Query(f.ctx, q)
		if err != nil {
			t.Fatalf("the guide's query for %s failed: %v\n%s", tenant, err, q)
		}
		got := map[string]float64{}
		n := 0
		for rows.Next() {
			var date time.Time
			var metric string
			var value float64
			if err := rows.Scan(&date, &metric, &value); err != nil {
				t.Fatal(err)
			}
			if d := date.Format(time.DateOnly); d != today {
				t.Errorf("%s: guide query row %s dated %s, want the run's day %s first", tenant, metric, d, today)
			}
			got[metric] = value
			n++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if n != 7 || !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(slices.Values(metricTypes))) {
			t.Errorf("%s: guide query returned %d rows with metrics %v, want the 7 metrics %v", tenant, n, slices.Sorted(maps.Keys(got)), metricTypes)
		}
		// The run's values match the demo data as plain queries count it.
		for metric, sql := range map[string]string{
			MetricActiveCases:  `SELECT count(*) FROM cases WHERE tenant_id = $1 AND status = 'active'`,
			MetricOpenTasks:    `SELECT count(*) FROM tasks WHERE tenant_id = $1 AND status IN ('open', 'in_progress')`,
			MetricOverdueTasks: `SELECT count(*) FROM tasks WHERE tenant_id = $1 AND status IN ('open', 'in_progress') AND due_date < $2`,
		} {
			args := []any{tenant}
			if strings.Contains(sql, "$2") {
				args = append(args, now)
			}
			if want := f.count(sql, args...); got[metric] != float64(want) || want == 0 {
				t.Errorf("%s: %s = %v, want %d (and the demo to have some)", tenant, metric, got[metric], want)
			}
		}

		// The week: today's run plus six days of demo history, every metric each day.
		var days, perDay int
		if err := f.pool.QueryRow(f.ctx, `SELECT count(DISTINCT snapshot_date), count(*) / count(DISTINCT snapshot_date)
			FROM analytics_snapshots WHERE tenant_id = $1 AND snapshot_date > $2::date - 7`, tenant, today).Scan(&days, &perDay); err != nil {
			t.Fatal(err)
		}
		if days != 7 || perDay != len(metricTypes) {
			t.Errorf("%s: the week up to %s has %d days of %d metrics, want 7 days of %d", tenant, today, days, perDay, len(metricTypes))
		}
	}
}
