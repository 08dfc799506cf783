package bus

import (
	"sync"
	"time"

	"github.com/lexhq/gstjobs/internal/events"
)

// MaxRejectionSubjects bounds the subjects whose rejections one process keeps a sample
// of per minute; past it rejections are counted in metrics and logs only, so a flood of
// made-up job names stores nothing.
const MaxRejectionSubjects = 20

// Rejections keeps the answers to triggers that could not be read (or name no job) to
// at most one stored sample per subject per minute per process, with the count: the
// first rejection of a subject in a minute is published at once (whoever sent it sees
// the reason), the others of that minute only counted, and when the minute is over
// the count is published once more as the minute's final word. Message ids make each
// publish idempotent; the audit log keeps one row per subject and minute whose count is
// the sum of every process's.
type Rejections struct {
	instance string
	mu       sync.Mutex
	minutes  map[rejectionKey]*rejection
	dropped  map[time.Time]int
}

type rejectionKey struct {
	subject string
	minute  time.Time
}

type rejection struct {
	sample events.Result
	count  int
}

// NewRejections keeps the samples of one process, named instance in their message ids.
func NewRejections(instance string) *Rejections {
	return &Rejections{instance: instance, minutes: map[rejectionKey]*rejection{}, dropped: map[time.Time]int{}}
}

// Note counts a rejection on subject. It returns the sample to publish now (its Count,
// Minute, Subject and Instance set) with its message id, or ok false when this
// minute's sample of the subject was published already or too many subjects were.
func (r *Rejections) Note(subject string, res events.Result, now time.Time) (sample events.Result, msgID string, ok bool) {
	minute := now.UTC().Truncate(time.Minute)
	k := rejectionKey{subject, minute}
	r.mu.Lock()
	defer r.mu.Unlock()
	if x := r.minutes[k]; x != nil {
		x.count++
		return events.Result{}, "", false
	}
	subjects := 0
	for key := range r.minutes {
		if key.minute.Equal(minute) {
			subjects++
		}
	}
	if subjects >= MaxRejectionSubjects {
		r.dropped[minute]++
		return events.Result{}, "", false
	}
	res.Count, res.Minute, res.Subject, res.Instance = 1, minute, subject, r.instance
	r.minutes[k] = &rejection{sample: res, count: 1}
	return res, RejectionMsgID(subject, minute, r.instance, false), true
}

// Due returns the final counts of the minutes that are over (only for subjects
// rejected more than once) with their message ids, and how many rejections were not
// sampled, and forgets those minutes.
func (r *Rejections) Due(now time.Time) (finals []events.Result, ids []string, dropped int) {
	current := now.UTC().Truncate(time.Minute)
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, x := range r.minutes {
		if !k.minute.Before(current) {
			continue
		}
		delete(r.minutes, k)
		if x.count > 1 {
			f := x.sample
			f.Count = x.count
			finals = append(finals, f)
			ids = append(ids, RejectionMsgID(k.subject, k.minute, r.instance, true))
		}
	}
	for m, n := range r.dropped {
		if m.Before(current) {
			dropped += n
			delete(r.dropped, m)
		}
	}
	return finals, ids, dropped
}

// RejectionMsgID names a sample or a minute's final count.
func RejectionMsgID(subject string, minute time.Time, instance string, final bool) string {
	id := "rejected:" + subject + ":" + minute.UTC().Format("2006-01-02T15:04Z") + ":" + instance
	if final {
		id += ":final"
	}
	return id
}
