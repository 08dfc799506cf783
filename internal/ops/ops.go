// Package ops holds what every binary needs to be operated: structured logs, reading
// configuration from the environment with errors that name the variable, and the small
// HTTP server for liveness, readiness and Prometheus metrics.
package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Env reads configuration variables and collects every problem, so a misconfigured
// service says everything that is wrong at once.
type Env struct {
	problems []string
}

// String returns the variable or def.
func (e *Env) String(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// Required returns the variable or records that it is missing, with how to fix it.
func (e *Env) Required(name, fix string) string {
	v := os.Getenv(name)
	if v == "" {
		e.problems = append(e.problems, fmt.Sprintf("%s is not set: %s", name, fix))
	}
	return v
}

// Duration parses a Go duration such as 30s or 5m.
func (e *Env) Duration(name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		e.problems = append(e.problems, fmt.Sprintf("%s=%q is not a positive duration (for example 30s or 5m)", name, v))
		return def
	}
	return d
}

// Int parses a whole number.
func (e *Env) Int(name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.problems = append(e.problems, fmt.Sprintf("%s=%q is not a whole number", name, v))
		return def
	}
	return n
}

// Bool parses true/false, 1/0.
func (e *Env) Bool(name string, def bool) bool {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.problems = append(e.problems, fmt.Sprintf("%s=%q is not true or false", name, v))
		return def
	}
	return b
}

// Check records a problem found by validating a value.
func (e *Env) Check(err error) {
	if err != nil {
		e.problems = append(e.problems, err.Error())
	}
}

// Err is every problem found, or nil.
func (e *Env) Err() error {
	if len(e.problems) == 0 {
		return nil
	}
	return errors.New("configuration: " + strings.Join(e.problems, "; "))
}

// Check is a readiness check: nil means ready.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// NewRegistry is a Prometheus registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves /livez (the process answers), /readyz (every check passes within 2s)
// and /metrics.
func Handler(reg *prometheus.Registry, checks ...Check) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		var failed []string
		for _, c := range checks {
			if err := c.Fn(ctx); err != nil {
				failed = append(failed, c.Name+": "+err.Error())
			}
		}
		if len(failed) > 0 {
			http.Error(w, "not ready: "+strings.Join(failed, "; "), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}

// Serve runs an HTTP server with explicit timeouts until ctx ends, then shuts it down
// within 5s. An address that cannot be bound is returned at once.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger) (stop func() error, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ops: listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("http listening", "addr", ln.Addr().String())
	return func() error {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err := srv.Shutdown(sctx)
		if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
			return serr
		}
		return err
	}, nil
}

// Instance names this process in logs and events when nothing else does: host and pid,
// unique enough to tell replicas apart.
func Instance() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}
