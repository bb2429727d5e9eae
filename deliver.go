package kassa

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Delivery's bounds and timings.
const (
	// deliverEvery is how often the deliverer looks at the outbox when
	// nothing wakes it.
	deliverEvery = time.Second
	// maxListedEvents bounds the outbox entries one pass takes: the rest
	// wait in storage for a later pass.
	maxListedEvents = 1000
	// maxDeliveries bounds the deliveries under way at once.
	maxDeliveries = 8
	// leaseMargin is added to a receiver's timeout for the lease of a
	// delivery, so that no other instance posts the event meanwhile.
	leaseMargin = 5 * time.Second
	// firstRetry is the wait after a first failed delivery; each next
	// wait doubles, up to maxRetryWait.
	firstRetry   = 10 * time.Second
	maxRetryWait = time.Hour
	// retryFor is how long a failed delivery is retried, from its event's
	// creation or its redelivery: the first failure after it makes the
	// delivery failed.
	retryFor = 24 * time.Hour
	// maxReplyRead caps what is read of a receiver's reply (to let its
	// connection be reused); maxLastError caps the error kept.
	maxReplyRead = 4 << 10
	maxLastError = 200
)

// notifyUserAgent is the User-Agent of deliveries.
const notifyUserAgent = "caddy-kassa-notify/1"

// deliverer posts the events in the outbox to their receivers, one
// worker per app: started with the app, stopped with it. A pass looks at
// most at maxListedEvents events (the bodies stay in storage; only the
// outbox's ids and when each is next due are kept in memory) and makes at
// most maxDeliveries posts at once, so a receiver that is slow, down or
// answers garbage costs the checkout nothing and memory only a few dozen
// bytes per event waiting.
type deliverer struct {
	app    *App
	client *http.Client
	wakeup chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	slots  chan struct{}
	wg     sync.WaitGroup

	mu sync.Mutex
	// busy are the events being delivered by this worker.
	busy map[string]bool
	// notBefore is when each event in the outbox is next worth a look (its
	// earliest next delivery or lease end), so that a pass reads only
	// the files of due events.
	notBefore map[string]time.Time
	// cursor is the last id the previous pass looked at (see window).
	cursor string
}

func newDeliverer(app *App) *deliverer {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	return &deliverer{
		app: app,
		client: &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
		wakeup:    make(chan struct{}, 1),
		slots:     make(chan struct{}, maxDeliveries),
		busy:      make(map[string]bool),
		notBefore: make(map[string]time.Time),
	}
}

// start runs the deliverer until stop; its first pass resumes whatever the
// outbox holds.
func (d *deliverer) start() {
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.done = cancel, make(chan struct{})
	go d.run(ctx)
}

// stop ends the deliverer: deliveries under way end with its context,
// their leases expire, and the next config's deliverer resumes them.
func (d *deliverer) stop() {
	if d.cancel == nil {
		return
	}
	d.cancel()
	<-d.done
	d.wg.Wait()
	d.client.CloseIdleConnections()
}

// wake asks for a pass now. It never blocks.
func (d *deliverer) wake() {
	select {
	case d.wakeup <- struct{}{}:
	default:
	}
}

func (d *deliverer) run(ctx context.Context) {
	defer close(d.done)
	if len(d.app.Notify) == 0 {
		return
	}
	ticker := time.NewTicker(deliverEvery)
	defer ticker.Stop()
	for {
		d.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-d.wakeup:
		}
	}
}

// pass starts the delivery of each due event in the outbox, at most
// maxDeliveries at once; it returns once the last is started.
func (d *deliverer) pass(ctx context.Context) {
	a := d.app
	keys, err := a.storage.List(ctx, outboxPrefix, false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		if ctx.Err() == nil {
			a.logger.Error("notify: listing the outbox", zap.Error(err))
		}
		return
	}
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		if id := path.Base(k); eventOrderID(id) != "" {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	d.mu.Lock()
	for id := range d.notBefore {
		if _, ok := slices.BinarySearch(ids, id); !ok {
			delete(d.notBefore, id)
		}
	}
	ids = d.window(ids)
	d.mu.Unlock()
	for _, id := range ids {
		d.mu.Lock()
		skip := d.busy[id] || a.now().Before(d.notBefore[id])
		if !skip {
			d.busy[id] = true
		}
		d.mu.Unlock()
		if skip {
			continue
		}
		select {
		case d.slots <- struct{}{}:
		case <-ctx.Done():
			d.release(id, time.Time{})
			return
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			defer func() { <-d.slots }()
			d.release(id, d.deliver(ctx, id))
		}()
	}
}

// window is the part of the outbox's sorted ids a pass looks at: at most
// maxListedEvents, after where the last pass stopped and round again, so
// that events waiting long (a receiver down for a day) never keep newer
// ones from being looked at. d.mu is held.
func (d *deliverer) window(ids []string) []string {
	if len(ids) <= maxListedEvents {
		d.cursor = ""
		return ids
	}
	start, _ := slices.BinarySearch(ids, d.cursor)
	if start < len(ids) && ids[start] == d.cursor {
		start++
	}
	w := append(slices.Clone(ids[start:min(len(ids), start+maxListedEvents)]), ids[:max(0, start+maxListedEvents-len(ids))]...)
	d.cursor = w[len(w)-1]
	return w
}

// release marks event id no longer under way, worth a look at next.
func (d *deliverer) release(id string, next time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.busy, id)
	d.notBefore[id] = next
}

// forget makes event id due at the next pass, as after a redelivery.
func (d *deliverer) forget(id string) {
	d.mu.Lock()
	delete(d.notBefore, id)
	d.mu.Unlock()
	d.wake()
}

// attempt is one post of an event to a receiver, taken under its lease.
type attempt struct {
	target *Notify
	status int
	err    error
}

// deliver posts event id to each receiver due, and records the outcomes;
// it returns when the event is next worth a look. The event's storage
// lock is held only to take the leases and to record the outcomes, never
// during a post.
func (d *deliverer) deliver(ctx context.Context, id string) (next time.Time) {
	a := d.app
	var f *eventFile
	var attempts []*attempt
	err := a.withStorageLock(ctx, "kassa/event/"+id, func() error {
		var err error
		if f, err = a.loadEvent(ctx, id); err != nil {
			return err
		}
		now, changed := a.now(), false
		var lease time.Duration
		for _, t := range f.Targets {
			if t.State != deliveryPending || now.Before(t.NextAt) || now.Before(t.LeaseUntil) {
				continue
			}
			n := a.notifyTarget(t.URL)
			if n == nil {
				// Its receiver left the config: nobody will post it, so
				// it must not wait in the outbox; redeliver revives it.
				t.State, t.LastError, changed = deliveryFailed, "the receiver is no longer configured", true
				metrics.eventsFailed.Inc()
				continue
			}
			attempts = append(attempts, &attempt{target: n})
			lease += time.Duration(n.Timeout)
		}
		// The posts are made one after another: each lease covers them all.
		for _, at := range attempts {
			i := slices.IndexFunc(f.Targets, func(t *delivery) bool { return t.URL == at.target.URL })
			f.Targets[i].LeaseUntil = now.Add(lease + leaseMargin)
			changed = true
		}
		if !changed {
			return nil
		}
		return a.storeEvent(ctx, f)
	})
	if errors.Is(err, fs.ErrNotExist) {
		// Its outbox entry outlived it (deleted by hand): drop the entry.
		d.dropOutbox(ctx, id)
		return time.Time{}
	}
	if err != nil {
		if ctx.Err() == nil {
			a.logger.Error("notify: taking a delivery", zap.String("event_id", id), zap.Error(err))
		}
		return a.now().Add(deliverEvery * 10)
	}
	if len(attempts) == 0 {
		return d.settle(ctx, f)
	}
	for _, at := range attempts {
		at.status, at.err = d.post(ctx, at.target, f)
	}
	if ctx.Err() != nil {
		return time.Time{} // stopped: the leases expire and the next worker resumes
	}
	err = a.withStorageLock(ctx, "kassa/event/"+id, func() error {
		var err error
		if f, err = a.loadEvent(ctx, id); err != nil {
			return err
		}
		for _, at := range attempts {
			d.record(f, at)
		}
		return a.storeEvent(ctx, f)
	})
	if err != nil {
		a.logger.Error("notify: recording a delivery", zap.String("event_id", id), zap.Error(err))
		return a.now().Add(deliverEvery * 10)
	}
	return d.settle(ctx, f)
}

// record writes the outcome of an attempt into the event's file.
func (d *deliverer) record(f *eventFile, at *attempt) {
	a := d.app
	i := slices.IndexFunc(f.Targets, func(t *delivery) bool { return t.URL == at.target.URL })
	if i < 0 || f.Targets[i].State != deliveryPending {
		return // redelivered or settled meanwhile by an operator
	}
	t, now := f.Targets[i], a.now()
	t.Attempts++
	t.LeaseUntil = time.Time{}
	t.LastStatus = at.status
	fields := []zap.Field{zap.String("event_id", f.ID), zap.String("type", string(f.Type)), zap.String("url", safeURL(t.URL)), zap.Int("attempt", t.Attempts)}
	if at.err == nil && at.status >= 200 && at.status < 300 {
		t.State, t.DeliveredAt, t.LastError = deliveryDelivered, now, ""
		metrics.eventsDelivered.Inc()
		metrics.eventLatency.Observe(now.Sub(f.CreatedAt).Seconds())
		a.logger.Debug("notify: event delivered", fields...)
		return
	}
	t.LastError = "status " + strconv.Itoa(at.status)
	if at.err != nil {
		t.LastError = capString(at.err.Error(), maxLastError)
	}
	fields = append(fields, zap.String("error", t.LastError))
	if now.Sub(t.Since) >= retryFor {
		t.State = deliveryFailed
		metrics.eventsFailed.Inc()
		a.logger.Error("notify: event not delivered; giving up", fields...)
		return
	}
	t.NextAt = now.Add(retryWait(t.Attempts))
	metrics.eventsRetried.Inc()
	a.logger.Warn("notify: event not delivered; will retry", append(fields, zap.Time("next_at", t.NextAt))...)
}

// retryWait is the wait after the nth failed delivery: 10s, doubling,
// at most an hour.
func retryWait(n int) time.Duration {
	if n > 20 {
		return maxRetryWait
	}
	return min(firstRetry<<(n-1), maxRetryWait)
}

// settle drops the outbox entry of an event every receiver got or gave
// up on, and returns when a pending delivery is next due, or in a minute.
func (d *deliverer) settle(ctx context.Context, f *eventFile) time.Time {
	next := d.app.now().Add(time.Minute)
	for _, t := range f.Targets {
		if t.State != deliveryPending || d.app.notifyTarget(t.URL) == nil {
			continue
		}
		due := t.NextAt
		if t.LeaseUntil.After(due) {
			due = t.LeaseUntil
		}
		if due.Before(next) {
			next = due
		}
	}
	if f.state() == deliveryFailed {
		if err := d.app.orders.storeKey(ctx, undeliveredKey(f.ID), []byte(f.ID)); err != nil {
			d.app.logger.Error("notify: indexing an undelivered event", zap.String("event_id", f.ID), zap.Error(err))
			return next // the outbox entry stays, and the next look indexes it
		}
	}
	if f.state() != deliveryPending {
		d.dropOutbox(ctx, f.ID)
	}
	return next
}

func (d *deliverer) dropOutbox(ctx context.Context, id string) {
	if err := d.app.orders.deleteKey(ctx, outboxKey(id)); err != nil {
		d.app.logger.Error("notify: dropping an outbox entry", zap.String("event_id", id), zap.Error(err))
	}
}

// post sends an event's body to a receiver, signed, and returns the
// reply's status. The reply's body is read no further than a small cap.
func (d *deliverer) post(ctx context.Context, n *Notify, f *eventFile) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(n.Timeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.URL, bytes.NewReader(f.Body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", notifyUserAgent)
	req.Header.Set("Kassa-Event-Id", f.ID)
	req.Header.Set("Kassa-Signature", signature(n.secret, d.app.now(), f.Body))
	resp, err := d.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // without the URL, which the record names already
		}
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxReplyRead))
	return resp.StatusCode, nil
}

// signature is the Kassa-Signature of body posted at t: Stripe's scheme,
// t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>.
func signature(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// capString cuts s to at most n bytes, and to valid UTF-8.
func capString(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "")
}
