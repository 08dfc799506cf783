// Command gateway serves the dashboard, the HTTP API and the live websocket feed, and
// persists every job result to audit_log.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata"

	"github.com/jonboulle/clockwork"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/db"
	"github.com/lexhq/gstjobs/internal/demo"
	"github.com/lexhq/gstjobs/internal/healthcheck"
	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/internal/natsauth"
	"github.com/lexhq/gstjobs/internal/ops"
	"github.com/lexhq/gstjobs/services/gateway"
)

// defaultHTTPAddr is where the gateway listens without HTTP_ADDR.
const defaultHTTPAddr = ":8080"

func main() {
	healthcheck.Main("HTTP_ADDR", defaultHTTPAddr) // `gateway healthcheck`: the container's health check
	log := ops.NewLogger("gateway")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log); err != nil {
		log.Error("stopped with an error", "err", err)
		os.Exit(1)
	}
}

// mask says whether a secret is set without showing it.
func mask(secret string) string {
	if secret == "" {
		return "(unset)"
	}
	return fmt.Sprintf("(set, %d bytes)", len(secret))
}

func run(ctx context.Context, log *slog.Logger) error {
	// Configuration.
	env := &ops.Env{}
	natsURL := env.Required("NATS_URL", "point it at a NATS server with JetStream (nats://host:4222), or use `make run`, which starts one")
	dbURL := env.Required("DATABASE_URL", "point it at PostgreSQL (postgres://user:pass@host:5432/db), or use `make run`, which starts one")
	addr := env.String("HTTP_ADDR", defaultHTTPAddr)
	creds := natsauth.FromEnv(env, natsURL)
	auditLinger := env.Duration("AUDIT_LINGER", 0)
	loc, err := catalog.LoadTimezone(env.String("JOBS_TIMEZONE", catalog.DefaultTimezone))
	env.Check(err)
	devMode := env.Bool("GATEWAY_DEV_MODE", false)
	var secret string
	if devMode {
		secret = env.String("AUTH_JWT_SECRET", "") // empty: a random one for this run
	} else {
		secret = env.Required("AUTH_JWT_SECRET", "set it to the HS256 secret the product signs its access tokens with (at least 32 bytes), or set GATEWAY_DEV_MODE=true on a developer's machine")
		if secret != "" && len(secret) < gateway.MinSecretLen {
			env.Check(fmt.Errorf("AUTH_JWT_SECRET is %d bytes: use the product's JWT secret, at least %d bytes", len(secret), gateway.MinSecretLen))
		}
	}
	// The platform operator's sign-in: optional; without it nobody can sign in as the
	// operator (outside development).
	operatorSecret := env.String("OPERATOR_JWT_SECRET", "")
	if operatorSecret != "" && len(operatorSecret) < gateway.MinSecretLen && !devMode {
		env.Check(fmt.Errorf("OPERATOR_JWT_SECRET is %d bytes: use at least %d random bytes (openssl rand -hex 32)", len(operatorSecret), gateway.MinSecretLen))
	}
	if operatorSecret != "" && operatorSecret == secret {
		env.Check(fmt.Errorf("OPERATOR_JWT_SECRET must differ from AUTH_JWT_SECRET: whoever holds the product's secret must not be able to sign in as the platform operator"))
	}
	var origins []string
	for _, o := range strings.Split(env.String("ALLOWED_ORIGINS", ""), ",") {
		if o = strings.TrimSpace(o); o != "" {
			origins = append(origins, o)
		}
	}
	if err := env.Err(); err != nil {
		return err
	}
	log.Info("starting", "nats_url", natsURL, "nats_credentials", creds.String(), "database", db.Redact(dbURL), "http_addr", addr, "jobs_timezone", loc.String(), "audit_linger", auditLinger,
		"gateway_dev_mode", devMode, "auth_jwt_secret", mask(secret), "operator_jwt_secret", mask(operatorSecret), "allowed_origins", origins)
	if operatorSecret == "" && !devMode {
		log.Warn("OPERATOR_JWT_SECRET is not set: nobody can sign in as the platform operator (pause for every firm, schedules, every firm's results)")
	}

	// Dependencies.
	pool, nc, js, closeAll, err := jobservice.Connect(ctx, natsauth.Gateway, natsURL, dbURL, creds, log)
	if err != nil {
		return err
	}
	defer closeAll()

	// Start.
	g, err := gateway.New(gateway.Config{
		Pool: pool, NC: nc, JS: js, Clock: clockwork.NewRealClock(), Location: loc, Log: log,
		Registry: ops.NewRegistry(), Addr: addr, AuditLinger: auditLinger,
		JWTSecret: []byte(secret), OperatorSecret: []byte(operatorSecret), DevMode: devMode, AllowedOrigins: origins,
	})
	if err != nil {
		return err
	}
	if err := g.Start(ctx); err != nil {
		return err
	}
	if devMode {
		// Development only: links that sign in as the demo users (demo.Load).
		links, err := g.SignInLinks(demo.UsersByRole, 12*time.Hour)
		if err != nil {
			return err
		}
		for _, role := range []string{"admin", "partner", "manager", "ca", "advocate", "user"} {
			log.Info("development sign-in link", "role", role, "url", links[role])
		}
		if link, err := g.OperatorSignInLink(12 * time.Hour); err == nil {
			log.Info("development sign-in link", "role", gateway.RoleOperator, "url", link)
		}
	}

	// Wait, then shut down.
	<-ctx.Done()
	log.Info("shutting down")
	g.Stop()
	if err := nc.Drain(); err != nil {
		log.Warn("nats drain", "err", err)
	}
	log.Info("stopped")
	return nil
}
