package testutil

import "syscall"

// sysProcAttr kills a child process when the test binary dies without
// stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
