package notify

import (
	"errors"
	"fmt"
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wneessen/go-mail"
)

// Default ports when the SMTP URL names none: mail submission with STARTTLS, and
// implicit TLS.
const (
	DefaultSMTPPort  = 587
	DefaultSMTPSPort = 465
	// DefaultSMTPTimeout bounds the connection and each SMTP command.
	DefaultSMTPTimeout = 15 * time.Second
)

// Problems [NewMailer] finds in its settings wrap one of these, so a caller can name
// the setting to fix.
var (
	ErrInvalidSMTPURL = errors.New("invalid SMTP URL")
	ErrInvalidSender  = errors.New("invalid sender address")
)

// Mailer sends e-mail through one SMTP server. It holds settings only: nothing is
// dialled until [SendPending] has something to send, and then one connection serves
// the whole batch.
type Mailer struct {
	client *mail.Client
	from   *netmail.Address
	server string // the URL without its password, for errors and logs
}

// MailerOption adjusts a Mailer.
type MailerOption func(*mailerSettings)

type mailerSettings struct {
	timeout time.Duration
}

// WithTimeout bounds the connection and each SMTP command (default 15s).
func WithTimeout(d time.Duration) MailerOption {
	return func(s *mailerSettings) { s.timeout = d }
}

// NewMailer builds a Mailer from an SMTP URL and a sender address. An empty URL means
// e-mail is off: NewMailer returns nil and no error, and a nil *Mailer sends nothing.
//
//	smtp://user:pass@host:port    STARTTLS when the server offers it (port 587 by default)
//	smtps://user:pass@host:port   TLS from the first byte (port 465 by default)
//
// User and password are optional (no SMTP AUTH without them) and URL-encoded when
// they contain reserved characters. With credentials the strongest mechanism the
// server offers is used; PLAIN and LOGIN only over TLS, so a password never crosses
// the network in clear text. from is an address such as
// "GST Jobs <noreply@firm.example>".
func NewMailer(smtpURL, from string, opts ...MailerOption) (*Mailer, error) {
	if strings.TrimSpace(smtpURL) == "" {
		return nil, nil
	}
	settings := mailerSettings{timeout: DefaultSMTPTimeout}
	for _, o := range opts {
		o(&settings)
	}
	u, err := url.Parse(smtpURL)
	if err != nil {
		return nil, fmt.Errorf("%w: not a URL (want smtp://user:pass@host:port or smtps://...): %v", ErrInvalidSMTPURL, redactParseError(err))
	}
	var port int
	var clientOpts []mail.Option
	switch u.Scheme {
	case "smtp":
		port = DefaultSMTPPort
		clientOpts = append(clientOpts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	case "smtps":
		port = DefaultSMTPSPort
		clientOpts = append(clientOpts, mail.WithSSL())
	default:
		return nil, fmt.Errorf("%w: it must start with smtp:// (STARTTLS when offered) or smtps:// (implicit TLS), not %q", ErrInvalidSMTPURL, u.Scheme+"://")
	}
	host := u.Hostname()
	if host == "" {
		return nil, fmt.Errorf("%w: it names no host (want smtp://user:pass@host:port)", ErrInvalidSMTPURL)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%w: port %q is not a port number", ErrInvalidSMTPURL, p)
		}
		port = n
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: it takes no path or parameters (want smtp://user:pass@host:port)", ErrInvalidSMTPURL)
	}
	if settings.timeout <= 0 {
		return nil, fmt.Errorf("%w: the timeout must be positive", ErrInvalidSMTPURL)
	}
	clientOpts = append(clientOpts, mail.WithPort(port), mail.WithTimeout(settings.timeout))
	if u.User != nil && u.User.Username() != "" {
		password, _ := u.User.Password()
		clientOpts = append(clientOpts,
			mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover),
			mail.WithUsername(u.User.Username()),
			mail.WithPassword(password))
	}

	if strings.TrimSpace(from) == "" {
		return nil, fmt.Errorf("%w: e-mail needs a sender address (for example \"GST Jobs <noreply@firm.example>\")", ErrInvalidSender)
	}
	sender, err := netmail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("%w: %q is not an e-mail address (for example \"GST Jobs <noreply@firm.example>\"): %v", ErrInvalidSender, from, err)
	}

	client, err := mail.NewClient(host, clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidSMTPURL, err)
	}
	server := &url.URL{Scheme: u.Scheme, Host: u.Host}
	if u.User != nil && u.User.Username() != "" {
		server.User = url.User(u.User.Username())
	}
	if u.Port() == "" {
		server.Host = host + ":" + strconv.Itoa(port)
	}
	return &Mailer{client: client, from: sender, server: server.String()}, nil
}

// String is the server's URL without the password.
func (m *Mailer) String() string {
	if m == nil {
		return "(e-mail off)"
	}
	return m.server
}

// From is the sender address.
func (m *Mailer) From() string {
	if m == nil {
		return ""
	}
	return m.from.String()
}

// redactParseError keeps a password out of url.Parse's error, which quotes the input.
func redactParseError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return "unparsable"
}
