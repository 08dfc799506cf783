package localpg

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// osAccount is the OS user the server runs as when we are root, because initdb and
// postgres refuse to run as root. A nil *osAccount means "as ourselves", and its
// methods then do nothing.
type osAccount struct {
	name   string
	uid    uint32
	gid    uint32
	groups []uint32 // primary and supplementary
}

// serverAccount returns the "postgres" account when we are root, nil otherwise.
func serverAccount() (*osAccount, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		return nil, fmt.Errorf(`localpg: running as root, which PostgreSQL refuses, and %w to run it as: create one (useradd --system postgres; installing the postgresql package does this) or run as a normal user`, ErrNoPostgresUser)
	}
	if err != nil {
		return nil, fmt.Errorf("localpg: look up OS user postgres: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("localpg: OS user postgres: uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("localpg: OS user postgres: gid %q: %w", u.Gid, err)
	}
	a := &osAccount{name: u.Username, uid: uint32(uid), gid: uint32(gid), groups: []uint32{uint32(gid)}}
	// Supplementary groups matter only for reaching directories; without them the
	// account still works, so a failed lookup is not fatal.
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil && !slices.Contains(a.groups, uint32(g)) {
				a.groups = append(a.groups, uint32(g))
			}
		}
	}
	return a, nil
}

func (a *osAccount) credential() *syscall.Credential {
	if a == nil {
		return nil
	}
	return &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: a.groups}
}

func (a *osAccount) chown(path string) error {
	if a == nil {
		return nil
	}
	if err := os.Chown(path, int(a.uid), int(a.gid)); err != nil {
		return fmt.Errorf("localpg: hand %s to OS user %s: %w", path, a.name, err)
	}
	return nil
}

// checkReachable fails when some parent of dir cannot be searched by the account,
// which initdb would report only as a bare "Permission denied". The usual culprit is
// a 0700 temporary directory made by root, such as testing's t.TempDir. It reads
// only the permission bits, not ACLs.
func (a *osAccount) checkReachable(dir string) error {
	if a == nil {
		return nil
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("localpg: data directory: %w", err)
		}
		if !a.canSearch(fi) {
			return fmt.Errorf("localpg: OS user %s, which runs the server because we are root, cannot reach %s: %s is mode %#o: put the data directory somewhere it can reach (localpg.MkdirTemp makes one) or chmod o+x %s",
				a.name, dir, p, fi.Mode().Perm(), p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func (a *osAccount) canSearch(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == a.uid:
		return perm&0o100 != 0
	case slices.Contains(a.groups, st.Gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// MkdirTemp makes a new directory under the system temporary directory to hold a
// throwaway cluster (as DataDir or, better, its parent, so that the log beside the
// data directory lands in it too). Unlike os.MkdirTemp's, it is usable when we are
// root: it then belongs to the account the server runs as. The caller removes it.
func MkdirTemp(pattern string) (string, error) {
	account, err := serverAccount()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", fmt.Errorf("localpg: temporary directory: %w", err)
	}
	if err := account.chown(dir); err != nil {
		os.Remove(dir)
		return "", err
	}
	return dir, nil
}
