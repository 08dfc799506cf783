package bus_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/natstest"
)

// Tried: the streams and buckets as bus.Ensure declares them, and a trigger larger than
// JOBS allows.
// Must hold: every stream has message, byte and size limits and the discard policy the
// README's table documents (queued work refused, never dropped; events and dead
// letters lose their oldest); every bucket is bounded; the oversized trigger is refused
// by the server, not stored.
func TestEveryStreamIsBounded(t *testing.T) {
	srv := natstest.Start(t)
	ctx := context.Background()
	want := map[string]jetstream.DiscardPolicy{bus.StreamJobs: jetstream.DiscardNew, bus.StreamEvents: jetstream.DiscardOld, bus.StreamDead: jetstream.DiscardOld}
	for name, discard := range want {
		s, err := srv.JS.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		c := s.CachedInfo().Config
		if c.MaxMsgs <= 0 || c.MaxBytes <= 0 || c.MaxAge <= 0 || c.Discard != discard {
			t.Errorf("%s: max msgs %d, bytes %d, age %s, discard %s; want all bounded, discard %s", name, c.MaxMsgs, c.MaxBytes, c.MaxAge, c.Discard, discard)
		}
		if name != bus.StreamDead && c.MaxMsgSize <= 0 {
			t.Errorf("%s: no message size limit", name)
		}
	}
	for _, b := range []string{bus.BucketTicker, bus.BucketRuns, bus.BucketConfig} {
		kv, err := srv.JS.KeyValue(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config
		if c.MaxBytes <= 0 || c.MaxMsgSize <= 0 {
			t.Errorf("bucket %s: max bytes %d, value size %d; want both bounded", b, c.MaxBytes, c.MaxMsgSize)
		}
	}
	big := `{"reason":"` + strings.Repeat("x", 300<<10) + `"}`
	_, err := srv.JS.Publish(ctx, events.TriggerSubject(catalog.CheckSLAAndOverdue), []byte(big))
	if err == nil || !strings.Contains(err.Error(), "maximum") {
		t.Errorf("a 300 KB trigger: %v; want the server to refuse it (JOBS takes 256 KB)", err)
	}
	s, _ := srv.JS.Stream(ctx, bus.StreamJobs)
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("JOBS holds %d messages after the refused trigger; want 0", info.State.Msgs)
	}
}
