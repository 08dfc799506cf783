package ticker

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/lexhq/gstjobs/internal/events"
)

// Tried: records as the ticker writes them (no firms, firms by slot, a pending group)
// and ids no firm has but a bad record could hold: a quote, a backslash, a control
// character, HTML, non-ASCII.
// Must hold: encode (which writes the firms without reflection) reads back to exactly
// what json.Marshal's encoding reads back to, and is valid JSON.
func TestRecordEncodeReadsBackAsJSONMarshal(t *testing.T) {
	slot := at("2026-03-10T02:30:00Z")
	records := map[string]record{
		"no firms": {Slot: slot, State: statePublished, By: "a", At: slot.Add(time.Second)},
		"firms by slot": {Slot: slot, State: stateClaimed, By: "a", At: slot,
			Firms:   map[string][]string{"2026-03-10T04:30:00Z": {"a0000000-0000-4000-8000-000000000001", "a0000000-0000-4000-8000-000000000002"}, "2026-03-09T04:30:00Z": {"a0000000-0000-4000-8000-000000000003"}},
			Groups:  map[string]groupMark{"Asia/Dubai 08:00": {Slot: slot, N: 2}},
			Pending: []pendingSlot{{MsgID: "m", Schedule: events.Schedule{JobName: "x", Slot: slot, Group: "Asia/Dubai 08:00"}}}},
		"strange ids": {Slot: slot, State: stateClaimed, By: "a", At: slot,
			Firms: map[string][]string{"2026-03-10T04:30:00Z": {`quo"te`, `back\slash`, "ctl\x01", "<b>&", "फ़र्म"}, `key"`: {"x"}}},
		"empty lists": {Slot: slot, State: stateBaseline, By: "a", At: slot, Firms: map[string][]string{"2026-03-10T04:30:00Z": {}}},
	}
	for name, rec := range records {
		t.Run(name, func(t *testing.T) {
			got, err := rec.encode()
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(got) {
				t.Fatalf("not valid JSON: %s", got)
			}
			std, _ := json.Marshal(rec)
			var fromOurs, fromStd record
			if err := json.Unmarshal(got, &fromOurs); err != nil {
				t.Fatalf("does not read back: %v\n%s", err, got)
			}
			if err := json.Unmarshal(std, &fromStd); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(fromOurs, fromStd) {
				t.Fatalf("reads back as\n%+v\nwant\n%+v\n(%s)", fromOurs, fromStd, got)
			}
		})
	}
}
