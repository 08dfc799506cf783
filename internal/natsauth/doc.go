// Package natsauth is who may do what on NATS, in one place: a user per service with
// only the subjects it needs, the user that declares JetStream's streams, buckets and
// consumers, and the developer user that any other client gets. The same table makes
// the users of the embedded server of `make run` and of the tests (ServerUsers) and the
// production server's configuration (WriteServerConfig, deploy/nats-server.conf), and
// the README's table says it in words.
//
// What an attacker who reaches the NATS port could do without it: publish a result
// (an audit_log row and a card's last run), a status (a trigger row in a real person's
// name), a run order, a Run Now on jobs.trigger.<job>.api (whose payload names a
// verified person of any firm), or write jobs_config (pause a job with no audit row).
// With it, only the job's own service publishes a job's run orders, statuses, slices
// and results, only the ticker its slots, only the gateway Run Now and jobs_config,
// and every other client may trigger on jobs.trigger.<job>, watch jobs.>, and read.
//
// # Declaration in one place
//
// The streams, buckets and durable consumers are declared by one user, Setup
// (`natsadmin declare` in production, cmd/devstack under `make run`, natstest in the
// tests), and no service may create, update or delete any of them: otherwise every
// service would hold the rights to reconfigure every stream and consumer (change the
// subjects JOBS captures, or the gateway's consumer), and a compromised job service
// could undo the permissions of the others. Services check at start that what they
// use exists (bus.Check) and say how to declare it when it does not. The only
// consumers services create are the ephemeral ordered consumers of key-value watches.
//
// # How the subjects were found
//
// From nats-server's JetStream API (server/jetstream_api.go: $JS.API.<verb>…, acks
// and flow control in server/consumer.go) and what nats.go sends for each call the
// services make (jetstream: Consumer, Consume, Publish, KeyValue, Get, Create,
// Update, Watch), then checked against a real server: every test connection made with
// natstest.Server.ConnectAs fails its test if the server refuses it anything, and the
// end-to-end suite runs every service as its own user.
//
// Replies come to each client's inbox (_INBOX.>). Every user may subscribe there and no
// user may publish there, so no one can forge a reply; what a reply carries is
// readable by the developer user anyway (jobs.> and JetStream reads).
package natsauth
