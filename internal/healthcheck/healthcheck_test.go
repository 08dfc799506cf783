package healthcheck_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lexhq/gstjobs/internal/healthcheck"
)

func TestURL(t *testing.T) {
	for _, tc := range []struct{ addr, want, err string }{
		{":9101", "http://127.0.0.1:9101/readyz", ""},
		{"0.0.0.0:8080", "http://127.0.0.1:8080/readyz", ""},
		{"[::]:9101", "http://127.0.0.1:9101/readyz", ""},
		{"127.0.0.1:9102", "http://127.0.0.1:9102/readyz", ""},
		{"10.1.2.3:9103", "http://10.1.2.3:9103/readyz", ""},
		{"[fd00::1]:9104", "http://[fd00::1]:9104/readyz", ""},
		{"localhost:8081", "http://localhost:8081/readyz", ""},
		{"9101", "", "not a listen address"},
		{":0", "", "no fixed port"},
	} {
		got, err := healthcheck.URL(tc.addr)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("URL(%q) = %q, %v; want an error saying %q", tc.addr, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("URL(%q) = %q, %v; want %q", tc.addr, got, err, tc.want)
		}
	}
}

// What is tried: Run against a server that answers /readyz with 200, with 503, and an
// address where nothing listens. What must hold: 0 only on the 200; otherwise 1, with
// a line on stderr that says what came back or that nothing listens, naming the
// variable to check.
func TestRunExitsZeroOnlyWhenReady(t *testing.T) {
	var ready atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		if !ready.Load() {
			http.Error(w, "not ready: nats: not connected", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	// A port nothing listens on: one that was just closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	for _, tc := range []struct {
		name     string
		ready    bool
		addr     string
		code     int
		inStderr []string
	}{
		{"ready", true, ":" + port, 0, nil},
		{"not ready", false, ":" + port, 1, []string{"503", "not ready: nats: not connected"}},
		{"nothing listening", true, closed, 1, []string{"connection refused", "nothing listens there", `OPS_ADDR="` + closed + `"`}},
		{"not an address", true, "9101", 1, []string{`OPS_ADDR="9101"`, "not a listen address"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ready.Store(tc.ready)
			var stdout, stderr bytes.Buffer
			code := healthcheck.Run(context.Background(), "OPS_ADDR", tc.addr, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d; want %d (stdout %q, stderr %q)", code, tc.code, stdout.String(), stderr.String())
			}
			for _, s := range tc.inStderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr %q does not say %q", stderr.String(), s)
				}
			}
			if tc.code == 0 && (stderr.Len() != 0 || !strings.Contains(stdout.String(), "ready")) {
				t.Errorf("ready: stdout %q, stderr %q; want it said on stdout", stdout.String(), stderr.String())
			}
		})
	}
}

func TestRequested(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"/service"}, false},
		{[]string{"/service", "healthcheck"}, true},
		{[]string{"/service", "healthcheck", "extra"}, false},
		{[]string{"/service", "declare"}, false},
	} {
		if got := healthcheck.Requested(tc.args); got != tc.want {
			t.Errorf("Requested(%q) = %v; want %v", tc.args, got, tc.want)
		}
	}
}
