package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobstate"
)

// Card statuses, as the guide's badges.
const (
	CardRunning = "running"
	CardSuccess = "success"
	CardFailed  = "failed"
	CardPending = "pending"
)

// StuckAfter is how long a running job may go without a heartbeat before the dashboard
// calls it possibly stuck (the guide: "Running for >60 seconds, it may be stuck").
const StuckAfter = 60 * time.Second

// Card is one job as the dashboard shows it, to one viewer: a firm sees its own last
// run (its slice), its own pause and the runs queued or running for it; the operator
// sees the runs' totals and the pause for everyone.
type Card struct {
	Name            string `json:"name"`
	Title           string `json:"title"`
	Description     string `json:"description"`
	Frequency       string `json:"frequency"`
	Schedule        string `json:"schedule"`
	DefaultSchedule string `json:"default_schedule"`
	Timezone        string `json:"timezone"`
	// Paused is true when the schedule does not run the job for this viewer: paused for
	// everyone by the operator (PausedForEveryone) or for the viewer's firm by its admin
	// (PausedForFirm).
	Paused            bool              `json:"paused"`
	PausedForEveryone bool              `json:"paused_for_everyone"`
	PausedForFirm     bool              `json:"paused_for_firm"`
	Status            string            `json:"status"`
	LastRun           *RunView          `json:"last_run"`
	LastRunAt         *time.Time        `json:"last_run_at"`
	NextRunAt         *time.Time        `json:"next_run_at"`
	Stale             bool              `json:"stale"`
	MaxAgeSeconds     int64             `json:"max_age_seconds"`
	StaleAfterSecs    int64             `json:"stale_after_seconds"`
	Current           *jobstate.RunInfo `json:"current"`
	Queued            *jobstate.RunInfo `json:"queued"`
	// Retry is the retry of the last run, waiting for its time (it failed for a
	// temporary reason): "Failed · retrying in 4 min (attempt 2 of 4)".
	Retry         *RetryView `json:"retry,omitempty"`
	PossiblyStuck bool       `json:"possibly_stuck"`
	ResultKeys    []string   `json:"result_keys"`
	// Tip is the ℹ️ tip and HelpURL the job's section of the help page; ResultInfo
	// says what each results key means and how the card's summary says it (the
	// catalog's words), and ItemKeys which numbers of the history open their items.
	Tip        string           `json:"tip"`
	HelpURL    string           `json:"help_url"`
	ResultInfo []catalog.Result `json:"result_info"`
	ItemKeys   []string         `json:"item_keys"`
	// PausedFirms is, for the operator, how many firms paused the job themselves.
	PausedFirms int `json:"paused_firms,omitempty"`
	// For a firm: FirmHours says it may choose its time of day for the job (a daily job,
	// while the schedule of every firm is daily); At is its own ("" for the job's
	// default, DefaultAt), read in Timezone, the firm's own zone. TimezoneNote says why
	// the zone is JOBS_TIMEZONE's when the firm's own is unknown.
	FirmHours    bool   `json:"firm_hours"`
	At           string `json:"at,omitempty"`
	DefaultAt    string `json:"default_at,omitempty"`
	TimezoneNote string `json:"timezone_note,omitempty"`
}

// RunView is one execution as the viewer may see it: for the operator its log entry as
// the job published it, for a firm its own slice of it (viewResult); with the row's id
// and time, the toast's words (Summary) and the card's one line of what the run found
// (Headline: "5 overdue · 0 SLA breaches · 0 rules fired", or why it failed).
type RunView struct {
	ID int64 `json:"id"`
	events.Result
	Timestamp time.Time `json:"timestamp"`
	Summary   string    `json:"summary"`
	Headline  string    `json:"headline"`
}

func newRunView(id int64, ts time.Time, r events.Result) RunView {
	return RunView{ID: id, Result: r, Timestamp: ts, Summary: r.Summary(), Headline: headline(r)}
}

// headline is what a run found, in the catalog's words, from the results the viewer
// sees; for a failed run, why it failed.
func headline(r events.Result) string {
	switch r.Status {
	case events.StatusSuccess:
		job, _ := catalog.Lookup(r.JobName)
		return job.Summarize(r.Results)
	case events.StatusFailed:
		return orDefault(r.ErrorMessage, "The run failed.")
	}
	return ""
}

func runView(id int64, ts time.Time, details []byte) (RunView, error) {
	var r events.Result
	if err := json.Unmarshal(details, &r); err != nil {
		return RunView{}, fmt.Errorf("decode audit row %d: %w", id, err)
	}
	return newRunView(id, ts, r), nil
}

// One index probe per job, not a scan of the whole log: the operator's cards.
const lastRunsQuery = `
SELECT j.name, a.id, a."timestamp", a.details
FROM unnest($1::text[]) AS j(name)
JOIN LATERAL (
    SELECT id, "timestamp", details FROM audit_log
    WHERE action_type = 'background_job_execution' AND details->>'job_name' = j.name
    ORDER BY "timestamp" DESC, id DESC LIMIT 1
) a ON true`

// A firm's cards: per job, its newest slice (one probe of job_run_tenants_history)
// and that run's log entry (one probe of the unique dedupe key).
const firmLastRunsQuery = `
SELECT j.name, coalesce(a.id, 0), s.finished_at, a.details, s.run_id::text, s.status, s.results, s.errors, coalesce(s.error_message, '')
FROM unnest($1::text[]) AS j(name)
JOIN LATERAL (
    SELECT * FROM job_run_tenants
    WHERE tenant_id = $2 AND job_name = j.name
    ORDER BY finished_at DESC, run_id DESC LIMIT 1
) s ON true
LEFT JOIN audit_log a ON a.dedupe_key = 'execution:' || s.run_id`

// firmRow is one row of a firm's history: its slice and its run's log entry (nil
// when the gateway has not written it yet).
func firmRunView(v Viewer, id int64, finished time.Time, details []byte, runID, status string, results, errs []byte, errMsg string, job string) (RunView, error) {
	var r events.Result
	if details != nil {
		if err := json.Unmarshal(details, &r); err != nil {
			return RunView{}, fmt.Errorf("decode audit row %d: %w", id, err)
		}
	} else {
		// The slice is in, the run's entry not yet: enough to show the firm its part.
		r = events.Result{RunID: runID, JobName: job, Status: status, FinishedAt: finished, Scope: &events.Scope{Tenants: []string{v.TenantID}}}
	}
	slice := events.TenantSlice{TenantID: v.TenantID, Status: status, ErrorMessage: errMsg}
	if err := json.Unmarshal(results, &slice.Results); err != nil {
		return RunView{}, fmt.Errorf("decode slice of run %s: %w", runID, err)
	}
	if err := json.Unmarshal(errs, &slice.Errors); err != nil {
		return RunView{}, fmt.Errorf("decode slice of run %s: %w", runID, err)
	}
	// The slice row says the firm was covered, whatever the scope recorded.
	if r.Scope == nil || !r.Scope.Covers(v.TenantID) {
		r.Scope = &events.Scope{Tenants: []string{v.TenantID}}
	}
	fv, _ := viewResult(r, &slice, v)
	return newRunView(id, finished, fv), nil
}

// Cards builds every job's card for the viewer, reading the buckets as they are now.
func (g *Gateway) Cards(ctx context.Context, v Viewer) ([]Card, error) {
	recs, err := g.readJobRecords(ctx)
	if err != nil {
		return nil, err
	}
	firm, err := g.readFirmConfigs(ctx, v)
	if err != nil {
		return nil, err
	}
	return g.cardsFrom(ctx, v, recs, firm)
}

// jobRecords are what every viewer's cards read of the buckets: each job's config (the
// pause for everyone, the schedule) and runs (current, queued, retry).
type jobRecords struct {
	cfg  map[string]jobstate.Config
	runs map[string]jobstate.Runs
}

// readJobRecords reads each job's config and runs records. A value that is not a
// record (put by hand) shows as the defaults; the ticker and the worker read it the
// same way.
func (g *Gateway) readJobRecords(ctx context.Context) (jobRecords, error) {
	recs := jobRecords{cfg: map[string]jobstate.Config{}, runs: map[string]jobstate.Runs{}}
	for _, job := range catalog.All() {
		cfg, _, err := jobstate.Get[jobstate.Config](ctx, g.buckets.Config, job.Name)
		if err = readable(err); err != nil {
			return jobRecords{}, err
		}
		runs, _, err := jobstate.Get[jobstate.Runs](ctx, g.buckets.Runs, job.Name)
		if err = readable(err); err != nil {
			return jobRecords{}, err
		}
		recs.cfg[job.Name], recs.runs[job.Name] = cfg, runs
	}
	return recs, nil
}

// readFirmConfigs reads the viewer's firm's own record of each job: its pause and its
// time of day (none for the operator).
func (g *Gateway) readFirmConfigs(ctx context.Context, v Viewer) (map[string]jobstate.Config, error) {
	firm := map[string]jobstate.Config{}
	if v.Operator || v.TenantID == "" {
		return firm, nil
	}
	for _, job := range catalog.All() {
		cfg, _, err := jobstate.Get[jobstate.Config](ctx, g.buckets.Config, jobstate.ConfigKey(job.Name, v.TenantID))
		if err = readable(err); err != nil {
			return nil, err
		}
		firm[job.Name] = cfg
	}
	return firm, nil
}

// cardsFrom builds the viewer's cards from the records and the firm's own records given.
func (g *Gateway) cardsFrom(ctx context.Context, v Viewer, recs jobRecords, firm map[string]jobstate.Config) ([]Card, error) {
	last, err := g.lastRuns(ctx, v)
	if err != nil {
		return nil, err
	}
	zone := firmZone{Name: g.cfg.Location.String(), Loc: g.cfg.Location, Own: true}
	if !v.Operator {
		zone = g.zoneOf(ctx, v.TenantID)
	}
	var cards []Card
	for _, job := range catalog.All() {
		cards = append(cards, g.card(job, last, recs.cfg[job.Name], firm[job.Name], recs.runs[job.Name], v, zone))
	}
	return cards, nil
}

func (g *Gateway) lastRuns(ctx context.Context, v Viewer) (map[string]RunView, error) {
	last := map[string]RunView{}
	if v.Operator {
		rows, err := g.cfg.Pool.Query(ctx, lastRunsQuery, catalog.Names())
		if err != nil {
			return nil, fmt.Errorf("cards: last runs: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var id int64
			var ts time.Time
			var details []byte
			if err := rows.Scan(&name, &id, &ts, &details); err != nil {
				return nil, fmt.Errorf("cards: scan: %w", err)
			}
			rv, err := runView(id, ts, details)
			if err != nil {
				return nil, err
			}
			last[name] = rv
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("cards: last runs: %w", err)
		}
		return last, nil
	}
	rows, err := g.cfg.Pool.Query(ctx, firmLastRunsQuery, catalog.Names(), v.TenantID)
	if err != nil {
		return nil, fmt.Errorf("cards: last runs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, runID, status, errMsg string
		var id int64
		var ts time.Time
		var details, results, errs []byte
		if err := rows.Scan(&name, &id, &ts, &details, &runID, &status, &results, &errs, &errMsg); err != nil {
			return nil, fmt.Errorf("cards: scan: %w", err)
		}
		rv, err := firmRunView(v, id, ts, details, runID, status, results, errs, errMsg, name)
		if err != nil {
			return nil, err
		}
		last[name] = rv
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cards: last runs: %w", err)
	}
	return last, nil
}

// Card builds one job's card for the viewer.
func (g *Gateway) Card(ctx context.Context, name string, v Viewer) (Card, error) {
	cards, err := g.Cards(ctx, v)
	if err != nil {
		return Card{}, err
	}
	for _, c := range cards {
		if c.Name == name {
			return c, nil
		}
	}
	return Card{}, fmt.Errorf("cards: %w: %s", errUnknownJob, name)
}

func (g *Gateway) card(job catalog.Job, last map[string]RunView, cfg, firmCfg jobstate.Config, runs jobstate.Runs, v Viewer, zone firmZone) Card {
	now := g.cfg.Clock.Now()
	schedule := job.Schedule
	if cfg.Schedule != "" {
		schedule = cfg.Schedule
	}
	// The operator sees the schedule of every firm, in JOBS_TIMEZONE; a firm its own hours.
	hours := firmHours{Schedule: schedule, Loc: g.cfg.Location}
	if !v.Operator {
		hours = hoursOf(job, schedule, firmCfg.At, zone, g.cfg.Location)
	}
	frequency := catalog.Describe(hours.Schedule)
	if f := strings.Fields(hours.Schedule); !hours.Settable && zone.Name != g.cfg.Location.String() && len(f) == 5 && f[1] != "*" {
		frequency += " (" + g.cfg.Location.String() + " time)"
	}
	c := Card{
		Name: job.Name, Title: job.Title, Description: job.Description,
		Frequency: frequency, Schedule: hours.Schedule, DefaultSchedule: job.Schedule,
		Timezone: zone.Name, Status: CardPending,
		FirmHours: hours.Settable, At: hours.At, DefaultAt: hours.DefaultAt,
		PausedForEveryone: cfg.Paused, PausedForFirm: firmCfg.Paused,
		MaxAgeSeconds: int64(job.MaxAge.Seconds()), StaleAfterSecs: int64(job.StaleAfter.Seconds()),
		Current: viewRunInfo(runs.Current, v), Queued: viewRunInfo(runs.Next, v), ResultKeys: job.ResultKeys,
		Retry: viewRetry(runs.Retry, v),
		Tip:   job.Tip, HelpURL: "/help#" + job.Name, ResultInfo: resultInfo(job, v), ItemKeys: itemKeys(job),
	}
	c.Paused = c.PausedForEveryone || c.PausedForFirm
	if v.Operator {
		c.PausedFirms = g.pausedFirms(job.Name)
	}
	if !zone.Own {
		c.TimezoneNote = fmt.Sprintf("Your firm's time zone %q is not a time zone; until it is corrected, the firm's days, hours and times are those of %s.", zone.Stored, zone.Name)
	}
	var lastSlot time.Time
	if lr, ok := last[job.Name]; ok {
		lastSlot = scheduledSlot(lr.Result)
		lr := lr
		c.LastRun = &lr
		at := lr.Timestamp
		c.LastRunAt = &at
		c.Status = lr.Status
		c.Stale = now.Sub(at) > job.StaleAfter
	}
	if c.Current != nil || c.Queued != nil {
		c.Status = CardRunning
	}
	if cur := c.Current; cur != nil {
		beat := cur.HeartbeatAt
		if beat.IsZero() {
			beat = cur.StartedAt
		}
		c.PossiblyStuck = now.Sub(beat) > StuckAfter
	}
	if !c.Paused {
		c.NextRunAt = nextFirmRun(hours, now, lastSlot)
	}
	return c
}

// scheduledSlot is the latest schedule slot a run answered (zero for a run no slot
// asked for).
func scheduledSlot(r events.Result) time.Time {
	var slot time.Time
	if r.Trigger == events.KindSchedule {
		slot = r.Slot
	}
	for _, t := range r.Triggers {
		if t.Kind == events.KindSchedule && t.Slot.After(slot) {
			slot = t.Slot
		}
	}
	return slot
}

// readable lets an unreadable record pass as the zero record.
func readable(err error) error {
	if errors.Is(err, jobstate.ErrUndecodable) {
		return nil
	}
	return err
}

// resultInfo is what the viewer's results of the job may hold: a firm's slices carry no
// operator-only key.
func resultInfo(job catalog.Job, v Viewer) []catalog.Result {
	all := job.AllResults()
	if v.Operator {
		return all
	}
	out := all[:0]
	for _, r := range all {
		if !r.Operator {
			out = append(out, r)
		}
	}
	return out
}

// historyCursor pages a history: the last row's time and id ("<RFC 3339>_<id>").
func historyCursor(ts time.Time, id string) string {
	return ts.UTC().Format(time.RFC3339Nano) + "_" + id
}

// Runs is a page of a job's history for the viewer, newest first. before is the
// cursor of the previous page ("" for the first).
func (g *Gateway) Runs(ctx context.Context, job string, limit int, before string, v Viewer) ([]RunView, string, error) {
	beforeTS, beforeID := time.Now().Add(100*365*24*time.Hour), ""
	if before != "" {
		ts, id, ok := parseCursor(before)
		if !ok {
			return nil, "", fmt.Errorf("%w: cursor %q", errBadRequest, before)
		}
		beforeTS, beforeID = ts, id
	}
	var list []RunView
	var err error
	if v.Operator {
		list, err = g.operatorRuns(ctx, job, limit+1, beforeTS, beforeID)
	} else {
		list, err = g.firmRuns(ctx, job, limit+1, beforeTS, beforeID, v)
	}
	if err != nil {
		return nil, "", fmt.Errorf("runs: %w", err)
	}
	next := ""
	if len(list) > limit {
		list = list[:limit]
		lastRow := list[len(list)-1]
		id := strconv.FormatInt(lastRow.ID, 10)
		if !v.Operator {
			id = lastRow.RunID
		}
		next = historyCursor(lastRow.Timestamp, id)
	}
	if list == nil {
		list = []RunView{}
	}
	return list, next, nil
}

func (g *Gateway) operatorRuns(ctx context.Context, job string, limit int, beforeTS time.Time, beforeID string) ([]RunView, error) {
	id := int64(1 << 62)
	if beforeID != "" {
		n, err := strconv.ParseInt(beforeID, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: cursor id %q", errBadRequest, beforeID)
		}
		id = n
	}
	rows, err := g.cfg.Pool.Query(ctx, `
SELECT id, "timestamp", details FROM audit_log
WHERE action_type = 'background_job_execution' AND details->>'job_name' = $1
  AND ("timestamp", id) < ($2, $3)
ORDER BY "timestamp" DESC, id DESC LIMIT $4`, job, beforeTS, id, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (RunView, error) {
		var id int64
		var ts time.Time
		var details []byte
		if err := row.Scan(&id, &ts, &details); err != nil {
			return RunView{}, err
		}
		return runView(id, ts, details)
	})
}

// FirmHistoryQuery is a firm's history of one job: one range of the index
// job_run_tenants_history, and for each of its rows one probe of audit_log's unique
// dedupe key. No other firm's row is read.
const FirmHistoryQuery = `
SELECT coalesce(a.id, 0), s.finished_at, a.details, s.run_id::text, s.status, s.results, s.errors, coalesce(s.error_message, '')
FROM job_run_tenants s
LEFT JOIN audit_log a ON a.dedupe_key = 'execution:' || s.run_id
WHERE s.tenant_id = $1 AND s.job_name = $2
  AND (s.finished_at, s.run_id) < ($3, $4::uuid)
ORDER BY s.finished_at DESC, s.run_id DESC
LIMIT $5`

func (g *Gateway) firmRuns(ctx context.Context, job string, limit int, beforeTS time.Time, beforeID string, v Viewer) ([]RunView, error) {
	if beforeID == "" {
		beforeID = "ffffffff-ffff-ffff-ffff-ffffffffffff"
	} else if _, err := uuid.Parse(beforeID); err != nil {
		return nil, fmt.Errorf("%w: cursor id %q", errBadRequest, beforeID)
	}
	rows, err := g.cfg.Pool.Query(ctx, FirmHistoryQuery, v.TenantID, job, beforeTS, beforeID, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (RunView, error) {
		var id int64
		var ts time.Time
		var details, results, errs []byte
		var runID, status, errMsg string
		if err := row.Scan(&id, &ts, &details, &runID, &status, &results, &errs, &errMsg); err != nil {
			return RunView{}, err
		}
		return firmRunView(v, id, ts, details, runID, status, results, errs, errMsg, job)
	})
}

func parseCursor(s string) (time.Time, string, bool) {
	tsPart, idPart, ok := strings.Cut(s, "_")
	if !ok || idPart == "" {
		return time.Time{}, "", false
	}
	ts, err := time.Parse(time.RFC3339Nano, tsPart)
	if err != nil {
		return time.Time{}, "", false
	}
	return ts, idPart, true
}
