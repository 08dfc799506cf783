package gateway

import "time"

// DropAcksAfterCommit makes the audit consumer skip the acks after each commit, as a
// crash right after the commit would, while drop returns true.
func DropAcksAfterCommit(cfg *Config, drop func() bool) { cfg.dropAcks = drop }

// OnAuditCommit lets a benchmark hear the audit_log dedupe keys of each batch the audit
// consumer commits, right after the commit.
func OnAuditCommit(cfg *Config, f func(keys []string)) { cfg.committed = f }

// OnFanOut lets a benchmark hear, for each result, how many viewer groups got a frame
// and how long building, encoding and queueing them took.
func OnFanOut(cfg *Config, f func(groups int, took time.Duration)) { cfg.fannedOut = f }

// Sockets is how many dashboards are connected to g.
func Sockets(g *Gateway) int { return g.hub.count() }
