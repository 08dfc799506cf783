package ticker

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
)

// slowJS is a JetStream whose first publish on subject takes until the clock has moved
// by d (as a slow NATS, a retry or a paused process would).
type slowJS struct {
	jetstream.JetStream
	subject string
	clock   *clockwork.FakeClock
	d       time.Duration
	once    sync.Once
}

func (s *slowJS) Publish(ctx context.Context, subject string, data []byte, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if subject == s.subject {
		s.once.Do(func() { s.clock.Advance(s.d) })
	}
	return s.JetStream.Publish(ctx, subject, data, opts...)
}

// Tried: the 02:30 slot of the SLA check takes 15 minutes of the clock to publish, so
// the 02:45 slot comes due while the ticker is still settling 02:30.
// Must hold: 02:45 is published at once, not left for the wake after it (03:00), and
// each slot once.
func TestASlotDueWhileSettlingIsNotLeftForTheNextWake(t *testing.T) {
	h := newHarness(t, "2026-03-10T02:29:30Z")
	job := catalog.CheckSLAAndOverdue
	slow := &slowJS{subject: events.ScheduleSubject(job), clock: h.clock, d: 15 * time.Minute}
	h.start("ticker-a", func(c *Config) { slow.JetStream = c.JS; c.JS = slow })
	h.advanceTo("2026-03-10T02:30:00Z")
	deadline := time.Now().Add(10 * time.Second)
	for h.stored(job) < 2 && time.Now().Before(deadline) {
		h.waitIdle()
	}
	if now := h.clock.Now().UTC(); now.Before(at("2026-03-10T02:45:00Z")) || !now.Before(at("2026-03-10T03:00:00Z")) {
		t.Fatalf("the clock is at %s; the test means it to be between the two slots", now)
	}
	wantSlots(t, h.drain(), job, "2026-03-10T02:30:00Z", "2026-03-10T02:45:00Z")
}
