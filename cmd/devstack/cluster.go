package main

// make cluster: the production topology on one machine, every part a process of its
// own, from the binaries of make build (internal/topology): three nats-server
// processes clustered with JetStream, each from the production configuration
// (deploy/nats-server.conf's users and permissions) with authenticated routes; every
// stream and bucket declared at three replicas by natsadmin as the setup user;
// PostgreSQL and the demo data as make run has them; two tickers, two replicas of each
// job service and two gateways, each service connected as its own NATS user.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/natsauth"
	"github.com/lexhq/gstjobs/internal/ops"
	"github.com/lexhq/gstjobs/internal/topology"
)

// The cluster's ports, from NATS_PORT, HTTP_ADDR and OPS_PORT: node i (0, 1, 2) takes
// NATS_PORT+i for clients, +2000+i for routes and +4000+i for monitoring; gateway i
// HTTP_ADDR's port +i; the other services OPS_PORT plus their offset (the defaults of
// their OPS_ADDR: sla 9101, ticker 9102, reminders 9103, analytics 9104), +10 for the
// second replica.
const (
	routePortOffset   = 2000
	monitorPortOffset = 4000
	clusterPortSpan   = monitorPortOffset + 2
	opsPortSpan       = 13
)

var opsPortOffset = map[string]int{natsauth.SLA: 0, natsauth.Ticker: 1, natsauth.Reminders: 2, natsauth.Analytics: 3}

// clusterPort is topology.Config.Port for this configuration.
func (c config) clusterPort(name, kind string) int {
	base, nth, _ := strings.Cut(name, "-")
	i, _ := strconv.Atoi(nth)
	i-- // nats-1 is the first
	switch kind {
	case "client":
		return c.natsPort + i
	case "route":
		return c.natsPort + routePortOffset + i
	case "monitor":
		return c.natsPort + monitorPortOffset + i
	case "http":
		_, port, _ := net.SplitHostPort(c.httpAddr)
		p, _ := strconv.Atoi(port)
		return p + i
	default: // ops
		return c.opsPort + opsPortOffset[base] + 10*i
	}
}

// clusterListeners are every address make cluster's servers will listen on.
func (c config) clusterListeners() []listener {
	var ls []listener
	for _, node := range topology.NATSNodes {
		for _, kind := range []string{"client", "route", "monitor"} {
			ls = append(ls, listener{"NATS_PORT", localAddr(c.clusterPort(node, kind))})
		}
	}
	if !c.dbGiven {
		ls = append(ls, listener{"PG_PORT", localAddr(c.pgPort)})
	}
	for _, svc := range topology.Services {
		for i := 1; i <= replicas; i++ {
			name := svc + "-" + strconv.Itoa(i)
			if svc == natsauth.Gateway {
				ls = append(ls, listener{"HTTP_ADDR", localAddr(c.clusterPort(name, "http"))})
			} else {
				ls = append(ls, listener{"OPS_PORT", localAddr(c.clusterPort(name, "ops"))})
			}
		}
	}
	return ls
}

// replicas of every service.
const replicas = 2

func runCluster(ctx context.Context, log *slog.Logger) error {
	cfg, release, err := prepare(true)
	if err != nil {
		return err
	}
	defer release()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	bins := topology.Binaries(filepath.Dir(exe))
	if err := bins.Check(append([]string{"nats-server", "natsadmin"}, topology.Services...)...); err != nil {
		return err
	}

	// PostgreSQL, the migrations and the demo data, as make run has them.
	_, freshDemo, stopDB, err := startDatabase(ctx, &cfg, log)
	defer stopDB()
	if err != nil {
		return err
	}

	// NATS and the services, each a process; their output on the terminal, a line at a
	// time with its name in front, but for the NATS nodes', which go to files.
	logs := filepath.Join(cfg.dataDir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return dataDirProblem(cfg.dataDir, "is not writable", err)
	}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var mu sync.Mutex
	out := func(name string) io.Writer {
		if strings.HasPrefix(name, "nats-") {
			f, err := os.OpenFile(filepath.Join(logs, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				log.Warn("cannot keep a NATS node's log", "node", name, "err", err)
				return nil
			}
			files = append(files, f)
			return f
		}
		return topology.Lines(os.Stdout, fmt.Sprintf("%-11s| ", name), &mu)
	}
	log.Info("starting three NATS nodes and the services, each a process of its own", "binaries", string(bins))
	topo, err := topology.Start(ctx, topology.Config{
		Bin: bins, Dir: filepath.Join(cfg.dataDir, "nats"), DatabaseURL: cfg.dbURL, Replicas: replicas, Port: cfg.clusterPort,
		Env: []string{"JOBS_TIMEZONE=" + cfg.tz.String()},
		GatewayEnv: []string{"AUTH_JWT_SECRET=" + cfg.jwtSecret, "OPERATOR_JWT_SECRET=" + cfg.operatorSecret,
			"GATEWAY_DEV_MODE=" + strconv.FormatBool(cfg.devMode)},
		Out: out,
	})
	if err != nil {
		return fmt.Errorf("the cluster did not start: %s (the NATS nodes' logs are in %s)", plain(err), logs)
	}
	defer func() {
		if err := topo.Stop(); err != nil {
			log.Warn("stopping the cluster", "err", err)
		}
	}()
	cfg.natsURL = topo.NATS.URL()
	// The watchers end before the deferred Stop above stops the services, so that a
	// return on an error is not told as every service exiting.
	watching, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	for _, s := range topo.Services {
		go func() {
			select {
			case <-s.Exited():
				if watching.Err() == nil {
					log.Error("a service exited; the others go on, and its replica does its work", "service", s.Name, "err", s.Err())
				}
			case <-watching.Done():
			}
		}()
	}

	if freshDemo {
		// So that every card shows real numbers at once: a developer's trigger.
		opts, _ := topo.NATS.Credentials(natsauth.Developer).Options()
		nc, js, err := bus.Connect(ctx, cfg.natsURL, "make cluster", ops.ForService(log, "devstack"), opts...)
		if err == nil {
			err = triggerAll(ctx, js)
			nc.Close()
		}
		if err != nil {
			log.Warn("could not run the jobs once for the demo", "err", err)
		}
	}
	gws := topo.Gateways()
	links, err := cfg.signInLinks(gws[0].URL())
	if err != nil {
		return err
	}
	printClusterBanner(topo, cfg, logs, links)

	// Wait, then stop the services, then NATS, then PostgreSQL.
	<-ctx.Done()
	fmt.Println("\nStopping…")
	return nil
}

func printClusterBanner(topo *topology.Topology, cfg config, logs string, links map[string]string) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n  Background Jobs Monitor is running as a cluster: every service a process of its own.\n\n")
	for i, gw := range topo.Gateways() {
		note := ""
		if i > 0 {
			note = "; a sign-in on one holds on both"
		}
		fmt.Fprintf(&b, "  Dashboard:  %s   (%s%s)\n", gw.URL(), gw.Name, note)
	}
	dev := topo.NATS.Credentials(natsauth.Developer)
	fmt.Fprintf(&b, "  NATS:       %s\n", cfg.natsURL)
	fmt.Fprintf(&b, "              three nats-server processes with JetStream, every stream and bucket at three replicas;\n")
	fmt.Fprintf(&b, "              each service its own user; the nats CLI as the developer user:\n")
	fmt.Fprintf(&b, "              nats --server %s --user %s --password %s sub 'jobs.>'\n", cfg.natsURL, dev.User, dev.Password)
	fmt.Fprintf(&b, "  Processes:  (kill one, or kill -9 a NATS node, and watch the others go on)\n")
	for _, n := range topo.NATS.Nodes {
		fmt.Fprintf(&b, "    %-11s pid %-7d %s   monitor %s   log %s\n", n.Name, n.Pid(), n.ClientURL, n.MonitorURL, filepath.Join(logs, n.Name+".log"))
	}
	for _, s := range topo.Services {
		fmt.Fprintf(&b, "    %-11s pid %-7d %s\n", s.Name, s.Pid(), s.URL()+"metrics")
	}
	writeBannerEnd(&b, cfg, links)
	fmt.Println(b.String())
}
