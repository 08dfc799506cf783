package localpg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// newDataDir returns a data directory path inside a fresh temporary directory that
// the server's OS account can reach even when the tests run as root (t.TempDir's
// is 0700 root, which the postgres account cannot enter).
func newDataDir(t *testing.T) string {
	t.Helper()
	tmp, err := MkdirTemp("localpg-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	return filepath.Join(tmp, "data")
}

func testConfig(t *testing.T, dataDir string) Config {
	return Config{
		DataDir: dataDir,
		Fast:    true,
		Log:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestRestartKeepsData(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, newDataDir(t))
	cfg.Database = "app-db" // needs quoting: checks the identifier is sanitised

	s := start(t, cfg)
	if want := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/app-db?sslmode=disable", s.port); s.URL() != want {
		t.Errorf("URL() = %q, want %q", s.URL(), want)
	}
	conn := connect(t, s.URL())
	if _, err := conn.Exec(t.Context(), `CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')`); err != nil {
		t.Fatalf("create table: %v", err)
	}
	conn.Close(t.Context())
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v, want the first result (nil)", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("postmaster.pid after Stop: %v, want it removed by a clean shutdown", err)
	}

	s = start(t, cfg)
	var v string
	if err := connect(t, s.URL()).QueryRow(t.Context(), `SELECT v FROM kept`).Scan(&v); err != nil {
		t.Fatalf("read after restart: %v", err)
	}
	if v != "still here" {
		t.Errorf("after restart got %q, want %q", v, "still here")
	}
}

func TestPortTaken(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	cfg := testConfig(t, newDataDir(t))
	cfg.Port = port
	s, err := Start(t.Context(), cfg)
	if err == nil {
		s.Stop()
		t.Fatalf("Start on taken port %d succeeded, want ErrPortInUse", port)
	}
	t.Logf("Start on taken port: %v", err)
	if !errors.Is(err, ErrPortInUse) {
		t.Errorf("Start on taken port: %v, want ErrPortInUse", err)
	}
	for _, want := range []string{strconv.Itoa(port), "PG_PORT", "DATABASE_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

// A port taken between the check and postgres binding it is reported the same way,
// whether postgres exits complaining or the other server answers first.
func TestPortTakenByAnotherServerDuringStart(t *testing.T) {
	t.Parallel()
	other := start(t, testConfig(t, newDataDir(t)))
	s := start(t, testConfig(t, newDataDir(t)))
	if err := s.proc.Stop(fastShutdown, stopTimeout); err != nil {
		t.Fatal(err)
	}
	err := s.launch(t.Context(), other.port)
	t.Logf("launch on the other server's port: %v", err)
	if !errors.Is(err, ErrPortInUse) {
		t.Fatalf("launch on the other server's port: %v, want ErrPortInUse", err)
	}
	connect(t, other.URL())
}

func TestPortTakenDuringStart(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := start(t, testConfig(t, newDataDir(t)))
	if err := s.proc.Stop(fastShutdown, stopTimeout); err != nil {
		t.Fatal(err)
	}
	err = s.launch(t.Context(), l.Addr().(*net.TCPAddr).Port)
	t.Logf("launch on a taken port: %v", err)
	if !errors.Is(err, ErrPortInUse) {
		t.Fatalf("launch on a taken port: %v, want ErrPortInUse", err)
	}
}

func TestAlreadyRunning(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, newDataDir(t))
	s := start(t, cfg)

	second, err := Start(t.Context(), cfg)
	if err == nil {
		second.Stop()
		t.Fatal("second Start on the same data directory succeeded, want ErrAlreadyRunning")
	}
	t.Logf("second Start: %v", err)
	if !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Start: %v, want ErrAlreadyRunning", err)
	}
	for _, want := range []string{strconv.Itoa(s.proc.Pid()), strconv.Itoa(s.port)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	// The first server is unharmed.
	connect(t, s.URL())
}

// A server killed outright (as when `make run` is killed with SIGKILL along with its
// process group) leaves postmaster.pid behind; the next start must not trip on it.
func TestRestartAfterKill(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, newDataDir(t))
	s := start(t, cfg)
	if err := syscall.Kill(-s.proc.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.proc.Exited()
	if err := s.Stop(); err == nil {
		t.Error("Stop after the server was killed returned nil, want the exit reported")
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "postmaster.pid")); err != nil {
		t.Fatalf("want a stale postmaster.pid for this test: %v", err)
	}
	connect(t, start(t, cfg).URL())
}

// Tried: the server killed with kill -9 while one of its backends has not exited yet
// (stopped, so it still holds the server's shared memory, as a backend of a killed
// server does for a moment), then started again; the backend exits a second later.
// Must hold: Start waits for it and starts, instead of failing on postgres's
// "pre-existing shared memory block is still in use" (which a restart right after a
// kill met in CI).
func TestStartWaitsForAKilledServersLastProcess(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, newDataDir(t))
	s := start(t, cfg)
	var backend int
	if err := connect(t, s.URL()).QueryRow(t.Context(), "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(backend, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(backend, syscall.SIGKILL) })
	if err := syscall.Kill(s.proc.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.proc.Exited()
	released := time.Now().Add(time.Second)
	timer := time.AfterFunc(time.Second, func() { syscall.Kill(backend, syscall.SIGKILL) })
	defer timer.Stop()
	connect(t, start(t, cfg).URL())
	if time.Now().Before(released) {
		t.Errorf("the server started while the killed server's backend still held its shared memory")
	}
}

// After a reboot or container restart, the pid in a stale postmaster.pid may belong
// to an unrelated live process, on which postgres alone would refuse to start.
func TestStalePidFileOfOtherProcess(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, newDataDir(t))
	s := start(t, cfg)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	pidFile := fmt.Sprintf("%d\n%s\n0\n%d\n", other.Process.Pid, cfg.DataDir, s.port)
	if err := os.WriteFile(filepath.Join(cfg.DataDir, "postmaster.pid"), []byte(pidFile), 0o600); err != nil {
		t.Fatal(err)
	}
	connect(t, start(t, cfg).URL())
}

// Unix socket paths are limited to 107 bytes; a deep data directory must still work.
func TestLongDataDirUsesShortSocketDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(newDataDir(t), strings.Repeat("d", 60), strings.Repeat("e", 40))
	s := start(t, testConfig(t, dir))
	if s.sockDir == s.dataDir || !s.ownSockDir {
		t.Fatalf("socket directory %q for data directory of %d bytes, want a short one of its own", s.sockDir, len(s.dataDir))
	}
	connect(t, s.URL())
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.sockDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket directory %s after Stop: %v, want it removed", s.sockDir, err)
	}
}

func TestNonEmptyDirWithoutCluster(t *testing.T) {
	t.Parallel()
	dir := newDataDir(t)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "stray"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Start(t.Context(), testConfig(t, dir))
	if err == nil {
		s.Stop()
		t.Fatal("Start on a non-empty directory without a cluster succeeded")
	}
	if !strings.Contains(err.Error(), "no PG_VERSION") {
		t.Errorf("error %q does not explain the directory holds no cluster", err)
	}
}

// What is tried: a data directory under a 0700 directory the server's account does not
// own (t.TempDir is one). What must hold: the check names the directory and the remedy
// instead of letting initdb fail with a bare "Permission denied". The check runs for any
// user, with an account standing in for "postgres"; as root (CI), Start itself is tried.
func TestUnreachableDataDir(t *testing.T) {
	t.Parallel()
	parent := closedDir(t)
	dir := filepath.Join(parent, "data")
	err := stranger.checkReachable(dir)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), parent+" is mode 0700") || !strings.Contains(err.Error(), "chmod o+x "+parent) {
		t.Fatalf("checkReachable = %v; want ErrUnreachable naming %s, its mode and the remedy", err, parent)
	}
	if err := self().checkReachable(dir); err != nil {
		t.Fatalf("the directory's owner can reach it, yet checkReachable = %v", err)
	}
	if os.Geteuid() != 0 {
		return // only root hands the server to another account; the check above is the logic
	}
	s, err := Start(t.Context(), testConfig(t, dir))
	if err == nil {
		s.Stop()
		t.Fatal("Start in a directory the postgres account cannot reach succeeded")
	}
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("Start error %q, want ErrUnreachable", err)
	}
}

// closedDir makes a directory of mode 0700, ours: nobody else can enter it.
func closedDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "home")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// stranger stands in for the postgres account: in no group of ours, owner of nothing.
var stranger = &osAccount{name: "stranger", uid: 65533, gid: 65533, groups: []uint32{65533}}

func self() *osAccount {
	return &osAccount{name: "self", uid: uint32(os.Geteuid()), gid: uint32(os.Getegid()), groups: []uint32{uint32(os.Getegid())}}
}

// What is tried: every combination that decides where a cluster lives (whether the
// server's account can reach the preferred directory, and which of the two holds a
// cluster already). What must hold: preferred unless the account cannot reach it, and
// a cluster once made is found again at the next start.
func TestPlace(t *testing.T) {
	t.Parallel()
	asRoot := os.Geteuid() == 0
	whenRoot := func(s string) string {
		if asRoot {
			return s
		}
		return ""
	}
	closed := filepath.Join(closedDir(t), "pg")
	open, err := os.MkdirTemp("", "localpg-place-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(open) })
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name              string
		account           *osAccount
		preferred         string
		clusterIn         []string // "preferred", "fallback"
		noFallback        bool
		wantFallback      bool
		wantWhyContaining string
	}{
		{name: "as ourselves", account: nil, preferred: closed},
		{name: "account that owns the directory", account: self(), preferred: closed},
		{name: "account that cannot enter a parent", account: stranger, preferred: closed, wantFallback: true, wantWhyContaining: "OS user stranger, which runs PostgreSQL, cannot enter " + filepath.Dir(closed) + " (mode 0700)"},
		// The cluster in preferred is the test's. Run as a normal user, that user owns it
		// and reaches it, so it stays (clusterOwner runs it as its owner); run as root,
		// root owns it, so the server's account must reach it, and cannot.
		{name: "unreachable cluster in preferred", account: stranger, preferred: closed, clusterIn: []string{"preferred"}, wantFallback: asRoot, wantWhyContaining: whenRoot("cannot enter")},
		{name: "unreachable, no fallback given", account: stranger, preferred: closed, noFallback: true},
		{name: "reachable", account: stranger, preferred: filepath.Join(open, "a", "pg")},
		{name: "reachable, cluster in fallback from an earlier start", account: stranger, preferred: filepath.Join(open, "b", "pg"), clusterIn: []string{"fallback"}, wantFallback: true, wantWhyContaining: "earlier start"},
		{name: "reachable, clusters in both", account: stranger, preferred: filepath.Join(open, "c", "pg"), clusterIn: []string{"preferred", "fallback"}},
		{name: "unreachable, cluster in fallback", account: stranger, preferred: closed, clusterIn: []string{"fallback"}, wantFallback: true, wantWhyContaining: "cannot enter"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			preferred := tt.preferred
			fallback := filepath.Join(open, fmt.Sprint("fallback", i), "pg")
			for _, where := range tt.clusterIn {
				dir := map[string]string{"preferred": preferred, "fallback": fallback}[where]
				if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.RemoveAll(dir) })
			}
			if tt.noFallback {
				fallback = ""
			}
			got, err := place(tt.account, preferred, fallback)
			if err != nil {
				t.Fatalf("place: %v", err)
			}
			want := preferred
			if tt.wantFallback {
				want = fallback
			}
			if got.Dir != want || got.Moved() != tt.wantFallback {
				t.Errorf("place = %+v, want Dir %s (moved: %t)", got, want, tt.wantFallback)
			}
			if !strings.Contains(got.Why, tt.wantWhyContaining) {
				t.Errorf("place says why %q, want it to contain %q", got.Why, tt.wantWhyContaining)
			}
		})
	}
}

func TestFindBinaries(t *testing.T) {
	dir, err := FindBinaries()
	if err != nil {
		t.Fatal(err)
	}
	if !hasServerBinaries(dir) {
		t.Errorf("FindBinaries() = %q, which lacks postgres or initdb", dir)
	}
}

func TestBinariesNotFound(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := findBinaries(filepath.Join(t.TempDir(), "*", "bin"))
	if !errors.Is(err, ErrBinariesNotFound) {
		t.Fatalf("findBinaries with nothing installed: %v, want ErrBinariesNotFound", err)
	}
	if !strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Errorf("error %q does not name the remedy", err)
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int // sign
	}{
		{"15", "9.6", 1},
		{"9.6", "10", -1},
		{"16", "16", 0},
		{"10", "9", 1},
	}
	for _, tt := range tests {
		got := compareVersions(tt.a, tt.b)
		if (got > 0) != (tt.want > 0) || (got < 0) != (tt.want < 0) {
			t.Errorf("compareVersions(%q, %q) = %d, want sign %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// What is tried: a cluster that a normal user's `make run` made in their 0700 home
// (here: one handed, with its parent, to the OS user nobody, a table in it), placed
// and started by root. What must hold: Place keeps it where it is, and root runs the
// server as the cluster's owner, not as the postgres account (which cannot enter the
// owner's directories: the start failed with "fork/exec .../postgres: permission
// denied"), with the data there. The logic part, as anyone: a cluster directory root
// owns is the server account's to run (postgres refuses root), one a normal user owns
// is that user's.
func TestRootStartsAClusterAsItsOwner(t *testing.T) {
	t.Parallel()
	dir := newDataDir(t)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// Ours, as a normal user: ourselves. Root's: the server's account, since postgres
	// refuses to run as root.
	want := uint32(os.Geteuid())
	if want == 0 {
		want = stranger.uid
	}
	if got, err := clusterOwner(dir, stranger); err != nil || got.uid != want {
		t.Fatalf("clusterOwner of a directory of ours = %+v, %v; want uid %d", got, err, want)
	}
	if os.Geteuid() != 0 {
		return // only root hands the server to another account; the check above is the logic
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, dir)
	s := start(t, cfg)
	if _, err := connect(t, s.URL()).Exec(t.Context(), `CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')`); err != nil {
		t.Fatalf("create table: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	nobody, err := lookupAccount("nobody")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "-R", "nobody:"+strconv.Itoa(int(nobody.gid)), dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
	home := filepath.Dir(dir) // as a 0700 home of nobody's: the postgres account cannot enter it
	if err := os.Chown(home, int(nobody.uid), int(nobody.gid)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	fallback := filepath.Join(t.TempDir(), "fallback")
	if p, err := Place(dir, fallback); err != nil || p.Dir != dir || p.Moved() {
		t.Errorf("Place = %+v, %v; want the cluster kept where it is, %s", p, err, dir)
	}

	s = start(t, cfg)
	if s.runAs == nil || s.runAs.uid != nobody.uid {
		t.Errorf("server runs as %+v, want the cluster's owner nobody (uid %d)", s.runAs, nobody.uid)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.proc.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("\nUid:\t%d\t", nobody.uid); !strings.Contains(string(status), want) {
		t.Errorf("the postgres process's status has no %q:\n%s", want, status)
	}
	var v string
	if err := connect(t, s.URL()).QueryRow(t.Context(), `SELECT v FROM kept`).Scan(&v); err != nil || v != "still here" {
		t.Fatalf("read after the restart as the owner: %q, %v; want %q", v, err, "still here")
	}
}
