package kassa

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"time"

	"go.uber.org/zap"
)

// leaseKey is the storage key of the reconciler's lease: which of the
// instances sharing a storage (or of the configs of one, during a reload)
// runs the passes.
const leaseKey = "kassa/reconciler-lease"

// minLeaseTerm is the shortest lease term, whatever the poll interval:
// a holder's renewal may wait a second or two for a storage lock (the file
// storage polls each second), and must not lose it the lease.
const minLeaseTerm = 5 * time.Second

// leaseTerm is how long a standby waits, seeing the lease not renewed,
// before it takes it over: three poll intervals, at least minLeaseTerm.
func leaseTerm(poll time.Duration) time.Duration {
	return max(3*poll, minLeaseTerm)
}

// leaseRecord is the lease as stored: its holder, and how often it was
// taken or renewed. A standby watches the count change; it never compares
// times written by another server, so the servers' clocks need not agree.
//
// Since and PassedAt are for the operator's morning check (check.go):
// when the holder took the lease, and when it last completed a pass, by
// the holder's clock.
type leaseRecord struct {
	Holder   string    `json:"holder"`
	Renewals uint64    `json:"renewals"`
	Since    time.Time `json:"since,omitzero"`
	PassedAt time.Time `json:"passed_at,omitzero"`
}

// same reports whether two reads of the lease saw the same renewal.
func (r leaseRecord) same(o leaseRecord) bool {
	return r.Holder == o.Holder && r.Renewals == o.Renewals
}

// lease is one app's side of the reconciler's lease. The holder renews it
// every poll interval; the others are standbys: they make no passes and
// take the lease over once they have seen it unchanged for the term, by
// their own clock. Two holders for a moment (a lost storage lock, a holder
// stalled past the term) are safe: every change to an order is made under
// the order's locks on the order as stored (lifecycle.go). Only the
// reconciler's goroutine (or a test driving it) uses a lease.
type lease struct {
	app  *App
	id   string
	term time.Duration

	leading bool
	seen    leaseRecord // the record as last read
	seenAt  time.Time   // when it was first read as it is, by this clock
}

func newLease(app *App, poll time.Duration) *lease {
	return &lease{app: app, id: processHolder, term: leaseTerm(poll)}
}

// processHolder names this process as a lease holder. The configs of one
// process share it, so that a reload's new config renews the lease the old
// one held at its first tick (both lead for a moment, which is safe), and
// a restarted process, named anew, waits out the term of its predecessor.
var processHolder = holderID()

// holderID is a new holder name: the host, and a random part that tells
// apart the processes.
func holderID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	host, _ := os.Hostname()
	return host + "-" + hex.EncodeToString(b[:])
}

// hold renews the lease if this app holds it, or watches it and takes it
// over when it is free or dead; it reports whether this app leads now.
func (l *lease) hold(ctx context.Context) bool {
	now := l.app.now()
	if !l.leading {
		rec, err := l.read(ctx)
		if err != nil {
			l.app.logger.Error("reconciler: reading the lease", zap.Error(err))
			return false
		}
		if !rec.same(l.seen) || l.seenAt.IsZero() {
			l.seen, l.seenAt = rec, now
		}
		if rec.Holder != "" && rec.Holder != l.id && now.Sub(l.seenAt) < l.term {
			return false // another instance leads
		}
	}
	l.leading = l.renew(ctx)
	return l.leading
}

// renew writes the lease as this app's under the reconciler's storage
// lock, held for a read and a write: when this app holds it, or when it
// is still as seen (free, or dead). It reports whether this app holds it.
func (l *lease) renew(ctx context.Context) bool {
	held := false
	err := l.app.withStorageLock(ctx, reconcilerLock, func() error {
		rec, err := l.read(ctx)
		if err != nil {
			return err
		}
		if rec.Holder != l.id && !rec.same(l.seen) && rec.Holder != "" {
			// Another took it meanwhile, or took it from us.
			if l.leading {
				l.app.logger.Warn("reconciler: another instance took the lease over; standing by", zap.String("holder", rec.Holder))
			}
			l.seen, l.seenAt = rec, l.app.now()
			return nil
		}
		next := leaseRecord{Holder: l.id, Renewals: rec.Renewals + 1, Since: l.app.now().UTC(), PassedAt: l.passedAt()}
		if rec.Holder == l.id {
			next.Since = rec.Since
			if next.PassedAt.IsZero() {
				next.PassedAt = rec.PassedAt // this process's previous config passed last
			}
		}
		if err := l.write(ctx, next); err != nil {
			return err
		}
		if rec.Holder != l.id {
			l.app.logger.Info("reconciler: lease taken; this instance makes the passes",
				zap.String("holder", l.id), zap.String("previous", rec.Holder))
		}
		l.seen, l.seenAt, held = next, l.app.now(), true
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			l.app.logger.Error("reconciler: renewing the lease", zap.Error(err))
		}
		return false
	}
	return held
}

// release frees the lease if this app holds it and renewed it last (not
// the next config of this process), so that a standby takes it over at its
// next tick rather than after the term.
func (l *lease) release(ctx context.Context) {
	if !l.leading {
		return
	}
	l.leading = false
	err := l.app.withStorageLock(ctx, reconcilerLock, func() error {
		rec, err := l.read(ctx)
		if err != nil || !rec.same(l.seen) {
			return err
		}
		return l.write(ctx, leaseRecord{Renewals: rec.Renewals + 1})
	})
	if err != nil {
		l.app.logger.Error("reconciler: releasing the lease", zap.Error(err))
	}
}

// passedAt is when this app's reconciler last completed a pass, in UTC;
// zero before its first.
func (l *lease) passedAt() time.Time {
	if r := l.app.reconciler; r != nil {
		if ns := r.passedAt.Load(); ns != 0 {
			return time.Unix(0, ns).UTC()
		}
	}
	return time.Time{}
}

// read loads the lease; a missing or unreadable one is free.
func (l *lease) read(ctx context.Context) (leaseRecord, error) {
	var rec leaseRecord
	b, err := l.app.storage.Load(ctx, leaseKey)
	if errors.Is(err, fs.ErrNotExist) {
		return rec, nil
	}
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &storedLease{leaseRecord: &rec}); err != nil {
		l.app.logger.Warn("reconciler: the stored lease does not decode; taking it as free", zap.Error(err))
		return leaseRecord{}, nil
	}
	return rec, nil
}

// write stores the lease, with "v" (records.go).
func (l *lease) write(ctx context.Context, rec leaseRecord) error {
	b, err := json.Marshal(storedLease{V: recordVersion, leaseRecord: &rec})
	if err != nil {
		return err
	}
	return l.app.storage.Store(ctx, leaseKey, b)
}
