package localpg

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// process is a started postgres and the outcome of waiting for it. One goroutine
// waits, so that shutdown, readiness checks and Stop can all watch exited.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has exited and err is set
	err    error         // the result of cmd.Wait
}

func startProcess(cmd *exec.Cmd) (*process, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// shutdown asks for a fast shutdown (SIGINT) and, if the server has not exited
// within timeout, kills its whole process group: the postmaster's children would
// otherwise linger for a moment holding shared memory, and a restart on the same
// data directory would refuse to start until they were gone.
func (p *process) shutdown(timeout time.Duration) error {
	if p.hasExited() {
		if p.err != nil {
			return fmt.Errorf("localpg: postgres had exited: %w", p.err)
		}
		return nil
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("localpg: signal postgres: %w", err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.exited:
		if p.err != nil {
			return fmt.Errorf("localpg: postgres shutdown: %w", p.err)
		}
		return nil
	case <-timer.C:
		// The postmaster leads its own process group (Setpgid), so -pid is all of it.
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.exited
		return fmt.Errorf("localpg: postgres did not shut down within %s; killed it", timeout)
	}
}
