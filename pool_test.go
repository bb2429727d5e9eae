package kassa

import (
	"context"
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
