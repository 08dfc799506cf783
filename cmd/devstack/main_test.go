package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lexhq/gstjobs/internal/localpg"
)

// internalName matches what a person running make run must never read: one of our
// package labels ("localpg: ") or a Go identifier qualified by one ("localpg.MkdirTemp").
var internalName = regexp.MustCompile(`\b(` + strings.Join(packageNames, "|") + `)(: |\.[A-Z])`)

func checkPlain(t *testing.T, msg string) {
	t.Helper()
	if m := internalName.FindString(msg); m != "" {
		t.Errorf("message names %q, one of our packages, which means nothing to whoever runs make run:\n%s", m, msg)
	}
}

func listen(t *testing.T) (port int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// What is tried: the launcher itself, started with each setting that stops it before
// any server starts. What must hold: it fails at once with a message naming the
// setting and what to set it to, and nothing of our code's insides.
func TestStartupProblemsNameTheSetting(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	held := t.TempDir()
	lock, err := claimDataDir(held)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })

	natsTaken, pgTaken, httpTaken := listen(t), listen(t), listen(t)
	tests := []struct {
		name string
		env  map[string]string
		want []string // every line of the message, in order
	}{
		{
			name: "NATS port in use",
			env:  map[string]string{"NATS_PORT": strconv.Itoa(natsTaken)},
			want: []string{fmt.Sprintf("port %d is in use (NATS_PORT): set NATS_PORT to a free port or stop what uses it", natsTaken)},
		},
		{
			name: "PostgreSQL port in use",
			env:  map[string]string{"PG_PORT": strconv.Itoa(pgTaken)},
			want: []string{fmt.Sprintf("port %d is in use (PG_PORT): set PG_PORT to a free port or stop what uses it", pgTaken)},
		},
		{
			name: "dashboard address in use",
			env:  map[string]string{"HTTP_ADDR": fmt.Sprint("127.0.0.1:", httpTaken)},
			want: []string{fmt.Sprintf("port %d is in use (HTTP_ADDR): set HTTP_ADDR to a free address such as 127.0.0.1:8081 or stop what uses it", httpTaken)},
		},
		{
			name: "every port in use, all reported at once",
			env:  map[string]string{"NATS_PORT": strconv.Itoa(natsTaken), "PG_PORT": strconv.Itoa(pgTaken), "HTTP_ADDR": fmt.Sprint("127.0.0.1:", httpTaken)},
			want: []string{
				fmt.Sprintf("port %d is in use (NATS_PORT)", natsTaken),
				fmt.Sprintf("port %d is in use (PG_PORT)", pgTaken),
				fmt.Sprintf("port %d is in use (HTTP_ADDR)", httpTaken),
			},
		},
		{
			name: "ports of servers that are given are not checked",
			env:  map[string]string{"NATS_PORT": strconv.Itoa(natsTaken), "NATS_URL": "nats://127.0.0.1:1", "PG_PORT": strconv.Itoa(pgTaken), "DATABASE_URL": "postgres://127.0.0.1:1/x", "HTTP_ADDR": fmt.Sprint("127.0.0.1:", httpTaken)},
			want: []string{fmt.Sprintf("port %d is in use (HTTP_ADDR)", httpTaken)},
		},
		{
			name: "port out of range",
			env:  map[string]string{"PG_PORT": "70000"},
			want: []string{"configuration: PG_PORT=70000 is not a port: set PG_PORT to a number from 1 to 65535"},
		},
		{
			name: "port not a number",
			env:  map[string]string{"NATS_PORT": "four"},
			want: []string{`configuration: NATS_PORT="four" is not a whole number`},
		},
		{
			name: "address without a port",
			env:  map[string]string{"HTTP_ADDR": "8080"},
			want: []string{`configuration: HTTP_ADDR="8080" is not host:port: set HTTP_ADDR to, for example, :8080 or 127.0.0.1:8080`},
		},
		{
			name: "data directory cannot be created",
			env:  map[string]string{"DATA_DIR": filepath.Join(file, "data")},
			want: []string{fmt.Sprintf("DATA_DIR=%s cannot be created (mkdir %s: not a directory): set DATA_DIR to a directory you can write", filepath.Join(file, "data"), file)},
		},
		{
			name: "data directory used by another make run",
			env:  map[string]string{"DATA_DIR": held},
			want: []string{fmt.Sprintf("another make run (pid %d) is using DATA_DIR=%s: stop it (Ctrl-C where it runs, or kill -INT %d), or set DATA_DIR to another directory", os.Getpid(), held, os.Getpid())},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{
				"DATA_DIR": t.TempDir(), "NATS_URL": "", "DATABASE_URL": "", "HTTP_ADDR": "127.0.0.1:0",
				"NATS_PORT": strconv.Itoa(freePort(t)), "PG_PORT": strconv.Itoa(freePort(t)),
			}
			for k, v := range tt.env {
				env[k] = v
			}
			for k, v := range env {
				t.Setenv(k, v)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			err := run(ctx, slog.New(slog.DiscardHandler))
			if err == nil {
				t.Fatalf("run succeeded; want it to fail with:\n%s", strings.Join(tt.want, "\n"))
			}
			msg := message(err)
			lines := strings.Split(msg, "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("message has %d lines, want %d:\n%s", len(lines), len(tt.want), msg)
			}
			for i, want := range tt.want {
				if !strings.HasPrefix(strings.TrimSpace(lines[i]), want) {
					t.Errorf("line %d of the message:\n%s\nwant it to begin with:\n%s", i+1, lines[i], want)
				}
			}
			checkPlain(t, msg)
		})
	}
}

// What is tried: each way PostgreSQL can fail to start once the settings have been
// checked, as localpg reports it. What must hold: the message names the setting to
// change and none of our packages.
func TestPostgresStartProblems(t *testing.T) {
	cfg := config{dataDir: "/home/dev/gstjobs/.data", pgPort: 5433}
	inData := localpg.Placement{Dir: "/home/dev/gstjobs/.data/pg"}
	moved := localpg.Placement{Dir: "/var/lib/gstjobs/0123456789abcdef/pg", Why: "the OS user postgres, which runs PostgreSQL, cannot enter /home/dev (mode 0700)"}
	tests := []struct {
		name  string
		err   error
		moved bool // PostgreSQL's files are outside DATA_DIR
		want  []string
	}{
		{
			name: "port taken between the check and the start",
			err:  fmt.Errorf("localpg: port 5433 on 127.0.0.1: %w: choose another with the PG_PORT variable", localpg.ErrPortInUse),
			want: []string{"port 5433 is in use (PG_PORT): set PG_PORT to a free port or stop what uses it"},
		},
		{
			name: "binaries not installed",
			err:  localpg.ErrBinariesNotFound,
			want: []string{"the private PostgreSQL cannot start: PostgreSQL server binaries not found", "apt-get install postgresql", "DATABASE_URL"},
		},
		{
			name: "root without a postgres user",
			err:  fmt.Errorf("localpg: running as root, which PostgreSQL refuses, and %w to run it as: create one", localpg.ErrNoPostgresUser),
			want: []string{"the private PostgreSQL cannot start: running as root", "set DATABASE_URL to a PostgreSQL server of your own"},
		},
		{
			name: "left-over server on the files",
			err:  fmt.Errorf("localpg: /home/dev/gstjobs/.data/pg: %w (pid 42, port 5433), probably left over from an earlier run: stop it with `kill -INT 42`, then start again", localpg.ErrAlreadyRunning),
			want: []string{"the private PostgreSQL of DATA_DIR=/home/dev/gstjobs/.data cannot start: /home/dev/gstjobs/.data/pg: a PostgreSQL server is already running", "kill -INT 42", "set DATA_DIR to another directory"},
		},
		{
			name: "files that are not a cluster",
			err:  fmt.Errorf("localpg: /home/dev/gstjobs/.data/pg is not empty but %w (no PG_VERSION)", localpg.ErrNotACluster),
			want: []string{"DATA_DIR=/home/dev/gstjobs/.data", "is not empty but holds no PostgreSQL cluster", "set DATA_DIR to another directory"},
		},
		{
			name: "files out of the postgres user's reach",
			err:  fmt.Errorf("localpg: OS user postgres %w: /home is mode 0700", localpg.ErrUnreachable),
			want: []string{"cannot use its files in /home/dev/gstjobs/.data/pg, from DATA_DIR=/home/dev/gstjobs/.data", "set DATA_DIR to a directory the postgres user can reach"},
		},
		{
			name: "anything else",
			err:  fmt.Errorf("localpg: initdb: %w", errors.New("exit status 1")),
			want: []string{"the private PostgreSQL did not start on port 5433 (PG_PORT) with its files in /home/dev/gstjobs/.data/pg, from DATA_DIR=/home/dev/gstjobs/.data: initdb: exit status 1; to start afresh, set DATA_DIR to a new directory"},
		},
		{
			name:  "anything else, with the files outside DATA_DIR",
			err:   fmt.Errorf("localpg: create data directory: %w", &os.PathError{Op: "mkdir", Path: "/var/lib/gstjobs", Err: syscall.EROFS}),
			moved: true,
			want:  []string{"with its files in /var/lib/gstjobs/0123456789abcdef/pg, from DATA_DIR=/home/dev/gstjobs/.data: create data directory: mkdir /var/lib/gstjobs: read-only file system; or set DATA_DIR to a directory the postgres user can reach"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := inData
			if tt.moved {
				p = moved
			}
			msg := message(pgStartProblem(cfg, p, tt.err))
			for _, want := range tt.want {
				if !strings.Contains(msg, want) {
					t.Errorf("message:\n%s\nwant it to contain:\n%s", msg, want)
				}
			}
			checkPlain(t, msg)
		})
	}
}

func TestPlain(t *testing.T) {
	tests := []struct{ in, want string }{
		{"localpg: initdb: exit status 1", "initdb: exit status 1"},
		{"configuration: catalog: JOBS_TIMEZONE=\"Mars\" is not an IANA time zone", "configuration: JOBS_TIMEZONE=\"Mars\" is not an IANA time zone"},
		{"jobservice: bus: worker: consumer: nats: timeout", "consumer: nats: timeout"},
		{"a\ndb: b; gateway: c (natsembed: d)", "a\nb; c (d)"},
		{"the sla service", "the sla service"},                                               // a name that is not a label
		{"worker:thing", "worker:thing"},                                                     // not a label either
		{"dial tcp 127.0.0.1:1: connect: refused", "dial tcp 127.0.0.1:1: connect: refused"}, // not ours
	}
	for _, tt := range tests {
		if got := plain(errors.New(tt.in)); got != tt.want {
			t.Errorf("plain(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// packageNames must cover every package of the workspace, or a new package's label
// would reach people.
func TestPackageNamesAreKnown(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.Name}}", "github.com/lexhq/gstjobs/...").Output()
	if err != nil {
		var stderr []byte
		if exit, ok := err.(*exec.ExitError); ok {
			stderr = exit.Stderr
		}
		t.Fatalf("go list, to learn the workspace's package names: %v\n%s", err, stderr)
	}
	for _, name := range strings.Fields(string(out)) {
		if name != "main" && !slices.Contains(packageNames, name) {
			t.Errorf("package %s is missing from packageNames; its error labels would reach people", name)
		}
	}
}

// What is tried: where the private PostgreSQL's files go for a DATA_DIR in a 0700
// directory, as the suite's user. What must hold: as root, where the postgres user
// can reach them, the same at every start; as anyone else, in DATA_DIR.
func TestPostgresFilesPlace(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(home, "gstjobs", ".data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	first, err := pgDataDir(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := pgDataDir(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Errorf("a second start would keep PostgreSQL's files in %s, the first in %s; want the same place", again.Dir, first.Dir)
	}
	if os.Geteuid() != 0 {
		if first.Dir != filepath.Join(dataDir, "pg") || first.Moved() {
			t.Errorf("as a normal user, PostgreSQL's files go to %+v, want %s", first, filepath.Join(dataDir, "pg"))
		}
		return
	}
	if ok, _ := filepath.Match(filepath.Join(rootPGHome, "????????????????", "pg"), first.Dir); !ok || !strings.Contains(first.Why, "cannot enter "+home) {
		t.Errorf("as root, PostgreSQL's files go to %+v; want them in %s/<hash>/pg, saying that the postgres user cannot enter %s", first, rootPGHome, home)
	}
	other, err := pgDataDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if other.Dir == first.Dir {
		t.Errorf("two DATA_DIRs share PostgreSQL's files in %s", first.Dir)
	}
}

// The three addresses share one shape of message, whatever stops the listening.
func TestListenProblems(t *testing.T) {
	tests := []struct {
		setting, addr string
		err           error
		want          string
	}{
		{"NATS_PORT", "127.0.0.1:4222", syscall.EADDRINUSE, "port 4222 is in use (NATS_PORT): set NATS_PORT to a free port or stop what uses it"},
		{"PG_PORT", "127.0.0.1:5433", syscall.EADDRINUSE, "port 5433 is in use (PG_PORT): set PG_PORT to a free port or stop what uses it"},
		{"HTTP_ADDR", ":8080", syscall.EADDRINUSE, "port 8080 is in use (HTTP_ADDR): set HTTP_ADDR to a free address such as 127.0.0.1:8081 or stop what uses it"},
		{"NATS_PORT", "127.0.0.1:80", syscall.EACCES, "port 80 is reserved for root (NATS_PORT): set NATS_PORT to a port above 1023"},
		{"HTTP_ADDR", "10.9.9.9:8080", syscall.EADDRNOTAVAIL, "10.9.9.9:8080 is not an address of this machine (HTTP_ADDR): set HTTP_ADDR to a free address such as 127.0.0.1:8081"},
		{"PG_PORT", "127.0.0.1:5433", errors.New("odd"), "cannot listen on 127.0.0.1:5433 (PG_PORT): listen tcp: bind: odd: set PG_PORT to a free port"},
	}
	for _, tt := range tests {
		err := &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", tt.err)}
		if got := listenProblem(tt.setting, tt.addr, err).Error(); !strings.HasPrefix(got, tt.want) {
			t.Errorf("listenProblem(%s, %s, %v) =\n%s\nwant it to begin with\n%s", tt.setting, tt.addr, tt.err, got, tt.want)
		}
	}
}

// Tried: make cluster's port settings near the top of the range. Must hold: a base
// port whose span runs past 65535 is refused naming the setting as given and the
// highest base that fits, not the sum; a base port that fits is taken.
func TestClusterPortRanges(t *testing.T) {
	if err := checkPortRange("NATS_PORT", 62000, clusterPortSpan); err == nil ||
		err.Error() != fmt.Sprintf("NATS_PORT=62000: make cluster also uses the ports up to NATS_PORT+%d: set NATS_PORT to at most %d", clusterPortSpan, 65535-clusterPortSpan) {
		t.Errorf("NATS_PORT=62000 in a cluster: %v", err)
	}
	if err := checkPortRange("OPS_PORT", 0, opsPortSpan); err == nil || !strings.Contains(err.Error(), "OPS_PORT=0 is not a port") {
		t.Errorf("OPS_PORT=0 in a cluster: %v", err)
	}
	if err := checkPortRange("NATS_PORT", 4222, clusterPortSpan); err != nil {
		t.Errorf("NATS_PORT=4222 in a cluster: %v", err)
	}
}
