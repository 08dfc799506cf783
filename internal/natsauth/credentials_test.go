package natsauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/natsauth"
	"github.com/lexhq/gstjobs/internal/natsembed"
	"github.com/lexhq/gstjobs/internal/ops"
)

// clearNATSEnv unsets every variable FromEnv reads, for the test.
func clearNATSEnv(t *testing.T) {
	for _, v := range []string{natsauth.EnvUser, natsauth.EnvPassword, natsauth.EnvNkey, natsauth.EnvCreds, natsauth.EnvTLSCA, natsauth.EnvTLSCert, natsauth.EnvTLSKey} {
		t.Setenv(v, "")
	}
}

func write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// What is tried: each way of getting the NATS credentials wrong in the environment.
// What must hold: every problem is reported at once, naming the variable and what to
// set it to.
func TestFromEnvNamesTheVariableAndTheFix(t *testing.T) {
	seed := write(t, "not-a-seed", "hello")
	tests := []struct {
		name string
		env  map[string]string
		url  string
		want []string
	}{
		{"user without password", map[string]string{"NATS_USER": "sla"}, "", []string{"NATS_USER=sla is set but NATS_PASSWORD is not: set NATS_PASSWORD"}},
		{"password without user", map[string]string{"NATS_PASSWORD": "x"}, "", []string{"NATS_PASSWORD is set but NATS_USER is not: set NATS_USER to the service's NATS user"}},
		{"two forms", map[string]string{"NATS_USER": "sla", "NATS_PASSWORD": "x", "NATS_NKEY": seed}, "", []string{"NATS credentials are set in NATS_USER and NATS_PASSWORD and NATS_NKEY: set one of them"}},
		{"nkey not a seed", map[string]string{"NATS_NKEY": seed}, "", []string{"NATS_NKEY=" + seed + " is not a readable file holding a user nkey seed"}},
		{"nkey missing", map[string]string{"NATS_NKEY": "/nonexistent/seed"}, "", []string{"NATS_NKEY=/nonexistent/seed is not a readable file"}},
		{"creds missing", map[string]string{"NATS_CREDS": "/nonexistent/x.creds"}, "", []string{"NATS_CREDS=/nonexistent/x.creds is not a readable creds file"}},
		{"CA not PEM", map[string]string{"NATS_TLS_CA": seed}, "", []string{"NATS_TLS_CA=" + seed + ": no PEM certificate in it: set it to a PEM file"}},
		{"cert without key", map[string]string{"NATS_TLS_CERT": seed}, "", []string{"NATS_TLS_CERT and NATS_TLS_KEY go together: set both"}},
		{"credentials twice", map[string]string{"NATS_USER": "sla", "NATS_PASSWORD": "x"}, "nats://sla:secret@nats:4222", []string{"NATS_URL holds credentials and NATS_USER and NATS_PASSWORD too", "nats://sla:xxxxx@nats:4222"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearNATSEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			env := &ops.Env{}
			natsauth.FromEnv(env, tt.url)
			err := env.Err()
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("FromEnv with %v: %v; want it to say %q", tt.env, err, w)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("the message shows a password: %v", err)
			}
		})
	}
	clearNATSEnv(t)
	env := &ops.Env{}
	if c := natsauth.FromEnv(env, "nats://nats:4222"); env.Err() != nil || c.Set() {
		t.Errorf("no variables: %+v, %v; want no credentials and no problem", c, env.Err())
	}
}

// What is tried: a service user configured on the server by password and by nkey,
// and a client reading each form from the environment (NATS_USER and NATS_PASSWORD;
// NATS_NKEY, a seed file) as the binaries do. What must hold: each connects as that
// user, with that user's permissions: the sla user may publish its own job's status
// and is refused another service's result.
func TestPasswordAndNkeyCredentialsFromTheEnvironment(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := write(t, "sla.nk", string(seed))
	password := natsauth.NewPassword()
	opts := &server.Options{
		Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		Users:      []*server.User{{Username: natsauth.SLA, Password: password, Permissions: natsauth.Permissions(natsauth.SLA)}},
		Nkeys:      []*server.NkeyUser{{Nkey: pub, Permissions: natsauth.Permissions(natsauth.SLA)}},
		NoAuthUser: "",
	}
	srv := runServer(t, opts)

	for name, env := range map[string]map[string]string{
		"password": {natsauth.EnvUser: natsauth.SLA, natsauth.EnvPassword: password},
		"nkey":     {natsauth.EnvNkey: seedFile},
	} {
		t.Run(name, func(t *testing.T) {
			clearNATSEnv(t)
			for k, v := range env {
				t.Setenv(k, v)
			}
			e := &ops.Env{}
			creds := natsauth.FromEnv(e, srv.ClientURL())
			if err := e.Err(); err != nil {
				t.Fatal(err)
			}
			refused := connectPlain(t, srv.ClientURL(), creds, events.StatusSubject(catalog.CheckSLAAndOverdue), events.ResultSubject(catalog.SendHearingReminders))
			if !strings.Contains(refused.Error(), `"`+events.ResultSubject(catalog.SendHearingReminders)+`"`) {
				t.Errorf("as sla by %s: %v; want the hearing reminders' result refused", name, refused)
			}
		})
	}

	clearNATSEnv(t)
	t.Setenv(natsauth.EnvUser, natsauth.SLA)
	t.Setenv(natsauth.EnvPassword, "wrong")
	e := &ops.Env{}
	opts2, err := natsauth.FromEnv(e, srv.ClientURL()).Options()
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = bus.Connect(context.Background(), srv.ClientURL(), "wrong password", slog.New(slog.DiscardHandler), opts2...)
	if !errors.Is(err, nats.ErrAuthorization) || !strings.Contains(err.Error(), "check NATS_USER and NATS_PASSWORD, NATS_NKEY or NATS_CREDS") {
		t.Errorf("a wrong password: %v; want an authorization error that names the variables", err)
	}
	if c := (natsauth.Credentials{User: "sla", Password: "secret"}); strings.Contains(c.String(), "secret") {
		t.Errorf("Credentials.String shows the password: %s", c)
	}
}

// What is tried: a server whose accounts an operator signs (the decentralised form a
// creds file is for), and a client with NATS_CREDS, a creds file of a user allowed to
// publish the sla job's status only. What must hold: it connects as that user, and the
// server holds it to the user's permissions.
func TestCredsFileFromTheEnvironment(t *testing.T) {
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	oc := jwt.NewOperatorClaims(opub)
	ojwt, err := oc.Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	operator, err := jwt.DecodeOperatorClaims(ojwt)
	if err != nil {
		t.Fatal(err)
	}
	akp, _ := nkeys.CreateAccount()
	apub, _ := akp.PublicKey()
	ajwt, err := jwt.NewAccountClaims(apub).Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.Pub.Allow.Add(events.StatusSubject(catalog.CheckSLAAndOverdue))
	uc.Sub.Allow.Add("_INBOX.>")
	ujwt, err := uc.Encode(akp)
	if err != nil {
		t.Fatal(err)
	}
	useed, _ := ukp.Seed()
	creds, err := jwt.FormatUserConfig(ujwt, useed)
	if err != nil {
		t.Fatal(err)
	}
	resolver := &server.MemAccResolver{}
	if err := resolver.Store(apub, ajwt); err != nil {
		t.Fatal(err)
	}
	srv := runServer(t, &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		TrustedOperators: []*jwt.OperatorClaims{operator}, AccountResolver: resolver})

	clearNATSEnv(t)
	t.Setenv(natsauth.EnvCreds, write(t, "sla.creds", string(creds)))
	e := &ops.Env{}
	c := natsauth.FromEnv(e, srv.ClientURL())
	if err := e.Err(); err != nil {
		t.Fatal(err)
	}
	refused := connectPlain(t, srv.ClientURL(), c, events.StatusSubject(catalog.CheckSLAAndOverdue), events.ResultSubject(catalog.CheckSLAAndOverdue))
	if !strings.Contains(refused.Error(), `"`+events.ResultSubject(catalog.CheckSLAAndOverdue)+`"`) {
		t.Errorf("as the creds file's user: %v; want the result refused", refused)
	}
}

func runServer(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// connectPlain connects with creds (core NATS, no JetStream), publishes allowed, which
// must not be refused, then denied, and returns the server's refusal of denied.
func connectPlain(t *testing.T, url string, creds natsauth.Credentials, allowed, denied string) error {
	t.Helper()
	opts, err := creds.Options()
	if err != nil {
		t.Fatal(err)
	}
	refusals := make(chan error, 8)
	nc, err := nats.Connect(url, append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { refusals <- err }))...)
	if err != nil {
		t.Fatalf("connect with %s: %v", creds, err)
	}
	defer nc.Close()
	if err := nc.Publish(allowed, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(denied, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-refusals:
		if strings.Contains(err.Error(), `"`+allowed+`"`) {
			t.Fatalf("%s was refused: %v", allowed, err)
		}
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("%s was not refused within 5s", denied)
	}
	return nil
}

// What is tried: an embedded server with TLS, its certificate signed by a CA made in
// the test, first for any client and then requiring a client certificate; clients with
// NATS_TLS_CA (and NATS_TLS_CERT, NATS_TLS_KEY) and without. What must hold: with the
// CA (and, when required, the client's certificate) the client connects over TLS, to
// nats:// and tls:// URLs alike; without the CA it is refused for an unknown authority;
// without its certificate the server refuses it.
func TestTLSWithTheCAFromTheEnvironment(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCA(t)
	caFile := filepath.Join(dir, "ca.pem")
	writePEM(t, caFile, "CERTIFICATE", ca.Raw)
	serverCert := newCert(t, ca, caKey, x509.ExtKeyUsageServerAuth)
	clientCert := newCert(t, ca, caKey, x509.ExtKeyUsageClientAuth)
	certFile, keyFile := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	writePEM(t, certFile, "CERTIFICATE", clientCert.Certificate[0])
	der, err := x509.MarshalECPrivateKey(clientCert.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, keyFile, "EC PRIVATE KEY", der)
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	for _, requireClientCert := range []bool{false, true} {
		tlsCfg := &tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}
		if requireClientCert {
			tlsCfg.ClientAuth, tlsCfg.ClientCAs = tls.RequireAndVerifyClientCert, pool
		}
		s, err := natsembed.Start(natsembed.Config{Port: -1, StoreDir: t.TempDir(), TLS: tlsCfg})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		_, port, _ := net.SplitHostPort(s.Addr().String())
		connect := func(url string, env map[string]string) error {
			clearNATSEnv(t)
			for k, v := range env {
				t.Setenv(k, v)
			}
			e := &ops.Env{}
			creds := natsauth.FromEnv(e, url)
			if err := e.Err(); err != nil {
				t.Fatal(err)
			}
			opts, err := creds.Options()
			if err != nil {
				t.Fatal(err)
			}
			nc, _, err := bus.Connect(context.Background(), url, "tls test", slog.New(slog.DiscardHandler), opts...)
			if err == nil {
				if !nc.TLSRequired() {
					t.Errorf("%s: connected without TLS", url)
				}
				nc.Close()
			}
			return err
		}
		withCA := map[string]string{natsauth.EnvTLSCA: caFile}
		if requireClientCert {
			withCA[natsauth.EnvTLSCert], withCA[natsauth.EnvTLSKey] = certFile, keyFile
		}
		for _, url := range []string{"nats://localhost:" + port, "tls://localhost:" + port} {
			if err := connect(url, withCA); err != nil {
				t.Errorf("client cert required %v: %s with %v: %v; want a TLS connection", requireClientCert, url, withCA, err)
			}
			var unknown x509.UnknownAuthorityError
			if err := connect(url, nil); !errors.As(err, &unknown) {
				t.Errorf("client cert required %v: %s without NATS_TLS_CA: %v; want refused for an unknown authority", requireClientCert, url, err)
			}
		}
		if requireClientCert {
			if err := connect("nats://localhost:"+port, map[string]string{natsauth.EnvTLSCA: caFile}); err == nil {
				t.Error("a client without its certificate connected to a server that requires one")
			}
		}
	}
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gstjobs test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

func newCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
