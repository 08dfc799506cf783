package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/lexhq/gstjobs/internal/demo"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/natstest"
	"github.com/lexhq/gstjobs/services/gateway"
)

// authHeader signs a request as the demo user of role ("" for none).
func (s *stack) authHeader(role string) http.Header {
	h := http.Header{}
	if role == "" {
		return h
	}
	id, ok := demo.UsersByRole[role]
	if !ok {
		s.t.Fatalf("no demo user with role %q", role)
	}
	token, err := gateway.IssueToken(testSecret, id, s.clock.Now(), time.Hour)
	if err != nil {
		s.t.Fatal(err)
	}
	h.Set("Authorization", "Bearer "+token)
	return h
}

// testSecret signs the test's tokens, as AUTH_JWT_SECRET does in production.
var testSecret = []byte("e2e-test-secret-e2e-test-secret-32b")

func natsCollect(t *testing.T, s *stack, subject string) <-chan *nats.Msg {
	return natstest.Collect(t, s.nats.NC, subject)
}

func nextResultOf(t *testing.T, ch <-chan *nats.Msg, job string) events.Result {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m := <-ch:
			if events.JobFromSubject(m.Subject) != job {
				continue
			}
			var r events.Result
			if err := json.Unmarshal(m.Data, &r); err != nil {
				t.Fatalf("result for %s is not JSON: %v", job, err)
			}
			return r
		case <-timeout:
			t.Fatalf("no result for %s within 20s", job)
		}
	}
}

// waitForConsumerIdle waits until the gateway has acked every event published so far.
func waitForConsumerIdle(t *testing.T, s *stack) {
	t.Helper()
	waitFor(t, "the gateway to persist every event", func() bool {
		ctx := context.Background()
		st, err := s.nats.JS.Stream(ctx, "JOBS_EVENTS")
		if err != nil {
			return false
		}
		si, err := st.Info(ctx)
		if err != nil {
			return false
		}
		c, err := st.Consumer(ctx, "gateway-events")
		if err != nil {
			return false
		}
		ci, err := c.Info(ctx)
		// Nothing pending is not enough: the consumer's counts may not have caught up
		// with a message just stored. Every message of the stream (the consumer takes
		// every subject of it) must be acked, the last one included.
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0 && ci.AckFloor.Stream >= si.State.LastSeq
	})
}

func (s *stack) dbName() string {
	cfg, err := pgx.ParseConfig(s.dbURL)
	if err != nil {
		s.t.Fatal(err)
	}
	return cfg.Database
}

// adminConn is a connection to the server's maintenance database, which stays up while
// the test's database is made unreachable.
func (s *stack) adminConn() *pgx.Conn {
	cfg, err := pgx.ParseConfig(s.dbURL)
	if err != nil {
		s.t.Fatal(err)
	}
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// setAllowConnections takes a database away from its clients (refusing new connections
// and ending the current ones), or gives it back.
func setAllowConnections(t *testing.T, admin *pgx.Conn, db string, allow bool) {
	t.Helper()
	ctx := context.Background()
	if _, err := admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s WITH ALLOW_CONNECTIONS %t", pgx.Identifier{db}.Sanitize(), allow)); err != nil {
		t.Fatalf("allow connections %t: %v", allow, err)
	}
	if !allow {
		if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", db); err != nil {
			t.Fatalf("terminate backends: %v", err)
		}
	}
}

// failureLog is a test that keeps what it was told of its failures and, when it has
// failed, says them again as its very last words: a long test's output ends with its
// processes' logs, and CI shows only the end of an output.
type failureLog struct {
	testing.TB
	mu   sync.Mutex
	msgs []string
}

// recordFailures wraps t. Call it before registering any cleanup, so that its own
// runs last.
func recordFailures(t *testing.T) *failureLog {
	f := &failureLog{TB: t}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		t.Logf("%s failed; what failed, again (%d):\n  %s", t.Name(), len(f.msgs), strings.Join(f.msgs, "\n  "))
	})
	return f
}

func (f *failureLog) note(msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, msg)
}

func (f *failureLog) Error(args ...any) {
	f.TB.Helper()
	f.note(fmt.Sprint(args...))
	f.TB.Error(args...)
}

func (f *failureLog) Errorf(format string, args ...any) {
	f.TB.Helper()
	f.note(fmt.Sprintf(format, args...))
	f.TB.Errorf(format, args...)
}

func (f *failureLog) Fatal(args ...any) {
	f.TB.Helper()
	f.note(fmt.Sprint(args...))
	f.TB.Fatal(args...)
}

func (f *failureLog) Fatalf(format string, args ...any) {
	f.TB.Helper()
	f.note(fmt.Sprintf(format, args...))
	f.TB.Fatalf(format, args...)
}
