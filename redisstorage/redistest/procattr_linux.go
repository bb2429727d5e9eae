package redistest

import "syscall"

// sysProcAttr has the server killed when the test process dies, so that a
// test binary killed by its timeout leaves no server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
