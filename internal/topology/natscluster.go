package topology

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/healthcheck"
	"github.com/lexhq/gstjobs/internal/natsauth"
)

// NATSConfig is a cluster of nats-server processes on one machine.
type NATSConfig struct {
	// Bin is the nats-server binary.
	Bin string
	// Dir holds the configuration (the production one, natsauth.WriteServerConfig, and
	// one file per node that includes it) and each node's JetStream store, Dir/<node>.
	Dir string
	// Nodes are the servers' names: nats-1, nats-2, nats-3.
	Nodes []string
	// Port gives a node's listener its port: kind is "client", "route" or "monitor".
	Port func(node, kind string) int
	// Passwords are every natsauth user's; RoutePassword is the one the nodes join
	// each other's routes with.
	Passwords     map[string]string
	RoutePassword string
	// Out receives a node's log.
	Out func(node string) io.Writer
}

// NATS is the running cluster.
type NATS struct {
	Nodes []*Node
	cfg   NATSConfig
}

// Node is one nats-server process.
type Node struct {
	*Proc
	ClientURL  string
	MonitorURL string
}

const host = "127.0.0.1"

// StartNATS writes the configuration, starts every node and waits until each says it
// is healthy (JetStream enabled, a meta leader elected, everything it holds current).
func StartNATS(ctx context.Context, cfg NATSConfig) (*NATS, error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	var prod bytes.Buffer
	if err := natsauth.WriteServerConfig(&prod); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cfg.Dir, "nats-server.conf"), prod.Bytes(), 0o600); err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	env := os.Environ()
	for _, u := range natsauth.Users() {
		env = append(env, natsauth.PasswordVar(u)+"="+cfg.Passwords[u])
	}
	n := &NATS{cfg: cfg}
	for _, name := range cfg.Nodes {
		conf, err := n.writeNodeConfig(name)
		if err != nil {
			return nil, err
		}
		args := []string{"-c", conf, "-a", host, "-p", strconv.Itoa(cfg.Port(name, "client")),
			"-m", strconv.Itoa(cfg.Port(name, "monitor")), "--store_dir", filepath.Join(cfg.Dir, name)}
		var out io.Writer
		if cfg.Out != nil {
			out = cfg.Out(name)
		}
		n.Nodes = append(n.Nodes, &Node{
			Proc:       newProc(name, cfg.Bin, args, env, out),
			ClientURL:  fmt.Sprintf("nats://%s:%d", host, cfg.Port(name, "client")),
			MonitorURL: fmt.Sprintf("http://%s:%d", host, cfg.Port(name, "monitor")),
		})
	}
	for _, node := range n.Nodes {
		if err := node.Start(); err != nil {
			n.Stop()
			return nil, err
		}
	}
	for _, node := range n.Nodes {
		if err := node.WaitHealthy(ctx); err != nil {
			n.Stop()
			return nil, err
		}
	}
	return n, nil
}

// writeNodeConfig writes the node's own file: the production configuration, included
// as it is, and the cluster, whose routes only the route user may join (as
// compose.cluster.yaml has it). The route password is in the file, mode 0600, rather
// than on a command line that anyone on the machine may read. Ports are given on the
// command line, which overrides the production file's.
func (n *NATS) writeNodeConfig(name string) (string, error) {
	var routes []string
	for _, other := range n.cfg.Nodes {
		if other != name {
			routes = append(routes, fmt.Sprintf("%q", fmt.Sprintf("nats://route:%s@%s:%d", n.cfg.RoutePassword, host, n.cfg.Port(other, "route"))))
		}
	}
	conf := fmt.Sprintf(`# %s of make cluster: the production configuration and the cluster.
include "nats-server.conf"
server_name: %q
http: "%s:%d"
cluster {
  name: "gstjobs"
  listen: "%s:%d"
  authorization { user: "route", password: %q }
  routes: [%s]
}
`, name, name, host, n.cfg.Port(name, "monitor"), host, n.cfg.Port(name, "route"), n.cfg.RoutePassword, strings.Join(routes, ", "))
	path := filepath.Join(n.cfg.Dir, name+".conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return "", fmt.Errorf("topology: %w", err)
	}
	return path, nil
}

// URL lists every node, as NATS_URL does for a cluster.
func (n *NATS) URL() string {
	var urls []string
	for _, node := range n.Nodes {
		urls = append(urls, node.ClientURL)
	}
	return strings.Join(urls, ",")
}

// Node is the node named name, or nil.
func (n *NATS) Node(name string) *Node {
	for _, node := range n.Nodes {
		if node.Name == name {
			return node
		}
	}
	return nil
}

// Credentials are user's on this cluster.
func (n *NATS) Credentials(user string) natsauth.Credentials {
	return natsauth.Password(user, n.cfg.Passwords[user])
}

// Env is what a binary that connects as user reads: NATS_URL and the credentials.
func (n *NATS) Env(user string) []string {
	return append([]string{"NATS_URL=" + n.URL()}, n.Credentials(user).Env()...)
}

// Declare runs `natsadmin declare` as the setup user with NATS_REPLICAS=replicas, as
// production does before the services start, again until it succeeds or ctx ends: a
// cluster that has just formed may not yet place three replicas.
func (n *NATS) Declare(ctx context.Context, natsadmin string, replicas int, out io.Writer) error {
	var last []byte
	for {
		cmd := exec.CommandContext(ctx, natsadmin, "declare")
		cmd.Env = append(append(os.Environ(), n.Env(natsauth.Setup)...), "NATS_REPLICAS="+strconv.Itoa(replicas), "LOG_FORMAT=text")
		b, err := cmd.CombinedOutput()
		if err == nil {
			if out != nil {
				_, _ = out.Write(b)
			}
			return nil
		}
		last = b
		select {
		case <-ctx.Done():
			return fmt.Errorf("topology: natsadmin declare did not succeed: %w; its last words:\n%s", ctx.Err(), last)
		case <-time.After(time.Second):
		}
	}
}

// Stop stops every node (SIGTERM), within 10s each.
func (n *NATS) Stop() error {
	var errs []error
	for _, node := range n.Nodes {
		if err := node.Stop(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// WaitHealthy waits until the node answers its monitoring /healthz with 200: JetStream
// enabled, a meta leader known, every stream and consumer it holds current. After a
// restart that is when it has caught up.
func (n *Node) WaitHealthy(ctx context.Context) error {
	return n.waitOK(ctx, n.MonitorURL+"/healthz", 60*time.Second, "healthy")
}

// Healthy asks the node's /healthz once; it says why not.
func (n *Node) Healthy(ctx context.Context) (bool, string) {
	return httpOK(ctx, n.MonitorURL+"/healthz")
}

// waitOK asks url every 100 ms until it answers 200 (nil), the process exits, timeout
// passes, or ctx ends (ctx's error: a Ctrl-C is not a timeout).
func (p *Proc) waitOK(ctx context.Context, url string, timeout time.Duration, state string) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		if !p.Running() {
			return fmt.Errorf("topology: %s exited (%v) before it was %s", p.Name, p.Err(), state)
		}
		ok, why := httpOK(wctx, url)
		if ok {
			return nil
		}
		last = why
		if err := bus.Sleep(wctx, 100*time.Millisecond); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("topology: waiting for %s to be %s: %w", p.Name, state, ctx.Err())
			}
			return fmt.Errorf("topology: %s not %s within %s: %s", p.Name, state, timeout, last)
		}
	}
}

// httpOK asks url once with a 2s timeout (healthcheck.Check): true on a 200, else why
// not.
func httpOK(ctx context.Context, url string) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := healthcheck.Check(ctx, url); err != nil {
		return false, err.Error()
	}
	return true, ""
}
