package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/natstest"
	"github.com/lexhq/gstjobs/internal/worker"
)

// BenchmarkTriggerToResult measures the runtime's overhead on one run: a trigger
// published to JetStream, answered, ordered, executed (an empty job), and its result
// published, as seen by a subscriber. The baseline, measured in the same run, is a raw
// NATS request/reply round trip on the same server; x_roundtrip is the ratio.
func BenchmarkTriggerToResult(b *testing.B) {
	srv := natstest.Start(b)
	nc, js := natstest.Connect(b, srv.URL)
	w, err := worker.New(worker.Config{NC: nc, JS: js, Jobs: map[string]worker.Func{job: func(context.Context, worker.Run) (worker.Report, error) {
		return worker.Report{}, nil
	}}})
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(w.Stop)
	results := natstest.Collect(b, srv.NC, events.ResultSubject(job))

	// Baseline: raw request/reply.
	echo, err := srv.NC.Subscribe("bench.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) })
	if err != nil {
		b.Fatal(err)
	}
	defer echo.Unsubscribe()
	// The echo's interest must be on the server before the other connection asks, or the
	// first request finds no responders.
	if err := srv.NC.Flush(); err != nil {
		b.Fatal(err)
	}
	const rounds = 200
	start := time.Now()
	for range rounds {
		if _, err := nc.Request("bench.echo", []byte("x"), time.Second); err != nil {
			b.Fatal(err)
		}
	}
	baseline := time.Since(start) / rounds

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := js.Publish(context.Background(), events.TriggerSubject(job), fmt.Appendf(nil, `{"reason":"bench %d"}`, i)); err != nil {
			b.Fatal(err)
		}
		select {
		case <-results:
		case <-time.After(10 * time.Second):
			b.Fatal("no result within 10s")
		}
	}
	b.StopTimer()
	perRun := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(baseline.Microseconds()), "roundtrip_µs")
	b.ReportMetric(float64(perRun)/float64(baseline), "x_roundtrip")
}
