package main

import (
	"context"
	"fmt"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-kassa/kassa"
	"github.com/caddyserver/certmagic"
	"github.com/shopspring/decimal"
)

// sampleOrder is an order like those the shop's checkout makes from
// checkoutForm, in state, numbered n.
func sampleOrder(n int, state kassa.OrderState) *kassa.Order {
	created := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Second)
	o := &kassa.Order{
		ID: kassa.NewOrderID(), State: state, Account: "main", Provider: "crystalpay",
		Amount: decimal.RequireFromString("820.00"),
		Items: []kassa.OrderItem{
			{SKU: "tea-green", Name: "Green tea 100 g", Qty: 2, Price: decimal.RequireFromString("350.00"), VAT: kassa.VAT20},
			{SKU: "cup", Name: "Cup", Qty: 1, Price: decimal.RequireFromString("120.00")},
		},
		Email: "buyer@example.com",
		Payment: kassa.Payment{ID: "1_" + strconv.Itoa(100000+n),
			URL: "http://127.0.0.1/pay/crystalpay/1_" + strconv.Itoa(100000+n)},
		CreatedAt: created, UpdatedAt: created, ExpiresAt: created.Add(24 * time.Hour),
	}
	if state == kassa.OrderPaid {
		paid := created.Add(time.Minute)
		o.PaidAmount = decimal.NewNullDecimal(o.Amount)
		o.PaidAt, o.ClosedAt, o.UpdatedAt = paid, paid, paid
	}
	return o
}

// durableWrites measures certmagic FileStorage.Store in dir: concurrency
// workers each storing record under fresh keys in one directory (as
// orders are), for d.
func durableWrites(ctx context.Context, dir string, record []byte, concurrency int, d time.Duration) loadResult {
	storage := &certmagic.FileStorage{Path: dir}
	return drive(ctx, concurrency, d, func(int, int) error {
		return storage.Store(ctx, "kassa/orders/"+kassa.NewOrderID()+".json", record)
	})
}

// storeOrders measures the storage writes of checkouts alone: concurrency
// workers each storing an order as the checkout does, with OrderStore's
// Create (in creating, before the provider is asked) and SaveCreated (pending,
// with its payment), for d, in the file storage at dir. It is the checkout
// figure without HTTP and without the provider.
func storeOrders(ctx context.Context, dir string, concurrency int, d time.Duration) loadResult {
	store := kassa.NewOrderStore(&certmagic.FileStorage{Path: dir})
	return drive(ctx, concurrency, d, func(_, i int) error {
		o := sampleOrder(i, kassa.OrderCreating)
		if err := store.Create(ctx, o); err != nil {
			return err
		}
		o.State = kassa.OrderPending
		return store.SaveCreated(ctx, o)
	})
}

// seedClosedOrders stores n paid (closed) orders in the file storage at
// dir through kassa.OrderStore, with concurrency workers.
func seedClosedOrders(ctx context.Context, dir string, n, concurrency int) error {
	store := kassa.NewOrderStore(&certmagic.FileStorage{Path: dir})
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, concurrency)
	for range concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > n || ctx.Err() != nil {
					return
				}
				if err := store.Create(ctx, sampleOrder(i, kassa.OrderPaid)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("storing closed orders: %v", err)
	}
	return ctx.Err()
}

// scanOrders reads every order in the file storage at dir once, keeping
// none: what a reconciler pass would cost if it read every order.
func scanOrders(ctx context.Context, dir string) (time.Duration, error) {
	storage := &certmagic.FileStorage{Path: dir}
	store := kassa.NewOrderStore(storage)
	start := time.Now()
	keys, err := storage.List(ctx, "kassa/orders", false)
	if err != nil {
		return 0, err
	}
	for _, k := range keys {
		if _, err := store.Load(ctx, strings.TrimSuffix(path.Base(k), ".json")); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}
