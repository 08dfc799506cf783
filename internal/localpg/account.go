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
	a, err := lookupAccount(superuser)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		return nil, fmt.Errorf(`localpg: running as root, which PostgreSQL refuses, and %w to run it as: create one (useradd --system postgres; installing the postgresql package does this) or run as a normal user`, ErrNoPostgresUser)
	}
	return a, err
}

// lookupAccount returns the OS account called name, with its groups.
func lookupAccount(name string) (*osAccount, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("localpg: look up OS user %s: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("localpg: OS user %s: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("localpg: OS user %s: gid %q: %w", name, u.Gid, err)
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

// clusterOwner is the account to run an existing cluster in dir as, when we are root:
// the one that owns it. A cluster made by `make run` as a normal user belongs to that
// user, and as the postgres account the server could not even enter it (its data
// directory is 0700); run as its owner, root's `make run` in the same checkout starts
// it as it is. The postgres account (server) stays for a new cluster, and for one
// root owns, which postgres itself refuses to run.
func clusterOwner(dir string, server *osAccount) (*osAccount, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("localpg: data directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == server.uid || st.Uid == 0 {
		return server, nil
	}
	u, err := user.LookupId(strconv.FormatUint(uint64(st.Uid), 10))
	if err != nil {
		return nil, fmt.Errorf("localpg: the cluster in %s belongs to uid %d, which is no OS user to run it as (%v): chown -R it to the postgres account, or point the data directory elsewhere", dir, st.Uid, err)
	}
	return lookupAccount(u.Username)
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
// which initdb would report only as a bare "Permission denied". The usual culprits
// are a 0700 home directory and a 0700 temporary directory made by root, such as
// testing's t.TempDir. Parents that do not exist yet count as reachable: they are
// made 0755. It reads only the permission bits, not ACLs.
func (a *osAccount) checkReachable(dir string) error {
	if a == nil {
		return nil
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("localpg: data directory: %w", err)
		}
		if err == nil && !a.canSearch(fi) {
			return &unreachableError{account: a.name, dir: dir, blocker: p, mode: fi.Mode().Perm()}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// unreachableError is [ErrUnreachable] with the directory in the way.
type unreachableError struct {
	account string
	dir     string
	blocker string // the parent the account cannot enter
	mode    fs.FileMode
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("localpg: OS user %s, which runs the server because we are root, %v %s: %s",
		e.account, ErrUnreachable, e.dir, e.reason())
}

func (e *unreachableError) Is(target error) bool { return target == ErrUnreachable }

// reason says what is in the way and how to clear it.
func (e *unreachableError) reason() string {
	return fmt.Sprintf("%s is mode %#o (chmod o+x %s would let it through)", e.blocker, e.mode, e.blocker)
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
