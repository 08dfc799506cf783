package worker

import "github.com/lexhq/gstjobs/internal/jobstate"

// WrapRunsBucket lets a test stand between the worker and its runs bucket, e.g. to serve
// the reads a replica that is behind would.
func WrapRunsBucket(c *Config, wrap func(jobstate.Bucket) jobstate.Bucket) { c.wrapRuns = wrap }
