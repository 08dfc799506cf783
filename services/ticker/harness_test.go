package ticker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobstate"
	"github.com/lexhq/gstjobs/internal/natsauth"
	"github.com/lexhq/gstjobs/internal/natstest"
)

// TestMain fails the package if a ticker's loop, watcher or connection outlives its test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var kolkata = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		panic(err)
	}
	return loc
}()

// at parses an RFC 3339 instant; every instant in these tests is written in UTC.
func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// harness is one embedded JetStream server with the system's NATS users, one fake clock
// shared by every ticker of the test, and a subscription to everything under jobs.>.
// Tickers connect as the ticker user: a permission it lacks fails the test.
type harness struct {
	t       *testing.T
	srv     *natstest.Server
	clock   *clockwork.FakeClock
	msgs    <-chan *nats.Msg
	running int // tickers started and not stopped: each waits on the clock when idle
	marks   int
}

func newHarness(t *testing.T, now string) *harness {
	t.Helper()
	srv := natstest.StartWithAuth(t)
	return &harness{t: t, srv: srv, clock: clockwork.NewFakeClockAt(at(now)), msgs: natstest.Collect(t, srv.NC, "jobs.>")}
}

// start runs a ticker on its own connection, as a separate process would, and waits
// until it sleeps on the clock.
func (h *harness) start(instance string, opts ...func(*Config)) *Ticker {
	h.t.Helper()
	nc, js := h.srv.ConnectAs(h.t, natsauth.Ticker)
	cfg := Config{
		JS: js, NC: nc, Location: kolkata, Clock: h.clock, Instance: instance,
		Log:        slog.New(slog.NewTextHandler(h.t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: prometheus.NewRegistry(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	tk, err := New(cfg)
	if err != nil {
		h.t.Fatalf("New: %v", err)
	}
	tk.signals = &testSignals{applied: make(chan uint64, 64), firms: make(chan struct{}, 64)}
	if err := tk.Start(context.Background()); err != nil {
		h.t.Fatalf("Start %s: %v", instance, err)
	}
	h.t.Cleanup(tk.Stop)
	h.running++
	h.waitIdle()
	return tk
}

func (h *harness) stop(tk *Ticker) {
	tk.Stop()
	tk.Stop() // Stop is safe twice
	h.running--
}

// waitIdle returns once every running ticker has finished its turn and sleeps on the
// clock again.
func (h *harness) waitIdle() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.clock.BlockUntilContext(ctx, h.running); err != nil {
		h.t.Fatalf("expected %d ticker(s) waiting on the clock at %s, they never were: %v", h.running, h.clock.Now().UTC(), err)
	}
}

// advanceTo moves the clock to the instant once the tickers sleep, and waits until they
// have acted on it.
func (h *harness) advanceTo(instant string) {
	h.t.Helper()
	h.waitIdle()
	h.clock.Advance(at(instant).Sub(h.clock.Now()))
	h.waitIdle()
}

// scheduled is one jobs.schedule.<job> message as a subscriber saw it.
type scheduled struct {
	events.Schedule
	MsgID string
}

// seen is what arrived on jobs.> since the last drain.
type seen struct {
	schedules []scheduled
	statuses  []events.Status
}

// slots are the slots published for job, in arrival order.
func (s seen) slots(job string) []time.Time {
	var out []time.Time
	for _, m := range s.schedules {
		if m.JobName == job {
			out = append(out, m.Slot)
		}
	}
	return out
}

// drain returns every message since the last drain. It publishes a sentinel and reads
// up to it: a ticker's publishes are acknowledged before it sleeps again, and NATS
// delivers in order, so when the tickers are idle nothing sent earlier can arrive after
// the sentinel. Counting is done on the core subscription, so even a duplicate that
// JetStream deduplicated would show.
func (h *harness) drain() seen {
	h.t.Helper()
	h.waitIdle()
	h.marks++
	mark := fmt.Sprintf("jobs.sentinel.%d", h.marks)
	if err := h.srv.NC.Publish(mark, nil); err != nil {
		h.t.Fatalf("publish sentinel: %v", err)
	}
	var s seen
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-h.msgs:
			switch {
			case m.Subject == mark:
				return s
			case strings.HasPrefix(m.Subject, events.PrefixSchedule):
				sc, err := events.DecodeSchedule(m.Data)
				if err != nil {
					h.t.Fatalf("schedule event on %s does not decode: %v", m.Subject, err)
				}
				if want := events.ScheduleSubject(sc.JobName); m.Subject != want {
					h.t.Fatalf("schedule event for %s arrived on %s, want %s", sc.JobName, m.Subject, want)
				}
				s.schedules = append(s.schedules, scheduled{Schedule: sc, MsgID: m.Header.Get(jetstream.MsgIDHeader)})
			case strings.HasPrefix(m.Subject, events.PrefixStatus):
				st, err := events.DecodeStatus(m.Data)
				if err != nil {
					h.t.Fatalf("status event on %s does not decode: %v", m.Subject, err)
				}
				s.statuses = append(s.statuses, st)
			}
		case <-timeout:
			h.t.Fatalf("sentinel %s never arrived", mark)
		}
	}
}

// record reads a job's record in the ticker bucket.
func (h *harness) record(job string) record {
	h.t.Helper()
	kv, err := h.srv.JS.KeyValue(context.Background(), bus.BucketTicker)
	if err != nil {
		h.t.Fatal(err)
	}
	rec, rev, err := jobstate.Get[record](context.Background(), kv, job)
	if err != nil {
		h.t.Fatal(err)
	}
	if rev == 0 {
		h.t.Fatalf("%s has no record in the ticker bucket", job)
	}
	return rec
}

// putRecord writes a job's record by hand, as a ticker that then died would have.
func (h *harness) putRecord(job string, rec record) {
	h.t.Helper()
	kv, err := h.srv.JS.KeyValue(context.Background(), bus.BucketTicker)
	if err != nil {
		h.t.Fatal(err)
	}
	data, _ := json.Marshal(rec)
	if _, err := kv.Put(context.Background(), job, data); err != nil {
		h.t.Fatal(err)
	}
}

// setConfig writes a job's config as the gateway does (UpdatedAt from the clock) and
// waits until each given running ticker has acted on it.
func (h *harness) setConfig(job string, cfg jobstate.Config, tickers ...*Ticker) {
	h.t.Helper()
	kv, err := h.srv.JS.KeyValue(context.Background(), bus.BucketConfig)
	if err != nil {
		h.t.Fatal(err)
	}
	cfg.UpdatedAt, cfg.UpdatedBy = h.clock.Now(), "test"
	data, _ := json.Marshal(cfg)
	rev, err := kv.Put(context.Background(), job, data)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, tk := range tickers {
		timeout := time.After(10 * time.Second)
		for applied := uint64(0); applied < rev; {
			select {
			case applied = <-tk.signals.applied:
			case <-timeout:
				h.t.Fatalf("ticker %s never acted on the config change of %s (revision %d)", tk.cfg.Instance, job, rev)
			}
		}
	}
}

// stored counts the schedule messages JetStream holds for job.
func (h *harness) stored(job string) uint64 {
	h.t.Helper()
	ctx := context.Background()
	s, err := h.srv.JS.Stream(ctx, bus.StreamJobs)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(events.ScheduleSubject(job)))
	if err != nil {
		h.t.Fatal(err)
	}
	return info.State.Subjects[events.ScheduleSubject(job)]
}

func count(tk *Ticker, job, outcome string) int {
	return int(testutil.ToFloat64(tk.metrics.slots.WithLabelValues(job, outcome)))
}

// wantSlots fails unless exactly these slots of job were published, in this order.
func wantSlots(t *testing.T, s seen, job string, want ...string) {
	t.Helper()
	var got []string
	for _, slot := range s.slots(job) {
		got = append(got, slot.UTC().Format(time.RFC3339))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s: published slots %v, want %v", job, got, want)
	}
}

// flakyJS fails the publishes to one subject, as JetStream does while NATS is down.
type flakyJS struct {
	jetstream.JetStream
	subject string

	mu       sync.Mutex
	failing  int // publishes still to fail; -1: all of them
	attempts int
}

var errFlaky = errors.New("nats: no responders available for request (simulated)")

func (f *flakyJS) Publish(ctx context.Context, subject string, data []byte, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if subject == f.subject {
		f.mu.Lock()
		f.attempts++
		fail := f.failing != 0
		if f.failing > 0 {
			f.failing--
		}
		f.mu.Unlock()
		if fail {
			return nil, errFlaky
		}
	}
	return f.JetStream.Publish(ctx, subject, data, opts...)
}

func (f *flakyJS) set(failing int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing = failing
}

func (f *flakyJS) tries() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts
}
