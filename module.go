// Package kassa is a Caddy plugin that lets a storefront take payments through
// CrystalPAY or Pegas-kassa and issue 54-FZ fiscal receipts through Smart
// Cashier, with every provider call made inside Caddy.
//
// Payment providers are Caddy modules in the kassa.payments namespace and
// receipt providers in kassa.receipts, so another plugin can add a provider
// without touching this one: a module that implements PaymentProvider (or
// ReceiptProvider) is used like the built-in ones, and tells the app more
// through the optional interfaces below (OrderIDIdempotent,
// CallTimeoutReporter, AmountChecker, DocumentProvider; VATChecker,
// DefaultVATReporter, LocationReporter, SendWindowReporter; for both,
// EndpointReporter). The app asks
// these interfaces, never a provider's name. ProviderClient is the HTTP
// client every provider needs, so that a new one writes only its wire
// format; docs/EXTENDING.md walks through one.
package kassa

import (
	"context"
	"io"
	"time"

	"github.com/shopspring/decimal"
)

// PaymentProvider is what a payment account does: it creates payment links
// and reports on them, cancels unpaid ones, and moves the account's money.
// Every method honours ctx and returns the typed errors of errors.go.
type PaymentProvider interface {
	// CreatePayment creates an invoice for req.Amount and tells how the
	// buyer pays it. It is not retried by the provider: see each provider's
	// notes on what a retry means for it.
	CreatePayment(ctx context.Context, req PaymentRequest) (Payment, error)

	// PaymentStatus reports whether the payment has been paid.
	PaymentStatus(ctx context.Context, ref PaymentRef) (PaymentStatus, error)

	// CancelPayment withdraws an unpaid invoice. A provider that cannot
	// cancel returns an error that is ErrNotSupported.
	CancelPayment(ctx context.Context, ref PaymentRef) error

	// Balance reports the account's balance.
	Balance(ctx context.Context) (Balance, error)

	// Payout sends money from the account to a payee. The provider never
	// retries it: a payout whose reply was lost may have been made. The
	// admin API sends one again only to an OrderIDIdempotent provider,
	// under the same OrderID.
	Payout(ctx context.Context, req PayoutRequest) (Payout, error)
}

// ProviderSwitch is a payment module whose configuration picks one of its
// implementations (CrystalPAY's api v1 or v3). The app uses what Provider
// returns, and asks the optional interfaces of it, not of the module, so
// that an implementation offers only what its API has.
type ProviderSwitch interface {
	Provider() PaymentProvider
}

// DocumentProvider is a payment provider that can hand out a document for a
// paid payment (Pegas-kassa's receipt file).
type DocumentProvider interface {
	// PaymentDocument opens the document of a paid payment in the given
	// format ("pdf" or "jpeg"). The caller closes Document.Body.
	PaymentDocument(ctx context.Context, ref PaymentRef, format string) (*Document, error)
}

// ReceiptProvider is a fiscal-receipt service (54-FZ). Operations are
// idempotent by their operation id: sending one again returns the first
// result and creates nothing new.
type ReceiptProvider interface {
	// FormReceipt queues a fiscal receipt under r.OperationID.
	FormReceipt(ctx context.Context, r Receipt) error

	// ReceiptStatus reports the state of an operation: a receipt or a cash
	// deposit or withdrawal.
	ReceiptStatus(ctx context.Context, operationID string) (Operation, error)

	// DepositCash records cash put into a till.
	DepositCash(ctx context.Context, op CashOperation) error

	// WithdrawCash records cash taken out of a till.
	WithdrawCash(ctx context.Context, op CashOperation) error
}

// PaymentRequest is an invoice to create.
type PaymentRequest struct {
	// OrderID is the shop's own id of the order. Pegas-kassa requires it to
	// be unique and rejects a repeat, which makes a re-sent request safe.
	OrderID string
	// Amount is what the buyer pays, in rubles.
	Amount decimal.Decimal
	// ReturnURL is where the buyer is sent after paying (CrystalPAY
	// redirect, Pegas-kassa success_url). Optional.
	ReturnURL string
	// Phone is the buyer's phone in international format (Pegas-kassa
	// invoice-qw). Optional.
	Phone string
	// PayerAccount is the sender's wallet (Pegas-kassa qiwi_account). Optional.
	PayerAccount string
	// TTL is how long the invoice lives: the order's time to live
	// (Pegas-kassa ttl for wallet-type invoices, CrystalPAY v3 lifetime;
	// both in whole minutes, rounded up). Optional.
	TTL time.Duration
	// Email is the buyer's e-mail, when given (CrystalPAY v3
	// payer_details). Optional.
	Email string
	// Description names the purchase on the provider's payment page
	// (CrystalPAY v3 description). Optional.
	Description string
}

// Payment is a created invoice and how the buyer pays it: by following URL,
// or, for wallet types that have no page, by paying to Wallet or Card.
type Payment struct {
	ID         string          `json:"id"`
	URL        string          `json:"url,omitempty"`
	Wallet     string          `json:"wallet,omitempty"`
	Card       string          `json:"card,omitempty"`
	Commission decimal.Decimal `json:"commission"`
	// Recovered: the provider has the invoice, but its reply was lost, so
	// only the shop's order id names it (Pegas-kassa refused a repeat).
	Recovered bool `json:"recovered,omitempty"`
}

// PaymentRef identifies a payment at its provider: by the provider's id, the
// shop's order id, or both (Pegas-kassa cancel needs both).
type PaymentRef struct {
	ID      string
	OrderID string
}

// PaymentStatus is what a provider says of a payment.
type PaymentStatus struct {
	Paid bool
	// Amount is the amount the provider reports as paid, when it reports one.
	Amount decimal.NullDecimal
	// Problem, when set, says the payment is neither paid nor simply unpaid
	// and needs an operator (CrystalPAY v3 "wrongamount": the buyer sent
	// another amount). The order is not paid; the text is noted on it.
	Problem string
}

// Balance is an account's balance: its total and, where the provider splits
// it, the balance of each wallet.
type Balance struct {
	Total   decimal.Decimal            `json:"balance"`
	Wallets map[string]decimal.Decimal `json:"wallets,omitempty"`
	// Account names the provider's account the balance is of, where the
	// provider tells it (CrystalPAY v3: the cash register's name), for Go
	// callers. The admin API leaves it out: CrystalPAY's is the login.
	Account string `json:"account,omitempty"`
}

// PayoutRequest is money to send from a payment account to a payee.
type PayoutRequest struct {
	Amount decimal.Decimal
	// To is the payee's account: wallet, card or phone number, or nickname.
	To string
	// Method is the provider's payout method: a CrystalPAY service code such
	// as "qw", or a Pegas-kassa method (wallet, yandex, card, nickname, phone).
	Method string
	// Comment goes with a Pegas-kassa payout (3 to 100 characters). Optional.
	Comment string
	// OrderID is the shop's id of the payout; Pegas-kassa rejects a repeat.
	// Optional.
	OrderID string
	// TTL is the payout's lifetime for Pegas-kassa wallet payouts. Optional.
	TTL time.Duration
}

// Payout is a payout the provider accepted. CrystalPAY v1 returns no id, so
// ID may be empty.
type Payout struct {
	ID         string          `json:"id,omitempty"`
	Commission decimal.Decimal `json:"commission"`
	// State is the payout's state where the provider tells it: one of the
	// PayoutState values. Empty when unknown.
	State PayoutState `json:"state,omitempty"`
}

// PayoutState is where a payout stands at a provider that tracks payouts.
type PayoutState string

// The states of a tracked payout. Only PayoutCreated may still be
// submitted or cancelled; PayoutPaid, PayoutFailed and PayoutCanceled are
// final.
const (
	// PayoutCreated: created, not submitted: nothing is paid yet.
	PayoutCreated PayoutState = "created"
	// PayoutProcessing: submitted, being paid.
	PayoutProcessing PayoutState = "processing"
	// PayoutPaid: the money went out.
	PayoutPaid PayoutState = "paid"
	// PayoutFailed: the provider gave up; nothing went out.
	PayoutFailed PayoutState = "failed"
	// PayoutCanceled: cancelled before it was submitted.
	PayoutCanceled PayoutState = "canceled"
)

// TwoStepPayer is a payment provider whose payouts are made in two steps
// and have ids (CrystalPAY v3 payoff/create, payoff/submit, payoff/info): a
// created payout pays nothing until it is submitted, and its fate can be
// asked for by id. The admin API stores the id between the steps, so a
// lost reply is resolved by asking, never by paying again; Payout is not
// used for such a provider.
type TwoStepPayer interface {
	// CreatePayout creates a payout without paying it. Never retried.
	CreatePayout(ctx context.Context, req PayoutRequest) (Payout, error)
	// SubmitPayout pays a created payout.
	SubmitPayout(ctx context.Context, id string) (Payout, error)
	// CancelPayout withdraws a created payout that was not submitted.
	CancelPayout(ctx context.Context, id string) (Payout, error)
	// PayoutStatus reports a payout by its id.
	PayoutStatus(ctx context.Context, id string) (Payout, error)
}

// CallbackReceiver is a payment provider that posts signed callbacks when a
// payment changes (CrystalPAY v3). The kassa_callback handler hands it each
// callback's body; the handler then reads the payment back from the
// provider, so a callback only ever says where to look, never what to do.
type CallbackReceiver interface {
	// ParseCallback checks a callback's signature and reads what it names.
	// A body that is not a callback is ErrInvalid; a callback whose
	// signature does not hold is ErrBadSignature.
	ParseCallback(body []byte) (Callback, error)
}

// Callback is what a callback with a valid signature names.
type Callback struct {
	// PaymentID is the provider's id of the payment; the signature covers it.
	PaymentID string
	// OrderID is the shop's order id the payment carries (CrystalPAY extra).
	// The signature does not cover it: it is only a hint where to look, and
	// the order found must hold PaymentID.
	OrderID string
	// Payout is set when the callback is about a payout, not a payment.
	Payout bool
}

// Document is a provider's document, streamed: the caller closes Body.
type Document struct {
	ContentType string
	// Length is the body's length in bytes, or -1 when unknown.
	Length int64
	Body   io.ReadCloser
}

// CashOperation is cash put into or taken out of a till.
type CashOperation struct {
	OperationID string
	// CashboxID is the till's GUID; the receipt provider's configured
	// cashbox is used when it is empty.
	CashboxID string
	Amount    decimal.Decimal
}

// OrderIDIdempotent is a payment provider that refuses a second payment for
// an order id it already has (with ErrDuplicate), so CreatePayment may be
// sent again after a lost reply without creating a second invoice, and
// Payout likewise without paying twice. The reconciler and the admin API's
// payouts re-send only to such providers.
type OrderIDIdempotent interface {
	PaymentProvider
	// RefusesRepeatedOrderID marks the behaviour; it does nothing.
	RefusesRepeatedOrderID()
}

// VATChecker is a receipt provider that can tell whether a receipt may
// carry a VAT rate (Smart Cashier: whether the account has a taxType code
// for it). The app checks its catalog against it at start, and a trusted
// upstream's items at checkout, so that no rate is put on a receipt as
// another.
type VATChecker interface {
	CheckVAT(v VAT) error
}

// AmountChecker is a payment provider with rules on amounts beyond the
// general ones (CrystalPAY: whole rubles only). The checkout asks it before
// an order is stored, so a refused amount changes nothing.
type AmountChecker interface {
	CheckAmount(amount decimal.Decimal) error
}

// CallTimeoutReporter is a payment provider that says how long one of its
// calls may take (a ProviderClient's CallTimeout). The reconciler takes an
// order still in creating for one whose checkout was interrupted only after
// twice this and a second, so that it never races a checkout still waiting
// for the provider. For a provider without it, the reconciler waits a
// minute, and so it does for a reported timeout of zero or less: a
// provider whose calls can take longer must implement it.
type CallTimeoutReporter interface {
	CallTimeout() time.Duration
}

// DefaultVATReporter is a receipt provider that puts a VAT rate on the
// positions that carry none (Smart Cashier: its vat option). The checkout
// keeps the rate in the order, so that its receipt page shows the receipt
// as it was printed, and the app warns at start when the rate is the
// general one before 2026. Without it, such positions are shown without
// VAT.
type DefaultVATReporter interface {
	DefaultVAT() VAT
}

// LocationReporter is a receipt provider that knows the time zone of the
// place of settlement, in which 54-FZ wants a receipt's time shown. The
// receipt page uses it; without it, the page shows Moscow time.
type LocationReporter interface {
	Location() *time.Location
}

// SendWindowReporter is a receipt provider that says how long a send of an
// operation can take, its own retries included: until then, a send that
// seemed to fail may still land. The operator's retry of a refused receipt
// waits that long after the send; without it, a minute.
type SendWindowReporter interface {
	SendWindow() time.Duration
}

// RateLimitReporter is a payment provider that publishes how many requests
// a second its API takes (CrystalPAY's v3 API asks for about 5). The
// reconciler keeps its calls to an account of such a provider within it,
// unless the kassa app's rate_limit says otherwise.
type RateLimitReporter interface {
	// RateLimit is the provider's limit in requests a second; zero or less
	// is none.
	RateLimit() float64
}

// EndpointReporter is a payment or receipt provider that says where its
// calls go: its API's host, and whether that is a sandbox (a test double,
// whose payments and receipts are not real). At start the app logs an
// error for each payment account that is a sandbox while receipts are
// real, or the reverse. ProviderClient implements it; a module passes its
// client's answer on.
type EndpointReporter interface {
	APIEndpoint() (host string, sandbox bool)
}
