package debpkg

import (
	"strings"
	"testing"
)

// TestNeedFindsInstalled: a program on $PATH is returned as it is.
func TestNeedFindsInstalled(t *testing.T) {
	path, err := Need("sh", "dash")
	if err != nil || !strings.HasSuffix(path, "/sh") {
		t.Fatalf("Need(sh) = %q, %v", path, err)
	}
}

// TestNeedNeverInstallsWhenTold: with KASSA_TEST_NO_INSTALL set, a missing
// program is an error naming the package to install, and nothing runs.
func TestNeedNeverInstallsWhenTold(t *testing.T) {
	t.Setenv("KASSA_TEST_NO_INSTALL", "1")
	_, err := Need("kassa-no-such-program", "kassa-no-such-package")
	if err == nil || !strings.Contains(err.Error(), "apt-get install -y kassa-no-such-package") {
		t.Fatalf("Need of a missing program = %v, want the install hint", err)
	}
}
