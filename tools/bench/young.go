package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/caddy-kassa/kassa"
	"github.com/caddyserver/certmagic"
)

// measureYoung is the young-first figure: old open orders made on a shop
// (the sandbox at zero latency meanwhile), which is stopped while their
// records are made older than an hour (created youngAge earlier, expiring
// youngOrderTTL from now); then a fresh shop on that storage, the sandbox
// at the figure's latency, takes fresh new orders, all paid, nobody
// polling their status.
func (r *scaleRun) measureYoung(ctx context.Context, old, fresh int) (noticeFigure, error) {
	nf := noticeFigure{open: old, fresh: fresh}
	storage := filepath.Join(r.dir, "orders-young")
	defer os.RemoveAll(storage)
	if err := r.setLatency(ctx, 0); err != nil {
		return nf, err
	}
	s, err := r.scaleShop(ctx, "shop-young", storage, youngOrderTTL)
	if err != nil {
		return nf, err
	}
	start := time.Now()
	orders, err := placeOrders(ctx, s, old, r.opts.concurrency)
	s.stop()
	if err != nil {
		return nf, err
	}
	if err := ageOrders(ctx, storage, orders, youngAge, time.Now().Add(youngOrderTTL), r.opts.concurrency); err != nil {
		return nf, err
	}
	nf.setup = time.Since(start)
	fmt.Fprintf(r.w, "  %d orders made and aged in %s\n", old, nf.setup.Round(time.Millisecond))

	if err := r.setLatency(ctx, r.opts.latency); err != nil {
		return nf, err
	}
	s, err = r.scaleShop(ctx, "shop-young-restarted", storage, youngOrderTTL)
	if err != nil {
		return nf, err
	}
	defer s.stop()
	if err := sleep(ctx, scalePollInterval); err != nil { // its first pass is under way
		return nf, err
	}
	placed, err := placeOrders(ctx, s, fresh, r.opts.concurrency)
	if err != nil {
		return nf, err
	}
	nf.paid, nf.wait = fresh, noticeWait(old+fresh, r.opts.latency)
	nf.noticed, err = r.payAndWatch(ctx, s, placed, nf.wait)
	return nf, err
}

// ageOrders rewrites the records of orders in the file storage at dir, with
// workers, as if each had been made age earlier and expired at expires.
// A record is under kassa/orders, or, for an order still being created,
// in its open-index entry. The shop must be stopped meanwhile.
func ageOrders(ctx context.Context, dir string, orders []invoice, age time.Duration, expires time.Time, workers int) error {
	storage := &certmagic.FileStorage{Path: dir}
	err := forEach(ctx, 0, len(orders), workers, func(i int) error {
		return ageOrder(ctx, storage, orders[i].order, age, expires)
	})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("ageing orders: %v", err)
	}
	return err
}

// ageOrder rewrites one order's record: created age earlier, expiring at
// expires.
func ageOrder(ctx context.Context, storage *certmagic.FileStorage, id string, age time.Duration, expires time.Time) error {
	key := "kassa/orders/" + id + ".json"
	rec, err := storage.Load(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		key = "kassa/open/" + id
		rec, err = storage.Load(ctx, key)
	}
	if err != nil {
		return err
	}
	var o kassa.Order
	if err := json.Unmarshal(rec, &o); err != nil {
		return fmt.Errorf("%s: %v", key, err)
	}
	o.CreatedAt = o.CreatedAt.Add(-age)
	o.ExpiresAt = expires.UTC().Truncate(time.Second)
	if rec, err = json.Marshal(&o); err != nil {
		return err
	}
	return storage.Store(ctx, key, rec)
}
