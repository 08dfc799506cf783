// Package events declares, once, every subject the system uses and the payload that
// travels on it, with the encoding and validation beside them.
//
//	jobs.schedule.<job>  ticker → workers   Schedule   (Nats-Msg-Id: <job>@<slot RFC 3339>)
//	jobs.trigger.<job>   anyone → workers   Trigger    (optional JSON; empty body is valid)
//	jobs.run.<job>       workers → workers  RunOrder   (internal: one message per run)
//	jobs.status.<job>    workers → gateway  Status     (queued, running, heartbeat, missed)
//	jobs.result.<job>    workers → gateway  Result     (exactly one per run, or a rejection)
package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Subject prefixes. A job's subject is the prefix followed by its name.
const (
	PrefixSchedule = "jobs.schedule."
	PrefixTrigger  = "jobs.trigger."
	PrefixRun      = "jobs.run."
	PrefixStatus   = "jobs.status."
	PrefixResult   = "jobs.result."
)

func ScheduleSubject(job string) string { return PrefixSchedule + job }
func TriggerSubject(job string) string  { return PrefixTrigger + job }
func RunSubject(job string) string      { return PrefixRun + job }
func StatusSubject(job string) string   { return PrefixStatus + job }
func ResultSubject(job string) string   { return PrefixResult + job }

// JobFromSubject returns the <job> token of a jobs.<kind>.<job> subject.
func JobFromSubject(subject string) string {
	parts := strings.SplitN(subject, ".", 3)
	if len(parts) != 3 {
		return ""
	}
	return parts[2]
}

// Trigger kinds, as recorded in audit_log.details.trigger.
const (
	KindSchedule = "schedule"
	KindManual   = "manual"
)

// Schedule is what the ticker publishes for one slot of a job's schedule.
type Schedule struct {
	JobName string    `json:"job_name"`
	Slot    time.Time `json:"slot"`
}

// ScheduleMsgID is the JetStream message id of a slot: publishing it twice stores it once.
func ScheduleMsgID(job string, slot time.Time) string {
	return job + "@" + slot.UTC().Format(time.RFC3339)
}

// Limits on what a person may type into a trigger.
const (
	MaxReasonLen      = 500
	MaxRequestedByLen = 200
)

// Trigger is a request to run a job now: Run Now on the dashboard or a developer's
// `nats pub`.
type Trigger struct {
	Reason      string `json:"reason,omitempty"`
	RequestedBy string `json:"requested_by,omitempty"`
}

// ErrInvalidPayload is wrapped by every decoding error, so a consumer can tell a message
// that can never be processed (terminate it) from a transient failure (retry it).
var ErrInvalidPayload = errors.New("invalid payload")

// DecodeTrigger validates a trigger body. An empty body is a trigger with no reason.
func DecodeTrigger(data []byte) (Trigger, error) {
	var t Trigger
	if len(bytes.TrimSpace(data)) == 0 {
		return t, nil
	}
	if err := decodeObject(data, &t); err != nil {
		return Trigger{}, err
	}
	return t, t.Validate()
}

// Validate checks the limits a trigger must respect.
func (t Trigger) Validate() error {
	if utf8.RuneCountInString(t.Reason) > MaxReasonLen {
		return fmt.Errorf("%w: reason is longer than %d characters", ErrInvalidPayload, MaxReasonLen)
	}
	if utf8.RuneCountInString(t.RequestedBy) > MaxRequestedByLen {
		return fmt.Errorf("%w: requested_by is longer than %d characters", ErrInvalidPayload, MaxRequestedByLen)
	}
	return nil
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
	return s, nil
}

func decodeObject(data []byte, v any) error {
	trimmed := bytes.TrimSpace(data)
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
type TriggerRef struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
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
type Status struct {
	RunID       string `json:"run_id,omitempty"`
	JobName     string `json:"job_name"`
	State       string `json:"state"`
	Trigger     string `json:"trigger,omitempty"`
	TriggerID   string `json:"trigger_id,omitempty"`
	RequestedBy string `json:"requested_by,omitempty"`
	Reason      string `json:"reason,omitempty"`
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

// Result is the final word on a run, and exactly the `details` of its audit_log row.
type Result struct {
	RunID           string         `json:"run_id,omitempty"`
	JobName         string         `json:"job_name"`
	Status          string         `json:"status"`
	ExecutionTimeMS int64          `json:"execution_time_ms"`
	Results         map[string]any `json:"results"`
	Errors          []string       `json:"errors"`
	ErrorMessage    string         `json:"error_message,omitempty"`
	ErrorDetails    string         `json:"error_details,omitempty"`
	Trigger         string         `json:"trigger,omitempty"`
	RequestedBy     string         `json:"requested_by,omitempty"`
	Reason          string         `json:"reason,omitempty"`
	TriggerID       string         `json:"trigger_id,omitempty"`
	Triggers        []TriggerRef   `json:"triggers,omitempty"`
	Slot            time.Time      `json:"slot,omitzero"`
	Attempt         int            `json:"attempt,omitempty"`
	StartedAt       time.Time      `json:"started_at,omitzero"`
	FinishedAt      time.Time      `json:"finished_at"`
	Instance        string         `json:"instance,omitempty"`
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
	return r, nil
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

func headline(r Result) string {
	type fig struct{ key, words string }
	byJob := map[string][]fig{
		"check-sla-and-overdue":      {{"overdue_tasks", "overdue tasks found"}},
		"send-hearing-reminders":     {{"notifications_sent", "reminders sent"}},
		"capture-analytics-snapshot": {{"snapshots_written", "metrics captured"}},
		"check-upcoming-deadlines":   {{"alerts_sent", "deadline alerts sent"}},
		"automation-health-check":    {{"health", "automation"}},
	}
	for _, f := range byJob[r.JobName] {
		v, ok := r.Results[f.key]
		if !ok {
			continue
		}
		if s, isString := v.(string); isString {
			return " - " + f.words + " " + s
		}
		return fmt.Sprintf(" - %v %s", v, f.words)
	}
	return ""
}
