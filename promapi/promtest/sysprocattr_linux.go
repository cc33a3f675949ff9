package promtest

import "syscall"

// sysProcAttr kills the server if the test binary or demo dies without
// cleaning up.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
