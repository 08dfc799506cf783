// Package ticker turns each job's cron schedule into jobs.schedule.<job> events: one
// per slot, however many tickers run and however often they restart.
//
// # Slots
//
// A slot is an instant of the job's effective schedule (the config bucket's override,
// else the catalog default) read in JOBS_TIMEZONE: "0 8 * * *" in Asia/Kolkata is
// 02:30 UTC. Slots always come from the schedule, never from "now + interval", so a
// late wake-up publishes the slot it was late for and the next one stays on the grid.
//
// # One publish per slot
//
// The ticker bucket keeps, per job, the latest slot a ticker settled and how:
//
//	{"slot":"2026-03-10T02:30:00Z","state":"claimed","by":"ticker-a","at":"..."}
//
// A ticker fires a slot by moving that record forward with a compare-and-set (Create
// when there is none, Update at the revision it read). Only the winner publishes, with
// the Nats-Msg-Id <job>@<slot>, then marks the record "published". A ticker that dies
// between claim and publish leaves a "claimed" record; once that claim is older than
// staleClaim, the next ticker to look publishes the slot again. The message id makes
// that second publish harmless: JetStream stores it once, and the worker answers a
// repeated trigger id with the run it already gave it.
//
// # Catch-up
//
// Start settles every job at once, as the loop does at every slot: the latest slot at
// or before now is fired if it is within the job's MaxAge, recorded "missed" (and a
// missed status event published) if it is older, recorded "paused" if the job is
// paused. Only the latest slot counts; a backlog is never replayed. A job with no
// record at all (first start ever) records the latest slot as "baseline" and fires
// nothing until the next one.
//
// Slots that came before the operator's last config change (jobstate.Config.UpdatedAt)
// are not owed: a resumed job does not catch up what fell due while it was paused, and a
// new schedule starts with its next slot, not one in the past.
//
// # Daily jobs: each firm's own hours
//
// A daily job whose firms keep their own hours (catalog.Job.FirmHours, while its
// schedule is once a day at one time) has one slot per firm per day: the firm's time of
// day (its config key <job>.<tenant>, else the job's hour) in the firm's zone (Firms:
// tenants.timezone, else JOBS_TIMEZONE). Firms that share a zone and a time of day form
// a group; the ticker publishes one event per group and slot, for exactly its firms
// (daily.go): the job's hour in JOBS_TIMEZONE as the slot of every firm but the others,
// under the slot's own id, the others as <job>@<slot>#<zone> <HH:MM>.
//
// The record then also keeps each firm's last run of the day when it is not the
// default group's slot, and the claimed events (pending), published by whoever finds the
// claim exactly as claimed. A firm is due when its latest slot falls on a later day of
// its own calendar than its last run, and no earlier than the operator's last change:
// never twice on one of its days, no day skipped when its hour moves (decideDaily).
// A wake-up with nothing due reads nothing: the config comes from the watch, the record
// from the last read or write, and every decision is still a compare-and-set on it.
package ticker
