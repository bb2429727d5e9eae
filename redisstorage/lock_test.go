package redisstorage

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"go.uber.org/zap"
)

// shortLocks shortens a provisioned storage's lock timing, so that tests
// of expiry and renewal take a second rather than many.
func shortLocks(s *Storage) {
	s.timing = lockTiming{ttl: 600 * time.Millisecond, refresh: 150 * time.Millisecond, retry: 20 * time.Millisecond}
}

// samePrefix has a storage share another's keys, as a second instance.
func samePrefix(other *Storage) func(*Storage) {
	return func(s *Storage) { s.KeyPrefix = other.KeyPrefix }
}

// lockWithin tries to take a lock for d, reporting whether it got it.
func lockWithin(t *testing.T, s *Storage, name string, d time.Duration) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	err := s.Lock(ctx, name)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock(%s): %v", name, err)
	}
	return err == nil
}

// lockHolder returns the token a lock holds in Redis, or "" without one.
func lockHolder(t *testing.T, s *Storage, name string) string {
	t.Helper()
	token, _ := testClient(t).Get(context.Background(), s.keys.lock(name)).Result()
	return token
}

func TestLockExcludes(t *testing.T) {
	a := newTestStorage(t, nil)
	b := newTestStorage(t, samePrefix(a))
	ctx := context.Background()
	if err := a.Lock(ctx, "kassa/reconciler"); err != nil {
		t.Fatal(err)
	}
	if lockWithin(t, b, "kassa/reconciler", 600*time.Millisecond) {
		t.Fatal("B took the lock A holds")
	}
	// Other names are free.
	if !lockWithin(t, b, "other", time.Second) {
		t.Fatal("B could not take a lock nobody holds")
	}
	if err := b.Unlock(ctx, "other"); err != nil {
		t.Fatal(err)
	}

	// A waiting Lock takes the lock once it is released.
	got := make(chan error, 1)
	go func() { got <- b.Lock(ctx, "kassa/reconciler") }()
	time.Sleep(100 * time.Millisecond)
	if err := a.Unlock(ctx, "kassa/reconciler"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("B's Lock did not return after A's Unlock")
	}
	if err := b.Unlock(ctx, "kassa/reconciler"); err != nil {
		t.Fatal(err)
	}
	if token := lockHolder(t, a, "kassa/reconciler"); token != "" {
		t.Errorf("lock still in Redis after Unlock: %q", token)
	}
}

// TestLockTTL proves a lock's time to live in Redis is the 5s that bounds
// how long a dead holder blocks the others.
func TestLockTTL(t *testing.T) {
	s := newTestStorage(t, nil)
	ctx := context.Background()
	if err := s.Lock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	defer s.Unlock(ctx, "l")
	ttl, err := testClient(t).PTTL(ctx, s.keys.lock("l")).Result()
	if err != nil || ttl <= 4*time.Second || ttl > lockTTL {
		t.Errorf("the lock's TTL in Redis is %v (%v), want just under %v", ttl, err, lockTTL)
	}
}

func TestLockCancelled(t *testing.T) {
	a := newTestStorage(t, nil)
	b := newTestStorage(t, samePrefix(a))
	if err := a.Lock(context.Background(), "l"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() { got <- b.Lock(ctx, "l") }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-got:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Lock after its context was cancelled = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Lock did not return after its context was cancelled")
	}
}

// TestLockRenewed proves the holder keeps its lock for longer than its
// time to live.
func TestLockRenewed(t *testing.T) {
	a := newTestStorage(t, nil)
	b := newTestStorage(t, samePrefix(a))
	shortLocks(a)
	shortLocks(b)
	ctx := context.Background()
	if err := a.Lock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	if lockWithin(t, b, "l", 3*a.timing.ttl) {
		t.Fatal("B took the lock while A was renewing it")
	}
	if err := a.Unlock(ctx, "l"); err != nil {
		t.Fatalf("Unlock after holding the lock for three times its TTL: %v", err)
	}
}

// TestLockExpiresWhenHolderDies proves that a holder that stops renewing
// its lock, as a killed process does, loses it within its time to live,
// and that its late Unlock neither fails silently nor frees the new
// holder's lock.
func TestLockExpiresWhenHolderDies(t *testing.T) {
	a := newTestStorage(t, nil)
	b := newTestStorage(t, samePrefix(a))
	shortLocks(a)
	shortLocks(b)
	ctx := context.Background()
	if err := a.Lock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	// A dies: its renewal stops, its lock stays in Redis.
	dead := a.locks.take("l")
	dead.stop()
	start := time.Now()
	if !lockWithin(t, b, "l", 5*a.timing.ttl) {
		t.Fatal("B never took the lock of a dead holder")
	}
	if waited := time.Since(start); waited > a.timing.ttl+time.Second {
		t.Errorf("B took the dead holder's lock after %v, TTL %v", waited, a.timing.ttl)
	}
	taken := lockHolder(t, b, "l")

	// A comes back and unlocks: it is told its lock was lost, and B keeps
	// its lock.
	a.locks.put("l", dead)
	if err := a.Unlock(ctx, "l"); !errors.Is(err, errLockLost) {
		t.Errorf("late Unlock by the dead holder = %v, want errLockLost", err)
	}
	if holder := lockHolder(t, b, "l"); holder != taken || holder == dead.token {
		t.Errorf("after the dead holder's Unlock the lock holds %q, want B's %q", holder, taken)
	}
	if err := b.Unlock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
}

// TestUnlockForeign proves that nobody releases a lock held with another
// token.
func TestUnlockForeign(t *testing.T) {
	a := newTestStorage(t, nil)
	b := newTestStorage(t, samePrefix(a))
	ctx := context.Background()
	if err := a.Lock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	token := lockHolder(t, a, "l")
	if err := b.Unlock(ctx, "l"); err == nil {
		t.Error("B unlocked a lock it does not hold without an error")
	}
	key := a.keys.lock("l")
	if n, err := unlockScript.Run(ctx, b.client, []string{key}, "not-the-token").Int(); err != nil || n != 0 {
		t.Errorf("unlock script with a foreign token = %d, %v, want 0", n, err)
	}
	testClient(t).PExpire(ctx, key, time.Second)
	if n, err := refreshScript.Run(ctx, b.client, []string{key}, "not-the-token", 60000).Int(); err != nil || n != 0 {
		t.Errorf("refresh script with a foreign token = %d, %v, want 0", n, err)
	}
	if ttl := testClient(t).PTTL(ctx, key).Val(); ttl > time.Second {
		t.Errorf("a foreign token renewed the lock: TTL %v", ttl)
	}
	if holder := lockHolder(t, a, "l"); holder != token {
		t.Fatalf("after foreign unlocks the lock holds %q, want A's %q", holder, token)
	}
	if err := a.Unlock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
}

// TestNoGoroutineLeft proves that Unlock and Cleanup stop every goroutine
// a lock started (Caddy reloads would otherwise pile them up).
func TestNoGoroutineLeft(t *testing.T) {
	before := runtime.NumGoroutine()
	s := &Storage{Address: testServer.Addr, KeyPrefix: "test:" + t.Name()}
	if err := s.setup(zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	shortLocks(s)
	ctx := context.Background()
	if err := s.Store(ctx, "warm", nil); err != nil { // opens a connection
		t.Fatal(err)
	}
	idle := runtime.NumGoroutine()
	for _, name := range []string{"a", "b", "c"} {
		if err := s.Lock(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if n := runtime.NumGoroutine(); n != idle+3 {
		t.Errorf("%d goroutines while holding 3 locks, want %d", n, idle+3)
	}
	time.Sleep(2 * s.timing.refresh) // the renewals run
	for _, name := range []string{"a", "b", "c"} {
		if err := s.Unlock(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	waitGoroutines(t, idle, "after Unlock")

	// Cleanup releases what is still held and closes the client.
	if err := s.Lock(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if err := s.Cleanup(); err != nil {
		t.Fatal(err)
	}
	waitGoroutines(t, before, "after Cleanup")
	if holder := lockHolder(t, s, "d"); holder != "" {
		t.Errorf("a lock held at Cleanup is still in Redis: %q", holder)
	}
}

// waitGoroutines waits briefly for the number of goroutines to drop to
// want.
func waitGoroutines(t *testing.T, want int, when string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > want {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines %s, want %d:\n%s", n, when, want, buf[:runtime.Stack(buf, true)])
	}
}

// TestRenewalStopsWhenClosed proves that a lock's renewal ends by itself
// when the client is closed under it (a Lock that raced Cleanup).
func TestRenewalStopsWhenClosed(t *testing.T) {
	s := &Storage{Address: testServer.Addr, KeyPrefix: "test:" + t.Name()}
	if err := s.setup(zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	shortLocks(s)
	if err := s.Lock(context.Background(), "l"); err != nil {
		t.Fatal(err)
	}
	h := s.locks.take("l")
	if err := s.client.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.done:
	case <-time.After(10 * s.timing.refresh):
		h.stop()
		t.Fatal("the renewal goes on after the client was closed")
	}
}
