package kassa

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
)

// contactReceipts is instantReceipts that keeps the contacts each receipt
// was formed with, by operation id.
type contactReceipts struct {
	instantReceipts
	mu sync.Mutex
	to map[string][2]string
}

func (r *contactReceipts) FormReceipt(ctx context.Context, rc Receipt) error {
	r.mu.Lock()
	if r.to == nil {
		r.to = map[string][2]string{}
	}
	r.to[rc.OperationID] = [2]string{rc.Email, rc.Phone}
	r.mu.Unlock()
	return r.instantReceipts.FormReceipt(ctx, rc)
}

func (r *contactReceipts) sentTo(id string) [2]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.to[id]
}

// refundWith posts a refund with body, as an operator does.
func (s *lifeShop) refundWith(id, body string) (int, string) {
	r := httptest.NewRequest(http.MethodPost, "/kassa/orders/"+id+"/refund", strings.NewReader(body))
	w := httptest.NewRecorder()
	if err := s.app.serveAdmin(w, r); err != nil {
		writeAdminError(w, err)
	}
	return w.Code, w.Body.String()
}

// TestRefundAfterErasureNeedsAContact: a refund of an order whose contacts
// erase_contacts_after erased is 409 contact_required, changing nothing;
// given an e-mail, its return receipt goes there, and that e-mail is
// erased 30 days after the refund was done, not before. Before: the
// refund went ahead, its receipt to no one.
func TestRefundAfterErasureNeedsAContact(t *testing.T) {
	day := 24 * time.Hour
	// A file storage: the walk lists the refund index's year and month
	// directories, as the file system and Redis storages list them.
	s := newLifeShop(t, newLifeProvider("pegas"), &certmagic.FileStorage{Path: t.TempDir()}, nil)
	receipts := &contactReceipts{}
	s.app.receipts = receipts
	s.app.EraseContactsAfter = caddy.Duration(30 * day)
	o := s.paidOrder()
	s.clock.Add(31 * day)
	s.compact()
	if got := s.load(o.ID); got.Email != "" || got.ContactsErasedAt.IsZero() {
		t.Fatalf("the order keeps e-mail %q; want it erased", got.Email)
	}

	s.clock.Add(90 * day) // a warranty return
	code, body := s.refundWith(o.ID, "")
	if code != http.StatusConflict || !strings.Contains(body, `"code":"contact_required"`) || !strings.Contains(body, "erased") {
		t.Fatalf("refund without a contact: %d %s; want 409 contact_required", code, body)
	}
	if got := s.load(o.ID); got.Refund != nil {
		t.Fatalf("the refused refund changed the order: %+v", got.Refund)
	}
	if names, _ := s.app.orders.listNames(context.Background(), refundsPrefix+"/"+s.clock.Now().Format(refundMonthLayout)); len(names) != 0 {
		t.Errorf("the refused refund wrote a refund-index entry: %v", names)
	}
	for body, want := range map[string]string{
		`{"email":"no-at-sign"}`:   "bad_email",
		`{"phone":"12"}`:           "bad_phone",
		`{"email":"a@b.ru","x":1}`: "bad_request",
		`{"email":`:                "bad_request",
	} {
		if code, got := s.refundWith(o.ID, body); code != http.StatusBadRequest || !strings.Contains(got, `"code":"`+want+`"`) {
			t.Errorf("refund with %s: %d %s; want 400 %s", body, code, got, want)
		}
	}

	code, body = s.refundWith(o.ID, `{"email":" new@example.com "}`)
	if code != http.StatusOK {
		t.Fatalf("refund with an e-mail: %d %s", code, body)
	}
	got := s.load(o.ID)
	if got.Refund == nil || got.Refund.State != ReceiptDone {
		t.Fatalf("refund: %+v; want done", got.Refund)
	}
	if to := receipts.sentTo(got.Refund.OperationID); to != [2]string{"new@example.com", ""} {
		t.Errorf("the return receipt went to %q; want new@example.com", to)
	}

	s.clock.Add(29 * day)
	s.compact()
	if got := s.load(o.ID); got.Email != "new@example.com" {
		t.Errorf("29 days after the refund: e-mail %q; want it kept", got.Email)
	}
	s.clock.Add(2 * day)
	s.compact()
	if got := s.load(o.ID); got.Email != "" || got.Phone != "" || !got.ContactsErasedAt.Equal(s.clock.Now()) {
		t.Errorf("31 days after the refund: e-mail %q, phone %q, erased at %v; want them erased now", got.Email, got.Phone, got.ContactsErasedAt)
	}
	ctx := context.Background()
	if _, err := s.storage.Load(ctx, refundContactsCursorKey); err == nil {
		t.Errorf("the walk's cursor moved into April while refunds may still be started in it")
	}
	s.clock.Add(30 * day) // the cutoff is past April
	s.compact()
	if got, err := s.storage.Load(ctx, refundContactsCursorKey); err != nil || string(got) != "2027/04/"+o.ID {
		t.Errorf("the walk's cursor: %q, %v; want past April's entry", got, err)
	}
}

// TestRefundContactOverrides: an order that keeps its contacts refunds to
// them; contacts given replace them both, for the refund's retry too.
func TestRefundContactOverrides(t *testing.T) {
	s := newLifeShop(t, newLifeProvider("pegas"), nil, nil)
	receipts := &contactReceipts{}
	s.app.receipts = receipts
	kept := s.paidOrder()
	if code, body := s.refundWith(kept.ID, ""); code != http.StatusOK {
		t.Fatalf("refund: %d %s", code, body)
	}
	if to := receipts.sentTo(s.load(kept.ID).Refund.OperationID); to != [2]string{"buyer@example.com", ""} {
		t.Errorf("the return receipt went to %q; want the order's buyer@example.com", to)
	}

	given := s.paidOrder()
	s.failRefund(given.ID)
	if code, body := s.refundWith(given.ID, `{"phone":"8 (999) 123-45-67"}`); code != http.StatusOK {
		t.Fatalf("refund with a phone: %d %s", code, body)
	}
	got := s.load(given.ID)
	if to := receipts.sentTo(got.Refund.OperationID); to != [2]string{"", "+79991234567"} {
		t.Errorf("the return receipt went to %q; want only the phone given", to)
	}
	if got.Email != "" || got.Phone != "+79991234567" {
		t.Errorf("the order's contacts: %q, %q; want the phone given alone", got.Email, got.Phone)
	}
}
