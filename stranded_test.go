package kassa

// Tests of the refusal of a config that strands open orders (stranded.go).

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// unlistableStorage cannot list anything.
type unlistableStorage struct{ certmagic.Storage }

func (unlistableStorage) List(context.Context, string, bool) ([]string, error) {
	return nil, errors.New("connection refused")
}

// TestCheckStranded: a config without the account of two pending orders
// is refused, naming the account, the count and the ways out; a config
// that keeps the account passes, and so does one without the account once
// its orders closed (a paid order's account is no reason to refuse).
func TestCheckStranded(t *testing.T) {
	p := newLifeProvider("pegas")
	counting := &readCountingStorage{Storage: newBenchStorage()}
	s := newLifeShop(t, p, counting, nil)
	pending := []*Order{s.created("key-stranded-order-01"), s.created("key-stranded-order-02")}
	paid := s.created("key-stranded-order-03")
	p.pay(paid.Payment.ID)
	s.pass()

	reload := func(storage certmagic.Storage, names ...string) error {
		a := &App{logger: zap.NewNop(), accounts: map[string]*account{}}
		for _, name := range names {
			a.accounts[name] = &account{name: name, provider: "pegas", PaymentProvider: p}
		}
		a.useStorage(storage)
		return a.checkStranded(context.Background())
	}
	counting.mu.Lock()
	counting.record = true
	counting.mu.Unlock()
	if err := reload(counting, "main", "other"); err != nil {
		t.Fatalf("a config that keeps the account: %v", err)
	}
	// The check reads the open index and its orders, not history: the
	// paid order's record is never read.
	counting.mu.Lock()
	counting.record = false
	if !slices.Equal(counting.lists, []string{openPrefix}) || slices.Contains(counting.reads, orderKey(paid.ID)) {
		t.Errorf("the check listed %v and read %v; want only %s listed, and %s not read",
			counting.lists, counting.reads, openPrefix, orderKey(paid.ID))
	}
	counting.mu.Unlock()

	// A storage that cannot be listed does not refuse the config.
	if err := reload(unlistableStorage{s.storage}, "renamed"); err != nil {
		t.Errorf("with the open index unreadable: %v; want the config accepted", err)
	}

	err := reload(s.storage, "renamed")
	if err == nil {
		t.Fatal("a config without the account of 2 pending orders was accepted")
	}
	for _, want := range []string{`2 open order(s) of payment account "main", which this config no longer has`,
		"configured: renamed", "keep the account", "caddy kassa cancel"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	// The same name for another provider module strands them too.
	moved := &App{logger: zap.NewNop(), accounts: map[string]*account{"main": {name: "main", provider: "crystalpay", PaymentProvider: p}}}
	moved.useStorage(s.storage)
	if err := moved.checkStranded(context.Background()); err == nil ||
		!strings.Contains(err.Error(), `2 open order(s) of payment account "main" made through pegas, which this config makes a crystalpay account`) {
		t.Errorf("with account main moved to crystalpay: %v", err)
	}

	for _, o := range pending {
		if _, err := s.app.cancelOrder(context.Background(), o.ID); err != nil {
			t.Fatalf("cancelling %s: %v", o.ID, err)
		}
	}
	if err := reload(s.storage, "renamed"); err != nil {
		t.Errorf("after the orders closed: %v", err)
	}
}
