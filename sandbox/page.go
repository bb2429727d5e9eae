package sandbox

import (
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

var (
	// errUnknownInvoice is returned when paying an invoice that does not
	// exist.
	errUnknownInvoice = errors.New("unknown invoice")

	// errInvoiceCancelled is returned when paying a cancelled invoice.
	errInvoiceCancelled = errors.New("the invoice is cancelled")

	// errInsufficientFunds is returned for a payout above the balance.
	errInsufficientFunds = errors.New("insufficient funds")

	// errNoCallbackURL is returned when sending the callback of an invoice
	// or payoff made without a callback_url.
	errNoCallbackURL = errors.New("no callback_url")
)

// pageData is what the payment page shows.
type pageData struct {
	Title    string
	Provider string
	ID       string
	Amount   string
	PayTo    string // the wallet or card a Pegas wallet-type deposit is paid to
	State    string // "", "paid", "cancelled", "expired", "closed", "unknown"
}

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="ru">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f4f5f7;color:#1d2330;margin:0;padding:2rem 1rem}
main{max-width:26rem;margin:0 auto;background:#fff;border-radius:12px;box-shadow:0 2px 10px rgba(0,0,0,.08);padding:1.5rem 2rem}
h1{font-size:1.3rem;margin:0 0 1rem}
.en{color:#6b7280;font-weight:normal}
dl{display:grid;grid-template-columns:auto 1fr;gap:.4rem 1rem;margin:0 0 1.5rem}
dt{color:#6b7280}
dd{margin:0;font-weight:600}
button{width:100%;font-size:1.1rem;padding:.8rem;border:0;border-radius:8px;background:#2563eb;color:#fff;cursor:pointer}
button:hover{background:#1d4ed8}
.note{font-size:.85rem;color:#6b7280;margin:1.2rem 0 0}
.ok{color:#15803d}
.bad{color:#b91c1c}
</style>
</head>
<body>
<main>
{{- if eq .State "unknown"}}
<h1 class="bad">Счёт не найден <span class="en">/ Invoice not found</span></h1>
<p>Нет счёта {{.Provider}} с номером {{.ID}}.<br><span class="en">There is no {{.Provider}} invoice {{.ID}}.</span></p>
{{- else if eq .State "cancelled"}}
<h1 class="bad">Счёт отменён <span class="en">/ Invoice cancelled</span></h1>
<p>Этот счёт отменён, оплатить его нельзя.<br><span class="en">This invoice was cancelled and cannot be paid.</span></p>
{{- else if eq .State "expired"}}
<h1 class="bad">Срок оплаты истёк <span class="en">/ Invoice expired</span></h1>
<p>Время на оплату этого счёта вышло, оплатить его нельзя.<br><span class="en">This invoice has expired and cannot be paid.</span></p>
{{- else if eq .State "closed"}}
<h1 class="bad">Счёт закрыт <span class="en">/ Invoice closed</span></h1>
<p>Оплата этого счёта не прошла или прошла не на ту сумму.<br><span class="en">This invoice failed or was paid a wrong amount, and cannot be paid.</span></p>
{{- else if eq .State "paid"}}
<h1 class="ok">Оплачено <span class="en">/ Paid</span></h1>
{{- else}}
<h1>Оплата заказа <span class="en">/ Sandbox payment</span></h1>
{{- end}}
{{- if or (eq .State "") (eq .State "paid")}}
<dl>
<dt>Сумма <span class="en">/ Amount</span></dt><dd>{{.Amount}} ₽</dd>
<dt>Провайдер <span class="en">/ Provider</span></dt><dd>{{.Provider}}</dd>
<dt>Счёт <span class="en">/ Invoice</span></dt><dd>{{.ID}}</dd>
{{- if .PayTo}}
<dt>Куда платить <span class="en">/ Pay to</span></dt><dd>{{.PayTo}}</dd>
{{- end}}
</dl>
{{- if eq .State ""}}
<form method="post">
<button type="submit" id="pay">Оплатить</button>
</form>
{{- end}}
{{- end}}
<p class="note">Это песочница caddy-kassa: деньги не переводятся.<br>
<span class="en">This is the caddy-kassa sandbox: no money moves.</span></p>
</main>
</body>
</html>
`))

// servePage answers /pay/{provider}/{id}: GET shows the invoice and a Pay
// button, POST pays it.
func (h *Handler) servePage(w http.ResponseWriter, r *http.Request, rest string) {
	provider, id, ok := strings.Cut(rest, "/")
	if !ok || id == "" || strings.Contains(id, "/") || (provider != APICrystalPay && provider != APIPegas) {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	data := pageData{ID: id, Provider: "CrystalPAY"}
	if provider == APIPegas {
		data.Provider = "Pegas-kassa"
	}
	var redirect string
	var err error
	if r.Method == http.MethodPost {
		redirect, err = h.pay(provider, id, &data)
	} else {
		err = h.lookup(provider, id, &data)
	}
	status := http.StatusOK
	switch {
	case errors.Is(err, errUnknownInvoice):
		data.State, status = "unknown", http.StatusNotFound
	case errors.Is(err, errInvoiceCancelled):
		data.State, status = "cancelled", http.StatusConflict
	case errors.Is(err, errInvoiceExpired):
		data.State, status = "expired", http.StatusConflict
	case errors.Is(err, errInvoiceClosed):
		data.State, status = "closed", http.StatusConflict
	case r.Method == http.MethodPost && redirect != "":
		http.Redirect(w, r, redirect, http.StatusSeeOther)
		return
	}
	data.Title = "Оплата заказа / Sandbox payment"
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_ = pageTemplate.Execute(w, data)
	}
}

// lookup fills data with an invoice, without paying it.
func (h *Handler) lookup(provider, id string, data *pageData) error {
	if provider == APICrystalPay {
		if inv, ok := h.st.crystalPayInvoice(id); ok {
			inv.fill(data)
			return nil
		}
		inv, expired, ok := h.st.v3Invoice(id)
		if !ok {
			return errUnknownInvoice
		}
		return inv.fill(data, expired)
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return errUnknownInvoice
	}
	inv, perr := h.st.pegasInvoiceFor(n, "")
	if perr != nil {
		return errUnknownInvoice
	}
	inv.fill(data)
	if inv.state == pegasCancelled {
		return errInvoiceCancelled
	}
	return nil
}

// pay marks an invoice paid, fills data and returns where the buyer goes
// next ("" for the Paid page).
func (h *Handler) pay(provider, id string, data *pageData) (string, error) {
	if provider == APICrystalPay {
		inv, paidNow, err := h.st.payCrystalPay(id)
		if errors.Is(err, errUnknownInvoice) {
			return h.payV3(id, data)
		}
		if err != nil {
			return "", err
		}
		inv.fill(data)
		h.logPaid(provider, id, inv.amount.String(), paidNow)
		return inv.redirect, nil
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return "", errUnknownInvoice
	}
	inv, paidNow, err := h.st.payPegas(n)
	if err != nil {
		return "", err
	}
	inv.fill(data)
	h.logPaid(provider, id, inv.amount.String(), paidNow)
	return inv.successURL, nil
}

// payV3 pays a CrystalPAY v3 invoice from its page.
func (h *Handler) payV3(id string, data *pageData) (string, error) {
	inv, paidNow, err := h.st.payV3(id)
	if err != nil {
		if !errors.Is(err, errUnknownInvoice) {
			data.Amount = inv.amount.StringFixed(2)
		}
		return "", err
	}
	_ = inv.fill(data, false)
	h.logPaid(APICrystalPay, id, inv.amount.String(), paidNow)
	if inv.redirect == nil {
		return "", nil
	}
	return *inv.redirect, nil
}

// logPaid logs an invoice that was just paid.
func (h *Handler) logPaid(api, id, amount string, paidNow bool) {
	if paidNow && h.logger != nil {
		h.logger.Info("sandbox invoice paid", zap.String("sandbox", h.Name),
			zap.String("api", api), zap.String("id", id), zap.String("amount", amount))
	}
}

func (inv crystalPayInvoice) fill(data *pageData) {
	data.Amount = inv.amount.StringFixed(2)
	if !inv.paidAt.IsZero() {
		data.State = "paid"
	}
}

// fill shows a v3 invoice; it returns why it cannot be paid, if it cannot.
func (inv v3Invoice) fill(data *pageData, expired bool) error {
	data.Amount = inv.amount.StringFixed(2)
	switch {
	case inv.state == v3Payed:
		data.State = "paid"
	case inv.state == v3WrongAmount || inv.state == v3Failed:
		return errInvoiceClosed
	case expired:
		return errInvoiceExpired
	}
	return nil
}

func (inv pegasInvoice) fill(data *pageData) {
	data.Amount = inv.amount.StringFixed(2)
	data.PayTo = inv.wallet + inv.card
	if inv.state == pegasPaid {
		data.State = "paid"
	}
}
