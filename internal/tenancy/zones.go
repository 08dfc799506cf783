package tenancy

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// FirmZone is a firm and the time zone its days and the hours of its daily jobs are
// read in: its own (tenants.timezone) when that is a name of the tz database, else
// JOBS_TIMEZONE. The jobs read it in SQL (firm_zones, migration 00050); this is the same
// rule for Go (the ticker, the gateway).
type FirmZone struct {
	TenantID string
	Zone     string
	// Own is false when the firm's own zone (Stored) is not a zone, and Zone is the
	// fallback.
	Own    bool
	Stored string
}

// Querier is what Zones needs of a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

const zonesSQL = `
SELECT fz.tenant_id::text, fz.zone, fz.own, t.timezone
FROM firm_zones($1::text) fz
JOIN tenants t ON t.id = fz.tenant_id
WHERE $2::uuid IS NULL OR fz.tenant_id = $2::uuid
ORDER BY fz.tenant_id`

// Zones lists every firm with its zone, fallback being JOBS_TIMEZONE.
func Zones(ctx context.Context, q Querier, fallback string) ([]FirmZone, error) {
	return zones(ctx, q, fallback, nil)
}

// ZoneOf is one firm's zone; ok is false when there is no such firm.
func ZoneOf(ctx context.Context, q Querier, tenant, fallback string) (FirmZone, bool, error) {
	list, err := zones(ctx, q, fallback, &tenant)
	if err != nil || len(list) == 0 {
		return FirmZone{}, false, err
	}
	return list[0], true, nil
}

func zones(ctx context.Context, q Querier, fallback string, tenant *string) ([]FirmZone, error) {
	rows, err := q.Query(ctx, zonesSQL, fallback, tenant)
	if err != nil {
		return nil, fmt.Errorf("tenancy: firms' time zones: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (FirmZone, error) {
		var z FirmZone
		return z, row.Scan(&z.TenantID, &z.Zone, &z.Own, &z.Stored)
	})
	if err != nil {
		return nil, fmt.Errorf("tenancy: firms' time zones: %w", err)
	}
	return list, nil
}
