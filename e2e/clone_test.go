package e2e

import (
	"context"
	"fmt"
	"io"
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

	"github.com/jackc/pgx/v5"

	"github.com/lexhq/gstjobs/internal/localpg"
)

// `make run` as a new user meets it: `git clone … ~/gstjobs && cd ~/gstjobs && make run`
// with no settings, in a home directory of mode 0700, the commonest place to clone.
// These tests clone this repository into such a home, put the launcher where `make
// run` builds it (bin/devstack, built from this working tree so that the code under
// test is what runs) and start it in the clone with DATA_DIR unset; only the ports
// are chosen, so as not to clash with other runs.

// As root, PostgreSQL runs as the postgres user, which cannot enter root's 0700 home:
// its files must go where that user can reach them, stay there for the next start,
// and the banner must say where. A suite run by a normal user cannot become root; it
// checks instead the decision the launcher takes as root, on the same kind of clone.
func TestMakeRunFromCloneAsRoot(t *testing.T) {
	home := newHome(t)
	clone := cloneRepo(t, home)
	preferred := filepath.Join(clone, ".data", "pg")
	if os.Geteuid() != 0 {
		checkPlacementAsRoot(t, home, preferred)
		return
	}
	bin := filepath.Join(clone, "bin", "devstack")
	buildDevstack(t, bin)
	env := cloneEnv(t)

	first := startDevstack(t, bin, env, inDir(clone))
	pgDir := first.pgDir
	if !strings.HasPrefix(pgDir, "/var/lib/gstjobs/") || filepath.Base(pgDir) != "pg" {
		t.Fatalf("banner says PostgreSQL's files are in %q; want /var/lib/gstjobs/<hash>/pg, which the postgres user can reach:\n%s", pgDir, first.output())
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(pgDir)) })
	if !strings.Contains(first.output(), "cannot enter "+home+" (mode 0700)") {
		t.Errorf("banner does not say why PostgreSQL's files are not in DATA_DIR (the postgres user cannot enter %s):\n%s", home, first.output())
	}
	if want := filepath.Join(clone, ".data"); first.dataDir != want {
		t.Errorf("banner gives DATA_DIR as %q, want the default %s", first.dataDir, want)
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	checkOwnedDir(t, pgDir, pg, 0o700)
	if note, err := os.ReadFile(filepath.Join(filepath.Dir(pgDir), "data-dir")); err != nil || strings.TrimSpace(string(note)) != first.dataDir {
		t.Errorf("beside PostgreSQL's files, data-dir reads %q (%v); want the DATA_DIR they belong to, %s", note, err, first.dataDir)
	}
	checkDataDir(t, clone, false)
	checkDashboard(t, first)

	// The next make run finds the data again.
	conn, err := pgx.Connect(context.Background(), first.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), `CREATE TABLE clone_kept (v text); INSERT INTO clone_kept VALUES ('still here')`); err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())
	first.interrupt(t)

	second := startDevstack(t, bin, env, inDir(clone))
	if second.pgDir != pgDir {
		t.Errorf("second make run keeps PostgreSQL's files in %s, the first in %s; want the same place", second.pgDir, pgDir)
	}
	conn, err = pgx.Connect(context.Background(), second.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	var v string
	err = conn.QueryRow(context.Background(), `SELECT v FROM clone_kept`).Scan(&v)
	conn.Close(context.Background())
	if err != nil || v != "still here" {
		t.Errorf("after a restart, the row written before reads %q (%v); want %q: the data must be kept", v, err, "still here")
	}
	second.interrupt(t)
	checkCloneClean(t, clone)
}

// As a normal user, PostgreSQL runs as that user and keeps its files in DATA_DIR.
// When the suite runs as root (CI), the launcher runs as a user of its own,
// gstjobs-e2e, created if missing, with a 0700 home of its own.
func TestMakeRunFromCloneAsNormalUser(t *testing.T) {
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	var asUser func(*exec.Cmd)
	home := newHome(t)
	if os.Geteuid() == 0 {
		u = normalUser(t)
		uid, gid := ids(t, u)
		if err := os.Chown(home, uid, gid); err != nil {
			t.Fatal(err)
		}
		asUser = func(c *exec.Cmd) {
			c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		}
	}
	clone := cloneRepo(t, home)
	bin := filepath.Join(clone, "bin", "devstack")
	buildDevstack(t, bin)
	setup := []func(*exec.Cmd){inDir(clone)}
	if asUser != nil {
		chownTree(t, clone, u)
		setup = append(setup, asUser)
	}
	env := append(cloneEnv(t), "HOME="+home, "USER="+u.Username, "LOGNAME="+u.Username)

	d := startDevstack(t, bin, env, setup...)
	if want := filepath.Join(clone, ".data", "pg"); d.pgDir != want {
		t.Errorf("banner says PostgreSQL's files are in %q; want %s, in DATA_DIR:\n%s", d.pgDir, want, d.output())
	}
	if strings.Contains(d.output(), "not in DATA_DIR") {
		t.Errorf("banner explains a move of PostgreSQL's files that did not happen:\n%s", d.output())
	}
	checkOwnedDir(t, d.pgDir, u, 0o700)
	checkDataDir(t, clone, true)
	checkDashboard(t, d)
	d.interrupt(t)
	checkCloneClean(t, clone)
}

// checkPlacementAsRoot is what a normal user can check of the root case: the
// decision on where PostgreSQL's files go, for an account that is not the home's
// owner (postgres if there is one, else nobody), on a real clone in a 0700 home.
func checkPlacementAsRoot(t *testing.T, home, preferred string) {
	t.Helper()
	account := "postgres"
	if _, err := user.Lookup(account); err != nil {
		account = "nobody"
	}
	fallback := "/var/lib/gstjobs/e2e/pg"
	p, err := localpg.PlaceFor(account, preferred, fallback)
	if err != nil {
		t.Fatal(err)
	}
	if p.Dir != fallback || !strings.Contains(p.Why, "OS user "+account) || !strings.Contains(p.Why, "cannot enter "+home+" (mode 0700)") {
		t.Errorf("for OS user %s, PostgreSQL's files would go to %+v; want %s, saying it cannot enter %s (mode 0700)", account, p, fallback, home)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if p, err := localpg.PlaceFor(me.Username, preferred, fallback); err != nil || p.Dir != preferred || p.Moved() {
		t.Errorf("for the home's owner, PostgreSQL's files would go to %+v (%v); want %s", p, err, preferred)
	}
}

// newHome makes a home directory like a user's: mode 0700, directly under the
// system's temporary directory so that another user may be given it.
func newHome(t *testing.T) string {
	t.Helper()
	home, err := os.MkdirTemp("", "e2e-home-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	return home
}

// cloneRepo clones the repository these tests are in into home/gstjobs.
func cloneRepo(t *testing.T, home string) string {
	t.Helper()
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("git rev-parse --show-toplevel: %v", err)
	}
	clone := filepath.Join(home, "gstjobs")
	if out, err := exec.Command("git", "clone", "--quiet", strings.TrimSpace(string(top)), clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	return clone
}

// cloneEnv is the environment of `make run` with no settings but free ports.
func cloneEnv(t *testing.T) []string {
	return append(os.Environ(), "DATA_DIR=", "NATS_URL=", "DATABASE_URL=", "LOG_LEVEL=warn",
		fmt.Sprint("NATS_PORT=", freePort(t)), fmt.Sprint("PG_PORT=", freePort(t)), "HTTP_ADDR=127.0.0.1:0")
}

func inDir(dir string) func(*exec.Cmd) { return func(c *exec.Cmd) { c.Dir = dir } }

// normalUser is gstjobs-e2e, a user with no privileges, created if missing.
func normalUser(t *testing.T) *user.User {
	t.Helper()
	const name = "gstjobs-e2e"
	if u, err := user.Lookup(name); err == nil {
		return u
	}
	out, err := exec.Command("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
	u, lookupErr := user.Lookup(name)
	if lookupErr != nil { // useradd may have lost a race with another test run that made it
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	return u
}

func ids(t *testing.T, u *user.User) (uid, gid int) {
	t.Helper()
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		t.Fatal(err)
	}
	if gid, err = strconv.Atoi(u.Gid); err != nil {
		t.Fatal(err)
	}
	return uid, gid
}

func chownTree(t *testing.T, root string, u *user.User) {
	t.Helper()
	uid, gid := ids(t, u)
	err := filepath.Walk(root, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkOwnedDir checks that dir is a cluster of u's, with the given mode.
func checkOwnedDir(t *testing.T, dir string, u *user.User, mode os.FileMode) {
	t.Helper()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatalf("PostgreSQL's files: %v", err)
	}
	uid, _ := ids(t, u)
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid || fi.Mode().Perm() != mode {
		t.Errorf("%s is owned by uid %d with mode %#o; want OS user %s (uid %d) and mode %#o", dir, st.Uid, fi.Mode().Perm(), u.Username, uid, mode)
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		t.Errorf("%s holds no PostgreSQL cluster: %v", dir, err)
	}
}

// checkDataDir checks that the rest stays in DATA_DIR, the default .data of the clone,
// and PostgreSQL's files too if withPG.
func checkDataDir(t *testing.T, clone string, withPG bool) {
	t.Helper()
	data := filepath.Join(clone, ".data")
	for _, name := range []string{"nats", "jwt-secret"} {
		if _, err := os.Stat(filepath.Join(data, name)); err != nil {
			t.Errorf("want %s in DATA_DIR (%s): %v", name, data, err)
		}
	}
	_, err := os.Stat(filepath.Join(data, "pg"))
	if withPG != (err == nil) {
		t.Errorf("%s exists: %t; want %t", filepath.Join(data, "pg"), err == nil, withPG)
	}
}

// checkDashboard checks that the dashboard the banner names answers an admin who
// follows the banner's sign-in link, and that the system is ready.
func checkDashboard(t *testing.T, d *devstack) {
	t.Helper()
	var link string
	for _, line := range strings.Split(d.output(), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "admin:" {
			link = f[1]
		}
	}
	if !strings.HasPrefix(link, d.url) {
		t.Fatalf("banner has no admin sign-in link on %s:\n%s", d.url, d.output())
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Jar: jar}
	get := func(url string) (int, string) {
		resp, err := client.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get(link); code != http.StatusOK {
		t.Fatalf("admin sign-in link answered %d, want 200 and a session:\n%s", code, body)
	}
	if code, body := get(d.url); code != http.StatusOK || !strings.Contains(body, "<title>Background Jobs Monitor</title>") {
		t.Fatalf("dashboard %s answered a signed-in admin with %d, want 200 and the dashboard page:\n%.500s", d.url, code, body)
	}
	waitFor(t, d.url+"readyz to answer 200", func() bool {
		resp, err := client.Get(d.url + "readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// checkCloneClean checks that make run left nothing for git to see: .data and bin are
// ignored.
func checkCloneClean(t *testing.T, clone string) {
	t.Helper()
	out, err := exec.Command("git", "-c", "safe.directory=*", "-C", clone, "status", "--porcelain").CombinedOutput()
	if err != nil {
		t.Fatalf("git status: %v\n%s", err, out)
	}
	if len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("make run left files git does not ignore; want none:\n%s", out)
	}
}
