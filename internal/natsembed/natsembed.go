// Package natsembed runs a NATS server with JetStream inside the process, for `make run`
// and for tests. Production points NATS_URL at a real (clustered) server instead.
package natsembed

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config of an embedded server.
type Config struct {
	// Host and Port to listen on; Port -1 picks a free one (tests).
	Host string
	Port int
	// StoreDir keeps JetStream data; empty means a temporary, in-memory-only setup is
	// not wanted, so it is required.
	StoreDir string
	// ServerName shows in `nats server info`.
	ServerName string
	// Users may connect, each with its permissions (natsauth.ServerUsers). None: every
	// client may do anything.
	Users []*server.User
	// NoAuthUser is the user of connections without credentials (natsauth.Developer
	// under `make run`); empty: such connections are refused when there are Users.
	NoAuthUser string
	// TLS, when set, is required of every client.
	TLS *tls.Config
}

// Start runs the server and waits until it accepts clients.
func Start(cfg Config) (*server.Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("natsembed: StoreDir is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Port > 0 {
		// A clear message beats the server's own when the port is taken.
		l, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
		if err != nil {
			return nil, fmt.Errorf("natsembed: port %d on %s is taken (another NATS or `make run` is running?): choose another with NATS_PORT, or point NATS_URL at a running server: %w", cfg.Port, cfg.Host, err)
		}
		l.Close()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = "gstjobs-dev"
	}
	opts := &server.Options{
		ServerName: cfg.ServerName,
		Host:       cfg.Host,
		Port:       cfg.Port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
		NoLog:      true,
		Users:      cfg.Users,
		NoAuthUser: cfg.NoAuthUser,
	}
	if cfg.TLS != nil {
		opts.TLSConfig, opts.TLS, opts.TLSVerify = cfg.TLS, true, cfg.TLS.ClientAuth == tls.RequireAndVerifyClientCert
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("natsembed: server on %s:%d not ready after 10s", cfg.Host, cfg.Port)
	}
	return s, nil
}
