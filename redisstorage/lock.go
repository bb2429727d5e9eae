package redisstorage

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Lock timing. A held lock lives lockTTL in Redis and is renewed every
// lockRefresh, so a holder that dies (SIGKILL, power loss, a lost network)
// lets the lock go within lockTTL; a waiting Lock tries again every
// lockRetry.
const (
	lockTTL     = 5 * time.Second
	lockRefresh = 2 * time.Second
	lockRetry   = 250 * time.Millisecond
)

// lockTiming is how a Storage times its locks; tests shorten it.
type lockTiming struct {
	ttl, refresh, retry time.Duration
}

// refreshScript renews a lock's time to live if it still holds the
// holder's token: KEYS[1] the lock, ARGV[1] the token, ARGV[2] the time to
// live in milliseconds. It returns 1 if renewed, 0 if the lock is gone or
// another's.
var refreshScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// unlockScript deletes a lock if it still holds the holder's token:
// KEYS[1] the lock, ARGV[1] the token. It returns 1 if deleted, 0 if the
// lock is gone or another's, which it leaves alone.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// heldLock is a lock this instance holds: the random token it set (128
// bits from crypto/rand, so no other holder has it), and the
// goroutine that renews it until cancel.
type heldLock struct {
	token  string
	cancel context.CancelFunc
	done   chan struct{} // closed when the renewing goroutine has returned
}

// stop ends the renewing goroutine and waits for it.
func (h *heldLock) stop() {
	h.cancel()
	<-h.done
}

// heldLocks are the locks this instance holds, by name.
type heldLocks struct {
	mu    sync.Mutex
	locks map[string]*heldLock
}

func newHeldLocks() *heldLocks { return &heldLocks{locks: make(map[string]*heldLock)} }

// put records a lock as held. A lock of that name recorded before was
// lost (Redis gave the name out again): its renewal is stopped.
func (l *heldLocks) put(name string, h *heldLock) {
	l.mu.Lock()
	old := l.locks[name]
	l.locks[name] = h
	l.mu.Unlock()
	if old != nil {
		old.stop()
	}
}

// take removes a held lock's record and returns it, or nil.
func (l *heldLocks) take(name string) *heldLock {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.locks[name]
	delete(l.locks, name)
	return h
}

// names lists the held locks.
func (l *heldLocks) names() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	names := make([]string, 0, len(l.locks))
	for name := range l.locks {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Lock takes the named lock, waiting until it is free or ctx is done. The
// lock is a Redis key set only if absent, with a random token and a time to
// live of 5s that a goroutine renews every 2s until Unlock: a holder that
// dies lets the lock go within 5s.
func (s *Storage) Lock(ctx context.Context, name string) error {
	key := s.keys.lock(name)
	token := rand.Text()
	var retry *time.Timer
	for {
		ok, err := s.client.SetNX(ctx, key, token, s.timing.ttl).Result()
		if ok {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("kassa_redis: taking lock %s: %w", name, err)
		}
		if retry == nil {
			retry = time.NewTimer(s.timing.retry)
			defer retry.Stop()
		} else {
			retry.Reset(s.timing.retry)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-retry.C:
		}
	}
	renewCtx, cancel := context.WithCancel(context.Background())
	h := &heldLock{token: token, cancel: cancel, done: make(chan struct{})}
	go s.renew(renewCtx, name, h)
	s.locks.put(name, h)
	return nil
}

// renew keeps a held lock alive until ctx is cancelled, or until it finds
// the lock lost.
func (s *Storage) renew(ctx context.Context, name string, h *heldLock) {
	defer close(h.done)
	ticker := time.NewTicker(s.timing.refresh)
	defer ticker.Stop()
	key := s.keys.lock(name)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		callCtx, cancel := context.WithTimeout(ctx, s.timing.refresh)
		renewed, err := refreshScript.Run(callCtx, s.client, []string{key}, h.token, s.timing.ttl.Milliseconds()).Int()
		cancel()
		switch {
		case ctx.Err() != nil, errors.Is(err, redis.ErrClosed):
			// Unlocked, or the storage was cleaned up.
			return
		case err != nil:
			// Redis may be back before the lock expires.
			s.logger.Warn("renewing a lock", zap.String("lock", name), zap.Error(err))
		case renewed == 0:
			s.logger.Error("lost a lock: it expired before it was renewed", zap.String("lock", name),
				zap.Duration("ttl", s.timing.ttl))
			return
		}
	}
}

// Unlock releases a lock this instance took with Lock: it stops renewing
// it and deletes it from Redis if it still holds this instance's token. A
// lock this instance does not hold is an error and is left alone, and so
// is one that expired and another instance took meanwhile.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	h := s.locks.take(name)
	if h == nil {
		return fmt.Errorf("kassa_redis: unlocking %s: not locked by this instance", name)
	}
	h.stop()
	deleted, err := unlockScript.Run(ctx, s.client, []string{s.keys.lock(name)}, h.token).Int()
	if err != nil {
		return fmt.Errorf("kassa_redis: unlocking %s (it expires within %v): %w", name, s.timing.ttl, err)
	}
	if deleted == 0 {
		return fmt.Errorf("kassa_redis: unlocking %s: %w", name, errLockLost)
	}
	return nil
}

// errLockLost: the lock expired while held (Redis unreachable, or the
// process stalled), and may have been taken by another instance.
var errLockLost = errors.New("the lock had expired while held")
