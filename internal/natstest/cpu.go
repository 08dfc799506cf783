package natstest

import (
	"syscall"
	"time"
)

// ProcessCPU is the CPU time this process has used, user and system: in a benchmark
// whose services and NATS server run in its own process (Start), their work together,
// not PostgreSQL's. A figure the machine's other work disturbs far less than latency.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
