package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/catalog"
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

// hub fans live events out to websocket clients, grouped by viewer (a firm, the
// operators): a frame is built and encoded once per group, as one prepared websocket
// message, and written as it is to each of the group's sockets. Each client has a
// bounded queue; a client too slow to keep up is disconnected (it reconnects and gets
// a fresh snapshot) rather than slowing everyone down. A person has at most
// MaxSocketsPerUser clients: a further one closes their oldest.
//
// An idle socket costs one goroutine, its reader, which gorilla/websocket needs to
// answer pings and notice a close. Writes run on a goroutine started when there is
// something to write and gone when the queue is empty; pings and the token's expiry
// are timers. Writing a prepared message needs no write buffer, so a socket holds
// none (writeBuffers is for the rest).
type hub struct {
	mu     sync.Mutex
	groups map[string]*group
	byUser map[string][]*client // in order of connection
	seq    uint64
	n      int
	// changed hears each change a frame carries, for the snapshots (snapshots.changed).
	changed func()
}

type group struct {
	viewer  Viewer
	clients map[*client]struct{}
}

type client struct {
	// viewer is whose frames the client gets (see view.go).
	viewer Viewer
	// session is who opened it and with which token: what the session check re-checks.
	session session
	seq     uint64 // order of connection, to find a person's oldest
	conn    *websocket.Conn

	mu      sync.Mutex
	queue   []*websocket.PreparedMessage
	ready   bool // the snapshot is first in the queue: writing may begin
	writing bool // a writer goroutine is running
	pingDue bool
	ended   bool
	why     closeReason // why the hub ended the client, set once with ended
	pinger  *time.Timer
	expiry  clockwork.Timer
}

// closeReason is the websocket close frame a client is sent when the hub ends it.
type closeReason struct {
	code   int
	text   string
	metric string // the reason label of gstjobs_gateway_websockets_closed_total
}

// clientQueue bounds the frames waiting for one socket: a dashboard that falls this
// far behind is closed (tooSlow) and reconnects to a fresh snapshot.
const clientQueue = 64

const (
	// pingEvery is how often an idle socket is pinged; pongWait how long it may stay
	// silent (no pong, no frame) before it counts as gone.
	pingEvery = 25 * time.Second
	pongWait  = 60 * time.Second
	// writeWait bounds one frame's write.
	writeWait = 10 * time.Second
)

func newHub() *hub {
	return &hub{groups: map[string]*group{}, byUser: map[string][]*client{}, changed: func() {}}
}

// add registers a client. If its person already has MaxSocketsPerUser clients, the
// oldest of them is ended (tooMany) and returned, so the newest tab, the one the person
// is looking at, is the one that works.
func (h *hub) add(v Viewer, s session, conn *websocket.Conn) (c, evicted *client) {
	c = &client{viewer: v, session: s, conn: conn}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	c.seq = h.seq
	if mine := h.byUser[s.userID]; len(mine) >= MaxSocketsPerUser {
		evicted = mine[0]
		h.removeLocked(evicted)
		evicted.end(tooManySockets)
	}
	k := v.key()
	gr := h.groups[k]
	if gr == nil {
		gr = &group{viewer: v, clients: map[*client]struct{}{}}
		h.groups[k] = gr
	}
	gr.clients[c] = struct{}{}
	h.byUser[s.userID] = append(h.byUser[s.userID], c)
	h.n++
	return c, evicted
}

func (h *hub) remove(c *client) {
	h.mu.Lock()
	h.removeLocked(c)
	h.mu.Unlock()
}

func (h *hub) removeLocked(c *client) {
	k := c.viewer.key()
	gr := h.groups[k]
	if gr == nil {
		return
	}
	if _, ok := gr.clients[c]; !ok {
		return
	}
	delete(gr.clients, c)
	if len(gr.clients) == 0 {
		delete(h.groups, k)
	}
	mine := h.byUser[c.session.userID]
	if i := slices.Index(mine, c); i >= 0 {
		mine = slices.Delete(mine, i, i+1)
	}
	if len(mine) == 0 {
		delete(h.byUser, c.session.userID)
	} else {
		h.byUser[c.session.userID] = mine
	}
	h.n--
}

// closeWhere ends every client for which why answers ok, with the reason it gives, and
// counts them by reason. why runs under the hub's lock: it must only look at memory.
func (h *hub) closeWhere(why func(*client) (closeReason, bool)) map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	closed := map[string]int{}
	for _, gr := range h.groups {
		for c := range gr.clients {
			r, ok := why(c)
			if !ok {
				continue
			}
			h.removeLocked(c)
			c.end(r)
			closed[r.metric]++
		}
	}
	return closed
}

// profileIDs lists the profiles behind the connected clients, each once (the platform
// operator has none).
func (h *hub) profileIDs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := make([]string, 0, len(h.byUser))
	for id, mine := range h.byUser {
		if len(mine) > 0 && !mine[0].viewer.Operator {
			ids = append(ids, id)
		}
	}
	return ids
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// viewers lists one viewer per group present (each firm, the operators).
func (h *hub) viewers() []Viewer {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Viewer, 0, len(h.groups))
	for _, gr := range h.groups {
		out = append(out, gr.viewer)
	}
	return out
}

// broadcast sends every client the frame as its viewer may see it: view builds the
// frame for one viewer group and is called once per group present; ok false sends
// that group nothing. The frame is encoded once per group. A frame that is a change
// (not health) makes the snapshots built before it stale.
// It returns how many groups got a frame.
func (h *hub) broadcast(view func(v Viewer) (Frame, bool)) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, gr := range h.groups {
		f, ok := view(gr.viewer)
		if !ok {
			continue
		}
		h.sendLocked(gr, f)
		n++
	}
	return n
}

// sendTo sends one frame to one group.
func (h *hub) sendTo(key string, f Frame) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if gr := h.groups[key]; gr != nil {
		h.sendLocked(gr, f)
	}
}

func (h *hub) sendLocked(gr *group, f Frame) {
	if f.Type != "health" {
		h.changed()
	}
	data, err := json.Marshal(f)
	if err != nil {
		return
	}
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, data)
	if err != nil {
		return
	}
	for c := range gr.clients {
		if !c.send(pm) {
			h.removeLocked(c)
			c.end(tooSlow)
		}
	}
}

// endAll ends every client (the gateway stops).
func (h *hub) endAll(why closeReason) {
	h.closeWhere(func(*client) (closeReason, bool) { return why, true })
}

// send queues a frame; false when the client is too far behind.
func (c *client) send(pm *websocket.PreparedMessage) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return true
	}
	if len(c.queue) >= clientQueue {
		return false
	}
	c.queue = append(c.queue, pm)
	c.kickLocked()
	return true
}

// start puts the snapshot before every frame queued while it was built, and lets the
// writing begin.
func (c *client) start(snapshot *websocket.PreparedMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return
	}
	c.queue = append([]*websocket.PreparedMessage{snapshot}, c.queue...)
	c.ready = true
	c.kickLocked()
}

// ping asks the writer to ping the client, and the timer to ask again later.
func (c *client) ping() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended || c.pinger == nil {
		return
	}
	c.pingDue = true
	c.kickLocked()
	c.pinger.Reset(pingEvery)
}

// end closes the client once, saying why (a zero reason: no close frame, the other
// side went away); it reports whether this was the first end.
func (c *client) end(why closeReason) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return false
	}
	c.ended, c.why, c.queue = true, why, nil
	c.ready = true
	c.kickLocked()
	return true
}

// stopTimers stops the client's ping and expiry timers (it is gone).
func (c *client) stopTimers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pinger != nil {
		c.pinger.Stop()
		c.pinger = nil
	}
	if c.expiry != nil {
		c.expiry.Stop()
		c.expiry = nil
	}
}

func (c *client) kickLocked() {
	if c.ready && !c.writing {
		c.writing = true
		go c.write()
	}
}

// write writes what is queued, then returns; an ended client gets its close frame and
// its connection closed, which ends its reader.
func (c *client) write() {
	for {
		c.mu.Lock()
		switch {
		case c.ended:
			why := c.why
			c.queue = nil
			c.mu.Unlock() // writing stays true: nothing is written after the close
			if why.code != 0 {
				_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(why.code, why.text), time.Now().Add(time.Second))
			}
			_ = c.conn.Close()
			return
		case c.pingDue:
			c.pingDue = false
			c.mu.Unlock()
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(5*time.Second)); err != nil {
				c.fail()
				return
			}
		case len(c.queue) > 0:
			pm := c.queue[0]
			c.queue[0] = nil
			c.queue = c.queue[1:]
			if len(c.queue) == 0 {
				c.queue = nil
			}
			c.mu.Unlock()
			_ = c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.conn.WritePreparedMessage(pm); err != nil {
				c.fail()
				return
			}
		default:
			c.writing = false
			c.mu.Unlock()
			return
		}
	}
}

// fail ends a client whose connection broke while writing.
func (c *client) fail() {
	c.mu.Lock()
	c.ended, c.queue = true, nil
	c.mu.Unlock()
	_ = c.conn.Close()
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

// watchRuns tells the snapshots of every change of the runs bucket (a run queued,
// started, beating, finished): the cards read it, and the finish of a run is written
// after its result, with no frame of its own.
func (g *Gateway) watchRuns(ctx context.Context) (jetstream.KeyWatcher, error) {
	w, err := g.buckets.Runs.WatchAll(ctx, jetstream.UpdatesOnly(), jetstream.MetaOnly())
	if err != nil {
		return nil, err
	}
	go func() {
		for range w.Updates() {
			g.snapshots.changed()
		}
	}()
	return w, nil
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
			start := time.Now()
			groups := g.hub.broadcast(func(v Viewer) (Frame, bool) {
				seen, ok := viewResult(r, slices[v.TenantID], v)
				return Frame{Type: "result", Job: r.JobName, Result: &seen, Summary: seen.Summary(), ServerTime: now}, ok
			})
			if g.cfg.fannedOut != nil {
				g.cfg.fannedOut(groups, time.Since(start))
			}
		}
	}
}

// watchConfig keeps the count of firms' pauses for the operator's cards and sends
// every config change to the viewers it concerns.
func (g *Gateway) watchConfig(w jetstream.KeyWatcher) {
	initial := true
	for e := range w.Updates() {
		if e == nil {
			if initial {
				close(g.configs.loaded)
			}
			initial = false
			continue
		}
		var cfg jobstate.Config
		if e.Operation() == jetstream.KeyValuePut && json.Unmarshal(e.Value(), &cfg) != nil {
			continue
		}
		g.configs.set(e.Key(), cfg)
		if initial {
			continue
		}
		g.snapshots.changed()
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

// pauses knows, from the config watch, each firm's own record of each job (its pause,
// its time of day): for the operator's count of paused firms and for the snapshots'
// cards.
type pauses struct {
	mu     sync.Mutex
	paused map[string]bool            // config key of a firm → paused
	firm   map[string]jobstate.Config // config key of a firm → its record
	loaded chan struct{}              // closed once the watch has delivered every key there was
}

func newPauses() *pauses {
	return &pauses{paused: map[string]bool{}, firm: map[string]jobstate.Config{}, loaded: make(chan struct{})}
}

// firmConfigs is the viewer's firm's own record of each job, once the watch has loaded.
func (p *pauses) firmConfigs(ctx context.Context, v Viewer) (map[string]jobstate.Config, error) {
	select {
	case <-p.loaded:
	case <-ctx.Done():
		return nil, fmt.Errorf("config watch: %w", ctx.Err())
	}
	out := map[string]jobstate.Config{}
	if v.Operator || v.TenantID == "" {
		return out, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, job := range catalog.Names() {
		out[job] = p.firm[jobstate.ConfigKey(job, v.TenantID)]
	}
	return out, nil
}

func (p *pauses) set(key string, cfg jobstate.Config) {
	job, tenant := jobstate.SplitConfigKey(key)
	if tenant == "" || job == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if cfg.Paused {
		p.paused[key] = true
	} else {
		delete(p.paused, key)
	}
	if cfg == (jobstate.Config{}) {
		delete(p.firm, key)
	} else {
		p.firm[key] = cfg
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

// healthLoop, every HealthEvery, checks the dependencies and reads the jobs' records
// once, computes the health of each viewer group connected (each firm, the operator)
// from its cards, and sends it to that group's dashboards. It runs apart from the live
// feed: a slow or absent database delays health frames, never status and result frames.
func (g *Gateway) healthLoop() {
	t := time.NewTicker(HealthEvery)
	defer t.Stop()
	for {
		select {
		case <-g.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		d := g.checkDeps(ctx, true)
		g.deps.put(d)
		recs, recsErr := g.readJobRecords(ctx)
		cancel()
		for _, v := range g.hub.viewers() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			cards, err := []Card(nil), recsErr
			if err == nil {
				var firm map[string]jobstate.Config
				if firm, err = g.configs.firmConfigs(ctx, v); err == nil {
					cards, err = g.cardsFrom(ctx, v, recs, firm)
				}
			}
			cancel()
			h := g.healthFrom(d, cards, err, v)
			g.hub.sendTo(v.key(), Frame{Type: "health", Health: &h, ServerTime: g.cfg.Clock.Now()})
		}
	}
}

// writeBuffers lends gorilla/websocket a write buffer for a write that is not of a
// prepared message (none of the gateway's): a socket holds none while idle.
var writeBuffers = &sync.Pool{}

var upgrader = websocket.Upgrader{
	// A dashboard sends nothing but pongs and its close: a small read buffer.
	ReadBufferSize:  256,
	WriteBufferSize: 4096,
	WriteBufferPool: writeBuffers,
}

// snapshotFailed closes a socket whose snapshot could not be built.
var snapshotFailed = closeReason{code: websocket.CloseInternalServerErr, text: "snapshot failed", metric: "snapshot_failed"}

// serveWS registers the client, sends it a snapshot, then every change. The client is
// registered before the snapshot is taken, so no change falls between the two; a
// change already in the snapshot is simply applied twice, and every frame is
// idempotent. The snapshot is its viewer group's (snapshots.go): built once for every
// dashboard of the group connecting while nothing changes.
//
// Browsers authenticate with the session cookie (they cannot set headers on a
// WebSocket), other clients with an Authorization header; requireViewer has checked
// either, and the upgrader checks the Origin. The connection is closed with a code the
// dashboard explains (sessions.go): 4001 when the token expires, 4002 when it is
// signed out, 4003 when the session check finds that the person may no longer watch,
// 4008 when the person opened more than MaxSocketsPerUser.
//
// The handler returns once the snapshot is queued: the socket lives on with its
// reader (read), a writer when there is something to write, and two timers.
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
	_ = conn.NetConn().SetDeadline(time.Time{})
	raw, _ := tokenFrom(r)
	v := p.Viewer()
	c, evicted := g.hub.add(v, newSession(p, raw), conn)
	if evicted != nil {
		g.log.Info("websocket: the person's oldest dashboard closed for a new one", "user_id", p.UserID, "limit", MaxSocketsPerUser)
	}
	g.metrics.wsClients.Inc()
	c.mu.Lock()
	c.pinger = time.AfterFunc(pingEvery, c.ping)
	if !p.ExpiresAt.IsZero() {
		c.expiry = g.cfg.Clock.AfterFunc(g.cfg.Clock.Until(p.ExpiresAt.Add(clockSkew)), func() { c.end(sessionExpired) })
	}
	c.mu.Unlock()
	go g.read(c)
	select {
	case <-g.done: // stopping: the hub has ended the others already
		c.end(goingAway)
		return
	default:
	}
	snap, err := g.snapshots.get(v, g.buildSnapshot)
	if err != nil {
		// Logged once per build (buildSnapshot), however many dashboards waited for it;
		// counted in gstjobs_gateway_websockets_closed_total{reason="snapshot_failed"}.
		c.end(snapshotFailed)
		return
	}
	c.start(snap)
}

// goingAway closes the sockets of a gateway that stops.
var goingAway = closeReason{code: websocket.CloseGoingAway, text: "server shutting down"}

// read reads the socket until it closes: the pongs that keep it open and the close.
// Then the client leaves the hub.
func (g *Gateway) read(c *client) {
	defer func() {
		g.hub.remove(c)
		c.stopTimers()
		c.end(closeReason{})
		c.mu.Lock()
		why := c.why
		c.mu.Unlock()
		if why.metric != "" {
			g.metrics.wsClosed.WithLabelValues(why.metric).Inc()
		}
		g.metrics.wsClients.Dec()
	}()
	conn := c.conn
	conn.SetReadLimit(4096)
	_ = conn.SetReadDeadline(time.Now().Add(pongWait))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		if _, _, err := conn.NextReader(); err != nil {
			return
		}
	}
}
