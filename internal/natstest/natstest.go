// Package natstest gives a test a real NATS server with JetStream: embedded, on a random
// port, with a temporary store, and the system's streams, buckets and consumers declared.
// Start's server lets every client do anything; StartWithAuth's has the system's users
// and permissions (natsauth), as `make run` and production have, and gives each test
// connection the user it asks for.
package natstest

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/natsauth"
	"github.com/lexhq/gstjobs/internal/natsembed"
)

// Server is a running test server and a connection to it.
type Server struct {
	*server.Server
	URL string
	// NC and JS may do anything, with or without authentication: the test's own
	// hands, which publish what no service would (a forged result, a redelivery).
	NC *nats.Conn
	JS jetstream.JetStream
	// passwords of natsauth's users and of Superuser; nil without authentication.
	passwords map[string]string
}

// Superuser is the user of Server.NC on a server with authentication: a test's own,
// with every permission. It is no user of natsauth and exists in tests alone.
const Superuser = "natstest"

// Start runs a server for the test, declares everything with bus.Ensure, and shuts it
// down at cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := natsembed.Start(natsembed.Config{Port: -1, StoreDir: t.TempDir(), ServerName: "test"})
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	ts := &Server{Server: s, URL: s.ClientURL()}
	ts.NC, ts.JS = Connect(t, ts.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bus.Ensure(ctx, ts.JS, bus.Options{}); err != nil {
		t.Fatalf("natstest: %v", err)
	}
	return ts
}

// StartWithAuth runs a server with natsauth's users, each with its permissions and a
// random password, and natsauth.Developer as the user of connections without
// credentials, as `make run` does. natsauth.Setup declares everything with
// bus.Ensure, so a test also proves that the setup user may; Server.NC is the
// Superuser's.
func StartWithAuth(t testing.TB) *Server {
	t.Helper()
	passwords := natsauth.NewPasswords()
	users := natsauth.ServerUsers(passwords)
	passwords[Superuser] = natsauth.NewPassword()
	users = append(users, &server.User{Username: Superuser, Password: passwords[Superuser]})
	s, err := natsembed.Start(natsembed.Config{Port: -1, StoreDir: t.TempDir(), ServerName: "test", Users: users, NoAuthUser: natsauth.Developer})
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	ts := &Server{Server: s, URL: s.ClientURL(), passwords: passwords}
	_, setupJS := ts.ConnectAs(t, natsauth.Setup)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bus.Ensure(ctx, setupJS, bus.Options{}); err != nil {
		t.Fatalf("natstest: declare as the %s user: %v", natsauth.Setup, err)
	}
	ts.NC, ts.JS = ts.ConnectAs(t, Superuser)
	return ts
}

// Credentials are user's on this server: natsauth.Developer's are none, as a
// developer's client has none. Without authentication, every user's are none.
func (s *Server) Credentials(user string) natsauth.Credentials {
	if s.passwords == nil || user == natsauth.Developer {
		return natsauth.Credentials{}
	}
	pw, ok := s.passwords[user]
	if !ok {
		panic("natstest: no NATS user " + user)
	}
	return natsauth.Password(user, pw)
}

// Env is user's credentials as a service binary reads them: NATS_URL, NATS_USER and
// NATS_PASSWORD.
func (s *Server) Env(user string) []string {
	return append([]string{"NATS_URL=" + s.URL}, s.Credentials(user).Env()...)
}

// ConnectAs opens a connection as user, closed at cleanup. Every permission the server
// refuses it fails the test: a user that lacks one for its work is a bug in natsauth.
func (s *Server) ConnectAs(t testing.TB, user string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, js, refused := s.connect(t, user)
	t.Cleanup(func() {
		nc.Close()
		for {
			select {
			case err := <-refused:
				t.Errorf("natstest: the server refused the %s user: %v", user, err)
			default:
				return
			}
		}
	})
	return nc, js
}

// ConnectRefusable opens a connection as user, closed at cleanup, for a test of what
// the server refuses: every permissions violation arrives on refused.
func (s *Server) ConnectRefusable(t testing.TB, user string) (nc *nats.Conn, js jetstream.JetStream, refused <-chan error) {
	t.Helper()
	nc, js, ch := s.connect(t, user)
	t.Cleanup(nc.Close)
	return nc, js, ch
}

func (s *Server) connect(t testing.TB, user string) (*nats.Conn, jetstream.JetStream, chan error) {
	t.Helper()
	opts, err := s.Credentials(user).Options()
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	refused := make(chan error, 64)
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			select {
			case refused <- err:
			default:
			}
		}
	}))
	nc, js, err := bus.Connect(context.Background(), s.URL, t.Name()+" as "+user, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		t.Fatalf("natstest: connect as %s: %v", user, err)
	}
	return nc, js, refused
}

// Connect opens another connection, closed at cleanup.
func Connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, js, err := bus.Connect(context.Background(), url, t.Name(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc, js
}

// Collect subscribes to subject and returns a channel of every message, so a test can
// wait for an event instead of sleeping.
func Collect(t testing.TB, nc *nats.Conn, subject string) <-chan *nats.Msg {
	t.Helper()
	ch := make(chan *nats.Msg, 4096)
	sub, err := nc.ChanSubscribe(subject, ch)
	if err != nil {
		t.Fatalf("natstest: subscribe %s: %v", subject, err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("natstest: flush: %v", err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return ch
}
