package gateway

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/lexhq/gstjobs/internal/events"
)

// Tried: the errors of real failed connections to PostgreSQL (pgx dialling a TCP port on
// which nothing listens, and a unix socket in a directory where no server runs, as a job
// does when the database is down), as a run's public error details, read by a firm's
// admin and by the platform operator.
// Must hold: the firm's people read why (connection refused, no such socket) but not the
// database's user, name, address, port or socket directory; the operator reads the
// details whole; details that are not public stay withheld.
func TestFirmDetailsNameNoDatabaseServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close() // nothing listens there now: the dial is refused
	sockDir := t.TempDir()
	for _, c := range []struct {
		name, url, cause string
		server           []string // what names the server: in the error, not in a firm's view
	}{
		{"tcp", "postgres://jobs_user@127.0.0.1:" + port + "/firm_db_name?sslmode=disable&connect_timeout=5",
			"connection refused", []string{"jobs_user", "firm_db_name", "127.0.0.1", ":" + port}},
		{"unix socket", "host=" + sockDir + " port=" + port + " user=jobs_user dbname=firm_db_name connect_timeout=5",
			"no such file or directory", []string{"jobs_user", "firm_db_name", sockDir, port}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := pgx.Connect(context.Background(), c.url)
			if err == nil {
				t.Fatal("connected where no server runs")
			}
			details := "sla: check: begin: " + err.Error()
			for _, want := range c.server {
				if !strings.Contains(details, want) {
					t.Fatalf("pgx's error no longer names %q, so this test no longer tries what it says: %s", want, details)
				}
			}
			r := events.Result{JobName: "check-sla-and-overdue", RunID: "r1", Status: events.StatusFailed,
				ErrorMessage: "Database connection failed", ErrorDetails: details, DetailsPublic: true}

			firm, public := firmDetails(r)
			t.Logf("the operator reads %q; a firm reads %q", details, firm)
			if !public || !strings.Contains(firm, c.cause) || !strings.Contains(firm, "failed to connect to the database") {
				t.Errorf("a firm reads %q (public %v); want the cause, %s", firm, public, c.cause)
			}
			for _, leak := range c.server {
				if strings.Contains(firm, leak) {
					t.Errorf("a firm reads %q, which names the database server (%q)", firm, leak)
				}
			}
			if op, ok := viewResult(r, nil, Viewer{Operator: true}); !ok || op.ErrorDetails != details {
				t.Errorf("the operator reads %q, want the details whole: %q", op.ErrorDetails, details)
			}
			r.DetailsPublic = false
			if firm, _ := firmDetails(r); firm != DetailsWithheld {
				t.Errorf("details that are not public read %q, want them withheld", firm)
			}
		})
	}
}
