package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lexhq/gstjobs/internal/localpg"
)

// `make run` as a developer meets it, driven with the real nats CLI and no flags but the
// server: the launcher starts NATS, PostgreSQL, the demo data and every service on a
// fresh data directory and prints the dashboard's address; what an attacker with the
// CLI tries (a forged result, status, run order, Run Now on the gateway's .api subject,
// a pause written to jobs_config) is refused by the server with a permissions
// violation and leaves no trace in audit_log or jobs_config; `nats pub` runs a job,
// `nats sub 'jobs.>'` shows its status and result, the run lands in audit_log; the
// README's looks (stream, consumer and key-value reads) work; a malformed trigger gets
// a clear rejection; Ctrl-C stops everything within seconds; a second start keeps the
// data and does not load the demo again.
func TestMakeRunAndTheNatsCLI(t *testing.T) {
	natsBin := natsCLI(t)
	bin := filepath.Join(t.TempDir(), "devstack")
	buildDevstack(t, bin)
	dataDir, err := localpg.MkdirTemp("devstack-e2e-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dataDir) })
	natsPort, pgPort := freePort(t), freePort(t)
	env := append(os.Environ(),
		"DATA_DIR="+dataDir, fmt.Sprint("NATS_PORT=", natsPort), fmt.Sprint("PG_PORT=", pgPort),
		"HTTP_ADDR=127.0.0.1:0", "NATS_URL=", "DATABASE_URL=", "LOG_LEVEL=warn")

	first := startDevstack(t, bin, env)
	if !strings.Contains(first.output(), "Sign in as a demo user") {
		t.Errorf("development banner has no sign-in links:\n%s", first.output())
	}
	natsEnv := append(os.Environ(), "NATS_URL="+first.natsURL)

	// nats sub 'jobs.>' — no flags beyond the server, which NATS_URL gives.
	sub := exec.Command(natsBin, "sub", "jobs.>")
	sub.Env = natsEnv
	subOut := &syncBuffer{}
	sub.Stdout, sub.Stderr = subOut, subOut
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Process.Kill(); _ = sub.Wait() })
	waitFor(t, "nats sub to subscribe", func() bool { return strings.Contains(subOut.String(), "Subscribing on jobs.>") })

	// Without credentials the CLI is the developer user: the server refuses whatever
	// only a service may do, and the CLI prints the server's words.
	for _, forged := range []struct{ args []string }{
		{[]string{"pub", "jobs.result.send-hearing-reminders", `{"job_name":"send-hearing-reminders","status":"success","run_id":"forged-result","finished_at":"2099-01-01T00:00:00Z","results":{}}`}},
		{[]string{"pub", "jobs.status.check-sla-and-overdue", `{"run_id":"forged-status","job_name":"check-sla-and-overdue","state":"queued","source":"api","trigger_id":"forged-trigger","requested_by":"Priya Mehta"}`}},
		{[]string{"pub", "jobs.run.check-sla-and-overdue", `{"run_id":"forged-run","job_name":"check-sla-and-overdue"}`}},
		{[]string{"pub", "jobs.trigger.check-sla-and-overdue.api", `{"reason":"forged","requester":{"tenant_id":"a0000000-0000-0000-0000-000000000000","profile_id":"x","name":"Forged Person"}}`}},
		{[]string{"kv", "put", "--timeout", "2s", "jobs_config", "check-sla-and-overdue", `{"paused":true,"updated_by":"forged"}`}},
	} {
		subject := forged.args[1]
		if forged.args[0] == "kv" {
			subject = "$KV.jobs_config.check-sla-and-overdue"
		}
		cmd := exec.Command(natsBin, forged.args...)
		cmd.Env = natsEnv
		out, err := cmd.CombinedOutput()
		if want := `Permissions Violation for Publish to "` + subject + `"`; err == nil || !strings.Contains(string(out), want) {
			t.Errorf("nats %s: %v\n%s\nwant the server to refuse it: %s", strings.Join(forged.args, " "), err, out, want)
		}
	}
	if out, err := exec.Command(natsBin, "--server", first.natsURL, "kv", "get", "jobs_config", "check-sla-and-overdue").CombinedOutput(); err == nil && strings.Contains(string(out), "forged") {
		t.Errorf("jobs_config holds the forged pause:\n%s", out)
	}

	pub := exec.Command(natsBin, "pub", "jobs.trigger.check-sla-and-overdue", `{"reason":"before client meeting","requested_by":"dev@firm"}`)
	pub.Env = natsEnv
	if out, err := pub.CombinedOutput(); err != nil {
		t.Fatalf("nats pub: %v\n%s", err, out)
	}
	waitFor(t, "the run's status and result in nats sub", func() bool {
		out := subOut.String()
		return strings.Contains(out, `"state":"queued"`) && strings.Contains(out, `"state":"running"`) &&
			strings.Contains(out, `Received on "jobs.result.check-sla-and-overdue"`) &&
			strings.Contains(out, `"requested_by":"dev@firm"`) && strings.Contains(out, `"status":"success"`)
	})

	conn, err := pgx.Connect(context.Background(), first.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	waitFor(t, "the CLI-triggered run in audit_log", func() bool {
		var n int
		_ = conn.QueryRow(context.Background(), `SELECT count(*) FROM audit_log WHERE action_type = 'background_job_execution'
			AND details->>'requested_by' = 'dev@firm' AND details->>'reason' = 'before client meeting' AND details->>'status' = 'success'`).Scan(&n)
		return n == 1
	})

	// The refused messages went nowhere: the CLI's run, published after them, is in
	// audit_log, and nothing forged is.
	var forgedRows int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM audit_log
		WHERE details::text LIKE '%forged%' OR details::text LIKE '%Forged Person%' OR details::text LIKE '%2099-01-01%'`).Scan(&forgedRows); err != nil || forgedRows != 0 {
		t.Errorf("audit_log has %d rows of the refused messages (%v); want none", forgedRows, err)
	}

	// The README's looks.
	for _, look := range [][]string{
		{"stream", "info", "JOBS"},
		{"consumer", "info", "JOBS", "run-check-sla-and-overdue"},
		{"kv", "get", "jobs_runs", "check-sla-and-overdue"},
	} {
		cmd := exec.Command(natsBin, look...)
		cmd.Env = natsEnv
		if out, err := cmd.CombinedOutput(); err != nil || strings.Contains(string(out), "iolation") {
			t.Errorf("nats %s: %v\n%s", strings.Join(look, " "), err, out)
		}
	}

	bad := exec.Command(natsBin, "pub", "jobs.trigger.check-sla-and-overdue", `not json`)
	bad.Env = natsEnv
	if out, err := bad.CombinedOutput(); err != nil {
		t.Fatalf("nats pub: %v\n%s", err, out)
	}
	waitFor(t, "a rejection for the malformed trigger", func() bool {
		return strings.Contains(subOut.String(), `"status":"rejected"`) && strings.Contains(subOut.String(), "not valid JSON")
	})

	var tenants, runs int
	_ = conn.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM tenants), (SELECT count(*) FROM audit_log WHERE action_type = 'background_job_execution')`).Scan(&tenants, &runs)
	conn.Close(context.Background())
	first.interrupt(t)

	second := startDevstack(t, bin, env)
	conn2, err := pgx.Connect(context.Background(), second.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close(context.Background())
	var tenants2, runs2 int
	_ = conn2.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM tenants), (SELECT count(*) FROM audit_log WHERE action_type = 'background_job_execution')`).Scan(&tenants2, &runs2)
	if tenants2 != tenants || runs2 < runs {
		t.Errorf("after a restart: %d tenants and %d runs, before %d and %d; data must be kept and the demo not reloaded", tenants2, runs2, tenants, runs)
	}
	second.interrupt(t)
}

// buildDevstack builds the launcher of this working tree into path, as `make run`
// builds it into bin/devstack.
func buildDevstack(t *testing.T, path string) {
	t.Helper()
	build := exec.Command("go", "build", "-o", path, "../cmd/devstack")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/devstack: %v\n%s", err, out)
	}
}

type devstack struct {
	cmd     *exec.Cmd
	out     *syncBuffer
	exited  chan error
	url     string
	urls    []string // every dashboard the banner names (make cluster has two)
	natsURL string
	dbURL   string
	pgDir   string // where the private PostgreSQL keeps its files
	dataDir string // DATA_DIR, as the launcher resolved it
}

func (d *devstack) output() string { return d.out.String() }

// startDevstack starts the launcher bin with env, after setup (if any) has had its say
// on the command (directory, OS user), and waits for its banner.
func startDevstack(t *testing.T, bin string, env []string, setup ...func(*exec.Cmd)) *devstack {
	t.Helper()
	d := &devstack{cmd: exec.Command(bin), out: &syncBuffer{}, exited: make(chan error, 1)}
	d.cmd.Env = env
	for _, f := range setup {
		f(d.cmd)
	}
	pr, pw := io.Pipe()
	d.cmd.Stdout, d.cmd.Stderr = pw, pw
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
		}
	})
	banner := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			d.out.Write([]byte(line + "\n"))
			field := func(prefix string) string {
				return strings.TrimSpace(strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), prefix))[0])
			}
			switch trimmed := strings.TrimSpace(line); {
			case strings.HasPrefix(trimmed, "Dashboard:"):
				d.urls = append(d.urls, field("Dashboard:"))
				d.url = d.urls[0]
			case strings.HasPrefix(trimmed, "NATS:"):
				d.natsURL = field("NATS:")
			case strings.HasPrefix(trimmed, "PostgreSQL:"):
				d.dbURL = field("PostgreSQL:")
			case strings.HasPrefix(trimmed, "files in "):
				d.pgDir = field("files in ")
			case strings.HasPrefix(trimmed, "Data:"):
				d.dataDir = field("Data:")
			case strings.HasPrefix(trimmed, "Press Ctrl-C"):
				once.Do(func() { close(banner) })
			}
		}
	}()
	select {
	case <-banner:
	case err := <-d.exited:
		t.Fatalf("the launcher exited before printing the dashboard address: %v\n%s", err, d.output())
	case <-time.After(90 * time.Second):
		t.Fatalf("no dashboard address within 90s:\n%s", d.output())
	}
	if !strings.HasPrefix(d.url, "http://") || d.natsURL == "" || d.dbURL == "" {
		t.Fatalf("banner lacks addresses (dashboard %q nats %q db %q):\n%s", d.url, d.natsURL, d.dbURL, d.output())
	}
	return d
}

// interrupt is Ctrl-C: everything must stop cleanly within seconds.
func (d *devstack) interrupt(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.exited:
		if err != nil {
			t.Fatalf("launcher exited with %v after Ctrl-C:\n%s", err, d.output())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("launcher still running 20s after Ctrl-C:\n%s", d.output())
	}
}

// natsCLI finds the natscli binary the developer workflow uses (make tools installs it).
func natsCLI(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("nats"); err == nil {
		return p
	}
	out, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(out)), "bin", "nats")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the nats CLI is not installed: run `make tools` (go install github.com/nats-io/natscli/nats@v0.5.0)")
	}
	return p
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
