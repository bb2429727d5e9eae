package kassa

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// OrderState is where an order stands.
type OrderState string

// The states of an order. Creating and pending are open: the reconciler
// works on them until they close.
const (
	// OrderCreating: written, its payment not yet confirmed created at the
	// provider. A crash leaves an order here for the reconciler to finish.
	OrderCreating OrderState = "creating"
	// OrderPending: the payment exists and waits for the buyer.
	OrderPending OrderState = "pending"
	// OrderPaid: the provider reported the payment paid.
	OrderPaid OrderState = "paid"
	// OrderExpired: unpaid past the order's time to live.
	OrderExpired OrderState = "expired"
	// OrderCancelled: cancelled by an operator.
	OrderCancelled OrderState = "cancelled"
	// OrderFailed: the payment could not be created.
	OrderFailed OrderState = "failed"
)

// Open reports whether the reconciler still has work on an order in this
// state.
func (s OrderState) Open() bool { return s == OrderCreating || s == OrderPending }

// Public is the state a buyer sees: an order being created is pending.
func (s OrderState) Public() OrderState {
	if s == OrderCreating {
		return OrderPending
	}
	return s
}

// OrderItem is one priced line of an order, and of its receipt.
type OrderItem struct {
	// SKU is the catalog product's SKU; empty for items a trusted upstream
	// supplied.
	SKU   string          `json:"sku,omitempty"`
	Name  string          `json:"name"`
	Qty   int64           `json:"qty"`
	Price decimal.Decimal `json:"price"`
	// VAT is the product's rate; zero takes the receipt provider's default.
	VAT VAT `json:"vat,omitempty"`
}

// Order is one purchase: what was bought, for how much, through which
// payment account, and where its payment stands. It is stored as one JSON
// record.
type Order struct {
	// ID is random and unguessable: it is the buyer's capability to read
	// the order's status and receipt.
	ID    string     `json:"id"`
	State OrderState `json:"state"`
	// Account is the name of the payment account; Provider its module
	// (crystalpay, pegas).
	Account  string          `json:"account"`
	Provider string          `json:"provider"`
	Amount   decimal.Decimal `json:"amount"`
	Items    []OrderItem     `json:"items,omitempty"`
	// Description names the purchase when there are no items.
	Description string `json:"description,omitempty"`
	// ShopOrderID is the order id a trusted upstream gave (proxied
	// storefront).
	ShopOrderID string `json:"shop_order_id,omitempty"`
	// DefaultVAT is the receipt service's default rate when the order was
	// made: its positions without a rate of their own carry it, also on a
	// refund after the default changed. Zero: the service's default now.
	DefaultVAT VAT `json:"default_vat,omitempty"`
	// Email and Phone are the buyer's contacts for the receipt.
	Email string `json:"email,omitempty"`
	Phone string `json:"phone,omitempty"`
	// ContactsErasedAt is when erase_contacts_after erased Email and Phone
	// (erasecontacts.go), long after the receipt went out.
	ContactsErasedAt time.Time `json:"contacts_erased_at,omitzero"`
	// IdempotencyKey is the buyer's Idempotency-Key, if any: a repeat with
	// the same key gets this order again.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Fingerprint is a hash of what the keyed request asked for (the
	// account, amount, items and contacts): a repeat of the key that asks
	// for something else is refused, never answered with this order.
	// Erasing the contacts erases it (it hashes them).
	Fingerprint string `json:"fingerprint,omitempty"`
	// ReturnURL is where the provider sends the buyer after paying.
	ReturnURL string `json:"return_url,omitempty"`
	// Payment is the provider's invoice, once created.
	Payment Payment `json:"payment"`
	// PaidAmount is what the provider reported as paid, when it reports it.
	PaidAmount decimal.NullDecimal `json:"paid_amount"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	ExpiresAt time.Time `json:"expires_at"`
	PaidAt    time.Time `json:"paid_at,omitzero"`
	ClosedAt  time.Time `json:"closed_at,omitzero"`

	// PaidLate: the order was paid after it had closed unpaid (expired,
	// cancelled or failed), as a CrystalPAY link paid after the order's
	// time to live.
	PaidLate bool `json:"paid_late,omitempty"`
	// InvoiceClosed: the provider took the cancel of the order's invoice,
	// so it can no longer be paid. An order that closed unpaid without it
	// is watched for a late payment until it is compacted.
	InvoiceClosed bool `json:"invoice_closed,omitempty"`

	// Error is the last failure on the order, for the operator.
	Error string `json:"error,omitempty"`

	// Receipt is the order's fiscal sale receipt, once the order is paid
	// and a receipt service is configured.
	Receipt *OrderReceipt `json:"receipt,omitempty"`
	// Refund is the return receipt of a refunded order.
	Refund *OrderReceipt `json:"refund,omitempty"`

	// Events are the events the order's changes raised for the shop's
	// receivers (notify.go), recorded with the change that raised each.
	Events []EventRef `json:"events,omitempty"`
}

// Open reports whether the reconciler still has work on the order: its
// payment, or a receipt on its way.
func (o *Order) Open() bool {
	return o.State.Open() || o.Receipt.underway() || o.Refund.underway()
}

// ReceiptState is where an order's fiscal receipt stands.
type ReceiptState string

// The states of a receipt. Sending is written before the receipt service
// is called, so a crash leaves a record the reconciler sends again under
// the same operation id.
const (
	ReceiptSending ReceiptState = "sending"
	ReceiptQueued  ReceiptState = "queued"
	ReceiptDone    ReceiptState = "done"
	ReceiptFailed  ReceiptState = "failed"
)

// Public is the state a buyer sees: a receipt being sent is queued.
func (s ReceiptState) Public() ReceiptState {
	if s == ReceiptSending {
		return ReceiptQueued
	}
	return s
}

// OrderReceipt is a fiscal receipt of an order and where it stands.
type OrderReceipt struct {
	// OperationID is derived from the order id, so the receipt service
	// prints one receipt however often it is sent.
	OperationID string       `json:"operation_id"`
	Type        ReceiptType  `json:"type"`
	State       ReceiptState `json:"state"`
	// Attempts counts the sends of this operation id whose outcome was
	// recorded; a send cut short by a crash is not counted (it is repeated
	// under the same id).
	Attempts int           `json:"attempts"`
	Fiscal   *FiscalParams `json:"fiscal,omitempty"`
	// Error is the receipt service's message when the receipt failed.
	Error string `json:"error,omitempty"`
	// Refused: the attempt failed because a send of it was refused, not
	// because the till reported it not processed. A refusal proves nothing
	// while another send of the same id may still land, so a new attempt
	// waits for the service to say it does not know this one.
	Refused bool      `json:"refused,omitempty"`
	SentAt  time.Time `json:"sent_at,omitzero"`
	// DoneAt is when the receipt was done, or failed.
	DoneAt time.Time `json:"done_at,omitzero"`
	// History holds the earlier attempts of this receipt, each failed
	// (nothing was printed) before the current one was issued under a new
	// operation id.
	History []ReceiptAttempt `json:"history,omitempty"`
}

// ReceiptAttempt is an earlier, failed attempt of a receipt.
type ReceiptAttempt struct {
	OperationID string    `json:"operation_id"`
	Error       string    `json:"error,omitempty"`
	FailedAt    time.Time `json:"failed_at,omitzero"`
}

func (r *OrderReceipt) underway() bool {
	return r != nil && (r.State == ReceiptSending || r.State == ReceiptQueued)
}

// Valid reports whether s is one of the order states above.
func (s OrderState) Valid() bool {
	switch s {
	case OrderCreating, OrderPending, OrderPaid, OrderExpired, OrderCancelled, OrderFailed:
		return true
	}
	return false
}

// emailStars and phoneStars hide the masked part of a contact. Their length
// is fixed so that the mask does not reveal how long the hidden part is.
const (
	emailStars = "***"
	phoneStars = "*******"
)

// MaskEmail masks an email address for display to whoever holds the order
// id: buyer@example.com becomes b***r@example.com (a local part shorter than
// 3 characters keeps only its first character: ab@x.ru becomes a***@x.ru).
// The domain is kept. Odd input (no @, empty, invalid UTF-8) is masked the
// same way and never panics; the result is always valid UTF-8.
func MaskEmail(email string) string {
	if email == "" {
		return ""
	}
	local, domain, hasAt := email, "", false
	if i := strings.LastIndexByte(email, '@'); i >= 0 {
		local, domain, hasAt = email[:i], email[i+1:], true
	}
	r := []rune(local) // invalid bytes become U+FFFD
	var b strings.Builder
	switch {
	case len(r) >= 3:
		b.WriteRune(r[0])
		b.WriteString(emailStars)
		b.WriteRune(r[len(r)-1])
	case len(r) > 0:
		b.WriteRune(r[0])
		b.WriteString(emailStars)
	default:
		b.WriteString(emailStars)
	}
	if hasAt {
		b.WriteByte('@')
		b.WriteString(strings.ToValidUTF8(domain, "\uFFFD"))
	}
	return b.String()
}

// MaskPhone masks a phone number for display to whoever holds the order id:
// +79991234567 becomes +7*******67. It keeps a leading +, the first digit
// and the last two digits, drops any punctuation, and hides the rest behind
// a fixed number of stars. A number with fewer than 5 digits keeps no digit
// at all. It never panics on odd input.
func MaskPhone(phone string) string {
	if phone == "" {
		return ""
	}
	plus := strings.HasPrefix(strings.TrimSpace(phone), "+")
	digits := make([]byte, 0, len(phone))
	for i := 0; i < len(phone); i++ {
		if c := phone[i]; c >= '0' && c <= '9' {
			digits = append(digits, c)
		}
	}
	var b strings.Builder
	if plus {
		b.WriteByte('+')
	}
	if len(digits) < 5 {
		b.WriteString(phoneStars)
		return b.String()
	}
	b.WriteByte(digits[0])
	b.WriteString(phoneStars)
	b.Write(digits[len(digits)-2:])
	return b.String()
}

// maxIdempotencyKey is the longest Idempotency-Key accepted.
const maxIdempotencyKey = 255

// ValidIdempotencyKey checks a client's Idempotency-Key: 1 to 255 printable
// ASCII characters (space through tilde). Anything else is a 400
// *RequestError with code bad_idempotency_key, so a client learns of a broken
// key instead of silently getting no idempotency.
func ValidIdempotencyKey(key string) error {
	if key == "" || len(key) > maxIdempotencyKey {
		return badRequest("bad_idempotency_key", "Idempotency-Key",
			"Idempotency-Key must be 1 to %d characters long", maxIdempotencyKey)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x20 || c > 0x7e {
			return badRequest("bad_idempotency_key", "Idempotency-Key",
				"Idempotency-Key must be printable ASCII")
		}
	}
	return nil
}

// requestFingerprint is a hash of what an order's request asked for: its
// account, amount, items, description, upstream order id, the buyer's
// contacts, and the return URL its placeholders made ({kassa.order_id}
// left as it is). Without a return URL it is the hash of earlier
// releases, so that their orders' keys still replay.
func (o *Order) requestFingerprint(returnURL string) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	_ = enc.Encode([]any{o.Account, FormatAmount(o.Amount), o.Description, o.ShopOrderID, o.Email, o.Phone})
	for _, it := range o.Items {
		_ = enc.Encode([]any{it.SKU, it.Name, it.Qty, FormatAmount(it.Price), it.VAT})
	}
	if returnURL != "" {
		_ = enc.Encode([]any{"return_url", returnURL})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// orderIDBytes is the entropy of an order id: 128 bits.
const orderIDBytes = 16

// orderIDLen is the length of an order id: 16 bytes in unpadded base64url.
const orderIDLen = 22

// NewOrderID returns a random order id: 128 bits from crypto/rand in
// unpadded base64url (22 URL-safe characters). The id is the buyer's
// capability to read the order, so it must be unguessable. It never starts
// with - or _, so that a command line never takes it for a flag (`caddy
// kassa order <id>`): an id that would is drawn again, which costs less
// than a twentieth of a bit.
func NewOrderID() string {
	var b [orderIDBytes]byte
	for {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails; it crashes the program instead
		// The first character is the top 6 bits of the first byte; 62 and
		// 63 are - and _.
		if b[0]>>2 < 62 {
			return base64.RawURLEncoding.EncodeToString(b[:])
		}
	}
}

// ValidOrderID reports whether s has the shape of an order id: exactly 22
// characters of the base64url alphabet. Ids from a request are checked with
// it before they reach storage, so that an id can never be a path such as
// ../x nor cost a storage read when it is garbage.
func ValidOrderID(s string) bool {
	if len(s) != orderIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
