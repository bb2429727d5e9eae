package kassa

// Tests of the record version (records.go): records of version 1 (no "v")
// read and write back whole, every record written carries "v", and a
// record of a newer version is refused, never rewritten.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// jsonFields decodes a JSON object into a map, for comparing records by
// their fields whatever their layout.
func jsonFields(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return m
}

// sameFieldsPlusVersion checks that written holds exactly the fields of
// golden, and "v": 1.
func sameFieldsPlusVersion(t *testing.T, golden, written []byte) {
	t.Helper()
	want, got := jsonFields(t, golden), jsonFields(t, written)
	if v, ok := got["v"]; !ok || v != float64(1) {
		t.Errorf(`written record has "v" %v, want 1: %s`, v, written)
	}
	delete(got, "v")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip changed the record:\n got %s\nwant %s", written, golden)
	}
}

// TestRecordGoldenOrdersV1: the order records of testdata/records (today's
// format, no "v": version 1), put in storage, load through the order store
// and write back with every field as it was, and "v": 1.
func TestRecordGoldenOrdersV1(t *testing.T) {
	for _, tc := range []struct {
		file, id string
		state    OrderState
	}{
		{"order-paid.json", "q0Jx3v9mT2aKc8LpW5nYbA", OrderPaid},
		{"order-expired.json", "Zr4TqP8sLm2NvX6cB1dHfw", OrderExpired},
	} {
		t.Run(tc.file, func(t *testing.T) {
			golden, err := os.ReadFile("testdata/records/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(golden, []byte(`"v"`)) {
				t.Fatal(`a golden record of version 1 must not have "v"`)
			}
			storage := newBenchStorage()
			ctx := context.Background()
			if err := storage.Store(ctx, orderKey(tc.id), golden); err != nil {
				t.Fatal(err)
			}
			s := NewOrderStore(storage)
			o, err := s.Load(ctx, tc.id)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if o.State != tc.state {
				t.Fatalf("state %s, want %s", o.State, tc.state)
			}
			if tc.state == OrderPaid && (o.Receipt == nil || o.Receipt.State != ReceiptDone || o.Receipt.Fiscal == nil ||
				o.Receipt.Fiscal.DocumentNumber != 1843 || !o.PaidAmount.Valid || o.PaidAmount.Decimal.String() != "1490") {
				t.Fatalf("paid order read as %+v (receipt %+v)", o, o.Receipt)
			}
			written, err := encodeOrder(o)
			if err != nil {
				t.Fatal(err)
			}
			sameFieldsPlusVersion(t, golden, written)
		})
	}
}

// TestRecordGoldenPayoutV1: a payout record of version 1 loads and is
// stored back with every field, and "v": 1.
func TestRecordGoldenPayoutV1(t *testing.T) {
	golden, err := os.ReadFile("testdata/records/payout.json")
	if err != nil {
		t.Fatal(err)
	}
	a := &App{}
	a.useStorage(newBenchStorage())
	ctx := context.Background()
	const key = payoutsPrefix + "/golden.json"
	if err := a.storage.Store(ctx, key, golden); err != nil {
		t.Fatal(err)
	}
	rec, err := a.loadPayout(ctx, key)
	if err != nil || rec == nil {
		t.Fatalf("loadPayout: %v, %v", rec, err)
	}
	if rec.State != payoutUnknown || rec.Error == nil || rec.Error.Code != "provider_unavailable" || !rec.TwoStep {
		t.Fatalf("read as %+v", rec)
	}
	if err := a.storePayout(ctx, key, rec); err != nil {
		t.Fatal(err)
	}
	written, err := a.storage.Load(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	sameFieldsPlusVersion(t, golden, written)
}

// TestRecordsCarryVersion: an order made by a checkout, an event file and
// the reconciler's lease are stored with "v": 1.
func TestRecordsCarryVersion(t *testing.T) {
	s := newLifeShop(t, newLifeProvider("pegas"), nil, nil)
	ctx := context.Background()
	o := s.created("key-records-version-01")
	s.pass()
	const eventID = "q0Jx3v9mT2aKc8LpW5nYbA-1-ab12cd34"
	if err := s.app.storeEvent(ctx, &eventFile{ID: eventID, Type: eventPaid, OrderID: "q0Jx3v9mT2aKc8LpW5nYbA", Body: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := newLease(s.app, 10*time.Second).write(ctx, leaseRecord{Holder: "h", Renewals: 1}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{orderKey(o.ID), eventKey(eventID), leaseKey} {
		b, err := s.storage.Load(ctx, key)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if v := jsonFields(t, b)["v"]; v != float64(1) {
			t.Errorf(`%s has "v" %v, want 1: %s`, key, v, b)
		}
	}
	if f, err := s.app.loadEvent(ctx, eventID); err != nil || f.ID != eventID || f.Type != eventPaid {
		t.Errorf("loadEvent: %+v, %v", f, err)
	}
}

// withVersion returns the JSON object b with "v" set to v.
func withVersion(t *testing.T, b []byte, v int) []byte {
	t.Helper()
	m := jsonFields(t, b)
	m["v"] = v
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRecordTooNewRefused: an order record of a newer version is refused
// by Load with an error naming its key and both versions; the admin API
// answers 500 record_too_new, a cancel does not write it, and the
// reconciler leaves it byte for byte as it was.
func TestRecordTooNewRefused(t *testing.T) {
	s := newLifeShop(t, newLifeProvider("pegas"), nil, nil)
	ctx := context.Background()
	o := s.created("key-records-too-new-01")
	b, err := s.storage.Load(ctx, orderKey(o.ID))
	if err != nil {
		t.Fatal(err)
	}
	newer := withVersion(t, b, 2)
	if err := s.storage.Store(ctx, orderKey(o.ID), newer); err != nil {
		t.Fatal(err)
	}

	_, err = s.app.orders.Load(ctx, o.ID)
	var tooNew *RecordTooNewError
	if !errors.As(err, &tooNew) || tooNew.Version != 2 {
		t.Fatalf("Load: %v, want a *RecordTooNewError of version 2", err)
	}
	for _, want := range []string{orderKey(o.ID), "version 2", "up to version 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	for _, tc := range []struct{ method, target string }{
		{http.MethodGet, "/kassa/orders/" + o.ID},
		{http.MethodPost, "/kassa/orders/" + o.ID + "/cancel"},
	} {
		w := httptest.NewRecorder()
		if err := s.app.serveAdmin(w, httptest.NewRequest(tc.method, tc.target, nil)); err != nil {
			writeAdminError(w, err)
		}
		if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), `"code":"record_too_new"`) ||
			!strings.Contains(w.Body.String(), orderKey(o.ID)) {
			t.Errorf("%s %s: %d %s; want 500 record_too_new naming the record", tc.method, tc.target, w.Code, w.Body)
		}
	}

	s.clock.Add(time.Hour) // past the order's time to live
	s.pass()
	after, err := s.storage.Load(ctx, orderKey(o.ID))
	if err != nil || !bytes.Equal(after, newer) {
		t.Errorf("the record changed: %s (%v), want %s", after, err, newer)
	}
}

// TestRecordTooNewPayoutAndEvent: a payout record and an event file of a
// newer version are refused, naming their key.
func TestRecordTooNewPayoutAndEvent(t *testing.T) {
	a := &App{}
	a.useStorage(newBenchStorage())
	ctx := context.Background()
	const payoutKey = payoutsPrefix + "/newer.json"
	golden, err := os.ReadFile("testdata/records/payout.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.storage.Store(ctx, payoutKey, withVersion(t, golden, 3)); err != nil {
		t.Fatal(err)
	}
	var tooNew *RecordTooNewError
	if _, err := a.loadPayout(ctx, payoutKey); !errors.As(err, &tooNew) || tooNew.Version != 3 || !strings.Contains(err.Error(), payoutKey) {
		t.Errorf("loadPayout: %v, want a *RecordTooNewError of version 3 naming %s", err, payoutKey)
	}
	const eventID = "q0Jx3v9mT2aKc8LpW5nYbA-1-ab12cd34"
	if err := a.storage.Store(ctx, eventKey(eventID), []byte(`{"v":2,"id":"`+eventID+`","type":"paid"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.loadEvent(ctx, eventID); !errors.As(err, &tooNew) || !strings.Contains(err.Error(), eventKey(eventID)) {
		t.Errorf("loadEvent: %v, want a *RecordTooNewError naming %s", err, eventKey(eventID))
	}
}

// TestCompactSkipsTooNewRecord: Compact leaves a record of a newer version
// (and its unpaid entry) to the release that wrote it, and compacts the
// other orders past it.
func TestCompactSkipsTooNewRecord(t *testing.T) {
	ctx := context.Background()
	f := newCompactFixture(t)
	b, err := f.storage.Load(ctx, orderKey(f.expired.ID))
	if err != nil {
		t.Fatal(err)
	}
	newer := withVersion(t, b, 2)
	if err := f.storage.Store(ctx, orderKey(f.expired.ID), newer); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(48 * time.Hour)
	if n, err := f.store.Compact(ctx, 24*time.Hour, nil); err != nil || n != 2 {
		t.Fatalf("Compact = %d, %v; want 2 (the failed and the cancelled order)", n, err)
	}
	if after, err := f.storage.Load(ctx, orderKey(f.expired.ID)); err != nil || !bytes.Equal(after, newer) || !f.storage.has(unpaidKey(f.expired.ID)) {
		t.Errorf("the newer record or its unpaid entry changed: %s, %v", after, err)
	}
	if f.exists(f.failed) || f.exists(f.cancelled) {
		t.Error("the orders past the newer record were not compacted")
	}
}
