// Package events declares, once, every subject the system uses and the payload that
// travels on it, with the encoding and validation beside them.
//
//	jobs.schedule.<job>     ticker → workers   Schedule   (Nats-Msg-Id: <job>@<slot RFC 3339>[#<group>])
//	jobs.trigger.<job>      anyone → workers   Trigger    (optional JSON; empty body is valid)
//	jobs.trigger.<job>.api  gateway → workers  Trigger    (Run Now, with the verified Requester)
//	jobs.run.<job>          workers → workers  RunOrder   (internal: one message per run)
//	jobs.status.<job>       workers → gateway  Status     (queued, running, heartbeat, missed)
//	jobs.slices.<job>       workers → gateway  Slices     (each firm's part of a run, before its result)
//	jobs.result.<job>       workers → gateway  Result     (exactly one per run, or a rejection)
//
// Tenancy travels in the events: a trigger names who asked (Requester) and so which
// firms the run covers (Scope); every status and result of the run carries both, and
// a run's Slices carry each covered firm's own results. Deciding what a viewer may
// see of an event is then a pure function of the event and the viewer.
package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lexhq/gstjobs/internal/catalog"
)

// Subject prefixes. A job's subject is the prefix followed by its name.
const (
	PrefixSchedule = "jobs.schedule."
	PrefixTrigger  = "jobs.trigger."
	PrefixRun      = "jobs.run."
	PrefixStatus   = "jobs.status."
	PrefixSlices   = "jobs.slices."
	PrefixResult   = "jobs.result."
)

// APISuffix ends the subject of a trigger the gateway sends for a signed-in person:
// jobs.trigger.<job>.api. Only the gateway may publish there (NATS permissions), so
// its Requester is trusted; a trigger on jobs.trigger.<job> is a developer's and may
// not name one.
const APISuffix = ".api"

func ScheduleSubject(job string) string { return PrefixSchedule + job }
func TriggerSubject(job string) string  { return PrefixTrigger + job }
func APITriggerSubject(job string) string {
	return PrefixTrigger + job + APISuffix
}
func SlicesSubject(job string) string { return PrefixSlices + job }
func RunSubject(job string) string    { return PrefixRun + job }
func StatusSubject(job string) string { return PrefixStatus + job }
func ResultSubject(job string) string { return PrefixResult + job }

// JobFromSubject returns the <job> token of a jobs.<kind>.<job>[.api] subject.
func JobFromSubject(subject string) string {
	parts := strings.Split(subject, ".")
	if len(parts) < 3 || parts[0] != "jobs" {
		return ""
	}
	return parts[2]
}

// IsAPITrigger reports a trigger sent by the gateway for a signed-in person.
func IsAPITrigger(subject string) bool {
	return strings.HasPrefix(subject, PrefixTrigger) && strings.HasSuffix(subject, APISuffix) &&
		strings.Count(subject, ".") == 3
}

// Trigger kinds, as recorded in audit_log.details.trigger.
const (
	KindSchedule = "schedule"
	KindManual   = "manual"
	// KindRetry is a run that retries one that failed for a temporary reason.
	KindRetry = "retry"
)

// Trigger sources: where a trigger came from, and so how far its words are trusted.
const (
	// SourceSchedule is the ticker.
	SourceSchedule = "schedule"
	// SourceAPI is the gateway's Run Now: the requester is a signed-in person, verified.
	SourceAPI = "api"
	// SourceNATS is any other client (a developer's `nats pub`): requested_by is
	// whatever it typed, shown as such and never as a verified person.
	SourceNATS = "nats"
)

// Requester is the signed-in person behind a Run Now, as the gateway verified them.
// The platform operator has no firm.
type Requester struct {
	TenantID  string `json:"tenant_id,omitempty"`
	ProfileID string `json:"profile_id,omitempty"`
	Name      string `json:"name"`
	Operator  bool   `json:"operator,omitempty"`
}

// MaxScopeTenants bounds the firms a run names one by one. A run that more firms ask
// for at once covers every firm, as a scheduled run does.
const MaxScopeTenants = 100

// Scope is which firms a run covers: every firm (the SLA check's slots, the operator,
// developers), the firms whose people pressed Run Now (Tenants), or, for a daily job
// whose firms keep their own hours, the firms that share a slot: named (Firms), or
// every firm but those whose own slot is elsewhere (All with Except).
//
// Skip lists the firms that paused the job, decided when the run starts: a firm in
// Tenants is never skipped (its own Run Now runs even while it paused), a firm covered
// by All or Firms is.
type Scope struct {
	All     bool     `json:"all,omitempty"`
	Tenants []string `json:"tenants,omitempty"`
	// Firms are the firms a schedule slot is for (its zone and time of day are theirs).
	Firms []string `json:"firms,omitempty"`
	// Except, with All, lists the firms a slot for every firm is not for: those whose
	// own slot is elsewhere, or that already had the day's run.
	Except []string `json:"except,omitempty"`
	Skip   []string `json:"skip,omitempty"`
}

// ScopeAll is a run for every firm.
func ScopeAll() Scope { return Scope{All: true} }

// ScopeTenant is a run for one firm.
func ScopeTenant(id string) Scope { return Scope{Tenants: []string{id}} }

// ScopeFirms is a schedule slot for the named firms.
func ScopeFirms(ids []string) Scope {
	f := slices.Clone(ids)
	slices.Sort(f)
	return Scope{Firms: slices.Compact(f)}
}

// Covers reports whether the run does the firm's work.
func (s Scope) Covers(tenant string) bool {
	if tenant == "" {
		return false
	}
	if slices.Contains(s.Tenants, tenant) {
		return true
	}
	return s.scheduled(tenant) && !slices.Contains(s.Skip, tenant)
}

// scheduled: the scope is for the firm, whether or not it paused the job.
func (s Scope) scheduled(tenant string) bool {
	return slices.Contains(s.Tenants, tenant) || slices.Contains(s.Firms, tenant) ||
		(s.All && !slices.Contains(s.Except, tenant))
}

// Empty reports a scope that is for no firm at all (a run queued before runs had
// scopes has one; the worker runs it for every firm).
func (s Scope) Empty() bool { return !s.All && len(s.Tenants) == 0 && len(s.Firms) == 0 }

// Asked is the scope as its triggers asked for it, before any firm's pause.
func (s Scope) Asked() Scope {
	s.Skip = nil
	return s
}

// Includes reports whether a run for s already does all of o's work.
func (s Scope) Includes(o Scope) bool {
	if s.All && len(s.Except) == 0 {
		return true
	}
	if o.All {
		if !s.All {
			return false
		}
		for _, t := range s.Except {
			if !s.scheduled(t) && o.scheduled(t) {
				return false
			}
		}
	}
	for _, list := range [][]string{o.Tenants, o.Firms} {
		for _, t := range list {
			if !s.scheduled(t) {
				return false
			}
		}
	}
	return true
}

// Union is the scope of a run two triggers share. Past MaxScopeTenants firms asking
// themselves it becomes every firm; firms named by schedule slots are never capped (a
// run for every firm would do the work of firms whose time has not come).
func (s Scope) Union(o Scope) Scope {
	tenants := unionSorted(s.Tenants, o.Tenants)
	if len(tenants) > MaxScopeTenants {
		return Scope{All: true}
	}
	u := Scope{Tenants: tenants}
	switch {
	case s.All && o.All:
		u.All, u.Except = true, keep(s.Except, func(t string) bool { return slices.Contains(o.Except, t) })
	case s.All:
		u.All, u.Except = true, keep(s.Except, func(t string) bool { return !o.scheduled(t) })
	case o.All:
		u.All, u.Except = true, keep(o.Except, func(t string) bool { return !s.scheduled(t) })
	default:
		u.Firms = unionSorted(s.Firms, o.Firms)
	}
	return u
}

func unionSorted(a, b []string) []string {
	if len(a) == 0 && len(b) == 0 {
		return nil
	}
	u := append(slices.Clone(a), b...)
	slices.Sort(u)
	return slices.Compact(u)
}

func keep(list []string, ok func(string) bool) []string {
	var out []string
	for _, t := range list {
		if ok(t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// Schedule is what the ticker publishes for one slot of a job's schedule.
//
// A daily job's firms keep their own hours in their own time zones, so one instant is
// the slot of some firms only: Group names them ("Asia/Dubai 08:00": the firms of that
// zone whose time of day it is; "" is the slot of the job's default hour in
// JOBS_TIMEZONE) and Scope lists them. A slot with no Scope is for every firm (the SLA
// check's, and every slot published before firms had hours).
type Schedule struct {
	JobName string    `json:"job_name"`
	Slot    time.Time `json:"slot"`
	Group   string    `json:"group,omitempty"`
	Scope   *Scope    `json:"scope,omitempty"`
}

// For is the scope of the run the slot asks for.
func (s Schedule) For() Scope {
	if s.Scope == nil {
		return ScopeAll()
	}
	return *s.Scope
}

// ScheduleMsgID is the JetStream message id of a slot: publishing it twice stores it once.
func ScheduleMsgID(job string, slot time.Time) string {
	return job + "@" + slot.UTC().Format(time.RFC3339)
}

// GroupMsgID is the message id of one group's slot: <job>@<slot>#<group>, or the
// slot's own id for the group of every firm ("").
func GroupMsgID(job string, slot time.Time, group string) string {
	if group == "" {
		return ScheduleMsgID(job, slot)
	}
	return ScheduleMsgID(job, slot) + "#" + group
}

// Limits on what a person may type into a trigger.
const (
	MaxReasonLen      = 500
	MaxRequestedByLen = 200
)

// Trigger is a request to run a job now: Run Now on the dashboard or a developer's
// `nats pub`. Requester is set by the gateway alone (see APISuffix).
type Trigger struct {
	Reason      string     `json:"reason,omitempty"`
	RequestedBy string     `json:"requested_by,omitempty"`
	Requester   *Requester `json:"requester,omitempty"`
}

// ErrInvalidPayload is wrapped by every decoding error, so a consumer can tell a message
// that can never be processed (terminate it) from a transient failure (retry it).
var ErrInvalidPayload = errors.New("invalid payload")

// DecodeTrigger validates a trigger body. An empty body is a trigger with no reason.
// Only the gateway's triggers (fromAPI) may, and must, name a Requester.
func DecodeTrigger(data []byte, fromAPI bool) (Trigger, error) {
	var t Trigger
	if len(bytes.TrimSpace(data)) == 0 {
		if fromAPI {
			return Trigger{}, fmt.Errorf("%w: a Run Now trigger must name its requester", ErrInvalidPayload)
		}
		return t, nil
	}
	if err := decodeObject(data, &t); err != nil {
		return Trigger{}, err
	}
	switch {
	case fromAPI && t.Requester == nil:
		return Trigger{}, fmt.Errorf("%w: a Run Now trigger must name its requester", ErrInvalidPayload)
	case fromAPI && t.Requester.TenantID == "" && !t.Requester.Operator:
		return Trigger{}, fmt.Errorf("%w: a Run Now trigger's requester needs a tenant_id, or operator", ErrInvalidPayload)
	case !fromAPI && t.Requester != nil:
		return Trigger{}, fmt.Errorf("%w: requester is set by the gateway only; send reason and requested_by", ErrInvalidPayload)
	}
	return t, t.Validate()
}

// Scope is the firms a trigger asks a run for.
func (t Trigger) Scope() Scope {
	if t.Requester != nil && t.Requester.TenantID != "" && !t.Requester.Operator {
		return ScopeTenant(t.Requester.TenantID)
	}
	return ScopeAll()
}

// Validate checks the limits a trigger must respect: text PostgreSQL can store, of a
// length a person types.
func (t Trigger) Validate() error {
	if err := CheckText("reason", t.Reason, MaxReasonLen); err != nil {
		return err
	}
	if err := CheckText("requested_by", t.RequestedBy, MaxRequestedByLen); err != nil {
		return err
	}
	if rq := t.Requester; rq != nil {
		if err := CheckText("requester.name", rq.Name, MaxRequestedByLen); err != nil {
			return err
		}
		for _, id := range []struct{ field, v string }{{"requester.tenant_id", rq.TenantID}, {"requester.profile_id", rq.ProfileID}} {
			if id.v != "" && !isUUID(id.v) {
				return fmt.Errorf("%w: %s is not an id", ErrInvalidPayload, id.field)
			}
		}
	}
	return nil
}

// isUUID accepts the canonical form only (8-4-4-4-12 hexadecimal digits).
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'):
			return false
		}
	}
	return true
}

// DecodeSchedule validates a ticker message.
func DecodeSchedule(data []byte) (Schedule, error) {
	var s Schedule
	if err := decodeObject(data, &s); err != nil {
		return Schedule{}, err
	}
	if s.JobName == "" || s.Slot.IsZero() {
		return Schedule{}, fmt.Errorf("%w: a schedule event needs job_name and slot", ErrInvalidPayload)
	}
	if err := CheckText("group", s.Group, 200); err != nil {
		return Schedule{}, err
	}
	if sc := s.Scope; sc != nil {
		switch {
		case len(sc.Tenants) > 0 || len(sc.Skip) > 0:
			return Schedule{}, fmt.Errorf("%w: a slot names its firms in scope.firms (or scope.all with scope.except), never tenants or skip", ErrInvalidPayload)
		case !sc.All && len(sc.Firms) == 0:
			return Schedule{}, fmt.Errorf("%w: a slot's scope is for no firm", ErrInvalidPayload)
		}
		for _, list := range [][]string{sc.Firms, sc.Except} {
			for _, id := range list {
				if !isUUID(id) {
					return Schedule{}, fmt.Errorf("%w: scope of a slot names %q, which is not a firm's id", ErrInvalidPayload, id)
				}
			}
		}
	}
	return s, nil
}

func decodeObject(data []byte, v any) error {
	trimmed := bytes.TrimSpace(data)
	if !utf8.Valid(trimmed) {
		return fmt.Errorf("%w: body is not valid UTF-8 text", ErrInvalidPayload)
	}
	if !json.Valid(trimmed) {
		return fmt.Errorf("%w: body is not valid JSON (send a JSON object such as {\"reason\":\"...\",\"requested_by\":\"...\"}, or nothing)", ErrInvalidPayload)
	}
	if trimmed[0] != '{' {
		return fmt.Errorf("%w: body must be a JSON object, not %s", ErrInvalidPayload, jsonKind(trimmed[0]))
	}
	if err := json.Unmarshal(trimmed, v); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidPayload, err)
	}
	return nil
}

func jsonKind(first byte) string {
	switch first {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// TriggerRef names one trigger and who sent it; a run lists every trigger it answers.
// TenantID is the firm of the person who pressed Run Now ("" for schedules, the
// operator and developers' clients).
type TriggerRef struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
	Source      string    `json:"source,omitempty"`
	TenantID    string    `json:"tenant_id,omitempty"`
	ProfileID   string    `json:"profile_id,omitempty"`
	Operator    bool      `json:"operator,omitempty"`
	RequestedBy string    `json:"requested_by,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Slot        time.Time `json:"slot,omitzero"`
	At          time.Time `json:"at"`
}

// RunOrder is the internal message that asks the job's single active executor to
// perform one run. Its message id is the run id, so a re-sent order is stored once.
type RunOrder struct {
	RunID    string     `json:"run_id"`
	JobName  string     `json:"job_name"`
	First    TriggerRef `json:"first"`
	QueuedAt time.Time  `json:"queued_at"`
}

// Run states reported on jobs.status.<job>.
const (
	StateQueued    = "queued"
	StateRunning   = "running"
	StateHeartbeat = "heartbeat"
	StateMissed    = "missed"
)

// Status is a live change of a job: a trigger queued or joined a run, a run started
// or is still alive, or the ticker found a slot it was too late to fire.
//
// Source and TenantID are those of the trigger a queued status answers, or of the
// run's first trigger; Scope is the firms the run covers (nil for a missed slot,
// which concerns every firm).
type Status struct {
	RunID       string `json:"run_id,omitempty"`
	JobName     string `json:"job_name"`
	State       string `json:"state"`
	Trigger     string `json:"trigger,omitempty"`
	TriggerID   string `json:"trigger_id,omitempty"`
	Source      string `json:"source,omitempty"`
	TenantID    string `json:"tenant_id,omitempty"`
	RequestedBy string `json:"requested_by,omitempty"`
	Reason      string `json:"reason,omitempty"`
	Scope       *Scope `json:"scope,omitempty"`
	// Coalesced is true when the trigger joined a run that was already queued.
	Coalesced bool      `json:"coalesced,omitempty"`
	Slot      time.Time `json:"slot,omitzero"`
	Attempt   int       `json:"attempt,omitempty"`
	QueuedAt  time.Time `json:"queued_at,omitzero"`
	StartedAt time.Time `json:"started_at,omitzero"`
	At        time.Time `json:"at"`
	Instance  string    `json:"instance,omitempty"`
}

// Result statuses. Rejected is not a run: it answers a trigger that could not be read.
const (
	StatusSuccess  = "success"
	StatusFailed   = "failed"
	StatusRejected = "rejected"
)

// Result is the final word on a run, and exactly the `details` of its audit_log row:
// the run's totals over every firm it covered (Results, Errors), for the platform
// operator and the guide's queries. What each firm sees of the run is its own slice
// (Slices, published before the result) and never these totals.
//
// ErrorMessage is written by us in words that name no firm. ErrorDetails is the
// technical cause, shown to a firm's people only when DetailsPublic: a connection or
// timeout error says nothing about anyone's data, a failed statement may quote it.
type Result struct {
	RunID           string         `json:"run_id,omitempty"`
	JobName         string         `json:"job_name"`
	Status          string         `json:"status"`
	ExecutionTimeMS int64          `json:"execution_time_ms"`
	Results         map[string]any `json:"results"`
	Errors          []string       `json:"errors"`
	ErrorMessage    string         `json:"error_message,omitempty"`
	ErrorDetails    string         `json:"error_details,omitempty"`
	DetailsPublic   bool           `json:"details_public,omitempty"`
	Trigger         string         `json:"trigger,omitempty"`
	Source          string         `json:"source,omitempty"`
	TenantID        string         `json:"tenant_id,omitempty"`
	RequestedBy     string         `json:"requested_by,omitempty"`
	Reason          string         `json:"reason,omitempty"`
	TriggerID       string         `json:"trigger_id,omitempty"`
	Triggers        []TriggerRef   `json:"triggers,omitempty"`
	Scope           *Scope         `json:"scope,omitempty"`
	// Slices is how many firms' slices the run published, in SliceParts messages.
	Slices     int       `json:"slices,omitempty"`
	SliceParts int       `json:"slice_parts,omitempty"`
	Slot       time.Time `json:"slot,omitzero"`
	Attempt    int       `json:"attempt,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at"`
	Instance   string    `json:"instance,omitempty"`
	// A retry names the series' first run and which attempt of it this run is; a run
	// that failed for a temporary reason says when it is retried (NextRetry).
	RetryOf       string     `json:"retry_of,omitempty"`
	SeriesAttempt int        `json:"series_attempt,omitempty"`
	NextRetry     *NextRetry `json:"next_retry,omitempty"`
	// A rejection is stored at most once per subject (Subject) and minute (Minute) per
	// process, with how many triggers it answers (Count): see bus.Rejections.
	Subject string    `json:"subject,omitempty"`
	Minute  time.Time `json:"minute,omitzero"`
	Count   int       `json:"count,omitempty"`
}

// TenantSlice is one firm's part of a run: the contract's results keys for that firm
// alone, its own problems, and, when its part failed, why. Status "" is the run's
// (success or failed). A firm the run skipped (it paused the job) has no slice.
type TenantSlice struct {
	TenantID     string         `json:"tenant_id"`
	Status       string         `json:"status,omitempty"`
	Results      map[string]any `json:"results"`
	Errors       []string       `json:"errors,omitempty"`
	ErrorMessage string         `json:"error_message,omitempty"`
}

// NextRetry says when a failed run is tried again, and which attempt that will be.
type NextRetry struct {
	At          time.Time `json:"at"`
	Attempt     int       `json:"attempt"`
	MaxAttempts int       `json:"max_attempts"`
}

// Slices is one message of a run's firm slices. A run publishes every covered firm's
// slice, in parts small enough for any NATS payload limit, then its Result.
type Slices struct {
	RunID      string        `json:"run_id"`
	JobName    string        `json:"job_name"`
	Attempt    int           `json:"attempt"`
	Part       int           `json:"part"`
	Parts      int           `json:"parts"`
	FinishedAt time.Time     `json:"finished_at"`
	Tenants    []TenantSlice `json:"tenants"`
}

// SlicesMsgID keeps each part of each attempt once in the stream.
func SlicesMsgID(runID string, attempt, part int) string {
	return fmt.Sprintf("slices:%s:%d:%d", runID, attempt, part)
}

// SlicePartBytes is the most JSON a Slices message carries, far below NATS's default
// 1 MB payload limit.
const SlicePartBytes = 128 << 10

// SplitSlices cuts a run's slices into parts of at most SlicePartBytes of JSON each
// (a single slice larger than that travels alone).
func SplitSlices(all []TenantSlice) [][]TenantSlice {
	var parts [][]TenantSlice
	var cur []TenantSlice
	size := 0
	for _, s := range all {
		b, _ := json.Marshal(s)
		if len(cur) > 0 && size+len(b)+1 > SlicePartBytes {
			parts = append(parts, cur)
			cur, size = nil, 0
		}
		cur = append(cur, s)
		size += len(b) + 1
	}
	if len(cur) > 0 {
		parts = append(parts, cur)
	}
	return parts
}

// DecodeSlices reads a slices event.
func DecodeSlices(data []byte) (Slices, error) {
	var s Slices
	if err := decodeObject(data, &s); err != nil {
		return Slices{}, err
	}
	if s.RunID == "" || s.JobName == "" || s.Parts < 1 || s.Part < 0 || s.Part >= s.Parts {
		return Slices{}, fmt.Errorf("%w: a slices event needs run_id, job_name and a part of its parts", ErrInvalidPayload)
	}
	for i, t := range s.Tenants {
		if !isUUID(t.TenantID) {
			return Slices{}, fmt.Errorf("%w: slice %d has no tenant_id", ErrInvalidPayload, i)
		}
		if err := CheckText("error_message", t.ErrorMessage, MaxErrorMessageLen); err != nil {
			return Slices{}, err
		}
		if err := checkErrors("errors", t.Errors); err != nil {
			return Slices{}, err
		}
		if err := checkValue("results", any(t.Results), 0); err != nil {
			return Slices{}, err
		}
	}
	return s, nil
}

// CleanJSON makes a service's own payload storable: a NUL or another control
// character anywhere in its strings becomes U+FFFD (encoding/json writes them as
// \u00XX escapes; it already turns invalid UTF-8 into U+FFFD). Payloads without such
// an escape are returned as they are, which is nearly always.
func CleanJSON(data []byte) []byte {
	if !bytes.Contains(data, []byte(`\u000`)) && !bytes.Contains(data, []byte(`\u001`)) && bytes.IndexByte(data, 0x7f) < 0 {
		return data
	}
	var v any
	if json.Unmarshal(data, &v) != nil {
		return data
	}
	out, err := json.Marshal(cleanValue(v, 0))
	if err != nil {
		return data
	}
	return out
}

// DecodeResult reads a result event.
func DecodeResult(data []byte) (Result, error) {
	var r Result
	if err := decodeObject(data, &r); err != nil {
		return Result{}, err
	}
	if r.JobName == "" || r.Status == "" {
		return Result{}, fmt.Errorf("%w: a result needs job_name and status", ErrInvalidPayload)
	}
	if r.Status != StatusRejected && r.RunID == "" {
		return Result{}, fmt.Errorf("%w: a run result needs run_id", ErrInvalidPayload)
	}
	if err := r.checkText(); err != nil {
		return Result{}, err
	}
	return r, nil
}

// checkText holds a result's words to what PostgreSQL stores and a page shows.
func (r Result) checkText() error {
	for _, f := range []struct {
		field, v string
		max      int
	}{
		{"job_name", r.JobName, 100}, {"status", r.Status, 20}, {"run_id", r.RunID, 100},
		{"error_message", r.ErrorMessage, MaxErrorMessageLen}, {"error_details", r.ErrorDetails, MaxErrorDetailsLen},
		{"requested_by", r.RequestedBy, MaxRequestedByLen}, {"reason", r.Reason, MaxReasonLen},
		{"trigger_id", r.TriggerID, 200}, {"instance", r.Instance, 200}, {"trigger", r.Trigger, 20}, {"source", r.Source, 20},
	} {
		if err := CheckText(f.field, f.v, f.max); err != nil {
			return err
		}
	}
	if err := checkErrors("errors", r.Errors); err != nil {
		return err
	}
	for i, t := range r.Triggers {
		if err := t.checkText(fmt.Sprintf("triggers[%d]", i)); err != nil {
			return err
		}
	}
	return checkValue("results", any(r.Results), 0)
}

func (t TriggerRef) checkText(field string) error {
	for _, f := range []struct {
		name, v string
		max     int
	}{{"id", t.ID, 200}, {"requested_by", t.RequestedBy, MaxRequestedByLen}, {"reason", t.Reason, MaxReasonLen}} {
		if err := CheckText(field+"."+f.name, f.v, f.max); err != nil {
			return err
		}
	}
	return nil
}

func checkErrors(field string, errs []string) error {
	if len(errs) > MaxErrorsListed {
		return fmt.Errorf("%w: %s lists %d problems, more than %d", ErrInvalidPayload, field, len(errs), MaxErrorsListed)
	}
	for i, e := range errs {
		if err := CheckText(fmt.Sprintf("%s[%d]", field, i), e, MaxErrorLen); err != nil {
			return err
		}
	}
	return nil
}

// DecodeStatus reads a status event.
func DecodeStatus(data []byte) (Status, error) {
	var s Status
	if err := decodeObject(data, &s); err != nil {
		return Status{}, err
	}
	if s.JobName == "" || s.State == "" {
		return Status{}, fmt.Errorf("%w: a status needs job_name and state", ErrInvalidPayload)
	}
	for _, f := range []struct {
		field, v string
		max      int
	}{
		{"job_name", s.JobName, 100}, {"state", s.State, 20}, {"run_id", s.RunID, 100}, {"trigger_id", s.TriggerID, 200},
		{"requested_by", s.RequestedBy, MaxRequestedByLen}, {"reason", s.Reason, MaxReasonLen}, {"instance", s.Instance, 200},
	} {
		if err := CheckText(f.field, f.v, f.max); err != nil {
			return Status{}, err
		}
	}
	return s, nil
}

// DecodeRunOrder reads a run order.
func DecodeRunOrder(data []byte) (RunOrder, error) {
	var o RunOrder
	if err := decodeObject(data, &o); err != nil {
		return RunOrder{}, err
	}
	if o.RunID == "" || o.JobName == "" {
		return RunOrder{}, fmt.Errorf("%w: a run order needs run_id and job_name", ErrInvalidPayload)
	}
	return o, nil
}

// Summary is the one line a person reads in a toast: the guide's words.
func (r Result) Summary() string {
	switch r.Status {
	case StatusSuccess:
		return "Job executed successfully" + headline(r)
	case StatusRejected:
		return "Trigger rejected - " + r.ErrorMessage
	default:
		return "Job execution failed - Check logs for details"
	}
}

// headline is the figure a toast names, in the catalog's words for the job.
func headline(r Result) string {
	job, ok := catalog.Lookup(r.JobName)
	if !ok {
		return ""
	}
	if figure, ok := job.ToastFigure(r.Results); ok {
		return " - " + figure
	}
	return ""
}
