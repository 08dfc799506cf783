package ticker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobstate"
	"github.com/lexhq/gstjobs/internal/natstest"
)

// countingJS counts the schedule events a ticker publishes and the firms they are for.
// The daily ones are kept as published and decoded by firms, after the timed turns: the
// benchmark's counting is not the ticker's work.
type countingJS struct {
	jetstream.JetStream
	mu            sync.Mutex
	slots         int
	daily, missed int
	known         int
	schedules     [][]byte
}

// firms is the firm-runs of the daily schedules published: each one's firms, summed.
func (c *countingJS) firms() int {
	n := 0
	for _, data := range c.schedules {
		s, err := events.DecodeSchedule(data)
		if err != nil {
			continue
		}
		switch sc := s.Scope; {
		case sc == nil:
			n += c.known
		case sc.All:
			n += c.known - len(sc.Except)
		default:
			n += len(sc.Firms)
		}
	}
	return n
}

func (c *countingJS) Publish(ctx context.Context, subject string, data []byte, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	c.mu.Lock()
	switch {
	case len(subject) > len(events.PrefixSchedule) && subject[:len(events.PrefixSchedule)] == events.PrefixSchedule:
		c.slots++
		if events.JobFromSubject(subject) != catalog.CheckSLAAndOverdue {
			c.daily++
			c.schedules = append(c.schedules, data) // the ticker's own buffer, not reused
		}
	default:
		c.missed++
	}
	c.mu.Unlock()
	return c.JetStream.Publish(ctx, subject, data, opts...)
}

// BenchmarkTickerDay times a ticker's work through whole days (each iteration one day,
// every wake-up of it in turn), with the jobs' records in a real JetStream:
//
//   - no_firms: a ticker that knows no firm, as every ticker did before firms kept
//     hours: one slot per job and time, for every firm;
//   - firms=1000/pairs=1: today's single schedule, with the 1,000 firms known, all in
//     Kolkata at the default hours;
//   - firms=1000/pairs=50: the same firms spread over 50 (zone, time of day) pairs, 10
//     zones from Sydney to Los Angeles at 5 times of day, for each of the four daily
//     jobs (each firm's own time in its config key).
//
// Each reports the ticker's work per simulated minute (its settle turns, the day's
// total over 1,440: their wall time, the jobs settled side by side, and the CPU time
// they took, the embedded NATS server's included), its wake-ups, the slots it
// published per day (the runs a day asks for), and the firm-runs of the daily jobs
// (each firm's runs, summed: 4,000 a day for 1,000 firms, whatever their hours). The
// firms' zones come from memory here; in production the ticker reads them from
// PostgreSQL once and on every change (LISTEN), and hourly besides (one read of 1,000
// rows).
func BenchmarkTickerDay(b *testing.B) {
	zones := []string{"Asia/Kolkata", "Asia/Dubai", "America/New_York", "Europe/London", "Asia/Singapore",
		"Australia/Sydney", "Asia/Kathmandu", "Asia/Tokyo", "Europe/Berlin", "America/Los_Angeles"}
	times := []string{"06:00", "07:00", "07:30", "08:00", "09:00"}
	for _, c := range []struct {
		name         string
		firms, pairs int
	}{{"no_firms", 0, 0}, {"firms=1000/pairs=1", 1000, 1}, {"firms=1000/pairs=50", 1000, 50}} {
		b.Run(c.name, func(b *testing.B) {
			srv := natstest.Start(b)
			ctx := context.Background()
			zoneOf := map[string]string{}
			cfgKV, err := srv.JS.KeyValue(ctx, bus.BucketConfig)
			if err != nil {
				b.Fatal(err)
			}
			for i := range c.firms {
				id := fmt.Sprintf("a0000000-0000-4000-8000-%012d", i)
				zoneOf[id] = "Asia/Kolkata"
				if c.pairs > 1 {
					p := i % c.pairs
					zoneOf[id] = zones[p%10]
					for _, job := range catalog.All() {
						if !job.FirmHours {
							continue
						}
						data := fmt.Appendf(nil, `{"paused":false,"at":%q}`, times[p/10])
						if _, err := cfgKV.Put(ctx, jobstate.ConfigKey(job.Name, id), data); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			counter := &countingJS{JetStream: srv.JS, known: c.firms}
			cfg := Config{JS: counter, NC: srv.NC, Location: kolkata, Clock: clockwork.NewFakeClockAt(at("2026-03-09T18:30:00Z")), Instance: "bench"}
			if c.firms > 0 {
				cfg.Firms = newFakeFirms(zoneOf)
			}
			tk, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			// The loop waits on a clock that never moves: the benchmark drives the turns.
			if err := tk.Start(ctx); err != nil {
				b.Fatal(err)
			}
			defer tk.Stop()
			day := at("2026-03-09T18:30:00Z") // midnight in Kolkata
			var work, cpu time.Duration
			wakes, days := 0, 0
			counter.mu.Lock()
			counter.slots, counter.schedules, counter.daily, counter.missed = 0, nil, 0, 0
			counter.mu.Unlock()
			for b.Loop() {
				end := day.Add(24 * time.Hour)
				for now := day; ; {
					next := tk.nextWake(now)
					if next.After(end) {
						break
					}
					start, cpu0 := time.Now(), natstest.ProcessCPU()
					tk.refreshFirms(ctx, next)
					tk.settleAll(ctx, next)
					work += time.Since(start)
					cpu += natstest.ProcessCPU() - cpu0
					wakes++
					now = next
				}
				day, days = end, days+1
			}
			counter.mu.Lock()
			defer counter.mu.Unlock()
			b.ReportMetric(float64(work.Microseconds())/float64(days)/1440, "work_us/minute")
			b.ReportMetric(float64(cpu.Microseconds())/float64(days)/1440, "cpu_us/minute")
			b.ReportMetric(float64(wakes)/float64(days), "wakes/day")
			b.ReportMetric(float64(counter.slots)/float64(days), "slots/day")
			b.ReportMetric(float64(counter.daily)/float64(days), "daily_runs/day")
			b.ReportMetric(float64(counter.firms())/float64(days), "firm_runs/day")
			if counter.missed > 0 {
				b.Errorf("%d missed statuses: every slot of the simulated days must fire", counter.missed)
			}
		})
	}
}
