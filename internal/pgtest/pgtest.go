package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lexhq/gstjobs/internal/db"
	"github.com/lexhq/gstjobs/internal/localpg"
)

const (
	// setupTimeout covers initdb, the server start and the migrations.
	setupTimeout = 2 * time.Minute
	opTimeout    = time.Minute
	// externalURLVar names a server to use instead of starting one.
	externalURLVar = "TEST_DATABASE_URL"
)

// shared is the state of this test binary. It is package state because a test
// binary is the unit that shares a server, and Main, which stops it, receives only
// the *testing.M.
var shared struct {
	mu      sync.Mutex
	mainRan bool
	h       *harness // set by the first NewDB
	err     error    // why the harness could not be set up; every NewDB reports it
}

// seq keeps database names apart within the binary; the random suffix keeps them
// apart from other binaries using the same TEST_DATABASE_URL.
var seq atomic.Int64

// Main runs the tests, then stops the server and drops the template database, and
// exits with the tests' status. Use it as the package's TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	shared.mu.Lock()
	shared.mainRan = true
	shared.mu.Unlock()

	code := m.Run()

	shared.mu.Lock()
	h := shared.h
	shared.mu.Unlock()
	if h != nil {
		if err := h.close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// NewDB creates a database for this test, a copy of the migrated template, and
// drops it when the test ends. It returns the database's connection URL.
func NewDB(t testing.TB) (url string) {
	t.Helper()
	h, err := get()
	if err != nil {
		t.Fatal(err)
	}
	name := h.newName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := h.createDB(ctx, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Not t.Context: it is cancelled before cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := h.dropDB(ctx, name); err != nil {
			t.Error(err)
		}
	})
	return h.urlFor(name)
}

// NewPool is [NewDB] with a pool connected to the new database, closed when the test
// ends (before the database is dropped). It returns the URL too, for code under test
// that opens its own connections.
func NewPool(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	dbURL := NewDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatalf("pgtest: open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	if err := pool.Ping(ctx); err != nil {
		t.Fatalf("pgtest: connect to %s: %v", db.Redact(dbURL), err)
	}
	return pool, dbURL
}

// OneSession is a pool of one connection to pool's database, closed when the test
// ends: every statement given to it meets the same session, its settings and its
// prepared statements (pg_prepared_statements shows that session's only).
func OneSession(t testing.TB, pool *pgxpool.Pool) *pgxpool.Pool {
	t.Helper()
	cfg := pool.Config()
	cfg.MaxConns = 1
	one, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("pgtest: open a one-connection pool: %v", err)
	}
	t.Cleanup(one.Close)
	return one
}

// get returns the harness, setting it up on first use. Concurrent first callers
// wait for the one setting it up.
func get() (*harness, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.mainRan {
		// Without Main nothing would stop the server or remove its directory.
		return nil, errors.New("pgtest: the package's TestMain must call pgtest.Main: func TestMain(m *testing.M) { pgtest.Main(m) }")
	}
	if shared.h == nil && shared.err == nil {
		shared.h, shared.err = setup()
	}
	return shared.h, shared.err
}

// harness is the server of this test binary and its template database.
type harness struct {
	log      *slog.Logger
	admin    *pgxpool.Pool // on the maintenance database; runs CREATE and DROP DATABASE
	base     *url.URL      // server URL; databases differ only in the path
	template string
	external bool // TEST_DATABASE_URL: drop the template at the end, leave the server

	server  *localpg.Server // nil when external
	tempDir string

	// createMu serialises copies of the template: CREATE DATABASE ... TEMPLATE fails
	// when any other session is connected to the template, and parallel copies are
	// no faster than serial ones on one server anyway.
	createMu sync.Mutex
}

func setup() (_ *harness, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	h := &harness{
		// Quiet unless something is wrong: test output is for the tests.
		log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	defer func() {
		if err != nil {
			if cerr := h.close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()

	serverURL := os.Getenv(externalURLVar)
	if serverURL != "" {
		h.external = true
		// Packages run in parallel against the same server: each needs its own template.
		h.template = "pgtest_tmpl_" + randomSuffix()
	} else {
		if h.tempDir, err = localpg.MkdirTemp("pgtest-"); err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
		h.server, err = localpg.Start(ctx, localpg.Config{
			DataDir: filepath.Join(h.tempDir, "data"),
			Fast:    true,
			Log:     h.log,
		})
		if err != nil {
			return nil, fmt.Errorf("pgtest: start PostgreSQL (or set %s to use a running server): %w", externalURLVar, err)
		}
		serverURL = h.server.URL()
		h.template = "pgtest_template"
	}

	if h.base, err = parseServerURL(serverURL); err != nil {
		return nil, err
	}
	if h.admin, err = pgxpool.New(ctx, serverURL); err != nil {
		return nil, fmt.Errorf("pgtest: connect to %s: %w", db.Redact(serverURL), err)
	}
	if err := h.admin.Ping(ctx); err != nil {
		return nil, fmt.Errorf("pgtest: connect to %s: %w", db.Redact(serverURL), err)
	}
	if err := h.createTemplate(ctx); err != nil {
		return nil, err
	}
	return h, nil
}

func parseServerURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("pgtest: %s must be a postgres:// URL, such as postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", externalURLVar)
	}
	return u, nil
}

// createTemplate makes the database every test database is copied from and migrates
// it. Afterwards nobody may connect to it: a session left open, say by a pool the
// migrations forgot to close, would make every copy fail.
func (h *harness) createTemplate(ctx context.Context) error {
	tmpl := pgx.Identifier{h.template}.Sanitize()
	if _, err := h.admin.Exec(ctx, "CREATE DATABASE "+tmpl); err != nil {
		return fmt.Errorf("pgtest: create template database: %w", err)
	}
	if err := db.Migrate(ctx, h.urlFor(h.template), h.log); err != nil {
		return fmt.Errorf("pgtest: migrate template database: %w", err)
	}
	if _, err := h.admin.Exec(ctx, "ALTER DATABASE "+tmpl+" WITH ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("pgtest: close template database: %w", err)
	}
	const terminate = `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`
	if _, err := h.admin.Exec(ctx, terminate, h.template); err != nil {
		return fmt.Errorf("pgtest: disconnect from template database: %w", err)
	}
	return nil
}

// newName makes a database name that is a valid identifier (at most 63 bytes, no
// quoting needed) and tells, in a leftover database, which test made it.
func (h *harness) newName(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= 24 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else if s := b.String(); s != "" && !strings.HasSuffix(s, "_") {
			b.WriteByte('_')
		}
	}
	return fmt.Sprintf("pgtest_%s_%d_%s", strings.TrimSuffix(b.String(), "_"), seq.Add(1), randomSuffix())
}

func (h *harness) createDB(ctx context.Context, name string) error {
	h.createMu.Lock()
	defer h.createMu.Unlock()
	q := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize() + " TEMPLATE " + pgx.Identifier{h.template}.Sanitize()
	if _, err := h.admin.Exec(ctx, q); err != nil {
		return fmt.Errorf("pgtest: create database %s from template: %w", name, err)
	}
	return nil
}

// dropDB drops a test database even if the test left connections open to it.
func (h *harness) dropDB(ctx context.Context, name string) error {
	if _, err := h.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pgtest: drop database %s: %w", name, err)
	}
	return nil
}

func (h *harness) urlFor(database string) string {
	u := *h.base
	u.Path, u.RawPath = "/"+database, ""
	return u.String()
}

// close releases what setup acquired, as far as it got.
func (h *harness) close() error {
	var errs []error
	if h.admin != nil {
		if h.external {
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			if err := h.dropDB(ctx, h.template); err != nil {
				errs = append(errs, err)
			}
			cancel()
		}
		h.admin.Close()
	}
	if h.server != nil {
		if err := h.server.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("pgtest: %w", err))
		}
	}
	if h.tempDir != "" {
		if err := os.RemoveAll(h.tempDir); err != nil {
			errs = append(errs, fmt.Errorf("pgtest: remove server directory: %w", err))
		}
	}
	return errors.Join(errs...)
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
