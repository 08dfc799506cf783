package child

import "syscall"

// Attr runs a child as cred (nil: as us) in its own process group, so that a Ctrl-C
// meant for us does not reach it before we have stopped what uses it. The kernel sends
// it deathSig if we die without stopping it: it does so when the thread that started
// the child exits, which in Go happens only to a thread locked with
// runtime.LockOSThread whose goroutine then ends.
func Attr(cred *syscall.Credential, deathSig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: deathSig}
}
