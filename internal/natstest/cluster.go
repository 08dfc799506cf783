package natstest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/lexhq/gstjobs/internal/bus"
)

// Cluster is a JetStream cluster of embedded servers for one test: in-process, on random
// ports, each with its own temporary store, every stream and bucket declared with one
// replica per server. The routes between servers pass through proxies in the test, so
// that a test can hold what one server replicates to another (Hold), as a slow or
// partitioned link would, while clients go on talking to every server.
type Cluster struct {
	Servers []*server.Server

	mu      sync.Mutex
	changed *sync.Cond
	held    map[[2]string]bool
	closed  bool
	conns   []net.Conn
	proxies []*routeProxy
}

// StartCluster starts n servers (3 makes a cluster that keeps a quorum without one),
// waits until they have formed a JetStream cluster, declares everything with
// bus.Ensure at n replicas, and shuts the cluster down at cleanup.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{held: map[[2]string]bool{}}
	c.changed = sync.NewCond(&c.mu)
	t.Cleanup(c.shutdown)

	// Each server's route listener sits behind a proxy, which is also what the server
	// advertises to the others: every route, explicit or learned, goes through one.
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("natstest: %v", err)
		}
		p := &routeProxy{c: c, l: l, name: fmt.Sprintf("n%d", i+1), ready: make(chan struct{})}
		c.proxies = append(c.proxies, p)
		go p.accept()
	}
	for i, p := range c.proxies {
		var routes []*url.URL
		for j, q := range c.proxies {
			if j != i {
				routes = append(routes, &url.URL{Scheme: "nats-route", Host: q.l.Addr().String()})
			}
		}
		opts := &server.Options{
			ServerName: p.name,
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoSigs:     true,
			NoLog:      true,
			Cluster: server.ClusterOpts{
				Name:        "gstjobs-test",
				Host:        "127.0.0.1",
				Port:        -1,
				Advertise:   p.l.Addr().String(),
				Compression: server.CompressionOpts{Mode: server.CompressionOff},
			},
			Routes: routes,
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("natstest: server %s: %v", p.name, err)
		}
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatalf("natstest: server %s not ready after 10s", p.name)
		}
		c.mu.Lock()
		c.Servers = append(c.Servers, s)
		c.mu.Unlock()
		p.target = s.ClusterAddr().String()
		close(p.ready)
	}

	// The cluster is formed when it has elected a JetStream leader and the streams can
	// be declared at n replicas. Servers offer no event for either, so ask until then.
	deadline := time.Now().Add(30 * time.Second)
	for !c.formed() {
		if time.Now().After(deadline) {
			t.Fatalf("natstest: cluster of %d elected no JetStream leader in 30s", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, js := Connect(t, c.URL())
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := bus.Ensure(ctx, js, bus.Options{Replicas: n})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("natstest: cluster of %d not formed after 30s: %v", n, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A follower answers direct gets from its own store once it has caught up after it
	// became a follower (it checks every 2s): until then the leader answers them all.
	// Production runs in that steady state; so do the tests.
	for _, b := range []string{bus.BucketRuns, bus.BucketTicker, bus.BucketConfig} {
		for _, s := range c.Servers {
			for !servesDirectGets(s, "KV_"+b) {
				if time.Now().After(deadline) {
					t.Fatalf("natstest: %s does not answer direct gets of bucket %s after 30s", s.Name(), b)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	return c
}

// servesDirectGets reports whether s answers direct gets of stream itself: it has its
// own member in the queue group of $JS.API.DIRECT.GET.<stream>.
func servesDirectGets(s *server.Server, stream string) bool {
	sz, err := s.Subsz(&server.SubszOptions{Subscriptions: true, Account: server.DEFAULT_GLOBAL_ACCOUNT, Test: "$JS.API.DIRECT.GET." + stream})
	if err != nil {
		return false
	}
	for _, sub := range sz.Subs {
		if sub.Subject == "$JS.API.DIRECT.GET."+stream && sub.Queue != "" {
			return true
		}
	}
	return false
}

func (c *Cluster) formed() bool {
	leader := false
	for _, s := range c.Servers {
		if s.NumRoutes() < len(c.Servers)-1 || !s.JetStreamIsCurrent() {
			return false
		}
		leader = leader || s.JetStreamIsLeader()
	}
	return leader
}

// URL lists every server, as NATS_URL does for a cluster.
func (c *Cluster) URL() string {
	var urls []string
	for _, s := range c.Servers {
		urls = append(urls, s.ClientURL())
	}
	return strings.Join(urls, ",")
}

// Server returns the server with the given name ("n1", "n2", ...).
func (c *Cluster) Server(name string) *server.Server {
	for _, s := range c.Servers {
		if s.Name() == name {
			return s
		}
	}
	return nil
}

// StreamLeader names the server that leads stream ("KV_<bucket>" for a bucket), or ""
// while it has none.
func (c *Cluster) StreamLeader(stream string) string {
	for _, s := range c.Servers {
		if s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return s.Name()
		}
	}
	return ""
}

// ConsumerLeader names the server that leads a consumer, or "" while it has none.
func (c *Cluster) ConsumerLeader(stream, consumer string) string {
	for _, s := range c.Servers {
		if s.JetStreamIsConsumerLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream, consumer) {
			return s.Name()
		}
	}
	return ""
}

// Hold stops what server from sends to server to over the route of the system
// account, which carries JetStream's replication (every stream's and consumer's raft
// traffic) and its API; routes of client traffic go on. to falls behind from on every
// stream from leads, while its clients still publish, fetch and ack. Nothing is lost:
// release lets the held bytes through. Keep a hold well under the servers' election
// timeout (4s), or the follower starts an election.
func (c *Cluster) Hold(from, to string) (release func()) {
	c.mu.Lock()
	c.held[[2]string{from, to}] = true
	c.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			delete(c.held, [2]string{from, to})
			c.changed.Broadcast()
			c.mu.Unlock()
		})
	}
}

func (c *Cluster) shutdown() {
	c.mu.Lock()
	c.closed = true
	c.changed.Broadcast()
	servers := c.Servers
	c.mu.Unlock()
	for _, s := range servers {
		s.Shutdown()
	}
	for _, s := range servers {
		s.WaitForShutdown()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.proxies {
		_ = p.l.Close()
	}
	for _, conn := range c.conns {
		_ = conn.Close()
	}
}

// routeProxy forwards the route connections to one server.
type routeProxy struct {
	c      *Cluster
	l      net.Listener
	name   string // the server behind it
	target string // its route listener, set before ready is closed
	ready  chan struct{}
}

// link is one route connection: which server dialled it, and whether it is the system
// account's (both learnt from the INFO the dialling server sends first).
type link struct {
	known bool
	peer  string
	sys   bool
}

func (p *routeProxy) accept() {
	for {
		conn, err := p.l.Accept()
		if err != nil {
			return
		}
		go p.serve(conn)
	}
}

func (p *routeProxy) serve(conn net.Conn) {
	<-p.ready
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = conn.Close()
		return
	}
	c := p.c
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = conn.Close()
		_ = up.Close()
		return
	}
	c.conns = append(c.conns, conn, up)
	c.mu.Unlock()
	l := &link{}
	go c.pump(conn, up, l, func() (string, string) { return l.peer, p.name }, true)
	go c.pump(up, conn, l, func() (string, string) { return p.name, l.peer }, false)
}

// pump copies src to dst, holding each chunk while its direction is held.
func (c *Cluster) pump(src, dst net.Conn, l *link, dir func() (from, to string), sniff bool) {
	defer func() { _ = src.Close(); _ = dst.Close() }()
	buf := make([]byte, 32<<10)
	var head []byte
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if sniff {
				head = append(head, buf[:n]...)
				sniff = c.sniff(l, head)
			}
			c.wait(l, dir)
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// sniff reads the dialling server's INFO from the first bytes of a route; it reports
// whether it needs more.
func (c *Cluster) sniff(l *link, head []byte) bool {
	i := bytes.Index(head, []byte("INFO "))
	if i < 0 || (i > 0 && !bytes.HasSuffix(head[:i], []byte("\r\n"))) {
		if len(head) > 64<<10 {
			c.mu.Lock()
			l.known = true
			c.mu.Unlock()
			return false
		}
		return true
	}
	end := bytes.Index(head[i:], []byte("\r\n"))
	if end < 0 {
		return true
	}
	var info struct {
		Name         string `json:"server_name"`
		RouteAccount string `json:"route_account"`
	}
	_ = json.Unmarshal(head[i+len("INFO "):i+end], &info)
	c.mu.Lock()
	l.known, l.peer, l.sys = true, info.Name, info.RouteAccount == server.DEFAULT_SYSTEM_ACCOUNT
	c.mu.Unlock()
	return false
}

func (c *Cluster) wait(l *link, dir func() (from, to string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.closed && l.known && l.sys && c.held[pair(dir())] {
		c.changed.Wait()
	}
}

func pair(from, to string) [2]string { return [2]string{from, to} }
