package e2e

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gopkg.in/yaml.v3"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/natsauth"
)

// composeFile is what the tests read of a compose file.
type composeFile struct {
	Services map[string]composeService
}

type composeService struct {
	Image       string
	Build       struct{ Args map[string]string }
	Command     []string
	Environment map[string]string
	Volumes     []string
	DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
	Deploy      struct{ Replicas int }
}

func readCompose(t *testing.T, path string) composeFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("%s does not parse: %v", path, err)
	}
	return c
}

// No Docker engine runs here, so the production-like stack is checked the way it can
// be: compose.yaml parses, each service it builds exists and builds statically the way
// the Dockerfile builds it, and each gets the configuration its binary requires.
func TestComposeStackIsConsistent(t *testing.T) {
	compose := readCompose(t, "../compose.yaml")
	required := map[string][]string{
		"ticker":    {"NATS_URL", "NATS_USER", "NATS_PASSWORD", "DATABASE_URL"},
		"sla":       {"NATS_URL", "NATS_USER", "NATS_PASSWORD", "DATABASE_URL"},
		"reminders": {"NATS_URL", "NATS_USER", "NATS_PASSWORD", "DATABASE_URL", "SMTP_URL", "SMTP_FROM"},
		"analytics": {"NATS_URL", "NATS_USER", "NATS_PASSWORD", "DATABASE_URL"},
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
		if svc.Build.Args["SERVICE"] != name {
			t.Errorf("%s: build arg SERVICE = %q", name, svc.Build.Args["SERVICE"])
		}
		for _, v := range want {
			if svc.Environment[v] == "" {
				t.Errorf("%s: environment lacks %s", name, v)
			}
		}
		if name != "gateway" && svc.Deploy.Replicas < 2 {
			t.Errorf("%s: %d replicas; the stack runs two to show replicas cooperate", name, svc.Deploy.Replicas)
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
	if setup := compose.Services["nats-setup"]; setup.Build.Args["PACKAGE"] != "./cmd/natsadmin" {
		t.Errorf("nats-setup: build arg PACKAGE = %q; want ./cmd/natsadmin", setup.Build.Args["PACKAGE"])
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

// exampleEnv is deploy/nats.env.example, as compose would read it with --env-file.
func exampleEnv(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile("../deploy/nats.env.example")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("deploy/nats.env.example: %q is not NAME=value", line)
		}
		env[k] = v
	}
	return env
}

// passwordRef is how compose hands a service its password: ${NATS_SLA_PASSWORD:?…}.
func passwordRef(value string) string {
	v, ok := strings.CutPrefix(value, "${")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(strings.TrimSuffix(v, "}"), ":")
	return name
}

// What is tried: reading compose.yaml, compose.cluster.yaml and deploy/ as docker
// compose would. What must hold: every service connects as its own NATS user, with its
// own password variable and no other's; the NATS server runs deploy/nats-server.conf
// and gets every user's password; nats-setup declares as the setup user before the
// services start; deploy/nats.env.example names every password; and the cluster's
// nodes run the same configuration and join each other's routes with a password.
func TestComposeGivesEachServiceItsOwnNATSUser(t *testing.T) {
	example := exampleEnv(t)
	for _, u := range natsauth.Users() {
		if example[natsauth.PasswordVar(u)] == "" {
			t.Errorf("deploy/nats.env.example has no %s", natsauth.PasswordVar(u))
		}
	}
	if example[natsauth.RoutePasswordVar] == "" {
		t.Errorf("deploy/nats.env.example has no %s", natsauth.RoutePasswordVar)
	}
	compose := readCompose(t, "../compose.yaml")
	users := append(natsauth.Services(), natsauth.Setup)
	for _, u := range users {
		name := u
		if u == natsauth.Setup {
			name = "nats-setup"
		}
		svc, ok := compose.Services[name]
		if !ok {
			t.Errorf("compose.yaml has no %s service", name)
			continue
		}
		if svc.Environment["NATS_USER"] != u {
			t.Errorf("%s: NATS_USER = %q; want %q", name, svc.Environment["NATS_USER"], u)
		}
		if got := passwordRef(svc.Environment["NATS_PASSWORD"]); got != natsauth.PasswordVar(u) {
			t.Errorf("%s: NATS_PASSWORD = %q; want ${%s}", name, svc.Environment["NATS_PASSWORD"], natsauth.PasswordVar(u))
		}
		for k, v := range svc.Environment {
			if k != "NATS_PASSWORD" && strings.Contains(v, "_PASSWORD") {
				t.Errorf("%s: %s = %q hands it another password", name, k, v)
			}
		}
		if u != natsauth.Setup && svc.DependsOn["nats-setup"].Condition != "service_completed_successfully" {
			t.Errorf("%s does not wait for nats-setup to declare the streams (depends_on: %v)", name, svc.DependsOn)
		}
	}
	if setup := compose.Services["nats-setup"]; !slices.Equal(setup.Command, []string{"declare"}) {
		t.Errorf("nats-setup runs %v; want natsadmin declare", setup.Command)
	}
	checkNATSNode := func(file, name string, svc composeService) {
		t.Helper()
		if !slices.Contains(svc.Command, "/etc/nats/nats-server.conf") || !slices.Contains(svc.Volumes, "./deploy/nats-server.conf:/etc/nats/nats-server.conf:ro") {
			t.Errorf("%s %s does not run deploy/nats-server.conf: command %v, volumes %v", file, name, svc.Command, svc.Volumes)
		}
		for _, u := range natsauth.Users() {
			if passwordRef(svc.Environment[natsauth.PasswordVar(u)]) != natsauth.PasswordVar(u) {
				t.Errorf("%s %s: the server lacks %s, which its configuration reads", file, name, natsauth.PasswordVar(u))
			}
		}
	}
	checkNATSNode("compose.yaml", "nats", compose.Services["nats"])

	// The cluster: each node the same configuration, routes only with the password.
	cluster := readCompose(t, "../compose.cluster.yaml")
	for _, name := range []string{"nats", "nats-2", "nats-3"} {
		node := cluster.Services[name]
		if name == "nats" {
			node.Volumes, node.Environment = compose.Services["nats"].Volumes, compose.Services["nats"].Environment
		}
		checkNATSNode("compose.cluster.yaml", name, node)
		// The command as the server parses it, with the configuration file of this
		// checkout and the example's passwords.
		args := slices.Clone(node.Command)
		for i, a := range args {
			a = strings.ReplaceAll(a, "/etc/nats/nats-server.conf", "../deploy/nats-server.conf")
			for {
				start := strings.Index(a, "${")
				if start < 0 {
					break
				}
				end := strings.Index(a[start:], "}")
				a = a[:start] + example[passwordRef(a[start:start+end+1])] + a[start+end+1:]
			}
			args[i] = a
		}
		for k, v := range example {
			t.Setenv(k, v)
		}
		opts, err := server.ConfigureOptions(flag.NewFlagSet("nats-server", flag.ContinueOnError), args, nil, nil, nil)
		if err != nil {
			t.Errorf("compose.cluster.yaml %s: nats-server %v: %v", name, args, err)
			continue
		}
		if opts.Cluster.Username != "route" || opts.Cluster.Password != example[natsauth.RoutePasswordVar] {
			t.Errorf("compose.cluster.yaml %s: routes accept user %q; want route with NATS_ROUTE_PASSWORD", name, opts.Cluster.Username)
		}
		if len(opts.Routes) != 2 {
			t.Errorf("compose.cluster.yaml %s: %d routes; want the two other nodes", name, len(opts.Routes))
		}
		for _, r := range opts.Routes {
			if p, _ := r.User.Password(); r.User.Username() != "route" || p != example[natsauth.RoutePasswordVar] {
				t.Errorf("compose.cluster.yaml %s: route %s does not present the route password", name, r.Redacted())
			}
		}
	}
	for _, svc := range []string{"ticker", "sla", "reminders", "analytics", "gateway", "nats-setup"} {
		if !strings.Contains(cluster.Services[svc].Environment["NATS_URL"], "nats-3:4222") {
			t.Errorf("compose.cluster.yaml %s: NATS_URL = %q; want every node", svc, cluster.Services[svc].Environment["NATS_URL"])
		}
	}
	if cluster.Services["nats-setup"].Environment["NATS_REPLICAS"] != "3" {
		t.Error("compose.cluster.yaml: nats-setup does not declare three replicas")
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
