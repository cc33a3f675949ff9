//go:build livewip

package live

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"

	"github.com/kedastral/kedastral/test/testutil"
)

// netnsEnv is set in the environment of the test binary re-executed inside
// its network namespace.
const netnsEnv = "KEDASTRAL_LIVE_NETNS"

// advertiseAddr is the API server's --advertise-address: an address of the
// namespace's lo that is not loopback (the namespace has no default route
// for the API server to pick one from).
const advertiseAddr = "10.96.0.10"

func TestMain(m *testing.M) {
	if os.Getenv(netnsEnv) == "" {
		os.Exit(reexec())
	}
	if err := setupNetns(); err != nil {
		fmt.Fprintln(os.Stderr, "test/live:", err)
		os.Exit(1)
	}
	code := m.Run()
	testutil.RemoveKedastral()
	os.Exit(code)
}

// reexec runs this test binary again inside a new network namespace
// (unshare --net) and returns its exit code. The namespace goes away with
// the last process in it: the child kills what it started, and every child
// process dies with its parent (Pdeathsig).
func reexec() int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "test/live: FAIL: needs root, to create a network namespace (unshare --net) for the cluster")
		return 1
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		fmt.Fprintln(os.Stderr, "test/live: FAIL: unshare not on PATH (Debian package util-linux)")
		return 1
	}
	if _, err := exec.LookPath("ip"); err != nil {
		fmt.Fprintln(os.Stderr, "test/live: FAIL: ip not on PATH (Debian package iproute2)")
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "test/live: FAIL:", err)
		return 1
	}
	cmd := exec.Command(unshare, append([]string{"--net", "--", self}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "test/live: FAIL: unshare --net:", err)
		return 1
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sig:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	if ee, ok := err.(*exec.ExitError); ok {
		if ee.ExitCode() < 0 {
			return 1
		}
		return ee.ExitCode()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "test/live: FAIL:", err)
		return 1
	}
	return 0
}

// setupNetns brings the namespace's lo up and adds advertiseAddr to it.
func setupNetns() error {
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"addr", "add", advertiseAddr + "/32", "dev", "lo"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %v: %v: %s", args, err, out)
		}
	}
	return nil
}
