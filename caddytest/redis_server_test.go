package caddytest

// A throwaway redis-server for the cluster tests: on a free loopback port,
// without persistence, its files in the test's directory. A machine
// without redis-server skips these tests (see internal/testneed).

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-kassa/kassa/internal/testneed"
)

// Bounds of starting and stopping a redis-server.
const (
	redisStartAttempts = 5                // a port taken meanwhile is retried
	redisReadyWait     = 10 * time.Second // until it answers PING
	redisStopWait      = 5 * time.Second  // until it has exited after SIGKILL
)

// redisServer is a running redis-server.
type redisServer struct {
	addr string // 127.0.0.1:<port>
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited
}

// redisStartServer runs a redis-server for the test, its files in dir,
// killed when the test ends; its log is shown if the test failed.
func redisStartServer(t *testing.T, dir string) *redisServer {
	t.Helper()
	bin := testneed.Program(t, "redis-server", "redis-server")
	var srv *redisServer
	var err error
	for range redisStartAttempts {
		if srv, err = redisStart(bin, dir); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.close()
		if t.Failed() {
			t.Logf("----- log of redis-server -----\n%s", srv.readLog())
		}
	})
	return srv
}

// redisStart runs bin on a loopback port that was free a moment ago, and
// waits until it answers.
func redisStart(bin, dir string) (*redisServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	log := filepath.Join(dir, "redis-"+port+".log")
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", log)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &redisServer{addr: "127.0.0.1:" + port, cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(s.done)
	}()
	deadline := time.Now().Add(redisReadyWait)
	for !s.answers() {
		select {
		case <-s.done:
			return nil, fmt.Errorf("redis-server on port %s exited at start (%v): %s", port, cmd.ProcessState, s.readLog())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.close()
			return nil, fmt.Errorf("redis-server on port %s does not answer after %v: %s", port, redisReadyWait, s.readLog())
		}
	}
	return s, nil
}

// answers reports whether the server answers PING (a server still
// loading answers -LOADING).
func (s *redisServer) answers() bool {
	reply, err := s.do("PING")
	return err == nil && reply == "+PONG"
}

// do sends the server one command and returns the first line of its
// reply, such as "+OK" or ":1".
func (s *redisServer) do(args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", s.addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	cmd := fmt.Sprintf("*%d\r\n", len(args))
	for _, a := range args {
		cmd += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(cmd)); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSuffix(line, "\r\n"), err
}

// close kills the server (SIGKILL) and waits until it has exited.
func (s *redisServer) close() {
	s.cmd.Process.Kill()
	select {
	case <-s.done:
	case <-time.After(redisStopWait):
	}
}

// readLog returns the server's log.
func (s *redisServer) readLog() string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
