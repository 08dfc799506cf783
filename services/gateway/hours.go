package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/jobstate"
	"github.com/lexhq/gstjobs/internal/tenancy"
)

// A firm keeps its own hours: its time of day for each daily job (jobs_config
// <job>.<tenant>: at), read in its own time zone (tenants.timezone, else
// JOBS_TIMEZONE). Its admins set the time; the cron of every firm stays the platform
// operator's. The SLA check runs every 15 minutes for every firm: a firm may pause it,
// not slow it.

// firmZone is a firm's time zone as its jobs read it.
type firmZone struct {
	Name string
	Loc  *time.Location
	// Own is false when the firm's own zone (Stored) is not a zone, and Name is
	// JOBS_TIMEZONE.
	Own    bool
	Stored string
}

// knownFirm answers a platform operator's change for a firm (tenant, as sent) that is
// not one, before anything is written: 400 for what is not an id, 404 for an id of no
// firm. It reports whether the request may go on.
func (g *Gateway) knownFirm(w http.ResponseWriter, r *http.Request, tenant string) bool {
	if _, err := uuid.Parse(tenant); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("tenant_id %q is not a firm's id", tenant))
		return false
	}
	_, ok, err := tenancy.ZoneOf(r.Context(), g.cfg.Pool, tenant, g.cfg.Location.String())
	switch {
	case err != nil:
		g.fail(w, r, err)
		return false
	case !ok:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no firm has the id %s", tenant))
		return false
	}
	return true
}

// zoneOf reads a firm's zone (one probe of tenants); on any trouble, JOBS_TIMEZONE.
func (g *Gateway) zoneOf(ctx context.Context, tenant string) firmZone {
	fallback := firmZone{Name: g.cfg.Location.String(), Loc: g.cfg.Location, Own: true}
	if tenant == "" {
		return fallback
	}
	z, ok, err := tenancy.ZoneOf(ctx, g.cfg.Pool, tenant, g.cfg.Location.String())
	if err != nil || !ok {
		if err != nil && ctx.Err() == nil {
			g.log.Warn("cannot read a firm's time zone; showing JOBS_TIMEZONE", "tenant_id", tenant, "err", err)
		}
		return fallback
	}
	loc, err := g.location(z.Zone)
	if err != nil {
		return firmZone{Name: fallback.Name, Loc: fallback.Loc, Own: false, Stored: z.Stored}
	}
	return firmZone{Name: z.Zone, Loc: loc, Own: z.Own, Stored: z.Stored}
}

var locations sync.Map // zone name → *time.Location

func (g *Gateway) location(name string) (*time.Location, error) {
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location), nil
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	locations.Store(name, l)
	return l, nil
}

// firmHours is the schedule of a job as one firm has it: its time of day, in its zone,
// when the job is daily and firms keep their own hours; otherwise the schedule of
// every firm, in JOBS_TIMEZONE.
type firmHours struct {
	// Schedule is the cron the ticker fires the firm's slots by, read in Loc.
	Schedule string
	Loc      *time.Location
	// At is the firm's own time of day ("" for the default), DefaultAt the job's.
	At, DefaultAt string
	// Settable: the firm may choose its time of day for the job now.
	Settable bool
}

func hoursOf(job catalog.Job, system string, firmAt string, zone firmZone, jobsZone *time.Location) firmHours {
	defaultAt, daily := catalog.DailyAt(system)
	if !job.FirmHours || !daily {
		return firmHours{Schedule: system, Loc: jobsZone}
	}
	at := firmAt
	if at == "" {
		at = defaultAt
	}
	return firmHours{Schedule: catalog.DailyCron(at), Loc: zone.Loc, At: firmAt, DefaultAt: defaultAt, Settable: true}
}

// nextFirmRun is the firm's next scheduled run after now: the next slot of its
// schedule, or the one after it when that slot falls on a day of the firm's calendar
// whose run already happened (lastSlot: the slot of its last scheduled run), as the
// ticker decides it (a firm is never run twice on one of its days).
func nextFirmRun(h firmHours, now, lastSlot time.Time) *time.Time {
	next, err := catalog.Next(h.Schedule, h.Loc, now)
	if err != nil || next.IsZero() {
		return nil
	}
	if h.Settable && !lastSlot.IsZero() && next.In(h.Loc).Format(time.DateOnly) == lastSlot.In(h.Loc).Format(time.DateOnly) {
		if later, err := catalog.Next(h.Schedule, h.Loc, next); err == nil && !later.IsZero() {
			next = later
		}
	}
	return &next
}

// handleFirmHours is PUT /api/jobs/{job}/schedule with {"at": "07:30"}: a firm's own
// time of day for a daily job, by its admin (or by the operator, naming the firm);
// {"at": ""} restores the job's default hour. Recorded in audit_log with who, why and
// the firm.
func (g *Gateway) handleFirmHours(w http.ResponseWriter, r *http.Request, body scheduleBody) {
	p := principalFrom(r.Context())
	jobName := chi.URLParam(r, "job")
	job, _ := catalog.Lookup(jobName)
	tenant := p.TenantID
	switch {
	case p.Operator && body.TenantID == "":
		writeError(w, http.StatusBadRequest, `a time of day is one firm's: name it, {"at": "HH:MM", "tenant_id": "..."}; for every firm send {"schedule": "<cron>"}`)
		return
	case p.Operator:
		if !g.knownFirm(w, r, body.TenantID) {
			return
		}
		tenant = body.TenantID
	case body.TenantID != "" && body.TenantID != p.TenantID:
		writeJSONResponse(w, http.StatusForbidden, map[string]any{"error": fmt.Sprintf(
			"Another firm's hours are its own; as an admin of %s you can set %s's.", p.TenantName, p.TenantName), "role": p.Role})
		return
	case !p.CanConfigure():
		admins := g.admins(r.Context(), p.TenantID)
		writeJSONResponse(w, http.StatusForbidden, map[string]any{"error": fmt.Sprintf(
			"Only admins can set the firm's hours, and you are signed in as %s (%s). %s", p.Name, p.RoleName(), askAdmins(admins)),
			"role": p.Role, "admins": admins})
		return
	}
	if !job.FirmHours {
		writeJSONResponse(w, http.StatusForbidden, map[string]any{"error": fmt.Sprintf(
			"The %s runs every 15 minutes for every firm, so that an overdue task is caught within 15 minutes; a firm may pause it, not slow it or move it.", job.Title),
			"role": p.Role})
		return
	}
	at := strings.TrimSpace(*body.At)
	if at != "" {
		parsed, err := catalog.ParseAt(at)
		if err != nil {
			writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), "catalog: "))
			return
		}
		at = parsed
	}
	ctx, cancel := context.WithTimeout(r.Context(), configWriteFor)
	defer cancel()
	system, _, err := jobstate.Get[jobstate.Config](ctx, g.buckets.Config, jobName)
	if err = readable(err); err != nil {
		g.fail(w, r, err)
		return
	}
	var previous string
	cfg, err := jobstate.Update(ctx, g.buckets.Config, jobstate.ConfigKey(jobName, tenant), func(c *jobstate.Config) error {
		previous = c.At
		c.At, c.UpdatedBy, c.UpdatedAt = at, p.Display(), g.cfg.Clock.Now()
		return nil
	})
	if err != nil {
		g.fail(w, r, err)
		return
	}
	zone := g.zoneOf(ctx, tenant)
	h := hoursOf(job, orDefault(system.Schedule, job.Schedule), at, zone, g.cfg.Location)
	effective := at
	if effective == "" {
		effective = h.DefaultAt
	}
	g.auditChange(r, ActionScheduleChanged, jobName, tenant, map[string]any{
		"job_name": jobName, "for": PauseForFirm, "tenant_id": tenant, "at": effective, "own_at": at,
		"previous": orDefault(previous, h.DefaultAt), "timezone": zone.Name, "reason": body.Reason,
	})
	res := map[string]any{
		"job_name": jobName, "for": PauseForFirm, "tenant_id": tenant, "at": at, "default_at": h.DefaultAt,
		"timezone": zone.Name, "schedule": h.Schedule, "frequency": catalog.Describe(h.Schedule), "config": cfg,
	}
	if !h.Settable {
		// The operator's schedule of every firm is not once a day now: the firm's time
		// is kept, and holds again when the schedule is daily again.
		res["in_effect"] = false
		res["note"] = fmt.Sprintf("Kept, but not in effect: the platform operator runs this job %s for every firm; your time of day holds again when it is daily.", strings.ToLower(catalog.Describe(h.Schedule)))
	} else {
		res["in_effect"] = true
		res["next_run_at"] = nextFirmRun(h, g.cfg.Clock.Now(), time.Time{})
	}
	writeJSONResponse(w, http.StatusOK, res)
}
