package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobstate"
)

// Frame is one websocket message. The first is always a snapshot; then live changes.
// Every frame is built for one viewer (a firm or the operator): see view.go.
type Frame struct {
	Type string `json:"type"` // snapshot, status, result, config, health
	// Snapshot
	Jobs   []Card  `json:"jobs,omitempty"`
	Health *Health `json:"health,omitempty"`
	// Changes
	Job    string         `json:"job,omitempty"`
	Status *events.Status `json:"status,omitempty"`
	Result *events.Result `json:"result,omitempty"`
	// Config is a change of the job's settings; ForFirm says it is one firm's own (a
	// firm's pause: the viewer's, or for the operator the firm TenantID) rather than
	// what holds for every firm.
	Config   *jobstate.Config `json:"config,omitempty"`
	ForFirm  bool             `json:"for_firm,omitempty"`
	TenantID string           `json:"tenant_id,omitempty"`
	// Summary is the toast text for a result, in the guide's words.
	Summary    string    `json:"summary,omitempty"`
	ServerTime time.Time `json:"server_time"`
}

// hub fans live events out to websocket clients. Each client has a bounded queue; a
// client too slow to keep up is disconnected (it reconnects and gets a fresh snapshot)
// rather than slowing everyone down. A person has at most MaxSocketsPerUser clients: a
// further one closes their oldest.
type hub struct {
	mu      sync.Mutex
	clients map[*client]struct{}
	seq     uint64
}

type client struct {
	// viewer is whose frames the client gets (see view.go).
	viewer Viewer
	// session is who opened it and with which token: what the session check re-checks.
	session session
	seq     uint64 // order of connection, to find a person's oldest
	send    chan []byte
	once    sync.Once
	gone    chan struct{}
	// why the hub ended the client: set once, before gone is closed.
	why closeReason
}

// closeReason is the websocket close frame a client is sent when the hub ends it.
type closeReason struct {
	code   int
	text   string
	metric string // the reason label of gstjobs_gateway_websockets_closed_total
}

const clientQueue = 256

func newHub() *hub { return &hub{clients: map[*client]struct{}{}} }

// end closes the client's gone channel once, saying why.
func (c *client) end(why closeReason) {
	c.once.Do(func() {
		c.why = why
		close(c.gone)
	})
}

// add registers a client. If its person already has MaxSocketsPerUser clients, the
// oldest of them is ended (tooMany) and returned, so the newest tab, the one the person
// is looking at, is the one that works.
func (h *hub) add(v Viewer, s session) (c, evicted *client) {
	c = &client{viewer: v, session: s, send: make(chan []byte, clientQueue), gone: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	c.seq = h.seq
	n := 0
	for o := range h.clients {
		if o.session.userID != s.userID {
			continue
		}
		n++
		if evicted == nil || o.seq < evicted.seq {
			evicted = o
		}
	}
	if n < MaxSocketsPerUser {
		evicted = nil
	} else {
		delete(h.clients, evicted)
		evicted.end(tooManySockets)
	}
	h.clients[c] = struct{}{}
	return c, evicted
}

func (h *hub) remove(c *client) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
	c.end(closeReason{})
}

// closeWhere ends every client for which why answers ok, with the reason it gives, and
// counts them by reason. why runs under the hub's lock: it must only look at memory.
func (h *hub) closeWhere(why func(*client) (closeReason, bool)) map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	closed := map[string]int{}
	for c := range h.clients {
		r, ok := why(c)
		if !ok {
			continue
		}
		delete(h.clients, c)
		c.end(r)
		closed[r.metric]++
	}
	return closed
}

// profileIDs lists the profiles behind the connected clients, each once (the platform
// operator has none).
func (h *hub) profileIDs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[string]bool{}
	var ids []string
	for c := range h.clients {
		if id := c.session.userID; !c.viewer.Operator && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// viewers lists one viewer per group present (each firm, the operators).
func (h *hub) viewers() []Viewer {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[string]Viewer{}
	for c := range h.clients {
		seen[c.viewer.key()] = c.viewer
	}
	out := make([]Viewer, 0, len(seen))
	for _, v := range seen {
		out = append(out, v)
	}
	return out
}

// broadcast sends every client the frame as its viewer may see it: view builds the
// frame for one viewer group and is called once per group present; ok false sends
// that group nothing.
func (h *hub) broadcast(view func(v Viewer) (Frame, bool)) {
	type built struct {
		data []byte
		ok   bool
	}
	encoded := map[string]built{}
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		k := c.viewer.key()
		b, done := encoded[k]
		if !done {
			f, ok := view(c.viewer)
			if ok {
				data, err := json.Marshal(f)
				b = built{data: data, ok: err == nil}
			}
			encoded[k] = b
		}
		if !b.ok {
			continue
		}
		select {
		case c.send <- b.data:
		default:
			delete(h.clients, c)
			c.end(tooSlow)
		}
	}
}

// pendingSlices holds the slices of runs whose result has not arrived yet: a run
// publishes its firms' slices, then its result, and the result frame each firm gets
// is its own slice of it. Bounded: a run whose result never comes is forgotten.
type pendingSlices struct {
	runs map[string]*pendingRun
}

type pendingRun struct {
	attempt int
	at      time.Time
	parts   map[int]bool
	tenants map[string]*events.TenantSlice
}

const (
	pendingMaxRuns = 256
	pendingMaxAge  = 10 * time.Minute
)

func (p *pendingSlices) add(s events.Slices, now time.Time) {
	if p.runs == nil {
		p.runs = map[string]*pendingRun{}
	}
	pr := p.runs[s.RunID]
	if pr == nil || s.Attempt > pr.attempt {
		if len(p.runs) >= pendingMaxRuns {
			p.expire(now, true)
		}
		pr = &pendingRun{attempt: s.Attempt, at: now, parts: map[int]bool{}, tenants: map[string]*events.TenantSlice{}}
		p.runs[s.RunID] = pr
	}
	if s.Attempt < pr.attempt {
		return
	}
	pr.parts[s.Part] = true
	for i := range s.Tenants {
		pr.tenants[s.Tenants[i].TenantID] = &s.Tenants[i]
	}
}

// take returns and forgets the slices of a run's attempt.
func (p *pendingSlices) take(runID string, attempt int) map[string]*events.TenantSlice {
	pr := p.runs[runID]
	delete(p.runs, runID)
	if pr == nil || pr.attempt != attempt {
		return nil
	}
	return pr.tenants
}

// expire drops runs older than pendingMaxAge, or the oldest when full.
func (p *pendingSlices) expire(now time.Time, full bool) {
	var oldest string
	for id, pr := range p.runs {
		if now.Sub(pr.at) > pendingMaxAge {
			delete(p.runs, id)
			full = false
			continue
		}
		if oldest == "" || pr.at.Before(p.runs[oldest].at) {
			oldest = id
		}
	}
	if full && oldest != "" {
		delete(p.runs, oldest)
	}
}

// subscribeLive feeds the hub from NATS: every status, slices and result event (core
// subscriptions, so every gateway replica sees every event) and every config change.
// The three subjects share one channel read by one goroutine, so a run's slices are
// handled before its result, in the order its worker published them. Nothing on this
// path reads the database or a bucket.
func (g *Gateway) subscribeLive(ctx context.Context) ([]*nats.Subscription, jetstream.KeyWatcher, error) {
	ch := make(chan *nats.Msg, 8192)
	var subs []*nats.Subscription
	for _, subject := range []string{events.PrefixStatus + ">", events.PrefixSlices + ">", events.PrefixResult + ">"} {
		sub, err := g.cfg.NC.ChanSubscribe(subject, ch)
		if err != nil {
			for _, s := range subs {
				_ = s.Unsubscribe()
			}
			return nil, nil, err
		}
		_ = sub.SetPendingLimits(-1, 64<<20)
		subs = append(subs, sub)
	}
	go g.live(ch)
	w, err := g.buckets.Config.WatchAll(ctx)
	if err != nil {
		return nil, nil, err
	}
	go g.watchConfig(w)
	return subs, w, nil
}

// live turns events into frames until the gateway stops.
func (g *Gateway) live(ch <-chan *nats.Msg) {
	var pending pendingSlices
	for {
		var m *nats.Msg
		select {
		case <-g.done:
			return
		case m = <-ch:
		}
		now := g.cfg.Clock.Now()
		switch {
		case strings.HasPrefix(m.Subject, events.PrefixStatus):
			s, err := events.DecodeStatus(m.Data)
			if err != nil {
				continue
			}
			g.waiters.deliver(s)
			g.hub.broadcast(func(v Viewer) (Frame, bool) {
				seen, ok := viewStatus(s, v)
				return Frame{Type: "status", Job: s.JobName, Status: &seen, ServerTime: now}, ok
			})
		case strings.HasPrefix(m.Subject, events.PrefixSlices):
			s, err := events.DecodeSlices(m.Data)
			if err != nil {
				continue
			}
			pending.add(s, now)
		case strings.HasPrefix(m.Subject, events.PrefixResult):
			r, err := events.DecodeResult(m.Data)
			if err != nil {
				continue
			}
			slices := pending.take(r.RunID, r.Attempt)
			pending.expire(now, false)
			g.hub.broadcast(func(v Viewer) (Frame, bool) {
				seen, ok := viewResult(r, slices[v.TenantID], v)
				return Frame{Type: "result", Job: r.JobName, Result: &seen, Summary: seen.Summary(), ServerTime: now}, ok
			})
		}
	}
}

// watchConfig keeps the count of firms' pauses for the operator's cards and sends
// every config change to the viewers it concerns.
func (g *Gateway) watchConfig(w jetstream.KeyWatcher) {
	initial := true
	for e := range w.Updates() {
		if e == nil {
			initial = false
			continue
		}
		var cfg jobstate.Config
		if e.Operation() == jetstream.KeyValuePut && json.Unmarshal(e.Value(), &cfg) != nil {
			continue
		}
		g.configs.set(e.Key(), cfg.Paused)
		if initial {
			continue
		}
		// Who changed it is a person at some firm; the audit log keeps the name.
		cfg.UpdatedBy = ""
		key := e.Key()
		now := g.cfg.Clock.Now()
		g.hub.broadcast(func(v Viewer) (Frame, bool) {
			job, tenant, ok := viewConfig(key, v)
			c := cfg
			f := Frame{Type: "config", Job: job, Config: &c, ForFirm: tenant != "", ServerTime: now}
			if v.Operator {
				f.TenantID = tenant
			}
			return f, ok
		})
	}
}

// pauses counts, per job, the firms that paused it (for the operator's cards).
type pauses struct {
	mu     sync.Mutex
	paused map[string]bool // config key of a firm → paused
}

func (p *pauses) set(key string, paused bool) {
	job, tenant := jobstate.SplitConfigKey(key)
	if tenant == "" || job == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused == nil {
		p.paused = map[string]bool{}
	}
	if paused {
		p.paused[key] = true
	} else {
		delete(p.paused, key)
	}
}

func (g *Gateway) pausedFirms(job string) int {
	g.configs.mu.Lock()
	defer g.configs.mu.Unlock()
	n := 0
	for key := range g.configs.paused {
		if j, _ := jobstate.SplitConfigKey(key); j == job {
			n++
		}
	}
	return n
}

// HealthEvery is how often a connected dashboard gets a health frame; a dashboard that
// hears nothing for much longer knows its connection is dead.
const HealthEvery = 20 * time.Second

// healthLoop computes, every HealthEvery, the health of each viewer group connected
// (each firm, the operator) once, and sends it to that group's dashboards. It runs
// apart from the live feed: a slow or absent database delays health frames, never
// status and result frames.
func (g *Gateway) healthLoop() {
	t := time.NewTicker(HealthEvery)
	defer t.Stop()
	for {
		select {
		case <-g.done:
			return
		case <-t.C:
		}
		for _, v := range g.hub.viewers() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			h := g.health(ctx, v)
			cancel()
			key := v.key()
			now := g.cfg.Clock.Now()
			g.hub.broadcast(func(w Viewer) (Frame, bool) {
				return Frame{Type: "health", Health: &h, ServerTime: now}, w.key() == key
			})
		}
	}
}

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
// either, and the upgrader checks the Origin. The connection is closed with a code the
// dashboard explains (sessions.go): 4001 when the token expires, 4002 when it is
// signed out, 4003 when the session check finds that the person may no longer watch,
// 4008 when the person opened more than MaxSocketsPerUser.
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
	raw, _ := tokenFrom(r)
	c, evicted := g.hub.add(p.Viewer(), newSession(p, raw))
	defer g.hub.remove(c)
	if evicted != nil {
		g.log.Info("websocket: the person's oldest dashboard closed for a new one", "user_id", p.UserID, "limit", MaxSocketsPerUser)
	}
	g.metrics.wsClients.Inc()
	defer g.metrics.wsClients.Dec()

	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	cards, err := g.Cards(ctx, p.Viewer())
	health := g.healthFromCards(ctx, cards, err, p.Viewer())
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
	var expired <-chan time.Time
	if !p.ExpiresAt.IsZero() {
		t := g.cfg.Clock.NewTimer(g.cfg.Clock.Until(p.ExpiresAt.Add(clockSkew)))
		defer t.Stop()
		expired = t.Chan()
	}
	closeWith := func(why closeReason) {
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(why.code, why.text), time.Now().Add(time.Second))
	}
	for {
		select {
		case <-expired:
			g.metrics.wsClosed.WithLabelValues(sessionExpired.metric).Inc()
			closeWith(sessionExpired)
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
			// Ended by the hub: too slow, signed out, access changed, or too many.
			g.metrics.wsClosed.WithLabelValues(c.why.metric).Inc()
			closeWith(c.why)
			return
		case <-closed:
			return
		case <-g.done:
			closeWith(closeReason{code: websocket.CloseGoingAway, text: "server shutting down"})
			return
		}
	}
}

func writeJSON(conn *websocket.Conn, v any) error {
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return conn.WriteJSON(v)
}
