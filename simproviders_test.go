package kassa

// An in-memory, deterministic simulator of the three provider APIs at the
// HTTP wire level, for lifecycle simulation tests (FoundationDB/VOPR style).
//
// It is an independent model written from the vendor documents, never from
// the project's sandbox/ package: /work/shared/PROVIDERS.md first (it corrects
// the seeds), then the Russian seeds in /work/shared/seeds/
// (crystalpay-api.md, pegas-kassa-api.txt, smart-cashier-api.md). Where the
// documents say nothing, the choice made is marked "seed silent:".
//
// Everything it does is decided by the world's clock (Now) and random source
// (Rand), in call order: the same seed and the same calls replay the same
// history, byte for byte.

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// Endpoints and credentials the harness configures the real client modules
// with. The hosts exist only inside the world.
const (
	simCrystalEndpoint = "https://crystalpay.sim/api.php"
	simPegasEndpoint   = "https://pegas.sim/api/v1"
	simCashierEndpoint = "https://smartcashier.sim/v1.0"

	simCrystalLogin, simCrystalSecret, simCrystalSecret2 = "simkassa", "sim-crystal-s1-0f5601d7150d", "sim-crystal-s2-9b2e714c8d05"

	simPegasToken   = "sim-pegas-token-5d8e1a7c33f0"
	simCashierToken = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJzaW1rYXNzYSIsImlhdCI6MTcwMDAwMDAwMH0.c2ltLXNtYXJ0LWNhc2hpZXItc2lnbmF0dXJl"
)

// Fixed values of the simulated providers.
const (
	simCrystalHost = "crystalpay.sim"
	simPegasHost   = "pegas.sim"
	simCashierHost = "smartcashier.sim"

	// simCrystalPayPage is where a CrystalPAY v1 link points, as the seed's
	// generate reply shows.
	simCrystalPayPage = "https://pay.crystalpay.ru/?i="
	// simPegasPayPage is the payment page of a Pegas-kassa invoice-type
	// deposit. Seed silent on its form: any URL on a pay host.
	simPegasPayPage = "https://pay.pegas.sim/invoice/"
	// simTillID is the Smart Cashier till that handles operations sent
	// without a cashboxId.
	simTillID = "5e1f0c2a-7b3d-4c8e-9a61-0d2f3b4c5d6e"
	// simTillError is what the till says when it cannot print (the seed's
	// example of a status 3 operation).
	simTillError = "Открыта крышка."
)

// simWorld simulates CrystalPAY (API v1), Pegas-kassa and Smart Cashier in
// memory, as an http.RoundTripper: set a provider module's HTTP client's
// Transport to the world and its endpoint to the sim* constants.
//
// Random draws, all from Rand: six fault draws per request (see simFaults),
// then, depending only on the world's state and the request, the content
// draws: ten for a CrystalPAY id, one for a CrystalPAY error's
// error_message, one for a paid checkpay's "amount", one for a Pegas-kassa
// error object's shape, one for a duplicate's or a format rule's message,
// one for a PegasReceiptNotDocument, LostReply or Garbage form; newSimWorld
// draws once, Process once or twice per queued operation.
//
// The simulation is single-threaded; RoundTrip may be re-entered from
// Before (a nested call from another simulated instance). A mutex guards the
// state anyway, and is never held while Before runs.
type simWorld struct {
	Now  func() time.Time // the simulation's clock; set by the harness
	Rand *rand.Rand       // math/rand/v2, seeded by the harness: every random choice comes from it, in call order, so a history replays exactly

	Faults simFaults

	// Before, when non-nil, is called at the start of every request the
	// transport receives (refused ones too), before the request is
	// processed and before its faults are drawn, with the operation's name:
	// "crystalpay.balance|generate|checkpay|withdraw",
	// "pegas.deposit|deposit/cancel|withdrawal|transaction/receipt/file|balance",
	// "smartcashier.formReceipt|depositCash|withdrawCash|checkStatus"
	// (".unknown" for any other path or operation of a known host). It may
	// re-enter RoundTrip, and may change Faults for the call about to be
	// processed.
	Before func(op string)

	// CrystalBalance and PegasBalance are the accounts' money: a paid
	// invoice adds to it, a payout takes from it, and a payout larger than
	// it is refused. Both start at zero; the harness may set them.
	CrystalBalance, PegasBalance decimal.Decimal
	// CrystalBalanceWallets makes CrystalPAY's balance answer in the newer
	// per-wallet form (PROVIDERS.md: "newer accounts answer an object per
	// wallet"); newSimWorld picks it from Rand.
	CrystalBalanceWallets bool
	// CashierTokenExpired makes Smart Cashier refuse the shop's token (401)
	// while it is set, as when the JWT expired and nobody renewed it yet.
	CashierTokenExpired bool
	// ExtraTaxTypes are Smart Cashier taxType codes accepted beyond the
	// seed's 1–6 (an account's own code for a rate the API version does not
	// know, PROVIDERS.md "VAT in 2026"). Seed silent on other codes: without
	// this they are refused with 400.
	ExtraTaxTypes []int

	mu    sync.Mutex
	calls map[string]int

	invoices []*simInvoice          // both providers, creation order
	payHere  map[string]*simInvoice // payment page URL, wallet or card number → invoice
	crystal  map[string]*simInvoice // CrystalPAY id → invoice
	crystalN int                    // CrystalPAY ids issued

	pegasN       int                  // Pegas-kassa ids issued
	pegasByID    map[string]*simPegas // Pegas-kassa id → transaction
	pegasByOrder map[string]*simPegas // order_id → transaction (deposits and payouts share them)

	payouts []*simPayout

	ops      []*simOp // Smart Cashier operations, creation order
	opByID   map[string]*simOp
	fiscalN  int64     // fiscal documents issued by the till's fiscal drive
	shift    int64     // current shift's number
	shiftAt  time.Time // when it opened
	receiptN int64     // receipts in the current shift
}

// simFaults are per-call probabilities in [0,1]; 0 means never. Each call
// draws all six call faults from Rand, in this order, whatever the operation
// and whatever the probabilities: Refused, ServerError, LostReply, Garbage,
// PegasOrderIDInvalid, PegasReceiptNotDocument. TillFailure is drawn by
// Process, once per queued operation.
type simFaults struct {
	// Refused: the request never arrives: a transport error, nothing
	// processed (as a refused connection).
	Refused float64
	// LostReply: the request is processed, then the reply is lost: a
	// transport error, either from RoundTrip or while reading the body.
	LostReply float64
	// ServerError: HTTP 500 (Pegas: its documented internal_error object;
	// Smart Cashier: a 500; CrystalPAY: a web server's error page), nothing
	// processed.
	ServerError float64
	// Garbage: the request is processed, and the reply is HTTP 200 with a
	// body that is not the documented JSON (an HTML error page of a proxy,
	// truncated JSON, HTML labelled as JSON).
	Garbage float64
	// PegasOrderIDInvalid: a deposit or withdrawal that carries an order_id
	// is refused with HTTP 400 invalid_parameters and a validation_error
	// whose path is "order_id" and whose message is about a format or
	// length rule, never a duplicate; nothing is processed.
	PegasOrderIDInvalid float64
	// PegasReceiptNotDocument: transaction/receipt/file for a deposit that
	// is NOT paid answers HTTP 200 instead of 404, with a body that is not a
	// document: an HTML page served as application/pdf, an HTML page as
	// text/html, or a JSON object without an error member as
	// application/json. (Seed silent on what an unpaid deposit's receipt
	// file answers; a tolerant client must not read these as "paid".)
	PegasReceiptNotDocument float64
	// TillFailure: a Smart Cashier receipt or cash operation, when the till
	// processes it, ends in status 3 (not processed) with errorMessage
	// "Открыта крышка." instead of status 2.
	TillFailure float64
}

// simInvoice is an invoice as the provider sees it.
type simInvoice struct {
	Provider string // "crystalpay" or "pegas"
	ID       string // the provider's id
	// OrderID is, for pegas, the order_id sent; for crystalpay, the "order"
	// query parameter of the redirect URL sent with generate, if any.
	OrderID string
	Type    string // pegas: the deposit type sent
	Amount  decimal.Decimal
	// URL is the payment page handed out (crystalpay always; pegas invoice
	// types and yandex).
	URL string
	// Wallet, Card: what the buyer pays to (pegas wallet, wallet-card).
	Wallet, Card string
	Paid         bool
	PaidAt       time.Time
	Cancelled    bool // pegas deposit/cancel succeeded
	CreatedAt    time.Time
}

// simPayout is a payout the provider executed.
type simPayout struct {
	Provider, To, Method, OrderID, Comment string
	ID                                     string // pegas: its id; crystalpay: none is given
	Amount                                 decimal.Decimal
	At                                     time.Time
}

// simOperation is a Smart Cashier operation as the provider sees it.
type simOperation struct {
	OperationID  string
	Kind         string // "formReceipt", "depositCash", "withdrawCash"
	ReceiptType  int    // formReceipt's receiptType
	Total        decimal.Decimal
	Email, Phone string
	Positions    int
	// TaxTypes are the positions' taxType codes, in order.
	TaxTypes             []int
	Status               int // 1 queued, 2 processed, 3 not processed
	Error                string
	FiscalDocumentNumber int64 // set when processed
	CreatedAt            time.Time
	// Repeats counts the requests with this operationId after the one that
	// created it (answered with its first result, nothing processed);
	// Mismatched counts those whose operation or body differed from the
	// first (a client must re-send the same thing under the same id).
	Repeats, Mismatched int
}

// simPegas is a Pegas-kassa transaction: a deposit or a payout.
type simPegas struct {
	id, orderID string
	deposit     *simInvoice
	payout      *simPayout
	commission  decimal.Decimal // a deposit's, kept from the credit to the balance
}

// simOp is a Smart Cashier operation with its wire details.
type simOp struct {
	simOperation
	cashbox     string // the cashboxId sent, if any
	handler     string // the till that handled it
	processedAt time.Time
	sign        string
	receiptNo   int64
	shift       int64
	canonical   string // kind and canonical body of the first request
	firstReply  []byte // the first request's reply, replayed to repeats
}

// newSimWorld returns a world with the clock and the random source given,
// no faults and empty balances.
func newSimWorld(now func() time.Time, r *rand.Rand) *simWorld {
	return &simWorld{
		Now:  now,
		Rand: r,
		// One draw at creation: which balance form this CrystalPAY
		// account answers in.
		CrystalBalanceWallets: r.IntN(2) == 1,
		calls:                 make(map[string]int),
		payHere:               make(map[string]*simInvoice),
		crystal:               make(map[string]*simInvoice),
		pegasByID:             make(map[string]*simPegas),
		pegasByOrder:          make(map[string]*simPegas),
		opByID:                make(map[string]*simOp),
	}
}

// now is the simulation's time (the zero time without a clock).
func (w *simWorld) now() time.Time {
	if w.Now == nil {
		return time.Time{}
	}
	return w.Now()
}

// Invoices returns copies of every invoice, in creation order.
func (w *simWorld) Invoices() []simInvoice {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]simInvoice, len(w.invoices))
	for i, inv := range w.invoices {
		out[i] = *inv
	}
	return out
}

// InvoiceOf returns a copy of the invoice made for an order id (the first,
// should there be more).
func (w *simWorld) InvoiceOf(orderID string) (simInvoice, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, inv := range w.invoices {
		if inv.OrderID == orderID {
			return *inv, true
		}
	}
	return simInvoice{}, false
}

// Payouts returns copies of the payouts the providers executed (processed),
// including ones whose reply was lost, in execution order.
func (w *simWorld) Payouts() []simPayout {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]simPayout, len(w.payouts))
	for i, p := range w.payouts {
		out[i] = *p
	}
	return out
}

// Operations returns copies of the Smart Cashier operations accepted, in
// creation order.
func (w *simWorld) Operations() []simOperation {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]simOperation, len(w.ops))
	for i, op := range w.ops {
		out[i] = op.simOperation
	}
	return out
}

// Calls counts the requests received per operation name (as passed to
// Before), faults included.
func (w *simWorld) Calls() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int, len(w.calls))
	for k, v := range w.calls {
		out[k] = v
	}
	return out
}

// Pay is the buyer paying at a payment page URL, or to a Pegas-kassa wallet
// or card number: the invoice becomes paid if it is payable. A CrystalPAY v1
// link never expires (the API has no lifetime and no cancel): it is payable
// forever, also after the shop gave up on it. A Pegas-kassa deposit is
// payable until cancelled (seed silent on what happens after a wallet
// deposit's ttl: the world does not end it, as money arriving late is the
// harder case for a shop).
// Pay reports whether money moved: false for an unknown URL or number, an
// invoice already paid, or a cancelled one.
func (w *simWorld) Pay(urlOrNumber string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	inv := w.payHere[strings.TrimSpace(urlOrNumber)]
	if inv == nil || inv.Paid || inv.Cancelled {
		return false
	}
	inv.Paid, inv.PaidAt = true, w.now()
	switch inv.Provider {
	case "crystalpay":
		// Seed silent on CrystalPAY's commission: the whole amount.
		w.CrystalBalance = w.CrystalBalance.Add(inv.Amount)
	case "pegas":
		w.PegasBalance = w.PegasBalance.Add(inv.Amount.Sub(w.pegasByID[inv.ID].commission))
	}
	return true
}

// Process is the till working through its queue: every Smart Cashier
// operation in status 1, in creation order, ends in 2 (with fiscal
// parameters) or, with probability Faults.TillFailure, in 3 with the seed's
// "Открыта крышка.". One TillFailure draw per queued operation, then, for a
// processed one, one draw for its fiscal sign.
func (w *simWorld) Process() {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	for _, op := range w.ops {
		if op.Status != 1 {
			continue
		}
		op.handler = op.cashbox
		if op.handler == "" {
			op.handler = simTillID
		}
		if w.Rand.Float64() < w.Faults.TillFailure {
			// The seed's status 3 example: a handling till, no
			// processing time, no fiscal parameters.
			op.Status, op.Error = 3, simTillError
			continue
		}
		// Seed silent on shifts: one lasts at most 24 hours (54-FZ), and
		// the first document after that opens the next one.
		if w.shift == 0 || now.Sub(w.shiftAt) >= 24*time.Hour {
			w.shift, w.shiftAt, w.receiptN = w.shift+1, now, 0
		}
		w.fiscalN++
		op.Status, op.processedAt = 2, now
		op.FiscalDocumentNumber = w.fiscalN
		op.shift = w.shift
		if op.Kind == "formReceipt" {
			w.receiptN++
			op.receiptNo = w.receiptN
		}
		// The fiscal sign (ФПД) is a 32-bit number, printed as up to 10
		// digits.
		op.sign = strconv.FormatUint(uint64(w.Rand.Uint32()), 10)
	}
}

// simDraws are one call's fault decisions.
type simDraws struct {
	refused, server, lost, garbage, orderIDInvalid, notDocument bool
}

// draw decides a call's faults: always six draws, in a fixed order.
func (w *simWorld) draw() simDraws {
	var d simDraws
	f := w.Faults
	d.refused = w.Rand.Float64() < f.Refused
	d.server = w.Rand.Float64() < f.ServerError
	d.lost = w.Rand.Float64() < f.LostReply
	d.garbage = w.Rand.Float64() < f.Garbage
	d.orderIDInvalid = w.Rand.Float64() < f.PegasOrderIDInvalid
	d.notDocument = w.Rand.Float64() < f.PegasReceiptNotDocument
	return d
}

// simReply is a reply before it becomes an *http.Response.
type simReply struct {
	status int
	ctype  string
	body   []byte
	header http.Header // extra headers
}

// RoundTrip is the network and the three providers: it routes the request
// by host, counts it, calls Before, draws the call's faults and answers.
func (w *simWorld) RoundTrip(req *http.Request) (*http.Response, error) {
	body, bodyErr := simReadBody(req)
	op := simOpName(req.URL)
	if op == "" {
		return nil, &net.OpError{Op: "dial", Net: "tcp",
			Err: &net.DNSError{Err: "no such host", Name: req.URL.Hostname(), IsNotFound: true}}
	}
	w.mu.Lock()
	w.calls[op]++
	w.mu.Unlock()
	if w.Before != nil {
		w.Before(op)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	d := w.draw()
	switch {
	case req.Context().Err() != nil:
		// The caller gave up before the request went out.
		return nil, req.Context().Err()
	case d.refused:
		return nil, simNetError("dial", syscall.ECONNREFUSED)
	case bodyErr != nil:
		return nil, simNetError("write", syscall.EPIPE)
	case d.server:
		return w.response(req, w.serverError(op)), nil
	}
	r := w.handle(req, op, body, d)
	if d.lost {
		// Processed; the reply is lost either before its headers or in
		// the middle of its body.
		if w.Rand.IntN(2) == 0 {
			return nil, simNetError("read", syscall.ECONNRESET)
		}
		resp := w.response(req, r)
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(r.body[:len(r.body)/2]), simBrokenReader{}))
		return resp, nil
	}
	if d.garbage {
		r = w.garbage(r)
	}
	return w.response(req, r), nil
}

// simReadBody reads and closes a request's body, as a RoundTripper must.
func simReadBody(req *http.Request) ([]byte, error) {
	if req.Body == nil {
		return nil, nil
	}
	defer req.Body.Close()
	return io.ReadAll(io.LimitReader(req.Body, 1<<20))
}

// simNetError is a transport failure as net/http reports one.
func simNetError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Err: errno}
}

// simBrokenReader is a connection that dies in the middle of a body.
type simBrokenReader struct{}

func (simBrokenReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// simOpName is the operation a URL calls, "" for a host outside the world.
func simOpName(u *url.URL) string {
	switch u.Hostname() {
	case simCrystalHost:
		if o := u.Query().Get("o"); u.Path == "/api.php" && slices.Contains([]string{"balance", "generate", "checkpay", "withdraw"}, o) {
			return "crystalpay." + o
		}
		return "crystalpay.unknown"
	case simPegasHost:
		if p, ok := strings.CutPrefix(u.Path, "/api/v1/"); ok &&
			slices.Contains([]string{"deposit", "deposit/cancel", "withdrawal", "transaction/receipt/file", "balance"}, p) {
			return "pegas." + p
		}
		return "pegas.unknown"
	case simCashierHost:
		if p, ok := strings.CutPrefix(u.Path, "/v1.0/operations/"); ok &&
			slices.Contains([]string{"formReceipt", "depositCash", "withdrawCash", "checkStatus"}, p) {
			return "smartcashier." + p
		}
		return "smartcashier.unknown"
	}
	return ""
}

// handle processes a request that arrived.
func (w *simWorld) handle(req *http.Request, op string, body []byte, d simDraws) simReply {
	provider, name, _ := strings.Cut(op, ".")
	switch provider {
	case "crystalpay":
		return w.crystalPay(req)
	case "pegas":
		return w.pegas(req, name, body, d)
	default:
		return w.smartCashier(req, name, body)
	}
}

// response makes the *http.Response net/http expects of a transport.
func (w *simWorld) response(req *http.Request, r simReply) *http.Response {
	h := http.Header{}
	for k, v := range r.header {
		h[k] = v
	}
	if r.ctype != "" {
		h.Set("Content-Type", r.ctype)
	}
	h.Set("Content-Length", strconv.Itoa(len(r.body)))
	h.Set("Date", w.now().UTC().Format(http.TimeFormat))
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", r.status, http.StatusText(r.status)),
		StatusCode:    r.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(r.body)),
		ContentLength: int64(len(r.body)),
		Request:       req,
	}
}

// simProxyPage is the HTML a reverse proxy or hosting panel puts in front of
// an API when something goes wrong.
const simProxyPage = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n" +
	"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n"

// garbage replaces a processed request's reply with HTTP 200 and a body
// that is not the documented one: one draw for the form.
func (w *simWorld) garbage(r simReply) simReply {
	html := simReply{status: http.StatusOK, ctype: "text/html; charset=utf-8", body: []byte(simProxyPage)}
	switch w.Rand.IntN(3) {
	case 0:
		return html
	case 1:
		// The real reply cut in half: not JSON any more (a prefix of a
		// JSON object never is).
		if b := bytes.TrimSpace(r.body); len(b) >= 2 && b[0] == '{' {
			return simReply{status: http.StatusOK, ctype: "application/json", body: b[:len(b)/2]}
		}
		return html
	default:
		html.ctype = "application/json"
		return html
	}
}

// serverError is a provider's HTTP 500, before it processed anything.
func (w *simWorld) serverError(op string) simReply {
	provider, _, _ := strings.Cut(op, ".")
	switch provider {
	case "pegas":
		// PROVIDERS.md/seed: 500 internal_error, in an error object.
		return w.pegasError(http.StatusInternalServerError, "internal_error", "Внутренняя ошибка системы.", "", "")
	case "smartcashier":
		// Seed silent on the body: ASP.NET's problem details.
		return simJSONReply(http.StatusInternalServerError, simMustJSON(simProblem{
			Type:   "https://tools.ietf.org/html/rfc7231#section-6.6.1",
			Title:  "An error occurred while processing your request.",
			Status: http.StatusInternalServerError,
		}))
	default:
		// Seed silent: a PHP script that died behind its web server.
		return simReply{status: http.StatusInternalServerError, ctype: "text/html; charset=utf-8",
			body: []byte("<html><head><title>500 Internal Server Error</title></head><body><h1>Internal Server Error</h1></body></html>\n")}
	}
}

// ---------------------------------------------------------------------------
// CrystalPAY, API v1 (api.php): PROVIDERS.md "API v1", seed crystalpay-api.md.

// simCrystalAmount is a CrystalPAY amount: whole rubles as an integer string
// (PROVIDERS.md: "whole rubles in every example"). Seed silent on an upper
// bound: nine digits.
var simCrystalAmount = regexp.MustCompile(`^[1-9][0-9]{0,8}$`)

// simIDLetters make up the random part of a CrystalPAY id ("1_gdTSSewzsE").
const simIDLetters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// crystalPay answers an api.php call. Seed silent on the HTTP method and on
// POSTed forms: the script reads its query string, whatever the method.
func (w *simWorld) crystalPay(req *http.Request) simReply {
	if req.URL.Path != "/api.php" {
		return simReply{status: http.StatusNotFound, ctype: "text/html; charset=utf-8",
			body: []byte("<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>\n")}
	}
	q := req.URL.Query()
	if q.Get("n") != simCrystalLogin || q.Get("s") != simCrystalSecret {
		// Seed: a bad login or secret 1 is {"auth":"error"}, alone.
		return simCrystalReply(simField{"auth", "error"})
	}
	switch q.Get("o") {
	case "balance":
		return w.crystalBalance()
	case "generate":
		return w.crystalGenerate(q)
	case "checkpay":
		return w.crystalCheckpay(q)
	case "withdraw":
		return w.crystalWithdraw(q)
	default:
		// Seed silent on an unknown operation: the generic error.
		return w.crystalError("Неизвестная операция.")
	}
}

// crystalBalance answers balance in the account's form (PROVIDERS.md).
func (w *simWorld) crystalBalance() simReply {
	if w.CrystalBalanceWallets {
		// Seed silent on how the money splits between wallets: all of it
		// in the card wallet, the other empty, in the seed's order.
		wallets := simObject(
			simField{"QIWI", json.Number("0")},
			simField{"VISAMASTER.RUR", json.Number(w.CrystalBalance.String())})
		return simCrystalReply(simField{"balance", json.RawMessage(wallets)}, simField{"auth", "ok"})
	}
	return simCrystalReply(simField{"balance", w.CrystalBalance.String()}, simField{"auth", "ok"})
}

// crystalGenerate creates a payment link. No idempotency, no order id: a
// repeat is a second invoice, as at the real provider.
func (w *simWorld) crystalGenerate(q url.Values) simReply {
	amount := q.Get("amount")
	if !simCrystalAmount.MatchString(amount) {
		return w.crystalError("Неверная сумма.")
	}
	orderID := ""
	if redirect := q.Get("redirect"); redirect != "" {
		// Seed silent on checking the redirect URL: taken as it is.
		if u, err := url.Parse(redirect); err == nil {
			orderID = u.Query().Get("order")
		}
	}
	w.crystalN++
	suffix := make([]byte, 10)
	for i := range suffix {
		suffix[i] = simIDLetters[w.Rand.IntN(len(simIDLetters))]
	}
	id := strconv.Itoa(w.crystalN) + "_" + string(suffix)
	inv := &simInvoice{
		Provider:  "crystalpay",
		ID:        id,
		OrderID:   orderID,
		Amount:    decimal.RequireFromString(amount),
		URL:       simCrystalPayPage + id,
		CreatedAt: w.now(),
	}
	w.invoices = append(w.invoices, inv)
	w.crystal[id] = inv
	w.payHere[inv.URL] = inv
	return simCrystalReply(simField{"id", id}, simField{"url", inv.URL}, simField{"error", false}, simField{"auth", "ok"})
}

// crystalCheckpay reports a link's state. A paid one carries "amount" (a
// string) on one reply in two (PROVIDERS.md: "may carry").
func (w *simWorld) crystalCheckpay(q url.Values) simReply {
	inv := w.crystal[q.Get("i")]
	if inv == nil {
		// Seed silent on an unknown id: the generic error.
		return w.crystalError("Платёж не найден.")
	}
	if !inv.Paid {
		return simCrystalReply(simField{"state", "notpayed"}, simField{"error", false}, simField{"auth", "ok"})
	}
	if w.Rand.IntN(2) == 0 {
		return simCrystalReply(simField{"state", "payed"}, simField{"amount", inv.Amount.String()},
			simField{"error", false}, simField{"auth", "ok"})
	}
	return simCrystalReply(simField{"state", "payed"}, simField{"error", false}, simField{"auth", "ok"})
}

// crystalWithdraw pays out, signed with secret 2 (PROVIDERS.md). No id, no
// idempotency: a repeat pays again.
func (w *simWorld) crystalWithdraw(q url.Values) simReply {
	amount, wallet, service := q.Get("amount"), q.Get("wallet"), q.Get("service")
	sum := md5.Sum([]byte(wallet + "-" + amount + "-" + simCrystalSecret2))
	switch {
	case wallet == "" || service == "":
		return w.crystalError("Не указан кошелёк или сервис.")
	case q.Get("secret") != hex.EncodeToString(sum[:]):
		// PHP's md5() is lowercase hex, compared as a string: an
		// uppercase signature does not match.
		return w.crystalError("Неверная подпись.")
	case !simCrystalAmount.MatchString(amount):
		return w.crystalError("Неверная сумма.")
	}
	// Seed silent on service codes (PROVIDERS.md names "qw"): any is taken.
	value := decimal.RequireFromString(amount)
	if value.GreaterThan(w.CrystalBalance) {
		// Seed silent; "error: true — возможно не соблюдены условия".
		return w.crystalError("Недостаточно средств.")
	}
	w.CrystalBalance = w.CrystalBalance.Sub(value)
	w.payouts = append(w.payouts, &simPayout{Provider: "crystalpay", To: wallet, Method: service, Amount: value, At: w.now()})
	return simCrystalReply(simField{"error", false}, simField{"auth", "ok"})
}

// crystalError is "error": true, with "error_message" on one reply in two
// (PROVIDERS.md: it "may or may not be present").
func (w *simWorld) crystalError(message string) simReply {
	if w.Rand.IntN(2) == 0 {
		return simCrystalReply(simField{"error", true}, simField{"error_message", message}, simField{"auth", "ok"})
	}
	return simCrystalReply(simField{"error", true}, simField{"auth", "ok"})
}

// crystalReply is a CrystalPAY reply: always HTTP 200, the fields in order,
// encoded as PHP's json_encode does (slashes and non-ASCII escaped, as the
// seed's "https:\/\/pay..." shows). Seed silent on Content-Type: a bare PHP
// script's default, text/html; the JSON is in the body.
func simCrystalReply(fields ...simField) simReply {
	return simReply{status: http.StatusOK, ctype: "text/html; charset=UTF-8", body: simPHPJSON(simObject(fields...))}
}

// simPHPJSON escapes JSON as PHP does by default: "/" as "\/" and every
// non-ASCII character as \uXXXX. Both occur only inside strings.
func simPHPJSON(b []byte) []byte {
	var out bytes.Buffer
	for _, r := range string(b) {
		switch {
		case r == '/':
			out.WriteString(`\/`)
		case r < utf8.RuneSelf:
			out.WriteRune(r)
		case r <= 0xFFFF:
			fmt.Fprintf(&out, `\u%04x`, r)
		default:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&out, `\u%04x\u%04x`, r1, r2)
		}
	}
	return out.Bytes()
}

// ---------------------------------------------------------------------------
// Pegas-kassa (REST /api/v1): PROVIDERS.md "Pegas-kassa", seed
// pegas-kassa-api.txt.

// Pegas-kassa's vocabularies (seed).
var (
	simPegasTypes   = []string{"wallet", "wallet-card", "invoice-qw", "invoice-card", "invoice-select", "yandex"}
	simPegasMethods = []string{"wallet", "yandex", "card", "nickname", "phone"}
)

// Pegas-kassa's value rules. Seed silent on all of them; these are what a
// Laravel application's validator would plausibly say.
var (
	simPegasAmount = regexp.MustCompile(`^[0-9]{1,9}(\.[0-9]{1,2})?$`)
	simPegasPhone  = regexp.MustCompile(`^\+?[0-9]{10,15}$`)
	simPegasTTL    = regexp.MustCompile(`^[1-9][0-9]{0,5}$`)
)

// Seed silent on commissions: 3% of a deposit, kept from what the site is
// credited, and 2% of a payout, charged on top; rounded to the kopeck.
var (
	simPegasDepositFee = decimal.RequireFromString("0.03")
	simPegasPayoutFee  = decimal.RequireFromString("0.02")
)

// simPegasDuplicate are messages that plainly say an order id is taken (the
// first is Laravel's unique rule; the second echoes the seed's "Если
// транзакция с таким order_id уже создана").
var simPegasDuplicate = []string{
	"The order id has already been taken.",
	"Транзакция с таким order_id уже существует",
	"Поле order id уже занято.",
}

// simPegasBadOrderID are messages of a format or length rule on order_id:
// none says "already", "exists", "taken", "unique" or "duplicate".
var simPegasBadOrderID = []string{
	"The order id format is invalid.",
	"Поле order id имеет ошибочный формат.",
	"The order id may not be greater than 32 characters.",
	"Поле order id может содержать только латинские буквы, цифры и дефис.",
}

// pegas answers a Pegas-kassa call. Seed: GET with a query string or POST
// with a JSON body; replies are always JSON.
func (w *simWorld) pegas(req *http.Request, path string, body []byte, d simDraws) simReply {
	if req.Method != http.MethodGet && req.Method != http.MethodPost {
		// Seed silent on other methods: no such resource.
		return w.pegasError(http.StatusNotFound, "resource_not_found", "Ресурс не найден.", "", "")
	}
	params, err := simPegasParams(req, body)
	if err != nil {
		return w.pegasError(http.StatusBadRequest, "parsing_error", "Не удалось разобрать запрос.", "", "")
	}
	if params.Get("token") != simPegasToken {
		return w.pegasError(http.StatusUnauthorized, "authorization_error", "Неверный токен.", "", "")
	}
	switch path {
	case "deposit":
		return w.pegasDeposit(params, d)
	case "deposit/cancel":
		return w.pegasCancel(params)
	case "withdrawal":
		return w.pegasWithdrawal(params, d)
	case "transaction/receipt/file":
		return w.pegasReceipt(params, d)
	case "balance":
		return simJSONReply(http.StatusOK, simObject(simField{"balance", json.Number(w.PegasBalance.StringFixed(2))}))
	default:
		return w.pegasError(http.StatusNotFound, "resource_not_found", "Ресурс не найден.", "", "")
	}
}

// simPegasParams merges the query string and, for a POST, its JSON object
// (which wins), as Laravel's input does.
func simPegasParams(req *http.Request, body []byte) (url.Values, error) {
	params := req.URL.Query()
	if req.Method != http.MethodPost || len(bytes.TrimSpace(body)) == 0 {
		return params, nil
	}
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, errors.New("not a JSON object")
	}
	for k, raw := range obj {
		var s string
		var n json.Number
		switch {
		case json.Unmarshal(raw, &s) == nil:
			params.Set(k, s)
		case json.Unmarshal(raw, &n) == nil:
			params.Set(k, n.String())
		case string(raw) == "null":
		default:
			params.Set(k, string(raw))
		}
	}
	return params, nil
}

// pegasInvalid is a 400 invalid_parameters validation error on a field.
func (w *simWorld) pegasInvalid(path, message string) simReply {
	return w.pegasError(http.StatusBadRequest, "invalid_parameters", "The given data was invalid.", path, message)
}

// simPegasAmountProblem checks an amount parameter; "" when it is good.
func simPegasAmountProblem(amount string) string {
	switch {
	case amount == "":
		return "The amount field is required."
	case !simPegasAmount.MatchString(amount):
		return "The amount must be a number with at most two decimals."
	case !decimal.RequireFromString(amount).IsPositive():
		return "The amount must be at least 0.01."
	}
	return ""
}

// simPegasOrderIDProblem checks an order_id that was sent. Seed silent on its
// rules: up to 255 characters.
func simPegasOrderIDProblem(orderID string) string {
	if utf8.RuneCountInString(orderID) > 255 {
		return "The order id may not be greater than 255 characters."
	}
	return ""
}

// pegasDeposit creates an invoice. A repeated order_id is refused (seed:
// "повторный запрос приведет к сообщению об ошибке").
func (w *simWorld) pegasDeposit(p url.Values, d simDraws) simReply {
	amount, typ, orderID := p.Get("amount"), p.Get("type"), p.Get("order_id")
	if d.orderIDInvalid && orderID != "" {
		return w.pegasInvalid("order_id", simPegasBadOrderID[w.Rand.IntN(len(simPegasBadOrderID))])
	}
	if msg := simPegasAmountProblem(amount); msg != "" {
		return w.pegasInvalid("amount", msg)
	}
	switch {
	case typ == "":
		return w.pegasInvalid("type", "The type field is required.")
	case !slices.Contains(simPegasTypes, typ):
		return w.pegasInvalid("type", "The selected type is invalid.")
	case orderID == "":
		return w.pegasInvalid("order_id", "The order id field is required.")
	}
	if msg := simPegasOrderIDProblem(orderID); msg != "" {
		return w.pegasInvalid("order_id", msg)
	}
	if phone := p.Get("phone"); phone != "" && !simPegasPhone.MatchString(phone) {
		return w.pegasInvalid("phone", "The phone format is invalid.")
	}
	if ttl := p.Get("ttl"); ttl != "" && !simPegasTTL.MatchString(ttl) {
		return w.pegasInvalid("ttl", "The ttl must be a positive integer.")
	}
	if s := p.Get("success_url"); s != "" {
		if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return w.pegasInvalid("success_url", "The success url format is invalid.")
		}
	}
	if w.pegasByOrder[orderID] != nil {
		return w.pegasInvalid("order_id", simPegasDuplicate[w.Rand.IntN(len(simPegasDuplicate))])
	}

	value := decimal.RequireFromString(amount)
	txn := w.newPegas(orderID)
	inv := &simInvoice{
		Provider:  "pegas",
		ID:        txn.id,
		OrderID:   orderID,
		Type:      typ,
		Amount:    value,
		CreatedAt: w.now(),
	}
	txn.deposit, txn.commission = inv, value.Mul(simPegasDepositFee).Round(2)
	w.invoices = append(w.invoices, inv)
	fields := []simField{{"id", json.Number(txn.id)}, {"commission", json.Number(txn.commission.StringFixed(2))}}
	// Seed: "url" for the invoice types, "wallet"/"card" for the wallet
	// types. Seed silent on which of wallet or card each wallet type gets,
	// and on yandex: wallet → a wallet number, wallet-card → a card number,
	// yandex → a payment page. Each deposit gets its own number, so that a
	// payment to it names the deposit.
	switch typ {
	case "wallet":
		inv.Wallet = fmt.Sprintf("7900%07d", w.pegasN)
		w.payHere[inv.Wallet] = inv
		fields = append(fields, simField{"wallet", inv.Wallet})
	case "wallet-card":
		inv.Card = fmt.Sprintf("220070%010d", w.pegasN)
		w.payHere[inv.Card] = inv
		fields = append(fields, simField{"card", inv.Card})
	default:
		inv.URL = simPegasPayPage + txn.id
		w.payHere[inv.URL] = inv
		fields = append(fields, simField{"url", inv.URL})
	}
	// Seed: the reply lists "errors" among its fields; a success has none.
	fields = append(fields, simField{"errors", json.RawMessage("[]")})
	return simJSONReply(http.StatusOK, simObject(fields...))
}

// newPegas registers a transaction under the next id. Seed silent on ids:
// numbers from a counter, sent as JSON numbers.
func (w *simWorld) newPegas(orderID string) *simPegas {
	w.pegasN++
	txn := &simPegas{id: strconv.Itoa(100000 + w.pegasN), orderID: orderID}
	w.pegasByID[txn.id] = txn
	if orderID != "" {
		w.pegasByOrder[orderID] = txn
	}
	return txn
}

// pegasCancel cancels an unpaid deposit named by both its order_id and id.
func (w *simWorld) pegasCancel(p url.Values) simReply {
	orderID, id := p.Get("order_id"), p.Get("id")
	switch {
	case orderID == "":
		return w.pegasInvalid("order_id", "The order id field is required.")
	case id == "":
		return w.pegasInvalid("id", "The id field is required.")
	}
	txn := w.pegasByID[id]
	if txn == nil || txn.deposit == nil || txn.orderID != orderID {
		// Seed silent: an unknown deposit, or an id and order_id that do
		// not belong together, is not found.
		return w.pegasError(http.StatusNotFound, "resource_not_found", "Транзакция не найдена.", "", "")
	}
	switch {
	case txn.deposit.Paid:
		// Seed silent: a paid deposit cannot be cancelled.
		return w.pegasError(http.StatusBadRequest, "provider_error", "Счёт уже оплачен, отмена невозможна.", "", "")
	case txn.deposit.Cancelled:
		// Seed silent: a second cancel is refused, not repeated.
		return w.pegasError(http.StatusBadRequest, "provider_error", "Счёт уже отменён.", "", "")
	}
	txn.deposit.Cancelled = true
	return simJSONReply(http.StatusOK, simObject(simField{"id", json.Number(txn.id)}))
}

// pegasWithdrawal executes a payout. With an order_id, a repeat of it is
// refused like a deposit's (seed).
func (w *simWorld) pegasWithdrawal(p url.Values, d simDraws) simReply {
	amount, number, method, orderID := p.Get("amount"), p.Get("number"), p.Get("method"), p.Get("order_id")
	if d.orderIDInvalid && orderID != "" {
		return w.pegasInvalid("order_id", simPegasBadOrderID[w.Rand.IntN(len(simPegasBadOrderID))])
	}
	if msg := simPegasAmountProblem(amount); msg != "" {
		return w.pegasInvalid("amount", msg)
	}
	switch {
	case number == "":
		return w.pegasInvalid("number", "The number field is required.")
	case method == "":
		return w.pegasInvalid("method", "The method field is required.")
	case !slices.Contains(simPegasMethods, method):
		return w.pegasInvalid("method", "The selected method is invalid.")
	}
	if c, ok := p["comment"]; ok && len(c) > 0 {
		if n := utf8.RuneCountInString(c[0]); n < 3 || n > 100 {
			return w.pegasInvalid("comment", "The comment must be between 3 and 100 characters.")
		}
	}
	if msg := simPegasOrderIDProblem(orderID); orderID != "" && msg != "" {
		return w.pegasInvalid("order_id", msg)
	}
	if ttl := p.Get("ttl"); ttl != "" && !simPegasTTL.MatchString(ttl) {
		return w.pegasInvalid("ttl", "The ttl must be a positive integer.")
	}
	if orderID != "" && w.pegasByOrder[orderID] != nil {
		return w.pegasInvalid("order_id", simPegasDuplicate[w.Rand.IntN(len(simPegasDuplicate))])
	}
	value := decimal.RequireFromString(amount)
	commission := value.Mul(simPegasPayoutFee).Round(2)
	if value.Add(commission).GreaterThan(w.PegasBalance) {
		// Seed silent on a payout larger than the balance: a provider
		// error, nothing paid.
		return w.pegasError(http.StatusBadRequest, "provider_error", "Недостаточно средств на балансе.", "", "")
	}
	w.PegasBalance = w.PegasBalance.Sub(value.Add(commission))
	txn := w.newPegas(orderID)
	// Seed: a payout is a "заявка" (a request); the world executes it at
	// once.
	txn.payout = &simPayout{Provider: "pegas", ID: txn.id, To: number, Method: method, OrderID: orderID,
		Comment: p.Get("comment"), Amount: value, At: w.now()}
	w.payouts = append(w.payouts, txn.payout)
	return simJSONReply(http.StatusOK, simObject(
		simField{"id", json.Number(txn.id)},
		simField{"commission", json.Number(commission.StringFixed(2))},
		simField{"errors", json.RawMessage("[]")}))
}

// pegasReceipt serves a transaction's receipt document: a paid deposit's or
// an executed payout's (PROVIDERS.md: "A deposit is confirmed when its
// receipt document can be fetched"). An unpaid deposit has none: 404.
func (w *simWorld) pegasReceipt(p url.Values, d simDraws) simReply {
	id, orderID, format := p.Get("id"), p.Get("order_id"), p.Get("format")
	switch {
	case format == "":
		return w.pegasInvalid("format", "The format field is required.")
	case format != "pdf" && format != "jpeg":
		return w.pegasInvalid("format", "The selected format is invalid.")
	case id == "" && orderID == "":
		return w.pegasInvalid("order_id", "The order id field is required when id is not present.")
	}
	// Seed silent when both are sent: the id names it, and the order_id
	// must then be that transaction's.
	var txn *simPegas
	if id != "" {
		txn = w.pegasByID[id]
		if txn != nil && orderID != "" && txn.orderID != orderID {
			txn = nil
		}
	} else {
		txn = w.pegasByOrder[orderID]
	}
	if txn == nil {
		return w.pegasError(http.StatusNotFound, "resource_not_found", "Транзакция не найдена.", "", "")
	}
	if txn.deposit != nil && !txn.deposit.Paid {
		if d.notDocument {
			return w.pegasNotDocument(txn.deposit)
		}
		// Seed silent on an unpaid deposit's receipt: not found (the
		// receipt does not exist yet).
		return w.pegasError(http.StatusNotFound, "resource_not_found", "Квитанция не найдена.", "", "")
	}
	var amount string
	if txn.deposit != nil {
		amount = txn.deposit.Amount.StringFixed(2)
	} else {
		amount = txn.payout.Amount.StringFixed(2)
	}
	r := simReply{status: http.StatusOK, header: http.Header{}}
	if format == "pdf" {
		r.ctype, r.body = "application/pdf", simPDF(txn.id, txn.orderID, amount)
	} else {
		r.ctype, r.body = "image/jpeg", simJPEG(txn.id, txn.orderID, amount)
	}
	r.header.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="receipt-%s.%s"`, txn.id, format))
	return r
}

// pegasNotDocument is the PegasReceiptNotDocument fault: a 200 reply for an
// unpaid deposit's receipt that is not a document. One draw for the form.
func (w *simWorld) pegasNotDocument(inv *simInvoice) simReply {
	page := []byte("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Квитанция</title></head>" +
		"<body><p>Квитанция будет доступна после оплаты.</p></body></html>\n")
	switch w.Rand.IntN(3) {
	case 0:
		return simReply{status: http.StatusOK, ctype: "application/pdf", body: page}
	case 1:
		return simReply{status: http.StatusOK, ctype: "text/html; charset=utf-8", body: page}
	default:
		state := "pending"
		if inv.Cancelled {
			state = "cancelled"
		}
		return simJSONReply(http.StatusOK, simObject(simField{"status", state}))
	}
}

// simPDF is a small PDF receipt.
func simPDF(id, orderID, amount string) []byte {
	text := fmt.Sprintf("Pegas-kassa receipt %s order %s amount %s RUB", id, orderID, amount)
	stream := fmt.Sprintf("BT /F1 10 Tf 20 100 Td (%s) Tj ET", text)
	return []byte("%PDF-1.4\n" +
		"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n" +
		"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n" +
		"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 400 200] /Contents 4 0 R >> endobj\n" +
		fmt.Sprintf("4 0 obj << /Length %d >> stream\n%s\nendstream endobj\n", len(stream), stream) +
		"trailer << /Root 1 0 R >>\n%%EOF\n")
}

// simJPEG is a small JPEG receipt: SOI, a JFIF header, a comment, EOI.
func simJPEG(id, orderID, amount string) []byte {
	comment := fmt.Sprintf("Pegas-kassa receipt %s order %s amount %s RUB", id, orderID, amount)
	b := []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00}
	n := len(comment) + 2
	b = append(b, 0xFF, 0xFE, byte(n>>8), byte(n))
	b = append(b, comment...)
	return append(b, 0xFF, 0xD9)
}

// simPegasErrorObject is Pegas-kassa's error object (seed: a code, and for
// a validation error a validation_error with path and message).
type simPegasErrorObject struct {
	Code            string                `json:"code"`
	Message         string                `json:"message"`
	ValidationError *simPegasFieldProblem `json:"validation_error,omitempty"`
}

type simPegasFieldProblem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// pegasError is an error reply. Seed silent on the object's shape;
// PROVIDERS.md says to accept three, so one draw picks among them:
// {"errors":[{...}]}, {"error":{...}} or the object itself.
func (w *simWorld) pegasError(status int, code, message, path, fieldMessage string) simReply {
	obj := simPegasErrorObject{Code: code, Message: message}
	if path != "" {
		obj.ValidationError = &simPegasFieldProblem{Path: path, Message: fieldMessage}
	}
	var v any
	switch w.Rand.IntN(3) {
	case 0:
		v = map[string]any{"errors": []simPegasErrorObject{obj}}
	case 1:
		v = map[string]any{"error": obj}
	default:
		v = obj
	}
	return simJSONReply(status, simMustJSON(v))
}

// ---------------------------------------------------------------------------
// Smart Cashier («Смарт кассир» v1.0.1): PROVIDERS.md "Smart Cashier", seed
// smart-cashier-api.md.

// simMSK is the offset the seed's example times carry (despite the fields'
// "Utc" names; seed silent on which is right): the world writes its times
// the same way, same instant.
var simMSK = time.FixedZone("MSK", 3*60*60)

// simCashierTime writes a time as the seed's examples do:
// "2019-05-01T17:29:59.6282936+03:00".
func simCashierTime(t time.Time) string {
	return t.In(simMSK).Format("2006-01-02T15:04:05.0000000-07:00")
}

// simProblem is an ASP.NET problem-details error body. Seed silent on error
// bodies; it documents only the status codes.
type simProblem struct {
	Type   string              `json:"type"`
	Title  string              `json:"title"`
	Status int                 `json:"status"`
	Errors map[string][]string `json:"errors,omitempty"`
}

// smartCashier answers a Smart Cashier call.
func (w *simWorld) smartCashier(req *http.Request, name string, body []byte) simReply {
	scheme, token, _ := strings.Cut(req.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || token != simCashierToken || w.CashierTokenExpired {
		// Seed: 401 for a bad token. Seed silent on the body: none, as a
		// JWT bearer handler answers.
		return simReply{status: http.StatusUnauthorized, header: http.Header{"Www-Authenticate": {`Bearer error="invalid_token"`}}}
	}
	switch name {
	case "checkStatus":
		if req.Method != http.MethodGet {
			return simReply{status: http.StatusMethodNotAllowed, header: http.Header{"Allow": {"GET"}}}
		}
		op := w.opByID[req.URL.Query().Get("operationId")]
		if op == nil {
			// Seed: 404 for an unknown operation. Seed silent on a missing
			// operationId (it lists no 400 here): nothing is found either.
			return simJSONReply(http.StatusNotFound, simMustJSON(simProblem{
				Type: "https://tools.ietf.org/html/rfc7231#section-6.5.4", Title: "Операция не найдена.", Status: http.StatusNotFound}))
		}
		return simJSONReply(http.StatusOK, w.cashierStatus(op))
	case "formReceipt", "depositCash", "withdrawCash":
		if req.Method != http.MethodPost {
			return simReply{status: http.StatusMethodNotAllowed, header: http.Header{"Allow": {"POST"}}}
		}
		return w.cashierOperation(req, name, body)
	default:
		return simReply{status: http.StatusNotFound}
	}
}

// simCashierBadRequest is a 400 naming the field at fault.
func simCashierBadRequest(path, message string) simReply {
	return simJSONReply(http.StatusBadRequest, simMustJSON(simProblem{
		Type:   "https://tools.ietf.org/html/rfc7231#section-6.5.1",
		Title:  "One or more validation errors occurred.",
		Status: http.StatusBadRequest,
		Errors: map[string][]string{path: {message}},
	}))
}

// cashierOperation accepts a receipt or cash operation, idempotently by its
// operationId (seed "Идемпотентность API"; PROVIDERS.md "An operation id is
// final once processed, either way"): a repeat, with whatever body, returns
// the first request's reply and processes nothing, whatever became of the
// operation (a status 3 one stays 3; a new receipt needs a new id).
//
// Seed silent on whether a request refused with 400 uses up its id: it does
// not (the seed's nearest word: "обработан будет только первый успешный
// запрос", only the first successful request is processed). A refused
// request is not recorded, and the corrected request under the same id is
// processed. Seed silent on the order of checks: the id is looked up before
// the rest of the body is checked, so a repeat is answered as the first
// request was even if its body differs or is malformed (Mismatched counts
// those).
func (w *simWorld) cashierOperation(req *http.Request, kind string, body []byte) simReply {
	if mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type")); mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		// Seed: requests are JSON. Seed silent on another Content-Type: a
		// 400 (not 415, which the seed does not list).
		return simCashierBadRequest("$", "The request body must be JSON (Content-Type: application/json).")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		return simCashierBadRequest("$", "The request body is not a JSON object.")
	}
	v := &simCheck{obj: obj}
	id := v.str("operationId", true)
	if v.failed() {
		return v.reply()
	}
	if id == "" {
		return simCashierBadRequest("operationId", "The operationId field is required.")
	}
	canonical := kind + " " + simCanonicalJSON(body)
	if op := w.opByID[id]; op != nil {
		op.Repeats++
		if op.canonical != canonical {
			op.Mismatched++
		}
		return simJSONReply(http.StatusOK, op.firstReply)
	}

	op := &simOp{simOperation: simOperation{OperationID: id, Kind: kind, Status: 1, CreatedAt: w.now()}, canonical: canonical}
	if kind == "formReceipt" {
		w.checkReceipt(v, op)
	} else {
		// Seed: cashboxId (required GUID), amount, operationId.
		op.cashbox = v.guid("cashboxId", true)
		op.Total = v.money("amount", false)
	}
	if v.failed() {
		return v.reply()
	}
	// Seed silent on the reply to an accepted operation (it documents only
	// the status codes): the operation's state, in checkStatus's structure,
	// as it was then. Repeats get these same bytes.
	op.firstReply = w.cashierStatus(op)
	w.ops = append(w.ops, op)
	w.opByID[id] = op
	return simJSONReply(http.StatusOK, op.firstReply)
}

// checkReceipt reads and checks formReceipt's body (seed field table;
// PROVIDERS.md's receipt invariants).
func (w *simWorld) checkReceipt(v *simCheck, op *simOp) {
	op.ReceiptType = int(v.intIn("receiptType", 1, 4))
	v.boolean("printReceipt")
	v.intIn("taxationSystem", 1, 6)
	// Seed silent on the form of the buyer's contacts, and on a receipt
	// with neither (54-FZ wants one for an internet sale): taken as sent.
	op.Email = v.str("buyerEmail", false)
	op.Phone = v.str("buyerPhoneNumber", false)
	cash := v.money("cashPaymentSum", true)
	cashless := v.money("cashlessPaymentSum", true)
	total := v.money("totalSum", true)
	raw, ok := v.obj["positions"]
	var positions []json.RawMessage
	switch {
	case v.failed():
		return
	case !ok || string(bytes.TrimSpace(raw)) == "null":
		v.fail("positions", "The positions field is required.")
		return
	case json.Unmarshal(raw, &positions) != nil:
		v.fail("positions", "The positions field must be an array.")
		return
	case len(positions) == 0:
		v.fail("positions", "A receipt needs at least one position.")
		return
	}
	sum := decimal.Zero
	var taxTypes []int
	for i, raw := range positions {
		path := fmt.Sprintf("positions[%d]", i)
		var item map[string]json.RawMessage
		if json.Unmarshal(raw, &item) != nil || item == nil {
			v.fail(path, "A position must be an object.")
			return
		}
		pv := &simCheck{obj: item, prefix: path + "."}
		name := pv.str("name", true)
		quantity := pv.intIn("quantity", 1, 1<<31-1)
		price := pv.money("price", true)
		taxType := pv.integer("taxType")
		switch {
		case pv.failed():
		case strings.TrimSpace(name) == "":
			pv.fail("name", "The name must not be empty.")
		case utf8.RuneCountInString(name) > 128:
			// PROVIDERS.md: the fiscal-data limit of 128 characters.
			pv.fail("name", "The name must be at most 128 characters.")
		case (taxType < 1 || taxType > 6) && !slices.Contains(w.ExtraTaxTypes, int(taxType)):
			pv.fail("taxType", "Unknown taxType.")
		}
		if pv.failed() {
			v.path, v.msg = pv.path, pv.msg
			return
		}
		sum = sum.Add(price.Mul(decimal.NewFromInt(quantity)))
		taxTypes = append(taxTypes, int(taxType))
	}
	switch {
	case !total.Equal(sum):
		v.fail("totalSum", fmt.Sprintf("totalSum %s is not the positions' sum %s.", total, sum))
	case !cash.Add(cashless).Equal(total):
		v.fail("cashlessPaymentSum", fmt.Sprintf("cashPaymentSum + cashlessPaymentSum = %s, not totalSum %s.", cash.Add(cashless), total))
	}
	for _, field := range []string{"juridicalPersonId", "cashboxGroupId"} {
		v.guid(field, false)
	}
	op.cashbox = v.guid("cashboxId", false)
	op.Total = total
	op.Positions = len(positions)
	op.TaxTypes = taxTypes
}

// cashierStatus is checkStatus's reply for an operation: valid JSON in the
// structure of the seed's examples (which print it broken: a trailing comma,
// split in two).
func (w *simWorld) cashierStatus(op *simOp) []byte {
	type fiscal struct {
		FiscalDocumentNumber      int64  `json:"fiscalDocumentNumber"`
		FiscalDocumentSign        string `json:"fiscalDocumentSign"`
		FiscalDocumentDateTimeUtc string `json:"fiscalDocumentDateTimeUtc"`
		FiscalReceiptNumber       int64  `json:"fiscalReceiptNumber"`
		ShiftNumber               int64  `json:"shiftNumber"`
		FnNumber                  string `json:"fnNumber"`
		RegistrationNumber        string `json:"registrationNumber"`
		FnsURL                    string `json:"fnsUrl"`
		NotPrinted                bool   `json:"notPrinted"`
	}
	var r struct {
		Status                int     `json:"status"`
		CreationDateTimeUtc   string  `json:"creationDateTimeUtc"`
		HandlerCashboxID      *string `json:"handlerCashboxId"`
		ProcessingDateTimeUtc *string `json:"processingDateTimeUtc"`
		FiscalParams          *fiscal `json:"fiscalParams"`
		ErrorMessage          *string `json:"errorMessage"`
	}
	r.Status = op.Status
	r.CreationDateTimeUtc = simCashierTime(op.CreatedAt)
	switch op.Status {
	case 2:
		processed := simCashierTime(op.processedAt)
		r.HandlerCashboxID, r.ProcessingDateTimeUtc = &op.handler, &processed
		// Seed silent on a cash operation's fiscal parameters (it is not a
		// receipt): the same structure, receipt number 0.
		r.FiscalParams = &fiscal{
			FiscalDocumentNumber:      op.FiscalDocumentNumber,
			FiscalDocumentSign:        op.sign,
			FiscalDocumentDateTimeUtc: processed,
			FiscalReceiptNumber:       op.receiptNo,
			ShiftNumber:               op.shift,
			FnNumber:                  "9999078902004823",
			RegistrationNumber:        "0000000001044211",
			FnsURL:                    "www.nalog.ru",
		}
	case 3:
		r.HandlerCashboxID, r.ErrorMessage = &op.handler, &op.Error
	}
	return simMustJSON(r)
}

// simCheck reads the fields of a Smart Cashier JSON object and keeps the
// first problem. Seed: sums are JSON numbers (PROVIDERS.md: "not strings"),
// counts and codes integers; a value of another JSON type is a 400.
type simCheck struct {
	obj       map[string]json.RawMessage
	prefix    string
	path, msg string
}

func (v *simCheck) failed() bool { return v.path != "" }

func (v *simCheck) fail(field, msg string) {
	if !v.failed() {
		v.path, v.msg = v.prefix+field, msg
	}
}

func (v *simCheck) reply() simReply { return simCashierBadRequest(v.path, v.msg) }

// value is a field's raw JSON, or nil when it is absent or null.
func (v *simCheck) value(field string, required bool) json.RawMessage {
	raw := bytes.TrimSpace(v.obj[field])
	if len(raw) == 0 || string(raw) == "null" {
		if required {
			v.fail(field, "The "+field+" field is required.")
		}
		return nil
	}
	return raw
}

func (v *simCheck) str(field string, required bool) string {
	raw := v.value(field, required)
	var s string
	if raw != nil && json.Unmarshal(raw, &s) != nil {
		v.fail(field, "The "+field+" field must be a string.")
	}
	return s
}

func (v *simCheck) boolean(field string) bool {
	raw := v.value(field, true)
	var b bool
	if raw != nil && json.Unmarshal(raw, &b) != nil {
		v.fail(field, "The "+field+" field must be true or false.")
	}
	return b
}

// integer reads a required integer: a JSON number with no fraction or
// exponent.
func (v *simCheck) integer(field string) int64 {
	raw := v.value(field, true)
	if raw == nil {
		return 0
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		v.fail(field, "The "+field+" field must be an integer.")
	}
	return n
}

func (v *simCheck) intIn(field string, lo, hi int64) int64 {
	n := v.integer(field)
	if !v.failed() && (n < lo || n > hi) {
		v.fail(field, fmt.Sprintf("The %s field must be from %d to %d.", field, lo, hi))
	}
	return n
}

// money reads a required amount: a JSON number (never a string), not
// negative, above zero unless zeroOK, and to the kopeck (seed silent on
// finer amounts: the fiscal drive counts kopecks, so they are refused).
func (v *simCheck) money(field string, zeroOK bool) decimal.Decimal {
	raw := v.value(field, true)
	if raw == nil {
		return decimal.Zero
	}
	if c := raw[0]; c != '-' && (c < '0' || c > '9') || !json.Valid(raw) {
		v.fail(field, "The "+field+" field must be a number.")
		return decimal.Zero
	}
	d, err := decimal.NewFromString(string(raw))
	switch {
	case err != nil:
		v.fail(field, "The "+field+" field must be a number.")
	case d.IsNegative() || (!zeroOK && d.IsZero()):
		v.fail(field, "The "+field+" field must be more than zero.")
	case !d.Equal(d.Round(2)):
		v.fail(field, "The "+field+" field must be in whole kopecks.")
	}
	return d
}

// guid reads a GUID string; "" counts as absent (the seed's example sends
// juridicalPersonId: "").
func (v *simCheck) guid(field string, required bool) string {
	s := v.str(field, required)
	if v.failed() {
		return s
	}
	switch {
	case s == "" && required:
		v.fail(field, "The "+field+" field is required.")
	case s != "" && !simGUID.MatchString(s):
		v.fail(field, "The "+field+" field is not a GUID.")
	}
	return s
}

var simGUID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// simCanonicalJSON is a JSON body with its keys sorted and its spacing
// removed, numbers kept as written: two sends of the same request compare
// equal.
func simCanonicalJSON(body []byte) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return string(body)
	}
	return string(simMustJSON(v))
}

// ---------------------------------------------------------------------------
// JSON helpers.

// simField is one member of a JSON object written in a fixed order.
type simField struct {
	Key   string
	Value any
}

// simObject writes a JSON object with its members in the order given.
func simObject(fields ...simField) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(simMustJSON(f.Key))
		b.WriteByte(':')
		b.Write(simMustJSON(f.Value))
	}
	b.WriteByte('}')
	return b.Bytes()
}

// simJSONReply is a JSON reply.
func simJSONReply(status int, body []byte) simReply {
	return simReply{status: status, ctype: "application/json; charset=utf-8", body: body}
}

func simMustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// ---------------------------------------------------------------------------
// Tests of the world, driving the real client modules against it.

// simTestClock is a settable clock for a test world.
type simTestClock struct{ t time.Time }

func (c *simTestClock) now() time.Time { return c.t }

func newTestSimWorld(seed uint64) (*simWorld, *simTestClock) {
	clock := &simTestClock{t: time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)}
	return newSimWorld(clock.now, rand.New(rand.NewPCG(seed, 0x6b617373))), clock
}

// simCall makes one raw request through the world.
func simCall(t *testing.T, w *simWorld, method, rawURL string, header http.Header, body string) (*http.Response, []byte, error) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, rawURL, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := (&http.Client{Transport: w}).Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// simCrystalURL is an api.php URL with the world's credentials.
func simCrystalURL(op string, params ...string) string {
	q := url.Values{"s": {simCrystalSecret}, "n": {simCrystalLogin}, "o": {op}}
	for i := 0; i+1 < len(params); i += 2 {
		q.Set(params[i], params[i+1])
	}
	return simCrystalEndpoint + "?" + q.Encode()
}

// simPegasURL is a Pegas-kassa URL with the world's token.
func simPegasURL(path string, params ...string) string {
	q := url.Values{"token": {simPegasToken}}
	for i := 0; i+1 < len(params); i += 2 {
		q.Set(params[i], params[i+1])
	}
	return simPegasEndpoint + "/" + path + "?" + q.Encode()
}

// simPegasErrorReply reads a Pegas-kassa error reply in any of its three
// shapes, independently of the client's parser.
func simPegasErrorReply(t *testing.T, body []byte) (shape string, e simPegasErrorObject) {
	t.Helper()
	var top struct {
		Errors []simPegasErrorObject `json:"errors"`
		Error  *simPegasErrorObject  `json:"error"`
		simPegasErrorObject
	}
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatalf("error reply %q: %v", body, err)
	}
	switch {
	case len(top.Errors) > 0:
		return "errors", top.Errors[0]
	case top.Error != nil:
		return "error", *top.Error
	case top.Code != "":
		return "flat", top.simPegasErrorObject
	}
	t.Fatalf("error reply %q has no error object", body)
	return "", e
}

func TestSimWorldCrystalPay(t *testing.T) {
	w, clock := newTestSimWorld(1)
	m := &CrystalPay{API: crystalPayAPIv1, Login: simCrystalLogin, Secret: simCrystalSecret, Secret2: simCrystalSecret2, Endpoint: simCrystalEndpoint}
	provisionModule(t, m)
	c := m.Provider().(*crystalPayV1)
	c.api.http.Transport = w
	ctx := context.Background()

	p, err := c.CreatePayment(ctx, PaymentRequest{OrderID: "o-1", Amount: decimal.NewFromInt(100),
		ReturnURL: "https://shop.sim/thanks?order=o-1"})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^1_[A-Za-z]{10}$`).MatchString(p.ID) || p.URL != simCrystalPayPage+p.ID {
		t.Errorf("payment = %+v", p)
	}
	invs := w.Invoices()
	if len(invs) != 1 || invs[0].OrderID != "o-1" || !invs[0].Amount.Equal(decimal.NewFromInt(100)) || invs[0].Paid {
		t.Fatalf("invoices = %+v", invs)
	}
	st, err := c.PaymentStatus(ctx, PaymentRef{ID: p.ID})
	if err != nil || st.Paid {
		t.Fatalf("status before paying = %+v, %v", st, err)
	}

	clock.t = clock.t.Add(time.Hour)
	if !w.Pay(p.URL) {
		t.Fatal("Pay: no money moved")
	}
	if w.Pay(p.URL) {
		t.Error("paid twice")
	}
	sawAmount := false
	for range 6 {
		st, err := c.PaymentStatus(ctx, PaymentRef{ID: p.ID})
		if err != nil || !st.Paid {
			t.Fatalf("status after paying = %+v, %v", st, err)
		}
		if st.Amount.Valid {
			sawAmount = true
			if !st.Amount.Decimal.Equal(decimal.NewFromInt(100)) {
				t.Errorf("amount = %s", st.Amount.Decimal)
			}
		}
	}
	if !sawAmount {
		t.Error(`no paid checkpay carried "amount"`)
	}
	if inv := w.Invoices()[0]; !inv.Paid || !inv.PaidAt.Equal(clock.t) {
		t.Errorf("invoice after paying = %+v", inv)
	}

	// No idempotency: the same generate again is a second invoice.
	p2, err := c.CreatePayment(ctx, PaymentRequest{OrderID: "o-1", Amount: decimal.NewFromInt(100),
		ReturnURL: "https://shop.sim/thanks?order=o-1"})
	if err != nil || p2.ID == p.ID || !strings.HasPrefix(p2.ID, "2_") || len(w.Invoices()) != 2 {
		t.Fatalf("second generate = %+v, %v; invoices %d", p2, err, len(w.Invoices()))
	}

	// The wire, beyond what the client sends.
	for _, tc := range []struct{ url, want string }{
		{simCrystalURL("generate", "amount", "100.50"), `"error":true`},
		{simCrystalURL("generate", "amount", "100.00"), `"error":true`},
		{simCrystalURL("generate"), `"error":true`},
		{simCrystalURL("checkpay", "i", "9_nosuchpaym"), `"error":true`},
		{simCrystalURL("nonsense"), `"error":true`},
		{strings.Replace(simCrystalURL("balance"), simCrystalSecret, "wrong", 1), `{"auth":"error"}`},
	} {
		resp, body, err := simCall(t, w, http.MethodGet, tc.url, nil, "")
		if err != nil || resp.StatusCode != 200 || !strings.Contains(string(body), tc.want) || !json.Valid(body) {
			t.Errorf("%s: %v %s, want %s", tc.url, err, body, tc.want)
		}
	}
	if len(w.Invoices()) != 2 {
		t.Errorf("refused generates created invoices: %d", len(w.Invoices()))
	}
	_, body, _ := simCall(t, w, http.MethodGet, simCrystalURL("generate", "amount", "5"), nil, "")
	if !bytes.Contains(body, []byte(`https:\/\/pay.crystalpay.ru\/?i=3_`)) {
		t.Errorf("generate reply %s, want PHP's escaped slashes", body)
	}

	// Withdraw: signed with secret 2, executed once per request.
	b, err := c.Balance(ctx)
	if err != nil || !b.Total.Equal(decimal.NewFromInt(100)) {
		t.Fatalf("balance = %+v, %v", b, err)
	}
	if _, err := c.Payout(ctx, PayoutRequest{Amount: decimal.NewFromInt(60), To: "79001112233", Method: "qw"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Payout(ctx, PayoutRequest{Amount: decimal.NewFromInt(60), To: "79001112233", Method: "qw"}); !errors.Is(err, ErrRejected) {
		t.Errorf("payout beyond the balance: %v", err)
	}
	_, body, _ = simCall(t, w, http.MethodGet, simCrystalURL("withdraw", "amount", "10", "wallet", "79001112233",
		"service", "qw", "secret", strings.Repeat("0", 32)), nil, "")
	if !bytes.Contains(body, []byte(`"error":true`)) {
		t.Errorf("badly signed withdraw: %s", body)
	}
	pays := w.Payouts()
	if len(pays) != 1 || pays[0].Provider != "crystalpay" || pays[0].To != "79001112233" || pays[0].Method != "qw" ||
		!pays[0].Amount.Equal(decimal.NewFromInt(60)) || !w.CrystalBalance.Equal(decimal.NewFromInt(40)) {
		t.Errorf("payouts = %+v, balance %s", pays, w.CrystalBalance)
	}

	calls := w.Calls()
	if calls["crystalpay.generate"] != 6 || calls["crystalpay.checkpay"] != 8 || calls["crystalpay.withdraw"] != 3 {
		t.Errorf("calls = %v", calls)
	}
}

func TestSimWorldPegas(t *testing.T) {
	w, _ := newTestSimWorld(2)
	p := &Pegas{Token: simPegasToken, Endpoint: simPegasEndpoint}
	provisionModule(t, p)
	p.api.http.Transport = w
	ctx := context.Background()

	pay, err := p.CreatePayment(ctx, PaymentRequest{OrderID: "o-1", Amount: decimal.RequireFromString("150.00")})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pay.URL, simPegasPayPage) || pay.ID == "" || !pay.Commission.Equal(decimal.RequireFromString("4.5")) {
		t.Errorf("payment = %+v", pay)
	}

	// A repeated order_id: refused with a duplicate's evidence, in each of
	// the error shapes, and nothing created.
	shapes := map[string]bool{}
	for range 12 {
		resp, body, err := simCall(t, w, http.MethodGet, simPegasURL("deposit", "amount", "150.00", "type", "invoice-select", "order_id", "o-1"), nil, "")
		if err != nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("duplicate: %v %v", resp, err)
		}
		shape, e := simPegasErrorReply(t, body)
		shapes[shape] = true
		if e.Code != "invalid_parameters" || e.ValidationError == nil || e.ValidationError.Path != "order_id" ||
			!regexp.MustCompile(`already|уже`).MatchString(e.ValidationError.Message) {
			t.Errorf("duplicate reply %s", body)
		}
	}
	if len(shapes) != 3 {
		t.Errorf("error shapes seen: %v", shapes)
	}
	if _, err := p.CreatePayment(ctx, PaymentRequest{OrderID: "o-1", Amount: decimal.RequireFromString("150.00")}); !errors.Is(err, ErrRejected) {
		t.Errorf("duplicate through the client: %v", err)
	}
	if n := len(w.Invoices()); n != 1 {
		t.Fatalf("%d invoices after duplicates", n)
	}

	// An order_id format rule: refused on the path order_id, saying nothing
	// of a duplicate, and nothing created.
	w.Faults.PegasOrderIDInvalid = 1
	resp, body, err := simCall(t, w, http.MethodGet, simPegasURL("deposit", "amount", "10", "type", "wallet", "order_id", "o-2"), nil, "")
	w.Faults.PegasOrderIDInvalid = 0
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("order_id format: %v %v", resp, err)
	}
	if _, e := simPegasErrorReply(t, body); e.Code != "invalid_parameters" || e.ValidationError == nil ||
		e.ValidationError.Path != "order_id" || regexp.MustCompile(`(?i)already|exist|taken|duplicate|unique|уже|существ`).MatchString(e.ValidationError.Message) {
		t.Errorf("order_id format reply %s", body)
	}
	if n := len(w.Invoices()); n != 1 {
		t.Fatalf("%d invoices after a refused deposit", n)
	}

	// The receipt probe: 404 until paid, then the document.
	if st, err := p.PaymentStatus(ctx, PaymentRef{OrderID: "o-1"}); err != nil || st.Paid {
		t.Fatalf("status before paying = %+v, %v", st, err)
	}
	resp, body, _ = simCall(t, w, http.MethodGet, simPegasURL("transaction/receipt/file", "order_id", "o-1", "format", "pdf"), nil, "")
	if _, e := simPegasErrorReply(t, body); resp.StatusCode != http.StatusNotFound || e.Code != "resource_not_found" {
		t.Errorf("unpaid receipt: %d %s", resp.StatusCode, body)
	}
	if !w.Pay(pay.URL) || w.Pay(pay.URL) {
		t.Fatal("Pay")
	}
	if st, err := p.PaymentStatus(ctx, PaymentRef{OrderID: "o-1"}); err != nil || !st.Paid {
		t.Fatalf("status after paying = %+v, %v", st, err)
	}
	for format, magic := range map[string]string{"pdf": "%PDF-", "jpeg": "\xFF\xD8\xFF"} {
		resp, body, err := simCall(t, w, http.MethodGet, simPegasURL("transaction/receipt/file", "id", pay.ID, "format", format), nil, "")
		if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != pegasDocumentTypes[format] ||
			!strings.HasPrefix(string(body), magic) || resp.ContentLength != int64(len(body)) {
			t.Errorf("%s receipt: %v %v %q", format, resp, err, body)
		}
	}

	// An unpaid deposit's receipt under PegasReceiptNotDocument: 200, and
	// never a document.
	other, err := p.CreatePayment(ctx, PaymentRequest{OrderID: "o-3", Amount: decimal.NewFromInt(20)})
	if err != nil {
		t.Fatal(err)
	}
	w.Faults.PegasReceiptNotDocument = 1
	types := map[string]bool{}
	for range 12 {
		resp, body, err := simCall(t, w, http.MethodGet, simPegasURL("transaction/receipt/file", "order_id", "o-3", "format", "pdf"), nil, "")
		if err != nil || resp.StatusCode != 200 || strings.HasPrefix(string(body), "%PDF-") {
			t.Fatalf("not-a-document: %v %v %q", resp, err, body)
		}
		types[resp.Header.Get("Content-Type")] = true
	}
	w.Faults.PegasReceiptNotDocument = 0
	if len(types) != 3 {
		t.Errorf("not-a-document content types: %v", types)
	}

	// Cancel: an unpaid deposit once; then it cannot be paid.
	if err := p.CancelPayment(ctx, PaymentRef{OrderID: "o-3", ID: other.ID}); err != nil {
		t.Fatal(err)
	}
	if err := p.CancelPayment(ctx, PaymentRef{OrderID: "o-3", ID: other.ID}); !errors.Is(err, ErrRejected) {
		t.Errorf("second cancel: %v", err)
	}
	if err := p.CancelPayment(ctx, PaymentRef{OrderID: "o-1", ID: pay.ID}); !errors.Is(err, ErrRejected) {
		t.Errorf("cancel of a paid deposit: %v", err)
	}
	if w.Pay(other.URL) {
		t.Error("paid a cancelled deposit")
	}
	if invs := w.Invoices(); len(invs) != 2 || !invs[0].Paid || invs[0].Cancelled || !invs[1].Cancelled || invs[1].Paid {
		t.Errorf("invoices = %+v", invs)
	}

	// A wallet type: the buyer pays to a number.
	pw := &Pegas{Token: simPegasToken, Endpoint: simPegasEndpoint, Type: "wallet"}
	provisionModule(t, pw)
	pw.api.http.Transport = w
	wp, err := pw.CreatePayment(ctx, PaymentRequest{OrderID: "o-4", Amount: decimal.NewFromInt(300)})
	if err != nil || wp.Wallet == "" || wp.URL != "" {
		t.Fatalf("wallet deposit = %+v, %v", wp, err)
	}
	if !w.Pay(wp.Wallet) {
		t.Error("Pay(wallet)")
	}

	// Payouts, with an order_id refused when repeated.
	if b, err := p.Balance(ctx); err != nil || !b.Total.Equal(decimal.RequireFromString("436.50")) {
		t.Fatalf("balance = %+v, %v", b, err)
	}
	req := PayoutRequest{Amount: decimal.NewFromInt(100), To: "79001112233", Method: "wallet", Comment: "sim payout", OrderID: "w-1"}
	if out, err := p.Payout(ctx, req); err != nil || out.ID == "" || !out.Commission.Equal(decimal.NewFromInt(2)) {
		t.Fatalf("payout = %+v, %v", out, err)
	}
	if _, err := p.Payout(ctx, req); !errors.Is(err, ErrRejected) {
		t.Errorf("repeated payout: %v", err)
	}
	if pays := w.Payouts(); len(pays) != 1 || pays[0].OrderID != "w-1" || pays[0].Comment != "sim payout" || pays[0].Method != "wallet" {
		t.Errorf("payouts = %+v", pays)
	}
	if !w.PegasBalance.Equal(decimal.RequireFromString("334.50")) {
		t.Errorf("balance after payout = %s", w.PegasBalance)
	}

	// A bad token.
	resp, body, _ = simCall(t, w, http.MethodGet, strings.Replace(simPegasURL("balance"), simPegasToken, "nope", 1), nil, "")
	if _, e := simPegasErrorReply(t, body); resp.StatusCode != http.StatusUnauthorized || e.Code != "authorization_error" {
		t.Errorf("bad token: %d %s", resp.StatusCode, body)
	}
}

func TestSimWorldSmartCashier(t *testing.T) {
	w, clock := newTestSimWorld(3)
	s := &SmartCashier{Token: simCashierToken, Endpoint: simCashierEndpoint, Taxation: TaxationUSNIncome}
	provisionModule(t, s)
	s.api.http.Transport = w
	s.backoff = 0
	ctx := context.Background()
	receipt := func(id string) Receipt {
		return Receipt{OperationID: id, Email: "buyer@shop.sim", Cashless: decimal.RequireFromString("351.00"),
			Positions: []Position{{Name: "Чай", Quantity: 2, Price: decimal.RequireFromString("150.50")}, {Name: "Доставка", Quantity: 1, Price: decimal.NewFromInt(50)}}}
	}

	if err := s.FormReceipt(ctx, receipt("kassa-o1-sale")); err != nil {
		t.Fatal(err)
	}
	if err := s.FormReceipt(ctx, receipt("kassa-o1-sale")); err != nil {
		t.Fatal(err)
	}
	ops := w.Operations()
	if len(ops) != 1 || ops[0].Status != 1 || ops[0].Repeats != 1 || ops[0].Mismatched != 0 || ops[0].Positions != 2 ||
		!ops[0].Total.Equal(decimal.NewFromInt(351)) || ops[0].Email != "buyer@shop.sim" || ops[0].ReceiptType != 1 {
		t.Fatalf("operations = %+v", ops)
	}
	if o, err := s.ReceiptStatus(ctx, "kassa-o1-sale"); err != nil || o.Status != OperationQueued || !o.Created.Equal(clock.t) {
		t.Fatalf("status queued = %+v, %v", o, err)
	}
	clock.t = clock.t.Add(time.Minute)
	w.Process()
	o, err := s.ReceiptStatus(ctx, "kassa-o1-sale")
	if err != nil || o.Status != OperationProcessed || o.Fiscal == nil || o.Fiscal.DocumentNumber != w.Operations()[0].FiscalDocumentNumber ||
		o.Fiscal.DocumentNumber == 0 || !o.Processed.Equal(clock.t) || o.CashboxID != simTillID {
		t.Fatalf("status processed = %+v %+v, %v", o, o.Fiscal, err)
	}

	// A till failure is final for its id: re-sent, it stays 3.
	w.Faults.TillFailure = 1
	if err := s.FormReceipt(ctx, receipt("kassa-o2-sale")); err != nil {
		t.Fatal(err)
	}
	w.Process()
	w.Faults.TillFailure = 0
	if err := s.FormReceipt(ctx, receipt("kassa-o2-sale")); err != nil {
		t.Fatal(err)
	}
	w.Process()
	if o, err := s.ReceiptStatus(ctx, "kassa-o2-sale"); err != nil || o.Status != OperationFailed || o.Error != simTillError || o.Fiscal != nil {
		t.Fatalf("failed status = %+v, %v", o, err)
	}
	if err := s.FormReceipt(ctx, receipt("kassa-o2-sale-2")); err != nil {
		t.Fatal(err)
	}
	w.Process()
	ops = w.Operations()
	if len(ops) != 3 || ops[1].Status != 3 || ops[1].Repeats != 1 || ops[2].Status != 2 || ops[2].FiscalDocumentNumber != ops[0].FiscalDocumentNumber+1 {
		t.Fatalf("operations = %+v", ops)
	}

	// A reply lost on the first attempt: the client re-sends the same id,
	// and the world processes it once.
	first := true
	w.Before = func(op string) {
		w.Faults.LostReply = 0
		if op == "smartcashier.formReceipt" && first {
			first, w.Faults.LostReply = false, 1
		}
	}
	if err := s.FormReceipt(ctx, receipt("kassa-o3-sale")); err != nil {
		t.Fatal(err)
	}
	w.Before = nil
	if ops := w.Operations(); len(ops) != 4 || ops[3].OperationID != "kassa-o3-sale" || ops[3].Repeats != 1 {
		t.Fatalf("operations after a lost reply = %+v", ops)
	}

	// Cash operations.
	cashbox := "c0264f46-4bfd-4953-bfbe-2e3cd1e0a4ad"
	if err := s.DepositCash(ctx, CashOperation{OperationID: "cash-in-1", CashboxID: cashbox, Amount: decimal.NewFromInt(5000)}); err != nil {
		t.Fatal(err)
	}
	w.Process()
	if o, err := s.ReceiptStatus(ctx, "cash-in-1"); err != nil || o.Status != OperationProcessed || o.CashboxID != cashbox {
		t.Errorf("cash status = %+v, %v", o, err)
	}

	// The wire: refusals, an id a refusal does not use up, 401 and 404.
	auth := http.Header{"Authorization": {"Bearer " + simCashierToken}, "Content-Type": {"application/json"}}
	post := func(body string) (*http.Response, []byte) {
		t.Helper()
		resp, b, err := simCall(t, w, http.MethodPost, simCashierEndpoint+"/operations/formReceipt", auth, body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	good := `{"operationId":"raw-1","receiptType":1,"printReceipt":false,"taxationSystem":2,"buyerEmail":"b@shop.sim",` +
		`"positions":[{"name":"Молоко","quantity":3,"price":70,"taxType":4}],"cashPaymentSum":200,"cashlessPaymentSum":10,"totalSum":210}`
	for _, bad := range []string{
		strings.Replace(good, `"totalSum":210`, `"totalSum":211`, 1),
		strings.Replace(good, `"cashlessPaymentSum":10`, `"cashlessPaymentSum":11`, 1),
		strings.Replace(good, `"totalSum":210`, `"totalSum":"210"`, 1),
		strings.Replace(good, `"price":70`, `"price":"70"`, 1),
		strings.Replace(good, `"quantity":3`, `"quantity":0`, 1),
		strings.Replace(good, `"quantity":3`, `"quantity":1.5`, 1),
		strings.Replace(good, `"name":"Молоко"`, `"name":" "`, 1),
		strings.Replace(good, `[{"name":"Молоко","quantity":3,"price":70,"taxType":4}]`, `[]`, 1),
		strings.Replace(good, `"price":70`, `"price":-70`, 1),
		strings.Replace(good, `"taxType":4`, `"taxType":11`, 1),
		`{"operationId":"raw-1"`,
	} {
		if resp, b := post(bad); resp.StatusCode != http.StatusBadRequest || !json.Valid(b) {
			t.Errorf("%s: %d %s", bad, resp.StatusCode, b)
		}
	}
	if resp, b := post(good); resp.StatusCode != 200 || !json.Valid(b) {
		t.Fatalf("good after refusals: %d %s", resp.StatusCode, b)
	}
	resp, b := post(strings.Replace(good, `"totalSum":210`, `"totalSum":999`, 1))
	if ops := w.Operations(); resp.StatusCode != 200 || len(ops) != 6 || ops[5].Repeats != 1 || ops[5].Mismatched != 1 {
		t.Errorf("changed repeat: %d %s, operations %+v", resp.StatusCode, b, ops)
	}
	resp, _, _ = simCall(t, w, http.MethodGet, simCashierEndpoint+"/operations/checkStatus?operationId=raw-1", http.Header{"Authorization": {"Bearer nope"}}, "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("bad token: %d", resp.StatusCode)
	}
	if _, err := s.ReceiptStatus(ctx, "never-sent"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown operation: %v", err)
	}
}

// TestSimWorldDeterministic replays a faulty history twice from one seed.
func TestSimWorldDeterministic(t *testing.T) {
	run := func(seed uint64) string {
		w, clock := newTestSimWorld(seed)
		w.Faults = simFaults{Refused: 0.1, LostReply: 0.1, ServerError: 0.1, Garbage: 0.1,
			PegasOrderIDInvalid: 0.1, PegasReceiptNotDocument: 0.3, TillFailure: 0.3}
		w.PegasBalance = decimal.NewFromInt(10000)
		var log strings.Builder
		auth := http.Header{"Authorization": {"Bearer " + simCashierToken}, "Content-Type": {"application/json"}}
		for i := range 60 {
			clock.t = clock.t.Add(time.Minute)
			var resp *http.Response
			var body []byte
			var err error
			switch i % 6 {
			case 0:
				resp, body, err = simCall(t, w, http.MethodGet, simCrystalURL("generate", "amount", strconv.Itoa(100+i),
					"redirect", "https://shop.sim/thanks?order=c"+strconv.Itoa(i)), nil, "")
			case 1:
				resp, body, err = simCall(t, w, http.MethodGet, simPegasURL("deposit", "amount", "99.90", "type", "invoice-card",
					"order_id", "p"+strconv.Itoa(i/12)), nil, "")
			case 2:
				resp, body, err = simCall(t, w, http.MethodGet, simPegasURL("transaction/receipt/file", "order_id",
					"p"+strconv.Itoa(i/12), "format", "pdf"), nil, "")
			case 3:
				resp, body, err = simCall(t, w, http.MethodPost, simCashierEndpoint+"/operations/depositCash", auth,
					fmt.Sprintf(`{"cashboxId":"%s","amount":%d.5,"operationId":"cash-%d"}`, simTillID, i, i/12))
			case 4:
				for _, inv := range w.Invoices() {
					if !inv.Paid && (i/4)%2 == 0 {
						fmt.Fprintf(&log, "pay %s %v\n", inv.ID, w.Pay(inv.URL))
					}
				}
				w.Process()
				resp, body, err = simCall(t, w, http.MethodGet, simCashierEndpoint+"/operations/checkStatus?operationId=cash-"+strconv.Itoa(i/12), auth, "")
			case 5:
				resp, body, err = simCall(t, w, http.MethodGet, simPegasURL("withdrawal", "amount", "10", "number", "79001112233",
					"method", "wallet", "order_id", "w"+strconv.Itoa(i/12)), nil, "")
			}
			if err != nil {
				fmt.Fprintf(&log, "%d: error %v\n", i, err)
				continue
			}
			fmt.Fprintf(&log, "%d: %d %s %q\n", i, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		fmt.Fprintf(&log, "%+v\n%+v\n%+v\n%v\n", w.Invoices(), w.Payouts(), w.Operations(), w.Calls())
		return log.String()
	}
	a, b := run(42), run(42)
	if a != b {
		t.Fatalf("two runs of one seed differ:\n%s\n---\n%s", a, b)
	}
	if a == run(43) {
		t.Error("two seeds gave the same history")
	}
	for _, want := range []string{": error ", ": 500 ", "Bad Gateway", "Status:3", "Status:2", "Repeats:1", "Paid:true"} {
		if !strings.Contains(a, want) {
			t.Errorf("the faulty history never shows %q", want)
		}
	}
}

// TestSimWorldBeforeReentrant runs a nested call from Before, and checks
// that refused calls are counted and seen by Before too.
func TestSimWorldBeforeReentrant(t *testing.T) {
	w, _ := newTestSimWorld(5)
	var seen []string
	nested := false
	w.Before = func(op string) {
		seen = append(seen, op)
		if op == "pegas.balance" && !nested {
			nested = true
			resp, body, err := simCall(t, w, http.MethodGet, simCrystalURL("generate", "amount", "7"), nil, "")
			if err != nil || resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"error":false`)) {
				t.Errorf("nested generate: %v %s", err, body)
			}
		}
	}
	resp, body, err := simCall(t, w, http.MethodGet, simPegasURL("balance"), nil, "")
	if err != nil || resp.StatusCode != 200 || string(body) != `{"balance":0.00}` {
		t.Errorf("balance: %v %s", err, body)
	}
	w.Faults.Refused = 1
	if _, _, err := simCall(t, w, http.MethodGet, simCrystalURL("balance"), nil, ""); err == nil {
		t.Error("a refused call succeeded")
	}
	w.Faults.Refused = 0
	if _, _, err := simCall(t, w, http.MethodGet, "http://elsewhere.sim/", nil, ""); err == nil {
		t.Error("a host outside the world answered")
	}
	want := []string{"pegas.balance", "crystalpay.generate", "crystalpay.balance"}
	calls := w.Calls()
	if !slices.Equal(seen, want) || len(calls) != 3 || calls["pegas.balance"] != 1 || calls["crystalpay.generate"] != 1 ||
		calls["crystalpay.balance"] != 1 || len(w.Invoices()) != 1 {
		t.Errorf("Before saw %v; calls %v; invoices %d", seen, calls, len(w.Invoices()))
	}
}
