// Package debpkg gives the tests the Debian programs they need (Chromium
// for the browser test, redis-server for the cluster tests) on a machine
// that has only Go: a missing program is installed with apt-get when the
// tests run as root on Debian, so that `go test ./...` works on a fresh
// machine. Test binaries that run at once take turns through a lock file.
// Set KASSA_TEST_NO_INSTALL=1 to never install: a missing program is then
// an error that says what to install.
package debpkg

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// Need returns the path of program, first installing Debian's package pkg
// with apt-get if program is not on $PATH, the process runs as root, apt-get
// exists and KASSA_TEST_NO_INSTALL is not set.
func Need(program, pkg string) (string, error) {
	if path, err := exec.LookPath(program); err == nil {
		return path, nil
	}
	missing := fmt.Errorf("%s is not installed: install Debian's %s package (apt-get install -y %s)", program, pkg, pkg)
	if os.Getenv("KASSA_TEST_NO_INSTALL") != "" || os.Geteuid() != 0 {
		return "", missing
	}
	aptGet, err := exec.LookPath("apt-get")
	if err != nil {
		return "", missing
	}
	unlock, err := lock()
	if err != nil {
		return "", fmt.Errorf("%w; taking the install lock: %v", missing, err)
	}
	defer unlock()
	if path, err := exec.LookPath(program); err == nil {
		return path, nil // another test binary installed it meanwhile
	}
	fmt.Fprintf(os.Stderr, "debpkg: %s is missing; installing Debian's %s package\n", program, pkg)
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", pkg}} {
		cmd := exec.Command(aptGet, args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("%w; apt-get %s: %v\n%s", missing, args[0], err, out)
		}
	}
	path, err := exec.LookPath(program)
	if err != nil {
		return "", errors.Join(missing, err)
	}
	return path, nil
}

// lock takes a machine-wide lock, so that one test binary at a time runs
// apt-get (which takes dpkg's own lock and fails on a held one).
func lock() (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "kassa-debpkg.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
