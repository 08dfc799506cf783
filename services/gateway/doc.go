// Package gateway is the system's front door. It persists every job result to audit_log
// (exactly once, acking only after the row is committed), serves the HTTP API and the
// dashboard, answers triggers for jobs that do not exist, and pushes live status to
// browsers over websockets: a full snapshot on connect, then every change.
//
// Several gateways may run at once: they share one durable consumer for persistence
// (each result is written by one of them, and the row's dedupe key makes a repeat a
// no-op), and each subscribes to every live event for its own websocket clients.
package gateway
