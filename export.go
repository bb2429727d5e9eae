package kassa

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// exportRow is an order as the accountant's export has it: what was paid,
// through whom, and its receipts' fiscal data. The buyer's contacts are
// left out (personal data, which the reconciliation does not need); amounts
// are rubles.
type exportRow struct {
	OrderID                     string `json:"order_id"`
	CreatedAt                   string `json:"created_at"`
	Account                     string `json:"account"`
	Provider                    string `json:"provider"`
	Amount                      string `json:"amount"`
	State                       string `json:"state"`
	PaidAt                      string `json:"paid_at"`
	PaidAmount                  string `json:"paid_amount"`
	PaidLate                    bool   `json:"paid_late"`
	PaymentID                   string `json:"payment_id"`
	Commission                  string `json:"commission"`
	ShopOrderID                 string `json:"shop_order_id"`
	ReceiptState                string `json:"receipt_state"`
	ReceiptOperationID          string `json:"receipt_operation_id"`
	ReceiptFiscalDocumentNumber string `json:"receipt_fiscal_document_number"`
	ReceiptFiscalSign           string `json:"receipt_fiscal_sign"`
	ReceiptFNNumber             string `json:"receipt_fn_number"`
	ReceiptFiscalTime           string `json:"receipt_fiscal_time"`
	RefundState                 string `json:"refund_state"`
	RefundOperationID           string `json:"refund_operation_id"`
	RefundFiscalDocumentNumber  string `json:"refund_fiscal_document_number"`
	RefundFiscalSign            string `json:"refund_fiscal_sign"`
}

// exportColumns is the CSV header: exportRow's JSON names, in order.
var exportColumns = []string{
	"order_id", "created_at", "account", "provider", "amount", "state", "paid_at", "paid_amount", "paid_late",
	"payment_id", "commission", "shop_order_id",
	"receipt_state", "receipt_operation_id", "receipt_fiscal_document_number", "receipt_fiscal_sign", "receipt_fn_number", "receipt_fiscal_time",
	"refund_state", "refund_operation_id", "refund_fiscal_document_number", "refund_fiscal_sign",
}

func (r *exportRow) cells() []string {
	return []string{
		r.OrderID, r.CreatedAt, r.Account, r.Provider, r.Amount, r.State, r.PaidAt, r.PaidAmount, strconv.FormatBool(r.PaidLate),
		r.PaymentID, r.Commission, r.ShopOrderID,
		r.ReceiptState, r.ReceiptOperationID, r.ReceiptFiscalDocumentNumber, r.ReceiptFiscalSign, r.ReceiptFNNumber, r.ReceiptFiscalTime,
		r.RefundState, r.RefundOperationID, r.RefundFiscalDocumentNumber, r.RefundFiscalSign,
	}
}

// newExportRow is order o's row, its times in zone.
func newExportRow(o *Order, zone *time.Location) *exportRow {
	at := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.In(zone).Format(time.RFC3339Nano)
	}
	r := &exportRow{OrderID: o.ID, CreatedAt: at(o.CreatedAt), Account: o.Account, Provider: o.Provider,
		Amount: FormatAmount(o.Amount), State: string(o.State.Public()), PaidAt: at(o.PaidAt), PaidLate: o.PaidLate,
		PaymentID: o.Payment.ID, ShopOrderID: o.ShopOrderID, ReceiptState: "none", RefundState: "none"}
	if o.PaidAmount.Valid {
		r.PaidAmount = FormatAmount(o.PaidAmount.Decimal)
	}
	if !o.Payment.Commission.IsZero() {
		r.Commission = FormatAmount(o.Payment.Commission)
	}
	if rec := o.Receipt; rec != nil {
		r.ReceiptState, r.ReceiptOperationID = string(rec.State.Public()), rec.OperationID
		if f := rec.Fiscal; f != nil {
			r.ReceiptFiscalDocumentNumber = strconv.FormatInt(f.DocumentNumber, 10)
			r.ReceiptFiscalSign, r.ReceiptFNNumber, r.ReceiptFiscalTime = f.DocumentSign, f.FNNumber, at(f.DocumentTime)
		}
	}
	if rec := o.Refund; rec != nil {
		r.RefundState, r.RefundOperationID = string(rec.State.Public()), rec.OperationID
		if f := rec.Fiscal; f != nil {
			r.RefundFiscalDocumentNumber = strconv.FormatInt(f.DocumentNumber, 10)
			r.RefundFiscalSign = f.DocumentSign
		}
	}
	return r
}

// exportErrorPrefix starts the line that ends a CSV export which failed
// midway (the response had begun, so its status could no longer say so):
// "#error: <code>: <message>". A JSON Lines export ends with
// {"error":{"code","message"}} instead. caddy kassa export knows both.
const exportErrorPrefix = "#error: "

// exportFlushEvery is how many rows the export writes between flushes.
const exportFlushEvery = 256

// adminExport streams every order created in [from, to), oldest first, as
// CSV (RFC 4180, with a header row) or JSON Lines: GET
// /kassa/orders/export?from=&to=&format=csv|jsonl.
func (a *App) adminExport(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	format := q.Get("format")
	switch format {
	case "":
		format = "csv"
	case "csv", "jsonl":
	default:
		return badRequest("bad_format", "format", "format is csv or jsonl, got %s", quoteInput(format))
	}
	from, to, err := a.timeRange(q)
	if err != nil {
		return err
	}
	out := newExportWriter(w, format)
	zone := a.location()
	rows := 0
	err = a.orders.Range(r.Context(), from, to, func(o *Order) error {
		rows++
		if err := out.row(newExportRow(o, zone)); err != nil {
			return err
		}
		if rows%exportFlushEvery == 0 {
			return out.flush()
		}
		return nil
	})
	if err != nil && r.Context().Err() == nil {
		a.logger.Error("operator: export failed midway", zap.Int("orders_sent", rows), zap.Error(err))
		out.fail(adminError(err))
	}
	return out.flush()
}

// exportWriter writes an export's rows as they come.
type exportWriter struct {
	w     http.ResponseWriter
	csv   *csv.Writer // nil for JSON Lines
	jsonl *json.Encoder
}

// newExportWriter starts the response: its headers and, for CSV, the
// header row.
func newExportWriter(w http.ResponseWriter, format string) *exportWriter {
	e := &exportWriter{w: w}
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8; header=present")
		w.Header().Set("Content-Disposition", `attachment; filename="orders.csv"`)
		w.WriteHeader(http.StatusOK)
		e.csv = csv.NewWriter(w)
		e.csv.UseCRLF = true // RFC 4180
		e.csv.Write(exportColumns)
		return e
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Content-Disposition", `attachment; filename="orders.jsonl"`)
	w.WriteHeader(http.StatusOK)
	e.jsonl = json.NewEncoder(w)
	return e
}

func (e *exportWriter) row(r *exportRow) error {
	if e.jsonl != nil {
		return e.jsonl.Encode(r)
	}
	cells := r.cells()
	for i, c := range cells {
		cells[i] = safeCell(c)
	}
	return e.csv.Write(cells)
}

// fail ends the export with its error line.
func (e *exportWriter) fail(body adminErrorBody) {
	if e.jsonl != nil {
		e.jsonl.Encode(map[string]adminErrorBody{"error": body})
		return
	}
	e.csv.Flush()
	io.WriteString(e.w, exportErrorPrefix+oneLine(body.Code)+": "+oneLine(body.Message)+"\r\n")
}

// flush sends what is written so far.
func (e *exportWriter) flush() error {
	if e.csv != nil {
		e.csv.Flush()
		if err := e.csv.Error(); err != nil {
			return err
		}
	}
	err := http.NewResponseController(e.w).Flush()
	if err == http.ErrNotSupported {
		return nil
	}
	return err
}

// safeCell makes a CSV cell safe to open in a spreadsheet: one line (so
// that every row, and the error line, is a line of its own), and text that
// a spreadsheet would take for a formula (starting with =, +, -, @, a tab
// or a carriage return) prefixed with an apostrophe.
func safeCell(s string) string {
	s = oneLine(s)
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
