package redisstorage

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/caddy-kassa/kassa/redisstorage/redistest"
)

// testServer is the redis-server the package's tests share; each test
// keeps its keys under its own prefix.
var testServer *redistest.Server

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "redisstorage-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if testServer, err = redistest.Start(dir); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: the redisstorage tests need a Redis server:", err)
		return 1
	}
	defer testServer.Close()
	return m.Run()
}

// newTestStorage provisions a Storage on the test server under a key
// prefix of the test's own, after change (if not nil) set its options. It
// is cleaned up when the test ends.
func newTestStorage(t *testing.T, change func(*Storage)) *Storage {
	t.Helper()
	s := &Storage{Address: testServer.Addr, KeyPrefix: "test:" + t.Name()}
	if change != nil {
		change(s)
	}
	if err := s.setup(zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Cleanup(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return s
}

// testClient is a plain client of the test server, to look at the keys a
// Storage wrote.
func testClient(t *testing.T) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: testServer.Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// redisKeys lists the Redis keys under a storage's key prefix, sorted.
func redisKeys(t *testing.T, s *Storage) []string {
	t.Helper()
	var keys []string
	iter := testClient(t).Scan(context.Background(), 0, redisMatchPrefix(s.KeyPrefix)+":*", 100).Iterator()
	for iter.Next(context.Background()) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

// redisMatchPrefix escapes a prefix for a SCAN MATCH pattern.
func redisMatchPrefix(p string) string {
	return strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`, "]", `\]`).Replace(p)
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
