// Package testneed finds the programs from outside Go that some tests
// drive (Chromium for the browser test, redis-server for the cluster
// tests). Tests never install software: a test whose program is missing
// skips, saying which Debian package to install, unless KASSA_REQUIRE_ALL
// is set (.ci/run sets it to 1), where it fails, so that CI never skips.
package testneed

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// RequireAll is the environment variable that turns a missing program
// from a skip into a failure.
const RequireAll = "KASSA_REQUIRE_ALL"

// Program returns the path of the first of names found (a name with a
// slash is a path, any other is looked up on $PATH). Without one it skips
// the test, saying to install Debian's package pkg, or, with RequireAll
// set, fails it.
func Program(t testing.TB, pkg string, names ...string) string {
	t.Helper()
	if path, err := find(names); err == nil {
		return path
	}
	msg := "this test needs " + strings.Join(names, " or ") + ": install it (apt-get install " + pkg + ")"
	if os.Getenv(RequireAll) != "" {
		t.Fatal(msg + "; " + RequireAll + " is set, so it fails rather than skips")
	}
	t.Skip(msg + "; skipped (set " + RequireAll + "=1 to fail instead)")
	return ""
}

// find returns the path of the first of names that is an executable.
func find(names []string) (string, error) {
	for _, name := range names {
		if path, err := exec.LookPath(name); err == nil {
			return path, nil
		}
	}
	return "", errors.New("not found")
}
