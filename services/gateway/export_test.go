package gateway

// DropAcksAfterCommit makes the audit consumer skip the acks after each commit, as a
// crash right after the commit would, while drop returns true.
func DropAcksAfterCommit(cfg *Config, drop func() bool) { cfg.dropAcks = drop }
