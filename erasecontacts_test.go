package kassa

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// TestEraseContactsAfterTheReceipt: erase_contacts_after its receipt was
// done, an order's e-mail and phone are erased (from its record and its
// events' bodies) by the compaction, with a mark; an order whose receipt
// is done later stops the walk until it is due; an order whose receipt
// failed keeps them, for the receipt to be sent again.
func TestEraseContactsAfterTheReceipt(t *testing.T) {
	ctx := context.Background()
	s := notifyShop(t, nil, nil, "https://shop.example/hook")
	s.app.EraseContactsAfter = caddy.Duration(30 * 24 * time.Hour)
	day := 24 * time.Hour
	start := s.clock.Now()

	late := s.paidOrder() // its receipt fails, and is sent again on day 20
	s.clock.Add(time.Minute)
	done := s.paidOrder()
	s.clock.Add(time.Minute)
	failed := s.paidOrder()
	for _, o := range []*Order{late, failed} {
		if _, err := s.app.update(ctx, o.ID, func(o *Order) bool {
			o.Receipt.State, o.Receipt.Error = ReceiptFailed, "Открыта крышка."
			return true
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range []*Order{late, done, failed} {
		if got := s.load(o.ID); got.Email != "buyer@example.com" || got.State != OrderPaid {
			t.Fatalf("order %s: %s, e-mail %q; want paid with the buyer's e-mail", o.ID, got.State, got.Email)
		}
	}

	s.clock.Add(20 * day)
	if o, err := s.app.reissueReceipt(ctx, late.ID, ReceiptSale, nil); err != nil || o.Receipt.State != ReceiptDone {
		t.Fatalf("sending the failed receipt again: %v, %+v", err, o)
	}
	before := valueOf(metrics.contactsErased)
	s.clock.Add(11 * day) // 31 days after the first receipts
	s.compact()
	if got := s.load(done.ID); got.Email == "" {
		t.Errorf("day 31: an order created after one whose receipt was done on day 20 lost its contacts; the walk must stop before it")
	}
	if n := valueOf(metrics.contactsErased) - before; n != 0 {
		t.Errorf("day 31: kassa_contacts_erased_total moved by %v, want 0", n)
	}

	s.clock.Add(20 * day) // day 51: the reissued receipt is 31 days old
	s.compact()
	for _, o := range []*Order{late, done} {
		got := s.load(o.ID)
		if got.Email != "" || got.Phone != "" || !got.ContactsErasedAt.Equal(s.clock.Now()) {
			t.Errorf("day 51: order %s keeps e-mail %q phone %q, erased at %v; want them erased now", o.ID, got.Email, got.Phone, got.ContactsErasedAt)
		}
		if got.State != OrderPaid || got.Receipt.State != ReceiptDone || !got.Amount.Equal(o.Amount) {
			t.Errorf("day 51: erasing changed more than the contacts: %s, receipt %s, amount %s", got.State, got.Receipt.State, got.Amount)
		}
		for _, ref := range got.Events {
			f, err := s.app.loadEvent(ctx, ref.ID)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(f.Body), "buyer@example.com") {
				t.Errorf("event %s still carries the buyer's e-mail: %s", ref.ID, f.Body)
			}
		}
	}
	if got := s.load(failed.ID); got.Email != "buyer@example.com" || !got.ContactsErasedAt.IsZero() {
		t.Errorf("an order whose receipt failed: e-mail %q, erased at %v; want its contacts kept for sending it again", got.Email, got.ContactsErasedAt)
	}
	if n := valueOf(metrics.contactsErased) - before; n != 2 {
		t.Errorf("kassa_contacts_erased_total moved by %v, want 2", n)
	}
	cursor, err := s.storage.Load(ctx, contactsCursorKey)
	if err != nil || string(cursor) != orderEntry(s.load(failed.ID)) {
		t.Errorf("the cursor is %q, %v; want past the last order walked, %s", cursor, err, orderEntry(failed))
	}

	// A new order, paid now, is not touched until its own time.
	fresh := s.paidOrder()
	s.clock.Add(29 * day)
	s.compact()
	if got := s.load(fresh.ID); got.Email == "" {
		t.Errorf("an order paid 29 days ago lost its contacts")
	}
	s.clock.Add(2 * day)
	s.compact()
	if got := s.load(fresh.ID); got.Email != "" {
		t.Errorf("an order paid 31 days ago keeps its e-mail %q", got.Email)
	}
	if s.clock.Now().Sub(start) < 80*day {
		t.Fatalf("the clock moved only %v", s.clock.Now().Sub(start))
	}
}

// TestEraseContactsOffByDefault: without erase_contacts_after nothing is
// erased, however old, and nothing is stored for it.
func TestEraseContactsOffByDefault(t *testing.T) {
	s := newLifeShop(t, newLifeProvider("pegas"), nil, nil)
	o := s.paidOrder()
	s.clock.Add(10 * 365 * 24 * time.Hour)
	s.compact()
	if got := s.load(o.ID); got.Email != "buyer@example.com" || !got.ContactsErasedAt.IsZero() {
		t.Errorf("ten years on, without the option: e-mail %q, erased at %v", got.Email, got.ContactsErasedAt)
	}
	if _, err := s.storage.Load(context.Background(), contactsCursorKey); err == nil {
		t.Errorf("the option off stored a cursor")
	}
}

// TestEraseContactsAtLeastADay: an erase_contacts_after under 24h is
// refused, so that a receipt can be sent again to its buyer.
func TestEraseContactsAtLeastADay(t *testing.T) {
	for d, ok := range map[time.Duration]bool{time.Hour: false, -time.Hour: false, 24 * time.Hour: true, 0: true} {
		err := (&App{EraseContactsAfter: caddy.Duration(d)}).Validate()
		if (err == nil) != ok {
			t.Errorf("erase_contacts_after %v: Validate = %v", d, err)
		}
		if err != nil && !strings.Contains(err.Error(), "erase_contacts_after") {
			t.Errorf("the refusal does not name the option: %v", err)
		}
	}
}

// TestEraseContactsLeavesNoHashOfThem: a keyed checkout's order keeps a
// fingerprint of its request, which hashes the buyer's e-mail and phone
// with the cart; erasing the contacts must erase it too, or the record
// still holds them: a phone number is ten digits, and the rest of the hash
// input is in the record, so the hash gives the number back in hours.
// Before: the fingerprint stayed after the erasure.
func TestEraseContactsLeavesNoHashOfThem(t *testing.T) {
	ctx := context.Background()
	s := newLifeShop(t, newLifeProvider("pegas"), nil, nil)
	s.app.EraseContactsAfter = caddy.Duration(30 * 24 * time.Hour)
	o := s.created("review19-erase-0000000001")
	s.provider.pay(o.Payment.ID)
	s.pass()
	if o = s.load(o.ID); o.State != OrderPaid || o.Receipt == nil || o.Receipt.State != ReceiptDone || o.Fingerprint == "" {
		t.Fatalf("order %s: %s, receipt %+v, fingerprint %q; want paid, its receipt done, with a fingerprint", o.ID, o.State, o.Receipt, o.Fingerprint)
	}
	fingerprint := o.Fingerprint
	s.clock.Add(31 * 24 * time.Hour)
	s.compact()
	got := s.load(o.ID)
	if got.Email != "" || got.ContactsErasedAt.IsZero() {
		t.Fatalf("the order keeps e-mail %q, erased at %v; want it erased", got.Email, got.ContactsErasedAt)
	}
	raw, err := s.storage.Load(ctx, orderKey(o.ID))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), fingerprint) {
		t.Errorf("after erasing the contacts the record still holds the hash of the request with them: %s", raw)
	}
	// The key is still the order's: a repeat of it answers with the order.
	if w := s.post("review19-erase-0000000001", false); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), o.ID) {
		t.Errorf("a repeat of the key after the erasure: %d %s; want 200 with order %s", w.Code, w.Body, o.ID)
	}
}

// TestEraseContactsWaitsForARefund: an order refunded a month after its
// sale keeps its contacts while its return receipt is under way (a send
// may be retried, and 54-FZ sends it to the buyer's contact too) and,
// like a failed sale receipt, when the return receipt failed (to be sent
// again); once it is done they go. Before: only the sale receipt's
// failure kept them, so a failed refund was sent again to no one.
func TestEraseContactsWaitsForARefund(t *testing.T) {
	ctx := context.Background()
	day := 24 * time.Hour
	s := newLifeShop(t, newLifeProvider("pegas"), nil, nil)
	s.app.EraseContactsAfter = caddy.Duration(30 * 24 * time.Hour)
	refunding := s.created("")
	s.provider.pay(refunding.Payment.ID)
	s.pass()
	s.clock.Add(time.Minute)
	failing := s.created("")
	s.provider.pay(failing.Payment.ID)
	s.pass()
	s.clock.Add(31 * day)
	for _, o := range []*Order{refunding, failing} {
		if _, err := s.app.receiptStarted(ctx, o.ID, ReceiptSaleReturn, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.app.update(ctx, failing.ID, func(o *Order) bool {
		o.Refund.State, o.Refund.Error, o.Refund.DoneAt = ReceiptFailed, "Открыта крышка.", s.clock.Now()
		return true
	}); err != nil {
		t.Fatal(err)
	}
	s.compact()
	for _, o := range []*Order{refunding, failing} {
		got := s.load(o.ID)
		if got.Email == "" {
			t.Fatalf("order %s: contacts erased while its refund is %s; want them kept", o.ID, got.Refund.State)
		}
		if rc := fiscalReceipt(got, got.Refund); rc.Email != "buyer@example.com" {
			t.Errorf("order %s: the return receipt would go to %q", o.ID, rc.Email)
		}
	}
	if _, err := s.app.advanceReceipt(ctx, s.load(refunding.ID), ReceiptSaleReturn); err != nil {
		t.Fatal(err)
	}
	if got := s.load(refunding.ID); got.Refund.State != ReceiptDone {
		t.Fatalf("the refund is %s, want done", got.Refund.State)
	}
	s.clock.Add(31 * day)
	s.compact()
	if got := s.load(refunding.ID); got.Email != "" {
		t.Errorf("the refund was done 31 days ago, but the order keeps e-mail %q", got.Email)
	}
	if got := s.load(failing.ID); got.Email == "" {
		t.Errorf("an order whose refund failed lost its contacts; want them kept for sending it again")
	}
}
