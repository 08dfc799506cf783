//go:build unix && !linux

package localpg

import "syscall"

// sysProcAttr runs the child as cred (nil: as us) in its own process group, so that a
// Ctrl-C meant for us does not reach it before we have stopped what uses it. Without
// a parent-death signal on this system, a server whose parent dies without calling
// Stop keeps running; the next Start reports it as already running.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true}
}
