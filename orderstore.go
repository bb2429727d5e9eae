package kassa

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// The storage keys the order store owns.
const (
	ordersPrefix      = "kassa/orders"
	openPrefix        = "kassa/open"
	unpaidPrefix      = "kassa/unpaid"
	idempotencyPrefix = "kassa/idempotency"
)

func orderKey(id string) string  { return ordersPrefix + "/" + id + ".json" }
func openKey(id string) string   { return openPrefix + "/" + id }
func unpaidKey(id string) string { return unpaidPrefix + "/" + id }

func idempotencyStorageKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return idempotencyPrefix + "/" + hex.EncodeToString(sum[:])
}

// The order store's errors.
var (
	// ErrOrderNotFound: no order has this id (or the id is malformed). It
	// also matches fs.ErrNotExist.
	ErrOrderNotFound error = orderStoreError{"order not found", fs.ErrNotExist}
	// ErrOrderExists: Create was given an id that already has a record.
	ErrOrderExists error = orderStoreError{"order already exists", fs.ErrExist}
	// ErrIdempotencyKeyUsed: Create was given an idempotency key that
	// already maps to another order which has a record. The caller should
	// answer with that order (ByIdempotencyKey) instead of a new one.
	ErrIdempotencyKeyUsed error = orderStoreError{"idempotency key already used by another order", fs.ErrExist}
)

// storageFailure is an error of the storage itself (a disk, Redis...),
// which is also ErrStorage.
type storageFailure struct{ err error }

func (f storageFailure) Error() string   { return f.err.Error() }
func (f storageFailure) Unwrap() []error { return []error{ErrStorage, f.err} }

// orderStoreError is a sentinel that also matches a standard fs error.
type orderStoreError struct {
	msg  string
	like error
}

func (e orderStoreError) Error() string        { return e.msg }
func (e orderStoreError) Is(target error) bool { return target == e.like }

// OrderStore keeps orders in Caddy storage (ctx.Storage(): the file system,
// or a shared storage such as Redis in a cluster) under the kassa/ prefix:
//
//	kassa/orders/<id>.json          the order record (the Order as JSON)
//	kassa/open/<id>                 index of open orders (creating, pending)
//	kassa/unpaid/<id>               index of orders closed unpaid, for Compact
//	kassa/idempotency/<sha256 hex>  an idempotency scope -> the order id
//	kassa/created/<YYYY/MM/DD/HH>/<time>_<id>  index of every order by
//	                                creation time (orderindex.go)
//
// An order being created has no kassa/orders record yet: its open-index
// entry holds its record, so that a checkout makes three fresh durable
// writes (the time-index entry and the open entry before the provider is
// asked, the record once it answered) and overwrites nothing. Every other
// entry holds the order id.
//
// The store holds no cache and no other state, so several Caddy instances
// sharing one storage see the same orders. Its reads and writes take no
// storage lock (locks are slow, and no checkout or status poll waits for
// one); lockOrder gives the lifecycle (lifecycle.go) an order's locks for a
// change, and Compact takes them to delete. The storage offers no
// compare-and-swap, so two writers of one order race with last-write-wins:
// the locks keep them apart as long as the storage keeps its locks.
type OrderStore struct {
	storage certmagic.Storage
	logger  *zap.Logger
	// locks serialise the changes of one order within this process (the
	// App's processLocks).
	locks *keyLocks
	// recorded, when set, writes what a change's new events need (the
	// App's writeEvents) right after the record that names them and before
	// the indexes are settled, so that a crash between leaves the order in
	// an index the reconciler visits.
	recorded func(ctx context.Context, o *Order, events []EventRef) error
	// Now is the clock the store stamps CreatedAt and UpdatedAt with, and
	// ages unpaid orders by in Compact; tests swap it.
	Now func() time.Time
}

// NewOrderStore returns a store over storage, using the wall clock.
func NewOrderStore(storage certmagic.Storage) *OrderStore {
	return &OrderStore{storage: storage, logger: zap.NewNop(), locks: &sharedLocks.orders, Now: time.Now}
}

func (s *OrderStore) now() time.Time {
	if s.Now == nil {
		return time.Now().UTC()
	}
	return s.Now().UTC() // UTC also strips the monotonic reading, so records round-trip
}

// checkOrder refuses an order the store must not write.
func checkOrder(o *Order) error {
	if !ValidOrderID(o.ID) {
		return invalid("id", "malformed order id")
	}
	if !o.State.Valid() {
		return invalid("state", "unknown order state %q", o.State)
	}
	return nil
}

// Create writes a new order so that a crash at any point leaves either
// nothing the reconciler must act on, or a state it can finish: first the
// idempotency mapping (when o.IdempotencyKey is set), then the time-index
// entry, then the open-index entry (when the order is open), then the
// record. A crash after the time-index entry leaves an entry whose record
// is missing, which readers of the index skip. An order in creating
// is written in one step: its record is its open-index entry, until
// SaveCreated or Save writes it under kassa/orders. A crash after the
// mapping leaves a mapping to a missing record, which a retry with the same
// key replaces; a crash after the index entry of an order in another open
// state leaves an entry whose record is missing, which OpenIDs reports and
// the reconciler removes.
//
// An empty o.ID is filled with NewOrderID; a zero CreatedAt is set to now,
// and UpdatedAt always is. Create refuses an id that already has a record
// (ErrOrderExists) and an idempotency key already mapped to another
// existing order (ErrIdempotencyKeyUsed). These checks are reads before
// writes, not atomic: two concurrent Creates with one key can both succeed,
// the mapping then naming the later one.
//
// o.IdempotencyKey is hashed as given: callers build the scope they need
// (the Idempotency-Key header prefixed with the account, "shop:" + the
// upstream order id, ...).
func (s *OrderStore) Create(ctx context.Context, o *Order) error {
	if o.ID == "" {
		o.ID = NewOrderID()
	}
	if err := checkOrder(o); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	switch exists, err := s.exists(ctx, o.ID); {
	case err != nil:
		return err
	case exists:
		return fmt.Errorf("kassa: order %s: %w", o.ID, ErrOrderExists)
	}
	now := s.now()
	if o.CreatedAt.IsZero() {
		o.CreatedAt = now
	}
	o.UpdatedAt = now
	rec, err := encodeOrder(o)
	if err != nil {
		return err
	}

	if o.IdempotencyKey != "" {
		if err := s.claimIdempotencyKey(ctx, o.IdempotencyKey, o.ID); err != nil {
			return err
		}
	}
	if err := s.indexCreated(ctx, o); err != nil {
		return err
	}
	if o.State == OrderCreating {
		return s.storeKey(ctx, openKey(o.ID), rec)
	}
	if o.Open() {
		if err := s.storeKey(ctx, openKey(o.ID), []byte(o.ID)); err != nil {
			return err
		}
	}
	return s.storeKey(ctx, orderKey(o.ID), rec)
}

// exists reports whether order id has a record: under kassa/orders, or in
// its open-index entry while it is being created.
func (s *OrderStore) exists(ctx context.Context, id string) (bool, error) {
	_, err := s.storage.Stat(ctx, orderKey(id))
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("kassa: checking order %s: %w", id, storageFailure{err})
	}
	_, err = s.creatingRecord(ctx, id)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// claimIdempotencyKey maps key to id unless it already maps to another
// order that has a record.
func (s *OrderStore) claimIdempotencyKey(ctx context.Context, key, id string) error {
	prev, ok, err := s.ByIdempotencyKey(ctx, key)
	if err != nil {
		return err
	}
	if ok && prev != id {
		switch exists, err := s.exists(ctx, prev); {
		case err != nil:
			return err
		case exists:
			return fmt.Errorf("kassa: order %s: %w (order %s)", id, ErrIdempotencyKeyUsed, prev)
		}
		// The previous order's Create crashed before its record: take the key over.
	}
	return s.storeKey(ctx, idempotencyStorageKey(key), []byte(id))
}

// Save writes the order's time-index entry (and refund-index entry, if it
// has a refund), then its record, stamping
// o.UpdatedAt with the store's clock (every write carries a fresh
// UpdatedAt, so no caller can forget it), then makes its other indexes
// match it (reindex), so a crash in between leaves an entry the reconciler
// settles. It knows nothing of what the order was: the lifecycle's changes
// go through saveChange, which writes only what a change needs; Save is
// for a record written whole, such as one restored by hand or by a test.
func (s *OrderStore) Save(ctx context.Context, o *Order) error {
	if err := checkOrder(o); err != nil {
		return err
	}
	if err := s.indexCreated(ctx, o); err != nil {
		return err
	}
	if rec := o.Refund; rec != nil {
		// Its refund, in the month it ended (or now, under way), where
		// the readers of a period it ended in look.
		at := rec.DoneAt
		if at.IsZero() {
			at = s.now()
		}
		if err := s.indexRefund(ctx, o, at); err != nil {
			return err
		}
	}
	if err := s.storeRecord(ctx, o); err != nil {
		return err
	}
	return s.reindex(ctx, o)
}

// SaveCreated stores the record of an order that Create wrote in
// creating, as its checkout does once the provider answered (saveChange
// from creating): one write, under kassa/orders, while Create's index
// entry stands for it. From then on the record is read from kassa/orders.
func (s *OrderStore) SaveCreated(ctx context.Context, o *Order) error {
	prev := *o
	prev.State = OrderCreating
	return s.saveChange(ctx, &prev, o)
}

// storeRecord writes an order's record, stamping o.UpdatedAt.
func (s *OrderStore) storeRecord(ctx context.Context, o *Order) error {
	if err := checkOrder(o); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	o.UpdatedAt = s.now()
	rec, err := encodeOrder(o)
	if err != nil {
		return err
	}
	return s.storeKey(ctx, orderKey(o.ID), rec)
}

// saveChange stores o, which was prev before a change (update, in
// lifecycle.go), and keeps the indexes in step with as few writes as the
// change needs: when a refund attempt starts, its refund-index entry
// (refundindex.go); when the order opens again (a late payment's receipt,
// a refund), its open-index entry; then the record; when it closes
// unpaid, its unpaid-index entry; then the entries it no longer has are
// removed. A failure or crash between the writes leaves an order in an
// index it no longer belongs to (the reconciler settles it: settleIndexes),
// never one out of the index that would find it.
func (s *OrderStore) saveChange(ctx context.Context, prev, o *Order) error {
	if err := checkOrder(o); err != nil {
		return err
	}
	if refundStarted(prev, o) {
		if err := s.indexRefund(ctx, o, s.now()); err != nil {
			return err
		}
	}
	if o.Open() && !prev.Open() {
		if err := s.storeKey(ctx, openKey(o.ID), []byte(o.ID)); err != nil {
			return err
		}
	}
	if err := s.storeRecord(ctx, o); err != nil {
		return err
	}
	if err := s.afterRecord(ctx, prev, o); err != nil {
		return recordStored{err}
	}
	return nil
}

// afterRecord is what follows a change's record: its new events' files
// (recorded), then the indexes in step with the change.
func (s *OrderStore) afterRecord(ctx context.Context, prev, o *Order) error {
	if s.recorded != nil && len(o.Events) > len(prev.Events) {
		failpoint("event-recorded")
		if err := s.recorded(ctx, o, o.Events[len(prev.Events):]); err != nil {
			return err
		}
	}
	if o.State.closedUnpaid() && !prev.State.closedUnpaid() {
		if err := s.storeKey(ctx, unpaidKey(o.ID), []byte(o.ID)); err != nil {
			return err
		}
	}
	if !o.Open() && prev.Open() {
		if err := s.CloseIndex(ctx, o.ID); err != nil {
			return err
		}
	}
	if !o.State.closedUnpaid() && prev.State.closedUnpaid() {
		// Compact may have deleted the order meanwhile (its storage lock
		// lost), time-index entry and all: this record brings it back,
		// and its entry, written after it, with it.
		if err := s.indexCreated(ctx, o); err != nil {
			return err
		}
		return s.deleteKey(ctx, unpaidKey(o.ID))
	}
	return nil
}

// recordStored is a saveChange error after the change's record was
// written: the change happened (and is announced), though what follows it
// (its events' files, the indexes) waits for the reconciler, which finds
// the order in the index it has not left yet.
type recordStored struct{ err error }

func (e recordStored) Error() string { return e.err.Error() }
func (e recordStored) Unwrap() error { return e.err }

// lockOrder takes the locks of order id's changes: this process's, and,
// when shared, the storage lock kassa/order/<id>, which keeps instances
// sharing the storage from changing the order at once. It returns the
// function that releases them.
func (s *OrderStore) lockOrder(ctx context.Context, id string, shared bool) (unlock func(), err error) {
	unlockHere := s.locks.lock(id)
	if !shared {
		return unlockHere, nil
	}
	name := "kassa/order/" + id
	if err := lockStorage(ctx, s.storage, name); err != nil {
		unlockHere()
		return nil, err
	}
	return func() {
		if err := s.storage.Unlock(context.WithoutCancel(ctx), name); err != nil {
			// The change ran, perhaps without the lock (a storage that
			// lost it): say so, since nothing else will.
			s.logger.Error("releasing an order's storage lock", zap.String("lock", name), zap.Error(err))
		}
		unlockHere()
	}, nil
}

// lockWait bounds how long a request waits for a storage lock that
// another instance holds: a lock that is never released (a storage that
// keeps a dead holder's lock) must not hang the shop's requests.
const lockWait = 30 * time.Second

// lockStorage takes the storage lock name, waiting at most lockWait.
func lockStorage(ctx context.Context, storage certmagic.Storage, name string) error {
	ctx, cancel := context.WithTimeout(ctx, lockWait)
	defer cancel()
	if err := storage.Lock(ctx, name); err != nil {
		return fmt.Errorf("kassa: taking storage lock %s: %w", name, storageFailure{err})
	}
	return nil
}

// settleIndexes makes the indexes of order id match its record, under the
// order's locks and as the record stands now, where a failure or crash
// between saveChange's writes left them behind.
func (s *OrderStore) settleIndexes(ctx context.Context, id string) error {
	unlock, err := s.lockOrder(ctx, id, true)
	if err != nil {
		return err
	}
	defer unlock()
	o, err := s.Load(ctx, id)
	if err != nil {
		return err
	}
	return s.reindex(ctx, o)
}

// reindex makes the indexes of an order match its record: an open order
// is in the open index, an order closed unpaid in the unpaid index, and a
// closed paid order in neither. The caller holds the order's lock.
func (s *OrderStore) reindex(ctx context.Context, o *Order) error {
	switch {
	case o.State == OrderCreating:
		return nil // its open-index entry holds its record
	case o.Open():
		if err := s.storeKey(ctx, openKey(o.ID), []byte(o.ID)); err != nil {
			return err
		}
		return s.deleteKey(ctx, unpaidKey(o.ID))
	case o.State.closedUnpaid():
		// An entry that is there keeps its time: Compact ages orders by it.
		if _, err := s.storage.Stat(ctx, unpaidKey(o.ID)); errors.Is(err, fs.ErrNotExist) {
			if err := s.storeKey(ctx, unpaidKey(o.ID), []byte(o.ID)); err != nil {
				return err
			}
		} else if err != nil {
			return fmt.Errorf("kassa: unpaid index entry of order %s: %w", o.ID, storageFailure{err})
		}
		return s.CloseIndex(ctx, o.ID)
	}
	if err := s.deleteKey(ctx, unpaidKey(o.ID)); err != nil {
		return err
	}
	return s.CloseIndex(ctx, o.ID)
}

// deleteKey deletes one key, naming it in the error; a missing key is no
// error.
func (s *OrderStore) deleteKey(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.storage.Delete(ctx, key); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("kassa: deleting %s: %w", key, storageFailure{err})
	}
	return nil
}

// Load reads one order. An unknown or malformed id is ErrOrderNotFound
// (which also matches fs.ErrNotExist); a record that does not decode is an
// error naming its key.
func (s *OrderStore) Load(ctx context.Context, id string) (*Order, error) {
	rec, err := s.loadRecord(ctx, id)
	if err != nil {
		return nil, err
	}
	return decodeRecord(id, rec)
}

// loadRecord reads the record of order id as stored, for Load and for
// callers that decode it only when it changed: the one under kassa/orders,
// or else the one in the open-index entry of an order being created. An
// unknown or malformed id is ErrOrderNotFound.
func (s *OrderStore) loadRecord(ctx context.Context, id string) ([]byte, error) {
	if !ValidOrderID(id) {
		return nil, ErrOrderNotFound
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rec, err := s.orderRecord(ctx, id)
	if !errors.Is(err, fs.ErrNotExist) {
		return rec, err
	}
	rec, err = s.creatingRecord(ctx, id)
	if !errors.Is(err, fs.ErrNotExist) {
		return rec, err
	}
	// The record may have been written, and the entry removed, between the
	// two reads: read the record once more before calling the order unknown.
	rec, err = s.orderRecord(ctx, id)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("kassa: order %s: %w", id, ErrOrderNotFound)
	}
	return rec, err
}

// orderRecord reads the kassa/orders record of order id; a missing one is
// fs.ErrNotExist.
func (s *OrderStore) orderRecord(ctx context.Context, id string) ([]byte, error) {
	key := orderKey(id)
	rec, err := s.storage.Load(ctx, key)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("kassa: loading %s: %w", key, storageFailure{err})
	}
	return rec, err
}

// creatingRecord reads the record that the open-index entry of order id
// holds while the order is being created. An entry that holds an id (or
// nothing), or no entry, is fs.ErrNotExist.
func (s *OrderStore) creatingRecord(ctx context.Context, id string) ([]byte, error) {
	key := openKey(id)
	rec, err := s.storage.Load(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("kassa: loading %s: %w", key, storageFailure{err})
	}
	if len(rec) == 0 || rec[0] != '{' {
		return nil, fs.ErrNotExist
	}
	return rec, nil
}

// recordKeys names where the record of order id is, for an error about it.
func recordKeys(id string) string {
	return orderKey(id) + " (or " + openKey(id) + ", while the order is being created)"
}

// decodeRecord decodes the record loaded for order id, and checks that it
// holds that order.
func decodeRecord(id string, rec []byte) (*Order, error) {
	o, err := decodeOrder(rec)
	if err != nil {
		return nil, fmt.Errorf("kassa: decoding %s: %w", recordKeys(id), err)
	}
	if o.ID != id {
		if strings.EqualFold(o.ID, id) {
			// A case-insensitive file system found another id's record.
			return nil, fmt.Errorf("kassa: order %s: %w", id, ErrOrderNotFound)
		}
		return nil, fmt.Errorf("kassa: decoding %s: record holds order %q", recordKeys(id), o.ID)
	}
	return o, nil
}

// OpenIDs lists the ids in the open index, sorted. It lists only the index,
// never kassa/orders, so its cost grows with open work, not with history.
// An id may point at a record that is already closed (a crash inside Save)
// or missing (a crash inside Create, or a Create still in flight): callers
// Load each id and skip those.
func (s *OrderStore) OpenIDs(ctx context.Context) ([]string, error) {
	return s.listIDs(ctx, openPrefix)
}

// UnpaidIDs lists the ids in the unpaid index (orders that closed unpaid
// and are not compacted yet), sorted. An id may point at an order paid
// since (a crash inside saveChange) or already deleted.
func (s *OrderStore) UnpaidIDs(ctx context.Context) ([]string, error) {
	return s.listIDs(ctx, unpaidPrefix)
}

// listIDs lists the order ids of an index, sorted.
func (s *OrderStore) listIDs(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	names, err := s.listNames(ctx, prefix)
	// Anything that is not an id (a backend's temporary file) is not an
	// entry.
	return slices.DeleteFunc(names, func(name string) bool { return !ValidOrderID(name) }), err
}

// OpenSince returns when id's open-index entry was last written, so that
// the reconciler can leave alone an entry whose record is missing because
// its Create is still in flight. A missing entry is fs.ErrNotExist.
func (s *OrderStore) OpenSince(ctx context.Context, id string) (time.Time, error) {
	if !ValidOrderID(id) {
		return time.Time{}, fs.ErrNotExist
	}
	info, err := s.storage.Stat(ctx, openKey(id))
	if err != nil {
		return time.Time{}, err
	}
	return info.Modified, nil
}

// CloseIndex removes id from the open index: for a stale entry whose record
// is closed, or missing for longer than any Create takes (see OpenSince).
// Removing an entry that is not there is not an error.
func (s *OrderStore) CloseIndex(ctx context.Context, id string) error {
	if !ValidOrderID(id) {
		return nil // such an entry cannot exist
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.storage.Delete(ctx, openKey(id)); err != nil {
		return fmt.Errorf("kassa: closing index entry of order %s: %w", id, storageFailure{err})
	}
	return nil
}

// Compact deletes the orders that closed unpaid (expired, cancelled or
// failed) at least keep ago: for each, its idempotency mapping (while it
// still names the order), its record and then its unpaid-index entry, so a
// crash in between leaves an entry the next Compact finishes. Paid orders
// are never deleted. lastLook, when not nil, is asked first about each
// order and keeps the ones it says to keep (an order paid at the last
// moment). The deletion itself takes the order's lock and reads the order
// again, so an order that changed meanwhile is not deleted. It lists the
// unpaid index, never kassa/orders, and ages entries by when they were
// written, reading only the records it deletes; it returns how many orders
// it deleted.
func (s *OrderStore) Compact(ctx context.Context, keep time.Duration, lastLook func(context.Context, *Order) bool) (int, error) {
	ids, err := s.UnpaidIDs(ctx)
	if err != nil {
		return 0, err
	}
	deleted := 0
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return deleted, err
		}
		info, err := s.storage.Stat(ctx, unpaidKey(id))
		if errors.Is(err, fs.ErrNotExist) {
			continue // compacted meanwhile
		}
		if err != nil {
			return deleted, fmt.Errorf("kassa: unpaid index entry of order %s: %w", id, storageFailure{err})
		}
		if s.now().Sub(info.Modified) < keep {
			continue
		}
		o, err := s.Load(ctx, id)
		if err == nil && o.State.closedUnpaid() && lastLook != nil && lastLook(ctx, o) {
			continue
		}
		gone, err := s.compactOne(ctx, id)
		if err != nil {
			return deleted, err
		}
		if gone {
			deleted++
		}
	}
	return deleted, nil
}

// compactOne deletes order id, under its locks, if it is still closed
// unpaid and no money was reported for it, and then its unpaid-index
// entry; it reports whether it deleted the order. An order that is no
// longer closed unpaid only has its indexes settled. Should another
// instance record the order paid as it is deleted (its storage lock lost),
// the record it writes brings the order back, and its indexes are settled.
func (s *OrderStore) compactOne(ctx context.Context, id string) (bool, error) {
	unlock, err := s.lockOrder(ctx, id, true)
	if err != nil {
		return false, err
	}
	defer unlock()
	o, err := s.Load(ctx, id)
	switch {
	case errors.Is(err, ErrOrderNotFound):
		// Its record is gone already: only the entry is left.
		return false, s.deleteKey(ctx, unpaidKey(id))
	case errors.As(err, new(*RecordTooNewError)):
		// A newer release's record: left to it, and the others compacted.
		return false, nil
	case err != nil:
		return false, err
	case !o.State.closedUnpaid():
		// Paid since, or a record written over by hand: keep it.
		return false, s.reindex(ctx, o)
	case o.PaidAmount.Valid && o.PaidAmount.Decimal.IsPositive():
		// The provider reported money for it (less than the amount): an
		// operator settles it, and it is kept.
		return false, nil
	}
	if err := s.deleteOrder(ctx, o); err != nil {
		return false, err
	}
	if err := s.deleteKey(ctx, unpaidKey(id)); err != nil {
		return true, err
	}
	if back, err := s.Load(ctx, id); err == nil {
		if err := s.indexCreated(ctx, back); err != nil {
			return true, err
		}
		return true, s.reindex(ctx, back)
	}
	return true, nil
}

// deleteOrder deletes an order's idempotency mapping, if it still names
// the order, any open-index entry left of it (which may hold its record as
// it was being created, and must not outlive the record), its record, and
// then its time-index entry: a crash before the last leaves an entry
// whose record is missing, which readers skip, never a record the index
// misses. (Should the unpaid-index entry outlive the record too, the next
// Compact deletes it without knowing the order's creation time, and the
// time-index entry stays, skipped.)
func (s *OrderStore) deleteOrder(ctx context.Context, o *Order) error {
	if o.IdempotencyKey != "" {
		mapped, ok, err := s.ByIdempotencyKey(ctx, o.IdempotencyKey)
		if err != nil {
			return err
		}
		if key := idempotencyStorageKey(o.IdempotencyKey); ok && mapped == o.ID {
			if err := s.storage.Delete(ctx, key); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("kassa: deleting %s: %w", key, storageFailure{err})
			}
		}
	}
	if err := s.CloseIndex(ctx, o.ID); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	// Its events go with it: their bodies hold the buyer's contacts, which
	// are kept no longer than the order.
	for _, ref := range o.Events {
		if err := s.deleteKey(ctx, outboxKey(ref.ID)); err != nil {
			return err
		}
		if err := s.deleteKey(ctx, undeliveredKey(ref.ID)); err != nil {
			return err
		}
		if err := s.deleteKey(ctx, eventKey(ref.ID)); err != nil {
			return err
		}
	}
	if err := s.storage.Delete(ctx, orderKey(o.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("kassa: deleting %s: %w", orderKey(o.ID), storageFailure{err})
	}
	return s.deleteKey(ctx, createdKey(orderEntry(o)))
}

// ByIdempotencyKey returns the id of the order created under key (an
// Idempotency-Key or any scope string the caller builds); ok is false when
// there is none. The order itself may be missing if its Create crashed:
// Load then says ErrOrderNotFound and the caller may create afresh.
func (s *OrderStore) ByIdempotencyKey(ctx context.Context, key string) (id string, ok bool, err error) {
	if key == "" {
		return "", false, nil
	}
	if err := ctx.Err(); err != nil {
		return "", false, err
	}
	skey := idempotencyStorageKey(key)
	b, err := s.storage.Load(ctx, skey)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("kassa: loading %s: %w", skey, storageFailure{err})
	}
	id = strings.TrimSpace(string(b))
	if !ValidOrderID(id) {
		return "", false, fmt.Errorf("kassa: %s does not hold an order id", skey)
	}
	return id, true, nil
}

// storeKey writes one key, naming it in the error.
func (s *OrderStore) storeKey(ctx context.Context, key string, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.storage.Store(ctx, key, value); err != nil {
		return fmt.Errorf("kassa: storing %s: %w", key, storageFailure{err})
	}
	return nil
}

// encodeOrder is the record format: the Order as JSON, with "v" (the
// record version, records.go).
func encodeOrder(o *Order) ([]byte, error) {
	b, err := json.Marshal(storedOrder{V: recordVersion, Order: o})
	if err != nil {
		return nil, fmt.Errorf("kassa: encoding order %s: %w", o.ID, err)
	}
	return b, nil
}

// decodeOrder reads a record. Unknown fields are ignored, so that an older
// instance in a cluster reads what a newer one wrote in the same record
// version; a record of a newer version is a *RecordTooNewError.
func decodeOrder(b []byte) (*Order, error) {
	rec := storedOrder{Order: new(Order)}
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	if err := checkRecordVersion(rec.V); err != nil {
		return nil, err
	}
	return rec.Order, nil
}
