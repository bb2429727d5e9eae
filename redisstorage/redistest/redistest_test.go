package redistest

import (
	"errors"
	"strings"
	"testing"
)

func TestStartClose(t *testing.T) {
	s, err := Start(t.TempDir(), "--requirepass", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if !s.answers() {
		t.Fatal("the server does not answer after Start")
	}
	if !strings.HasPrefix(s.Addr, "127.0.0.1:") {
		t.Errorf("address %s, want loopback", s.Addr)
	}
	s.Close()
	select {
	case <-s.done:
	default:
		t.Fatal("the server still runs after Close")
	}
	if s.answers() {
		t.Error("the server answers after Close")
	}
}

func TestStartWithoutRedisServer(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("KASSA_TEST_NO_INSTALL", "1")
	if _, err := Start(t.TempDir()); !errors.Is(err, ErrNoRedisServer) ||
		!strings.Contains(err.Error(), "install Debian's redis-server") {
		t.Errorf("Start without redis-server = %v, want ErrNoRedisServer", err)
	}
}

func TestStartRefused(t *testing.T) {
	_, err := Start(t.TempDir(), "--no-such-option", "x")
	if err == nil || !strings.Contains(err.Error(), "exited at start") {
		t.Errorf("Start with a bad option = %v, want the server's own complaint", err)
	}
}
