// Package bus connects to NATS and declares, idempotently, everything the system keeps
// in JetStream: the work-queue stream of schedule, trigger and run messages, the event
// stream of statuses and results, the key-value buckets, and every durable consumer.
//
// One user declares, with Ensure: the setup user (`natsadmin declare`, cmd/devstack,
// natstest), whose NATS permissions allow it; services may not, and Check at start that
// what they use exists (internal/natsauth says why). Declarations are CreateOrUpdate
// with the same configuration each time, so a second declaration changes nothing.
// With a NATS cluster, Replicas > 1 replicates every stream and bucket.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
)

// Names of what lives in JetStream.
const (
	StreamJobs   = "JOBS"
	StreamEvents = "JOBS_EVENTS"

	// BucketTicker holds, per job, the last slot a ticker claimed.
	BucketTicker = "jobs_ticker"
	// BucketRuns holds, per job, the run in progress and the run queued behind it.
	BucketRuns = "jobs_runs"
	// BucketConfig holds, per job, operator overrides: paused, schedule.
	BucketConfig = "jobs_config"

	ConsumerGatewayEvents = "gateway-events"
)

// TriggerConsumer reads a job's schedule and trigger messages.
func TriggerConsumer(job string) string { return "trigger-" + job }

// RunConsumer reads a job's run orders, one at a time across all replicas.
func RunConsumer(job string) string { return "run-" + job }

// Timings shared by the worker runtime and the consumers it reads.
const (
	// RunAckWait is how long a run order stays with one executor without a heartbeat
	// before JetStream hands it to another.
	RunAckWait = 30 * time.Second
	// HeartbeatEvery keeps a running order in progress well inside RunAckWait.
	HeartbeatEvery = 10 * time.Second
	// RunMaxDeliver bounds how often a run is retried after its executor died.
	RunMaxDeliver = 5
)

// Limits of what JetStream keeps (see README, "Streams and their limits").
const (
	jobsMaxMsgs    = 200_000
	jobsMaxBytes   = 256 << 20
	eventsMaxMsgs  = 10_000_000
	eventsMaxBytes = 4 << 30
	bucketMaxBytes = 64 << 20
)

// Options tune the declarations.
type Options struct {
	// Replicas of each stream and bucket: 1 on one server, 3 on a cluster.
	Replicas int
	// EventsMaxAge is how long statuses and results stay replayable.
	EventsMaxAge time.Duration
}

func (o Options) withDefaults() Options {
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.EventsMaxAge <= 0 {
		o.EventsMaxAge = 7 * 24 * time.Hour
	}
	return o
}

// Connect dials NATS with reconnects forever, so a NATS restart is a pause, not an outage.
// opts add the client's credentials and TLS (natsauth.Credentials.Options). Whatever
// the server refuses the connection later (a permissions violation) is logged as an
// error naming the subject: a service that lacks a permission says so.
func Connect(ctx context.Context, url, name string, log *slog.Logger, opts ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	all := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrl()) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				log.Error("NATS refused this service a permission (see the README's NATS users)", "err", err)
				return
			}
			if sub != nil {
				log.Warn("nats", "subject", sub.Subject, "err", err)
				return
			}
			log.Warn("nats", "err", err)
		}),
	}
	nc, err := nats.Connect(url, append(all, opts...)...)
	if err != nil {
		if errors.Is(err, nats.ErrAuthorization) {
			return nil, nil, fmt.Errorf("bus: NATS at %s refused the connection: give it this service's credentials as the server's users have them (check NATS_USER and NATS_PASSWORD, NATS_NKEY or NATS_CREDS): %w", url, err)
		}
		return nil, nil, fmt.Errorf("bus: cannot connect to NATS at %s (check NATS_URL, and NATS_TLS_CA for a server with TLS): %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	// Fail at start, not at the first publish, when the server has no JetStream.
	infoCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(infoCtx); err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("bus: NATS at %s has no JetStream for this user (start nats-server with -js; with users, give this one its permissions: deploy/nats-server.conf): %w", url, err)
	}
	return nc, js, nil
}

// Ensure declares the streams, buckets and consumers for every job in the catalog.
func Ensure(ctx context.Context, js jetstream.JetStream, opts Options) error {
	opts = opts.withDefaults()
	jobs := catalog.Names()

	var jobSubjects []string
	for _, j := range jobs {
		jobSubjects = append(jobSubjects, events.ScheduleSubject(j), events.TriggerSubject(j), events.APITriggerSubject(j), events.RunSubject(j))
	}
	// Work-queue retention: a message lives until its consumer acks it. Only known jobs'
	// subjects are captured; a trigger for an unknown job is answered by the gateway.
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamJobs,
		Description: "Schedule slots, triggers and run orders, consumed once each",
		Subjects:    jobSubjects,
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    opts.Replicas,
		Duplicates:  10 * time.Minute,
		MaxAge:      7 * 24 * time.Hour,
		// Work waiting is small (triggers coalesce); a queue this full is a flood, and
		// new messages are refused (the publisher is told) rather than queued work lost.
		MaxMsgs:    jobsMaxMsgs,
		MaxBytes:   jobsMaxBytes,
		MaxMsgSize: 256 << 10,
		Discard:    jetstream.DiscardNew,
	}); err != nil {
		return fmt.Errorf("bus: declare stream %s: %w", StreamJobs, err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamEvents,
		Description: "Job statuses, firms' slices and results, replayable for the gateway",
		Subjects:    []string{events.PrefixStatus + ">", events.PrefixSlices + ">", events.PrefixResult + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    opts.Replicas,
		Duplicates:  10 * time.Minute,
		MaxAge:      opts.EventsMaxAge,
		// Events are replayable for a week, within these sizes; past them the oldest go
		// first (the gateway persists events within seconds; its pending count alerts
		// long before a backlog could reach them).
		MaxMsgs:    eventsMaxMsgs,
		MaxBytes:   eventsMaxBytes,
		MaxMsgSize: 1 << 20,
		Discard:    jetstream.DiscardOld,
	}); err != nil {
		return fmt.Errorf("bus: declare stream %s: %w", StreamEvents, err)
	}

	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamDead,
		Description: "Dead letters: messages a consumer terminated, with the reason, for an operator to read and replay",
		Subjects:    []string{PrefixDead + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    opts.Replicas,
		Duplicates:  10 * time.Minute,
		MaxAge:      deadMaxAge,
		MaxMsgs:     deadMaxMsgs,
		MaxBytes:    deadMaxSize,
		Discard:     jetstream.DiscardOld,
	}); err != nil {
		return fmt.Errorf("bus: declare stream %s: %w", StreamDead, err)
	}

	for _, b := range []jetstream.KeyValueConfig{
		{Bucket: BucketTicker, Description: "last slot claimed per job", History: 5},
		{Bucket: BucketRuns, Description: "current and queued run per job", History: 1},
		{Bucket: BucketConfig, Description: "paused flag and schedule override per job", History: 10},
	} {
		b.Replicas = opts.Replicas
		b.Storage = jetstream.FileStorage
		b.MaxBytes, b.MaxValueSize = bucketMaxBytes, 1<<20
		if _, err := js.CreateOrUpdateKeyValue(ctx, b); err != nil {
			return fmt.Errorf("bus: declare bucket %s: %w", b.Bucket, err)
		}
	}

	for _, j := range jobs {
		if _, err := js.CreateOrUpdateConsumer(ctx, StreamJobs, jetstream.ConsumerConfig{
			Durable:        TriggerConsumer(j),
			Description:    "intake of " + j + " schedule slots and triggers",
			FilterSubjects: []string{events.ScheduleSubject(j), events.TriggerSubject(j), events.APITriggerSubject(j)},
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        10 * time.Second,
			MaxDeliver:     int(IntakeBound.Attempts) + 5, // the worker dead-letters at the bound; this is a backstop
			MaxAckPending:  256,
		}); err != nil {
			return fmt.Errorf("bus: declare consumer %s: %w", TriggerConsumer(j), err)
		}
		// MaxAckPending 1 is what makes runs of one job serial across every replica:
		// JetStream hands out the next order only when the previous one is acked.
		if _, err := js.CreateOrUpdateConsumer(ctx, StreamJobs, jetstream.ConsumerConfig{
			Durable:       RunConsumer(j),
			Description:   "serial executor of " + j,
			FilterSubject: events.RunSubject(j),
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       RunAckWait,
			MaxDeliver:    RunMaxDeliver + 1,
			MaxAckPending: 1,
		}); err != nil {
			return fmt.Errorf("bus: declare consumer %s: %w", RunConsumer(j), err)
		}
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, StreamEvents, jetstream.ConsumerConfig{
		Durable:        ConsumerGatewayEvents,
		Description:    "gateway: results, firms' slices and triggers into audit_log",
		FilterSubjects: []string{events.PrefixResult + ">", events.PrefixSlices + ">", events.PrefixStatus + ">"},
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        30 * time.Second,
		MaxDeliver:     int(AuditBound.Attempts) + 5, // the gateway dead-letters at the bound; this is a backstop
		// Batches of up to 1,000 events in flight while the previous one commits.
		MaxAckPending: 4096,
	}); err != nil {
		return fmt.Errorf("bus: declare consumer %s: %w", ConsumerGatewayEvents, err)
	}
	return nil
}

// ErrNotDeclared is a stream, bucket or consumer that a service uses and that has not
// been declared (Ensure): services do not declare, the setup user does.
var ErrNotDeclared = errors.New("not declared on NATS")

// ConsumerRef names a durable consumer of a stream.
type ConsumerRef struct{ Stream, Name string }

// Check reports, at a service's start, every bucket and consumer it uses that does not
// exist, with how to declare them. It only reads their info: a service's NATS user
// may not declare (natsauth).
func Check(ctx context.Context, js jetstream.JetStream, buckets []string, consumers []ConsumerRef) error {
	var missing []string
	for _, b := range buckets {
		if _, err := js.KeyValue(ctx, b); err != nil {
			if !errors.Is(err, jetstream.ErrBucketNotFound) {
				return fmt.Errorf("bus: open bucket %s: %w", b, err)
			}
			missing = append(missing, "bucket "+b)
		}
	}
	for _, c := range consumers {
		if _, err := js.Consumer(ctx, c.Stream, c.Name); err != nil {
			if !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("bus: consumer %s of stream %s: %w", c.Name, c.Stream, err)
			}
			missing = append(missing, "consumer "+c.Name+" of stream "+c.Stream)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("bus: %s %w: declare the streams, buckets and consumers first, as the setup user (`natsadmin declare`; make run and the compose stacks do it)", strings.Join(missing, ", "), ErrNotDeclared)
	}
	return nil
}

// Buckets opens the three key-value buckets. Ensure must have run.
type Buckets struct {
	Ticker, Runs, Config jetstream.KeyValue
}

func OpenBuckets(ctx context.Context, js jetstream.JetStream) (Buckets, error) {
	var b Buckets
	var err error
	for name, dst := range map[string]*jetstream.KeyValue{BucketTicker: &b.Ticker, BucketRuns: &b.Runs, BucketConfig: &b.Config} {
		if *dst, err = js.KeyValue(ctx, name); err != nil {
			return Buckets{}, fmt.Errorf("bus: open bucket %s: %w", name, err)
		}
	}
	return b, nil
}

// IsConflict reports a lost compare-and-set: another writer got there first. A
// replicated (R>1) stream reports it with its own code (10164, also sent while another
// write of the same key is in flight), not the 10071 of a single server.
func IsConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) || isWrongLastSeq(err)
}

func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// ConsumeOptions are the options of every long-lived Consume, with extra after them. A
// pull request waits on the consumer's leader; when that leader's node is lost, the
// client finds out only by missing two of the request's heartbeats. With nats.go's
// defaults (requests of 30s, a heartbeat every 15s) a consumer whose leader was lost
// stood still for up to 30s after its new leader was elected; with these, for 2s.
func ConsumeOptions(extra ...jetstream.PullConsumeOpt) []jetstream.PullConsumeOpt {
	return append([]jetstream.PullConsumeOpt{jetstream.PullExpiry(5 * time.Second), jetstream.PullHeartbeat(time.Second)}, extra...)
}
