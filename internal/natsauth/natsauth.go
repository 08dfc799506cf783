package natsauth

import (
	"context"
	"slices"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
)

// The NATS users. Each service connects as its own; Setup declares what lives in
// JetStream; Developer is everyone else: the user of connections without credentials
// under `make run` (the server's no_auth_user), and in production a user of its own
// for people with the nats CLI.
const (
	Setup     = "setup"
	Ticker    = "ticker"
	SLA       = catalog.ServiceSLA
	Reminders = catalog.ServiceReminders
	Analytics = catalog.ServiceAnalytics
	Gateway   = "gateway"
	Developer = "developer"
)

// Users returns every user, in the order the README's table and the generated server
// configuration list them.
func Users() []string {
	return []string{Setup, Ticker, SLA, Reminders, Analytics, Gateway, Developer}
}

// Services returns the users that are services: each runs as one (cmd/devstack gives
// each in-process service its own connection).
func Services() []string {
	return []string{Ticker, SLA, Reminders, Analytics, Gateway}
}

// JetStream's subjects, as nats-server and nats.go name them (server/jetstream_api.go,
// server/consumer.go). The API prefix is the default one: no JetStream domain.
const (
	api   = "$JS.API."
	inbox = "_INBOX.>"
)

// kvStream is the stream behind a key-value bucket.
func kvStream(bucket string) string { return "KV_" + bucket }

// streams are every stream the system declares: its own two and the buckets'.
func streams() []string {
	return []string{bus.StreamJobs, bus.StreamEvents, bus.StreamDead, kvStream(bus.BucketTicker), kvStream(bus.BucketRuns), kvStream(bus.BucketConfig)}
}

// perms collects the subjects of one user.
type perms struct {
	pub, sub, denyPub, denySub []string
}

func (p *perms) publish(s ...string)   { p.pub = append(p.pub, s...) }
func (p *perms) subscribe(s ...string) { p.sub = append(p.sub, s...) }

// replies lets a client read the answers to its requests: JetStream API replies,
// publish acknowledgements, and the messages of its consumers, which are delivered
// to its inbox. No user may publish to an inbox, so no one can forge an answer.
func (p *perms) replies() { p.subscribe(inbox) }

// accountInfo is $JS.API.INFO: bus.Connect checks JetStream with it, the gateway's
// health too.
func (p *perms) accountInfo() { p.publish(api + "INFO") }

// consume is what reading a durable pull consumer takes: its info (jetstream.Consumer),
// pull requests, and acks, naks, progress and terms on the reply subject of each
// message. The server names that reply in the v1 form ($JS.ACK.<stream>.<consumer>.…)
// or, with its JetStream ack v2 feature on, $JS.ACK.<domain>.<account hash>.<stream>.
// <consumer>.…; both are allowed so that a server upgrade does not stop the services.
func (p *perms) consume(stream, consumer string) {
	p.publish(
		api+"CONSUMER.INFO."+stream+"."+consumer,
		api+"CONSUMER.MSG.NEXT."+stream+"."+consumer,
		"$JS.ACK."+stream+"."+consumer+".>",
		"$JS.ACK.*.*."+stream+"."+consumer+".>",
	)
}

// openBucket is jetstream.KeyValue: the info of the bucket's stream. bus.OpenBuckets
// opens all three buckets, so the ticker and the gateway open one they do not use.
func (p *perms) openBucket(bucket string) { p.publish(api + "STREAM.INFO." + kvStream(bucket)) }

// getKeys is jetstream.KeyValue.Get: a direct get of the key's last value, which any
// replica answers ($JS.API.DIRECT.GET.KV_<bucket>.$KV.<bucket>.<key>; buckets allow
// direct gets).
func (p *perms) getKeys(bucket string) {
	p.openBucket(bucket)
	p.publish(api + "DIRECT.GET." + kvStream(bucket) + ".>")
}

// getKeysFromLeader is jobstate.LeaderReads: the same read answered by the stream
// leader alone ($JS.API.STREAM.MSG.GET.KV_<bucket>), so no decision is taken on a
// follower's stale copy.
func (p *perms) getKeysFromLeader(bucket string) {
	p.openBucket(bucket)
	p.publish(api + "STREAM.MSG.GET." + kvStream(bucket))
}

// watchBucket is a key-value watch: an ordered push consumer that the client creates
// on the bucket's stream ($JS.API.CONSUMER.CREATE.KV_<bucket>.<name>.<filter>),
// creates again after a gap, deletes when the watch stops, and whose flow-control
// requests it answers on $JS.FC.… (v1 and v2 forms, as for acks). It delivers to the
// client's inbox.
func (p *perms) watchBucket(bucket string) {
	s := kvStream(bucket)
	p.openBucket(bucket)
	p.publish(
		api+"CONSUMER.CREATE."+s+".>",
		api+"CONSUMER.DELETE."+s+".*",
		"$JS.FC."+s+".>", "$JS.FC.*.*."+s+".>",
	)
}

// writeKeys is jetstream.KeyValue.Put, Create and Update of keys: a JetStream publish
// on the key's subject, acknowledged to the inbox.
func (p *perms) writeKeys(bucket string, keys ...string) {
	for _, k := range keys {
		p.publish("$KV." + bucket + "." + k)
	}
}

func (p *perms) permissions() *server.Permissions {
	out := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: dedupe(p.pub), Deny: dedupe(p.denyPub)},
		Subscribe: &server.SubjectPermission{Allow: dedupe(p.sub), Deny: dedupe(p.denySub)},
	}
	return out
}

func dedupe(s []string) []string {
	var out []string
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// Permissions returns what user may publish and subscribe to; nil for an unknown user.
// Every stream's and consumer's name, every job's subject, comes from bus, events and
// the catalog, so a new job or bucket changes the permissions with it.
func Permissions(user string) *server.Permissions {
	var p perms
	switch user {
	case Setup:
		setup(&p)
	case Ticker:
		ticker(&p)
	case SLA, Reminders, Analytics:
		jobService(&p, catalog.JobsOf(user))
	case Gateway:
		gateway(&p)
	case Developer:
		developer(&p)
	default:
		return nil
	}
	return p.permissions()
}

// setup declares the streams, buckets and consumers (bus.Ensure): creates and updates
// the system's streams (the buckets' included) and durable consumers, and nothing
// else: it can delete nothing, publish no message and read none.
func setup(p *perms) {
	p.replies()
	p.accountInfo()
	for _, s := range streams() {
		p.publish(api+"STREAM.CREATE."+s, api+"STREAM.UPDATE."+s)
	}
	// $JS.API.CONSUMER.CREATE.<stream>.<consumer>, with the filter subject after it
	// when there is one.
	consumer := func(stream, name string) {
		p.publish(api+"CONSUMER.CREATE."+stream+"."+name, api+"CONSUMER.CREATE."+stream+"."+name+".>")
	}
	for _, j := range catalog.Names() {
		consumer(bus.StreamJobs, bus.TriggerConsumer(j))
		consumer(bus.StreamJobs, bus.RunConsumer(j))
	}
	consumer(bus.StreamEvents, bus.ConsumerGatewayEvents)
}

// ticker publishes each job's slots and its missed slots, claims slots in its own
// bucket, and follows the operator's pauses and schedules.
func ticker(p *perms) {
	p.replies()
	p.accountInfo()
	for _, j := range catalog.Names() {
		p.publish(events.ScheduleSubject(j), events.StatusSubject(j))
	}
	p.getKeys(bus.BucketTicker)
	p.writeKeys(bus.BucketTicker, catalog.Names()...)
	p.getKeys(bus.BucketConfig)
	p.watchBucket(bus.BucketConfig)
	p.openBucket(bus.BucketRuns)
}

// jobService runs jobs: reads their intake and executor consumers, sends their run
// orders, publishes their statuses, slices and results, keeps their records in
// jobs_runs (read from the leader), and follows the firms' pauses in jobs_config.
// Nothing of another service's jobs.
func jobService(p *perms, jobs []string) {
	p.replies()
	p.accountInfo()
	for _, j := range jobs {
		p.consume(bus.StreamJobs, bus.TriggerConsumer(j))
		p.consume(bus.StreamJobs, bus.RunConsumer(j))
		p.publish(events.RunSubject(j), events.StatusSubject(j), events.SlicesSubject(j), events.ResultSubject(j))
		// What its consumers terminate, kept for an operator (bus.DeadLetters).
		p.publish(bus.DeadSubject(bus.TriggerConsumer(j)), bus.DeadSubject(bus.RunConsumer(j)))
	}
	p.getKeysFromLeader(bus.BucketRuns)
	p.writeKeys(bus.BucketRuns, jobs...)
	p.watchBucket(bus.BucketConfig)
}

// gateway persists events from its consumer, follows the live feed, sends Run Now on
// the .api subjects that name a verified person, answers triggers for jobs that do not
// exist with a rejection on their result subject (never a real job's), reads and
// watches runs, and reads, watches and writes the operator's and the firms' config.
func gateway(p *perms) {
	p.replies()
	p.accountInfo()
	p.consume(bus.StreamEvents, bus.ConsumerGatewayEvents)
	p.subscribe(events.PrefixStatus+">", events.PrefixSlices+">", events.PrefixResult+">")
	// Triggers of unknown jobs reach one gateway of the queue group (triggers.go).
	p.subscribe(events.PrefixTrigger + "> " + gatewayUnknownJobs)
	for _, j := range catalog.Names() {
		p.publish(events.APITriggerSubject(j))
		p.denyPub = append(p.denyPub, events.ResultSubject(j))
	}
	p.publish(events.ResultSubject("*"))
	// What its audit consumer terminates; the operator's dead letters (read, delete after
	// a replay, which runs a lost trigger or slot as the operator's Run Now on .api).
	p.publish(bus.DeadSubject(bus.ConsumerGatewayEvents))
	p.publish(api+"STREAM.INFO."+bus.StreamDead, api+"STREAM.MSG.GET."+bus.StreamDead, api+"STREAM.MSG.DELETE."+bus.StreamDead)
	// What an operator watches (opsmetrics.go): the streams' state and their consumers.
	for _, st := range []string{bus.StreamJobs, bus.StreamEvents} {
		p.publish(api+"STREAM.INFO."+st, api+"CONSUMER.LIST."+st)
	}
	// Sign-outs, heard by every gateway replica (sessions.go).
	p.publish(gatewaySignOuts)
	p.subscribe(gatewaySignOuts)
	p.getKeys(bus.BucketRuns)
	// A change of a run's record makes the dashboards' shared snapshots stale
	// (snapshots.go).
	p.watchBucket(bus.BucketRuns)
	p.getKeys(bus.BucketConfig)
	p.watchBucket(bus.BucketConfig)
	p.writeKeys(bus.BucketConfig, ">")
	p.openBucket(bus.BucketTicker)
}

// gatewayUnknownJobs is the queue group of the gateway's answers to unknown jobs.
const gatewayUnknownJobs = "gateway-unknown-jobs"

// gatewaySignOuts is where gateways tell each other of a sign-out (services/gateway).
const gatewaySignOuts = "gstjobs.gateway.signout"

// developer is anyone else: may trigger a job on the developers' subject (three
// tokens, so never the gateway's .api one), watch every job subject, and read
// JetStream's information and messages, and nothing else. It may not join the
// gateway's queue group, so it cannot take the triggers of unknown jobs from it.
func developer(p *perms) {
	p.replies()
	p.publish(events.PrefixTrigger + "*")
	p.subscribe("jobs.>")
	p.denySub = append(p.denySub, "jobs.> "+gatewayUnknownJobs)
	p.accountInfo()
	p.publish(
		api+"STREAM.NAMES", api+"STREAM.LIST", api+"STREAM.INFO.*", api+"STREAM.MSG.GET.*",
		api+"CONSUMER.NAMES.*", api+"CONSUMER.LIST.*", api+"CONSUMER.INFO.*.*",
		api+"DIRECT.GET.*", api+"DIRECT.GET.*.>",
	)
}

// Uses is what user needs declared before it starts: the buckets it opens and the
// durable consumers it reads. CheckDeclared checks them at the service's start.
func Uses(user string) (buckets []string, consumers []bus.ConsumerRef) {
	all := []string{bus.BucketTicker, bus.BucketRuns, bus.BucketConfig}
	switch user {
	case Ticker:
		return all, nil
	case SLA, Reminders, Analytics:
		for _, j := range catalog.JobsOf(user) {
			consumers = append(consumers, bus.ConsumerRef{Stream: bus.StreamJobs, Name: bus.TriggerConsumer(j)}, bus.ConsumerRef{Stream: bus.StreamJobs, Name: bus.RunConsumer(j)})
		}
		return []string{bus.BucketRuns, bus.BucketConfig}, consumers
	case Gateway:
		return all, []bus.ConsumerRef{{Stream: bus.StreamEvents, Name: bus.ConsumerGatewayEvents}}
	}
	return nil, nil
}

// CheckDeclared reports, at the start of the service that runs as user, whatever it
// uses that the setup user has not declared (bus.Check).
func CheckDeclared(ctx context.Context, js jetstream.JetStream, user string) error {
	buckets, consumers := Uses(user)
	return bus.Check(ctx, js, buckets, consumers)
}
