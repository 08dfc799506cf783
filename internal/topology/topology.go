// Package topology runs the production topology on one machine as separate OS
// processes, for `make cluster` (cmd/devstack -cluster) and the end-to-end cluster
// tests: a cluster of real nats-server processes with JetStream, each from the
// production configuration (natsauth's users and permissions, as
// deploy/nats-server.conf has them) with routes only the route user may join; the
// streams and buckets declared at three replicas by `natsadmin declare` as the setup
// user; and the binaries of `make build`, several replicas of each service, each
// connected as its own NATS user. Every process may be stopped (SIGTERM), killed
// (kill -9) and started again on the same ports and the same store, as a node or a
// pod would be.
package topology

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/lexhq/gstjobs/internal/natsauth"
)

// Services are the services, in the order they start (the reverse of the order they
// stop): what schedules, what runs, what watches.
var Services = []string{natsauth.Ticker, natsauth.SLA, natsauth.Reminders, natsauth.Analytics, natsauth.Gateway}

// Config of a topology.
type Config struct {
	Bin Binaries
	// Dir holds NATS's configuration and stores (NATSConfig.Dir).
	Dir string
	// DatabaseURL is the PostgreSQL every service uses; it must be
	// migrated and hold what the services expect (the services migrate it too).
	DatabaseURL string
	// Replicas of each service (2).
	Replicas int
	// Port gives every listener its port: a NATS node's ("client", "route",
	// "monitor"), a gateway's ("http") and the other services' health and metrics
	// ("ops"). Names are nats-1…3, gateway-1, sla-2 and so on.
	Port func(name, kind string) int
	// Env is added to every service's environment (JOBS_TIMEZONE, LOG_LEVEL, …);
	// GatewayEnv to the gateways' (AUTH_JWT_SECRET, GATEWAY_DEV_MODE, …).
	Env, GatewayEnv []string
	// Out receives a process's output.
	Out func(name string) io.Writer
	// Passwords of the NATS users (natsauth.NewPasswords) and of the routes; made
	// here when empty.
	Passwords     map[string]string
	RoutePassword string
}

// Topology is the running system.
type Topology struct {
	NATS     *NATS
	Services []*Service
}

// Service is one replica of a service.
type Service struct {
	*Proc
	// User is the service, and its NATS user: ticker, sla, reminders, analytics, gateway.
	User string
	// Addr is where it answers /readyz and /metrics: a gateway's HTTP_ADDR, the
	// others' OPS_ADDR.
	Addr string
}

// URL is the service's HTTP address: a gateway's dashboard.
func (s *Service) URL() string { return "http://" + s.Addr + "/" }

// Ready asks the service's /readyz once; it says why not.
func (s *Service) Ready(ctx context.Context) (bool, string) {
	return httpOK(ctx, s.URL()+"readyz")
}

// WaitReady waits until the service answers /readyz with 200, failing if it exits.
func (s *Service) WaitReady(ctx context.Context, timeout time.Duration) error {
	return s.waitOK(ctx, s.URL()+"readyz", timeout, "ready")
}

// NATSNodes are the three nodes' names.
var NATSNodes = []string{"nats-1", "nats-2", "nats-3"}

// Start starts NATS, declares everything at three replicas, starts cfg.Replicas of
// every service and waits until each is ready.
func Start(ctx context.Context, cfg Config) (*Topology, error) {
	if err := cfg.Bin.Check(append([]string{"nats-server", "natsadmin"}, Services...)...); err != nil {
		return nil, err
	}
	if cfg.Replicas < 1 {
		cfg.Replicas = 2
	}
	if cfg.Passwords == nil {
		cfg.Passwords = natsauth.NewPasswords()
	}
	if cfg.RoutePassword == "" {
		cfg.RoutePassword = natsauth.NewPassword()
	}
	out := func(name string) io.Writer {
		if cfg.Out == nil {
			return nil
		}
		return cfg.Out(name)
	}
	n, err := StartNATS(ctx, NATSConfig{
		Bin: cfg.Bin.Path("nats-server"), Dir: cfg.Dir, Nodes: NATSNodes, Port: cfg.Port,
		Passwords: cfg.Passwords, RoutePassword: cfg.RoutePassword, Out: out,
	})
	if err != nil {
		return nil, err
	}
	t := &Topology{NATS: n}
	dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := n.Declare(dctx, cfg.Bin.Path("natsadmin"), len(NATSNodes), out("natsadmin")); err != nil {
		n.Stop()
		return nil, err
	}
	for _, user := range Services {
		for i := 1; i <= cfg.Replicas; i++ {
			t.Services = append(t.Services, newService(cfg, n, user, i, out))
		}
	}
	for _, s := range t.Services {
		if err := s.Start(); err != nil {
			t.Stop()
			return nil, err
		}
	}
	for _, s := range t.Services {
		if err := s.WaitReady(ctx, 60*time.Second); err != nil {
			t.Stop()
			return nil, err
		}
	}
	return t, nil
}

func newService(cfg Config, n *NATS, user string, replica int, out func(string) io.Writer) *Service {
	name := user + "-" + strconv.Itoa(replica)
	env := append(os.Environ(), cfg.Env...)
	env = append(env, n.Env(user)...)
	var addr string
	if user == natsauth.Gateway {
		addr = fmt.Sprintf("%s:%d", host, cfg.Port(name, "http"))
		env = append(env, cfg.GatewayEnv...)
		env = append(env, "HTTP_ADDR="+addr)
	} else {
		addr = fmt.Sprintf("%s:%d", host, cfg.Port(name, "ops"))
		env = append(env, "OPS_ADDR="+addr)
	}
	if user == natsauth.Ticker {
		env = append(env, "TICKER_INSTANCE="+name)
	}
	// The ticker too: it reads each firm's time zone there.
	env = append(env, "DATABASE_URL="+cfg.DatabaseURL)
	return &Service{Proc: newProc(name, cfg.Bin.Path(user), nil, env, out(name)), User: user, Addr: addr}
}

// Service is the replica named name (sla-2), or nil.
func (t *Topology) Service(name string) *Service {
	for _, s := range t.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Gateways are the gateway replicas.
func (t *Topology) Gateways() []*Service {
	var gws []*Service
	for _, s := range t.Services {
		if s.User == natsauth.Gateway {
			gws = append(gws, s)
		}
	}
	return gws
}

// StopGrace bounds a service's shutdown: longer than a worker's shutdown grace (20s),
// so that a run in progress is handed back, not cut off.
const StopGrace = 30 * time.Second

// stopOrder is the order the services stop in: first what people use, then what
// runs the jobs, all at once, then what schedules them.
var stopOrder = [][]string{{natsauth.Gateway}, {natsauth.SLA, natsauth.Reminders, natsauth.Analytics}, {natsauth.Ticker}}

// Stop stops the services, gateways first and tickers last, then NATS. It reports
// every process that exited with an error or had to be killed.
func (t *Topology) Stop() error {
	var errs []error
	for _, stage := range stopOrder {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, s := range t.Services {
			if !slices.Contains(stage, s.User) {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Stop(StopGrace); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	if err := t.NATS.Stop(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
