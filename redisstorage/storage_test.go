package redisstorage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestStoreLoad(t *testing.T) {
	s := newTestStorage(t, nil)
	ctx := context.Background()
	for _, value := range [][]byte{[]byte(`{"id":"x"}`), {}, {0, 0xff, '\n', 0}} {
		if err := s.Store(ctx, "kassa/orders/x.json", value); err != nil {
			t.Fatal(err)
		}
		got, err := s.Load(ctx, "kassa/orders/x.json")
		if err != nil || !bytes.Equal(got, value) {
			t.Errorf("Load after Store(%q) = %q, %v", value, got, err)
		}
	}
	// The same key however it is spelled.
	if got, err := s.Load(ctx, "/kassa//orders/./x.json/"); err != nil || len(got) != 4 {
		t.Errorf("Load of the key spelled otherwise = %q, %v", got, err)
	}
	for _, key := range []string{"kassa/orders/missing.json", "kassa/orders", "nothing"} {
		if _, err := s.Load(ctx, key); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load(%q) = %v, want fs.ErrNotExist", key, err)
		}
	}
	for _, key := range []string{"", "/", "."} {
		if err := s.Store(ctx, key, []byte("x")); err == nil {
			t.Errorf("Store(%q) succeeded, want an error", key)
		}
	}
}

func TestStat(t *testing.T) {
	s := newTestStorage(t, nil)
	ctx := context.Background()
	before := time.Now()
	if err := s.Store(ctx, "kassa/open/a", []byte("12345")); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	info, err := s.Stat(ctx, "kassa/open/a")
	if err != nil {
		t.Fatal(err)
	}
	if info.Key != "kassa/open/a" || !info.IsTerminal || info.Size != 5 ||
		info.Modified.Before(before) || info.Modified.After(after) {
		t.Errorf("Stat = %+v, want a terminal key of size 5 modified between %v and %v", info, before, after)
	}

	// Modified is the time of the last write.
	time.Sleep(5 * time.Millisecond)
	if err := s.Store(ctx, "kassa/open/a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	again, err := s.Stat(ctx, "kassa/open/a")
	if err != nil {
		t.Fatal(err)
	}
	if !again.Modified.After(info.Modified) || again.Size != 1 {
		t.Errorf("Stat after a second Store = %+v, want modified after %v, size 1", again, info.Modified)
	}

	for _, dir := range []string{"kassa", "kassa/open", "kassa/open/"} {
		info, err := s.Stat(ctx, dir)
		if err != nil || info.IsTerminal || info.Key != strings.TrimSuffix(dir, "/") {
			t.Errorf("Stat(%q) = %+v, %v, want a directory", dir, info, err)
		}
	}
	for _, key := range []string{"kassa/open/b", "kassa/closed", "other"} {
		if _, err := s.Stat(ctx, key); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat(%q) = %v, want fs.ErrNotExist", key, err)
		}
	}
}

// storeAll stores each key with its name as value.
func storeAll(t *testing.T, s *Storage, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if err := s.Store(context.Background(), k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestList(t *testing.T) {
	s := newTestStorage(t, nil)
	ctx := context.Background()
	storeAll(t, s, "a/b/c", "a/b/d", "a/e", "f", "a/b/g/h/i")
	for _, tc := range []struct {
		prefix    string
		recursive bool
		want      []string
	}{
		{"a", false, []string{"a/b", "a/e"}},
		{"a/", false, []string{"a/b", "a/e"}},
		{"a/b", false, []string{"a/b/c", "a/b/d", "a/b/g"}},
		{"a", true, []string{"a/b/c", "a/b/d", "a/b/g/h/i", "a/e"}},
		{"a/b/g", true, []string{"a/b/g/h/i"}},
		{"", false, []string{"a", "f"}},
		{"", true, []string{"a/b/c", "a/b/d", "a/b/g/h/i", "a/e", "f"}},
	} {
		got, err := s.List(ctx, tc.prefix, tc.recursive)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("List(%q, %v) = %q, %v, want %q", tc.prefix, tc.recursive, got, err, tc.want)
		}
	}
	for _, prefix := range []string{"missing", "a/x", "a/e"} {
		for _, recursive := range []bool{false, true} {
			if got, err := s.List(ctx, prefix, recursive); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("List(%q, %v) = %q, %v, want fs.ErrNotExist", prefix, recursive, got, err)
			}
		}
	}

	// A key that has a value and keys below it is listed once, and its
	// value is listed by a recursive listing.
	storeAll(t, s, "a/b")
	if got, err := s.List(ctx, "a", false); err != nil || !slices.Equal(got, []string{"a/b", "a/e"}) {
		t.Errorf("List(a) with a/b both a value and a directory = %q, %v", got, err)
	}
	if got, err := s.List(ctx, "a", true); err != nil || !slices.Equal(got, []string{"a/b", "a/b/c", "a/b/d", "a/b/g/h/i", "a/e"}) {
		t.Errorf("List(a, recursive) with a/b both a value and a directory = %q, %v", got, err)
	}
}

func TestDelete(t *testing.T) {
	s := newTestStorage(t, nil)
	ctx := context.Background()
	storeAll(t, s, "a/b/c", "a/b/d", "a/b/g/h/i", "a/e", "ab/x")

	// A value: its now empty directories go with it.
	if err := s.Delete(ctx, "a/b/g/h/i"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a/b/g/h/i", "a/b/g/h", "a/b/g"} {
		if s.Exists(ctx, k) {
			t.Errorf("%s exists after deleting a/b/g/h/i", k)
		}
	}
	if got, err := s.List(ctx, "a/b", false); err != nil || !slices.Equal(got, []string{"a/b/c", "a/b/d"}) {
		t.Errorf("List(a/b) after deleting a/b/g/h/i = %q, %v", got, err)
	}

	// A directory: everything below it, and only that ("ab" is no child
	// of "a").
	if err := s.Delete(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a/b/c", "a/b/d", "a/b"} {
		if s.Exists(ctx, k) {
			t.Errorf("%s exists after deleting a/b", k)
		}
	}
	if got, err := s.List(ctx, "", true); err != nil || !slices.Equal(got, []string{"a/e", "ab/x"}) {
		t.Errorf("List(\"\", recursive) after deleting a/b = %q, %v", got, err)
	}

	// Missing keys are no error.
	for _, k := range []string{"a/b", "nothing", "a/e/f"} {
		if err := s.Delete(ctx, k); err != nil {
			t.Errorf("Delete(%q) of a missing key: %v", k, err)
		}
	}
	if err := s.Delete(ctx, "/"); err == nil {
		t.Error("Delete of the root succeeded, want an error")
	}

	// Nothing is left behind in Redis.
	storeAll(t, s, "a/b/c")
	for _, k := range []string{"a", "ab"} {
		if err := s.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if keys := redisKeys(t, s); len(keys) != 0 {
		t.Errorf("Redis keys left after deleting everything: %q", keys)
	}
	if _, err := s.List(ctx, "", false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("List of the empty root = %v, want fs.ErrNotExist", err)
	}
}

func TestExists(t *testing.T) {
	s := newTestStorage(t, nil)
	ctx := context.Background()
	storeAll(t, s, "kassa/orders/x.json")
	for key, want := range map[string]bool{
		"kassa/orders/x.json": true, "kassa/orders": true, "kassa": true,
		"kassa/orders/y.json": false, "kassa/order": false, "x.json": false,
	} {
		if got := s.Exists(ctx, key); got != want {
			t.Errorf("Exists(%q) = %v, want %v", key, got, want)
		}
	}
}

// TestKeyPrefixes proves that two storages with different key prefixes on
// one server do not see each other's keys.
func TestKeyPrefixes(t *testing.T) {
	one := newTestStorage(t, func(s *Storage) { s.KeyPrefix = "test:TestKeyPrefixes:one" })
	two := newTestStorage(t, func(s *Storage) { s.KeyPrefix = "test:TestKeyPrefixes:two" })
	ctx := context.Background()
	storeAll(t, one, "kassa/open/a")
	if two.Exists(ctx, "kassa/open/a") {
		t.Error("a key stored under one prefix exists under another")
	}
	if _, err := two.List(ctx, "kassa/open", false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("List under another prefix = %v, want fs.ErrNotExist", err)
	}
}

// TestConcurrentStoreDelete proves that the directory sets stay exact
// under concurrent writers on two instances: afterwards, a directory lists
// exactly the names that have a value or children, and every value is
// listed.
func TestConcurrentStoreDelete(t *testing.T) {
	a := newTestStorage(t, nil)
	b := newTestStorage(t, samePrefix(a))
	keys := []string{"k/o/1", "k/o/2", "k/o/3", "k/u/1", "k/u/2", "k/x", "k/o", "z"}
	var wg sync.WaitGroup
	for w := range 8 {
		s := []*Storage{a, b}[w%2]
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(w), 1))
			for range 150 {
				k := keys[rnd.IntN(len(keys))]
				var err error
				switch dir := path.Dir(k); {
				case rnd.IntN(4) == 0 && dir != ".":
					err = s.Delete(context.Background(), dir)
				case rnd.IntN(3) == 0:
					err = s.Delete(context.Background(), k)
				default:
					err = s.Store(context.Background(), k, []byte(k))
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	// What the listing says against what Redis holds.
	ctx := context.Background()
	var listed []string
	if got, err := a.List(ctx, "", true); err == nil {
		listed = got
	} else if !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var stored []string
	for _, k := range redisKeys(t, a) {
		if key, ok := strings.CutPrefix(k, a.keys.filePrefix()); ok {
			stored = append(stored, key)
		}
	}
	if !slices.Equal(listed, stored) {
		t.Errorf("recursive listing %q, but Redis holds values for %q", listed, stored)
	}
	checkDirSets(t, a, "")
}

// checkDirSets checks that every name in directory dir's set, and below,
// has a value or children.
func checkDirSets(t *testing.T, s *Storage, dir string) {
	t.Helper()
	names, err := testClient(t).SMembers(context.Background(), s.keys.dir(dir)).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		k := path.Join(dir, name)
		if !s.Exists(context.Background(), k) {
			t.Errorf("directory %q lists %q, which has neither a value nor children", dir, name)
		}
		checkDirSets(t, s, k)
	}
}

// TestServerDown proves that a storage provisions while its server is
// down, and that its calls then fail with errors rather than hang.
func TestServerDown(t *testing.T) {
	down := fmt.Sprintf("127.0.0.1:%d", closedPort(t))
	s := newTestStorage(t, func(s *Storage) { s.Address = down })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	calls := map[string]func() error{
		"Store": func() error { return s.Store(ctx, "a", []byte("x")) },
		"Load":  func() error { _, err := s.Load(ctx, "a"); return err },
		"Stat":  func() error { _, err := s.Stat(ctx, "a"); return err },
		"List":  func() error { _, err := s.List(ctx, "", false); return err },
		"Lock":  func() error { return s.Lock(ctx, "l") },
	}
	var wg sync.WaitGroup
	for name, call := range calls {
		wg.Go(func() {
			if err := call(); err == nil || errors.Is(err, fs.ErrNotExist) || ctx.Err() != nil {
				t.Errorf("%s with the server down = %v, want an error other than fs.ErrNotExist, before 10s", name, err)
			}
		})
	}
	wg.Wait()
}
