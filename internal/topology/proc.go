package topology

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/lexhq/gstjobs/internal/child"
)

// Binaries is the directory of `make build`'s binaries (bin/): nats-server, natsadmin
// and one per service.
type Binaries string

// Path is the binary name in the directory.
func (b Binaries) Path(name string) string { return filepath.Join(string(b), name) }

// Check reports every binary of names that is not there, and how to make it.
func (b Binaries) Check(names ...string) error {
	var missing []string
	for _, n := range names {
		if st, err := os.Stat(b.Path(n)); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, b.Path(n))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("topology: %v not built: run make build, which builds them into %s", missing, string(b))
	}
	return nil
}

// Proc is one program of the topology: started, stopped (SIGTERM), killed (kill -9)
// and started again with the same arguments and environment, so on the same ports and
// the same store. Its methods are safe for concurrent use.
type Proc struct {
	Name string
	bin  string
	args []string
	env  []string
	out  io.Writer

	mu sync.Mutex
	p  *child.Process
}

func newProc(name, bin string, args, env []string, out io.Writer) *Proc {
	if out == nil {
		out = io.Discard
	}
	return &Proc{Name: name, bin: bin, args: args, env: env, out: out}
}

// Start starts the program; it must not be running.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.p != nil && !p.p.HasExited() {
		return fmt.Errorf("topology: %s is running already (pid %d)", p.Name, p.p.Pid())
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = p.out, p.out
	// If we die without stopping it, the kernel stops it as a Ctrl-C would.
	c, err := child.Start(p.Name, cmd, nil, syscall.SIGTERM)
	if err != nil {
		return fmt.Errorf("topology: %w", err)
	}
	p.p = c
	return nil
}

func (p *Proc) current() *child.Process {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.p
}

// Stop sends SIGTERM, as an orchestrator does, and waits up to timeout for the program
// to exit, killing it after that. It reports an exit with an error; stopping a program
// that is not running does nothing.
func (p *Proc) Stop(timeout time.Duration) error {
	c := p.current()
	if c == nil || c.HasExited() {
		return nil
	}
	if err := c.Stop(syscall.SIGTERM, timeout); err != nil {
		return fmt.Errorf("topology: %w", err)
	}
	return nil
}

// Kill kills the program outright, as kill -9 does: no shutdown of any kind.
func (p *Proc) Kill() {
	if c := p.current(); c != nil {
		c.Kill()
	}
}

// Running reports whether the program has been started and has not exited.
func (p *Proc) Running() bool {
	c := p.current()
	return c != nil && !c.HasExited()
}

// Exited is closed when the program's current run ends; nil before the first start.
func (p *Proc) Exited() <-chan struct{} {
	if c := p.current(); c != nil {
		return c.Exited()
	}
	return nil
}

// Err is how the program's last run ended, once it has.
func (p *Proc) Err() error {
	if c := p.current(); c != nil {
		return c.Err()
	}
	return nil
}

// Pid is the process id of the current run, 0 before the first start.
func (p *Proc) Pid() int {
	if c := p.current(); c != nil {
		return c.Pid()
	}
	return 0
}

// Lines is w with every line of output prefixed by prefix, each line written whole,
// so that the output of many programs can share one terminal. Writers made with the
// same mutex never interleave within a line.
func Lines(w io.Writer, prefix string, mu *sync.Mutex) io.Writer {
	return &lineWriter{w: w, prefix: []byte(prefix), mu: mu}
}

type lineWriter struct {
	w      io.Writer
	prefix []byte
	mu     *sync.Mutex
	buf    []byte
}

func (l *lineWriter) Write(b []byte) (int, error) {
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		line := append(append([]byte{}, l.prefix...), l.buf[:i+1]...)
		l.buf = l.buf[i+1:]
		l.mu.Lock()
		_, err := l.w.Write(line)
		l.mu.Unlock()
		if err != nil && !errors.Is(err, os.ErrClosed) {
			return len(b), err
		}
	}
	return len(b), nil
}
