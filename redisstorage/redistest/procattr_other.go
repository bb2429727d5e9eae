//go:build !linux

package redistest

import "syscall"

// sysProcAttr: only Linux can have the server killed with the test
// process; elsewhere Close must be called.
func sysProcAttr() *syscall.SysProcAttr { return nil }
