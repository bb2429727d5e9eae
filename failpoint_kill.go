//go:build kassa_failpoints

package kassa

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
)

// failpointEnv names the failpoints a kassa_failpoints build kills the
// process at: a comma-separated list of names, as in
// KASSA_FAILPOINTS=checkout-replied,receipt-sent.
const failpointEnv = "KASSA_FAILPOINTS"

// failpoints are the names from the environment, read once at start.
var failpoints = strings.Split(os.Getenv(failpointEnv), ",")

// failpoint kills the process with SIGKILL, as a power cut or the OOM
// killer would, when name is one of the failpoints in KASSA_FAILPOINTS:
// nothing is flushed, no deferred function runs, no lock is released.
func failpoint(name string) {
	if !slices.Contains(failpoints, name) {
		return
	}
	fmt.Fprintf(os.Stderr, "kassa: failpoint %s: killing the process\n", name)
	if err := syscall.Kill(os.Getpid(), syscall.SIGKILL); err != nil {
		panic(err)
	}
	select {} // the signal is on its way
}
