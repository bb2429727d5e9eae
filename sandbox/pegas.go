package sandbox

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/shopspring/decimal"
)

// The first ids Pegas hands out.
const (
	firstPegasInvoiceID    = 100001
	firstPegasWithdrawalID = 500001
)

// What the buyer pays to for the wallet deposit types.
const (
	pegasWalletNumber = "79001234567"
	pegasCardNumber   = "4111111111111111"
)

// Invoice states, as the control endpoint shows them.
const (
	pegasPending   = "pending"
	pegasPaid      = "paid"
	pegasCancelled = "cancelled"
)

var (
	pegasDepositTypes      = []string{"wallet", "wallet-card", "invoice-qw", "invoice-card", "invoice-select", "yandex"}
	pegasWithdrawalMethods = []string{"wallet", "yandex", "card", "nickname", "phone"}
	pegasFormats           = []string{"pdf", "jpeg"}
	phonePattern           = regexp.MustCompile(`^\+?[0-9]{10,15}$`)
	integerPattern         = regexp.MustCompile(`^[0-9]+$`)
)

// pegasState is the simulated Pegas-kassa site.
type pegasState struct {
	balance            decimal.Decimal
	invoices           map[int64]*pegasInvoice
	depositOrderIDs    map[string]int64
	withdrawals        []*pegasWithdrawal
	withdrawalOrderIDs map[string]int64
	nextInvoiceID      int64
	nextWithdrawalID   int64
}

// pegasInvoice is a deposit.
type pegasInvoice struct {
	id                             int64
	orderID, kind                  string
	amount, commission             decimal.Decimal
	phone, qiwiAccount, successURL string
	ttl                            int
	url, wallet, card              string
	state                          string
	created, paidAt, cancelledAt   time.Time
}

// pegasWithdrawal is a payout.
type pegasWithdrawal struct {
	id                               int64
	orderID, number, method, comment string
	ttl                              int
	amount, commission               decimal.Decimal
	created                          time.Time
}

// pegasValidation names the parameter that failed validation.
type pegasValidation struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// pegasError is a Pegas-kassa error reply.
type pegasError struct {
	status          int
	Code            string           `json:"code"`
	Message         string           `json:"message"`
	ValidationError *pegasValidation `json:"validation_error,omitempty"`
}

// invalidParam is the invalid_parameters error for one parameter.
func invalidParam(path, message string) *pegasError {
	return &pegasError{
		status: http.StatusBadRequest, Code: "invalid_parameters", Message: message,
		ValidationError: &pegasValidation{Path: path, Message: message},
	}
}

// duplicateOrderID is the error for an order_id already used.
func duplicateOrderID() *pegasError {
	e := invalidParam("order_id", "The order id has already been taken.")
	e.Message = "Transaction with this order_id already exists"
	return e
}

func pegasNotFound(message string) *pegasError {
	return &pegasError{status: http.StatusNotFound, Code: "resource_not_found", Message: message}
}

func pegasRefusal(message string) *pegasError {
	return &pegasError{status: http.StatusBadRequest, Code: "provider_error", Message: message}
}

// writePegasError answers a Pegas-kassa error.
func writePegasError(w http.ResponseWriter, status int, code, message string, v *pegasValidation) {
	writePHPJSON(w, status, map[string]*pegasError{"error": {Code: code, Message: message, ValidationError: v}})
}

func (e *pegasError) write(w http.ResponseWriter) {
	writePegasError(w, e.status, e.Code, e.Message, e.ValidationError)
}

// pegasFaults words faults the way Pegas-kassa would.
var pegasFaults = faultStyle{
	error500: func(w http.ResponseWriter, message string) {
		writePegasError(w, http.StatusInternalServerError, "internal_error", orDefault(message, "Internal server error"), nil)
	},
	auth: func(w http.ResponseWriter, message string) {
		writePegasError(w, http.StatusUnauthorized, "authorization_error", orDefault(message, "Invalid token"), nil)
	},
	forbidden: func(w http.ResponseWriter, message string) {
		writePegasError(w, http.StatusForbidden, "access_denied", orDefault(message, "Access denied"), nil)
	},
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// servePegas answers /pegas/api/v1/{op}.
func (h *Handler) servePegas(w http.ResponseWriter, r *http.Request, op string) {
	body, bodyErr := readBody(r)
	c := h.newCall(w, r, APIPegas, op, body)
	c.run(pegasFaults, func(w http.ResponseWriter) {
		if err := h.pegas(w, r, op, body, bodyErr); err != nil {
			err.write(w)
		}
	})
}

// pegas answers a Pegas call once faults are out of the way.
func (h *Handler) pegas(w http.ResponseWriter, r *http.Request, op string, body []byte, bodyErr error) *pegasError {
	if _, ok := pegasCalls[op]; !ok {
		return pegasNotFound("Resource not found")
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return &pegasError{status: http.StatusBadRequest, Code: "parsing_error",
			Message: "Method " + r.Method + " is not supported: use GET or POST."}
	}
	in, perr := readPegasInput(r, body, bodyErr)
	if perr != nil {
		return perr
	}
	if token := in.values["token"]; token == "" || !secureEqual(token, h.creds.pegasToken) {
		return &pegasError{status: http.StatusUnauthorized, Code: "authorization_error", Message: "Invalid token"}
	}
	p, perr := in.validate(op)
	if perr != nil {
		return perr
	}
	switch op {
	case "deposit":
		return h.pegasDeposit(w, r, p)
	case "deposit/cancel":
		id, _ := strconv.ParseInt(p["id"], 10, 64)
		if err := h.st.cancelPegas(id, p["order_id"]); err != nil {
			return err
		}
		writePHPJSON(w, http.StatusOK, map[string]int64{"id": id})
	case "withdrawal":
		return h.pegasWithdrawal(w, p)
	case "transaction/receipt/file":
		return h.pegasReceiptFile(w, p)
	case "balance":
		writePHPJSON(w, http.StatusOK, map[string]number{"balance": number(h.st.pegasBalance())})
	}
	return nil
}

// pegasDepositReply is the reply of /deposit.
type pegasDepositReply struct {
	ID         int64  `json:"id"`
	Commission number `json:"commission"`
	URL        string `json:"url,omitempty"`
	Wallet     string `json:"wallet,omitempty"`
	Card       string `json:"card,omitempty"`
}

func (h *Handler) pegasDeposit(w http.ResponseWriter, r *http.Request, p map[string]string) *pegasError {
	amount, _ := parseMoney(p["amount"])
	ttl, _ := strconv.Atoi(p["ttl"])
	inv := &pegasInvoice{
		orderID: p["order_id"], kind: p["type"], amount: amount,
		commission: percentOf(amount, h.creds.pegasCommission),
		phone:      p["phone"], qiwiAccount: p["qiwi_account"], successURL: p["success_url"], ttl: ttl,
		state: pegasPending,
	}
	switch inv.kind {
	case "wallet":
		inv.wallet = pegasWalletNumber
	case "wallet-card":
		inv.card = pegasCardNumber
	}
	if err := h.st.addPegasInvoice(inv, h.publicBase(r)+"/pay/pegas/"); err != nil {
		return err
	}
	writePHPJSON(w, http.StatusOK, pegasDepositReply{
		ID: inv.id, Commission: number(inv.commission), URL: inv.url, Wallet: inv.wallet, Card: inv.card,
	})
	return nil
}

func (h *Handler) pegasWithdrawal(w http.ResponseWriter, p map[string]string) *pegasError {
	amount, _ := parseMoney(p["amount"])
	ttl, _ := strconv.Atoi(p["ttl"])
	wd := &pegasWithdrawal{
		orderID: p["order_id"], number: p["number"], method: p["method"], comment: p["comment"], ttl: ttl,
		amount: amount, commission: percentOf(amount, h.creds.pegasCommission),
	}
	if err := h.st.addPegasWithdrawal(wd); err != nil {
		return err
	}
	writePHPJSON(w, http.StatusOK, struct {
		ID         int64  `json:"id"`
		Commission number `json:"commission"`
	}{wd.id, number(wd.commission)})
	return nil
}

func (h *Handler) pegasReceiptFile(w http.ResponseWriter, p map[string]string) *pegasError {
	var id int64
	if p["id"] != "" {
		id, _ = strconv.ParseInt(p["id"], 10, 64)
	}
	inv, err := h.st.pegasInvoiceFor(id, p["order_id"])
	if err != nil {
		return err
	}
	if inv.state != pegasPaid {
		return pegasNotFound("Receipt not found: the transaction is not paid")
	}
	var doc []byte
	var contentType string
	switch p["format"] {
	case "pdf":
		doc, contentType = receiptPDF(inv), "application/pdf"
	case "jpeg":
		doc, contentType = receiptJPEG(inv), "image/jpeg"
	}
	ext := p["format"]
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="receipt-%d.%s"`, inv.id, ext))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(doc)
	return nil
}

// addPegasInvoice stores a new deposit, refusing a repeated order_id.
func (s *state) addPegasInvoice(inv *pegasInvoice, pageBase string) *pegasError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, taken := s.pegas.depositOrderIDs[inv.orderID]; taken {
		return duplicateOrderID()
	}
	inv.id = s.pegas.nextInvoiceID
	s.pegas.nextInvoiceID++
	inv.created = s.now()
	if inv.wallet == "" && inv.card == "" {
		inv.url = pageBase + strconv.FormatInt(inv.id, 10)
	}
	s.pegas.invoices[inv.id] = inv
	s.pegas.depositOrderIDs[inv.orderID] = inv.id
	return nil
}

// cancelPegas cancels an unpaid invoice named by both its ids.
func (s *state) cancelPegas(id int64, orderID string) *pegasError {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.pegas.invoices[id]
	if !ok || inv.orderID != orderID {
		return pegasNotFound("Transaction not found")
	}
	switch inv.state {
	case pegasPaid:
		return pegasRefusal("The transaction is already paid and cannot be cancelled")
	case pegasPending:
		inv.state, inv.cancelledAt = pegasCancelled, s.now()
	}
	return nil
}

// addPegasWithdrawal makes a payout if the order_id is new and the balance
// covers amount and commission.
func (s *state) addPegasWithdrawal(wd *pegasWithdrawal) *pegasError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if wd.orderID != "" {
		if _, taken := s.pegas.withdrawalOrderIDs[wd.orderID]; taken {
			return duplicateOrderID()
		}
	}
	total := wd.amount.Add(wd.commission)
	if total.GreaterThan(s.pegas.balance) {
		return pegasRefusal("Insufficient funds")
	}
	s.pegas.balance = s.pegas.balance.Sub(total)
	wd.id = s.pegas.nextWithdrawalID
	s.pegas.nextWithdrawalID++
	wd.created = s.now()
	s.pegas.withdrawals = append(s.pegas.withdrawals, wd)
	if wd.orderID != "" {
		s.pegas.withdrawalOrderIDs[wd.orderID] = wd.id
	}
	return nil
}

// pegasInvoiceFor finds an invoice by id and/or order_id (0 and "" mean
// not given); when both are given they must name the same invoice.
func (s *state) pegasInvoiceFor(id int64, orderID string) (pegasInvoice, *pegasError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id == 0 {
		byOrder, ok := s.pegas.depositOrderIDs[orderID]
		if !ok {
			return pegasInvoice{}, pegasNotFound("Transaction not found")
		}
		id = byOrder
	}
	inv, ok := s.pegas.invoices[id]
	if !ok || (orderID != "" && inv.orderID != orderID) {
		return pegasInvoice{}, pegasNotFound("Transaction not found")
	}
	return *inv, nil
}

// pegasBalance is the site balance.
func (s *state) pegasBalance() decimal.Decimal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pegas.balance
}

// payPegas marks an invoice paid and raises the balance by amount minus
// commission, once; it reports whether this call paid it.
func (s *state) payPegas(id int64) (pegasInvoice, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.pegas.invoices[id]
	if !ok {
		return pegasInvoice{}, false, errUnknownInvoice
	}
	switch inv.state {
	case pegasCancelled:
		return *inv, false, errInvoiceCancelled
	case pegasPaid:
		return *inv, false, nil
	}
	inv.state, inv.paidAt = pegasPaid, s.now()
	s.pegas.balance = s.pegas.balance.Add(inv.amount.Sub(inv.commission))
	return *inv, true, nil
}

// pegasIDByOrder finds the invoice id of a deposit order_id.
func (s *state) pegasIDByOrder(orderID string) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.pegas.depositOrderIDs[orderID]
	return id, ok
}

// pegasView is the Pegas part of GET /control/state.
type pegasView struct {
	Balance     string                `json:"balance"`
	Invoices    []pegasInvoiceView    `json:"invoices"`
	Withdrawals []pegasWithdrawalView `json:"withdrawals"`
}

type pegasInvoiceView struct {
	ID          int64      `json:"id"`
	OrderID     string     `json:"order_id"`
	Type        string     `json:"type"`
	Amount      string     `json:"amount"`
	Commission  string     `json:"commission"`
	State       string     `json:"state"`
	URL         string     `json:"url,omitempty"`
	Wallet      string     `json:"wallet,omitempty"`
	Card        string     `json:"card,omitempty"`
	Phone       string     `json:"phone,omitempty"`
	QiwiAccount string     `json:"qiwi_account,omitempty"`
	TTL         int        `json:"ttl,omitempty"`
	SuccessURL  string     `json:"success_url,omitempty"`
	Created     time.Time  `json:"created"`
	PaidAt      *time.Time `json:"paid_at"`
	CancelledAt *time.Time `json:"cancelled_at"`
}

func (inv *pegasInvoice) view() pegasInvoiceView {
	v := pegasInvoiceView{
		ID: inv.id, OrderID: inv.orderID, Type: inv.kind,
		Amount: inv.amount.StringFixed(2), Commission: inv.commission.StringFixed(2), State: inv.state,
		URL: inv.url, Wallet: inv.wallet, Card: inv.card, Phone: inv.phone, QiwiAccount: inv.qiwiAccount,
		TTL: inv.ttl, SuccessURL: inv.successURL, Created: inv.created,
	}
	if !inv.paidAt.IsZero() {
		v.PaidAt = &inv.paidAt
	}
	if !inv.cancelledAt.IsZero() {
		v.CancelledAt = &inv.cancelledAt
	}
	return v
}

type pegasWithdrawalView struct {
	ID         int64     `json:"id"`
	OrderID    string    `json:"order_id,omitempty"`
	Amount     string    `json:"amount"`
	Commission string    `json:"commission"`
	Number     string    `json:"number"`
	Method     string    `json:"method"`
	Comment    string    `json:"comment,omitempty"`
	TTL        int       `json:"ttl,omitempty"`
	Created    time.Time `json:"created"`
}

func (wd *pegasWithdrawal) view() pegasWithdrawalView {
	return pegasWithdrawalView{
		ID: wd.id, OrderID: wd.orderID, Amount: wd.amount.StringFixed(2), Commission: wd.commission.StringFixed(2),
		Number: wd.number, Method: wd.method, Comment: wd.comment, TTL: wd.ttl, Created: wd.created,
	}
}
