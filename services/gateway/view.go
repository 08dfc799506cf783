package gateway

import (
	"maps"
	"regexp"
	"time"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobstate"
)

// What a viewer may see of a run is a pure function of the event and the viewer: the
// events carry the firms a run covers (Scope), who asked (each trigger's Source and
// TenantID) and each firm's own results (slices). Nothing here reads the database or
// a bucket, so the live feed goes on whatever PostgreSQL is doing.
//
// A firm's people see the runs that did their firm's work, and of each run their own
// slice alone: its results, its problems, its status. Of the triggers they see the
// schedule, their own people (by name, with the reason), the platform operator and
// developers' clients (by what they are, not by what they typed); another firm's
// people are not there at all. The platform operator sees everything.

// Words for those a firm's people see by what they are.
const (
	PlatformOperator = "the platform operator"
	DeveloperClient  = "a developer's client"
)

// Viewer is whom a view is for: a firm (TenantID) or the platform operator.
type Viewer struct {
	TenantID string
	Operator bool
}

// key groups viewers that see the same thing: one firm, or the operators.
func (v Viewer) key() string {
	if v.Operator {
		return "*operator"
	}
	return v.TenantID
}

// covered: does the scope include the viewer's firm? An event with no scope comes
// from before runs had one; a firm sees it without anyone's words.
func (v Viewer) covered(s *events.Scope) bool {
	return v.Operator || (s != nil && s.Covers(v.TenantID))
}

// viewRef is one trigger as the viewer may see it.
func viewRef(t events.TriggerRef, v Viewer) (events.TriggerRef, bool) {
	if v.Operator {
		return t, true
	}
	anon := events.TriggerRef{ID: t.ID, Kind: t.Kind, Source: t.Source, Slot: t.Slot, At: t.At}
	switch {
	case t.Kind == events.KindSchedule, t.Kind == events.KindRetry:
		return anon, true
	case t.Source == events.SourceAPI && t.Operator:
		anon.Operator, anon.RequestedBy = true, PlatformOperator
		return anon, true
	case t.Source == events.SourceAPI && t.TenantID != "" && t.TenantID == v.TenantID:
		return t, true
	case t.Source == events.SourceAPI:
		return events.TriggerRef{}, false // another firm's person
	case t.Source == events.SourceNATS:
		anon.RequestedBy = DeveloperClient
		return anon, true
	default:
		// No source: a trigger from before sources were recorded. Its words might be
		// anyone's, so none are shown.
		return anon, true
	}
}

func viewRefs(refs []events.TriggerRef, v Viewer) []events.TriggerRef {
	if refs == nil {
		return nil
	}
	out := make([]events.TriggerRef, 0, len(refs))
	for _, t := range refs {
		if seen, ok := viewRef(t, v); ok {
			out = append(out, seen)
		}
	}
	return out
}

// firstWords are the name and reason a view shows for a run: its first trigger the
// viewer may see.
func firstWords(refs []events.TriggerRef) (trigger, source, requestedBy, reason, triggerID string) {
	if len(refs) == 0 {
		return "", "", "", "", ""
	}
	t := refs[0]
	return t.Kind, t.Source, t.RequestedBy, t.Reason, t.ID
}

// viewResult is a run as the viewer may see it, given the viewer's slice (nil if the
// run published none for the firm). ok is false when the run did not cover the firm.
func viewResult(r events.Result, slice *events.TenantSlice, v Viewer) (events.Result, bool) {
	if v.Operator {
		return r, true
	}
	if r.Status == events.StatusRejected || !v.covered(r.Scope) {
		return events.Result{}, false
	}
	out := events.Result{
		RunID: r.RunID, JobName: r.JobName, Status: r.Status, ExecutionTimeMS: r.ExecutionTimeMS,
		Results: map[string]any{}, Errors: nil, Slot: r.Slot, Attempt: r.Attempt,
		StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Instance: r.Instance,
		RetryOf: r.RetryOf, SeriesAttempt: r.SeriesAttempt, NextRetry: r.NextRetry,
	}
	out.Triggers = viewRefs(r.Triggers, v)
	out.Trigger, out.Source, out.RequestedBy, out.Reason, out.TriggerID = firstWords(out.Triggers)
	if out.Trigger == "" {
		out.Trigger = r.Trigger
	}
	switch {
	case slice != nil:
		out.Results = maps.Clone(slice.Results)
		out.Errors = slice.Errors
		if slice.Status != "" {
			out.Status = slice.Status
		}
		if out.Status == events.StatusFailed {
			out.ErrorMessage = orDefault(slice.ErrorMessage, r.ErrorMessage)
			out.ErrorDetails, out.DetailsPublic = firmDetails(r)
		}
	case r.Status == events.StatusFailed:
		// Failed before any firm's part was computed: failed for every covered firm,
		// with the run's words, which name no firm.
		out.ErrorMessage = r.ErrorMessage
		out.ErrorDetails, out.DetailsPublic = firmDetails(r)
	default:
		// A successful run whose slice for this firm is not here (a gateway that
		// started in the middle of the run's events): the numbers are in the history.
		out.Results = nil
	}
	return out, true
}

// DetailsWithheld replaces technical details that may quote someone's data.
const DetailsWithheld = "The technical details of this failure are kept for the platform operator."

// firmDetails is a failure's technical details as a firm's people see them: those that
// cannot quote anyone's data (a connection refused, a timeout) without the database's
// user, name and addresses a failed connection names (withoutServer); the rest withheld.
// The platform operator reads them whole.
func firmDetails(r events.Result) (string, bool) {
	if r.ErrorDetails == "" {
		return "", r.DetailsPublic
	}
	if r.DetailsPublic {
		return withoutServer(r.ErrorDetails), true
	}
	return DetailsWithheld, false
}

// What pgx writes of the server a connection failed to reach: the user and the database
// ("failed to connect to `user=… database=…`:"), each address it tried ("host:port
// (host): ", or a unix socket's "/dir/.s.PGSQL.port (/dir): "), and the dial ("dial tcp
// host:port: ", "dial unix /dir/.s.PGSQL.port: ").
var (
	connectTarget = regexp.MustCompile("failed to connect to `[^`]*`:")
	triedAddress  = regexp.MustCompile(`(^|\s)(\S+:\d+|/\S+) \([^)]*\): `)
	dialTarget    = regexp.MustCompile(`\bdial (tcp[46]?|unix) \S+: `)
)

// withoutServer removes from details what they say of the deployment's database server.
func withoutServer(details string) string {
	details = connectTarget.ReplaceAllString(details, "failed to connect to the database:")
	details = triedAddress.ReplaceAllString(details, "$1")
	return dialTarget.ReplaceAllString(details, "dial $1: ")
}

// viewStatus is a live status as the viewer may see it.
func viewStatus(s events.Status, v Viewer) (events.Status, bool) {
	if v.Operator {
		return s, true
	}
	if s.State == events.StateMissed {
		// A slot no ticker fired names no one, and concerns the firms it was for: every
		// firm (no scope), or a group of firms that share a zone and a time of day.
		if s.Scope != nil && !s.Scope.Covers(v.TenantID) {
			return events.Status{}, false
		}
		out := s
		out.Scope = nil
		return out, true
	}
	if !v.covered(s.Scope) {
		return events.Status{}, false
	}
	out := s
	out.Scope = nil
	ref, ok := viewRef(events.TriggerRef{
		ID: s.TriggerID, Kind: s.Trigger, Source: s.Source, TenantID: s.TenantID,
		RequestedBy: s.RequestedBy, Reason: s.Reason, Slot: s.Slot,
	}, v)
	out.TenantID = ""
	if ok {
		out.RequestedBy, out.Reason = ref.RequestedBy, ref.Reason
	} else {
		out.RequestedBy, out.Reason = "", ""
	}
	return out, true
}

// viewRunInfo is a queued or running run as the viewer may see it; nil if it is not
// for the viewer's firm.
func viewRunInfo(ri *jobstate.RunInfo, v Viewer) *jobstate.RunInfo {
	if ri == nil {
		return nil
	}
	if v.Operator {
		return ri
	}
	scope := ri.Scope
	if scope.Empty() {
		scope = events.ScopeAll() // queued before runs had scopes: the worker runs it for all
	}
	if !scope.Covers(v.TenantID) {
		return nil
	}
	c := *ri
	c.Scope = events.Scope{}
	c.Triggers = viewRefs(ri.Triggers, v)
	c.Trigger, _, c.RequestedBy, c.Reason, _ = firstWords(c.Triggers)
	if c.Trigger == "" {
		c.Trigger = ri.Trigger
	}
	return &c
}

// RetryView is a retry waiting for its time, as a card shows it.
type RetryView struct {
	At          time.Time `json:"at"`
	Attempt     int       `json:"attempt"`
	MaxAttempts int       `json:"max_attempts"`
	Of          string    `json:"of"`
	Cause       string    `json:"cause,omitempty"`
}

// viewRetry is the waiting retry if it is for the viewer's firm.
func viewRetry(rt *jobstate.Retry, v Viewer) *RetryView {
	if rt == nil || (!v.Operator && !rt.Scope.Covers(v.TenantID)) {
		return nil
	}
	return &RetryView{At: rt.At, Attempt: rt.Attempt, MaxAttempts: rt.MaxAttempts, Of: rt.Of, Cause: rt.Cause}
}

// viewConfig says whether a change of the config bucket concerns the viewer: a job's
// own key (a pause for everyone, the schedule) concerns all, a firm's key that firm.
func viewConfig(key string, v Viewer) (job, tenant string, ok bool) {
	job, tenant = jobstate.SplitConfigKey(key)
	if _, known := catalog.Lookup(job); !known {
		return "", "", false
	}
	return job, tenant, tenant == "" || v.Operator || tenant == v.TenantID
}
