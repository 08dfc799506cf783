// Package jobstate holds the small per-job records kept in JetStream key-value buckets
// and the compare-and-set loops every writer uses on them.
//
// Runs bucket: which run of a job is executing and which one is queued behind it; the
// worker runtime writes it, the gateway reads it for its snapshot. Its transitions (Join,
// Claim, Beat, Finish, NeedsResend in runs.go) are pure functions of the record that
// return what they decided; the worker applies them with Decide, which checks every
// decision, even one that changes nothing, with a compare-and-set on the revision read,
// so a decision may read from anywhere (LeaderReads, LastWrites): one taken on a record
// that is not the latest never stands.
// Config bucket: the operator's pause flag and schedule override, and each firm's pause
// and time of day; the gateway writes it, the ticker and the workers read it.
package jobstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/events"
)

// RunInfo is one run as the runs bucket knows it.
type RunInfo struct {
	RunID       string    `json:"run_id"`
	Trigger     string    `json:"trigger"`
	RequestedBy string    `json:"requested_by,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Slot        time.Time `json:"slot,omitzero"`
	QueuedAt    time.Time `json:"queued_at"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	HeartbeatAt time.Time `json:"heartbeat_at,omitzero"`
	Attempt     int       `json:"attempt,omitempty"`
	// OrderSeq is the stream sequence of the run order the current run was started
	// with: a redelivery of that message resumes the run, another message for the same
	// run is a duplicate.
	OrderSeq uint64              `json:"order_seq,omitempty"`
	Triggers []events.TriggerRef `json:"triggers"`
	// Scope is the firms the run is for: the union of its triggers' scopes.
	Scope events.Scope `json:"scope"`
	// A retry of a failed run names the series' first run (RetryOf), which attempt of
	// the series it is (SeriesAttempt: 1 for the first run), and when the series began
	// (SeriesStart: retries stop once the job's expected max age from it has passed).
	RetryOf       string    `json:"retry_of,omitempty"`
	SeriesAttempt int       `json:"series_attempt,omitempty"`
	SeriesStart   time.Time `json:"series_start,omitzero"`
}

// Retry is the next attempt of a run that failed for a temporary reason, due at At.
type Retry struct {
	Of          string              `json:"of"`
	Attempt     int                 `json:"attempt"`
	MaxAttempts int                 `json:"max_attempts"`
	At          time.Time           `json:"at"`
	SeriesStart time.Time           `json:"series_start"`
	Trigger     string              `json:"trigger"`
	RequestedBy string              `json:"requested_by,omitempty"`
	Reason      string              `json:"reason,omitempty"`
	Slot        time.Time           `json:"slot,omitzero"`
	Triggers    []events.TriggerRef `json:"triggers"`
	Scope       events.Scope        `json:"scope"`
	// Cause is the failure's error_message.
	Cause string `json:"cause,omitempty"`
}

// MaxTriggersPerRun caps how many joined triggers a run remembers by name; a burst of
// thousands still coalesces, the list just stops growing.
const MaxTriggersPerRun = 100

// MaxRecent is how many answered triggers are remembered to make redelivery idempotent.
const MaxRecent = 200

// Answer links a trigger to the run that served it.
type Answer struct {
	TriggerID string `json:"trigger_id"`
	RunID     string `json:"run_id"`
}

// Runs is the value of a job's key in the runs bucket.
type Runs struct {
	Current *RunInfo `json:"current,omitempty"`
	Next    *RunInfo `json:"next,omitempty"`
	// Retry is the retry waiting for its time: the last run failed for a temporary
	// reason (see worker's retry policy).
	Retry *Retry `json:"retry,omitempty"`
	// Recent remembers which run answered each recent trigger, so that a trigger
	// redelivered after a crash gets the same answer instead of a second run.
	Recent []Answer `json:"recent,omitempty"`
}

// AnswerFor finds the run a trigger was already given.
func (r *Runs) AnswerFor(triggerID string) (string, bool) {
	for _, a := range r.Recent {
		if a.TriggerID == triggerID {
			return a.RunID, true
		}
	}
	return "", false
}

// Remember records an answer, keeping only the newest MaxRecent.
func (r *Runs) Remember(triggerID, runID string) {
	r.Recent = append(r.Recent, Answer{TriggerID: triggerID, RunID: runID})
	if n := len(r.Recent) - MaxRecent; n > 0 {
		r.Recent = r.Recent[n:]
	}
}

// ConfigKey is a job's key in the config bucket: the job's name for what holds for
// every firm (set by the platform operator), <job>.<tenant id> for one firm's own
// settings (set by its admins).
func ConfigKey(job, tenant string) string {
	if tenant == "" {
		return job
	}
	return job + "." + tenant
}

// SplitConfigKey is the inverse of ConfigKey.
func SplitConfigKey(key string) (job, tenant string) {
	job, tenant, _ = strings.Cut(key, ".")
	return job, tenant
}

// Config is the value of a job's key in the config bucket. The job's own key (the
// operator's) holds the pause for everyone and the schedule of every firm; a firm's key
// holds the firm's pause and, for a daily job, its own time of day (At, "07:30", read
// in the firm's time zone; "" keeps the job's default hour).
type Config struct {
	Paused    bool      `json:"paused"`
	Schedule  string    `json:"schedule,omitempty"`
	At        string    `json:"at,omitempty"`
	UpdatedBy string    `json:"updated_by,omitempty"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// Bucket is what jobstate needs of a key-value bucket. A jetstream.KeyValue is one; so
// is LeaderReads, whose Get never comes from a replica that is behind; a test may wrap
// either to serve what a lagging replica would.
type Bucket interface {
	Bucket() string
	Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error)
	Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error)
	Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error)
}

// Get reads a record; a missing key is the zero record at revision 0.
func Get[T any](ctx context.Context, kv Bucket, key string) (T, uint64, error) {
	var v T
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return v, 0, nil
	}
	if err != nil {
		return v, 0, fmt.Errorf("jobstate: get %s/%s: %w", kv.Bucket(), key, err)
	}
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		var zero T
		return zero, e.Revision(), fmt.Errorf("%w: %s/%s at revision %d: %v", ErrUndecodable, kv.Bucket(), key, e.Revision(), err)
	}
	return v, e.Revision(), nil
}

// ErrUndecodable is returned by Get, with the zero record and the key's revision, for a
// value that is not a record (written by hand, or by something that should not have).
// It must stop no one: readers take the zero record (and say so once), and Update and
// Decide write over it.
var ErrUndecodable = errors.New("jobstate: the value is not a record")

// ErrNoChange lets an update function say there is nothing to write.
var ErrNoChange = errors.New("jobstate: no change")

// Update applies fn to the current record and writes it back only if nobody wrote in
// between; on a conflict it reads again and retries. fn must be a pure function of its
// input, as it may run more than once. It returns the record as written (or as read, if
// fn returned ErrNoChange: that decision rests on the read alone; see Decide).
//
// Like Decide, it rides out a bucket whose leader is being elected (see retry).
func Update[T any](ctx context.Context, kv Bucket, key string, fn func(*T) error) (T, error) {
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, bus.AttemptTimeout)
		v, rev, err := Get[T](actx, kv, key)
		if err == nil || errors.Is(err, ErrUndecodable) {
			if err := fn(&v); err != nil {
				cancel()
				if errors.Is(err, ErrNoChange) {
					return v, nil
				}
				return v, err
			}
			if err = put(actx, kv, key, v, rev); err == nil {
				cancel()
				return v, nil
			}
		}
		cancel()
		if err := retry(ctx, err, attempt); err != nil {
			return v, err
		}
	}
}

// Decide applies decide to the latest record and writes the record back with a
// compare-and-set on the revision it read, even when decide changed nothing. A decision
// therefore stands only if it was taken on the latest record: one taken on a stale read
// (a replica behind the stream leader answered the get) or overtaken by another writer
// fails the compare-and-set and is taken again on a fresh read. decide must be a pure
// function of the record, as it may run more than once. Decide returns the decision and
// the record as written.
func Decide[T, D any](ctx context.Context, kv Bucket, key string, decide func(*T) D) (D, T, error) {
	for attempt := 0; ; attempt++ {
		var none D
		actx, cancel := context.WithTimeout(ctx, bus.AttemptTimeout)
		v, rev, err := Get[T](actx, kv, key)
		if err == nil || errors.Is(err, ErrUndecodable) {
			d := decide(&v)
			if err = put(actx, kv, key, v, rev); err == nil {
				cancel()
				return d, v, nil
			}
		}
		cancel()
		if err := retry(ctx, err, attempt); err != nil {
			return none, v, err
		}
	}
}

// retry says whether a round of Update or Decide that failed with err is tried again,
// after a pause: after a lost compare-and-set (backOff), and while the bucket cannot
// answer for a few seconds (bus.Unavailable), as when its stream leader's node was lost
// and a new leader is being elected. Each round's requests are bounded by
// bus.AttemptTimeout, so the round after the election comes within seconds, not at
// the end of the caller's deadline. A write whose answer was lost may have been
// stored: the next round reads it back and decides on it, as after a conflict. nil
// means try again; anything else ends the call with it.
func retry(ctx context.Context, err error, attempt int) error {
	switch {
	case bus.IsConflict(err):
		return backOff(ctx, attempt)
	case ctx.Err() == nil && bus.Unavailable(err):
		return bus.Pause(ctx)
	default:
		return err
	}
}

// put writes v if the key is still at rev (0: if it does not exist yet).
func put[T any](ctx context.Context, kv Bucket, key string, v T, rev uint64) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("jobstate: encode %s/%s: %w", kv.Bucket(), key, err)
	}
	if rev == 0 {
		_, err = kv.Create(ctx, key, data)
	} else {
		_, err = kv.Update(ctx, key, data, rev)
	}
	if err != nil {
		return fmt.Errorf("jobstate: write %s/%s: %w", kv.Bucket(), key, err)
	}
	return nil
}

// backOff waits a little before the next read after a lost compare-and-set: nothing
// the first two times (another writer got there first), then longer, so that a replica
// that keeps answering from behind is not asked in a tight loop.
func backOff(ctx context.Context, attempt int) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if attempt < 2 {
		return nil
	}
	return bus.Sleep(ctx, min(time.Duration(attempt-1)*10*time.Millisecond, 250*time.Millisecond))
}
