package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"testing"
	"testing/slogtest"
	"time"
)

type jobHealth struct {
	Name        string     `json:"name"`
	LastSuccess *time.Time `json:"last_success"`
	StaleAfter  string     `json:"stale_after"`
	Stale       bool       `json:"stale"`
}

type firm struct {
	Name  string
	count int // unexported: not part of its JSON
}

type person struct{ Name string }

type rule struct {
	Name  string
	Owner *person
	Next  *rule
}

type nilStringer struct{ name string }

func (s *nilStringer) String() string { return s.name }

type runRef struct{ id, job string }

func (r runRef) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", r.id), slog.String("job_name", r.job))
}

var (
	recordTime = time.Date(2026, 12, 1, 19, 53, 36, 708123456, time.UTC)
	textPrefix = `time=2026-12-01T19:53:36.708Z level=INFO msg="run finished" `
	jsonPrefix = `{"time":"2026-12-01T19:53:36.708123456Z","level":"INFO","msg":"run finished",`
)

// render writes one record with attrs through the handler NewLogger would use.
func render(t *testing.T, text bool, attrs ...slog.Attr) string {
	t.Helper()
	var buf bytes.Buffer
	r := slog.NewRecord(recordTime, slog.LevelInfo, "run finished", 0)
	r.AddAttrs(attrs...)
	if err := newHandler(&buf, text, slog.LevelInfo).Handle(context.Background(), r); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	return buf.String()
}

func TestLogValues(t *testing.T) {
	succeeded := time.Date(2026, 11, 30, 2, 30, 0, 0, time.UTC)
	long := strings.Repeat("x", 400)
	for _, tc := range []struct {
		name       string
		attr       slog.Attr
		text, json string
	}{{
		name: "map",
		attr: slog.Any("results", map[string]any{"sla_violations": 7, "overdue_tasks": 7}),
		text: `results={"overdue_tasks":7,"sla_violations":7}`,
		json: `"results":{"overdue_tasks":7,"sla_violations":7}`,
	}, {
		name: "struct with an unexported field",
		attr: slog.Any("firm", firm{Name: "Mehta & Associates", count: 3}),
		text: `firm={"Name":"Mehta & Associates"}`,
		json: `"firm":{"Name":"Mehta & Associates"}`,
	}, {
		name: "slice of structs with pointer fields",
		attr: slog.Any("jobs", []jobHealth{
			{Name: "check-sla-and-overdue", StaleAfter: "30m0s"},
			{Name: "send-hearing-reminders", LastSuccess: &succeeded, StaleAfter: "36h0m0s", Stale: true},
		}),
		text: `jobs=[{"name":"check-sla-and-overdue","last_success":null,"stale_after":"30m0s","stale":false},{"name":"send-hearing-reminders","last_success":"2026-11-30T02:30:00Z","stale_after":"36h0m0s","stale":true}]`,
		json: `"jobs":[{"name":"check-sla-and-overdue","last_success":null,"stale_after":"30m0s","stale":false},{"name":"send-hearing-reminders","last_success":"2026-11-30T02:30:00Z","stale_after":"36h0m0s","stale":true}]`,
	}, {
		name: "nested pointers",
		attr: slog.Any("rule", &rule{Name: "escalate", Owner: &person{Name: "Priya"}}),
		text: `rule={"Name":"escalate","Owner":{"Name":"Priya"},"Next":null}`,
		json: `"rule":{"Name":"escalate","Owner":{"Name":"Priya"},"Next":null}`,
	}, {
		name: "nil pointer",
		attr: slog.Any("rule", (*rule)(nil)),
		text: `rule=null`,
		json: `"rule":null`,
	}, {
		name: "nil slice",
		attr: slog.Any("stale_jobs", []string(nil)),
		text: `stale_jobs=[]`,
		json: `"stale_jobs":[]`,
	}, {
		name: "error",
		attr: slog.Any("err", fmt.Errorf("sla: check: commit: %w", errors.New("conn closed"))),
		text: `err="sla: check: commit: conn closed"`,
		json: `"err":"sla: check: commit: conn closed"`,
	}, {
		name: "multi-line error",
		attr: slog.Any("err", errors.New("ERROR: duplicate key value violates unique constraint \"audit_log_dedupe\"\nDETAIL: Key (dedupe_key)=(run:1) already exists.")),
		text: `err="ERROR: duplicate key value violates unique constraint \"audit_log_dedupe\"\nDETAIL: Key (dedupe_key)=(run:1) already exists."`,
		json: `"err":"ERROR: duplicate key value violates unique constraint \"audit_log_dedupe\"\nDETAIL: Key (dedupe_key)=(run:1) already exists."`,
	}, {
		name: "multi-line string",
		attr: slog.String("error_details", "panic: boom\n\ngoroutine 7 [running]:\nmain.run()\n\t/src/main.go:12 +0x1d"),
		text: `error_details="panic: boom\n\ngoroutine 7 [running]:\nmain.run()\n\t/src/main.go:12 +0x1d"`,
		json: `"error_details":"panic: boom\n\ngoroutine 7 [running]:\nmain.run()\n\t/src/main.go:12 +0x1d"`,
	}, {
		name: "time",
		attr: slog.Time("slot", time.Date(2026, 12, 1, 19, 45, 0, 0, time.UTC)),
		text: `slot=2026-12-01T19:45:00.000Z`,
		json: `"slot":"2026-12-01T19:45:00Z"`,
	}, {
		name: "pointer to a time",
		attr: slog.Any("last_success", &succeeded),
		text: `last_success=2026-11-30T02:30:00.000Z`,
		json: `"last_success":"2026-11-30T02:30:00Z"`,
	}, {
		name: "duration",
		attr: slog.Duration("stale_after", 30*time.Minute),
		text: `stale_after=30m0s`,
		json: `"stale_after":1800000000000`,
	}, {
		name: "Stringer",
		attr: slog.Any("zone", time.FixedZone("IST", 5*3600+1800)),
		text: `zone=IST`,
		json: `"zone":"IST"`,
	}, {
		name: "Stringer that panics on a nil receiver",
		attr: slog.Any("who", (*nilStringer)(nil)),
		text: `who=<nil>`,
		json: `"who":"<nil>"`,
	}, {
		name: "LogValuer",
		attr: slog.Any("run", runRef{id: "f7238", job: "check-sla-and-overdue"}),
		text: `run.id=f7238 run.job_name=check-sla-and-overdue`,
		json: `"run":{"id":"f7238","job_name":"check-sla-and-overdue"}`,
	}, {
		name: "group holding a map",
		attr: slog.Group("tenant", "name", "Mehta & Associates", "results", map[string]int{"alerts_sent": 14}),
		text: `tenant.name="Mehta & Associates" tenant.results={"alerts_sent":14}`,
		json: `"tenant":{"name":"Mehta & Associates","results":{"alerts_sent":14}}`,
	}, {
		name: "json.Marshaler",
		attr: slog.Any("details", json.RawMessage(`{ "channel": "in_app" }`)),
		text: `details={"channel":"in_app"}`,
		json: `"details":{"channel":"in_app"}`,
	}, {
		name: "json.Marshaler that is a string",
		attr: slog.Any("channel", json.RawMessage(`"in app"`)),
		text: `channel="in app"`,
		json: `"channel":"in app"`,
	}, {
		name: "value json cannot encode",
		attr: slog.Any("rate", struct{ Rate float64 }{math.NaN()}),
		text: `rate={Rate:NaN}`,
		json: `"rate":"{Rate:NaN}"`,
	}, {
		name: "long JSON",
		attr: slog.Any("errors", []string{long}),
		text: `errors=["` + strings.Repeat("x", 298) + `…(+104 bytes)`,
		json: `"errors":["` + long + `"]`,
	}, {
		name: "long string cut on a character boundary",
		attr: slog.String("note", "a"+strings.Repeat("₹", 100)),
		text: `note="a` + strings.Repeat("₹", 99) + `…(+3 bytes)"`,
		json: `"note":"a` + strings.Repeat("₹", 100) + `"`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := render(t, true, tc.attr), textPrefix+tc.text+"\n"; got != want {
				t.Errorf("text:\n got %s\nwant %s", got, want)
			}
			got := render(t, false, tc.attr)
			if want := jsonPrefix + tc.json + "}\n"; got != want {
				t.Errorf("json:\n got %s\nwant %s", got, want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("json: not valid JSON: %s", got)
			}
		})
	}
}

// TestLogWithAttrs: values given to With are written the same way as those of a call.
func TestLogWithAttrs(t *testing.T) {
	for _, tc := range []struct {
		text bool
		want string
	}{
		{true, `level=INFO msg=done service=sla run.results={"overdue_tasks":7} run.job_name=check-sla-and-overdue` + "\n"},
		{false, `{"level":"INFO","msg":"done","service":"sla","run":{"results":{"overdue_tasks":7},"job_name":"check-sla-and-overdue"}}` + "\n"},
	} {
		var buf bytes.Buffer
		h := newHandler(&buf, tc.text, slog.LevelInfo)
		log := ForService(slog.New(h), "sla").WithGroup("run").With("results", map[string]int{"overdue_tasks": 7})
		// A zero time leaves the time out, so the line can be compared exactly.
		r := slog.NewRecord(time.Time{}, slog.LevelInfo, "done", 0)
		r.AddAttrs(slog.String("job_name", "check-sla-and-overdue"))
		if err := log.Handler().Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if got := buf.String(); got != tc.want {
			t.Errorf("text=%v:\n got %s\nwant %s", tc.text, got, tc.want)
		}
	}
}

// TestLogOneLinePerEvent: newlines in the message, a key or a value never start a new
// line.
func TestLogOneLinePerEvent(t *testing.T) {
	for _, text := range []bool{true, false} {
		var buf bytes.Buffer
		log := slog.New(newHandler(&buf, text, slog.LevelDebug))
		log.Warn("first line\nsecond line", "err", errors.Join(errors.New("one"), errors.New("two")),
			"key\nwith newline", "v", "stack", "a\nb\r\nc", "results", map[string]string{"detail": "x\ny"})
		log.Debug("next event")
		if lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n"); len(lines) != 2 {
			t.Errorf("text=%v: want 2 lines, got %d:\n%s", text, len(lines), buf.String())
		}
	}
}

func TestLogLevel(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(newHandler(&buf, true, slog.LevelWarn))
	log.Info("hidden")
	log.Warn("shown")
	if got := buf.String(); strings.Contains(got, "hidden") || !strings.Contains(got, "msg=shown") {
		t.Errorf("at level warn, want only the warning, got:\n%s", got)
	}
}

// TestLogHandlersConform runs the standard library's handler tests (groups, With,
// empty attributes, LogValuers, zero times) on both handlers.
func TestLogHandlersConform(t *testing.T) {
	var buf bytes.Buffer
	newH := func(text bool) func(*testing.T) slog.Handler {
		return func(*testing.T) slog.Handler {
			buf.Reset()
			return newHandler(&buf, text, slog.LevelInfo)
		}
	}
	t.Run("json", func(t *testing.T) {
		slogtest.Run(t, newH(false), func(t *testing.T) map[string]any {
			m := map[string]any{}
			if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
				t.Fatalf("%v: %s", err, buf.String())
			}
			return m
		})
	})
	t.Run("text", func(t *testing.T) {
		slogtest.Run(t, newH(true), func(t *testing.T) map[string]any {
			m, err := parseTextLine(strings.TrimSuffix(buf.String(), "\n"))
			if err != nil {
				t.Fatalf("%v: %s", err, buf.String())
			}
			return m
		})
	})
}

// parseTextLine reads key=value pairs, values quoted or not, into maps nested by the
// dots of the keys.
func parseTextLine(line string) (map[string]any, error) {
	m := map[string]any{}
	for line != "" {
		eq := strings.IndexByte(line, '=')
		if eq < 0 {
			return nil, fmt.Errorf("no '=' in %q", line)
		}
		key, rest := line[:eq], line[eq+1:]
		var val string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, err
			}
			val, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			end := strings.IndexByte(rest, ' ')
			if end < 0 {
				end = len(rest)
			}
			val, rest = rest[:end], rest[end:]
		}
		line = strings.TrimPrefix(rest, " ")
		parts := strings.Split(key, ".")
		cur := m
		for _, p := range parts[:len(parts)-1] {
			sub, ok := cur[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				cur[p] = sub
			}
			cur = sub
		}
		cur[parts[len(parts)-1]] = val
	}
	return m, nil
}
