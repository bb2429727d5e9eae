package kassa

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/shopspring/decimal"
	"go.uber.org/zap"
)

// fileOrderStore returns a store over a fresh file-system storage, with a
// fixed clock that tests advance by hand.
func fileOrderStore(t testing.TB) (*OrderStore, *testClock) {
	t.Helper()
	clock := &testClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	s := NewOrderStore(&certmagic.FileStorage{Path: t.TempDir()})
	s.Now = clock.Now
	return s, clock
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fullOrder has every field of Order and OrderItem set to something that
// is not its zero value.
func fullOrder() *Order {
	at := time.Date(2025, 2, 28, 9, 30, 15, 123456789, time.FixedZone("MSK", 3*3600))
	return &Order{
		ID:       NewOrderID(),
		State:    OrderPending,
		Account:  "main",
		Provider: "crystalpay",
		Amount:   decimal.RequireFromString("700.50"),
		Items: []OrderItem{
			{SKU: "tea-green", Name: "Green tea 100 g", Qty: 2, Price: decimal.RequireFromString("350.25"), VAT: VAT20},
			{Name: "Чай «Улун»", Qty: 1, Price: decimal.RequireFromString("0.01"), VAT: VATNone},
		},
		Description:      "Tea",
		ShopOrderID:      "shop-42",
		DefaultVAT:       VAT22,
		Email:            "buyer@example.com",
		Phone:            "+79991234567",
		ContactsErasedAt: time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC),
		IdempotencyKey:   "key-1",
		Fingerprint:      "7f3a",
		ReturnURL:        "https://shop.example.com/thanks.html?order=1",
		Payment: Payment{
			ID:         "inv_123",
			URL:        "https://pay.example/inv_123",
			Wallet:     "79990000000",
			Card:       "2200 0000 0000 0000",
			Commission: decimal.RequireFromString("12.34"),
			Recovered:  true,
		},
		PaidAmount:    decimal.NewNullDecimal(decimal.RequireFromString("700.49")),
		CreatedAt:     at,
		UpdatedAt:     at.Add(time.Second),
		ExpiresAt:     at.Add(30 * time.Minute),
		PaidAt:        at.Add(time.Minute),
		ClosedAt:      at.Add(2 * time.Minute),
		PaidLate:      true,
		InvoiceClosed: true,
		Error:         "provider said no",
		Receipt: &OrderReceipt{OperationID: "kassa-x-sale", Type: ReceiptSale, State: ReceiptDone, Attempts: 2,
			Fiscal: &FiscalParams{DocumentNumber: 24, DocumentSign: "0637894524", DocumentTime: time.Date(2026, 11, 23, 14, 33, 11, 0, time.UTC),
				ReceiptNumber: 5, ShiftNumber: 3, FNNumber: "9999451122", RegistrationNumber: "00244", FNSURL: "www.nalog.ru", NotPrinted: true},
			SentAt: time.Date(2026, 11, 23, 14, 33, 0, 0, time.UTC), DoneAt: time.Date(2026, 11, 23, 14, 34, 0, 0, time.UTC)},
		Refund: &OrderReceipt{OperationID: "kassa-x-sale_return", Type: ReceiptSaleReturn, State: ReceiptFailed, Attempts: 1,
			Error: "Открыта крышка.", SentAt: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC), DoneAt: time.Date(2026, 11, 24, 9, 1, 0, 0, time.UTC),
			History: []ReceiptAttempt{{OperationID: "kassa-x-sale_return-0", Error: "Неверный токен", FailedAt: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)}}},
		Events: []EventRef{{ID: "x-1", Type: eventPaid, At: time.Date(2026, 11, 23, 14, 32, 0, 0, time.UTC)}},
	}
}

// sameOrder fails unless got and want are equal field by field: decimals
// by value, times by instant, everything else exactly. It walks the struct
// by reflection so that a field added to Order later is compared too.
func sameOrder(t *testing.T, got, want *Order) {
	t.Helper()
	var diffs []string
	compareValues("Order", reflect.ValueOf(*got), reflect.ValueOf(*want), &diffs)
	for _, d := range diffs {
		t.Error(d)
	}
}

var (
	decimalType     = reflect.TypeOf(decimal.Decimal{})
	nullDecimalType = reflect.TypeOf(decimal.NullDecimal{})
	timeType        = reflect.TypeOf(time.Time{})
)

func compareValues(name string, got, want reflect.Value, diffs *[]string) {
	switch got.Type() {
	case decimalType:
		g, w := got.Interface().(decimal.Decimal), want.Interface().(decimal.Decimal)
		if !g.Equal(w) {
			*diffs = append(*diffs, fmt.Sprintf("%s = %s, want %s", name, g, w))
		}
		return
	case nullDecimalType:
		g, w := got.Interface().(decimal.NullDecimal), want.Interface().(decimal.NullDecimal)
		if g.Valid != w.Valid || g.Valid && !g.Decimal.Equal(w.Decimal) {
			*diffs = append(*diffs, fmt.Sprintf("%s = %v, want %v", name, g, w))
		}
		return
	case timeType:
		g, w := got.Interface().(time.Time), want.Interface().(time.Time)
		if !g.Equal(w) {
			*diffs = append(*diffs, fmt.Sprintf("%s = %v, want %v", name, g, w))
		}
		return
	}
	switch got.Kind() {
	case reflect.Struct:
		for i := 0; i < got.NumField(); i++ {
			compareValues(name+"."+got.Type().Field(i).Name, got.Field(i), want.Field(i), diffs)
		}
	case reflect.Slice:
		if got.Len() != want.Len() {
			*diffs = append(*diffs, fmt.Sprintf("len(%s) = %d, want %d", name, got.Len(), want.Len()))
			return
		}
		for i := 0; i < got.Len(); i++ {
			compareValues(fmt.Sprintf("%s[%d]", name, i), got.Index(i), want.Index(i), diffs)
		}
	default:
		if !reflect.DeepEqual(got.Interface(), want.Interface()) {
			*diffs = append(*diffs, fmt.Sprintf("%s = %#v, want %#v", name, got.Interface(), want.Interface()))
		}
	}
}

// nonZeroFields fails for every field of v (recursively through structs and
// the first element of slices) left at its zero value, so the round-trip
// test cannot silently skip a field added later.
func nonZeroFields(t *testing.T, name string, v reflect.Value) {
	t.Helper()
	if v.IsZero() {
		t.Errorf("fullOrder leaves %s zero: set it so the round trip covers it", name)
		return
	}
	switch v.Type() {
	case decimalType, nullDecimalType, timeType:
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			nonZeroFields(t, name+"."+v.Type().Field(i).Name, v.Field(i))
		}
	case reflect.Slice:
		nonZeroFields(t, name+"[0]", v.Index(0))
	}
}

func TestOrderStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, clock := fileOrderStore(t)
	o := fullOrder()
	nonZeroFields(t, "Order", reflect.ValueOf(*o))
	created := o.CreatedAt

	if err := s.Create(ctx, o); err != nil {
		t.Fatal(err)
	}
	if !o.CreatedAt.Equal(created) {
		t.Errorf("Create changed a set CreatedAt to %v", o.CreatedAt)
	}
	if !o.UpdatedAt.Equal(clock.Now()) {
		t.Errorf("Create set UpdatedAt = %v, want the store's clock %v", o.UpdatedAt, clock.Now())
	}
	got, err := s.Load(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameOrder(t, got, o)
	if got.PaidAmount.Decimal.String() != "700.49" || got.Items[1].Price.String() != "0.01" {
		t.Errorf("decimals lost precision: %s, %s", got.PaidAmount.Decimal, got.Items[1].Price)
	}

	// A null PaidAmount, zero optional times and no items round-trip too.
	o2 := &Order{ID: NewOrderID(), State: OrderCreating, Account: "main", Amount: decimal.RequireFromString("1")}
	if err := s.Create(ctx, o2); err != nil {
		t.Fatal(err)
	}
	got2, err := s.Load(ctx, o2.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameOrder(t, got2, o2)
	if got2.PaidAmount.Valid || !got2.PaidAt.IsZero() || got2.Items != nil {
		t.Errorf("empty fields came back as %+v", got2)
	}
	if !o2.CreatedAt.Equal(clock.Now()) {
		t.Errorf("Create left a zero CreatedAt at %v, want the store's clock", o2.CreatedAt)
	}

	// Save stamps UpdatedAt and writes the changes.
	clock.Add(time.Minute)
	got.State = OrderPaid
	got.PaidAmount = decimal.NullDecimal{}
	if err := s.Save(ctx, got); err != nil {
		t.Fatal(err)
	}
	if !got.UpdatedAt.Equal(clock.Now()) {
		t.Errorf("Save set UpdatedAt = %v, want %v", got.UpdatedAt, clock.Now())
	}
	again, err := s.Load(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameOrder(t, again, got)
}

func TestOrderStoreCreateAssignsID(t *testing.T) {
	s, _ := fileOrderStore(t)
	o := &Order{State: OrderCreating}
	if err := s.Create(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if !ValidOrderID(o.ID) {
		t.Fatalf("Create assigned id %q", o.ID)
	}
	if _, err := s.Load(context.Background(), o.ID); err != nil {
		t.Fatal(err)
	}
}

func TestOrderStoreRefusesBadOrders(t *testing.T) {
	ctx := context.Background()
	s, _ := fileOrderStore(t)
	for _, o := range []*Order{
		{ID: "../../etc/passwd", State: OrderPending},
		{ID: NewOrderID(), State: "weird"},
		{ID: NewOrderID()},
	} {
		if err := s.Create(ctx, o); !errors.Is(err, ErrInvalid) {
			t.Errorf("Create(id %q, state %q) = %v, want ErrInvalid", o.ID, o.State, err)
		}
		if err := s.Save(ctx, o); !errors.Is(err, ErrInvalid) {
			t.Errorf("Save(id %q, state %q) = %v, want ErrInvalid", o.ID, o.State, err)
		}
	}
	if ids, _ := s.OpenIDs(ctx); len(ids) != 0 {
		t.Errorf("refused orders left index entries %v", ids)
	}
}

func TestOrderStoreCreateRefusesExistingID(t *testing.T) {
	ctx := context.Background()
	s, _ := fileOrderStore(t)
	o := fullOrder()
	if err := s.Create(ctx, o); err != nil {
		t.Fatal(err)
	}
	dup := &Order{ID: o.ID, State: OrderCreating, Amount: decimal.RequireFromString("1")}
	err := s.Create(ctx, dup)
	if !errors.Is(err, ErrOrderExists) || !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Create = %v, want ErrOrderExists", err)
	}
	got, err := s.Load(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Amount.Equal(o.Amount) {
		t.Errorf("refused Create overwrote the record: amount %s", got.Amount)
	}
}

func TestOrderStoreLoadUnknown(t *testing.T) {
	ctx := context.Background()
	s, _ := fileOrderStore(t)
	for _, id := range []string{NewOrderID(), "", "../orders/x", "not-an-id"} {
		_, err := s.Load(ctx, id)
		if !errors.Is(err, ErrOrderNotFound) || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load(%q) = %v, want ErrOrderNotFound and fs.ErrNotExist", id, err)
		}
	}
}

func TestOrderStoreLoadCorruptRecord(t *testing.T) {
	ctx := context.Background()
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	s := NewOrderStore(storage)
	id := NewOrderID()
	key := "kassa/orders/" + id + ".json"
	for _, rec := range []string{`{"id":`, `{"id":"` + NewOrderID() + `","state":"pending"}`, `{"amount":"x"}`} {
		if err := storage.Store(ctx, key, []byte(rec)); err != nil {
			t.Fatal(err)
		}
		_, err := s.Load(ctx, id)
		if err == nil || errors.Is(err, ErrOrderNotFound) || !strings.Contains(err.Error(), key) {
			t.Errorf("Load of record %s = %v, want an error naming %s", rec, err, key)
		}
	}
	// The record of an order being created, in its open-index entry.
	creating := NewOrderID()
	if err := storage.Store(ctx, openKey(creating), []byte(`{"id":`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, creating); err == nil || errors.Is(err, ErrOrderNotFound) || !strings.Contains(err.Error(), openKey(creating)) {
		t.Errorf("Load of a broken creating record = %v, want an error naming %s", err, openKey(creating))
	}
}

func TestOrderStoreOpenIndex(t *testing.T) {
	ctx := context.Background()
	s, _ := fileOrderStore(t)
	if ids, err := s.OpenIDs(ctx); err != nil || len(ids) != 0 {
		t.Fatalf("OpenIDs of an empty store = %v, %v", ids, err)
	}

	creating := &Order{ID: NewOrderID(), State: OrderCreating}
	pending := &Order{ID: NewOrderID(), State: OrderPending}
	failed := &Order{ID: NewOrderID(), State: OrderFailed}
	for _, o := range []*Order{creating, pending, failed} {
		if err := s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	wantIDs(t, s, creating.ID, pending.ID)

	for _, state := range []OrderState{OrderPaid, OrderExpired, OrderCancelled} {
		pending.State = state
		if err := s.Save(ctx, pending); err != nil {
			t.Fatal(err)
		}
		wantIDs(t, s, creating.ID)
		pending.State = OrderPending
		if err := s.Save(ctx, pending); err != nil {
			t.Fatal(err)
		}
		wantIDs(t, s, creating.ID, pending.ID)
	}
	creating.State = OrderFailed
	if err := s.Save(ctx, creating); err != nil {
		t.Fatal(err)
	}
	wantIDs(t, s, pending.ID)

	// CloseIndex drops an entry, and dropping a missing one is no error.
	if err := s.CloseIndex(ctx, pending.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseIndex(ctx, pending.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseIndex(ctx, "../orders"); err != nil {
		t.Fatal(err)
	}
	wantIDs(t, s)
	if _, err := s.Load(ctx, pending.ID); err != nil {
		t.Errorf("CloseIndex touched the record: %v", err)
	}
}

func wantIDs(t *testing.T, s *OrderStore, want ...string) {
	t.Helper()
	got, err := s.OpenIDs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("OpenIDs = %v, want %v", got, want)
	}
}

func TestOrderStoreOpenIDsSkipsForeignKeys(t *testing.T) {
	ctx := context.Background()
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	s := NewOrderStore(storage)
	o := &Order{ID: NewOrderID(), State: OrderPending}
	if err := s.Create(ctx, o); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"kassa/open/.tmp-123", "kassa/open/README", "kassa/open/sub/" + NewOrderID()} {
		if err := storage.Store(ctx, k, nil); err != nil {
			t.Fatal(err)
		}
	}
	wantIDs(t, s, o.ID)
}

// The storage used to simulate crashes: a map that fails its Nth write
// (Store or Delete) and every write after it, as a process that died there
// would, and that fails the test if anyone takes a lock.
type crashStorage struct {
	t       testing.TB
	now     func() time.Time
	mu      sync.Mutex
	keys    map[string]crashValue
	writes  int
	crashAt int // the write number that fails; 0: none
}

type crashValue struct {
	value    []byte
	modified time.Time
}

var errCrash = errors.New("simulated crash")

func newCrashStorage(t testing.TB, now func() time.Time) *crashStorage {
	return &crashStorage{t: t, now: now, keys: map[string]crashValue{}}
}

// newCrashStore is an order store on crash storage, both on clock.
func newCrashStore(t testing.TB, clock *testClock) (*crashStorage, *OrderStore) {
	m := newCrashStorage(t, clock.Now)
	s := NewOrderStore(m)
	s.Now = clock.Now
	return m, s
}

func (m *crashStorage) write() error {
	m.writes++
	if m.crashAt > 0 && m.writes >= m.crashAt {
		return errCrash
	}
	return nil
}

func (m *crashStorage) Store(ctx context.Context, key string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.write(); err != nil {
		return err
	}
	m.keys[key] = crashValue{slices.Clone(value), m.now()}
	return nil
}

func (m *crashStorage) Load(ctx context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.keys[key]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return slices.Clone(v.value), nil
}

func (m *crashStorage) Delete(ctx context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.write(); err != nil {
		return err
	}
	for k := range m.keys {
		if k == key || strings.HasPrefix(k, key+"/") {
			delete(m.keys, k)
		}
	}
	return nil
}

func (m *crashStorage) Exists(ctx context.Context, key string) bool {
	_, err := m.Stat(ctx, key)
	return err == nil
}

func (m *crashStorage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[string]bool{}
	var keys []string
	for k := range m.keys {
		rest, ok := strings.CutPrefix(k, prefix+"/")
		if !ok {
			continue
		}
		if !recursive {
			rest, _, _ = strings.Cut(rest, "/")
		}
		if k := path.Join(prefix, rest); !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, fs.ErrNotExist
	}
	return keys, nil
}

func (m *crashStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.keys[key]; ok {
		return certmagic.KeyInfo{Key: key, Modified: v.modified, Size: int64(len(v.value)), IsTerminal: true}, nil
	}
	for k := range m.keys {
		if strings.HasPrefix(k, key+"/") {
			return certmagic.KeyInfo{Key: key}, nil
		}
	}
	return certmagic.KeyInfo{}, fs.ErrNotExist
}

// Lock allows an order's lock only: the order store takes no other.
func (m *crashStorage) Lock(ctx context.Context, name string) error {
	if !strings.HasPrefix(name, "kassa/order/") {
		m.t.Errorf("the order store took storage lock %q", name)
	}
	return nil
}

func (m *crashStorage) Unlock(ctx context.Context, name string) error {
	if !strings.HasPrefix(name, "kassa/order/") {
		m.t.Errorf("the order store released storage lock %q", name)
	}
	return nil
}

// restart ends the simulated crash: the next process writes again.
func (m *crashStorage) restart() {
	m.mu.Lock()
	m.crashAt = 0
	m.mu.Unlock()
}

func (m *crashStorage) crashAtWrite(n int) {
	m.mu.Lock()
	m.writes, m.crashAt = 0, n
	m.mu.Unlock()
}

func (m *crashStorage) has(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.keys[key]
	return ok
}

var _ certmagic.Storage = (*crashStorage)(nil)

func TestOrderStoreCreateCrashes(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}

	// Write 1 is the idempotency mapping, 2 the time-index entry (its
	// crashes are orderindex_test.go's), 3 the open-index entry, 4 the
	// record; an order in creating has its record in its open-index entry
	// (write 3).
	t.Run("before the mapping", func(t *testing.T) {
		m, s := newCrashStore(t, clock)
		o := &Order{ID: NewOrderID(), State: OrderCreating, IdempotencyKey: "k"}
		m.crashAtWrite(1)
		if err := s.Create(ctx, o); !errors.Is(err, errCrash) {
			t.Fatalf("Create = %v, want the crash", err)
		}
		m.restart()
		if len(m.keys) != 0 {
			t.Errorf("a crash at the first write left %v", m.keys)
		}
	})

	t.Run("after the mapping", func(t *testing.T) {
		m, s := newCrashStore(t, clock)
		o := &Order{ID: NewOrderID(), State: OrderCreating, IdempotencyKey: "k"}
		m.crashAtWrite(2)
		if err := s.Create(ctx, o); !errors.Is(err, errCrash) {
			t.Fatalf("Create = %v, want the crash", err)
		}
		m.restart()
		// Nothing for the reconciler; the mapping points at no record.
		wantIDs(t, s)
		id, ok, err := s.ByIdempotencyKey(ctx, "k")
		if err != nil || !ok || id != o.ID {
			t.Fatalf("ByIdempotencyKey = %q, %v, %v; want %q", id, ok, err, o.ID)
		}
		if _, err := s.Load(ctx, id); !errors.Is(err, ErrOrderNotFound) {
			t.Fatalf("Load of the mapped id = %v, want ErrOrderNotFound", err)
		}
		// The buyer retries with the same key: a new order takes it over.
		retry := &Order{ID: NewOrderID(), State: OrderCreating, IdempotencyKey: "k"}
		if err := s.Create(ctx, retry); err != nil {
			t.Fatalf("retry after a crash: %v", err)
		}
		if id, _, _ := s.ByIdempotencyKey(ctx, "k"); id != retry.ID {
			t.Errorf("ByIdempotencyKey = %q after the retry, want %q", id, retry.ID)
		}
		wantIDs(t, s, retry.ID)
	})

	t.Run("creating is one write after the mapping", func(t *testing.T) {
		m, s := newCrashStore(t, clock)
		o := &Order{ID: NewOrderID(), State: OrderCreating, IdempotencyKey: "k"}
		m.crashAtWrite(4)
		if err := s.Create(ctx, o); err != nil {
			t.Fatalf("Create = %v, want three writes and no crash", err)
		}
		m.restart()
		if m.has("kassa/orders/" + o.ID + ".json") {
			t.Fatal("Create wrote a kassa/orders record for an order in creating")
		}
		wantIDs(t, s, o.ID)
		got, err := s.Load(ctx, o.ID)
		if err != nil || got.State != OrderCreating || got.IdempotencyKey != "k" {
			t.Fatalf("Load = %+v, %v; want the order in creating", got, err)
		}
		if err := s.Create(ctx, o); !errors.Is(err, ErrOrderExists) {
			t.Fatalf("second Create = %v, want ErrOrderExists", err)
		}
		dup := &Order{ID: NewOrderID(), State: OrderCreating, IdempotencyKey: "k"}
		if err := s.Create(ctx, dup); !errors.Is(err, ErrIdempotencyKeyUsed) {
			t.Fatalf("Create under its key = %v, want ErrIdempotencyKeyUsed", err)
		}
		// Once the provider answered, the record moves to kassa/orders and
		// is read from there; the entry stays the index.
		got.State = OrderPending
		got.Payment = Payment{ID: "p1"}
		if err := s.SaveCreated(ctx, got); err != nil {
			t.Fatal(err)
		}
		if again, err := s.Load(ctx, o.ID); err != nil || again.State != OrderPending || again.Payment.ID != "p1" {
			t.Fatalf("Load after SaveCreated = %+v, %v", again, err)
		}
		wantIDs(t, s, o.ID)
	})

	t.Run("after the index entry", func(t *testing.T) {
		m, s := newCrashStore(t, clock)
		o := &Order{ID: NewOrderID(), State: OrderPending, IdempotencyKey: "k"}
		m.crashAtWrite(4)
		if err := s.Create(ctx, o); !errors.Is(err, errCrash) {
			t.Fatalf("Create = %v, want the crash", err)
		}
		m.restart()
		if m.has("kassa/orders/" + o.ID + ".json") {
			t.Fatal("the record was written despite the crash")
		}
		// The reconciler finds the entry and learns the record is missing.
		wantIDs(t, s, o.ID)
		_, err := s.Load(ctx, o.ID)
		if !errors.Is(err, ErrOrderNotFound) || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Load = %v, want ErrOrderNotFound", err)
		}
		since, err := s.OpenSince(ctx, o.ID)
		if err != nil || !since.Equal(clock.Now()) {
			t.Fatalf("OpenSince = %v, %v; want %v", since, err, clock.Now())
		}
		// The reconciler leaves a young entry alone (its Create may be in
		// flight)...
		a := &App{logger: zap.NewNop(), now: clock.Now}
		a.useStorage(m)
		a.reconciler.pass(ctx)
		wantIDs(t, s, o.ID)
		// ...and drops it once it is older than any checkout takes.
		clock.Add(defaultCreatingGrace)
		a.reconciler.pass(ctx)
		wantIDs(t, s)
	})

	t.Run("after the index entry, retried", func(t *testing.T) {
		m := newCrashStorage(t, clock.Now)
		s := NewOrderStore(m)
		o := &Order{ID: NewOrderID(), State: OrderPending, IdempotencyKey: "k"}
		m.crashAtWrite(4)
		if err := s.Create(ctx, o); !errors.Is(err, errCrash) {
			t.Fatalf("Create = %v, want the crash", err)
		}
		m.restart()
		// The same order written again completes it.
		if err := s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Load(ctx, o.ID); err != nil {
			t.Fatal(err)
		}
		wantIDs(t, s, o.ID)
		if id, ok, _ := s.ByIdempotencyKey(ctx, "k"); !ok || id != o.ID {
			t.Errorf("ByIdempotencyKey = %q, %v", id, ok)
		}
	})
}

func TestOrderStoreSaveCrash(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	m, s := newCrashStore(t, clock)
	o := &Order{ID: NewOrderID(), State: OrderPending}
	other := &Order{ID: NewOrderID(), State: OrderPending}
	for _, o := range []*Order{o, other} {
		if err := s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	// Closing writes the time-index entry again (write 1), the record
	// (write 2), then drops the open entry (write 3).
	o.State = OrderPaid
	m.crashAtWrite(3)
	if err := s.Save(ctx, o); !errors.Is(err, errCrash) {
		t.Fatalf("Save = %v, want the crash", err)
	}
	m.restart()
	wantIDs(t, s, o.ID, other.ID)
	got, err := s.Load(ctx, o.ID)
	if err != nil || got.State != OrderPaid {
		t.Fatalf("Load = %+v, %v; want the paid record", got, err)
	}
	// The reconciler settles the entry of the closed order.
	a := &App{logger: zap.NewNop(), now: clock.Now}
	a.useStorage(m)
	a.reconciler.pass(ctx)
	wantIDs(t, s, other.ID)

	// A crash before the record leaves the order as it was.
	other.State = OrderExpired
	m.crashAtWrite(1)
	if err := s.Save(ctx, other); !errors.Is(err, errCrash) {
		t.Fatalf("Save = %v, want the crash", err)
	}
	m.restart()
	if got, _ := s.Load(ctx, other.ID); got.State != OrderPending {
		t.Errorf("state after a crash before the record = %s", got.State)
	}
	wantIDs(t, s, other.ID)
}

func TestOrderStoreIdempotency(t *testing.T) {
	ctx := context.Background()
	s, _ := fileOrderStore(t)
	if id, ok, err := s.ByIdempotencyKey(ctx, "nope"); err != nil || ok || id != "" {
		t.Fatalf("ByIdempotencyKey of an unknown key = %q, %v, %v", id, ok, err)
	}
	if _, ok, err := s.ByIdempotencyKey(ctx, ""); err != nil || ok {
		t.Fatalf("ByIdempotencyKey(\"\") = %v, %v", ok, err)
	}
	a := &Order{ID: NewOrderID(), State: OrderCreating, IdempotencyKey: "main:abc"}
	b := &Order{ID: NewOrderID(), State: OrderCreating, IdempotencyKey: "shop:../../x\x00"}
	noKey := &Order{ID: NewOrderID(), State: OrderCreating}
	for _, o := range []*Order{a, b, noKey} {
		if err := s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for key, want := range map[string]string{"main:abc": a.ID, "shop:../../x\x00": b.ID} {
		id, ok, err := s.ByIdempotencyKey(ctx, key)
		if err != nil || !ok || id != want {
			t.Errorf("ByIdempotencyKey(%q) = %q, %v, %v; want %q", key, id, ok, err, want)
		}
	}
	if _, ok, _ := s.ByIdempotencyKey(ctx, "main:ABC"); ok {
		t.Error("keys must be compared exactly")
	}

	// A second order under a used key is refused, and the key still names
	// the first.
	dup := &Order{ID: NewOrderID(), State: OrderCreating, IdempotencyKey: "main:abc"}
	if err := s.Create(ctx, dup); !errors.Is(err, ErrIdempotencyKeyUsed) {
		t.Fatalf("Create under a used key = %v, want ErrIdempotencyKeyUsed", err)
	}
	if id, _, _ := s.ByIdempotencyKey(ctx, "main:abc"); id != a.ID {
		t.Errorf("refused Create remapped the key to %q", id)
	}
	if _, err := s.Load(ctx, dup.ID); !errors.Is(err, ErrOrderNotFound) {
		t.Errorf("refused Create wrote a record: %v", err)
	}
	wantIDs(t, s, a.ID, b.ID, noKey.ID)
}

func TestOrderStoreTwoInstances(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := NewOrderStore(&certmagic.FileStorage{Path: dir})
	b := NewOrderStore(&certmagic.FileStorage{Path: dir})

	o := fullOrder()
	if err := a.Create(ctx, o); err != nil {
		t.Fatal(err)
	}
	got, err := b.Load(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameOrder(t, got, o)
	wantIDs(t, b, o.ID)
	if id, ok, _ := b.ByIdempotencyKey(ctx, o.IdempotencyKey); !ok || id != o.ID {
		t.Errorf("instance b: ByIdempotencyKey = %q, %v", id, ok)
	}
	if err := b.Create(ctx, &Order{ID: o.ID, State: OrderCreating}); !errors.Is(err, ErrOrderExists) {
		t.Errorf("instance b re-created a's order: %v", err)
	}

	got.State = OrderPaid
	if err := b.Save(ctx, got); err != nil {
		t.Fatal(err)
	}
	wantIDs(t, a)
	if again, err := a.Load(ctx, o.ID); err != nil || again.State != OrderPaid {
		t.Errorf("instance a sees %v, %v; want the paid order", again, err)
	}
	if list, _, err := a.Page(ctx, PageQuery{State: OrderPaid}); err != nil || len(list) != 1 || list[0].ID != o.ID {
		t.Errorf("instance a lists %v, %v", list, err)
	}
}

func TestOrderStoreRespectsContext(t *testing.T) {
	s, _ := fileOrderStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o := &Order{ID: NewOrderID(), State: OrderPending, IdempotencyKey: "k"}
	if err := s.Create(ctx, o); !errors.Is(err, context.Canceled) {
		t.Errorf("Create = %v", err)
	}
	if err := s.Save(ctx, o); !errors.Is(err, context.Canceled) {
		t.Errorf("Save = %v", err)
	}
	if _, err := s.Load(ctx, o.ID); !errors.Is(err, context.Canceled) {
		t.Errorf("Load = %v", err)
	}
	if _, err := s.OpenIDs(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("OpenIDs = %v", err)
	}
	if _, _, err := s.ByIdempotencyKey(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("ByIdempotencyKey = %v", err)
	}
	if _, _, err := s.Page(ctx, PageQuery{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Page = %v", err)
	}
	if err := s.CloseIndex(ctx, o.ID); !errors.Is(err, context.Canceled) {
		t.Errorf("CloseIndex = %v", err)
	}
	if _, err := s.Load(context.Background(), o.ID); !errors.Is(err, ErrOrderNotFound) {
		t.Errorf("a cancelled Create or Save wrote the record: %v", err)
	}
}

func BenchmarkOrderStoreCreate(b *testing.B) {
	ctx := context.Background()
	s := NewOrderStore(&certmagic.FileStorage{Path: b.TempDir()})
	proto := fullOrder()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		o := *proto
		o.ID = NewOrderID()
		o.IdempotencyKey = fmt.Sprint("bench:", i)
		if err := s.Create(ctx, &o); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOrderEncode(b *testing.B) {
	o := fullOrder()
	b.ReportAllocs()
	var n int
	for b.Loop() {
		rec, err := encodeOrder(o)
		if err != nil {
			b.Fatal(err)
		}
		n = len(rec)
	}
	b.SetBytes(int64(n))
}

// TestSaveCreatedWritesOnlyTheRecord: the checkout's store of an accepted
// order is one write, the record; the open entry Create wrote stands. A
// closed order is saved in full, its entry settled.
func TestSaveCreatedWritesOnlyTheRecord(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	m := newCrashStorage(t, clock.Now)
	s := NewOrderStore(m)
	pending := &Order{ID: NewOrderID(), State: OrderCreating}
	failed := &Order{ID: NewOrderID(), State: OrderCreating}
	for _, o := range []*Order{pending, failed} {
		if err := s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	m.crashAtWrite(2) // a second write would fail
	pending.State = OrderPending
	if err := s.SaveCreated(ctx, pending); err != nil {
		t.Fatalf("SaveCreated of a pending order: %v (more than one write?)", err)
	}
	m.restart()
	if got, err := s.Load(ctx, pending.ID); err != nil || got.State != OrderPending {
		t.Fatalf("Load = %+v, %v; want pending", got, err)
	}
	wantIDs(t, s, pending.ID, failed.ID)

	failed.State = OrderFailed
	if err := s.SaveCreated(ctx, failed); err != nil {
		t.Fatal(err)
	}
	wantIDs(t, s, pending.ID)
	if !m.has(unpaidKey(failed.ID)) {
		t.Error("the failed order is not in the unpaid index")
	}
}

// closingStorage writes an order's record and removes its open-index entry
// just before the entry is read: the order is saved and closed between
// loadRecord's two reads.
type closingStorage struct {
	certmagic.Storage
	record []byte
	id     string
}

func (c *closingStorage) Load(ctx context.Context, key string) ([]byte, error) {
	if key == openKey(c.id) && c.record != nil {
		if err := c.Storage.Store(ctx, orderKey(c.id), c.record); err != nil {
			return nil, err
		}
		if err := c.Storage.Delete(ctx, key); err != nil {
			return nil, err
		}
		c.record = nil
	}
	return c.Storage.Load(ctx, key)
}

func TestOrderStoreLoadWhileTheOrderCloses(t *testing.T) {
	ctx := context.Background()
	files := &certmagic.FileStorage{Path: t.TempDir()}
	o := &Order{ID: NewOrderID(), State: OrderCreating}
	if err := NewOrderStore(files).Create(ctx, o); err != nil {
		t.Fatal(err)
	}
	paid := *o
	paid.State = OrderPaid
	rec, err := encodeOrder(&paid)
	if err != nil {
		t.Fatal(err)
	}
	s := NewOrderStore(&closingStorage{Storage: files, record: rec, id: o.ID})
	got, err := s.Load(ctx, o.ID)
	if err != nil || got.State != OrderPaid {
		t.Fatalf("Load = %+v, %v; want the paid order", got, err)
	}
}
