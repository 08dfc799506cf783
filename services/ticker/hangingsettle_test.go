package ticker

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
)

// hangingJS holds every publish on subject hang until a publish on subject until has
// been stored, or for at most limit of real time (then timedOut is set).
type hangingJS struct {
	jetstream.JetStream
	hang, until string
	limit       time.Duration
	released    chan struct{}
	once        sync.Once
	timedOut    atomic.Bool
}

func (h *hangingJS) Publish(ctx context.Context, subject string, data []byte, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	switch subject {
	case h.hang:
		select {
		case <-h.released:
		case <-time.After(h.limit):
			h.timedOut.Store(true)
		}
	case h.until:
		ack, err := h.JetStream.Publish(ctx, subject, data, opts...)
		h.once.Do(func() { close(h.released) })
		return ack, err
	}
	return h.JetStream.Publish(ctx, subject, data, opts...)
}

// Tried: at 08:00 in Kolkata (02:30 UTC) the SLA check and the hearing reminders are
// both due, and the SLA check's publish hangs (a slow NATS) until the hearing
// reminders' slot is stored.
// Must hold: the hearing reminders' slot is published while the SLA check's hangs, not
// after it (the jobs are settled side by side: the SLA check comes first in the
// catalog, so one after the other the hang would last its whole limit), and each slot
// is published once.
func TestAHangingJobDelaysNoOther(t *testing.T) {
	h := newHarness(t, "2026-03-10T02:29:30Z")
	js := &hangingJS{hang: events.ScheduleSubject(catalog.CheckSLAAndOverdue), until: events.ScheduleSubject(catalog.SendHearingReminders),
		limit: 5 * time.Second, released: make(chan struct{})}
	h.start("ticker-a", func(c *Config) { js.JetStream = c.JS; c.JS = js })
	h.advanceTo("2026-03-10T02:30:00Z")
	if js.timedOut.Load() {
		t.Fatal("the hearing reminders' slot was published only after the SLA check's hanging publish gave up: one job's turn held up another's")
	}
	s := h.drain()
	wantSlots(t, s, catalog.CheckSLAAndOverdue, "2026-03-10T02:30:00Z")
	wantSlots(t, s, catalog.SendHearingReminders, "2026-03-10T02:30:00Z")
}
