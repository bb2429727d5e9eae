// Package redistest runs a throwaway redis-server for tests: on a free
// loopback port, without persistence, its files in a directory the caller
// gives. It needs the redis-server binary (Debian's redis-server package).
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-kassa/kassa/internal/debpkg"
)

// Bounds of starting a server.
const (
	startAttempts = 5                // a port taken meanwhile is retried
	readyWait     = 10 * time.Second // until it answers PING
	stopWait      = 5 * time.Second  // until it has exited after SIGKILL
)

// ErrNoRedisServer: redis-server is not installed and could not be
// (see internal/debpkg).
var ErrNoRedisServer = errors.New("the Redis storage tests need redis-server")

// Server is a running redis-server.
type Server struct {
	// Addr is the server's address, 127.0.0.1:<port>.
	Addr string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited
}

// Start runs redis-server on a free loopback port, with its working
// directory and log in dir and extra added to its command line (such as
// "--requirepass", "secret"), and waits until it answers.
func Start(dir string, extra ...string) (*Server, error) {
	bin, err := debpkg.Need("redis-server", "redis-server")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoRedisServer, err)
	}
	var last error
	for range startAttempts {
		s, err := start(bin, dir, extra)
		if err == nil {
			return s, nil
		}
		last = err
	}
	return nil, last
}

func start(bin, dir string, extra []string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	log := filepath.Join(dir, "redis-"+strconv.Itoa(port)+".log")
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", dir, "--logfile", log}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting redis-server: %w", err)
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(s.done)
	}()
	deadline := time.Now().Add(readyWait)
	for !s.answers() {
		select {
		case <-s.done:
			return nil, fmt.Errorf("redis-server on port %d exited at start (%v): %s", port, cmd.ProcessState, s.Log())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Close()
			return nil, fmt.Errorf("redis-server on port %d does not answer after %v: %s", port, readyWait, s.Log())
		}
	}
	return s, nil
}

// answers reports whether the server answers PING.
func (s *Server) answers() bool {
	conn, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	// A server still loading answers -LOADING; a protected one -NOAUTH.
	return err == nil && (strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH"))
}

// Close kills the server (SIGKILL) and waits until it has exited.
func (s *Server) Close() {
	s.cmd.Process.Kill()
	select {
	case <-s.done:
	case <-time.After(stopWait):
	}
}

// Log returns the server's log.
func (s *Server) Log() string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
