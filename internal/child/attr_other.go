//go:build unix && !linux

package child

import "syscall"

// Attr runs a child as cred (nil: as us) in its own process group, so that a Ctrl-C
// meant for us does not reach it before we have stopped what uses it. Without a
// parent-death signal on this system, a child whose parent dies without stopping it
// keeps running.
func Attr(cred *syscall.Credential, _ syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true}
}
