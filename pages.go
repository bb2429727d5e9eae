package kassa

import (
	"bytes"
	"html/template"
	"net/http"
)

// The small pages a buyer without JavaScript sees. Russian first: the shops
// are Russian.

var payToPage = template.Must(template.New("payto").Parse(`<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Оплата заказа</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;color:#222}
.amount{font-size:2rem;font-weight:700}.number{font:1.4rem/1.4 ui-monospace,monospace;background:#f3f3f3;padding:.5rem .75rem;border-radius:.4rem;word-break:break-all}
small{color:#666}</style></head>
<body>
<h1>Оплата заказа</h1>
<p>Переведите <span class="amount">{{.Amount}} ₽</span></p>
{{if .Wallet}}<p>на кошелёк:</p><p class="number">{{.Wallet}}</p>{{end}}
{{if .Card}}<p>на карту:</p><p class="number">{{.Card}}</p>{{end}}
<p>Заказ <code>{{.OrderID}}</code> будет оплачен, как только перевод поступит.</p>
{{if .ReturnURL}}<p><a href="{{.ReturnURL}}">Вернуться в магазин</a></p>{{end}}
<p><small>Pay {{.Amount}} RUB to the number above; the order is paid once the transfer arrives.</small></p>
</body></html>
`))

var messagePage = template.Must(template.New("message").Parse(`<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.Title}}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;color:#222}</style></head>
<body>
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
<p><a href="/">Вернуться в магазин</a></p>
</body></html>
`))

// writePayToPage shows where to pay an order whose provider has no payment
// page (Pegas-kassa wallet types).
func writePayToPage(w http.ResponseWriter, o *Order) error {
	return writePage(w, http.StatusOK, payToPage, map[string]string{
		"Amount": FormatAmount(o.Amount), "Wallet": o.Payment.Wallet, "Card": o.Payment.Card,
		"OrderID": o.ID, "ReturnURL": o.ReturnURL,
	})
}

// writeErrorPage tells a form's buyer what went wrong.
func writeErrorPage(w http.ResponseWriter, status int, message string) error {
	return writeMessagePage(w, status, "Заказ не оформлен", message)
}

// writeMessagePage tells a form's buyer where their order stands.
func writeMessagePage(w http.ResponseWriter, status int, title, message string) error {
	return writePage(w, status, messagePage, map[string]string{"Title": title, "Message": message})
}

func writePage(w http.ResponseWriter, status int, page *template.Template, data any) error {
	var buf bytes.Buffer
	if err := page.Execute(&buf, data); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}
