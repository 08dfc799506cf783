// Package worker is the runtime every job service runs its jobs on.
//
// A job is a Func of (ctx, Run) returning a Report or an error. The runtime reads two
// durable JetStream consumers per job:
//
//   - intake (trigger-<job>): schedule slots and triggers. Each one is answered at once
//     with the run it starts or joins: if a run is already queued, the trigger joins it
//     (coalescing); otherwise it queues a new run and publishes a run order. The answer
//     is a `queued` status event naming the run, and the decision is a compare-and-set on
//     the job's key in the runs bucket, so any number of replicas agree.
//   - executor (run-<job>): run orders, with MaxAckPending 1, so JetStream itself keeps
//     runs of one job serial across every replica. The order is kept in progress by
//     heartbeats while the job runs; if the executor dies, the order is redelivered
//     after bus.RunAckWait and another replica runs it again (jobs are idempotent).
//
// Each run publishes `running` and `heartbeat` statuses and exactly one result (message
// id result:<run>, so a re-publish is stored once). Errors, panics and timeouts become a
// failed result with error_message and error_details; nothing a job does crashes the
// service. A payload that can never be read gets a `rejected` result and is terminated.
package worker
