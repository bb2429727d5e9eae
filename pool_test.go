package kassa

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// blockingProvider is a payment provider whose status calls wait until
// release is closed.
type blockingProvider struct {
	askedProvider
	started chan struct{}
	release chan struct{}
}

func (p *blockingProvider) PaymentStatus(ctx context.Context, ref PaymentRef) (PaymentStatus, error) {
	select {
	case p.started <- struct{}{}:
	default:
	}
	<-p.release
	return p.askedProvider.PaymentStatus(ctx, ref)
}

// TestStopDropsQueuedChecks: stopping the reconciler mid-pass (a reload,
// a shutdown) leaves the checks still queued to the next start, as the
// sequential pass did: none of them runs on the stopped context, and
// nothing is logged as an error for them.
func TestStopDropsQueuedChecks(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	p := &blockingProvider{started: make(chan struct{}, 1), release: make(chan struct{})}
	a := scheduleApp(t, p, 1, clock, time.Hour)
	core, logs := observer.New(zapcore.WarnLevel)
	a.logger = zap.New(core)
	a.reconciler = newReconciler(a)
	for range 50 {
		openPending(t, a)
	}
	a.reconciler.start()
	select {
	case <-p.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the reconciler's pass never asked the provider")
	}
	// The stop cancels the pass while a call is in flight; the call then
	// ends, and stop waits for the workers.
	a.reconciler.cancel()
	close(p.release)
	stopped := make(chan struct{})
	go func() {
		a.reconciler.stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return")
	}
	if n := len(p.takeAsked()); n > 1 {
		t.Errorf("the provider was asked about %d orders, want only the one in flight at stop", n)
	}
	if n := logs.Len(); n > 1 {
		t.Errorf("stopping mid-pass logged %d warnings and errors, want at most the one of the call in flight; the first: %v",
			n, logs.All()[0].Message)
	}
}

// TestPoolGroupWidth: a group runs at most its width of jobs at once, and
// while its jobs wait the other groups' go on, in priority order.
func TestPoolGroupWidth(t *testing.T) {
	pl := newPool(4, func(group string) int {
		if group == "slow" {
			return 2
		}
		return 0
	}, zap.NewNop())
	release := make(chan struct{})
	var (
		mu          sync.Mutex
		slow, most  int
		fast        []string
		done, fastd sync.WaitGroup
	)
	for i := range 10 {
		pl.submit(&done, &job{key: fmt.Sprint("slow", i), group: "slow", prio: priority{class: classDue, late: 10}, run: func() {
			mu.Lock()
			slow++
			most = max(most, slow)
			mu.Unlock()
			<-release
			mu.Lock()
			slow--
			mu.Unlock()
		}})
	}
	for _, key := range []string{"fast1", "fast2", "fast3"} {
		pl.submit(&fastd, &job{key: key, group: "main", prio: priority{class: classDue}, run: func() {
			mu.Lock()
			fast = append(fast, key)
			mu.Unlock()
		}})
	}
	waited := make(chan struct{})
	go func() {
		fastd.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("the other group's jobs did not run while the slow group's waited")
	}
	// Both of the slow group's places fill, and no more.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		mu.Lock()
		full := slow == 2
		mu.Unlock()
		if full {
			break
		}
	}
	close(release)
	done.Wait()
	if most != 2 {
		t.Errorf("the slow group ran %d jobs at once, want its width, 2", most)
	}
	if n := pl.pending(); n != 0 {
		t.Errorf("%d jobs left queued, want none", n)
	}
}

// TestPoolEnter: a job that learns its group as it runs goes back to the
// queue when the group is full, runs once the group has room, and is done
// only then.
func TestPoolEnter(t *testing.T) {
	pl := newPool(2, func(group string) int { return 1 }, zap.NewNop())
	release := make(chan struct{})
	var ran, entered atomic.Int32
	var done sync.WaitGroup
	held := make(chan struct{})
	pl.submit(&done, &job{key: "holder", group: "slow", run: func() {
		close(held)
		<-release
	}})
	<-held
	j := &job{key: "learner"}
	j.run = func() {
		ran.Add(1)
		if pl.enter(j, "slow") {
			entered.Add(1)
		}
	}
	pl.submit(&done, j)
	// Turned back: it ran, and waits in the queue again.
	for deadline := time.Now().Add(10 * time.Second); (ran.Load() == 0 || pl.pending() == 0) && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
	}
	close(release)
	done.Wait()
	if ran.Load() != 2 || entered.Load() != 1 {
		t.Errorf("the job ran %d times and entered %d, want 2 and 1: turned back once, then run in the group", ran.Load(), entered.Load())
	}
}

// TestPoolOneJobPerKey: a buyer's nudge for an order whose check is
// running waits for that check and then runs: two jobs of one order never
// run at once, else both would send its receipt (the fault matrix saw two
// formReceipt calls of one operation from one instance).
func TestPoolOneJobPerKey(t *testing.T) {
	p := newPool(4, nil, zap.NewNop())
	release := make(chan struct{})
	started := make(chan struct{})
	var running, most atomic.Int32
	run := func() {
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		running.Add(-1)
	}
	var done sync.WaitGroup
	p.submit(&done, &job{key: "open/a", prio: priority{class: classDue}, run: func() { close(started); run() }})
	<-started
	var nudged atomic.Bool
	p.submit(&done, &job{key: "open/a", prio: priority{class: classNudge}, run: func() { nudged.Store(true); run() }})
	// Give a free worker the chance to take the nudge while the check runs.
	p.submit(&done, &job{key: "open/b", prio: priority{class: classDue}, run: func() {}})
	time.Sleep(50 * time.Millisecond)
	close(release)
	done.Wait()
	p.wait()
	if !nudged.Load() {
		t.Error("the nudge never ran after the check")
	}
	if most.Load() != 1 {
		t.Errorf("%d jobs of one order ran at once, want 1", most.Load())
	}
}
