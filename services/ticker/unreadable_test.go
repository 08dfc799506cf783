package ticker

import (
	"context"
	"testing"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
)

// Tried: values that are not records, written by hand (as the setup user could, with
// `nats kv put`) into the ticker's record and the job's config before a slot is due.
// Must hold: neither stops the schedule: the slot is published once, on the default
// schedule, and the ticker's compare-and-set writes a real record over the garbage.
func TestUnreadableValuesDoNotStopTheSchedule(t *testing.T) {
	h := newHarness(t, "2026-03-10T02:29:30Z")
	ctx := context.Background()
	job := catalog.SendHearingReminders
	for bucket, value := range map[string]string{bus.BucketTicker: `{"slot": not json`, bus.BucketConfig: "\x00\xff"} {
		kv, err := h.srv.JS.KeyValue(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, job, []byte(value)); err != nil {
			t.Fatal(err)
		}
	}
	h.start("ticker-a")
	h.advanceTo("2026-03-10T02:30:00Z")
	wantSlots(t, h.drain(), job, "2026-03-10T02:30:00Z")
	if rec := h.record(job); rec.State != statePublished || !rec.Slot.Equal(at("2026-03-10T02:30:00Z")) {
		t.Fatalf("record after the slot: %+v; want the published 02:30 slot written over the garbage", rec)
	}
}
