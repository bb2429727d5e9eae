package testneed

import (
	"runtime"
	"strings"
	"testing"
)

// recorder is a testing.TB that records how a test ended: Skip and Fatal
// stop the goroutine, as they do in a real test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Skip(args ...any) {
	r.skipped = args[0].(string)
	runtime.Goexit()
}

func (r *recorder) Fatal(args ...any) {
	r.failed = args[0].(string)
	runtime.Goexit()
}

// program runs Program on a recorder in a goroutine of its own, since a
// skip or a failure ends it.
func program(t *testing.T, pkg string, names ...string) (string, *recorder) {
	r := &recorder{TB: t}
	var path string
	done := make(chan struct{})
	go func() {
		defer close(done)
		path = Program(r, pkg, names...)
	}()
	<-done
	return path, r
}

func TestProgram(t *testing.T) {
	for _, tc := range []struct {
		name, requireAll    string
		names               []string
		found, skips, fails bool
	}{
		{name: "found on PATH", names: []string{"kassa-no-such-program", "sh"}, found: true},
		{name: "found by path", names: []string{"/bin/sh"}, found: true},
		{name: "missing skips", names: []string{"kassa-no-such-program"}, skips: true},
		{name: "missing fails when required", requireAll: "1", names: []string{"kassa-no-such-program"}, fails: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(RequireAll, tc.requireAll)
			path, r := program(t, "kassa-no-such-package", tc.names...)
			if got := path != ""; got != tc.found {
				t.Errorf("path %q, want found %v", path, tc.found)
			}
			if got := r.skipped != ""; got != tc.skips {
				t.Errorf("skipped %q, want a skip %v", r.skipped, tc.skips)
			}
			if got := r.failed != ""; got != tc.fails {
				t.Errorf("failed %q, want a failure %v", r.failed, tc.fails)
			}
			if msg := r.skipped + r.failed; msg != "" && !strings.Contains(msg, "apt-get install kassa-no-such-package") {
				t.Errorf("message %q does not say what to install", msg)
			}
		})
	}
}
