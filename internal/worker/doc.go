// Package worker is the runtime every job service runs its jobs on.
//
// A job is a Func of (ctx, Run) returning a Report or an error. The runtime reads two
// durable JetStream consumers per job:
//
//   - intake (trigger-<job>): schedule slots and triggers. Each one is answered at once
//     with the run it starts or joins (jobstate.Runs.Join): if a run is already queued,
//     the trigger joins it (coalescing); otherwise it queues a new run and publishes a
//     run order. The answer is a `queued` status event naming the run.
//   - executor (run-<job>): run orders, with MaxAckPending 1, so JetStream itself keeps
//     runs of one job serial across every replica. Each order is claimed
//     (jobstate.Runs.Claim): the queued run it names starts, a redelivery of the order
//     the current run started with resumes it, anything else is a duplicate and is acked
//     unrun. The order is kept in progress by heartbeats while the job runs; if the
//     executor dies, the order is redelivered after bus.RunAckWait and another replica
//     runs it again (jobs are idempotent).
//
// No decision stands on a stale read. The runs bucket is replicated, and a
// jetstream.KeyValue Get is a direct get that any replica answers, a follower that has
// not applied the latest write included: an executor once dropped the order of a run
// queued 6 ms earlier as a "duplicate" and the run stayed queued for good. So every
// transition, even one that changes nothing, such as a drop, is applied with
// jobstate.Decide, which writes the record back with a compare-and-set on the revision
// it read: a decision taken on a record that is not the latest fails that check and is
// taken again on a fresh read. A decision reads the process's own last write of the key
// when it has one (jobstate.LastWrites: on one worker, the claim reads what the intake
// wrote, the finish what the claim wrote, and no read goes to the server), and the
// stream leader otherwise, after a lost compare-and-set above all
// (jobstate.LeaderReads), so that a follower that is behind is never asked again and
// again. The transitions themselves are pure functions in package jobstate; the worker
// only publishes and acks around them.
//
// No queued run is left behind. Every SweepEvery (5s) each worker reads, from the
// leader, the runs record of each of its jobs (jobstate.Runs.NeedsResend): a run queued
// for longer than ResendAfter (10s) with nothing executing ahead of it (no current run,
// or one whose executor has been silent for twice the ack wait) gets its order sent
// again, every ResendAfter while that lasts. The re-sent order has the run id as its
// message id, so within the stream's 10-minute dedupe window it is stored once; after
// it, it is a second message, which Claim drops once the run has started from the
// first (the current run records the stream sequence of its order). A run still
// waiting StuckAfter (2m) after a worker began re-sending its order is logged as an
// error and counted in gstjobs_job_runs_stuck_total, once per run and process.
//
// Each run publishes `running` and `heartbeat` statuses and exactly one result (message
// id result:<run>, so a re-publish is stored once). What decides nothing is not waited
// for in turn: the intake sends the run order and its answer together and acks the
// trigger once both are stored; the job starts without waiting for the running
// status's ack; a run's slices and result are sent back to back, in that order, and
// their acks awaited together. The decisions (the compare-and-sets) are each awaited
// before anything that depends on them is sent. Errors, panics and timeouts become a
// failed result with error_message and error_details; nothing a job does crashes the
// service. A payload that can never be read gets a `rejected` result and is terminated.
package worker
