package main

// Start-up errors as the person running `make run` reads them: what is wrong and the
// setting to change (DATA_DIR, NATS_PORT, PG_PORT, HTTP_ADDR, NATS_URL, DATABASE_URL),
// never our package or function names. Our packages label their errors for
// developers ("localpg: initdb: ..."); those labels mean nothing to someone who has
// just cloned the repository, so plain drops them from whatever detail is quoted.

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/lexhq/gstjobs/internal/db"
	"github.com/lexhq/gstjobs/internal/localpg"
)

// packageNames are the names of this repository's packages, which label their errors;
// TestPackageNamesAreKnown keeps the list complete.
var packageNames = []string{
	"analytics", "bus", "catalog", "child", "db", "demo", "e2e", "events", "gateway", "healthcheck", "jobservice",
	"jobstate", "localpg", "natsauth", "natsembed", "natstest", "notify", "ops", "pgtest", "reminders",
	"sla", "smtptest", "tenancy", "ticker", "topology", "worker",
}

var packageLabel = regexp.MustCompile(`(^|: |; |\(|\n)(` + strings.Join(packageNames, "|") + `): `)

// message is err as main prints it: plain, and every problem of a joined error on a
// line of its own.
func message(err error) string {
	return strings.ReplaceAll(plain(err), "\n", "\n  ")
}

// plain is err's message without our packages' labels.
func plain(err error) string {
	msg := err.Error()
	for {
		next := packageLabel.ReplaceAllString(msg, "$1")
		if next == msg {
			return msg
		}
		msg = next
	}
}

const afresh = "; to start afresh, set DATA_DIR to a new directory"

// checkPort validates a port setting.
func checkPort(setting string, port int) error {
	return checkPortRange(setting, port, 0)
}

// checkPortRange checks that port and the span ports above it (make cluster's nodes
// and replicas) are all ports.
func checkPortRange(setting string, port, span int) error {
	switch {
	case port < 1 || port > 65535:
		return fmt.Errorf("%s=%d is not a port: set %s to a number from 1 to 65535", setting, port, setting)
	case port+span > 65535:
		return fmt.Errorf("%s=%d: make cluster also uses the ports up to %s+%d: set %s to at most %d", setting, port, setting, span, setting, 65535-span)
	}
	return nil
}

// listener is an address a server of ours will listen on, and the setting that
// chooses it.
type listener struct{ setting, addr string }

// listeners are every address the launcher's servers will listen on.
func (c config) listeners() []listener {
	if c.cluster {
		return c.clusterListeners()
	}
	var ls []listener
	if !c.natsGiven {
		ls = append(ls, listener{"NATS_PORT", localAddr(c.natsPort)})
	}
	if !c.dbGiven {
		ls = append(ls, listener{"PG_PORT", localAddr(c.pgPort)})
	}
	return append(ls, listener{"HTTP_ADDR", c.httpAddr})
}

func localAddr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// checkAddresses reports every address that a server of ours could not listen on,
// all at once, before any server starts: one that is taken would otherwise be found
// only after PostgreSQL had been initialised, and one at a time.
func checkAddresses(ls []listener) error {
	var problems []error
	for _, w := range ls {
		l, err := net.Listen("tcp", w.addr)
		if err != nil {
			problems = append(problems, listenProblem(w.setting, w.addr, err))
			continue
		}
		l.Close()
	}
	return errors.Join(problems...)
}

// listenProblem says why addr, chosen by setting, cannot be listened on, and what
// to set instead.
func listenProblem(setting, addr string, err error) error {
	_, port, _ := net.SplitHostPort(addr)
	free := "a free port"
	if setting == "HTTP_ADDR" {
		free = "a free address such as 127.0.0.1:8081"
	}
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("port %s is in use (%s): set %s to %s or stop what uses it", port, setting, setting, free)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("port %s is reserved for root (%s): set %s to a port above 1023", port, setting, setting)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("%s is not an address of this machine (%s): set %s to %s", addr, setting, setting, free)
	default:
		return fmt.Errorf("cannot listen on %s (%s): %v: set %s to %s", addr, setting, err, setting, free)
	}
}

// dataDirProblem is a DATA_DIR that cannot be used as it must.
func dataDirProblem(dir, what string, err error) error {
	return fmt.Errorf("DATA_DIR=%s %s (%s): set DATA_DIR to a directory you can write", dir, what, plain(err))
}

func natsStartProblem(cfg config, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) { // taken since checkAddresses
		return listenProblem("NATS_PORT", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.natsPort)), err)
	}
	return fmt.Errorf("the embedded NATS server did not start on port %d (NATS_PORT) with its store in DATA_DIR=%s: %s%s", cfg.natsPort, cfg.dataDir, plain(err), afresh)
}

// pgProblem is a failure to start PostgreSQL that no setting of ours explains, such
// as its programs not being installed; a server of one's own is the way round it.
func pgProblem(err error) error {
	msg := "the private PostgreSQL cannot start: " + plain(err)
	if !strings.Contains(msg, "DATABASE_URL") {
		msg += "; or set DATABASE_URL to a PostgreSQL server of your own"
	}
	return errors.New(msg)
}

func pgStartProblem(cfg config, p localpg.Placement, err error) error {
	switch {
	case errors.Is(err, localpg.ErrPortInUse): // taken since checkAddresses
		return listenProblem("PG_PORT", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.pgPort)), syscall.EADDRINUSE)
	case errors.Is(err, localpg.ErrBinariesNotFound), errors.Is(err, localpg.ErrNoPostgresUser):
		return pgProblem(err)
	case errors.Is(err, localpg.ErrUnreachable):
		return fmt.Errorf("the private PostgreSQL cannot use its files in %s, from DATA_DIR=%s: %s: set DATA_DIR to a directory the postgres user can reach", p.Dir, cfg.dataDir, plain(err))
	case errors.Is(err, localpg.ErrAlreadyRunning), errors.Is(err, localpg.ErrNotACluster):
		return fmt.Errorf("the private PostgreSQL of DATA_DIR=%s cannot start: %s; or set DATA_DIR to another directory", cfg.dataDir, plain(err))
	default:
		remedy := afresh
		if p.Moved() { // such as /var/lib being read-only
			remedy = "; or set DATA_DIR to a directory the postgres user can reach (not under a 0700 one), to keep PostgreSQL's files there"
		}
		return fmt.Errorf("the private PostgreSQL did not start on port %d (PG_PORT) with its files in %s, from DATA_DIR=%s: %s%s", cfg.pgPort, p.Dir, cfg.dataDir, plain(err), remedy)
	}
}

// dbProblem is a failure to use the database once it runs.
func (c config) dbProblem(what string, err error) error {
	if c.dbGiven {
		return fmt.Errorf("could not %s on the database at DATABASE_URL=%s: %s: check DATABASE_URL", what, db.Redact(c.dbURL), plain(err))
	}
	return fmt.Errorf("could not %s on the private PostgreSQL, its files in %s from DATA_DIR=%s: %s%s", what, c.pg.Dir, c.dataDir, plain(err), afresh)
}

// natsProblem is a failure to use NATS once it runs.
func (c config) natsProblem(what string, err error) error {
	if c.natsGiven {
		return fmt.Errorf("could not %s on NATS at NATS_URL=%s: %s: check NATS_URL", what, c.natsURL, plain(err))
	}
	return fmt.Errorf("could not %s on the embedded NATS, its store in DATA_DIR=%s: %s%s", what, c.dataDir, plain(err), afresh)
}

// serviceProblem is a service of ours that would not start. Configuration errors
// name their variable; anything else comes from NATS or PostgreSQL, whose data live
// in DATA_DIR unless given.
func serviceProblem(name string, err error) error {
	msg := plain(err)
	if strings.HasPrefix(msg, "configuration: ") {
		return errors.New(msg)
	}
	return fmt.Errorf("the %s service did not start: %s%s", name, msg, afresh)
}
