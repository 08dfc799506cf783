package natsauth

import (
	"crypto/rand"
	"fmt"
	"io"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerUsers are the server's users with their permissions, for an embedded server
// (natsembed): passwords holds each user's password; a user without one is left out.
func ServerUsers(passwords map[string]string) []*server.User {
	var users []*server.User
	for _, u := range Users() {
		if pw, ok := passwords[u]; ok {
			users = append(users, &server.User{Username: u, Password: pw, Permissions: Permissions(u)})
		}
	}
	return users
}

// NewPasswords makes a random password for every user, as `make run` does at each
// start: 32 characters of lowercase letters and digits, starting with a letter, so
// that nats-server reads one from its environment as a string (it parses a variable's
// value as it would a configuration value: 1234 would be a number).
func NewPasswords() map[string]string {
	out := make(map[string]string, len(Users()))
	for _, u := range Users() {
		out[u] = NewPassword()
	}
	return out
}

// NewPassword is one password of NewPasswords.
func NewPassword() string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	const alnum = letters + "0123456789"
	out := make([]byte, 0, 32)
	var b [1]byte
	for len(out) < cap(out) {
		if _, err := rand.Read(b[:]); err != nil {
			panic(err) // crypto/rand does not fail on the systems Go supports
		}
		set := alnum
		if len(out) == 0 {
			set = letters
		}
		// Only bytes below the largest multiple of len(set), so that every character is
		// as likely as any other.
		if int(b[0]) >= 256/len(set)*len(set) {
			continue
		}
		out = append(out, set[int(b[0])%len(set)])
	}
	return string(out)
}

// PasswordVar is the environment variable that holds user's password for the
// production server and for the service that connects as user
// (deploy/nats.env.example): NATS_SLA_PASSWORD.
func PasswordVar(user string) string {
	return "NATS_" + strings.ToUpper(user) + "_PASSWORD"
}

// RoutePasswordVar holds the password with which the servers of a cluster join each
// other's routes (compose.cluster.yaml), so that no one else can join as a server and
// bypass the users' permissions.
const RoutePasswordVar = "NATS_ROUTE_PASSWORD"

// WriteServerConfig writes the nats-server configuration of production
// (deploy/nats-server.conf): JetStream on a file store, the monitoring port, and every
// user with the permissions of Permissions and the password of its PasswordVar
// environment variable, which the server reads at start. No user is a default: a
// connection without credentials is refused. A node's name, its store and, for a
// cluster, its routes are set on the server's command line (compose.yaml,
// compose.cluster.yaml).
func WriteServerConfig(w io.Writer) error {
	var b strings.Builder
	b.WriteString(`# nats-server configuration of the production-like stacks (compose.yaml and
# compose.cluster.yaml): who may publish and subscribe to what.
#
# Generated from internal/natsauth by ` + "`go run ./cmd/natsadmin config > deploy/nats-server.conf`" + `;
# do not edit: change internal/natsauth and generate it again (a test compares the two).
#
# Every password comes from the server's environment (deploy/nats.env.example), read at
# start; nats-server reads each as a configuration value, so use letters and digits
# starting with a letter (` + "`go run ./cmd/natsadmin env`" + ` makes a set).
#
# TLS: add, with the server's certificate and key,
#   tls { cert_file: "/etc/nats/tls/server.pem", key_file: "/etc/nats/tls/server-key.pem" }
# and give the services NATS_TLS_CA (README, Configuration).

port: 4222
http_port: 8222

# JetStream's store is given on the command line (--store_dir /data in compose).
jetstream: enabled

authorization {
  users: [
`)
	for _, u := range Users() {
		p := Permissions(u)
		fmt.Fprintf(&b, "    {\n      user: %q\n      password: $%s\n      permissions: {\n", u, PasswordVar(u))
		writePerm(&b, "publish", p.Publish)
		writePerm(&b, "subscribe", p.Subscribe)
		b.WriteString("      }\n    }\n")
	}
	b.WriteString("  ]\n}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func writePerm(b *strings.Builder, kind string, p *server.SubjectPermission) {
	if p == nil {
		return
	}
	fmt.Fprintf(b, "        %s: {\n", kind)
	for _, list := range []struct {
		name     string
		subjects []string
	}{{"allow", p.Allow}, {"deny", p.Deny}} {
		if len(list.subjects) == 0 {
			continue
		}
		fmt.Fprintf(b, "          %s: [\n", list.name)
		for _, s := range list.subjects {
			fmt.Fprintf(b, "            %q\n", s)
		}
		b.WriteString("          ]\n")
	}
	b.WriteString("        }\n")
}
