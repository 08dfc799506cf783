package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

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

// Card is one job as the dashboard shows it.
type Card struct {
	Name            string            `json:"name"`
	Title           string            `json:"title"`
	Description     string            `json:"description"`
	Frequency       string            `json:"frequency"`
	Schedule        string            `json:"schedule"`
	DefaultSchedule string            `json:"default_schedule"`
	Timezone        string            `json:"timezone"`
	Paused          bool              `json:"paused"`
	Status          string            `json:"status"`
	LastRun         *RunView          `json:"last_run"`
	LastRunAt       *time.Time        `json:"last_run_at"`
	NextRunAt       *time.Time        `json:"next_run_at"`
	Stale           bool              `json:"stale"`
	MaxAgeSeconds   int64             `json:"max_age_seconds"`
	StaleAfterSecs  int64             `json:"stale_after_seconds"`
	Current         *jobstate.RunInfo `json:"current"`
	Queued          *jobstate.RunInfo `json:"queued"`
	PossiblyStuck   bool              `json:"possibly_stuck"`
	ResultKeys      []string          `json:"result_keys"`
}

// RunView is one execution from audit_log: its log entry as the job published it, with
// the row's id and time and the toast's words.
type RunView struct {
	ID int64 `json:"id"`
	events.Result
	Timestamp time.Time `json:"timestamp"`
	Summary   string    `json:"summary"`
}

func runView(id int64, ts time.Time, details []byte) (RunView, error) {
	v := RunView{ID: id, Timestamp: ts}
	if err := json.Unmarshal(details, &v.Result); err != nil {
		return RunView{}, fmt.Errorf("decode audit row %d: %w", id, err)
	}
	v.Summary = v.Result.Summary()
	return v, nil
}

// One index probe per job, not a scan of the whole log.
const lastRunsQuery = `
SELECT j.name, a.id, a."timestamp", a.details
FROM unnest($1::text[]) AS j(name)
JOIN LATERAL (
    SELECT id, "timestamp", details FROM audit_log
    WHERE action_type = 'background_job_execution' AND details->>'job_name' = j.name
    ORDER BY "timestamp" DESC, id DESC LIMIT 1
) a ON true`

// Cards builds every job's card from audit_log and the buckets.
func (g *Gateway) Cards(ctx context.Context) ([]Card, error) {
	rows, err := g.cfg.Pool.Query(ctx, lastRunsQuery, catalog.Names())
	if err != nil {
		return nil, fmt.Errorf("cards: last runs: %w", err)
	}
	last := map[string]RunView{}
	for rows.Next() {
		var name string
		var id int64
		var ts time.Time
		var details []byte
		if err := rows.Scan(&name, &id, &ts, &details); err != nil {
			return nil, fmt.Errorf("cards: scan: %w", err)
		}
		v, err := runView(id, ts, details)
		if err != nil {
			return nil, err
		}
		last[name] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cards: last runs: %w", err)
	}
	var cards []Card
	for _, job := range catalog.All() {
		c, err := g.card(ctx, job, last)
		if err != nil {
			return nil, err
		}
		cards = append(cards, c)
	}
	return cards, nil
}

// Card builds one job's card.
func (g *Gateway) Card(ctx context.Context, name string) (Card, error) {
	cards, err := g.Cards(ctx)
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

func (g *Gateway) card(ctx context.Context, job catalog.Job, last map[string]RunView) (Card, error) {
	now := g.cfg.Clock.Now()
	cfg, _, err := jobstate.Get[jobstate.Config](ctx, g.buckets.Config, job.Name)
	if err != nil {
		return Card{}, err
	}
	runs, _, err := jobstate.Get[jobstate.Runs](ctx, g.buckets.Runs, job.Name)
	if err != nil {
		return Card{}, err
	}
	schedule := job.Schedule
	if cfg.Schedule != "" {
		schedule = cfg.Schedule
	}
	c := Card{
		Name: job.Name, Title: job.Title, Description: job.Description,
		Frequency: catalog.Describe(schedule), Schedule: schedule, DefaultSchedule: job.Schedule,
		Timezone: g.cfg.Location.String(), Paused: cfg.Paused, Status: CardPending,
		MaxAgeSeconds: int64(job.MaxAge.Seconds()), StaleAfterSecs: int64(job.StaleAfter.Seconds()),
		Current: runs.Current, Queued: runs.Next, ResultKeys: job.ResultKeys,
	}
	if lr, ok := last[job.Name]; ok {
		lr := lr
		c.LastRun = &lr
		at := lr.Timestamp
		c.LastRunAt = &at
		c.Status = lr.Status
		c.Stale = now.Sub(at) > job.StaleAfter
	}
	if runs.Current != nil || runs.Next != nil {
		c.Status = CardRunning
	}
	if cur := runs.Current; cur != nil {
		beat := cur.HeartbeatAt
		if beat.IsZero() {
			beat = cur.StartedAt
		}
		c.PossiblyStuck = now.Sub(beat) > StuckAfter
	}
	if !cfg.Paused {
		if next, err := catalog.Next(schedule, g.cfg.Location, now); err == nil {
			c.NextRunAt = &next
		}
	}
	return c, nil
}

// Runs is a page of a job's history, newest first. before is the cursor of the previous
// page ("" for the first).
func (g *Gateway) Runs(ctx context.Context, job string, limit int, before string) ([]RunView, string, error) {
	beforeTS, beforeID := time.Now().Add(100*365*24*time.Hour), int64(1<<62)
	if before != "" {
		ts, id, ok := parseCursor(before)
		if !ok {
			return nil, "", fmt.Errorf("%w: cursor %q", errBadRequest, before)
		}
		beforeTS, beforeID = ts, id
	}
	rows, err := g.cfg.Pool.Query(ctx, `
SELECT id, "timestamp", details FROM audit_log
WHERE action_type = 'background_job_execution' AND details->>'job_name' = $1
  AND ("timestamp", id) < ($2, $3)
ORDER BY "timestamp" DESC, id DESC LIMIT $4`, job, beforeTS, beforeID, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("runs: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (RunView, error) {
		var id int64
		var ts time.Time
		var details []byte
		if err := row.Scan(&id, &ts, &details); err != nil {
			return RunView{}, err
		}
		return runView(id, ts, details)
	})
	if err != nil {
		return nil, "", fmt.Errorf("runs: %w", err)
	}
	next := ""
	if len(list) > limit {
		list = list[:limit]
		lastRow := list[len(list)-1]
		next = lastRow.Timestamp.UTC().Format(time.RFC3339Nano) + "_" + strconv.FormatInt(lastRow.ID, 10)
	}
	if list == nil {
		list = []RunView{}
	}
	return list, next, nil
}

func parseCursor(s string) (time.Time, int64, bool) {
	tsPart, idPart, ok := strings.Cut(s, "_")
	if !ok {
		return time.Time{}, 0, false
	}
	ts, err := time.Parse(time.RFC3339Nano, tsPart)
	if err != nil {
		return time.Time{}, 0, false
	}
	id, err := strconv.ParseInt(idPart, 10, 64)
	if err != nil {
		return time.Time{}, 0, false
	}
	return ts, id, true
}
