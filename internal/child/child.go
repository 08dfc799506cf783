// Package child runs programs as children of this process, the way the launchers
// (make run, make cluster) and the tests need them: each in its own process group, so
// that a Ctrl-C in the terminal reaches only us and we stop the children in order (the
// services before what they use); on Linux told to stop if we die without stopping
// them; and waited for by one goroutine, so that anyone may watch a child exit.
package child

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Process is a started child and the outcome of waiting for it.
type Process struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has exited and err is set
	err    error         // the result of cmd.Wait
}

// Start starts cmd as a child named name (in errors), in its own process group, as
// cred (nil: as us). deathSig is what the kernel sends it if we die first (Linux; see
// Attr). Start must not be called from a goroutine locked to its thread.
func Start(name string, cmd *exec.Cmd, cred *syscall.Credential, deathSig syscall.Signal) (*Process, error) {
	cmd.SysProcAttr = Attr(cred, deathSig)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Pid is the child's process id, which is also its process group's.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed once the child has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// HasExited reports whether the child has exited.
func (p *Process) HasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Err is how the child exited (cmd.Wait's error); nil while it runs.
func (p *Process) Err() error {
	if !p.HasExited() {
		return nil
	}
	return p.err
}

// Stop sends sig and waits up to timeout for the child to exit; past it, it kills the
// child's whole process group (a server's own children would otherwise linger for a
// moment holding its ports or files) and says so. A child that had exited already,
// or that exits with an error, is reported.
func (p *Process) Stop(sig os.Signal, timeout time.Duration) error {
	if p.HasExited() {
		if p.err != nil {
			return fmt.Errorf("%s had exited: %w", p.name, p.err)
		}
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s: %w", p.name, err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.exited:
		if p.err != nil {
			return fmt.Errorf("%s shutdown: %w", p.name, p.err)
		}
		return nil
	case <-timer.C:
		p.Kill()
		return fmt.Errorf("%s did not shut down within %s; killed it", p.name, timeout)
	}
}

// Kill kills the child's process group outright (SIGKILL, as kill -9 does) and waits
// until the child has exited.
func (p *Process) Kill() {
	// The child leads its own process group (Setpgid), so -pid is all of it.
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	<-p.exited
}
