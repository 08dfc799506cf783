package localpg

import "syscall"

// sysProcAttr runs the child as cred (nil: as us) in its own process group, so that a
// Ctrl-C meant for us does not reach it before we have stopped what uses it. The
// parent-death signal asks for a fast shutdown if we die without calling Stop. The
// kernel sends it when the thread that started the child exits, which in Go happens
// only to a thread locked with runtime.LockOSThread whose goroutine then ends, so
// Start must not be called from such a goroutine.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGINT}
}
