// Command natsadmin is what the people who run the system do on NATS, besides running
// the services:
//
//	natsadmin config    print the production nats-server configuration: every user and
//	                    its permissions (internal/natsauth), passwords from the
//	                    environment; deploy/nats-server.conf is its output
//	natsadmin env       print a fresh set of passwords, one variable per user, in the
//	                    form deploy/nats.env.example shows
//	natsadmin declare   declare the streams, buckets and consumers, as the setup user
//	                    (NATS_URL, NATS_USER=setup, NATS_PASSWORD, NATS_REPLICAS), before
//	                    the services start; again after an upgrade. Idempotent.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/natsauth"
	"github.com/lexhq/gstjobs/internal/ops"
)

const usage = `usage: natsadmin config | env | declare
  config   print the production nats-server configuration (deploy/nats-server.conf)
  env      print a fresh password for every NATS user (deploy/nats.env)
  declare  declare the streams, buckets and consumers as the setup user
           (NATS_URL, NATS_USER=setup and NATS_PASSWORD, or NATS_NKEY or NATS_CREDS; NATS_REPLICAS)`

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "config":
		err = natsauth.WriteServerConfig(os.Stdout)
	case "env":
		err = writeEnv()
	case "declare":
		log := ops.NewLogger("natsadmin")
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err = declare(ctx, log); err != nil {
			log.Error("declare failed", "err", err)
			os.Exit(1)
		}
		return
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "natsadmin:", err)
		os.Exit(1)
	}
}

func writeEnv() error {
	fmt.Println("# NATS passwords, one per user (natsadmin env); keep this file secret.")
	for _, u := range natsauth.Users() {
		if _, err := fmt.Printf("%s=%s\n", natsauth.PasswordVar(u), natsauth.NewPassword()); err != nil {
			return err
		}
	}
	_, err := fmt.Printf("%s=%s\n", natsauth.RoutePasswordVar, natsauth.NewPassword())
	return err
}

func declare(ctx context.Context, log *slog.Logger) error {
	// Configuration.
	env := &ops.Env{}
	natsURL := env.Required("NATS_URL", "point it at the NATS server with JetStream (nats://host:4222)")
	creds := natsauth.FromEnv(env, natsURL)
	replicas := env.Int("NATS_REPLICAS", 1)
	if replicas < 1 {
		env.Check(errors.New("NATS_REPLICAS must be 1 or more (1 on one server, 3 on a cluster)"))
	}
	if err := env.Err(); err != nil {
		return err
	}
	log.Info("declaring", "nats_url", natsURL, "nats_credentials", creds.String(), "nats_replicas", replicas)

	// Connect as the setup user and declare. A refused declaration is not answered,
	// so the server's refusal ends the wait at once instead of the timeout.
	opts, err := creds.Options()
	if err != nil {
		return err
	}
	dctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			cancel(err)
		}
	}))
	nc, js, err := bus.Connect(dctx, natsURL, "natsadmin declare", log, opts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	dctx, cancelTimeout := context.WithTimeout(dctx, 30*time.Second)
	defer cancelTimeout()
	if err := bus.Ensure(dctx, js, bus.Options{Replicas: replicas}); err != nil {
		if cause := context.Cause(dctx); errors.Is(cause, nats.ErrPermissionViolation) {
			err = cause
		}
		return fmt.Errorf("%w: declare as the %s user (NATS_USER=%s and its password), whose permissions allow it", err, natsauth.Setup, natsauth.Setup)
	}
	log.Info("declared the streams, buckets and consumers")
	return nil
}
