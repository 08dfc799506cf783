// Command reminders runs the hearing reminder and deadline alert jobs.
package main

import (
	_ "time/tzdata" // JOBS_TIMEZONE works in containers without a zone database

	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/services/reminders"
)

func main() { jobservice.Main("reminders", reminders.Jobs) }
