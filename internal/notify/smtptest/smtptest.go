// Package smtptest runs a real SMTP server inside a test (github.com/emersion/go-smtp on
// 127.0.0.1), which records every message it accepts and can be told to refuse given
// recipients, so that e-mail delivery is tested over the wire rather than against a mock.
//
//	srv := smtptest.Start(t)
//	srv.Reject("bounce@firm.example")
//	mailer, _ := notify.NewMailer(srv.URL(), "Jobs <jobs@firm.example>")
//	...
//	msgs := srv.Messages()
//
// A message is recorded before the server answers the client's DATA, so once a send
// has returned, its messages are there: tests need not wait.
package smtptest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"mime"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one message the server accepted.
type Message struct {
	From string
	To   []string
	// Data is the message as received: headers and body.
	Data []byte
	// Header is Data's header, parsed.
	Header mail.Header
	Body   string
}

// Subject is the decoded Subject header.
func (m Message) Subject() string {
	s, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		return m.Header.Get("Subject")
	}
	return s
}

// Server is a running test SMTP server.
type Server struct {
	addr string
	srv  *smtp.Server

	mu       sync.Mutex
	messages []Message
	rejected map[string]bool
	senders  map[string]bool // refused senders
	sessions int
	dropEach int // close a session when it starts its message number dropEach+1
}

// Start runs a server on a free port of 127.0.0.1 and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartAt(t, "127.0.0.1:0")
}

// StartAt runs a server on addr (a port reserved by [ClosedAddr], say, to bring a
// "down" server back) and stops it when the test ends.
func StartAt(t testing.TB, addr string) *Server {
	t.Helper()
	var ln net.Listener
	var err error
	// The port of a closed listener can take a moment to be free again.
	for range 50 {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("smtptest: listen on %s: %v", addr, err)
	}
	s := &Server{addr: ln.Addr().String(), rejected: map[string]bool{}, senders: map[string]bool{}}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		s.sessions++
		s.mu.Unlock()
		return &session{s: s, conn: c}, nil
	}))
	s.srv.Domain = "smtptest.local"
	s.srv.ReadTimeout = 30 * time.Second
	s.srv.WriteTimeout = 30 * time.Second
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = s.srv.Close()
		<-done
	})
	return s
}

// ClosedAddr is an address on 127.0.0.1 where nothing listens: a server that is down.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: reserve a port: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("smtptest: release port: %v", err)
	}
	return addr
}

// Addr is host:port.
func (s *Server) Addr() string { return s.addr }

// URL is the server as an SMTP_URL (no TLS, no authentication).
func (s *Server) URL() string { return URL(s.addr) }

// URL is the SMTP_URL of a plain server at addr.
func URL(addr string) string { return "smtp://" + addr }

// Reject makes the server refuse RCPT TO for address with 550 5.1.1.
func (s *Server) Reject(address string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejected[strings.ToLower(address)] = true
}

// RejectSender makes the server refuse MAIL FROM address with 550 5.7.1, as a relay
// does for a sender the account may not use.
func (s *Server) RejectSender(address string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.senders[strings.ToLower(address)] = true
}

// DropEach makes the server cut every connection, without a word, when it has
// accepted n messages on it and the client starts another: a connection lost midway.
func (s *Server) DropEach(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropEach = n
}

// Messages returns a copy of the messages accepted so far, in arrival order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Recipients is every recipient of every accepted message, in arrival order.
func (s *Server) Recipients() []string {
	var out []string
	for _, m := range s.Messages() {
		out = append(out, m.To...)
	}
	return out
}

// Sessions is how many SMTP sessions (connections that said EHLO) the server had.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

type session struct {
	s        *Server
	conn     *smtp.Conn
	accepted int
	from     string
	to       []string
}

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	se.s.mu.Lock()
	refused := se.s.senders[strings.ToLower(from)]
	drop := se.s.dropEach > 0 && se.accepted >= se.s.dropEach
	se.s.mu.Unlock()
	if drop {
		_ = se.conn.Close()
		return errors.New("connection dropped")
	}
	if refused {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender address rejected: not owned by user"}
	}
	se.from = from
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	se.s.mu.Lock()
	rejected := se.s.rejected[strings.ToLower(to)]
	se.s.mu.Unlock()
	if rejected {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	}
	se.to = append(se.to, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	msg := Message{From: se.from, To: append([]string(nil), se.to...), Data: data}
	if parsed, err := mail.ReadMessage(bytes.NewReader(data)); err == nil {
		msg.Header = parsed.Header
		body, _ := io.ReadAll(parsed.Body)
		msg.Body = string(body)
	} else {
		return fmt.Errorf("smtptest: unreadable message: %w", err)
	}
	se.s.mu.Lock()
	se.s.messages = append(se.s.messages, msg)
	se.s.mu.Unlock()
	se.accepted++
	return nil
}

func (se *session) Reset() { se.from, se.to = "", nil }

func (se *session) Logout() error { return nil }
