package natsauth

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/lexhq/gstjobs/internal/ops"
)

// The environment variables a binary reads its NATS credentials and TLS settings from.
const (
	EnvUser     = "NATS_USER"
	EnvPassword = "NATS_PASSWORD"
	EnvNkey     = "NATS_NKEY"
	EnvCreds    = "NATS_CREDS"
	EnvTLSCA    = "NATS_TLS_CA"
	EnvTLSCert  = "NATS_TLS_CERT"
	EnvTLSKey   = "NATS_TLS_KEY"
)

// Credentials are who a client is to NATS, in one of the forms nats.go supports, and
// how it checks the server over TLS. The zero value is no credentials: the server's
// default user, if it has one.
type Credentials struct {
	// User and Password: a user of the server's configuration (deploy/nats-server.conf).
	User, Password string
	// NkeySeedFile is a file holding a user nkey's seed (SU…); the server knows its
	// public key.
	NkeySeedFile string
	// CredsFile is a creds file (a user JWT and its seed), for servers that use
	// accounts signed by an operator.
	CredsFile string
	// TLSCA is a PEM file of the certificate authorities that sign the server's
	// certificate; set, the connection must be TLS. TLSCert and TLSKey are the client's
	// certificate, for servers that verify clients.
	TLSCA, TLSCert, TLSKey string
}

// Password is the credentials of a user of the server's configuration.
func Password(user, password string) Credentials {
	return Credentials{User: user, Password: password}
}

// FromEnv reads the credentials from NATS_USER and NATS_PASSWORD, NATS_NKEY or
// NATS_CREDS, and TLS from NATS_TLS_CA, NATS_TLS_CERT and NATS_TLS_KEY, and records in
// env every problem, naming the variable and the fix. natsURL is NATS_URL, checked for
// credentials of its own.
func FromEnv(env *ops.Env, natsURL string) Credentials {
	c := Credentials{
		User:         env.String(EnvUser, ""),
		Password:     env.String(EnvPassword, ""),
		NkeySeedFile: env.String(EnvNkey, ""),
		CredsFile:    env.String(EnvCreds, ""),
		TLSCA:        env.String(EnvTLSCA, ""),
		TLSCert:      env.String(EnvTLSCert, ""),
		TLSKey:       env.String(EnvTLSKey, ""),
	}
	var forms []string
	if c.User != "" || c.Password != "" {
		forms = append(forms, EnvUser+" and "+EnvPassword)
	}
	if c.NkeySeedFile != "" {
		forms = append(forms, EnvNkey)
	}
	if c.CredsFile != "" {
		forms = append(forms, EnvCreds)
	}
	if len(forms) > 1 {
		env.Check(fmt.Errorf("NATS credentials are set in %s: set one of them, the one the NATS server's configuration has for this service", strings.Join(forms, " and ")))
	}
	switch {
	case c.User != "" && c.Password == "":
		env.Check(fmt.Errorf("%s=%s is set but %s is not: set %s to that user's password (deploy/nats.env)", EnvUser, c.User, EnvPassword, EnvPassword))
	case c.User == "" && c.Password != "":
		env.Check(fmt.Errorf("%s is set but %s is not: set %s to the service's NATS user (ticker, sla, reminders, analytics or gateway)", EnvPassword, EnvUser, EnvUser))
	}
	if c.NkeySeedFile != "" {
		if _, err := nats.NkeyOptionFromSeed(c.NkeySeedFile); err != nil {
			env.Check(fmt.Errorf("%s=%s is not a readable file holding a user nkey seed (SU…, made with `nk -gen user`): %v", EnvNkey, c.NkeySeedFile, err))
		}
	}
	if c.CredsFile != "" {
		if err := checkCreds(c.CredsFile); err != nil {
			env.Check(fmt.Errorf("%s=%s is not a readable creds file (a user JWT and its seed, made with `nsc generate creds`): %v", EnvCreds, c.CredsFile, err))
		}
	}
	if c.TLSCA != "" {
		if err := checkCA(c.TLSCA); err != nil {
			env.Check(fmt.Errorf("%s=%s: %v: set it to a PEM file of the certificate authority that signs the NATS server's certificate", EnvTLSCA, c.TLSCA, err))
		}
	}
	switch {
	case (c.TLSCert == "") != (c.TLSKey == ""):
		env.Check(fmt.Errorf("%s and %s go together: set both (the client's certificate and its key, PEM) or neither", EnvTLSCert, EnvTLSKey))
	case c.TLSCert != "":
		if err := nats.ClientCert(c.TLSCert, c.TLSKey)(&nats.Options{}); err != nil {
			env.Check(fmt.Errorf("%s=%s and %s=%s are not a certificate and its key (PEM): %v", EnvTLSCert, c.TLSCert, EnvTLSKey, c.TLSKey, err))
		}
	}
	if c.Set() {
		for _, raw := range strings.Split(natsURL, ",") {
			if u, err := url.Parse(strings.TrimSpace(raw)); err == nil && u.User != nil {
				env.Check(fmt.Errorf("NATS_URL holds credentials and %s too: keep them in one place, the variables (NATS_URL=%s)", strings.Join(forms, " and "), u.Redacted()))
				break
			}
		}
	}
	return c
}

// checkCreds reads the creds file as nats.go will at every connect: the JWT, and the
// seed that signs the server's challenge.
func checkCreds(file string) error {
	var o nats.Options
	if err := nats.UserCredentials(file)(&o); err != nil {
		return err
	}
	if _, err := o.UserJWT(); err != nil {
		return err
	}
	_, err := o.SignatureCB([]byte("check"))
	return err
}

func checkCA(file string) error {
	pem, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return errors.New("no PEM certificate in it")
	}
	return nil
}

// Set reports whether there are credentials (a user, an nkey or a creds file).
func (c Credentials) Set() bool {
	return c.User != "" || c.NkeySeedFile != "" || c.CredsFile != ""
}

// Options are the nats.go options that present the credentials and set up TLS.
func (c Credentials) Options() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.NkeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NkeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("natsauth: %s: %w", EnvNkey, err)
		}
		opts = append(opts, o)
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	if c.TLSCA != "" {
		opts = append(opts, nats.RootCAs(c.TLSCA))
	}
	if c.TLSCert != "" {
		opts = append(opts, nats.ClientCert(c.TLSCert, c.TLSKey))
	}
	return opts, nil
}

// String says who the credentials are, for the log of the effective configuration;
// never a secret.
func (c Credentials) String() string {
	var who string
	switch {
	case c.User != "":
		who = "user " + c.User + " (password set)"
	case c.NkeySeedFile != "":
		who = "nkey seed in " + c.NkeySeedFile
	case c.CredsFile != "":
		who = "creds in " + c.CredsFile
	default:
		who = "none (the server's default user)"
	}
	if c.TLSCA != "" {
		who += ", TLS with the CA in " + c.TLSCA
	}
	if c.TLSCert != "" {
		who += ", client certificate " + c.TLSCert
	}
	return who
}

// Env is the credentials as a binary reads them from its environment (FromEnv), every
// variable present, so that a child given them inherits none of its parent's.
func (c Credentials) Env() []string {
	return []string{
		EnvUser + "=" + c.User, EnvPassword + "=" + c.Password, EnvNkey + "=" + c.NkeySeedFile, EnvCreds + "=" + c.CredsFile,
		EnvTLSCA + "=" + c.TLSCA, EnvTLSCert + "=" + c.TLSCert, EnvTLSKey + "=" + c.TLSKey,
	}
}
