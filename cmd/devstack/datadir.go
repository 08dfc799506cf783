package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/lexhq/gstjobs/internal/localpg"
)

// rootPGHome holds PostgreSQL's files when we are root and the postgres user, which
// runs the server then, cannot reach DATA_DIR: the usual case, a checkout in root's
// home (mode 0700). Each DATA_DIR gets its own directory, named by a hash of its path,
// so the next `make run` from the same checkout finds its data again.
//
// Not /tmp: it is often emptied at boot and cleaned of old files, and anyone may
// create a name there first, which a process running as root must not trust. /var/lib
// is for state that outlives restarts, only root writes there, and it is where Debian
// keeps its own clusters (/var/lib/postgresql).
const rootPGHome = "/var/lib/gstjobs"

// claimDataDir creates DATA_DIR and takes its lock, so that two launchers never share
// NATS's store and PostgreSQL's files; the second one is told who holds it. The lock
// is released when the returned file is closed or the process ends, however it ends.
func claimDataDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, dataDirProblem(dir, "cannot be created", err)
	}
	path := filepath.Join(dir, "make-run.pid")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, dataDirProblem(dir, "is not writable", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, dataDirInUse(dir, strings.TrimSpace(string(b)))
		}
		return nil, dataDirProblem(dir, "cannot be locked", err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// pgDataDir is where the private PostgreSQL keeps its files: DATA_DIR/pg, unless the
// OS user that runs it cannot reach that (see rootPGHome).
func pgDataDir(dataDir string) (localpg.Placement, error) {
	real, err := filepath.EvalSymlinks(dataDir)
	if err != nil {
		return localpg.Placement{}, dataDirProblem(dataDir, "cannot be read", err)
	}
	sum := sha256.Sum256([]byte(real))
	fallback := filepath.Join(rootPGHome, hex.EncodeToString(sum[:8]), "pg")
	p, err := localpg.Place(filepath.Join(dataDir, "pg"), fallback)
	if err != nil {
		return p, pgProblem(err)
	}
	return p, nil
}

// noteCheckout leaves, beside PostgreSQL's files outside DATA_DIR, the path of the
// DATA_DIR they belong to, so that whoever finds them knows whose they are.
func noteCheckout(p localpg.Placement, dataDir string, log *slog.Logger) {
	note := filepath.Join(filepath.Dir(p.Dir), "data-dir")
	if err := os.WriteFile(note, []byte(dataDir+"\n"), 0o644); err != nil {
		log.Warn("could not note which DATA_DIR PostgreSQL's files belong to", "file", note, "err", err)
	}
}

// devSecret keeps one random signing key per DATA_DIR, so sign-in links printed by
// one `make run` still work after the next.
func devSecret(dataDir, name string) (string, error) {
	path := filepath.Join(dataDir, name)
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	s := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", dataDirProblem(dataDir, "is not writable", err)
	}
	return s, nil
}

// dataDirInUse names the launcher that holds DATA_DIR, if its pid is known.
func dataDirInUse(dir, pid string) error {
	if _, err := strconv.Atoi(pid); err != nil {
		return fmt.Errorf("another make run is using DATA_DIR=%s: stop it (Ctrl-C where it runs), or set DATA_DIR to another directory", dir)
	}
	return fmt.Errorf("another make run (pid %s) is using DATA_DIR=%s: stop it (Ctrl-C where it runs, or kill -INT %s), or set DATA_DIR to another directory", pid, dir, pid)
}
