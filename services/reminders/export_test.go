package reminders

import (
	"strings"

	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/internal/tenancy"
)

// CountsSQL is each job's per-firm counts alone (every covered firm, zeros included),
// for the benchmarks to time apart from the deliveries whose statements return them,
// with, as the baseline, the same statement as it was before firms' slices: no scope
// filter and totals instead of one line per firm.
func CountsSQL(job string) (perFirm, totalsOnly string) {
	perFirm = map[string]string{
		"hearings":  "\nWITH " + hearingRemindersWith + perFirmCounts,
		"deadlines": "\nWITH " + deadlinesSQL + ",\n" + deadlinePerFirmSQL + perFirmCounts,
	}[job]
	cut := strings.Index(perFirm, "per_firm AS MATERIALIZED (")
	body := perFirm[:cut]
	perFirmBody := perFirm[cut+len("per_firm AS MATERIALIZED (") : cut+strings.Index(perFirm[cut:], "GROUP BY")]
	totalsOnly = strings.TrimRight(body, " \n,") + "\n" + strings.Replace(perFirmBody, "SELECT d.tenant_id, ", "SELECT ", 1)
	totalsOnly = strings.Replace(totalsOnly, "SELECT dl.tenant_id, ", "SELECT ", 1)
	for _, col := range []string{"h.tenant_id", "t.tenant_id", "c.tenant_id", "t.id", "fz.tenant_id"} {
		totalsOnly = strings.ReplaceAll(totalsOnly, tenancy.Filter(col), "true")
	}
	return perFirm, totalsOnly
}

// InPart exposes the slice predicate of a large run's delivery.
var InPart = inPart

// PartsFor exposes how many slices a run for scope is delivered in, by a service
// configured with cfg (its defaults applied as New applies them).
func PartsFor(cfg Config, scope events.Scope) (int, error) {
	s, err := newService(jobservice.Deps{}, cfg)
	if err != nil {
		return 0, err
	}
	return s.partsFor(scope), nil
}
