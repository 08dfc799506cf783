package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/events"
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

// handleReplayDeadLetter is POST /api/dead-letters/{seq}/replay: an event the audit
// consumer gave up on is written to audit_log now; for a slot or trigger an intake gave
// up on, the job runs now as the operator's Run Now (the gateway does not publish on the
// ticker's or a developer's subjects); then it is removed from JOBS_DEAD and the replay
// recorded in audit_log. A run order is not replayed (the sweep re-sends the
// order of a run still queued). If a replayed trigger fails again it comes back as a
// new dead letter.
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
	var run *Accepted
	if d.Subject == "" {
		writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("dead letter %d does not say its subject; it cannot be replayed", seq))
		return
	}
	switch {
	case d.Consumer == bus.ConsumerGatewayEvents:
		// The gateway's own: written to audit_log here, as the audit consumer would
		// have (the gateway may not speak for the job services on their subjects).
		p, err := planEvent(d.Subject, m.Data)
		if err != nil {
			writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("dead letter %d still cannot be written: %s", seq, strings.TrimPrefix(err.Error(), "invalid payload: ")))
			return
		}
		if err := g.write(ctx, p); err != nil {
			if bus.Permanent(err) {
				writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("dead letter %d is still refused by the database; it stays in %s", seq, bus.StreamDead))
				return
			}
			g.fail(w, r, err)
			return
		}
	case strings.HasPrefix(d.Subject, events.PrefixTrigger), strings.HasPrefix(d.Subject, events.PrefixSchedule):
		// A schedule slot or trigger a job's intake gave up on: the job runs again as
		// the operator's Run Now, for every firm. The gateway may not speak for the
		// ticker or a developer on their subjects; the operator's run covers what the
		// lost one would have.
		job := events.JobFromSubject(d.Subject)
		p := principalFrom(ctx)
		reason := fmt.Sprintf("replay of dead letter %d (%s)", seq, d.Subject)
		if body.Reason != "" {
			reason += ": " + body.Reason
		}
		acc, err := g.RunNow(ctx, job, reason, Requester{Name: p.Display(), Operator: true}, 0)
		if err != nil {
			g.fail(w, r, err)
			return
		}
		run = &acc
	default:
		writeError(w, http.StatusConflict, fmt.Sprintf("dead letter %d is a %s message of %s: a run order is not replayed from here. If its run is still queued, the workers' sweep sends its order again within seconds; otherwise press Run Now on the job", seq, d.Subject, d.Consumer))
		return
	}
	if err := s.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		g.log.Warn("dead letter replayed but not removed", "seq", seq, "err", err)
	}
	g.auditChange(r, ActionDeadLetterReplayed, "dead-letter", "", map[string]any{
		"seq": seq, "subject": d.Subject, "consumer": d.Consumer, "class": d.Class, "dead_reason": d.Reason, "reason": body.Reason,
	})
	out := map[string]any{"replayed": d}
	if run != nil {
		out["run_now"] = run
	}
	writeJSONResponse(w, http.StatusAccepted, out)
}
