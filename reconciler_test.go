package kassa

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/shopspring/decimal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// flakyProvider answers status checks with statusErr while it is set,
// else with paid; its cancels fail with cancelErr.
type flakyProvider struct {
	benchProvider
	statusErr atomic.Pointer[error]
	cancelErr error
}

func (p *flakyProvider) PaymentStatus(ctx context.Context, ref PaymentRef) (PaymentStatus, error) {
	if err := p.statusErr.Load(); err != nil {
		return PaymentStatus{}, *err
	}
	return p.benchProvider.PaymentStatus(ctx, ref)
}

func (p *flakyProvider) CancelPayment(context.Context, PaymentRef) error { return p.cancelErr }

// flakyApp is an app on a fresh file storage whose account "card" is p,
// logging warnings to the observer it returns, with one pending order
// that expires at expires.
func flakyApp(t *testing.T, p *flakyProvider, expires time.Time) (*App, *Order, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.WarnLevel)
	a := &App{logger: zap.New(core), now: time.Now}
	a.accounts = map[string]*account{"card": {name: "card", provider: "pegas", PaymentProvider: p}}
	a.useStorage(&certmagic.FileStorage{Path: t.TempDir()})
	a.statuses = newStatusGate(0) // every pass asks the provider
	o := &Order{ID: NewOrderID(), State: OrderPending, Account: "card", Provider: "pegas", Amount: decimal.NewFromInt(350),
		Payment: Payment{ID: "100001"}, CreatedAt: time.Now(), ExpiresAt: expires}
	if err := a.orders.Create(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	return a, o, logs
}

// TestExpiryCancelFailureLoggedOnce: an expired order whose cancel keeps
// failing the same way is logged once, not on every pass, though its
// status checks succeed in between.
func TestExpiryCancelFailureLoggedOnce(t *testing.T) {
	p := &flakyProvider{cancelErr: fmt.Errorf("pegas deposit/cancel: %w", ErrUnavailable)}
	a, o, logs := flakyApp(t, p, time.Now().Add(-time.Minute))
	for range 3 {
		a.reconciler.pass(context.Background())
	}
	if n := logs.FilterMessageSnippet("cancelling an expired order failed").Len(); n != 1 {
		t.Errorf("the same cancel failure logged %d times over 3 passes, want 1", n)
	}
	if stored, err := a.orders.Load(context.Background(), o.ID); err != nil || stored.State != OrderPending {
		t.Errorf("the order whose cancel failed is %v, %v; want pending", stored.State, err)
	}
}

// TestFailureForgottenOnceTheOrderMoves: the failure remembered for an
// order's logs is dropped when the order changes state, so the memory
// holds only orders still failing.
func TestFailureForgottenOnceTheOrderMoves(t *testing.T) {
	p := &flakyProvider{}
	down := error(fmt.Errorf("pegas receipt: %w", ErrUnavailable))
	p.statusErr.Store(&down)
	a, o, logs := flakyApp(t, p, time.Now().Add(time.Hour))
	a.reconciler.pass(context.Background())
	if logs.Len() != 1 || len(a.reconciler.failing) != 1 {
		t.Fatalf("after a failing status check: %d log lines, %d orders remembered; want 1 and 1", logs.Len(), len(a.reconciler.failing))
	}
	p.statusErr.Store(nil)
	p.paid.Store(true)
	a.reconciler.pass(context.Background())
	if stored, err := a.orders.Load(context.Background(), o.ID); err != nil || stored.State != OrderPaid {
		t.Fatalf("the order is %v, %v; want paid", stored.State, err)
	}
	if len(a.reconciler.failing) != 0 {
		t.Errorf("the paid order's failure is still remembered: %v", a.reconciler.failing)
	}
}

// zeroTimeoutProvider reports a call timeout of zero, as a provider in
// another module may for an unset option whose real default it does not
// report.
type zeroTimeoutProvider struct{ PaymentProvider }

func (zeroTimeoutProvider) CallTimeout() time.Duration { return 0 }

// TestCreatingGraceWithoutATimeout: a reported timeout of zero gets the
// default grace, not a second: the reconciler must not take over a
// checkout still waiting for the provider.
func TestCreatingGraceWithoutATimeout(t *testing.T) {
	if g := creatingGrace(&account{PaymentProvider: zeroTimeoutProvider{}}); g != defaultCreatingGrace {
		t.Errorf("creatingGrace = %v for a provider reporting no timeout, want %v", g, defaultCreatingGrace)
	}
}
