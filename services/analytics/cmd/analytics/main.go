// Command analytics runs the capture-analytics-snapshot job on the worker runtime.
package main

import (
	_ "time/tzdata" // JOBS_TIMEZONE resolves without tzdata in the container.

	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/services/analytics"
)

func main() { jobservice.Main("analytics", analytics.Jobs) }
