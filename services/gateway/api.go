package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobstate"
)

// Health is the answer of GET /api/health and the dashboard's banner.
type Health struct {
	Status string            `json:"status"` // healthy or unhealthy
	Checks map[string]string `json:"checks"`
	// Stale lists jobs whose last run is older than their alert threshold.
	Stale []string `json:"stale_jobs"`
	// Failed lists jobs whose last run failed.
	Failed  []string `json:"failed_jobs"`
	Problem string   `json:"problem,omitempty"`
	// Automation is the viewer's last Automation Health Check verdict when it was not
	// healthy ("Automation degraded: 2 rules failing"). It names rules, not the
	// system's dependencies, so it does not make the status unhealthy.
	Automation string    `json:"automation,omitempty"`
	Time       time.Time `json:"time"`
	// DeadLetters is, for the operator, how many messages JOBS_DEAD holds: each one a
	// message a consumer terminated, waiting to be read and perhaps replayed.
	DeadLetters *int `json:"dead_letters,omitempty"`
}

// health is the viewer's: a firm's from its own cards (its last runs, its pauses), the
// operator's from the runs' totals. Unhealthy when a dependency is down, when a job is
// overdue past its alert threshold, or when more than one job's last run failed (the
// guide's "unhealthy system indicators").
func (g *Gateway) health(ctx context.Context, v Viewer) Health {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	d := g.checkDeps(ctx, v.Operator)
	cards, err := g.Cards(ctx, v)
	return g.healthFrom(d, cards, err, v)
}

// deps is how the dependencies are, the same for every viewer: checked once per health
// tick for every dashboard, not once per dashboard (depsCache).
type deps struct {
	database, nats string // "ok", or what is wrong
	deadLetters    int    // messages in JOBS_DEAD; -1 unknown
	at             time.Time
}

// checkDeps pings the database and asks JetStream how it is, and, for the operator,
// how many dead letters it holds.
func (g *Gateway) checkDeps(ctx context.Context, deadLetters bool) deps {
	d := deps{database: "ok", nats: "ok", deadLetters: -1, at: g.cfg.Clock.Now()}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := g.cfg.Pool.Ping(pctx); err != nil {
		d.database = "unreachable: " + err.Error()
	}
	if !g.cfg.NC.IsConnected() {
		d.nats = "disconnected: " + g.cfg.NC.Status().String()
	} else if err := g.jetstream.Check(pctx); err != nil {
		d.nats = "jetstream unavailable: " + strings.TrimPrefix(err.Error(), bus.ErrUnavailable.Error()+": ")
	} else if deadLetters {
		d.deadLetters = g.deadLetterCount(pctx)
	}
	return d
}

// depsCache keeps the last check of the dependencies.
type depsCache struct {
	mu   sync.Mutex
	last deps
}

func (c *depsCache) put(d deps) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = d
}

// recentDeps is the last check of the dependencies if it is younger than a health
// tick, else a new one.
func (g *Gateway) recentDeps(ctx context.Context) deps {
	g.deps.mu.Lock()
	d := g.deps.last
	g.deps.mu.Unlock()
	if !d.at.IsZero() && g.cfg.Clock.Since(d.at) < HealthEvery {
		return d
	}
	d = g.checkDeps(ctx, true)
	g.deps.put(d)
	return d
}

// healthFrom is the viewer's health, from the dependencies and the viewer's cards.
func (g *Gateway) healthFrom(d deps, cards []Card, cardsErr error, v Viewer) Health {
	h := Health{Status: "healthy", Checks: map[string]string{"database": d.database, "nats": d.nats}, Stale: []string{}, Failed: []string{}, Time: g.cfg.Clock.Now()}
	var problems []string
	if d.database != "ok" {
		problems = append(problems, "the database is unreachable")
	}
	switch {
	case strings.HasPrefix(d.nats, "disconnected"):
		problems = append(problems, "NATS is unreachable")
	case d.nats != "ok":
		problems = append(problems, "JetStream is unavailable")
	}
	if d.database == "ok" && d.nats == "ok" {
		if cardsErr != nil {
			h.Checks["jobs"] = cardsErr.Error()
		} else {
			h.Checks["jobs"] = "ok"
			for _, c := range cards {
				if c.Stale && !c.Paused {
					h.Stale = append(h.Stale, c.Name)
				}
				if c.LastRun != nil && c.LastRun.Status == CardFailed {
					h.Failed = append(h.Failed, c.Name)
				}
				if c.Name == catalog.AutomationHealthCheck && c.LastRun != nil && c.LastRun.Status == CardSuccess {
					if verdict, _ := c.LastRun.Results["health"].(string); verdict != "" && verdict != "healthy" {
						h.Automation = "Automation " + c.LastRun.Headline
					}
				}
			}
			if len(h.Stale) > 0 {
				if len(h.Stale) == 1 {
					problems = append(problems, "1 job has not run within its expected time: "+h.Stale[0])
				} else {
					problems = append(problems, fmt.Sprintf("%d jobs have not run within their expected time: %s", len(h.Stale), strings.Join(h.Stale, ", ")))
				}
			}
			if len(h.Failed) > 1 {
				problems = append(problems, fmt.Sprintf("%d jobs failed their last run: %s", len(h.Failed), strings.Join(h.Failed, ", ")))
			}
		}
	}
	if v.Operator && d.nats == "ok" && d.deadLetters >= 0 {
		n := d.deadLetters
		h.DeadLetters = &n
	}
	if len(problems) > 0 {
		h.Status = "unhealthy"
		h.Problem = strings.Join(problems, "; ")
	}
	return h
}

// handleHealth is GET /api/health. Without a token it is the deployment's health,
// which names jobs and dependencies and nothing of any firm; with a firm user's token,
// that firm's; with the operator's, the operator's.
func (g *Gateway) handleHealth(w http.ResponseWriter, r *http.Request) {
	v := Viewer{Operator: true}
	if raw, _ := tokenFrom(r); raw != "" {
		p, fromCookie, err := g.principal(r)
		if err != nil {
			g.refuseUnauthenticated(w, r, fromCookie, err)
			return
		}
		if p.CanView() {
			v = p.Viewer()
		}
	}
	h := g.health(r.Context(), v)
	if raw, _ := tokenFrom(r); raw == "" {
		h.DeadLetters = nil // the deployment's health for anyone: dependencies and jobs only
	}
	code := http.StatusOK
	if h.Status != "healthy" {
		code = http.StatusServiceUnavailable
	}
	writeJSONResponse(w, code, h)
}

func (g *Gateway) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.RequestID, middleware.RealIP, g.accessLog, middleware.Recoverer)
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path)
	})

	// Open: probes and metrics carry no firm's data.
	r.Get("/api/health", g.handleHealth)
	r.Handle("/metrics", g.opsHandler)
	r.Handle("/livez", g.opsHandler)
	r.Handle("/readyz", g.opsHandler)
	// Open: the help holds no firm's data (help.go says why).
	r.Get("/help", g.serveHelp)
	r.Get("/signin", g.handleSignIn)
	r.Post("/signout", g.handleSignOut)

	// Admins and partners.
	r.Group(func(r chi.Router) {
		r.Use(g.requireViewer)
		r.Get("/api/me", g.handleMe)
		r.Get("/api/jobs", func(w http.ResponseWriter, r *http.Request) {
			cards, err := g.Cards(r.Context(), principalFrom(r.Context()).Viewer())
			if err != nil {
				g.fail(w, r, err)
				return
			}
			writeJSONResponse(w, http.StatusOK, map[string]any{"jobs": cards, "server_time": g.cfg.Clock.Now()})
		})
		r.Route("/api/jobs/{job}", func(r chi.Router) {
			r.Use(knownJob)
			r.Get("/", func(w http.ResponseWriter, r *http.Request) {
				c, err := g.Card(r.Context(), chi.URLParam(r, "job"), principalFrom(r.Context()).Viewer())
				if err != nil {
					g.fail(w, r, err)
					return
				}
				writeJSONResponse(w, http.StatusOK, c)
			})
			r.Get("/runs", g.handleRuns)
			r.Get("/runs/{run}/items", g.handleRunItems)
			r.Post("/run", g.handleRunNow)
			// Admins (for their firm) and the operator.
			r.Group(func(r chi.Router) {
				r.Use(g.requireAdmin)
				r.Post("/pause", g.handlePause(true))
				r.Post("/resume", g.handlePause(false))
			})
			// The schedule: the operator's for every firm, a firm admin's time of day for the
			// firm (the handler tells the two apart, and says who may do what).
			r.Put("/schedule", g.handleSchedule)
			// The platform operator only: what holds for every firm.
			r.Group(func(r chi.Router) {
				r.Use(g.requireOperator("Every firm's part of a run is for the platform operator"))
				r.Get("/runs/{run}/firms", g.handleRunFirms)
			})
		})
		r.Get("/ws", g.serveWS)
		r.Group(func(r chi.Router) {
			r.Use(g.requireOperator("Dead letters hold messages of every firm, which are for the platform operator"))
			r.Get("/api/dead-letters", g.handleDeadLetters)
			r.Post("/api/dead-letters/{seq}/replay", g.handleReplayDeadLetter)
		})
	})
	r.HandleFunc("/api/*", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API route: "+r.Method+" "+r.URL.Path)
	})
	r.Get("/", g.serveDashboard)
	r.Get("/*", g.serveWeb)
	return r
}

// Me is GET /api/me: who the dashboard is talking to and what they may do.
type Me struct {
	User        Principal   `json:"user"`
	Permissions Permissions `json:"permissions"`
	// Admins are whom to ask for what the user may not do.
	Admins   []Contact `json:"admins"`
	Timezone string    `json:"timezone"`
	DevMode  bool      `json:"dev_mode"`
}

// Permissions of the signed-in user on the dashboard. PauseResume and SetFirmHours
// (the firm's time of day for its daily jobs) are for the user's firm;
// PauseForEveryone, ChangeSchedule and SeeAllFirms are the platform operator's.
type Permissions struct {
	RunNow           bool `json:"run_now"`
	PauseResume      bool `json:"pause_resume"`
	SetFirmHours     bool `json:"set_firm_hours"`
	PauseForEveryone bool `json:"pause_for_everyone"`
	ChangeSchedule   bool `json:"change_schedule"`
	SeeAllFirms      bool `json:"see_all_firms"`
}

func (g *Gateway) handleMe(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	admins := []Contact{}
	if !p.Operator {
		if a := g.admins(r.Context(), p.TenantID); a != nil {
			admins = a
		}
	}
	writeJSONResponse(w, http.StatusOK, Me{
		User: p,
		Permissions: Permissions{RunNow: p.CanView(), PauseResume: p.CanConfigure(), SetFirmHours: p.CanConfigure() && !p.Operator, PauseForEveryone: p.CanConfigureAll(),
			ChangeSchedule: p.CanConfigureAll(), SeeAllFirms: p.Operator},
		Admins: admins, Timezone: g.zoneOf(r.Context(), p.TenantID).Name, DevMode: g.cfg.DevMode,
	})
}

// knownJob answers 404 with the list of jobs for a name that is not one.
func knownJob(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		job := chi.URLParam(r, "job")
		if _, ok := catalog.Lookup(job); !ok {
			writeError(w, http.StatusNotFound, fmt.Sprintf("unknown job %q: known jobs are %s", job, strings.Join(catalog.Names(), ", ")))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (g *Gateway) handleRuns(w http.ResponseWriter, r *http.Request) {
	limit := 10
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			writeError(w, http.StatusBadRequest, "limit must be a whole number from 1 to 100")
			return
		}
		limit = n
	}
	runs, next, err := g.Runs(r.Context(), chi.URLParam(r, "job"), limit, r.URL.Query().Get("before"), principalFrom(r.Context()).Viewer())
	if err != nil {
		g.fail(w, r, err)
		return
	}
	writeJSONResponse(w, http.StatusOK, map[string]any{"runs": runs, "next_cursor": next})
}

// FirmSlice is one firm's part of a run, for the operator.
type FirmSlice struct {
	TenantID     string         `json:"tenant_id"`
	Tenant       string         `json:"tenant"`
	Status       string         `json:"status"`
	Results      map[string]any `json:"results"`
	Errors       []string       `json:"errors"`
	ErrorMessage string         `json:"error_message,omitempty"`
}

// handleRunFirms is GET /api/jobs/{job}/runs/{run}/firms: every firm's slice of a run,
// for the platform operator.
func (g *Gateway) handleRunFirms(w http.ResponseWriter, r *http.Request) {
	runID := chi.URLParam(r, "run")
	if _, err := uuid.Parse(runID); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("run %q is not a run id", runID))
		return
	}
	rows, err := g.cfg.Pool.Query(r.Context(), `
SELECT s.tenant_id::text, t.name, s.status, s.results, s.errors, coalesce(s.error_message, '')
FROM job_run_tenants s JOIN tenants t ON t.id = s.tenant_id
WHERE s.run_id = $1 AND s.job_name = $2
ORDER BY t.name, s.tenant_id`, runID, chi.URLParam(r, "job"))
	if err != nil {
		g.fail(w, r, err)
		return
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (FirmSlice, error) {
		var f FirmSlice
		var results, errs []byte
		if err := row.Scan(&f.TenantID, &f.Tenant, &f.Status, &results, &errs, &f.ErrorMessage); err != nil {
			return f, err
		}
		if err := json.Unmarshal(results, &f.Results); err != nil {
			return f, err
		}
		return f, json.Unmarshal(errs, &f.Errors)
	})
	if err != nil {
		g.fail(w, r, err)
		return
	}
	if list == nil {
		list = []FirmSlice{}
	}
	writeJSONResponse(w, http.StatusOK, map[string]any{"run_id": runID, "firms": list})
}

// MaxBody bounds every JSON body the API reads.
const MaxBody = 16 << 10

type runNowBody struct {
	Reason string `json:"reason"`
}

// handleRunNow is Run Now. A person who presses it too often (limits.go) is answered
// 429 with Retry-After, and nothing is stored: no audit row, no trigger. A request that
// is wrong anyway (400) takes no press from the person.
func (g *Gateway) handleRunNow(w http.ResponseWriter, r *http.Request) {
	var body runNowBody
	if !decodeBody(w, r, &body) {
		return
	}
	p := principalFrom(r.Context())
	if why, ok := g.runNow.allow(p.UserID, g.cfg.Clock.Now()); !ok {
		g.metrics.runNowLimited.Inc()
		w.Header().Set("Retry-After", strconv.Itoa(why.RetryAfter()))
		writeJSONResponse(w, http.StatusTooManyRequests, map[string]any{"error": why.Error(), "retry_after_seconds": why.RetryAfter()})
		return
	}
	who := Requester{UserID: p.UserID, TenantID: p.TenantID, Name: p.Display(), Operator: p.Operator}
	if p.Operator {
		who.UserID = ""
	}
	acc, err := g.RunNow(r.Context(), chi.URLParam(r, "job"), strings.TrimSpace(body.Reason), who, g.cfg.RunNowWait)
	var notStored *TriggerNotStored
	if errors.As(err, &notStored) {
		g.log.Warn("Run Now not confirmed by JetStream", "job_name", chi.URLParam(r, "job"), "trigger_id", notStored.TriggerID, "stored", notStored.Stored(), "err", notStored.Err)
		w.Header().Set("Retry-After", "30")
		writeJSONResponse(w, http.StatusServiceUnavailable, map[string]any{
			"error": notStored.Message(), "stored": notStored.Stored(), "trigger_id": notStored.TriggerID})
		return
	}
	if err != nil {
		g.fail(w, r, err)
		return
	}
	writeJSONResponse(w, http.StatusAccepted, acc)
}

// pauseBody is a pause's or a resume's body. For says whom it is for: "firm" (the
// default for a firm's admin: the admin's own firm) or "everyone" (the default for the
// platform operator, and only the operator's); TenantID lets the operator pause one firm.
type pauseBody struct {
	Reason   string `json:"reason"`
	For      string `json:"for"`
	TenantID string `json:"tenant_id"`
}

func (b pauseBody) why() string { return b.Reason }

// Whom a pause is for.
const (
	PauseForFirm     = "firm"
	PauseForEveryone = "everyone"
)

// handlePause pauses or resumes a job's schedule: for a firm, by its admin (runs then
// skip that firm's data, and only its people see the pause), or for every firm, by the
// platform operator. A firm's own Run Now still runs while it is paused.
func (g *Gateway) handlePause(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body pauseBody
		if !decodeBody(w, r, &body) {
			return
		}
		job := chi.URLParam(r, "job")
		p := principalFrom(r.Context())
		forWhom, tenant := body.For, body.TenantID
		switch {
		case forWhom != "" && forWhom != PauseForFirm && forWhom != PauseForEveryone:
			writeError(w, http.StatusBadRequest, `"for" must be "firm" or "everyone"`)
			return
		case !p.Operator && (forWhom == PauseForEveryone || (tenant != "" && tenant != p.TenantID)):
			writeJSONResponse(w, http.StatusForbidden, map[string]any{"error": fmt.Sprintf(
				"Pausing or resuming a job for every firm is for the platform operator; as an admin of %s you can pause it for your firm (\"for\": \"firm\").", p.TenantName),
				"role": p.Role})
			return
		case !p.Operator:
			forWhom, tenant = PauseForFirm, p.TenantID
		case tenant != "":
			if !g.knownFirm(w, r, tenant) {
				return
			}
			forWhom = PauseForFirm
		case forWhom == PauseForFirm:
			writeError(w, http.StatusBadRequest, `the platform operator pauses a firm by naming it: {"tenant_id": "..."}`)
			return
		default:
			forWhom = PauseForEveryone
		}
		ctx, cancel := context.WithTimeout(r.Context(), configWriteFor)
		defer cancel()
		cfg, err := jobstate.Update(ctx, g.buckets.Config, jobstate.ConfigKey(job, tenant), func(c *jobstate.Config) error {
			c.Paused, c.UpdatedBy, c.UpdatedAt = paused, p.Display(), g.cfg.Clock.Now()
			return nil
		})
		if err != nil {
			g.fail(w, r, err)
			return
		}
		action := ActionResumed
		if paused {
			action = ActionPaused
		}
		details := map[string]any{"job_name": job, "paused": paused, "reason": body.Reason, "for": forWhom}
		if tenant != "" {
			details["tenant_id"] = tenant
		}
		g.auditChange(r, action, job, tenant, details)
		writeJSONResponse(w, http.StatusOK, map[string]any{"job_name": job, "paused": paused, "for": forWhom, "config": cfg})
	}
}

// scheduleBody is a schedule change: the operator's cron for every firm (Schedule), or
// a firm's own time of day for a daily job (At, "HH:MM"; "" for the default), for the
// admin's firm or, by the operator, for the firm named in TenantID.
type scheduleBody struct {
	Schedule *string `json:"schedule"`
	At       *string `json:"at"`
	TenantID string  `json:"tenant_id"`
	Reason   string  `json:"reason"`
}

// everyFirmsSchedule is why a firm's people may not change the cron.
const everyFirmsSchedule = "Changing a job's schedule changes it for every firm, which is for the platform operator"

// handleSchedule changes a job's schedule at runtime: for every firm, the operator's
// cron ("" restores the default); for one firm, its time of day (handleFirmHours). The
// ticker watches the config bucket, so either takes effect without a restart.
func (g *Gateway) handleSchedule(w http.ResponseWriter, r *http.Request) {
	var body scheduleBody
	if !decodeBody(w, r, &body) {
		return
	}
	p := principalFrom(r.Context())
	switch {
	case body.At != nil && body.Schedule != nil:
		writeError(w, http.StatusBadRequest, `send either "schedule" (the cron of every firm, the platform operator's) or "at" (a firm's time of day), not both`)
		return
	case body.At != nil:
		g.handleFirmHours(w, r, body)
		return
	case !p.Operator:
		firm := "your firm"
		if p.TenantName != "" {
			firm = p.TenantName
		}
		writeJSONResponse(w, http.StatusForbidden, map[string]any{
			"error": everyFirmsSchedule + ". You are signed in as " + p.Name + " (" + p.RoleName() + ") of " + p.TenantName +
				fmt.Sprintf(`; as its admin you can set %s's own time of day for a daily job: {"at": "07:30"}.`, firm),
			"role": p.Role})
		return
	case body.TenantID != "":
		writeError(w, http.StatusBadRequest, `a cron schedule holds for every firm; to set one firm's time of day send {"at": "HH:MM", "tenant_id": "..."}`)
		return
	case body.Schedule == nil:
		writeError(w, http.StatusBadRequest, `send {"schedule": "<five-field cron>"} for every firm ("" for the default), or {"at": "HH:MM", "tenant_id": "..."} for one firm`)
		return
	}
	job := chi.URLParam(r, "job")
	def, _ := catalog.Lookup(job)
	expr := strings.Join(strings.Fields(*body.Schedule), " ")
	if expr != "" {
		if strings.HasPrefix(expr, "@every") {
			writeError(w, http.StatusBadRequest, "use a five-field cron expression (minute hour day-of-month month day-of-week), such as */15 * * * *, not @every")
			return
		}
		if _, err := catalog.ParseSchedule(expr); err != nil {
			writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), "catalog: "))
			return
		}
		if next, _ := catalog.Next(expr, g.cfg.Location, g.cfg.Clock.Now()); next.IsZero() {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("schedule %q never runs", expr))
			return
		}
		if expr == def.Schedule {
			expr = ""
		}
	}
	var previous string
	ctx, cancel := context.WithTimeout(r.Context(), configWriteFor)
	defer cancel()
	cfg, err := jobstate.Update(ctx, g.buckets.Config, job, func(c *jobstate.Config) error {
		previous = c.Schedule
		c.Schedule, c.UpdatedBy, c.UpdatedAt = expr, p.Display(), g.cfg.Clock.Now()
		return nil
	})
	if err != nil {
		g.fail(w, r, err)
		return
	}
	effective := cfg.Schedule
	if effective == "" {
		effective = def.Schedule
	}
	g.auditChange(r, ActionScheduleChanged, job, "", map[string]any{
		"job_name": job, "schedule": effective, "previous": orDefault(previous, def.Schedule), "reason": body.Reason, "for": PauseForEveryone,
	})
	writeJSONResponse(w, http.StatusOK, map[string]any{"job_name": job, "schedule": effective, "frequency": catalog.Describe(effective), "config": cfg})
}

// reasoned is a change's body: it says why.
type reasoned interface{ why() string }

func (b runNowBody) why() string   { return b.Reason }
func (b scheduleBody) why() string { return b.Reason }

// decodeBody reads a pause's or a schedule change's JSON body and holds its reason to
// the same limit as a trigger's, answering 400 itself when either is wrong.
func decodeBody(w http.ResponseWriter, r *http.Request, v reasoned) bool {
	if err := readJSON(r, v); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return false
	}
	if err := events.CheckText("reason", v.why(), events.MaxReasonLen); err != nil {
		writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), events.ErrInvalidPayload.Error()+": "))
		return false
	}
	return true
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// auditChange records a change of a job's settings: who, why, and for which firm
// (tenant; "" for every firm).
func (g *Gateway) auditChange(r *http.Request, action, job, tenant string, details map[string]any) {
	p := principalFrom(r.Context())
	details["requested_by"] = p.Display()
	if p.Operator {
		details["operator"] = true
	}
	row := auditRow{action: action, job: job, details: details, at: g.cfg.Clock.Now(),
		dedupeKey: action + ":" + job + ":" + middleware.GetReqID(r.Context()) + ":" + strconv.FormatInt(time.Now().UnixNano(), 10)}
	if p.UserID != "" && !p.Operator {
		row.userID = &p.UserID
	}
	if tenant != "" {
		row.tenantID = &tenant
	}
	if err := writeAudit(r.Context(), g.cfg.Pool, row); err != nil {
		g.log.Error("cannot audit change", "action", action, "job_name", job, "err", err)
	}
}

func readJSON(r *http.Request, v any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		return fmt.Errorf("cannot read the request body: %v", err)
	}
	if len(data) > MaxBody {
		return fmt.Errorf("request body is larger than %d bytes", MaxBody)
	}
	if !utf8.Valid(data) {
		return errors.New("request body is not valid UTF-8 text")
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body is not the expected JSON: %v", err)
	}
	return nil
}

func (g *Gateway) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errUnknownJob):
		writeError(w, http.StatusNotFound, strings.TrimPrefix(err.Error(), "cards: "))
	case errors.Is(err, errBadRequest):
		writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), errBadRequest.Error()+": "))
	case errors.Is(err, context.Canceled):
		writeError(w, 499, "request cancelled")
	default:
		// The cause (a database's or NATS's words) is for the logs, not for the page.
		id := middleware.GetReqID(r.Context())
		g.log.Error("request failed", "path", r.URL.Path, "err", err, "request_id", id)
		writeError(w, http.StatusServiceUnavailable, "The service cannot answer right now (its database or NATS is unavailable); try again in a minute. Reference: "+id)
	}
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSONResponse(w, code, map[string]string{"error": msg})
}

func writeJSONResponse(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// A browser must not read an answer as anything but JSON (a reason someone typed,
	// echoed in an error, sniffed as HTML).
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (g *Gateway) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		if r.URL.Path == "/metrics" || r.URL.Path == "/livez" || r.URL.Path == "/readyz" {
			return
		}
		g.metrics.requests.WithLabelValues(routePattern(r), strconv.Itoa(ww.Status())).Inc()
		g.log.Debug("http", "method", r.Method, "path", r.URL.Path, "status", ww.Status(), "took", time.Since(start), "request_id", middleware.GetReqID(r.Context()))
	})
}

func routePattern(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
		return rc.RoutePattern()
	}
	return "other"
}
