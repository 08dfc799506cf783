package worker

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the runtime's Prometheus series. One set serves every worker in a process.
type Metrics struct {
	runs     *prometheus.CounterVec
	triggers *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
	resent   *prometheus.CounterVec
	stuck    *prometheus.CounterVec
	dropped  *prometheus.CounterVec
	retries  *prometheus.CounterVec
	// lastSuccess is when each job last succeeded in this process.
	lastSuccess *prometheus.GaugeVec
}

// NewMetrics registers the series with reg (nil: not exported). Registering twice with
// the same registry reuses the series already there.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gstjobs_job_runs_total", Help: "Finished job runs by job and status.",
		}, []string{"job", "status"}),
		triggers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gstjobs_job_triggers_total", Help: "Schedule slots and triggers taken in, by outcome (new, coalesced, rejected).",
		}, []string{"job", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gstjobs_job_run_duration_seconds", Help: "Job run duration.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"job"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gstjobs_job_runs_in_flight", Help: "Job runs executing in this process.",
		}, []string{"job"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gstjobs_job_last_success_timestamp_seconds", Help: "When the job last succeeded (Unix seconds), as the worker that ran it saw it; take the max over replicas.",
		}, []string{"job"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gstjobs_job_retries_total", Help: "Retries queued for runs that failed for a temporary reason.",
		}, []string{"job"}),
		resent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gstjobs_job_orders_resent_total", Help: "Run orders the sweep sent again for queued runs that had not started.",
		}, []string{"job"}),
		stuck: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gstjobs_job_runs_stuck_total", Help: "Queued runs still not started StuckAfter after the sweep began sending their order again (once per run and process).",
		}, []string{"job"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gstjobs_job_orders_dropped_total", Help: "Duplicate run orders dropped: on the latest record their run was neither queued nor current.",
		}, []string{"job"}),
	}
	if reg != nil {
		m.runs = register(reg, m.runs)
		m.retries = register(reg, m.retries)
		m.lastSuccess = register(reg, m.lastSuccess)
		m.triggers = register(reg, m.triggers)
		m.duration = register(reg, m.duration)
		m.inFlight = register(reg, m.inFlight)
		m.resent = register(reg, m.resent)
		m.stuck = register(reg, m.stuck)
		m.dropped = register(reg, m.dropped)
	}
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			if existing, ok := already.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}
