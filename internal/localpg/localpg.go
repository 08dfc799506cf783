package localpg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lexhq/gstjobs/internal/child"
)

// Errors that callers may want to tell apart with errors.Is; the wrapped messages
// name the remedy.
var (
	ErrBinariesNotFound = errors.New("localpg: PostgreSQL server binaries not found (looked in PATH and /usr/lib/postgresql/*/bin): install them (apt-get install postgresql) or set DATABASE_URL to an existing server")
	ErrPortInUse        = errors.New("address already in use")
	ErrAlreadyRunning   = errors.New("a PostgreSQL server is already running on this data directory")
	ErrNoPostgresUser   = errors.New(`no "postgres" OS user`)
	// ErrUnreachable means that the OS account the server runs as (postgres, when we
	// are root) cannot enter some parent of the data directory. [Place] chooses a
	// directory it can reach; [MkdirTemp] makes a throwaway one.
	ErrUnreachable = errors.New("cannot reach the data directory")
	// ErrNotACluster means the data directory is neither empty nor a cluster, which
	// initdb would refuse.
	ErrNotACluster = errors.New("holds no PostgreSQL cluster")

	// errOldServerLingers: postgres refuses to start while processes of a server
	// killed on the same data directory (kill -9 of its process group, a crash) still
	// hold its shared memory. They exit within moments; Start waits up to lingerWait.
	errOldServerLingers = errors.New("processes of an earlier server on this data directory still hold its shared memory")
)

const (
	// defaultStartTimeout bounds Start when the caller's ctx has no deadline: initdb
	// plus a cold start take a few seconds, so 30s means something is wrong.
	defaultStartTimeout = 30 * time.Second
	// stopTimeout is how long a fast shutdown may take before the server is killed.
	// Fast shutdown rolls back open transactions and writes a checkpoint, which on
	// a development database takes well under a second.
	stopTimeout = 10 * time.Second
	// portAttempts is how often Start retries with another free port when it picked
	// the port itself and someone else took it between the pick and the bind.
	portAttempts = 3
	// lingerWait bounds how long Start waits for a killed server's processes to exit,
	// trying again every lingerPause.
	lingerWait  = 10 * time.Second
	lingerPause = 200 * time.Millisecond
	// maxSocketPath is the longest unix socket path the kernel accepts (sun_path is
	// 108 bytes including the terminating NUL).
	maxSocketPath = 107
	superuser     = "postgres"
	logTailLines  = 20
	// fastShutdown is postgres's fast shutdown (SIGINT), which we send to stop it and
	// the kernel sends it if we die without stopping it (child.Attr).
	fastShutdown = syscall.SIGINT
)

// Config says where the cluster lives and how the server runs.
type Config struct {
	DataDir  string       // where the cluster lives; initdb'd if it has no PG_VERSION
	Port     int          // 0 = pick a free port on 127.0.0.1
	Database string       // created if missing; "" = "postgres"
	Fast     bool         // tests: fsync=off, full_page_writes=off (see launch)
	Log      *slog.Logger // nil = discard
}

// Server is a running PostgreSQL server started by [Start]. Its methods are safe for
// concurrent use.
type Server struct {
	log      *slog.Logger
	binDir   string
	dataDir  string
	database string
	fast     bool
	runAs    *osAccount // nil when the server runs as the current user

	logPath  string
	logFile  *os.File
	logStart int64 // offset in logFile where this run's output begins

	sockDir    string
	ownSockDir bool // sockDir is a temporary directory of ours, removed on Stop

	port int
	proc *child.Process

	stopOnce sync.Once
	stopErr  error
}

// Start starts a PostgreSQL server on cfg.DataDir, initialising the cluster first if
// the directory holds none, waits until it accepts connections and creates
// cfg.Database if it is missing. ctx bounds only the start (30s if it has no
// deadline): the server runs until [Server.Stop], whatever happens to ctx.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("localpg: Config.DataDir is empty")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStartTimeout)
		defer cancel()
	}
	s := &Server{
		log:      cfg.Log,
		database: cfg.Database,
		fast:     cfg.Fast,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.database == "" {
		s.database = superuser
	}

	var err error
	if s.binDir, err = FindBinaries(); err != nil {
		return nil, err
	}
	if s.runAs, err = serverAccount(); err != nil {
		return nil, err
	}
	if s.dataDir, s.runAs, err = prepareDataDir(cfg.DataDir, s.runAs); err != nil {
		return nil, err
	}
	if err := s.checkNotRunning(); err != nil {
		return nil, err
	}
	if cfg.Port != 0 {
		// Before initdb, so that a taken port is reported at once.
		if err := checkPortFree(cfg.Port); err != nil {
			return nil, err
		}
	}
	if err := s.openLog(); err != nil {
		return nil, err
	}
	// From here on, Stop releases whatever has been acquired so far.
	ok := false
	defer func() {
		if !ok {
			_ = s.Stop()
		}
	}()

	if !hasCluster(s.dataDir) {
		if err := s.initdb(ctx); err != nil {
			return nil, err
		}
	}
	if err := s.chooseSocketDir(); err != nil {
		return nil, err
	}
	portTries, since := 1, time.Now()
	for {
		err := s.launch(ctx, cfg.Port)
		if err == nil {
			break
		}
		switch {
		case errors.Is(err, ErrPortInUse) && cfg.Port == 0 && portTries < portAttempts:
			s.log.Debug("picked port was taken meanwhile; trying another", "port", s.port)
			portTries++
			continue
		case errors.Is(err, errOldServerLingers) && time.Since(since) < lingerWait:
			s.log.Debug("the processes of a server killed on this data directory are still exiting; waiting", "err", err)
			select {
			case <-ctx.Done():
				return nil, err
			case <-time.After(lingerPause):
			}
			continue
		case errors.Is(err, errOldServerLingers):
			return nil, fmt.Errorf("%w; waited %s for them to exit", err, lingerWait)
		}
		return nil, err
	}
	if err := s.ensureDatabase(ctx); err != nil {
		return nil, err
	}
	ok = true
	s.log.Info("postgres started", "url", s.URL(), "data_dir", s.dataDir, "log", s.logPath, "pid", s.proc.Pid())
	return s, nil
}

// URL is the connection URL of the configured database.
func (s *Server) URL() string { return s.URLFor(s.database) }

// URLFor is the connection URL of database db on this server.
func (s *Server) URLFor(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", superuser, s.port, url.PathEscape(db))
}

// Stop shuts the server down with a fast shutdown (open transactions are rolled
// back, clients disconnected, a checkpoint written), killing it if that takes
// longer than 10s. Calling it again returns the first result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

func (s *Server) stop() error {
	var errs []error
	if s.proc != nil {
		if err := s.proc.Stop(fastShutdown, stopTimeout); err != nil {
			errs = append(errs, s.withLogTail(fmt.Errorf("localpg: %w", err)))
		} else {
			s.log.Info("postgres stopped", "data_dir", s.dataDir)
		}
	}
	if s.ownSockDir {
		if err := os.RemoveAll(s.sockDir); err != nil {
			errs = append(errs, fmt.Errorf("localpg: remove socket directory: %w", err))
		}
	}
	if s.logFile != nil {
		if err := s.logFile.Close(); err != nil {
			errs = append(errs, fmt.Errorf("localpg: close log: %w", err))
		}
	}
	return errors.Join(errs...)
}

// prepareDataDir makes sure the data directory exists and that the server's OS
// account can use it, and returns its absolute, symlink-free path (the server
// reports that path as data_directory, which launch compares against) and the
// account to run the server as: runAs, or for an existing cluster its owner
// (clusterOwner).
func prepareDataDir(path string, runAs *osAccount) (string, *osAccount, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", nil, fmt.Errorf("localpg: data directory: %w", err)
	}
	// The parents must stay traversable by the server's account, hence not 0700.
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return "", nil, fmt.Errorf("localpg: create data directory: %w", err)
	}
	if err := os.Mkdir(abs, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", nil, fmt.Errorf("localpg: create data directory: %w", err)
	}
	dir, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", nil, fmt.Errorf("localpg: data directory: %w", err)
	}
	if runAs == nil {
		return dir, nil, nil
	}
	// An existing cluster already belongs to someone: run it as them (postgres itself
	// reports a cluster root owns clearly). A new one must belong to the server.
	existing := hasCluster(dir)
	if existing {
		if runAs, err = clusterOwner(dir, runAs); err != nil {
			return "", nil, err
		}
	}
	if err := runAs.checkReachable(dir); err != nil {
		return "", nil, err
	}
	if !existing {
		if err := runAs.chown(dir); err != nil {
			return "", nil, err
		}
	}
	return dir, runAs, nil
}

func hasCluster(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "PG_VERSION"))
	return err == nil
}

// checkNotRunning looks at the lock file a server leaves in its data directory.
// A server still running there, typically from an earlier `make run` that was not
// shut down, is reported as such, rather than as the lock file complaint postgres
// would print into its log. A lock file whose process is gone is left for postgres,
// which removes it itself; one whose pid now belongs to an unrelated process (pids
// are reused, notably across container restarts) is removed here, because postgres
// would refuse to start on it.
func (s *Server) checkNotRunning() error {
	pidFile := filepath.Join(s.dataDir, "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("localpg: read %s: %w", pidFile, err)
	}
	lines := strings.Split(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || pid <= 0 {
		return nil // Not ours to judge; postgres explains a damaged lock file.
	}
	if !processAlive(pid) {
		s.log.Debug("stale postmaster.pid from an earlier run; postgres will replace it", "pid", pid)
		return nil
	}
	if !isPostmasterOf(pid, s.dataDir) {
		s.log.Info("removing postmaster.pid whose pid now belongs to another process", "pid", pid)
		if err := os.Remove(pidFile); err != nil {
			return fmt.Errorf("localpg: remove stale %s: %w", pidFile, err)
		}
		return nil
	}
	port := "unknown"
	if len(lines) > 3 && strings.TrimSpace(lines[3]) != "" {
		port = strings.TrimSpace(lines[3])
	}
	return fmt.Errorf("localpg: %s: %w (pid %d, port %s), probably left over from an earlier run: stop it with `kill -INT %d`, then start again",
		s.dataDir, ErrAlreadyRunning, pid, port, pid)
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// isPostmasterOf tells whether the live process pid is a postgres server on dataDir,
// as far as /proc shows; where it shows nothing (other systems, other users'
// processes) it assumes so, since a false "already running" is easier to resolve
// than a second server on the same directory.
func isPostmasterOf(pid int, dataDir string) bool {
	proc := "/proc/" + strconv.Itoa(pid)
	if comm, err := os.ReadFile(proc + "/comm"); err == nil {
		name := strings.TrimSpace(string(comm))
		if name != "postgres" && name != "postmaster" {
			return false
		}
	}
	// The postmaster changes into its data directory at start.
	if cwd, err := os.Readlink(proc + "/cwd"); err == nil && cwd != dataDir {
		return false
	}
	return true
}

// openLog opens the server's log beside the data directory (not inside: initdb wants
// an empty directory). It is appended to, so the history of a kept cluster stays in
// one place; errors quote only the part written by this run.
func (s *Server) openLog() error {
	s.logPath = s.dataDir + ".log"
	f, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("localpg: open log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("localpg: open log: %w", err)
	}
	s.logFile, s.logStart = f, fi.Size()
	fmt.Fprintf(f, "\n---- localpg: %s: %s on %s\n", time.Now().Format(time.RFC3339), s.binDir, s.dataDir)
	return nil
}

func (s *Server) initdb(ctx context.Context) error {
	if entries, err := os.ReadDir(s.dataDir); err == nil && len(entries) > 0 {
		return fmt.Errorf("localpg: %s is not empty but %w (no PG_VERSION), perhaps from an interrupted first start: remove it, or point the data directory elsewhere", s.dataDir, ErrNotACluster)
	}
	s.log.Info("initialising PostgreSQL cluster", "data_dir", s.dataDir)
	args := []string{"-D", s.dataDir, "-U", superuser, "--auth=trust", "-E", "UTF8", "--locale=C"}
	if s.fast {
		args = append(args, "--no-sync")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(s.binDir, "initdb"), args...)
	s.setupChild(cmd)
	if err := cmd.Run(); err != nil {
		return s.withLogTail(fmt.Errorf("localpg: initdb: %w", err))
	}
	return nil
}

// setupChild gives initdb and postgres the same surroundings: output into our log,
// the server's OS account, and a C locale so that messages (which errors quote and
// launch inspects) are in English whatever the developer's locale.
func (s *Server) setupChild(cmd *exec.Cmd) {
	cmd.Dir = s.dataDir
	cmd.Stdout = s.logFile
	cmd.Stderr = s.logFile
	cmd.SysProcAttr = child.Attr(s.runAs.credential(), fastShutdown)
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "LANG" || k == "LANGUAGE" || strings.HasPrefix(k, "LC_") || strings.HasPrefix(k, "PG") {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = append(env, "LC_ALL=C")
}

// chooseSocketDir puts the unix socket in the data directory, where nothing else
// can clash with it, unless that path is too long for a socket; then it uses a short
// directory of its own under /tmp.
func (s *Server) chooseSocketDir() error {
	if len(s.dataDir)+len("/.s.PGSQL.65535") <= maxSocketPath {
		s.sockDir = s.dataDir
		return nil
	}
	dir, err := os.MkdirTemp("/tmp", "localpg-")
	if err != nil {
		return fmt.Errorf("localpg: socket directory: %w", err)
	}
	s.sockDir, s.ownSockDir = dir, true
	if err := s.runAs.chown(dir); err != nil {
		return err
	}
	return nil
}

// launch starts postgres on port (a free one if 0) and waits until it accepts
// connections.
func (s *Server) launch(ctx context.Context, port int) error {
	if port == 0 {
		p, err := freePort()
		if err != nil {
			return err
		}
		port = p
	}
	s.port = port

	args := []string{
		"-D", s.dataDir,
		"-p", strconv.Itoa(port),
		"-k", s.sockDir,
		"-c", "listen_addresses=127.0.0.1",
	}
	if s.fast {
		// Commits stay synchronous: with fsync off, a commit's flush is a write to the
		// WAL file and no more. Asynchronous commit also saved little else, and it kept
		// VACUUM from marking pages all-visible until the WAL writer had flushed the
		// commits of their rows (a row's hint bit waits for that), so a VACUUM right
		// after the benchmarks' data was written left the visibility map empty and every
		// index-only scan read the table as well: 4,000 heap fetches of a 20-firm
		// analytics run's 4,000 open tasks.
		args = append(args, "-c", "fsync=off", "-c", "full_page_writes=off")
	}
	// Not CommandContext: ctx bounds only the start, the server lives until Stop.
	cmd := exec.Command(filepath.Join(s.binDir, "postgres"), args...)
	s.setupChild(cmd)
	proc, err := child.Start("postgres", cmd, s.runAs.credential(), fastShutdown)
	if err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	s.proc = proc
	if err := s.waitReady(ctx); err != nil {
		_ = proc.Stop(fastShutdown, stopTimeout)
		return err
	}
	return nil
}

// waitReady connects until the server answers, it exits, or ctx ends. The answer
// must come from our data directory: had another server taken the port since it was
// checked or picked, ours would exit while the other one answered.
func (s *Server) waitReady(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		if s.proc.HasExited() {
			return s.exitedEarly()
		}
		dataDir, err := s.queryDataDir(ctx)
		switch {
		case err == nil && dataDir == s.dataDir:
			return nil
		case err == nil:
			return portInUse(s.port)
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return s.withLogTail(fmt.Errorf("localpg: postgres did not accept connections on port %d in time: %w (last attempt: %v)", s.port, ctx.Err(), lastErr))
		case <-s.proc.Exited():
		case <-tick.C:
		}
	}
}

func (s *Server) queryDataDir(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URLFor(superuser))
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var dir string
	err = conn.QueryRow(ctx, "SHOW data_directory").Scan(&dir)
	return dir, err
}

// exitedEarly explains why postgres exited during start, turning its complaint about
// a taken port into ErrPortInUse so that Start can retry or say what to do.
func (s *Server) exitedEarly() error {
	tail := s.logTail()
	if strings.Contains(tail, "Address already in use") {
		return portInUse(s.port)
	}
	if fatal := lastFatal(tail); strings.Contains(fatal, "pre-existing shared memory block") {
		return fmt.Errorf("localpg: %w: stop them (ipcs -mp lists the segment and the pids that last used it) (postgres: %s)", errOldServerLingers, strings.TrimSpace(fatal))
	}
	return fmt.Errorf("localpg: postgres exited during start (%v); last lines of %s:\n%s", s.proc.Err(), s.logPath, tail)
}

func (s *Server) ensureDatabase(ctx context.Context) error {
	if s.database == superuser {
		return nil
	}
	conn, err := pgx.Connect(ctx, s.URLFor(superuser))
	if err != nil {
		return fmt.Errorf("localpg: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	const q = `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`
	if err := conn.QueryRow(ctx, q, s.database).Scan(&exists); err != nil {
		return fmt.Errorf("localpg: look up database %q: %w", s.database, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{s.database}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: created meanwhile
		return nil
	}
	if err != nil {
		return fmt.Errorf("localpg: create database %q: %w", s.database, err)
	}
	s.log.Info("created database", "database", s.database)
	return nil
}

// lastFatal is the last FATAL line of a log tail, "" if none.
func lastFatal(tail string) string {
	lines := strings.Split(tail, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "FATAL:") {
			return lines[i]
		}
	}
	return ""
}

func portInUse(port int) error {
	return fmt.Errorf("localpg: port %d on 127.0.0.1: %w: choose another with the PG_PORT variable, or set DATABASE_URL to an existing server", port, ErrPortInUse)
}

// freePort asks the kernel for a free port. Someone may take it before postgres
// binds it; launch notices and Start tries again.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("localpg: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// checkPortFree fails early, with the remedy, when a chosen port is taken; postgres
// would otherwise only say so in its log.
func checkPortFree(port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return portInUse(port)
		}
		return fmt.Errorf("localpg: port %d: %w", port, err)
	}
	return l.Close()
}

func (s *Server) withLogTail(err error) error {
	tail := s.logTail()
	if tail == "" {
		return err
	}
	return fmt.Errorf("%w; last lines of %s:\n%s", err, s.logPath, tail)
}

// logTail is the end of what this run wrote to the log, indented to stand apart in
// an error message.
func (s *Server) logTail() string {
	if s.logPath == "" {
		return ""
	}
	f, err := os.Open(s.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	const maxRead = 64 << 10
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	from := max(s.logStart, fi.Size()-maxRead)
	buf := make([]byte, fi.Size()-from)
	n, _ := f.ReadAt(buf, from)
	lines := strings.Split(strings.TrimRight(string(buf[:n]), "\n"), "\n")
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n")
}
