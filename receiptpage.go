package kassa

import (
	"fmt"
	"html/template"
	"image/color"
	"net/http"
	"strings"
	"time"

	"github.com/boombuler/barcode/qr"
	"github.com/shopspring/decimal"
)

// moscow is the time zone receipts are shown in when the receipt service
// does not say where the place of settlement is.
var moscow = time.FixedZone("MSK", 3*60*60)

// receiptQR is the content of the QR code on a Russian fiscal receipt,
// which the tax service's receipt-check app scans: date and time at the
// place of settlement, total, fiscal drive number, document number, fiscal
// sign and operation type.
func receiptQR(f *FiscalParams, total decimal.Decimal, t ReceiptType, zone *time.Location) string {
	return fmt.Sprintf("t=%s&s=%s&fn=%s&i=%d&fp=%s&n=%d",
		f.DocumentTime.In(zone).Format("20060102T1504"), FormatAmount(total), f.FNNumber, f.DocumentNumber, f.DocumentSign, int(t))
}

// qrSVG draws content as a QR code in SVG, with the standard quiet zone.
func qrSVG(content string) (template.HTML, error) {
	code, err := qr.Encode(content, qr.M, qr.Auto)
	if err != nil {
		return "", err
	}
	b := code.Bounds()
	size := b.Dx() + 8
	var svg strings.Builder
	fmt.Fprintf(&svg, `<svg class="qr" xmlns="http://www.w3.org/2000/svg" viewBox="-4 -4 %d %d" shape-rendering="crispEdges" role="img" aria-label="QR-код чека">`, size, size)
	fmt.Fprintf(&svg, `<rect x="-4" y="-4" width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, size, size)
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			if gray := color.GrayModel.Convert(code.At(b.Min.X+x, b.Min.Y+y)).(color.Gray); gray.Y < 128 {
				fmt.Fprintf(&svg, "M%d %dh1v1h-1z", x, y)
			}
		}
	}
	svg.WriteString(`"/></svg>`)
	return template.HTML(svg.String()), nil
}

// receiptLine is a position on the receipt page.
type receiptLine struct {
	Name, Qty, Price, Sum, VAT string
}

// receiptPageData is what the receipt page shows.
type receiptPageData struct {
	Shop, OrderID, Type, Total, Time, State string
	Lines                                   []receiptLine
	VATs                                    []receiptLine
	Fiscal                                  *FiscalParams
	Email, Phone                            string
	QR                                      template.HTML
}

// writeReceiptPage shows an order's sale receipt as a printable page.
func (h *ReceiptHandler) writeReceiptPage(w http.ResponseWriter, r *http.Request, o *Order) error {
	d := receiptPageData{Shop: h.shopName(r), OrderID: o.ID, Type: "Кассовый чек. Приход", Total: FormatAmount(o.Amount),
		Email: MaskEmail(o.Email), Phone: MaskPhone(o.Phone), State: "none"}
	rec := o.Receipt
	if rec == nil {
		rec = &OrderReceipt{OperationID: receiptOperationID(o.ID, ReceiptSale, 1), Type: ReceiptSale}
	} else {
		d.State = string(rec.State.Public())
	}
	defaultVAT, zone := VATNone, moscow
	if dv, ok := h.app.receipts.(DefaultVATReporter); ok {
		defaultVAT = dv.DefaultVAT()
	}
	if l, ok := h.app.receipts.(LocationReporter); ok {
		zone = l.Location()
	}
	// Each rate's VAT is computed once, from that rate's total.
	totals := map[VAT]decimal.Decimal{}
	var rates []VAT
	for _, p := range fiscalReceipt(o, rec).Positions {
		if p.VAT == 0 {
			p.VAT = defaultVAT
		}
		sum := p.Price.Mul(decimal.NewFromInt(p.Quantity))
		d.Lines = append(d.Lines, receiptLine{Name: p.Name, Qty: fmt.Sprint(p.Quantity), Price: FormatAmount(p.Price), Sum: FormatAmount(sum), VAT: p.VAT.Label()})
		if _, seen := totals[p.VAT]; !seen {
			rates = append(rates, p.VAT)
		}
		totals[p.VAT] = totals[p.VAT].Add(sum)
	}
	for _, v := range rates {
		d.VATs = append(d.VATs, receiptLine{VAT: v.Label(), Sum: FormatAmount(v.Share(totals[v]))})
	}
	if rec.State == ReceiptDone && rec.Fiscal != nil {
		d.Fiscal = rec.Fiscal
		d.Time = rec.Fiscal.DocumentTime.In(zone).Format("02.01.2006 15:04")
		qr, err := h.qr.get(receiptQR(rec.Fiscal, o.Amount, rec.Type, zone))
		if err != nil {
			return err
		}
		d.QR = qr
	}
	return writePage(w, http.StatusOK, receiptPage, d)
}

var receiptPage = template.Must(template.New("receipt").Parse(`<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Чек по заказу {{.OrderID}}</title>
{{if not .Fiscal}}{{if ne .State "failed"}}<meta http-equiv="refresh" content="5">{{end}}{{end}}
<style>
body{font:15px/1.45 ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace;color:#111;background:#eee;margin:0;padding:1rem}
.receipt{background:#fff;max-width:26rem;margin:0 auto;padding:1.25rem 1.25rem 1.5rem;box-shadow:0 1px 4px rgba(0,0,0,.15)}
h1{font-size:1.05rem;text-align:center;margin:0 0 .25rem}.center{text-align:center}
table{width:100%;border-collapse:collapse}td{padding:.15rem 0;vertical-align:top}td.num{text-align:right;white-space:nowrap}
.sep{border-top:1px dashed #999;margin:.6rem 0}.total td{font-weight:700;font-size:1.15rem}
.qr{width:10rem;height:10rem;display:block;margin:1rem auto 0}.muted{color:#666}.failed{color:#b00}
@media print{body{background:#fff;padding:0}.receipt{box-shadow:none;max-width:none}.noprint{display:none}}
</style></head>
<body><div class="receipt">
<h1>{{.Shop}}</h1>
<p class="center">{{.Type}}</p>
{{if .Time}}<p class="center">{{.Time}}</p>{{end}}
<div class="sep"></div>
<table>
{{range .Lines}}<tr><td colspan="2">{{.Name}}</td></tr>
<tr><td class="muted">{{.Qty}} × {{.Price}} · {{.VAT}}</td><td class="num">{{.Sum}}</td></tr>
{{end}}</table>
<div class="sep"></div>
<table>
<tr class="total"><td>ИТОГО</td><td class="num">{{.Total}}</td></tr>
<tr><td>Безналичными</td><td class="num">{{.Total}}</td></tr>
{{range .VATs}}<tr><td>{{.VAT}}</td><td class="num">{{.Sum}}</td></tr>{{end}}
</table>
<div class="sep"></div>
{{with .Fiscal}}<table>
<tr><td>ФН</td><td class="num">{{.FNNumber}}</td></tr>
<tr><td>ФД</td><td class="num">{{.DocumentNumber}}</td></tr>
<tr><td>ФП</td><td class="num">{{.DocumentSign}}</td></tr>
<tr><td>Смена</td><td class="num">{{.ShiftNumber}}</td></tr>
<tr><td>Чек за смену</td><td class="num">{{.ReceiptNumber}}</td></tr>
<tr><td>РН ККТ</td><td class="num">{{.RegistrationNumber}}</td></tr>
<tr><td>Сайт ФНС</td><td class="num">{{.FNSURL}}</td></tr>
</table>
{{else}}{{if eq .State "failed"}}<p class="failed">Чек пока не сформирован; магазин уже знает об этом.</p>{{else if eq .State "none"}}<p class="muted">Чек будет сформирован после оплаты.</p>{{else}}<p class="muted">Чек формируется…</p>{{end}}{{end}}
{{if .Email}}<p class="muted">Чек отправлен на {{.Email}}</p>{{else if .Phone}}<p class="muted">Чек отправлен на {{.Phone}}</p>{{end}}
<p class="muted">Заказ {{.OrderID}}</p>
{{.QR}}
<p class="center noprint"><a href="javascript:print()">Распечатать</a></p>
</div></body></html>
`))
