package ticker

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lexhq/gstjobs/internal/catalog"
)

// Outcomes of a slot, as counted by gstjobs_ticker_slots_total.
const (
	outcomePublished = "published" // this ticker published it
	outcomeLostRace  = "lost_race" // another ticker (or an earlier life of this one) had it
	outcomeMissed    = "missed"    // too late to fire, or never published within max age
	outcomePaused    = "paused"    // the job was paused
)

type metrics struct {
	slots *prometheus.CounterVec
}

// newMetrics registers with reg (nil: not exported). Tickers sharing a registry share
// the series, as a registry is per process.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{slots: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gstjobs_ticker_slots_total",
		Help: "Schedule slots settled by this ticker, by job and outcome (published, lost_race, missed, paused).",
	}, []string{"job", "outcome"})}
	if reg != nil {
		if err := reg.Register(m.slots); err != nil {
			var already prometheus.AlreadyRegisteredError
			existing, ok := m.slots, false
			if errors.As(err, &already) {
				existing, ok = already.ExistingCollector.(*prometheus.CounterVec)
			}
			if !ok {
				panic(err)
			}
			m.slots = existing
		}
	}
	// Every series exists from the start, so a rate() or an alert on missed sees a 0
	// rather than nothing.
	for _, name := range catalog.Names() {
		for _, o := range []string{outcomePublished, outcomeLostRace, outcomeMissed, outcomePaused} {
			m.slots.WithLabelValues(name, o)
		}
	}
	return m
}
