package ops

import (
	"bytes"
	"context"
	"encoding"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// NewLogger builds the process logger: JSON by default (LOG_FORMAT=text for people),
// level from LOG_LEVEL (debug, info, warn, error). Every line names the service, unless
// service is "" (a process that runs several services names each one with ForService).
//
// In both formats a struct, map, slice or array is written as its JSON, not as Go
// syntax: nested JSON in JSON logs, compact JSON text in text logs, where a value longer
// than 300 bytes is cut with a marker saying how much was left out (the JSON logs keep
// all of it). Errors, times, durations, Stringers and LogValuers keep their own
// rendering. Every event is one line: newlines inside strings are escaped.
func NewLogger(service string) *slog.Logger {
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(os.Getenv("LOG_LEVEL")))
	log := slog.New(newHandler(os.Stderr, strings.EqualFold(os.Getenv("LOG_FORMAT"), "text"), level))
	if service == "" {
		return log
	}
	return ForService(log, service)
}

// ForService names the service on every line of log. It is the one place that sets the
// key: each binary's main does it through NewLogger, the development launcher once per
// service it runs in-process, and the services themselves never do.
func ForService(log *slog.Logger, service string) *slog.Logger {
	return log.With("service", service)
}

func newHandler(w io.Writer, text bool, level slog.Leveler) slog.Handler {
	if text {
		return &textHandler{w: w, level: level, mu: &sync.Mutex{}}
	}
	return jsonHandler{slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})}
}

// jsonHandler is slog's JSON handler with the values made readable first (see
// readable): slog would write a Stringer such as *time.Location as the JSON of its
// fields ({}), and a value json cannot encode as an !ERROR.
type jsonHandler struct{ inner slog.Handler }

func (h jsonHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h jsonHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(readableAttr(a))
		return true
	})
	return h.inner.Handle(ctx, out)
}

func (h jsonHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = readableAttr(a)
	}
	return jsonHandler{h.inner.WithAttrs(out)}
}

func (h jsonHandler) WithGroup(name string) slog.Handler {
	return jsonHandler{h.inner.WithGroup(name)}
}

func readableAttr(a slog.Attr) slog.Attr {
	a.Value = a.Value.Resolve()
	if a.Value.Kind() != slog.KindGroup {
		a.Value = readable(a.Value)
		return a
	}
	group := a.Value.Group()
	out := make([]slog.Attr, len(group))
	for i, g := range group {
		out[i] = readableAttr(g)
	}
	a.Value = slog.GroupValue(out...)
	return a
}

// readable turns a resolved value that slog would write as Go syntax into one a person
// can read: a Stringer or TextMarshaler into its text, and a struct, map, slice or array
// (also behind pointers) into its JSON, held as a json.RawMessage. A nil slice or map is
// written empty ([] or {}): to the reader, that is what it means. Errors, []byte and
// everything else stay as they are.
func readable(v slog.Value) (out slog.Value) {
	if v.Kind() != slog.KindAny {
		return v
	}
	x := v.Any()
	defer func() {
		// A String or MarshalJSON method that panics (most often on a nil receiver)
		// must not take the log line, or the process, with it.
		if r := recover(); r != nil {
			if rv := reflect.ValueOf(x); rv.Kind() == reflect.Pointer && rv.IsNil() {
				out = slog.StringValue("<nil>")
				return
			}
			out = slog.StringValue(fmt.Sprintf("!PANIC: %v", r))
		}
	}()
	switch t := x.(type) {
	case nil, error, []byte:
		return v
	case *time.Time:
		if t != nil {
			return slog.TimeValue(*t)
		}
		return slog.AnyValue(json.RawMessage("null"))
	case json.Marshaler:
		return jsonValue(x)
	case encoding.TextMarshaler:
		b, err := t.MarshalText()
		if err != nil {
			return slog.StringValue(fmt.Sprintf("%+v", x))
		}
		return slog.StringValue(string(b))
	case fmt.Stringer:
		return slog.StringValue(t.String())
	}
	rv := reflect.ValueOf(x)
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			return slog.AnyValue(json.RawMessage("null"))
		}
		return readable(slog.AnyValue(rv.Elem().Interface()).Resolve())
	case reflect.Slice:
		if rv.IsNil() {
			return slog.AnyValue(json.RawMessage("[]"))
		}
		return jsonValue(x)
	case reflect.Map:
		if rv.IsNil() {
			return slog.AnyValue(json.RawMessage("{}"))
		}
		return jsonValue(x)
	case reflect.Struct, reflect.Array:
		return jsonValue(x)
	}
	return v
}

// jsonValue is x as compact JSON, or as Go syntax if json cannot encode it (a NaN, a
// map with struct keys), so that the value is still seen.
func jsonValue(x any) slog.Value {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return slog.StringValue(fmt.Sprintf("%+v", x))
	}
	return slog.AnyValue(json.RawMessage(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))))
}

// textValueLimit is how much of one value a text log line shows.
const textValueLimit = 300

// textHandler writes lines like slog's TextHandler (time=… level=… msg=… key=value,
// group keys joined with dots, strings quoted when they must be), except that a value
// readable made JSON is written as that JSON, unquoted (it delimits itself), and a
// value longer than textValueLimit is cut. Errors are never cut: the cause of a wrapped
// error comes last.
type textHandler struct {
	w      io.Writer
	mu     *sync.Mutex
	level  slog.Leveler
	prefix string // the open groups, each followed by a dot
	attrs  []byte // what WithAttrs gave, already written
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool {
	min := slog.LevelInfo
	if h.level != nil {
		min = h.level.Level()
	}
	return l >= min
}

func (h *textHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	h2 := *h
	h2.attrs = h.attrs[:len(h.attrs):len(h.attrs)]
	for _, a := range as {
		h2.attrs = appendTextAttr(h2.attrs, h.prefix, a)
	}
	return &h2
}

func (h *textHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = h.prefix + name + "."
	return &h2
}

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	buf := make([]byte, 0, 256+len(h.attrs))
	if !r.Time.IsZero() {
		buf = append(buf, "time="...)
		buf = appendTextTime(buf, r.Time)
		buf = append(buf, ' ')
	}
	buf = append(buf, "level="...)
	buf = append(buf, r.Level.String()...)
	buf = append(buf, " msg="...)
	buf = appendTextString(buf, r.Message)
	buf = append(buf, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		buf = appendTextAttr(buf, h.prefix, a)
		return true
	})
	buf = append(buf, '\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.w.Write(buf)
	return err
}

func appendTextAttr(buf []byte, prefix string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return buf
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			buf = appendTextAttr(buf, prefix, g)
		}
		return buf
	}
	buf = append(buf, ' ')
	buf = appendTextString(buf, prefix+a.Key)
	buf = append(buf, '=')
	return appendTextValue(buf, readable(a.Value))
}

func appendTextValue(buf []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return appendTextString(buf, cut(v.String()))
	case slog.KindTime:
		return appendTextTime(buf, v.Time())
	case slog.KindAny:
		switch x := v.Any().(type) {
		case json.RawMessage:
			return appendTextJSON(buf, x)
		case error:
			return appendTextString(buf, x.Error())
		case []byte:
			return strconv.AppendQuote(buf, cut(string(x)))
		default:
			return appendTextString(buf, cut(fmt.Sprintf("%+v", x)))
		}
	default:
		return append(buf, v.String()...)
	}
}

// appendTextJSON writes an object or array as it is: its brackets delimit it and json
// has escaped what could break the line. A bare JSON string is written as a string.
func appendTextJSON(buf []byte, j json.RawMessage) []byte {
	if len(j) > 0 && (j[0] == '{' || j[0] == '[') {
		return append(buf, cut(string(j))...)
	}
	var s string
	if len(j) > 0 && j[0] == '"' && json.Unmarshal(j, &s) == nil {
		return appendTextString(buf, cut(s))
	}
	return appendTextString(buf, cut(string(j)))
}

// cut shortens s to textValueLimit bytes, on a character boundary, and says how much
// it left out.
func cut(s string) string {
	if len(s) <= textValueLimit {
		return s
	}
	n := textValueLimit
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…(+" + strconv.Itoa(len(s)-n) + " bytes)"
}

// appendTextTime writes t as slog's TextHandler does: RFC 3339 with milliseconds.
func appendTextTime(buf []byte, t time.Time) []byte {
	return t.Truncate(time.Millisecond).AppendFormat(buf, "2006-01-02T15:04:05.000Z07:00")
}

// appendTextString quotes s when slog's TextHandler would: when it is empty or holds a
// space, '=', '"', a control character or anything unprintable, so that one event stays
// one line and its pairs can be told apart.
func appendTextString(buf []byte, s string) []byte {
	if needsQuoting(s) {
		return strconv.AppendQuote(buf, s)
	}
	return append(buf, s...)
}

func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b < ' ' || b == ' ' || b == '=' || b == '"' {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}
