// Command sla runs the SLA & Overdue Check and the Automation Health Check.
package main

import (
	_ "time/tzdata"

	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/services/sla"
)

func main() { jobservice.Main("sla", sla.Jobs) }
