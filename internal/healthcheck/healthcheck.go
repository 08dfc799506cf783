// Package healthcheck makes a service binary its own container health check. The
// runtime image is distroless (the Dockerfile): no shell, no wget, nothing but the
// binary, so compose runs `/service healthcheck`, which asks the service's own
// /readyz on the address it listens on (OPS_ADDR, or a gateway's HTTP_ADDR) and exits
// 0 only on a 200. Every service's main calls Main first, before it reads anything
// else of its configuration.
package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"
)

// Arg is the argument that makes a service binary check itself: /service healthcheck.
const Arg = "healthcheck"

// Timeout bounds one check: /readyz gives its own checks 2s.
const Timeout = 4 * time.Second

// Requested says whether the command line (os.Args) asks for the health check.
func Requested(args []string) bool {
	return len(args) == 2 && args[1] == Arg
}

// Main checks the service and exits, if the command line asks for it; else it
// returns and the service starts. addrVar is the variable the service reads its
// listen address from, defaultAddr the address it listens on when that is unset.
func Main(addrVar, defaultAddr string) {
	if !Requested(os.Args) {
		return
	}
	addr := os.Getenv(addrVar)
	if addr == "" {
		addr = defaultAddr
	}
	os.Exit(Run(context.Background(), addrVar, addr, os.Stdout, os.Stderr))
}

// Run asks the readiness of the service listening on addr (read from addrVar) once,
// says on stdout that it is ready or on stderr why not, and returns the exit code: 0
// ready, 1 not (docker reserves 2).
func Run(ctx context.Context, addrVar, addr string, stdout, stderr io.Writer) int {
	url, err := URL(addr)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: %s=%q: %v\n", addrVar, addr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	if err := Check(ctx, url); err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		if errors.Is(err, syscall.ECONNREFUSED) {
			fmt.Fprintf(stderr, "healthcheck: nothing listens there: is the service running, and does it listen on %s=%q?\n", addrVar, addr)
		}
		return 1
	}
	fmt.Fprintf(stdout, "healthcheck: %s: ready\n", url)
	return 0
}

// URL is the readiness URL of a service that listens on addr (":9101",
// "0.0.0.0:8080", "[::]:9101", "10.1.2.3:9101"): that host, or the loopback when it
// listens on every interface.
func URL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("not a listen address (host:port or :port): %w", err)
	}
	if port == "" || port == "0" {
		return "", errors.New("no fixed port to ask")
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}

// client asks the service itself: never through a proxy from the environment.
var client = &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

// Check GETs url once: nil on a 200, else an error with what came back.
func Check(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err // Get "http://…/readyz": dial tcp …: connection refused
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
