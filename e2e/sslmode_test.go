package e2e

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/lexhq/gstjobs/internal/db"
	"github.com/lexhq/gstjobs/internal/pgtest"
)

// What is tried: DATABASE_URL with sslmode=require and sslmode=verify-full against a
// PostgreSQL that offers no TLS (the test's own), and with sslmode=disable. What must
// hold: with require or verify-full the services' connection (db.Open) refuses to go
// on in the clear; with disable it connects. The sslmode of DATABASE_URL is what the
// connection does, never silently weakened (README, Configuration).
func TestDatabaseURLSSLModeIsWhatTheConnectionDoes(t *testing.T) {
	_, dbURL := pgtest.NewPool(t)
	for _, tt := range []struct {
		mode    string
		refused bool
	}{{"disable", false}, {"require", true}, {"verify-full", true}} {
		u, err := url.Parse(dbURL)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("sslmode", tt.mode)
		u.RawQuery = q.Encode()
		pool, err := db.Open(context.Background(), u.String())
		switch {
		case tt.refused && err == nil:
			pool.Close()
			t.Errorf("sslmode=%s connected to a server without TLS; want refused", tt.mode)
		case tt.refused && !strings.Contains(err.Error(), "TLS"):
			t.Errorf("sslmode=%s: %v; want a refusal that names TLS", tt.mode, err)
		case !tt.refused && err != nil:
			t.Errorf("sslmode=%s: %v", tt.mode, err)
		case !tt.refused:
			pool.Close()
		}
	}
}
