package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobstate"
)

// Frame is one websocket message. The first is always a snapshot; then live changes.
type Frame struct {
	Type string `json:"type"` // snapshot, status, result, config, health
	// Snapshot
	Jobs   []Card  `json:"jobs,omitempty"`
	Health *Health `json:"health,omitempty"`
	// Changes
	Job    string           `json:"job,omitempty"`
	Status *events.Status   `json:"status,omitempty"`
	Result *events.Result   `json:"result,omitempty"`
	Config *jobstate.Config `json:"config,omitempty"`
	// Summary is the toast text for a result, in the guide's words.
	Summary    string    `json:"summary,omitempty"`
	ServerTime time.Time `json:"server_time"`
}

// hub fans live events out to websocket clients. Each client has a bounded queue; a
// client too slow to keep up is disconnected (it reconnects and gets a fresh snapshot)
// rather than slowing everyone down.
type hub struct {
	mu      sync.Mutex
	clients map[*client]struct{}
}

type client struct {
	// tenant is the viewer's firm: frames are scoped to it (see scope.go).
	tenant string
	send   chan []byte
	once   sync.Once
	gone   chan struct{}
}

const clientQueue = 256

func newHub() *hub { return &hub{clients: map[*client]struct{}{}} }

func (h *hub) add(tenant string) *client {
	c := &client{tenant: tenant, send: make(chan []byte, clientQueue), gone: make(chan struct{})}
	h.mu.Lock()
	h.clients[c] = struct{}{}
	h.mu.Unlock()
	return c
}

func (h *hub) remove(c *client) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
	c.once.Do(func() { close(c.gone) })
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// broadcast sends every client the frame as its firm may see it: view builds the
// frame for one firm and is called once per firm present.
func (h *hub) broadcast(view func(tenant string) Frame) {
	encoded := map[string][]byte{}
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		data, ok := encoded[c.tenant]
		if !ok {
			var err error
			if data, err = json.Marshal(view(c.tenant)); err != nil {
				data = nil
			}
			encoded[c.tenant] = data
		}
		if data == nil {
			continue
		}
		select {
		case c.send <- data:
		default:
			delete(h.clients, c)
			c.once.Do(func() { close(c.gone) })
		}
	}
}

// subscribeLive feeds the hub from NATS: every status and result (core subscriptions,
// so every gateway replica sees every event) and every config change.
func (g *Gateway) subscribeLive(ctx context.Context) ([]*nats.Subscription, jetstream.KeyWatcher, error) {
	var subs []*nats.Subscription
	st, err := g.cfg.NC.Subscribe(events.PrefixStatus+">", func(m *nats.Msg) {
		s, err := events.DecodeStatus(m.Data)
		if err != nil {
			return
		}
		g.waiters.deliver(s)
		if g.hub.count() == 0 {
			return
		}
		owner := g.statusOwner(ctx, s)
		now := g.cfg.Clock.Now()
		g.hub.broadcast(func(tenant string) Frame {
			v := scopeStatus(s, owner, tenant)
			return Frame{Type: "status", Job: s.JobName, Status: &v, ServerTime: now}
		})
	})
	if err != nil {
		return nil, nil, err
	}
	subs = append(subs, st)
	rs, err := g.cfg.NC.Subscribe(events.PrefixResult+">", func(m *nats.Msg) {
		r, err := events.DecodeResult(m.Data)
		if err != nil {
			return
		}
		if g.hub.count() == 0 {
			return
		}
		ids := make([]string, 0, len(r.Triggers)+1)
		ids = append(ids, r.TriggerID)
		for _, t := range r.Triggers {
			ids = append(ids, t.ID)
		}
		o := g.triggerOwners(ctx, ids)
		now := g.cfg.Clock.Now()
		g.hub.broadcast(func(tenant string) Frame {
			v := scopeResult(r, o, tenant)
			return Frame{Type: "result", Job: r.JobName, Result: &v, Summary: r.Summary(), ServerTime: now}
		})
	})
	if err != nil {
		return nil, nil, err
	}
	subs = append(subs, rs)
	w, err := g.buckets.Config.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return nil, nil, err
	}
	go func() {
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			var cfg jobstate.Config
			if json.Unmarshal(e.Value(), &cfg) == nil {
				// Who changed it is a person at some firm; the audit log keeps the name.
				cfg.UpdatedBy = ""
				frame := Frame{Type: "config", Job: e.Key(), Config: &cfg, ServerTime: g.cfg.Clock.Now()}
				g.hub.broadcast(func(string) Frame { return frame })
			}
		}
	}()
	return subs, w, nil
}

// statusOwner is the firm whose person's name and reason a status carries: the
// trigger's for a queued status, the run's first trigger's for running and heartbeats.
func (g *Gateway) statusOwner(ctx context.Context, s events.Status) string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if s.State == events.StateQueued && s.TriggerID != "" {
		owner := g.triggerOwners(ctx, []string{s.TriggerID})[s.TriggerID]
		if !s.Coalesced && s.RunID != "" && owner != unknownOwner {
			g.auth.owners.put("run:"+s.RunID, owner)
		}
		return owner
	}
	if s.RequestedBy == "" && s.Reason == "" {
		return ""
	}
	return g.runOwner(ctx, s.JobName, s.RunID)
}

// HealthEvery is how often a connected dashboard gets a health frame; a dashboard that
// hears nothing for much longer knows its connection is dead.
const HealthEvery = 20 * time.Second

// Close codes the dashboard acts on.
const (
	closeSessionExpired = 4001
)

var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 16 * 1024,
}

// serveWS sends a snapshot, then every change. The client is registered before the
// snapshot is built, so no change falls between the two; a change already in the
// snapshot is simply applied twice, and every frame is idempotent.
//
// Browsers authenticate with the session cookie (they cannot set headers on a
// WebSocket), other clients with an Authorization header; requireViewer has checked
// either, and the upgrader checks the Origin. The connection is closed with code 4001
// when the session expires.
func (g *Gateway) serveWS(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	up := upgrader
	up.CheckOrigin = g.checkOrigin
	up.Error = func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
		writeError(w, status, "websocket: "+reason.Error())
	}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	defer conn.Close()
	_ = conn.NetConn().SetDeadline(time.Time{})
	c := g.hub.add(p.TenantID)
	defer g.hub.remove(c)
	g.metrics.wsClients.Inc()
	defer g.metrics.wsClients.Dec()

	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	cards, err := g.Cards(ctx)
	if err == nil {
		cards = g.scopeCards(ctx, cards, p.TenantID)
	}
	health := g.health(ctx)
	cancel()
	if err != nil {
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseInternalServerErr, "snapshot failed"), time.Now().Add(time.Second))
		return
	}
	if err := writeJSON(conn, Frame{Type: "snapshot", Jobs: cards, Health: &health, ServerTime: g.cfg.Clock.Now()}); err != nil {
		return
	}

	// Reader: only to notice the close and answer pings.
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		conn.SetReadLimit(4096)
		_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
		conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(60 * time.Second)) })
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	ping := time.NewTicker(25 * time.Second)
	defer ping.Stop()
	healthTick := time.NewTicker(HealthEvery)
	defer healthTick.Stop()
	var expired <-chan time.Time
	if !p.ExpiresAt.IsZero() {
		t := g.cfg.Clock.NewTimer(g.cfg.Clock.Until(p.ExpiresAt.Add(clockSkew)))
		defer t.Stop()
		expired = t.Chan()
	}
	for {
		select {
		case <-healthTick.C:
			hctx, hcancel := context.WithTimeout(r.Context(), 10*time.Second)
			h := g.health(hctx)
			hcancel()
			if err := writeJSON(conn, Frame{Type: "health", Health: &h, ServerTime: g.cfg.Clock.Now()}); err != nil {
				return
			}
		case <-expired:
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeSessionExpired, "session expired: sign in again"), time.Now().Add(time.Second))
			return
		case data := <-c.send:
			_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := conn.WriteMessage(websocket.TextMessage, data); err != nil {
				return
			}
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(5*time.Second)); err != nil {
				return
			}
		case <-c.gone:
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseTryAgainLater, "too slow; reconnect for a fresh snapshot"), time.Now().Add(time.Second))
			return
		case <-closed:
			return
		case <-g.done:
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
			return
		}
	}
}

func writeJSON(conn *websocket.Conn, v any) error {
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return conn.WriteJSON(v)
}
