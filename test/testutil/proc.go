package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StopTimeout bounds how long Stop waits after SIGTERM before it kills the
// process.
const StopTimeout = 15 * time.Second

// logTail bounds how much of a process' output is logged when the test
// failed.
const logTail = 16000

// ProcOptions are how Start runs a process.
type ProcOptions struct {
	// Name names the process in the test's messages; by default the
	// binary's base name and its first argument ("kedastral forecaster").
	Name string
	// Env is added to the test's environment.
	Env []string
	// CleanExit fails the test when the process exits before it is
	// stopped, or with an error after SIGTERM.
	CleanExit bool
}

// Proc is a child process a test started with Start.
type Proc struct {
	Cmd  *exec.Cmd
	Logs *Buffer // its stdout and stderr

	tb    testing.TB
	name  string
	clean bool
	done  chan struct{}
	err   error // Wait's, set before done is closed
	once  sync.Once
}

// Start runs bin with args until the test ends, then stops it (Stop) and,
// when the test failed, logs the end of its output.
func Start(tb testing.TB, o ProcOptions, bin string, args ...string) *Proc {
	tb.Helper()
	p := &Proc{Logs: &Buffer{}, tb: tb, name: o.Name, clean: o.CleanExit, done: make(chan struct{})}
	if p.name == "" {
		p.name = filepath.Base(bin)
		if len(args) > 0 {
			p.name += " " + args[0]
		}
	}
	p.Cmd = exec.Command(bin, args...)
	if len(o.Env) > 0 {
		p.Cmd.Env = append(os.Environ(), o.Env...)
	}
	p.Cmd.Stdout, p.Cmd.Stderr = p.Logs, p.Logs
	p.Cmd.SysProcAttr = sysProcAttr()
	if err := p.Cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", p.name, err)
	}
	go func() { p.err = p.Cmd.Wait(); close(p.done) }()
	tb.Cleanup(func() {
		p.Stop()
		if tb.Failed() {
			out := p.Logs.String()
			if len(out) > logTail {
				out = "…" + out[len(out)-logTail:]
			}
			tb.Logf("%s log:\n%s", p.name, out)
		}
	})
	return p
}

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Alive fails the test at once if the process has exited.
func (p *Proc) Alive(tb testing.TB) {
	tb.Helper()
	select {
	case <-p.done:
		tb.Fatalf("%s exited: %v", p.name, p.err)
	default:
	}
}

// Stop sends SIGTERM and waits for the process to exit; after StopTimeout
// it kills it and fails the test. With CleanExit it also fails the test
// when the process had exited before, or exits with an error. Only the
// first call of Stop or Kill acts.
func (p *Proc) Stop() {
	p.once.Do(func() {
		select {
		case <-p.done:
			if p.clean {
				p.tb.Errorf("%s exited early: %v", p.name, p.err)
			}
			return
		default:
		}
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			if p.clean && p.err != nil {
				p.tb.Errorf("%s exited with %v after SIGTERM", p.name, p.err)
			}
		case <-time.After(StopTimeout):
			_ = p.Cmd.Process.Kill()
			<-p.done
			p.tb.Errorf("%s did not stop within %s of SIGTERM", p.name, StopTimeout)
		}
	})
}

// Kill kills the process (SIGKILL) on the test's purpose and waits for it
// to exit; it returns os.Process.Kill's error, such as when the process had
// already exited. Only the first call of Stop or Kill acts.
func (p *Proc) Kill() error {
	var err error
	p.once.Do(func() {
		err = p.Cmd.Process.Kill()
		<-p.done
	})
	return err
}
