package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Tried: `make cluster` as a new user meets it: a clone in a home of mode 0700, the
// binaries where `make build` puts them (bin/, built from this working tree), started
// in the clone with no settings but its ports, as a normal user (the suite as root
// runs it as gstjobs-e2e). Must hold: the banner names both dashboards, the three NATS
// nodes and every process; fourteen processes run (three NATS nodes, two tickers, two
// of each job service, two gateways) besides PostgreSQL; the demo's first runs land in
// audit_log, done by the services' processes; an admin who follows the sign-in link on
// one dashboard is signed in on the other; PostgreSQL's files are in
// DATA_DIR=.data/cluster; Ctrl-C stops everything, leaving no process behind and
// nothing for git to see.
func TestMakeClusterFromCloneAsNormalUser(t *testing.T) {
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	home := newHome(t)
	var setup []func(*exec.Cmd)
	if os.Geteuid() == 0 {
		u = normalUser(t)
		uid, gid := ids(t, u)
		if err := os.Chown(home, uid, gid); err != nil {
			t.Fatal(err)
		}
		setup = append(setup, func(c *exec.Cmd) {
			c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		})
	}
	clone := cloneRepo(t, home)
	buildClusterBinaries(t, filepath.Join(clone, "bin"))
	if os.Geteuid() == 0 {
		chownTree(t, clone, u)
	}
	// Every port from one run of free ones, so that no two settings' ranges overlap
	// (picked apart, the services' ops ports once fell on a NATS node's).
	const httpAt, opsAt, pgAt = 100, 200, 300
	base := freePorts(t, 0, 1, 2, 2000, 2001, 2002, 4000, 4001, 4002, httpAt, httpAt+1,
		opsAt, opsAt+1, opsAt+2, opsAt+3, opsAt+10, opsAt+11, opsAt+12, opsAt+13, pgAt)
	env := append(os.Environ(), "DATA_DIR=", "NATS_URL=", "DATABASE_URL=", "LOG_LEVEL=warn",
		fmt.Sprint("NATS_PORT=", base), fmt.Sprint("PG_PORT=", base+pgAt), fmt.Sprint("HTTP_ADDR=127.0.0.1:", base+httpAt), fmt.Sprint("OPS_PORT=", base+opsAt),
		"HOME="+home, "USER="+u.Username, "LOGNAME="+u.Username)
	setup = append(setup, inDir(clone), func(c *exec.Cmd) { c.Args = append(c.Args, "-cluster") })

	d := startDevstack(t, filepath.Join(clone, "bin", "devstack"), env, setup...)
	out := d.output()
	if len(d.urls) != 2 || d.urls[0] == d.urls[1] {
		t.Fatalf("banner names dashboards %v; want two:\n%s", d.urls, out)
	}
	if got := strings.Count(d.natsURL, "nats://"); got != 3 {
		t.Errorf("banner's NATS line %q names %d servers; want the three nodes", d.natsURL, got)
	}
	if want := filepath.Join(clone, ".data", "cluster"); d.dataDir != want {
		t.Errorf("banner gives DATA_DIR as %q; want %s", d.dataDir, want)
	}
	if want := filepath.Join(clone, ".data", "cluster", "pg"); d.pgDir != want {
		t.Errorf("banner says PostgreSQL's files are in %q; want %s", d.pgDir, want)
	}
	var pids []int
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[1] == "pid" {
			pid, err := strconv.Atoi(f[2])
			if err != nil {
				t.Fatalf("banner line %q: %v", line, err)
			}
			pids = append(pids, pid)
		}
	}
	if len(pids) != 13 {
		t.Errorf("banner lists %d processes; want 13 (three NATS nodes, two tickers, two of each job service, two gateways):\n%s", len(pids), out)
	}

	// The demo's first runs, each done by a service's process.
	conn, err := pgx.Connect(context.Background(), d.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the demo's five first runs in audit_log", func() bool {
		var n int
		_ = conn.QueryRow(context.Background(), `SELECT count(DISTINCT details->>'job_name') FROM audit_log
			WHERE action_type = 'background_job_execution' AND details->>'status' = 'success'`).Scan(&n)
		return n == 5
	})
	conn.Close(context.Background())

	// Signed in on one dashboard, signed in on both.
	checkDashboard(t, d)
	var link string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "operator:" {
			link = f[1]
		}
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	if resp, err := client.Get(link); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("operator sign-in link %s: %v %v", link, resp, err)
	}
	resp, err := client.Get(d.urls[1] + "api/jobs")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the second dashboard after signing in on the first: %v %v; want 200", resp, err)
	}
	resp.Body.Close()

	d.interrupt(t)
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("process %d is still running after Ctrl-C", pid)
		}
	}
	checkCloneClean(t, clone)
}

// freePorts finds a port p such that p plus each offset is free now.
func freePorts(t *testing.T, offsets ...int) int {
	t.Helper()
	for range 50 {
		base := 20000 + rand.IntN(30000)
		free := true
		for _, o := range offsets {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+o))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		if free {
			return base
		}
	}
	t.Fatalf("no run of free ports at offsets %v", offsets)
	return 0
}
