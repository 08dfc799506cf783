package gateway

// DropAcksAfterCommit makes the audit consumer skip the acks after each commit, as a
// crash right after the commit would, while drop returns true.
func DropAcksAfterCommit(cfg *Config, drop func() bool) { cfg.dropAcks = drop }

// OnAuditCommit lets a benchmark hear the audit_log dedupe keys of each batch the audit
// consumer commits, right after the commit.
func OnAuditCommit(cfg *Config, f func(keys []string)) { cfg.committed = f }
