package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lexhq/gstjobs/internal/events"
)

// Dead letters: a message a consumer can never process, or could not process within
// its bound of retries, is terminated (so it blocks nothing and is not retried
// forever) and kept, with its reason, in the JOBS_DEAD stream, where an operator reads
// it (`nats stream view JOBS_DEAD`, or the gateway's GET /api/dead-letters) and can
// replay it (POST /api/dead-letters/{seq}/replay, or `nats pub` of its subject and
// body by a service's user).
const (
	StreamDead  = "JOBS_DEAD"
	PrefixDead  = "jobs.dead."
	deadMaxAge  = 30 * 24 * time.Hour
	deadMaxMsgs = 100_000
	deadMaxSize = 256 << 20
)

// Headers of a dead letter. Its body is the message's own.
const (
	HeaderDeadSubject    = "Gstjobs-Dead-Subject"
	HeaderDeadConsumer   = "Gstjobs-Dead-Consumer"
	HeaderDeadClass      = "Gstjobs-Dead-Class"
	HeaderDeadReason     = "Gstjobs-Dead-Reason"
	HeaderDeadStream     = "Gstjobs-Dead-Stream"
	HeaderDeadSeq        = "Gstjobs-Dead-Seq"
	HeaderDeadDeliveries = "Gstjobs-Dead-Deliveries"
	HeaderDeadAt         = "Gstjobs-Dead-At"
	// HeaderDeadMsgID keeps the message's own Nats-Msg-Id, so a replay can be told apart.
	HeaderDeadMsgID = "Gstjobs-Dead-Msg-Id"
)

// Why a message is dead.
const (
	// DeadPermanent: it can never be processed (it does not decode; the database refuses
	// its values).
	DeadPermanent = "permanent"
	// DeadExhausted: it failed for temporary reasons more times than its consumer allows.
	DeadExhausted = "exhausted"
)

// DeadSubject is where a consumer's dead letters go.
func DeadSubject(consumer string) string { return PrefixDead + consumer }

// Permanent tells a failure that will never pass (terminate and dead-letter the
// message) from one that may (retry with backoff): a payload that does not decode, a
// value PostgreSQL can never store (SQLSTATE class 22, data exception), a constraint
// the row breaks (class 23; a unique key's conflict is handled by ON CONFLICT before it
// can fail), a statement PostgreSQL cannot run (class 42). Connections, timeouts,
// serialization failures, a server shutting down or out of resources are temporary.
func Permanent(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, events.ErrInvalidPayload) {
		return true
	}
	var sqlErr interface{ SQLState() string }
	if errors.As(err, &sqlErr) {
		switch sqlErr.SQLState()[:2] {
		case "22", "23", "42":
			return true
		}
		return false
	}
	return false
}

// RetryDelay is the backoff for the nth delivery of a message that failed for a
// temporary reason: 1 s doubling, at most max.
func RetryDelay(delivered uint64, max time.Duration) time.Duration {
	if delivered < 1 {
		delivered = 1
	}
	return min(time.Second<<min(delivered-1, 20), max)
}

// Bound is how long a consumer keeps retrying a message that fails for temporary
// reasons: at most Attempts deliveries, backing off up to MaxDelay between them.
type Bound struct {
	Attempts uint64
	MaxDelay time.Duration
}

// Bounds of the consumers. The audit consumer outlasts a long database outage (about
// a day, then its events go to JOBS_DEAD for a replay); intake and executors a NATS
// or key-value hiccup of a quarter of an hour.
var (
	AuditBound    = Bound{Attempts: 3000, MaxDelay: 30 * time.Second}
	IntakeBound   = Bound{Attempts: 40, MaxDelay: 30 * time.Second}
	ExecutorBound = Bound{Attempts: RunMaxDeliver + 1, MaxDelay: 30 * time.Second}
)

// Failed handles a message its consumer could not process: a permanent failure, or a
// temporary one past the bound, is kept in JOBS_DEAD and terminated (dead is true);
// any other is handed back with a backoff delay.
func (d *DeadLetters) Failed(ctx context.Context, msg jetstream.Msg, consumer string, b Bound, err error) (dead bool, sendErr error) {
	var delivered uint64 = 1
	if md, mdErr := msg.Metadata(); mdErr == nil {
		delivered = md.NumDelivered
	}
	switch {
	case Permanent(err):
		return true, d.Send(ctx, msg, consumer, DeadPermanent, err.Error())
	case delivered >= b.Attempts:
		return true, d.Send(ctx, msg, consumer, DeadExhausted, fmt.Sprintf("failed %d times, the last: %v", delivered, err))
	default:
		return false, msg.NakWithDelay(RetryDelay(delivered, b.MaxDelay))
	}
}

// DeadLetters sends messages to JOBS_DEAD and counts them
// (gstjobs_dead_letters_total{consumer, class}).
type DeadLetters struct {
	js    jetstream.JetStream
	count *prometheus.CounterVec
	now   func() time.Time
}

// NewDeadLetters counts into reg (nil: not exported; registering twice reuses the series).
func NewDeadLetters(js jetstream.JetStream, reg prometheus.Registerer) *DeadLetters {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gstjobs_dead_letters_total",
		Help: "Messages terminated and kept in JOBS_DEAD, by consumer and class (permanent, exhausted).",
	}, []string{"consumer", "class"})
	if reg != nil {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if errors.As(err, &already) {
				c = already.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	}
	return &DeadLetters{js: js, count: c, now: time.Now}
}

// Send keeps msg in JOBS_DEAD with the reason, then terminates it. If the dead letter
// cannot be stored (JetStream unavailable), the message is handed back for a later
// delivery instead: nothing is lost.
func (d *DeadLetters) Send(ctx context.Context, msg jetstream.Msg, consumer, class, reason string) error {
	h := nats.Header{}
	h.Set(HeaderDeadSubject, msg.Subject())
	h.Set(HeaderDeadConsumer, consumer)
	h.Set(HeaderDeadClass, class)
	h.Set(HeaderDeadReason, events.CleanText(reason, 2000))
	h.Set(HeaderDeadAt, d.now().UTC().Format(time.RFC3339Nano))
	id := ""
	if md, err := msg.Metadata(); err == nil {
		h.Set(HeaderDeadStream, md.Stream)
		h.Set(HeaderDeadSeq, strconv.FormatUint(md.Sequence.Stream, 10))
		h.Set(HeaderDeadDeliveries, strconv.FormatUint(md.NumDelivered, 10))
		id = fmt.Sprintf("dead:%s:%d", md.Stream, md.Sequence.Stream)
	}
	if v := msg.Headers().Get(jetstream.MsgIDHeader); v != "" {
		h.Set(HeaderDeadMsgID, v)
	}
	out := &nats.Msg{Subject: DeadSubject(consumer), Header: h, Data: msg.Data()}
	pubCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var opts []jetstream.PublishOpt
	if id != "" {
		opts = append(opts, jetstream.WithMsgID(id))
	}
	if _, err := d.js.PublishMsg(pubCtx, out, opts...); err != nil {
		_ = msg.NakWithDelay(time.Second)
		return fmt.Errorf("bus: keep dead letter of %s: %w", consumer, err)
	}
	d.count.WithLabelValues(consumer, class).Inc()
	return msg.TermWithReason(events.CleanText(class+": "+reason, 200))
}
