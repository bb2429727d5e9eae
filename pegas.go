package kassa

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/shopspring/decimal"
)

func init() {
	caddy.RegisterModule(Pegas{})
}

// The Pegas-kassa calls; each is also the operation name in a ProviderError.
const (
	pegasOpDeposit    = "deposit"
	pegasOpCancel     = "deposit/cancel"
	pegasOpWithdrawal = "withdrawal"
	pegasOpReceipt    = "transaction/receipt/file"
	pegasOpBalance    = "balance"
)

// pegasDefaultType is the deposit type of an account that names none: a
// payment page where the buyer chooses between card and wallet.
const pegasDefaultType = "invoice-select"

// pegasDepositTypes are the deposit types Pegas-kassa offers.
var pegasDepositTypes = []string{"wallet", "wallet-card", "invoice-qw", "invoice-card", "invoice-select", "yandex"}

// pegasPayoutMethods are the payout methods Pegas-kassa offers.
var pegasPayoutMethods = []string{"wallet", "yandex", "card", "nickname", "phone"}

// pegasDocumentTypes maps a receipt document format to its media type.
var pegasDocumentTypes = map[string]string{"pdf": "application/pdf", "jpeg": "image/jpeg"}

// pegasDocumentMagic is how each receipt document format starts. Every
// document reply must start so, whatever its Content-Type: a reply that
// does not is no document (see openReceipt).
var pegasDocumentMagic = map[string][]byte{"pdf": []byte("%PDF-"), "jpeg": {0xFF, 0xD8, 0xFF}}

// Limits of what is sent to and accepted from Pegas-kassa.
const (
	// maxPegasOrderID bounds the shop's order id.
	maxPegasOrderID = 64
	// maxPegasID bounds Pegas-kassa's own payment id, sent and received.
	maxPegasID = 128
	// maxPegasAccount bounds a wallet, card or phone number or a nickname.
	maxPegasAccount = 64
	// minPegasComment and maxPegasComment bound a payout comment, in
	// characters.
	minPegasComment, maxPegasComment = 3, 100
)

// Pegas is a payment account at Pegas-kassa (REST API v1).
//
// Every call is a GET whose query string carries the site token, so no URL
// of a call is ever logged or put in an error. Pegas-kassa publishes no host:
// the API's base URL is required configuration.
//
// Pegas-kassa has no idempotency key, but it refuses a second deposit or
// payout with an order_id it already has. That refusal is reported as
// ErrDuplicate, so a deposit whose reply was lost can be sent again with the
// same order_id and the duplicate read as "the invoice exists". The seed
// does not say how the refusal looks, so only a reply that says the order id
// is already taken counts (see pegasErrorInfo.duplicate); any other refusal
// of order_id, such as its format, is ErrRejected and fails the order. It
// documents no status call and no webhook: a deposit counts as paid once its
// receipt document can be fetched as a real PDF (PaymentStatus probes for
// it), or when an operator confirms it.
type Pegas struct {
	// Token is the site token from the Pegas-kassa dashboard. Use {env.*}.
	Token string `json:"token,omitempty"`
	// Endpoint is the API's base URL, such as https://pegas.example/api/v1.
	// Required: there is no public default host.
	Endpoint string `json:"endpoint,omitempty"`
	// Type is the deposit type of every invoice: wallet, wallet-card,
	// invoice-qw, invoice-card, invoice-select (default) or yandex. The
	// invoice types and yandex give the buyer a payment page; the wallet
	// types give a wallet or card number to pay to.
	Type string `json:"type,omitempty"`
	// Timeout bounds each call; default 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	token       string
	depositType string
	api         *ProviderClient
}

// CaddyModule returns the Caddy module information.
func (Pegas) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "kassa.payments.pegas",
		New: func() caddy.Module { return new(Pegas) },
	}
}

// Provision resolves the token and endpoint, checks the deposit type and
// builds the HTTP client.
func (p *Pegas) Provision(caddy.Context) error {
	p.token = resolvePlaceholders(p.Token)
	p.depositType = p.Type
	if p.depositType == "" {
		p.depositType = pegasDefaultType
	}
	if err := checkPegasDepositType(p.depositType); err != nil {
		return fmt.Errorf("pegas: %w", err)
	}
	endpoint := resolvePlaceholders(p.Endpoint)
	if endpoint == "" && p.Endpoint != "" {
		return fmt.Errorf("pegas: endpoint %s is empty (is its environment variable set?)", p.Endpoint)
	}
	if endpoint == "" {
		return errors.New("pegas: endpoint is required: Pegas-kassa has no public default host (set the API's base URL, such as https://pegas.example/api/v1)")
	}
	api, err := NewProviderClient("pegas", endpoint, time.Duration(p.Timeout), p.token)
	if err != nil {
		return fmt.Errorf("pegas: %w", err)
	}
	p.api = api.SendOnce(pegasOpDeposit, pegasOpWithdrawal)
	return nil
}

// Validate checks that the account has an endpoint and a token.
func (p *Pegas) Validate() error {
	if p.api == nil {
		return errors.New("pegas: endpoint is required")
	}
	if p.token == "" {
		return errors.New("pegas: token is empty (is its environment variable set?)")
	}
	return nil
}

// Cleanup closes the client's idle connections.
func (p *Pegas) Cleanup() error {
	if p.api != nil {
		p.api.Close()
	}
	return nil
}

// UnmarshalCaddyfile sets up the account from Caddyfile tokens.
//
// Syntax:
//
//	pegas {
//		token    <site token>
//		endpoint <url>               # required, e.g. https://pegas.example/api/v1
//		type     <deposit type>      # wallet wallet-card invoice-qw invoice-card invoice-select yandex; default invoice-select
//		timeout  <duration>          # default 10s
//	}
func (p *Pegas) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if err := parseNoInlineArgs(d); err != nil {
		return err
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "token":
			err = parseOneArg(d, &p.Token)
		case "endpoint":
			err = parseOneArg(d, &p.Endpoint)
		case "type":
			if err = parseOneArg(d, &p.Type); err == nil {
				if bad := checkPegasDepositType(p.Type); bad != nil {
					err = d.Errf("type: %v", bad)
				}
			}
		case "timeout":
			err = parseDuration(d, &p.Timeout)
		default:
			err = d.Errf("unrecognized subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checkPegasDepositType accepts one of the deposit types Pegas-kassa offers.
func checkPegasDepositType(t string) error {
	if !slices.Contains(pegasDepositTypes, t) {
		return fmt.Errorf("unknown deposit type %q (want one of %s)", t, strings.Join(pegasDepositTypes, ", "))
	}
	return nil
}

// pegasWalletType reports whether a deposit of type t is paid to a wallet or
// card number rather than on a payment page.
func pegasWalletType(t string) bool {
	return t == "wallet" || t == "wallet-card"
}

// CreatePayment creates an invoice of the account's deposit type (GET
// /deposit). The invoice types and yandex answer with a payment page URL;
// the wallet types with a wallet or card number to pay to.
//
// req.OrderID is required (1 to 64 printable ASCII characters, no spaces)
// and Pegas-kassa refuses a repeat of it. The call is never retried here. A
// caller whose request may have gone through (the reply was lost) sends it
// again with the same OrderID: an error that is ErrDuplicate (and so also
// ErrRejected) then means the invoice from the first request exists, and
// must be recovered (its payment confirmed by PaymentStatus), never created
// again under a new order id. An error that is ErrRejected but not
// ErrDuplicate, such as a refusal of the order id's format, means no invoice
// exists.
func (p *Pegas) CreatePayment(ctx context.Context, req PaymentRequest) (Payment, error) {
	if err := validateMoney("amount", req.Amount, false); err != nil {
		return Payment{}, err
	}
	if err := validatePegasOrderID("order_id", req.OrderID); err != nil {
		return Payment{}, err
	}
	q := p.query()
	q.Set("amount", req.Amount.StringFixed(2))
	q.Set("type", p.depositType)
	q.Set("order_id", req.OrderID)
	if req.Phone != "" {
		if err := validatePegasPhone("phone", req.Phone); err != nil {
			return Payment{}, err
		}
		q.Set("phone", req.Phone)
	}
	if req.PayerAccount != "" {
		if err := validateToken("payer_account", req.PayerAccount, maxPegasAccount); err != nil {
			return Payment{}, err
		}
		q.Set("qiwi_account", req.PayerAccount)
	}
	if req.TTL != 0 {
		ttl, err := pegasTTL(req.TTL)
		if err != nil {
			return Payment{}, err
		}
		q.Set("ttl", ttl)
	}
	if req.ReturnURL != "" {
		if err := validateReturnURL(req.ReturnURL); err != nil {
			return Payment{}, err
		}
		q.Set("success_url", req.ReturnURL)
	}
	reply, err := p.get(ctx, pegasOpDeposit, q)
	if err != nil {
		return Payment{}, err
	}
	payment, err := parsePegasDeposit(reply, p.depositType)
	if err != nil {
		return Payment{}, p.malformed(pegasOpDeposit, http.StatusOK, reply, err)
	}
	return payment, nil
}

// PaymentStatus reports whether a deposit was paid, by inference.
// Pegas-kassa documents no status call and no webhook, so this asks for the
// deposit's receipt document (GET /transaction/receipt/file, format pdf, by
// order id or else by payment id) and infers:
//
//   - paid, when the reply is HTTP 200 and its body starts "%PDF-", a real
//     document (see openReceipt). Only its first bytes are read;
//   - not paid (yet), with no error, when the reply is HTTP 404;
//   - neither, with an error, for anything else: another error status, an
//     error object, or a 200 that is not a PDF (ErrMalformedReply), such as
//     an HTML page or JSON served as application/pdf. The order then stays
//     pending, never paid on a guess.
//
// The inference rests on Pegas-kassa issuing a receipt only for a paid
// deposit; the seed does not say more. A payment it never reports this way
// is confirmed by an operator. The amount paid is not reported.
func (p *Pegas) PaymentStatus(ctx context.Context, ref PaymentRef) (PaymentStatus, error) {
	resp, err := p.openReceipt(ctx, ref, "pdf")
	if err != nil {
		var pe *ProviderError
		if errors.As(err, &pe) && pe.Kind == ErrNotFound && pe.Status == http.StatusNotFound {
			return PaymentStatus{}, nil
		}
		return PaymentStatus{}, err
	}
	resp.Body.Close()
	return PaymentStatus{Paid: true}, nil
}

// PaymentDocument opens a paid deposit's receipt document (GET
// /transaction/receipt/file) as "pdf" or "jpeg", streamed whole (the bytes
// read to check the format included): the caller closes Document.Body,
// which also ends the call's timeout. A deposit that has no document (not
// paid) is an error that is ErrNotFound; a 200 reply that does not start
// like a document of format is ErrMalformedReply, never given to the buyer.
func (p *Pegas) PaymentDocument(ctx context.Context, ref PaymentRef, format string) (*Document, error) {
	resp, err := p.openReceipt(ctx, ref, format)
	if err != nil {
		return nil, err
	}
	return &Document{
		ContentType: pegasDocumentTypes[format],
		Length:      resp.ContentLength,
		Body:        resp.Body,
	}, nil
}

// CancelPayment withdraws an unpaid invoice (GET /deposit/cancel), which
// Pegas-kassa identifies by both the shop's order id and its own payment id.
func (p *Pegas) CancelPayment(ctx context.Context, ref PaymentRef) error {
	if err := validatePegasOrderID("order_id", ref.OrderID); err != nil {
		return err
	}
	if err := validatePegasID("id", ref.ID); err != nil {
		return err
	}
	q := p.query()
	q.Set("order_id", ref.OrderID)
	q.Set("id", ref.ID)
	reply, err := p.get(ctx, pegasOpCancel, q)
	if err != nil {
		return err
	}
	if _, err := parsePegasCancel(reply); err != nil {
		return p.malformed(pegasOpCancel, http.StatusOK, reply, err)
	}
	return nil
}

// Balance reports the site's balance (GET /balance).
func (p *Pegas) Balance(ctx context.Context) (Balance, error) {
	reply, err := p.get(ctx, pegasOpBalance, p.query())
	if err != nil {
		return Balance{}, err
	}
	b, err := parsePegasBalance(reply)
	if err != nil {
		return Balance{}, p.malformed(pegasOpBalance, http.StatusOK, reply, err)
	}
	return b, nil
}

// Payout requests a payout to req.To by req.Method (GET /withdrawal): one of
// wallet, yandex, card, nickname or phone. It is sent once and never
// retried. With an OrderID, Pegas-kassa refuses a repeat of it, reported as
// ErrDuplicate (and so also ErrRejected) when the reply says the order id is
// taken: a payout re-sent after a lost reply with the same OrderID cannot
// pay twice. Any other refusal, including one of the order id's format, is
// ErrRejected only: that payout was not made.
func (p *Pegas) Payout(ctx context.Context, req PayoutRequest) (Payout, error) {
	if err := validateMoney("amount", req.Amount, false); err != nil {
		return Payout{}, err
	}
	if !slices.Contains(pegasPayoutMethods, req.Method) {
		return Payout{}, invalid("method", "unknown payout method %q (want one of %s)",
			req.Method, strings.Join(pegasPayoutMethods, ", "))
	}
	if err := validatePegasPayee("to", req.Method, req.To); err != nil {
		return Payout{}, err
	}
	q := p.query()
	q.Set("amount", req.Amount.StringFixed(2))
	q.Set("number", req.To)
	q.Set("method", req.Method)
	if req.Comment != "" {
		if err := validatePegasComment("comment", req.Comment); err != nil {
			return Payout{}, err
		}
		q.Set("comment", req.Comment)
	}
	if req.OrderID != "" {
		if err := validatePegasOrderID("order_id", req.OrderID); err != nil {
			return Payout{}, err
		}
		q.Set("order_id", req.OrderID)
	}
	if req.TTL != 0 {
		ttl, err := pegasTTL(req.TTL)
		if err != nil {
			return Payout{}, err
		}
		q.Set("ttl", ttl)
	}
	reply, err := p.get(ctx, pegasOpWithdrawal, q)
	if err != nil {
		return Payout{}, err
	}
	payout, err := parsePegasWithdrawal(reply)
	if err != nil {
		return Payout{}, p.malformed(pegasOpWithdrawal, http.StatusOK, reply, err)
	}
	return payout, nil
}

// query starts a call's query string with the site token.
func (p *Pegas) query() url.Values {
	return url.Values{"token": {p.token}}
}

// get makes one JSON call and returns its reply when it succeeded: HTTP 200
// and no error object. Anything else becomes a ProviderError.
func (p *Pegas) get(ctx context.Context, op string, q url.Values) (reply []byte, err error) {
	defer p.api.Observe(op, time.Now(), &err)
	header := http.Header{"Accept": {"application/json"}}
	status, reply, err := p.api.Call(ctx, op, http.MethodGet, p.api.URL(op, q), header, nil)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK || parsePegasError(reply).Found {
		return nil, p.replyError(op, status, reply)
	}
	return reply, nil
}

// openReceipt asks for the receipt document of ref in format and returns the
// reply, body open, when it is that document: HTTP 200 whose body starts
// with the format's magic bytes (pegasDocumentMagic), sent as the format's
// media type, application/octet-stream or no type. Any other reply is read
// (up to an excerpt), closed and turned into a ProviderError: an error
// reply by its status or error object, anything else ErrMalformedReply,
// whatever its Content-Type claims.
func (p *Pegas) openReceipt(ctx context.Context, ref PaymentRef, format string) (resp *http.Response, err error) {
	want, ok := pegasDocumentTypes[format]
	if !ok {
		return nil, invalid("format", "want pdf or jpeg, got %q", format)
	}
	q := p.query()
	switch {
	case ref.OrderID != "":
		if err := validatePegasOrderID("order_id", ref.OrderID); err != nil {
			return nil, err
		}
		q.Set("order_id", ref.OrderID)
	case ref.ID != "":
		if err := validatePegasID("id", ref.ID); err != nil {
			return nil, err
		}
		q.Set("id", ref.ID)
	default:
		return nil, invalid("order_id", "the receipt needs the order id or the payment id")
	}
	q.Set("format", format)
	header := http.Header{"Accept": {want + ", application/json;q=0.9"}}
	op := pegasOpReceipt
	defer p.api.Observe(op, time.Now(), &err)
	resp, err = p.api.Do(ctx, op, http.MethodGet, p.api.URL(op, q), header, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, p.replyError(op, resp.StatusCode, readAndClose(resp.Body, maxReplyBytes))
	}
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch {
	case isJSONMediaType(mediaType):
		reply := readAndClose(resp.Body, maxReplyBytes)
		if info := parsePegasError(reply); info.Found || info.Code != "" || info.Message != "" {
			return nil, p.replyError(op, resp.StatusCode, reply)
		}
		return nil, p.malformed(op, resp.StatusCode, reply, errors.New("a JSON reply instead of the document"))
	case mediaType == want || mediaType == "" || mediaType == "application/octet-stream":
		// The document's own type, or anonymous bytes: the reply is the
		// document only when its bytes start the way the format does.
		// PaymentStatus reads "paid" from this reply, so a Content-Type
		// alone proves nothing: an error or "please wait" page, or a JSON
		// status, served as application/pdf by a proxy or a half-working
		// API is not a receipt. The peeked bytes stay in the body.
		br := bufio.NewReader(resp.Body)
		magic := pegasDocumentMagic[format]
		if head, _ := br.Peek(len(magic)); bytes.Equal(head, magic) {
			resp.Body = pegasBody{Reader: br, Closer: resp.Body}
			return resp, nil
		}
		head, _ := br.Peek(maxBodyExcerpt)
		excerpt := bytes.Clone(head)
		resp.Body.Close()
		return nil, p.malformed(op, resp.StatusCode, excerpt,
			fmt.Errorf("the reply (Content-Type %q) does not start like a %s document", mediaType, format))
	default:
		excerpt := readAndClose(resp.Body, maxBodyExcerpt)
		return nil, p.malformed(op, resp.StatusCode, excerpt,
			fmt.Errorf("Content-Type %q, want %q", mediaType, want))
	}
}

// pegasBody is a document body read through a buffer, closed at its source.
type pegasBody struct {
	io.Reader
	io.Closer
}

// readAndClose reads up to limit bytes of body and closes it. A read error
// keeps what was read: the reply is only wanted for its error details.
func readAndClose(body io.ReadCloser, limit int64) []byte {
	defer body.Close()
	b, _ := io.ReadAll(io.LimitReader(body, limit))
	return b
}

// isJSONMediaType reports whether a media type is JSON.
func isJSONMediaType(t string) bool {
	return t == "application/json" || t == "text/json" || strings.HasSuffix(t, "+json")
}

// replyError turns a failed reply into a ProviderError. Its kind comes from
// the HTTP status (400 and other refusals ErrRejected, 401 and 403 ErrAuth,
// 404 ErrNotFound, 408, 409, 425, 429 and 5xx ErrUnavailable) or, for an error object
// sent with HTTP 200, from its code (ErrRejected unless the code says
// otherwise). A refused deposit or payout whose reply says its order_id is
// already taken (with HTTP 200, 400 or 409) is ErrDuplicate (see
// pegasErrorInfo.duplicate); any other
// refusal stays ErrRejected. Code, path and message come from the error
// object, in any of its shapes, with secrets removed.
func (p *Pegas) replyError(op string, status int, reply []byte) *ProviderError {
	info := parsePegasError(reply)
	var kind error
	if status == http.StatusOK {
		kind = pegasCodeKind(info.Code)
	} else {
		kind = replyStatusKind(status)
	}
	if (kind == ErrRejected || status == http.StatusConflict) && (op == pegasOpDeposit || op == pegasOpWithdrawal) && info.duplicate() {
		kind = ErrDuplicate
	}
	e := p.api.Failure(op, kind, status, reply, nil)
	e.Code = p.api.Clean(info.Code)
	e.Path = p.api.Clean(info.Path)
	e.Message = p.api.Clean(info.Message)
	return e
}

// malformed is the error for a 200 reply that is not what the API documents.
func (p *Pegas) malformed(op string, status int, reply []byte, err error) *ProviderError {
	return p.api.Malformed(op, status, reply, "%s", p.api.Clean(err.Error()))
}

// pegasCodeKind is the kind of failure a Pegas-kassa error code means, for an
// error object that came without an error status.
func pegasCodeKind(code string) error {
	switch code {
	case "authorization_error", "access_denied":
		return ErrAuth
	case "resource_not_found":
		return ErrNotFound
	case "internal_error":
		return ErrUnavailable
	default:
		return ErrRejected
	}
}

// pegasErrorInfo is what an error reply says (see readReplyError), read
// for what it says about the order id.
type pegasErrorInfo struct{ replyFault }

// parsePegasError reads an error reply.
func parsePegasError(body []byte) pegasErrorInfo {
	return pegasErrorInfo{readReplyError(body)}
}

// pegasOrderIDText matches how a message names the order id (order_id,
// order id, order-id, orderid).
var pegasOrderIDText = regexp.MustCompile(`order[ _-]?id`)

// pegasTakenWords are what a message says about an order id the provider
// already has, in English and Russian: already taken, exists, used or
// created; a duplicate; not unique; in use. "unique" alone is not among
// them: a format rule may ask for "a unique string of up to 32 characters".
var pegasTakenWords = []string{
	"already", "taken", "exists", "duplicat", "in use",
	"not unique", "non-unique", "nonunique", "be unique", "uniqueness", "unique constraint", "unique violation",
	"уже", "существует", "занят", "дубл", "не уникальн", "быть уникальн", "уникальност",
}

// pegasNotExistWords say the opposite: the order id is unknown.
var pegasNotExistWords = []string{
	"not exist", "n't exist", "nonexist", "non-exist", "no longer exist", "не существ", "несуществ",
}

// pegasOrderIDPath reports whether a refused field's dotted path is
// order_id.
func pegasOrderIDPath(path string) bool {
	return path == "order_id" || strings.HasSuffix(path, ".order_id")
}

// pegasSaysTaken reports whether message says that an id is already taken,
// and not that it is unknown.
func pegasSaysTaken(message string) bool {
	msg := strings.ToLower(message)
	for _, w := range pegasNotExistWords {
		if strings.Contains(msg, w) {
			return false
		}
	}
	for _, w := range pegasTakenWords {
		if strings.Contains(msg, w) {
			return true
		}
	}
	return false
}

// duplicate reports whether the error is Pegas-kassa refusing an order_id it
// already has. The seed says a repeated order_id is refused but not how, and
// reading any other refusal as a duplicate would make the caller believe an
// invoice exists that was never created; so a duplicate takes evidence:
// order_id is the only field refused (or no field is named), and a message
// says the order id is already taken. A refusal of order_id for its format,
// length or absence is not a duplicate, nor is one that also refuses another
// field (the first request, the same as this one, was refused too).
func (info pegasErrorInfo) duplicate() bool {
	for _, field := range info.Refused {
		if !pegasOrderIDPath(field) {
			return false
		}
	}
	for _, m := range info.Said {
		// A message on order_id, or on no field in particular naming the
		// order id, that says it is taken; one on another field counts
		// for nothing here.
		if (pegasOrderIDPath(m.Field) || m.Field == "" && pegasOrderIDText.MatchString(strings.ToLower(m.Text))) && pegasSaysTaken(m.Text) {
			return true
		}
	}
	return false
}

// parsePegasDeposit reads a deposit reply for a deposit of type depositType:
// the payment id and commission, and the payment page URL (invoice types,
// yandex) or the wallet or card number to pay to (wallet types).
func parsePegasDeposit(reply []byte, depositType string) (Payment, error) {
	var r struct {
		ID         flexString      `json:"id"`
		Commission json.RawMessage `json:"commission"`
		URL        *string         `json:"url"`
		Wallet     flexString      `json:"wallet"`
		Card       flexString      `json:"card"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		return Payment{}, err
	}
	id, err := pegasReplyID(r.ID)
	if err != nil {
		return Payment{}, err
	}
	commission, _, err := parsePegasAmount("commission", r.Commission)
	if err != nil {
		return Payment{}, err
	}
	p := Payment{ID: id, Commission: commission}
	if r.URL != nil && *r.URL != "" {
		if !isHTTPURL(*r.URL) {
			return Payment{}, errors.New(`payment "url" is not an absolute http(s) URL`)
		}
		p.URL = *r.URL
	}
	if !pegasWalletType(depositType) {
		if p.URL == "" {
			return Payment{}, fmt.Errorf(`no payment "url" for a %s deposit`, depositType)
		}
		return p, nil
	}
	if p.Wallet, err = pegasPayTo("wallet", r.Wallet); err != nil {
		return Payment{}, err
	}
	if p.Card, err = pegasPayTo("card", r.Card); err != nil {
		return Payment{}, err
	}
	if p.Wallet == "" && p.Card == "" {
		return Payment{}, fmt.Errorf(`no "wallet" or "card" to pay to for a %s deposit`, depositType)
	}
	return p, nil
}

// pegasPayTo checks a wallet or card number the buyer is told to pay to.
func pegasPayTo(field string, v flexString) (string, error) {
	s := strings.TrimSpace(string(v))
	switch {
	case s == "":
		return "", nil
	case len(s) > maxPegasAccount:
		return "", fmt.Errorf("%q is longer than %d characters", field, maxPegasAccount)
	case !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl):
		return "", fmt.Errorf("%q has control characters or bad UTF-8", field)
	}
	return s, nil
}

// parsePegasCancel reads a cancel reply: the cancelled payment's id.
func parsePegasCancel(reply []byte) (string, error) {
	var r struct {
		ID flexString `json:"id"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		return "", err
	}
	return pegasReplyID(r.ID)
}

// parsePegasWithdrawal reads a withdrawal reply: the payout's id and
// commission.
func parsePegasWithdrawal(reply []byte) (Payout, error) {
	var r struct {
		ID         flexString      `json:"id"`
		Commission json.RawMessage `json:"commission"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		return Payout{}, err
	}
	id, err := pegasReplyID(r.ID)
	if err != nil {
		return Payout{}, err
	}
	commission, _, err := parsePegasAmount("commission", r.Commission)
	if err != nil {
		return Payout{}, err
	}
	return Payout{ID: id, Commission: commission}, nil
}

// parsePegasBalance reads a balance reply: the site's balance, a number or a
// string.
func parsePegasBalance(reply []byte) (Balance, error) {
	var r struct {
		Balance json.RawMessage `json:"balance"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		return Balance{}, err
	}
	total, ok, err := parsePegasAmount("balance", r.Balance)
	if err != nil {
		return Balance{}, err
	}
	if !ok {
		return Balance{}, errors.New(`no "balance"`)
	}
	return Balance{Total: total}, nil
}

// pegasReplyID checks a payment id from a reply: present, and one that can
// be sent back (see validatePegasID).
func pegasReplyID(id flexString) (string, error) {
	if id == "" {
		return "", errors.New(`no "id"`)
	}
	if err := validatePegasID("id", string(id)); err != nil {
		return "", fmt.Errorf(`"id": %v`, err)
	}
	return string(id), nil
}

// maxPegasReplyAmount bounds an amount in a reply: anything larger is not
// money but a broken reply.
var maxPegasReplyAmount = decimal.New(1, 15)

// parsePegasAmount reads an amount given as a JSON number or string. Absent,
// null or "" is zero and not present. Exponents beyond ±18 are refused before
// any arithmetic, which would otherwise expand them digit by digit.
func parsePegasAmount(field string, raw json.RawMessage) (amount decimal.Decimal, present bool, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" || string(raw) == `""` {
		return decimal.Zero, false, nil
	}
	var text flexString
	if err := json.Unmarshal(raw, &text); err != nil {
		return decimal.Zero, false, fmt.Errorf("%q: %v", field, err)
	}
	amount, err = decimal.NewFromString(strings.TrimSpace(string(text)))
	if err != nil {
		return decimal.Zero, false, fmt.Errorf("%q is not a number", field)
	}
	if e := amount.Exponent(); e > 18 || e < -18 || amount.Abs().GreaterThan(maxPegasReplyAmount) {
		return decimal.Zero, false, fmt.Errorf("%q is out of range", field)
	}
	return amount, true, nil
}

// validatePegasOrderID accepts the shop's order id: 1 to 64 printable ASCII
// characters, no spaces.
func validatePegasOrderID(field, id string) error {
	switch {
	case id == "":
		return invalid(field, "must not be empty")
	case len(id) > maxPegasOrderID:
		return invalid(field, "longer than %d characters", maxPegasOrderID)
	case strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r >= 0x7f }):
		return invalid(field, "only printable ASCII without spaces")
	}
	return nil
}

// validatePegasID accepts Pegas-kassa's payment id: 1 to 128 printable
// ASCII characters, no spaces.
func validatePegasID(field, id string) error {
	switch {
	case id == "":
		return invalid(field, "must not be empty")
	case len(id) > maxPegasID:
		return invalid(field, "longer than %d characters", maxPegasID)
	case strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r >= 0x7f }):
		return invalid(field, "only printable ASCII without spaces")
	}
	return nil
}

// validatePegasPhone accepts a phone number in international format: an
// optional + and 10 to 15 digits.
func validatePegasPhone(field, phone string) error {
	digits := strings.TrimPrefix(phone, "+")
	if len(digits) < 10 || len(digits) > 15 || strings.ContainsFunc(digits, func(r rune) bool { return r < '0' || r > '9' }) {
		return invalid(field, "want an international phone number: an optional + and 10 to 15 digits")
	}
	return nil
}

// validatePegasPayee accepts a payout's payee for its method: a card number
// of 12 to 19 digits, a phone number in international format, or, for the
// other methods, an account or nickname without spaces.
func validatePegasPayee(field, method, to string) error {
	if err := validateToken(field, to, maxPegasAccount); err != nil {
		return err
	}
	switch method {
	case "card":
		if len(to) < 12 || len(to) > 19 || strings.ContainsFunc(to, func(r rune) bool { return r < '0' || r > '9' }) {
			return invalid(field, "want a card number of 12 to 19 digits")
		}
	case "phone":
		return validatePegasPhone(field, to)
	}
	return nil
}

// validatePegasComment accepts a payout comment of 3 to 100 characters,
// valid UTF-8 without control characters.
func validatePegasComment(field, comment string) error {
	n := utf8.RuneCountInString(comment)
	switch {
	case !utf8.ValidString(comment):
		return invalid(field, "must be valid UTF-8")
	case n < minPegasComment || n > maxPegasComment:
		return invalid(field, "want %d to %d characters, got %d", minPegasComment, maxPegasComment, n)
	case strings.ContainsFunc(comment, unicode.IsControl):
		return invalid(field, "must not contain control characters")
	}
	return nil
}

// pegasTTL formats a lifetime in whole minutes, rounded up: Pegas-kassa
// counts ttl in minutes, and rounding down could end an invoice before the
// shop expects.
func pegasTTL(ttl time.Duration) (string, error) {
	if ttl < 0 {
		return "", invalid("ttl", "must not be negative")
	}
	minutes := ttl / time.Minute
	if ttl%time.Minute != 0 {
		minutes++
	}
	return strconv.FormatInt(int64(minutes), 10), nil
}

// RefusesRepeatedOrderID marks Pegas-kassa as refusing a repeated
// order_id, which makes re-sending a deposit safe.
func (p *Pegas) RefusesRepeatedOrderID() {}

// CallTimeout is how long one call may take; the reconciler waits longer
// than a checkout can take before it recovers one.
func (p *Pegas) CallTimeout() time.Duration { return p.api.CallTimeout() }

// APIEndpoint reports where the Pegas calls go (EndpointReporter).
func (p *Pegas) APIEndpoint() (host string, sandbox bool) { return p.api.APIEndpoint() }

// Interface guards
var (
	_ EndpointReporter      = (*Pegas)(nil)
	_ caddy.Provisioner     = (*Pegas)(nil)
	_ caddy.Validator       = (*Pegas)(nil)
	_ caddy.CleanerUpper    = (*Pegas)(nil)
	_ caddyfile.Unmarshaler = (*Pegas)(nil)
	_ PaymentProvider       = (*Pegas)(nil)
	_ DocumentProvider      = (*Pegas)(nil)
	_ OrderIDIdempotent     = (*Pegas)(nil)
	_ CallTimeoutReporter   = (*Pegas)(nil)
)
