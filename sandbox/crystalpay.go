package sandbox

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/shopspring/decimal"
)

// crystalPayParams lists the query parameters each CrystalPAY operation
// accepts besides s, n and o.
var crystalPayParams = map[string][]string{
	"balance":  {},
	"generate": {"amount", "redirect"},
	"checkpay": {"i"},
	"withdraw": {"amount", "wallet", "service", "secret"},
}

// crystalPayState is the simulated CrystalPAY cash register.
type crystalPayState struct {
	balance     decimal.Decimal
	invoices    map[string]*crystalPayInvoice
	order       []string // invoice ids, oldest first
	withdrawals []*crystalPayWithdrawal
}

// crystalPayInvoice is a payment link made by generate.
type crystalPayInvoice struct {
	id       string
	amount   decimal.Decimal
	redirect string
	url      string
	created  time.Time
	paidAt   time.Time // zero while unpaid
}

// crystalPayWithdrawal is a payout made by withdraw.
type crystalPayWithdrawal struct {
	amount          decimal.Decimal
	wallet, service string
	created         time.Time
}

// crystalPayReply is every CrystalPAY JSON reply; unset fields are left out.
type crystalPayReply struct {
	Balance      any     `json:"balance,omitempty"`
	ID           string  `json:"id,omitempty"`
	URL          string  `json:"url,omitempty"`
	State        string  `json:"state,omitempty"`
	Amount       string  `json:"amount,omitempty"`
	Error        *bool   `json:"error,omitempty"`
	ErrorMessage *string `json:"error_message,omitempty"`
	Auth         string  `json:"auth"`
}

var (
	falseValue = false
	trueValue  = true
)

// crystalPayFaults words faults the way CrystalPAY (PHP behind nginx) would.
var crystalPayFaults = faultStyle{
	error500: func(w http.ResponseWriter, _ string) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n<body>\r\n" +
			"<center><h1>500 Internal Server Error</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"))
	},
	auth: func(w http.ResponseWriter, _ string) {
		writePHPJSON(w, http.StatusOK, crystalPayReply{Auth: "error"})
	},
	forbidden: func(w http.ResponseWriter, message string) {
		if message == "" {
			message = "Access denied"
		}
		writeCrystalPayError(w, message)
	},
}

// writeCrystalPayError answers a failed CrystalPAY request.
func writeCrystalPayError(w http.ResponseWriter, message string) {
	writePHPJSON(w, http.StatusOK, crystalPayReply{Error: &trueValue, ErrorMessage: &message, Auth: "ok"})
}

// serveCrystalPay answers GET /crystalpay/api.php.
func (h *Handler) serveCrystalPay(w http.ResponseWriter, r *http.Request) {
	body, _ := readBody(r)
	q := r.URL.Query()
	c := h.newCall(w, r, APICrystalPay, q.Get("o"), body)
	c.run(crystalPayFaults, func(w http.ResponseWriter) { h.crystalPay(w, r, q) })
}

// crystalPay answers a CrystalPAY call once faults are out of the way.
func (h *Handler) crystalPay(w http.ResponseWriter, r *http.Request, q url.Values) {
	if len(q["s"]) != 1 || len(q["n"]) != 1 ||
		!secureEqual(q.Get("n"), h.creds.crystalPayLogin) || !secureEqual(q.Get("s"), h.creds.crystalPaySecret) {
		writePHPJSON(w, http.StatusOK, crystalPayReply{Auth: "error"})
		return
	}
	if r.Method != http.MethodGet {
		writeCrystalPayError(w, "Only GET requests are supported")
		return
	}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if len(q[k]) > 1 {
			writeCrystalPayError(w, "Parameter "+k+" is repeated")
			return
		}
	}
	op := q.Get("o")
	allowed, ok := crystalPayParams[op]
	if !ok {
		writeCrystalPayError(w, "Unknown operation")
		return
	}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if k != "s" && k != "n" && k != "o" && !slices.Contains(allowed, k) {
			writeCrystalPayError(w, "Unknown parameter: "+k)
			return
		}
	}
	for _, k := range allowed {
		if k != "redirect" && q.Get(k) == "" {
			writeCrystalPayError(w, "Parameter "+k+" is required")
			return
		}
	}
	switch op {
	case "balance":
		writePHPJSON(w, http.StatusOK, crystalPayReply{Balance: h.st.crystalPayBalance(), Auth: "ok"})
	case "generate":
		h.crystalPayGenerate(w, r, q)
	case "checkpay":
		inv, ok := h.st.crystalPayInvoice(q.Get("i"))
		if !ok {
			writeCrystalPayError(w, "Payment not found")
			return
		}
		reply := crystalPayReply{State: "notpayed", Error: &falseValue, Auth: "ok"}
		if !inv.paidAt.IsZero() {
			reply.State, reply.Amount = "payed", inv.amount.String()
		}
		writePHPJSON(w, http.StatusOK, reply)
	case "withdraw":
		h.crystalPayWithdraw(w, q)
	}
}

func (h *Handler) crystalPayGenerate(w http.ResponseWriter, r *http.Request, q url.Values) {
	amount, err := parseWholeRubles(q.Get("amount"))
	if err != nil {
		writeCrystalPayError(w, "Invalid amount: "+err.Error())
		return
	}
	redirect := q.Get("redirect")
	if _, given := q["redirect"]; given && !isWebURL(redirect) {
		writeCrystalPayError(w, "Invalid redirect: must be an absolute http(s) URL")
		return
	}
	inv := h.st.newCrystalPayInvoice(amount, redirect, h.publicBase(r)+"/pay/crystalpay/")
	writePHPJSON(w, http.StatusOK, crystalPayReply{ID: inv.id, URL: inv.url, Error: &falseValue, Auth: "ok"})
}

func (h *Handler) crystalPayWithdraw(w http.ResponseWriter, q url.Values) {
	amountText, wallet := q.Get("amount"), q.Get("wallet")
	amount, err := parseWholeRubles(amountText)
	if err != nil {
		writeCrystalPayError(w, "Invalid amount: "+err.Error())
		return
	}
	sum := md5.Sum([]byte(wallet + "-" + amountText + "-" + h.creds.crystalPaySecret2))
	if !secureEqual(q.Get("secret"), hex.EncodeToString(sum[:])) {
		writeCrystalPayError(w, "Invalid signature")
		return
	}
	if err := h.st.crystalPayWithdraw(amount, wallet, q.Get("service")); err != nil {
		writeCrystalPayError(w, "Insufficient funds: the balance is lower than the amount")
		return
	}
	writePHPJSON(w, http.StatusOK, crystalPayReply{Error: &falseValue, Auth: "ok"})
}

// crystalPayBalance is the balance as CrystalPAY words it: a whole-ruble
// string, or an object per wallet when crystalpay_wallets is on.
func (s *state) crystalPayBalance() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	total := s.crystalPay.balance.Floor()
	if !s.settings.CrystalPayWallets {
		return total.String()
	}
	qiwi := total.Div(decimal.NewFromInt(10)).Floor()
	return map[string]number{"QIWI": number(qiwi), "VISAMASTER.RUR": number(total.Sub(qiwi))}
}

// newCrystalPayInvoice creates an unpaid invoice whose payment link starts
// with pageBase.
func (s *state) newCrystalPayInvoice(amount decimal.Decimal, redirect, pageBase string) crystalPayInvoice {
	s.mu.Lock()
	defer s.mu.Unlock()
	var id string
	for id == "" || s.crystalPay.invoices[id] != nil {
		id = "1_" + randomAlphanumeric(10)
	}
	inv := &crystalPayInvoice{
		id: id, amount: amount, redirect: redirect,
		url: pageBase + id, created: s.now(),
	}
	s.crystalPay.invoices[id] = inv
	s.crystalPay.order = append(s.crystalPay.order, id)
	return *inv
}

// crystalPayInvoice returns a copy of an invoice.
func (s *state) crystalPayInvoice(id string) (crystalPayInvoice, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.crystalPay.invoices[id]
	if !ok {
		return crystalPayInvoice{}, false
	}
	return *inv, true
}

// payCrystalPay marks an invoice paid and raises the balance, once; it
// reports whether this call paid it.
func (s *state) payCrystalPay(id string) (crystalPayInvoice, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.crystalPay.invoices[id]
	if !ok {
		return crystalPayInvoice{}, false, errUnknownInvoice
	}
	if !inv.paidAt.IsZero() {
		return *inv, false, nil
	}
	inv.paidAt = s.now()
	s.crystalPay.balance = s.crystalPay.balance.Add(inv.amount)
	return *inv, true, nil
}

// crystalPayWithdraw pays out amount if the balance allows.
func (s *state) crystalPayWithdraw(amount decimal.Decimal, wallet, service string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if amount.GreaterThan(s.crystalPay.balance) {
		return errInsufficientFunds
	}
	s.crystalPay.balance = s.crystalPay.balance.Sub(amount)
	s.crystalPay.withdrawals = append(s.crystalPay.withdrawals, &crystalPayWithdrawal{
		amount: amount, wallet: wallet, service: service, created: s.now(),
	})
	return nil
}

// crystalPayView is the CrystalPAY part of GET /control/state.
type crystalPayView struct {
	Balance     string                     `json:"balance"`
	Invoices    []crystalPayInvoiceView    `json:"invoices"`
	Withdrawals []crystalPayWithdrawalView `json:"withdrawals"`
	// V3Invoices and Payoffs are those of API v3, as invoice/info and
	// payoff/info give them.
	V3Invoices []v3InvoiceView `json:"v3_invoices"`
	Payoffs    []v3PayoffInfo  `json:"payoffs"`
}

type crystalPayInvoiceView struct {
	ID       string     `json:"id"`
	Amount   string     `json:"amount"`
	State    string     `json:"state"`
	Redirect string     `json:"redirect,omitempty"`
	URL      string     `json:"url"`
	Created  time.Time  `json:"created"`
	PaidAt   *time.Time `json:"paid_at"`
}

func (inv *crystalPayInvoice) view() crystalPayInvoiceView {
	v := crystalPayInvoiceView{
		ID: inv.id, Amount: inv.amount.String(), State: "notpayed",
		Redirect: inv.redirect, URL: inv.url, Created: inv.created,
	}
	if !inv.paidAt.IsZero() {
		v.State, v.PaidAt = "payed", &inv.paidAt
	}
	return v
}

type crystalPayWithdrawalView struct {
	Amount  string    `json:"amount"`
	Wallet  string    `json:"wallet"`
	Service string    `json:"service"`
	Created time.Time `json:"created"`
}

func (w *crystalPayWithdrawal) view() crystalPayWithdrawalView {
	return crystalPayWithdrawalView{Amount: w.amount.String(), Wallet: w.wallet, Service: w.service, Created: w.created}
}

// secureEqual compares a credential in constant time.
func secureEqual(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

const alphanumerics = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// randomAlphanumeric returns n random letters and digits.
func randomAlphanumeric(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphanumerics[rand.IntN(len(alphanumerics))]
	}
	return string(b)
}
