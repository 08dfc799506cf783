package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/bus"
)

// ActionDeadLetterReplayed is the audit row of an operator's replay of a dead letter.
const ActionDeadLetterReplayed = "background_job_dead_letter_replayed"

// DeadLetter is one message in JOBS_DEAD, as the operator reads it.
type DeadLetter struct {
	Seq        uint64    `json:"seq"`
	Consumer   string    `json:"consumer"`
	Subject    string    `json:"subject"`
	Class      string    `json:"class"`
	Reason     string    `json:"reason"`
	At         time.Time `json:"at"`
	Stream     string    `json:"stream,omitempty"`
	StreamSeq  string    `json:"stream_seq,omitempty"`
	Deliveries string    `json:"deliveries,omitempty"`
	// Body is the message's own, cut at 4 KB (the whole of it is replayed).
	Body string `json:"body"`
}

func deadLetterOf(m *jetstream.RawStreamMsg) DeadLetter {
	h := m.Header
	d := DeadLetter{
		Seq: m.Sequence, Consumer: h.Get(bus.HeaderDeadConsumer), Subject: h.Get(bus.HeaderDeadSubject),
		Class: h.Get(bus.HeaderDeadClass), Reason: h.Get(bus.HeaderDeadReason), At: m.Time,
		Stream: h.Get(bus.HeaderDeadStream), StreamSeq: h.Get(bus.HeaderDeadSeq), Deliveries: h.Get(bus.HeaderDeadDeliveries),
	}
	body := m.Data
	if len(body) > 4096 {
		body = body[:4096]
	}
	d.Body = string(body)
	if !utf8.ValidString(d.Body) {
		d.Body = fmt.Sprintf("%q", body)
	}
	return d
}

// deadLetterCount is how many messages JOBS_DEAD holds (-1 if it cannot be read).
func (g *Gateway) deadLetterCount(ctx context.Context) int {
	s, err := g.cfg.JS.Stream(ctx, bus.StreamDead)
	if err != nil {
		return -1
	}
	info, err := s.Info(ctx)
	if err != nil {
		return -1
	}
	return int(info.State.Msgs)
}

// handleDeadLetters is GET /api/dead-letters?limit=50: the newest dead letters first.
func (g *Gateway) handleDeadLetters(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			writeError(w, http.StatusBadRequest, "limit must be a whole number from 1 to 500")
			return
		}
		limit = n
	}
	ctx := r.Context()
	s, err := g.cfg.JS.Stream(ctx, bus.StreamDead)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	info, err := s.Info(ctx)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	list := []DeadLetter{}
	for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0 && len(list) < limit; seq-- {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted after a replay
		}
		if err != nil {
			g.fail(w, r, err)
			return
		}
		list = append(list, deadLetterOf(m))
	}
	writeJSONResponse(w, http.StatusOK, map[string]any{"dead_letters": list, "total": info.State.Msgs})
}

// handleReplayDeadLetter is POST /api/dead-letters/{seq}/replay: the message is
// published again on its own subject (with a message id of its own, so a second press
// within the dedupe window replays nothing twice), removed from JOBS_DEAD, and the
// replay recorded in audit_log. If it fails again it comes back as a new dead letter.
func (g *Gateway) handleReplayDeadLetter(w http.ResponseWriter, r *http.Request) {
	var body runNowBody
	if !decodeBody(w, r, &body) {
		return
	}
	seq, err := strconv.ParseUint(chi.URLParam(r, "seq"), 10, 64)
	if err != nil || seq == 0 {
		writeError(w, http.StatusBadRequest, "the dead letter's seq must be a positive whole number")
		return
	}
	ctx := r.Context()
	s, err := g.cfg.JS.Stream(ctx, bus.StreamDead)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no dead letter %d: it was replayed already or has expired", seq))
		return
	}
	if err != nil {
		g.fail(w, r, err)
		return
	}
	d := deadLetterOf(m)
	if d.Subject == "" {
		writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("dead letter %d does not say its subject; it cannot be replayed", seq))
		return
	}
	out := &nats.Msg{Subject: d.Subject, Data: m.Data, Header: nats.Header{}}
	if _, err := g.cfg.JS.PublishMsg(ctx, out, jetstream.WithMsgID(fmt.Sprintf("replay:%d", seq))); err != nil {
		g.fail(w, r, err)
		return
	}
	if err := s.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		g.log.Warn("dead letter replayed but not removed", "seq", seq, "err", err)
	}
	g.auditChange(r, ActionDeadLetterReplayed, "dead-letter", "", map[string]any{
		"seq": seq, "subject": d.Subject, "consumer": d.Consumer, "class": d.Class, "dead_reason": d.Reason, "reason": body.Reason,
	})
	writeJSONResponse(w, http.StatusAccepted, map[string]any{"replayed": d})
}
