// Package natstest gives a test a real NATS server with JetStream: embedded, on a random
// port, with a temporary store, and the system's streams, buckets and consumers declared.
package natstest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/natsembed"
)

// Server is a running test server and a connection to it.
type Server struct {
	*server.Server
	URL string
	NC  *nats.Conn
	JS  jetstream.JetStream
}

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
