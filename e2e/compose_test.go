package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gopkg.in/yaml.v3"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/healthcheck"
	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/internal/natsauth"
	"github.com/lexhq/gstjobs/internal/topology"
)

// No Docker engine runs here, so the compose stacks are checked the way they can be:
// loaded by compose-go, the library docker compose itself loads them with (the files
// merged, extends and !override applied, every ${VARIABLE} interpolated from the env
// file, the result validated against the compose specification), and what that gives
// compared with what make cluster runs (internal/topology) and the cluster tests test.

// The gateway's secrets, which compose reads from the shell (compose.yaml's header).
var composeShellEnv = []string{
	"AUTH_JWT_SECRET=compose-test-product-secret-of-32-bytes",
	"OPERATOR_JWT_SECRET=compose-test-operator-secret-of-32-bytes",
}

// clusterReplicas is how many of each service make cluster runs (cmd/devstack).
const clusterReplicas = 2

// loadCompose loads files as `docker compose --env-file deploy/nats.env.example -f …`
// does from the root of the checkout, with shellEnv as the shell's environment (which
// wins over the env file, as in docker compose).
func loadCompose(shellEnv []string, files ...string) (*types.Project, error) {
	var paths []string
	for _, f := range files {
		paths = append(paths, filepath.Join("..", f))
	}
	opts, err := cli.NewProjectOptions(paths,
		cli.WithWorkingDirectory(".."),
		cli.WithEnv(shellEnv),
		cli.WithEnvFiles("../deploy/nats.env.example"),
		cli.WithDotEnv,
		cli.WithName("gstjobs"),
	)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

func mustLoadCompose(t *testing.T, files ...string) *types.Project {
	t.Helper()
	p, err := loadCompose(composeShellEnv, files...)
	if err != nil {
		t.Fatalf("docker compose -f %s does not load: %v", strings.Join(files, " -f "), err)
	}
	return p
}

// composeProjects are the two stacks: compose.yaml alone, and with the cluster overlay.
func composeProjects(t *testing.T) map[string]*types.Project {
	t.Helper()
	return map[string]*types.Project{
		"compose.yaml":                        mustLoadCompose(t, "compose.yaml"),
		"compose.yaml + compose.cluster.yaml": mustLoadCompose(t, "compose.yaml", "compose.cluster.yaml"),
	}
}

// exampleEnv is deploy/nats.env.example, as compose reads it with --env-file.
func exampleEnv(t *testing.T) map[string]string {
	t.Helper()
	env, err := dotenv.Read("../deploy/nats.env.example")
	if err != nil {
		t.Fatalf("deploy/nats.env.example: %v", err)
	}
	return env
}

func envOf(svc types.ServiceConfig, name string) string {
	if v := svc.Environment[name]; v != nil {
		return *v
	}
	return ""
}

func replicasOf(svc types.ServiceConfig) int {
	if svc.Deploy != nil && svc.Deploy.Replicas != nil {
		return *svc.Deploy.Replicas
	}
	if svc.Scale != nil {
		return *svc.Scale
	}
	return 1
}

// serviceOf is the service a compose service runs the binary of (its build arg
// SERVICE: ticker, sla, …), or "".
func serviceOf(svc types.ServiceConfig) string {
	if svc.Build == nil || svc.Build.Args["SERVICE"] == nil {
		return ""
	}
	if s := *svc.Build.Args["SERVICE"]; slices.Contains(topology.Services, s) {
		return s
	}
	return ""
}

// natsNodes are the compose services that run a nats-server, by name.
func natsNodes(p *types.Project) []string {
	var nodes []string
	for name, svc := range p.Services {
		if strings.HasPrefix(svc.Image, "nats:") {
			nodes = append(nodes, name)
		}
	}
	slices.Sort(nodes)
	return nodes
}

// natsServerVersion is the nats-server internal/go.mod requires, which make build
// builds and make cluster and the cluster tests run.
func natsServerVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../internal/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "github.com/nats-io/nats-server/v2" {
			return f[1]
		}
	}
	t.Fatal("internal/go.mod does not require github.com/nats-io/nats-server/v2")
	return ""
}

// productionNATSOptions is deploy/nats-server.conf as nats-server reads it, with the
// example's passwords in the environment.
func productionNATSOptions(t *testing.T) *server.Options {
	t.Helper()
	for k, v := range exampleEnv(t) {
		t.Setenv(k, v)
	}
	opts, err := server.ProcessConfigFile("../deploy/nats-server.conf")
	if err != nil {
		t.Fatalf("nats-server cannot read deploy/nats-server.conf: %v", err)
	}
	return opts
}

// What is tried: compose.yaml loaded alone, and the services built the way the
// Dockerfile builds them. What must hold: it is valid on its own; each service it
// builds exists and builds statically; each gets the configuration its binary
// requires; the ticker and the job services run two replicas.
func TestComposeStackIsConsistent(t *testing.T) {
	compose := mustLoadCompose(t, "compose.yaml")
	required := map[string][]string{
		"ticker":    {"NATS_URL", "NATS_USER", "NATS_PASSWORD", "DATABASE_URL", "OPS_ADDR"},
		"sla":       {"NATS_URL", "NATS_USER", "NATS_PASSWORD", "DATABASE_URL", "OPS_ADDR"},
		"reminders": {"NATS_URL", "NATS_USER", "NATS_PASSWORD", "DATABASE_URL", "OPS_ADDR", "SMTP_URL", "SMTP_FROM"},
		"analytics": {"NATS_URL", "NATS_USER", "NATS_PASSWORD", "DATABASE_URL", "OPS_ADDR"},
		"gateway":   {"NATS_URL", "NATS_USER", "NATS_PASSWORD", "DATABASE_URL", "AUTH_JWT_SECRET", "OPERATOR_JWT_SECRET", "HTTP_ADDR"},
	}
	dockerfile, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dockerfile), "CGO_ENABLED=0 go build") {
		t.Fatal("the Dockerfile no longer builds static binaries; update this test with it")
	}
	outDir := t.TempDir()
	for name, want := range required {
		svc, ok := compose.Services[name]
		if !ok {
			t.Errorf("compose.yaml has no %s service", name)
			continue
		}
		if serviceOf(svc) != name {
			t.Errorf("%s: build arg SERVICE = %q", name, serviceOf(svc))
		}
		for _, v := range want {
			if envOf(svc, v) == "" {
				t.Errorf("%s: environment lacks %s", name, v)
			}
		}
		if name != "gateway" && replicasOf(svc) != clusterReplicas {
			t.Errorf("%s: %d replicas; the stack runs %d to show replicas cooperate", name, replicasOf(svc), clusterReplicas)
		}
	}
	// One build of all five and natsadmin, as the Dockerfile builds each: static, no cgo.
	args := []string{"build", "-trimpath", "-o", outDir + "/", "./cmd/natsadmin"}
	for name := range required {
		args = append(args, "./services/"+name+"/cmd/"+name)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("the services do not build as the Dockerfile builds them: %v\n%s", err, out)
	}
	setup := compose.Services["nats-setup"]
	if setup.Build == nil || setup.Build.Args["PACKAGE"] == nil || *setup.Build.Args["PACKAGE"] != "./cmd/natsadmin" {
		t.Errorf("nats-setup: build %+v; want build arg PACKAGE=./cmd/natsadmin", setup.Build)
	} else if !strings.Contains(string(dockerfile), "${PACKAGE}") {
		t.Error("the Dockerfile does not build the PACKAGE build arg, which nats-setup sets")
	}
	for _, name := range append(slices.Collect(maps.Keys(required)), "natsadmin") {
		if _, err := os.Stat(filepath.Join(outDir, name)); err != nil {
			t.Errorf("no %s binary after the build: %v", name, err)
		}
	}
	for _, dep := range []string{"nats", "postgres"} {
		if compose.Services[dep].Image == "" {
			t.Errorf("compose.yaml has no %s image", dep)
		}
	}
}

// What is tried: compose.yaml with compose.cluster.yaml, merged as docker compose
// merges them. What must hold: it is make cluster's topology. Three NATS nodes, of
// the image of the nats-server internal/go.mod requires, and nats-setup declaring at
// three replicas; two of the ticker, of each job service and of the gateway, the
// gateways on two host ports and no host port published twice; every service's
// NATS_URL lists every node.
func TestComposeClusterIsTheTestedTopology(t *testing.T) {
	cluster := mustLoadCompose(t, "compose.yaml", "compose.cluster.yaml")
	nodes := natsNodes(cluster)
	if want := []string{"nats", "nats-2", "nats-3"}; !slices.Equal(nodes, want) || len(nodes) != len(topology.NATSNodes) {
		t.Fatalf("NATS nodes %v; want %v, as many as make cluster's %v", nodes, want, topology.NATSNodes)
	}
	if got := envOf(cluster.Services["nats-setup"], "NATS_REPLICAS"); got != strconv.Itoa(len(topology.NATSNodes)) {
		t.Errorf("nats-setup declares NATS_REPLICAS=%q; make cluster declares every stream and bucket at %d", got, len(topology.NATSNodes))
	}

	// Two of every service, as make cluster has them.
	count := map[string]int{}
	var gateways []string
	for name, svc := range cluster.Services {
		if s := serviceOf(svc); s != "" {
			count[s] += replicasOf(svc)
			if s == natsauth.Gateway {
				gateways = append(gateways, name)
			}
		}
	}
	for _, s := range topology.Services {
		if count[s] != clusterReplicas {
			t.Errorf("%s: %d replicas in all; make cluster runs %d", s, count[s], clusterReplicas)
		}
	}

	// Each gateway on a host port of its own; no host port published twice (a fixed
	// published port on a service of two replicas would collide too).
	published := map[string]string{}
	var gatewayPorts []string
	for name, svc := range cluster.Services {
		for _, p := range svc.Ports {
			if p.Published == "" {
				continue
			}
			if replicasOf(svc) > 1 {
				t.Errorf("%s publishes host port %s with %d replicas: they would collide", name, p.Published, replicasOf(svc))
			}
			if other, ok := published[p.Published]; ok {
				t.Errorf("host port %s is published by %s and by %s", p.Published, other, name)
			}
			published[p.Published] = name
			if serviceOf(svc) == natsauth.Gateway {
				_, port, _ := strings.Cut(envOf(svc, "HTTP_ADDR"), ":")
				if strconv.Itoa(int(p.Target)) != port {
					t.Errorf("%s publishes %s:%d; its HTTP_ADDR is %q", name, p.Published, p.Target, envOf(svc, "HTTP_ADDR"))
				}
				gatewayPorts = append(gatewayPorts, p.Published)
			}
		}
	}
	if len(gatewayPorts) != clusterReplicas {
		t.Errorf("gateways %v reachable on host ports %v; want %d gateways on %d ports", gateways, gatewayPorts, clusterReplicas, clusterReplicas)
	}
	for _, name := range gateways {
		if got := envOf(cluster.Services[name], "AUTH_JWT_SECRET"); got != strings.TrimPrefix(composeShellEnv[0], "AUTH_JWT_SECRET=") {
			t.Errorf("%s: AUTH_JWT_SECRET = %q; want the shell's, the same on every gateway (a sign-in holds on both)", name, got)
		}
	}

	// The image is the nats-server that was tested, on every node of both stacks.
	version := natsServerVersion(t)
	wantImage := "nats:" + strings.TrimPrefix(version, "v") + "-alpine"
	for file, p := range composeProjects(t) {
		for _, node := range natsNodes(p) {
			if img := p.Services[node].Image; img != wantImage {
				t.Errorf("%s %s: image %s; internal/go.mod requires nats-server %s, which make cluster runs: use %s", file, node, img, version, wantImage)
			}
		}
	}

	// Every service, and nats-setup, may reach every node.
	port := productionNATSOptions(t).Port
	for file, p := range composeProjects(t) {
		var want []string
		for _, node := range natsNodes(p) {
			want = append(want, fmt.Sprintf("nats://%s:%d", node, port))
		}
		slices.Sort(want)
		for name, svc := range p.Services {
			if serviceOf(svc) == "" && name != "nats-setup" {
				continue
			}
			urls := strings.Split(envOf(svc, "NATS_URL"), ",")
			slices.Sort(urls)
			if !slices.Equal(urls, want) {
				t.Errorf("%s %s: NATS_URL = %q; want every node, %s", file, name, envOf(svc, "NATS_URL"), strings.Join(want, ","))
			}
		}
	}
}

// What is tried: both stacks as docker compose loads them. What must hold: every
// service and the gateways are stopped with a grace longer than their own shutdown
// grace, and no shorter than make cluster gives them; every long-running service has
// a health check, the services' being the binary's own probe of /readyz on the
// address it listens on; and the services start only once every NATS node and
// PostgreSQL are healthy and nats-setup has succeeded.
func TestComposeHealthChecksGraceAndStartOrder(t *testing.T) {
	dockerfile, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dockerfile), "COPY --from=build /out/service /service") {
		t.Fatal("the Dockerfile no longer puts the binary at /service, which the health checks run; update this test with it")
	}
	probe := types.HealthCheckTest{"CMD", "/service", healthcheck.Arg}
	for file, p := range composeProjects(t) {
		nodes := natsNodes(p)
		for name, svc := range p.Services {
			service := serviceOf(svc)

			// Health: every long-running service; nats-setup runs once and exits, and
			// the others wait for it to have succeeded.
			if name == "nats-setup" {
				if svc.Restart != types.RestartPolicyOnFailure {
					t.Errorf("%s nats-setup: restart %q; want on-failure, so that a declaration tried too early is tried again", file, svc.Restart)
				}
			} else if hc := svc.HealthCheck; hc == nil || hc.Disable || len(hc.Test) < 2 || (hc.Test[0] != "CMD" && hc.Test[0] != "CMD-SHELL") {
				t.Errorf("%s %s: no health check (%+v)", file, name, hc)
			}
			if service == "" {
				continue
			}
			if hc := svc.HealthCheck; hc != nil && !slices.Equal(hc.Test, probe) {
				t.Errorf("%s %s: health check %v; want the binary's own probe, %v (the image has no shell)", file, name, hc.Test, probe)
			}
			addrVar := "OPS_ADDR"
			if service == natsauth.Gateway {
				addrVar = "HTTP_ADDR"
			}
			if _, err := healthcheck.URL(envOf(svc, addrVar)); err != nil {
				t.Errorf("%s %s: %s=%q, where the probe asks /readyz: %v", file, name, addrVar, envOf(svc, addrVar), err)
			}

			// Stopping: longer than the service's own grace, at least make cluster's.
			grace := jobservice.DefaultShutdownGrace
			if v := envOf(svc, "SHUTDOWN_GRACE"); v != "" {
				if grace, err = time.ParseDuration(v); err != nil {
					t.Errorf("%s %s: SHUTDOWN_GRACE=%q: %v", file, name, v, err)
				}
			}
			if svc.StopGracePeriod == nil {
				t.Errorf("%s %s: no stop_grace_period; compose's default, 10s, kills a run in its shutdown grace (%s)", file, name, grace)
			} else if g := time.Duration(*svc.StopGracePeriod); g <= grace || g < topology.StopGrace {
				t.Errorf("%s %s: stop_grace_period %s; want longer than its shutdown grace (%s) and at least make cluster's %s", file, name, g, grace, topology.StopGrace)
			}

			// Start order.
			want := map[string]string{"postgres": types.ServiceConditionHealthy, "nats-setup": types.ServiceConditionCompletedSuccessfully}
			for _, node := range nodes {
				want[node] = types.ServiceConditionHealthy
			}
			for dep, cond := range want {
				if got := svc.DependsOn[dep].Condition; got != cond {
					t.Errorf("%s %s: depends on %s with %q; want %s", file, name, dep, got, cond)
				}
			}
		}
		for _, node := range nodes {
			if got := p.Services["nats-setup"].DependsOn[node].Condition; got != types.ServiceConditionHealthy {
				t.Errorf("%s nats-setup: depends on %s with %q; want service_healthy: it declares on every node", file, node, got)
			}
		}
		// A condition service_healthy on a service without a health check never holds.
		for name, svc := range p.Services {
			for dep, d := range svc.DependsOn {
				if d.Condition == types.ServiceConditionHealthy && p.Services[dep].HealthCheck == nil {
					t.Errorf("%s %s waits for %s to be healthy, which has no health check", file, name, dep)
				}
			}
		}
	}
}

// What is tried: compose.yaml and compose.cluster.yaml as written, and the two stacks
// loaded with deploy/nats.env.example alone. What must hold: every variable the files
// read is set by the example or explained in its comments; the example's passwords
// are all there and all different; and without AUTH_JWT_SECRET compose refuses to
// start, saying so.
func TestComposeEnvFileIsComplete(t *testing.T) {
	example := exampleEnv(t)
	raw, err := os.ReadFile("../deploy/nats.env.example")
	if err != nil {
		t.Fatal(err)
	}
	var comments strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		if c, ok := strings.CutPrefix(strings.TrimSpace(line), "#"); ok {
			comments.WriteString(c + "\n")
		}
	}
	for _, file := range []string{"compose.yaml", "compose.cluster.yaml"} {
		data, err := os.ReadFile("../" + file)
		if err != nil {
			t.Fatal(err)
		}
		var dict map[string]any
		if err := yaml.Unmarshal(data, &dict); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		vars := template.ExtractVariables(dict, template.DefaultPattern)
		if len(vars) == 0 {
			t.Fatalf("%s reads no variables; update this test with it", file)
		}
		for name := range vars {
			if _, set := example[name]; !set && !strings.Contains(comments.String(), name) {
				t.Errorf("%s reads ${%s}, which deploy/nats.env.example neither sets nor explains", file, name)
			}
		}
	}

	seen := map[string]string{}
	for _, v := range append(slices.Collect(func(yield func(string) bool) {
		for _, u := range natsauth.Users() {
			if !yield(natsauth.PasswordVar(u)) {
				return
			}
		}
	}), natsauth.RoutePasswordVar) {
		p := example[v]
		if p == "" {
			t.Errorf("deploy/nats.env.example has no %s", v)
			continue
		}
		if other, ok := seen[p]; ok {
			t.Errorf("deploy/nats.env.example: %s and %s are the same password; the tests tell them apart by value", v, other)
		}
		seen[p] = v
	}

	for _, files := range [][]string{{"compose.yaml"}, {"compose.yaml", "compose.cluster.yaml"}} {
		_, err := loadCompose(nil, files...)
		if err == nil || !strings.Contains(err.Error(), "AUTH_JWT_SECRET") {
			t.Errorf("docker compose -f %s without AUTH_JWT_SECRET: %v; want it refused, naming AUTH_JWT_SECRET", strings.Join(files, " -f "), err)
		}
	}
}

// What is tried: both stacks as docker compose loads them, with the example's
// passwords; the cluster's node commands read by nats-server itself. What must hold:
// every service connects as its own NATS user, with its own password and no other's;
// every NATS node runs deploy/nats-server.conf and gets every user's password;
// nats-setup declares as the setup user; the cluster's nodes join each other's routes
// with the route password, only they have it, and the health check asks the
// configuration's monitoring port.
func TestComposeGivesEachServiceItsOwnNATSUser(t *testing.T) {
	example := exampleEnv(t)
	passwordOf := map[string]string{} // password → its variable
	for k, v := range example {
		passwordOf[v] = k
	}
	opts := productionNATSOptions(t)
	const confInContainer = "/etc/nats/nats-server.conf"
	for file, p := range composeProjects(t) {
		nodes := natsNodes(p)
		for name, svc := range p.Services {
			user := serviceOf(svc)
			if name == "nats-setup" {
				user = natsauth.Setup
			}
			switch {
			case slices.Contains(nodes, name):
				mounted := false
				for _, v := range svc.Volumes {
					mounted = mounted || v.Type == types.VolumeTypeBind && v.Target == confInContainer && v.ReadOnly &&
						v.Source == filepath.Join(p.WorkingDir, "deploy", "nats-server.conf")
				}
				if !slices.Contains(svc.Command, confInContainer) || !mounted {
					t.Errorf("%s %s does not run deploy/nats-server.conf: command %v, volumes %+v", file, name, svc.Command, svc.Volumes)
				}
				for _, u := range natsauth.Users() {
					if envOf(svc, natsauth.PasswordVar(u)) != example[natsauth.PasswordVar(u)] {
						t.Errorf("%s %s: the server lacks %s, which its configuration reads", file, name, natsauth.PasswordVar(u))
					}
				}
				if hc := svc.HealthCheck; hc == nil || !strings.Contains(strings.Join(hc.Test, " "), fmt.Sprintf(":%d/healthz", opts.HTTPPort)) {
					t.Errorf("%s %s: health check %+v does not ask /healthz on the configuration's monitoring port %d", file, name, hc, opts.HTTPPort)
				}
				continue
			case user == "":
				for k, v := range svc.Environment {
					if v != nil && passwordOf[*v] != "" {
						t.Errorf("%s %s: %s hands it %s", file, name, k, passwordOf[*v])
					}
				}
				continue
			}
			if got := envOf(svc, "NATS_USER"); got != user {
				t.Errorf("%s %s: NATS_USER = %q; want %q", file, name, got, user)
			}
			if got := envOf(svc, "NATS_PASSWORD"); got != example[natsauth.PasswordVar(user)] {
				t.Errorf("%s %s: NATS_PASSWORD is %s's; want ${%s}", file, name, passwordOf[got], natsauth.PasswordVar(user))
			}
			for k, v := range svc.Environment {
				if v != nil && k != "NATS_PASSWORD" && passwordOf[*v] != "" {
					t.Errorf("%s %s: %s hands it %s too", file, name, k, passwordOf[*v])
				}
			}
			if user == natsauth.Setup && !slices.Equal(svc.Command, types.ShellCommand{"declare"}) {
				t.Errorf("%s nats-setup runs %v; want natsadmin declare", file, svc.Command)
			}
		}
	}

	// The cluster: each node's command as nats-server parses it, with the configuration
	// file of this checkout.
	cluster := mustLoadCompose(t, "compose.yaml", "compose.cluster.yaml")
	route := example[natsauth.RoutePasswordVar]
	nodes := natsNodes(cluster)
	names := map[string]string{}
	for _, name := range nodes {
		args := slices.Clone(cluster.Services[name].Command)
		for i, a := range args {
			args[i] = strings.ReplaceAll(a, confInContainer, "../deploy/nats-server.conf")
		}
		opts, err := server.ConfigureOptions(flag.NewFlagSet("nats-server", flag.ContinueOnError), args, nil, nil, nil)
		if err != nil {
			t.Errorf("%s: nats-server %v: %v", name, args, err)
			continue
		}
		if other, ok := names[opts.ServerName]; ok || opts.ServerName == "" {
			t.Errorf("%s: server name %q, as %s's", name, opts.ServerName, other)
		}
		names[opts.ServerName] = name
		if opts.Cluster.Name != "gstjobs" || opts.Cluster.Username != "route" || opts.Cluster.Password != route {
			t.Errorf("%s: cluster %q accepts routes from user %q; want cluster gstjobs, user route with NATS_ROUTE_PASSWORD", name, opts.Cluster.Name, opts.Cluster.Username)
		}
		var peers []string
		for _, r := range opts.Routes {
			if p, _ := r.User.Password(); r.User.Username() != "route" || p != route {
				t.Errorf("%s: route %s does not present the route password", name, r.Redacted())
			}
			if r.Port() != strconv.Itoa(opts.Cluster.Port) {
				t.Errorf("%s: route %s; the nodes listen for routes on %d", name, r.Redacted(), opts.Cluster.Port)
			}
			peers = append(peers, r.Hostname())
		}
		slices.Sort(peers)
		others := slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return n == name })
		if !slices.Equal(peers, others) {
			t.Errorf("%s: routes to %v; want the other nodes, %v", name, peers, others)
		}
	}
	for name, svc := range cluster.Services {
		for k, v := range svc.Environment {
			if v != nil && strings.Contains(*v, route) {
				t.Errorf("%s: %s holds the route password, which only the nodes' commands need", name, k)
			}
		}
		if !slices.Contains(nodes, name) && strings.Contains(strings.Join(svc.Command, " "), route) {
			t.Errorf("%s is not a NATS node and has the route password", name)
		}
	}
}

// What is tried: `<service> healthcheck` of each of the five binaries, against a
// server that answers /readyz with 200 or 503 on the address the service reads, and
// against an address nobody listens on. What must hold: exit 0 only on the 200, 1
// otherwise, saying why; a gateway asks HTTP_ADDR, the others OPS_ADDR, and the other
// variable is not what is asked.
func TestHealthcheckProbeOfEveryServiceBinary(t *testing.T) {
	dir := t.TempDir()
	args := []string{"build", "-o", dir + "/"}
	for _, s := range topology.Services {
		args = append(args, "./services/"+s+"/cmd/"+s)
	}
	build := exec.Command("go", args...)
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	srv, ready := readyzServer(t)
	nobody := closedAddr(t)
	for _, s := range topology.Services {
		addrVar, otherVar := "OPS_ADDR", "HTTP_ADDR"
		if s == natsauth.Gateway {
			addrVar, otherVar = otherVar, addrVar
		}
		for _, tc := range []struct {
			name   string
			ready  bool
			addr   string
			code   int
			stderr string
		}{
			{"ready", true, srv, 0, ""},
			{"not ready", false, srv, 1, "503 Service Unavailable: not ready: nats: not connected"},
			{"nothing listening", true, nobody, 1, "nothing listens there: is the service running, and does it listen on " + addrVar},
		} {
			t.Run(s+"/"+tc.name, func(t *testing.T) {
				ready.Store(tc.ready)
				cmd := exec.Command(filepath.Join(dir, s), healthcheck.Arg)
				// The other variable points where nothing listens: not what is asked.
				cmd.Env = append(os.Environ(), addrVar+"="+tc.addr, otherVar+"="+nobody)
				var stdout, stderr strings.Builder
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				code := 0
				var exit *exec.ExitError
				if errors.As(err, &exit) {
					code = exit.ExitCode()
				} else if err != nil {
					t.Fatal(err)
				}
				if code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
					t.Errorf("%s %s with %s=%s: exit %d, stderr %q; want exit %d saying %q", s, healthcheck.Arg, addrVar, tc.addr, code, stderr.String(), tc.code, tc.stderr)
				}
				if tc.code == 0 && !strings.Contains(stdout.String(), "ready") {
					t.Errorf("stdout %q; want it to say ready", stdout.String())
				}
			})
		}
	}
}

// What is tried: deploy/nats-server.conf, read by nats-server itself with the example
// passwords in its environment, and a server started from it. What must hold: it is
// exactly what natsauth generates; it has every user with exactly natsauth's
// permissions and no default user; on the running server a client without credentials
// is refused, the setup user declares everything, each service's user finds what it
// uses and may publish its own job's status and not another service's result, and the
// developer user may trigger and not publish a result.
func TestProductionNATSConfigGivesEachUserOnlyItsPermissions(t *testing.T) {
	var want strings.Builder
	if err := natsauth.WriteServerConfig(&want); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../deploy/nats-server.conf")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want.String() {
		t.Fatal("deploy/nats-server.conf is not what internal/natsauth generates: run go run ./cmd/natsadmin config > deploy/nats-server.conf")
	}
	example := exampleEnv(t)
	for k, v := range example {
		t.Setenv(k, v)
	}
	opts, err := server.ProcessConfigFile("../deploy/nats-server.conf")
	if err != nil {
		t.Fatalf("nats-server cannot read deploy/nats-server.conf: %v", err)
	}
	if opts.NoAuthUser != "" || !opts.JetStream || opts.Port != 4222 {
		t.Errorf("no_auth_user %q, jetstream %v, port %d; want no default user, JetStream, 4222", opts.NoAuthUser, opts.JetStream, opts.Port)
	}
	if len(opts.Users) != len(natsauth.Users()) || len(opts.Nkeys) != 0 {
		t.Errorf("%d users and %d nkeys; want natsauth's %d users", len(opts.Users), len(opts.Nkeys), len(natsauth.Users()))
	}
	for _, u := range opts.Users {
		if !reflect.DeepEqual(u.Permissions, natsauth.Permissions(u.Username)) {
			t.Errorf("user %s: the configuration's permissions differ from natsauth's:\n%+v\n%+v", u.Username, u.Permissions, natsauth.Permissions(u.Username))
		}
		if u.Password != example[natsauth.PasswordVar(u.Username)] {
			t.Errorf("user %s: the password is not %s from the environment", u.Username, natsauth.PasswordVar(u.Username))
		}
	}

	opts.Port, opts.HTTPPort, opts.Host, opts.StoreDir, opts.NoLog, opts.NoSigs = -1, 0, "127.0.0.1", t.TempDir(), true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("the server from deploy/nats-server.conf did not start")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	url := srv.ClientURL()
	if nc, err := nats.Connect(url); !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Errorf("a client without credentials: %v; want refused", err)
	}
	ctx := context.Background()
	connect := func(user string) (*nats.Conn, jetstream.JetStream, <-chan error) {
		t.Helper()
		refused := make(chan error, 16)
		creds, _ := natsauth.Password(user, example[natsauth.PasswordVar(user)]).Options()
		nc, js, err := bus.Connect(ctx, url, "config test "+user, slog.New(slog.DiscardHandler),
			append(creds, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { refused <- err }))...)
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		t.Cleanup(nc.Close)
		return nc, js, refused
	}
	_, setupJS, _ := connect(natsauth.Setup)
	if err := bus.Ensure(ctx, setupJS, bus.Options{}); err != nil {
		t.Fatalf("the setup user declares: %v", err)
	}
	expectRefused := func(user string, nc *nats.Conn, refused <-chan error, allowed, denied string) {
		t.Helper()
		if err := nc.Publish(allowed, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := nc.Publish(denied, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-refused:
			if !strings.Contains(err.Error(), `Publish to "`+denied+`"`) {
				t.Errorf("%s: the server said %v; want %s refused and %s allowed", user, err, denied, allowed)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: %s was not refused", user, denied)
		}
	}
	for _, user := range natsauth.Services() {
		nc, js, refused := connect(user)
		if err := natsauth.CheckDeclared(ctx, js, user); err != nil {
			t.Errorf("%s: %v", user, err)
		}
		allowed := events.StatusSubject(catalog.CheckSLAAndOverdue) // the ticker's (missed) and sla's
		switch user {
		case natsauth.Reminders:
			allowed = events.StatusSubject(catalog.SendHearingReminders)
		case natsauth.Analytics:
			allowed = events.StatusSubject(catalog.CaptureAnalyticsSnapshot)
		case natsauth.Gateway:
			allowed = events.APITriggerSubject(catalog.CheckSLAAndOverdue)
		}
		denied := events.ResultSubject(catalog.SendHearingReminders)
		if user == natsauth.Reminders {
			denied = events.ResultSubject(catalog.CaptureAnalyticsSnapshot)
		}
		expectRefused(user, nc, refused, allowed, denied)
	}
	nc, _, refused := connect(natsauth.Developer)
	expectRefused(natsauth.Developer, nc, refused, events.TriggerSubject(catalog.CheckSLAAndOverdue), events.ResultSubject(catalog.SendHearingReminders))
}

// readyzServer answers /readyz as a service does: 200 while ready, else 503 with why.
func readyzServer(t *testing.T) (addr string, ready *atomic.Bool) {
	t.Helper()
	ready = &atomic.Bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != "/readyz":
			http.NotFound(w, r)
		case !ready.Load():
			http.Error(w, "not ready: nats: not connected", http.StatusServiceUnavailable)
		default:
			_, _ = w.Write([]byte("ready\n"))
		}
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), ready
}

// closedAddr is an address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(freePort(t))
}

// runProbe runs `bin healthcheck` with env: its exit code and what it said on stderr.
func runProbe(t *testing.T, bin string, env ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, healthcheck.Arg)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), stderr.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, stderr.String()
}

// What is tried: `sla healthcheck` beside a real sla process, on the real NATS (with
// the system's users) and PostgreSQL: while it runs, while its database is taken
// away, once it is given back, and after the process is killed. What must hold: 0
// while it is ready; 1, naming the database, while it is not; 0 again; and 1, saying
// nothing listens, once it is gone.
func TestHealthcheckProbeOfARealService(t *testing.T) {
	s := startStack(t, stackOptions{services: []string{}})
	bin := buildSLA(t)
	opsAddr := "OPS_ADDR=" + closedAddr(t)
	cmd := startSLA(t, bin, s, opsAddr)

	// The probe is asked again until it answers as expected, as docker asks it every
	// interval; it fails saying what it last answered.
	probeUntil := func(what string, ok func(code int, said string) bool) {
		t.Helper()
		var code int
		var said string
		if !poll(30*time.Second, 100*time.Millisecond, func() bool {
			code, said = runProbe(t, bin, opsAddr)
			return ok(code, said)
		}) {
			t.Fatalf("sla healthcheck: want %s; after 30s it still exits %d, saying %q", what, code, said)
		}
	}
	probeUntil("exit 0 beside a ready sla", func(code int, _ string) bool { return code == 0 })

	dbName, admin := s.dbName(), s.adminConn()
	setAllowConnections(t, admin, dbName, false)
	t.Cleanup(func() { setAllowConnections(t, admin, dbName, true) })
	probeUntil("exit 1 with a 503 naming the database, while the database is away", func(code int, said string) bool {
		return code == 1 && strings.Contains(said, "503") && strings.Contains(said, "database")
	})
	setAllowConnections(t, admin, dbName, true)
	probeUntil("exit 0 once the database is back", func(code int, _ string) bool { return code == 0 })

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if code, said := runProbe(t, bin, opsAddr); code != 1 || !strings.Contains(said, "nothing listens there") {
		t.Errorf("sla healthcheck after sla was killed: exit %d, %q; want 1, saying nothing listens", code, said)
	}
}
