package kassa

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// The month's totals (GET /kassa/orders/totals, caddy kassa export
// --totals): what the shop was paid in a period, per payment account and
// per VAT rate, for the reconciliation with the providers' dashboards and
// the receipt service's fiscal reports. An order counts in the period it
// was paid in (PaidAt, in the app's time zone), also one paid late; a
// refund counts in the period its return receipt was done.
//
// The totals walk the time index over the orders created from
// totalsLookback (and keep_unpaid) before the period to its end, and read
// the refund index (refundindex.go) for the refunds of orders created
// before that, each order counted once. A refund started before the
// release that brought the refund index, of an order created before the
// walked window, is not found.

// totalsLookback is how long before a period the orders paid in it may
// have been created: two months, and the time an unpaid order may still be
// paid late. The walk reads the time index from there.
const totalsLookback = 62 * 24 * time.Hour

// accountTotals are one payment account's figures.
type accountTotals struct {
	Account  string `json:"account"`
	Provider string `json:"provider"`
	// Orders and Amount are the orders paid and their amounts.
	Orders int    `json:"orders"`
	Amount string `json:"amount"`
	// PaidAmount is what the provider reported paid, where it did (the
	// order's amount where it did not).
	PaidAmount string `json:"paid_amount"`
	// Commission is the provider's fee, where it reported one.
	Commission string `json:"commission"`
	PaidLate   int    `json:"paid_late"`
	// Refunds and Refunded are the refund receipts done and their amounts.
	Refunds  int    `json:"refunds"`
	Refunded string `json:"refunded"`
}

// vatTotals are one VAT rate's figures: the positions' sum at the rate,
// and its VAT as the receipts compute it (once per rate per receipt, from
// that receipt's sum at the rate).
type vatTotals struct {
	VAT        VAT    `json:"vat"`
	Label      string `json:"label"`
	Sales      string `json:"sales"`
	SalesVAT   string `json:"sales_vat"`
	Refunds    string `json:"refunds"`
	RefundsVAT string `json:"refunds_vat"`
}

// totalsReport is the answer of GET /kassa/orders/totals.
type totalsReport struct {
	From     time.Time       `json:"from"`
	To       time.Time       `json:"to"`
	TimeZone string          `json:"time_zone"`
	Accounts []accountTotals `json:"accounts"`
	VAT      []vatTotals     `json:"vat"`
	Orders   int             `json:"orders"`
	Amount   string          `json:"amount"`
	Refunded string          `json:"refunded"`
	// ReceiptsNotDone are orders paid in the period whose sale receipt is
	// not done (failed, or still under way): the fiscal reports lack them.
	ReceiptsNotDone []string `json:"receipts_not_done"`
}

// sums are the running figures of an account or a rate.
type sums struct {
	orders, paidLate, refunds                   int
	amount, paid, commission, refunded          decimal.Decimal
	sales, salesVAT, refundSales, refundSaleVAT decimal.Decimal
}

// totals adds up the orders paid, and the refunds done, in [from, to).
func (a *App) totals(ctx context.Context, from, to time.Time) (*totalsReport, error) {
	accounts, rates := map[string]*sums{}, map[VAT]*sums{}
	providers := map[string]string{}
	var all sums
	rep := &totalsReport{From: from, To: to, TimeZone: a.location().String(), ReceiptsNotDone: []string{}}
	defaultVAT := VATNone
	if dv, ok := a.receipts.(DefaultVATReporter); ok {
		defaultVAT = dv.DefaultVAT()
	}
	in := func(t time.Time) bool { return !t.IsZero() && !t.Before(from) && t.Before(to) }
	count := func(o *Order) error {
		if o.State != OrderPaid {
			return nil
		}
		paidIn := in(o.PaidAt)
		refundIn := o.Refund != nil && o.Refund.State == ReceiptDone && in(o.Refund.DoneAt)
		if !paidIn && !refundIn {
			return nil
		}
		providers[o.Account] = o.Provider
		acc := sumsOf(accounts, o.Account)
		byRate := receiptRates(o, defaultVAT)
		if paidIn {
			paid := o.Amount
			if o.PaidAmount.Valid {
				paid = o.PaidAmount.Decimal
			}
			for _, s := range []*sums{acc, &all} {
				s.orders++
				s.amount = s.amount.Add(o.Amount)
				s.paid = s.paid.Add(paid)
				s.commission = s.commission.Add(o.Payment.Commission)
				if o.PaidLate {
					s.paidLate++
				}
			}
			for v, sum := range byRate {
				r := sumsOf(rates, v)
				r.sales = r.sales.Add(sum)
				r.salesVAT = r.salesVAT.Add(v.Share(sum))
			}
			if o.Receipt != nil && o.Receipt.State != ReceiptDone {
				rep.ReceiptsNotDone = append(rep.ReceiptsNotDone, o.ID)
			}
		}
		if refundIn {
			for _, s := range []*sums{acc, &all} {
				s.refunds++
				s.refunded = s.refunded.Add(o.Amount)
			}
			for v, sum := range byRate {
				r := sumsOf(rates, v)
				r.refundSales = r.refundSales.Add(sum)
				r.refundSaleVAT = r.refundSaleVAT.Add(v.Share(sum))
			}
		}
		return nil
	}
	walked := from.Add(-totalsLookback - time.Duration(a.KeepUnpaid))
	if err := a.orders.Range(ctx, walked, to, count); err != nil {
		return nil, err
	}
	// The refunds of older orders, from the refund index: an order
	// created in the walked window was counted above.
	err := a.orders.refunds(ctx, from.Add(-refundUnderway), to, func(o *Order) error {
		if !o.CreatedAt.Before(walked) && o.CreatedAt.Before(to) {
			return nil
		}
		return count(o)
	})
	if err != nil {
		return nil, err
	}
	rep.Accounts = []accountTotals{}
	for _, name := range sortedKeys(accounts) {
		s := accounts[name]
		rep.Accounts = append(rep.Accounts, accountTotals{Account: name, Provider: providers[name], Orders: s.orders,
			Amount: FormatAmount(s.amount), PaidAmount: FormatAmount(s.paid), Commission: FormatAmount(s.commission),
			PaidLate: s.paidLate, Refunds: s.refunds, Refunded: FormatAmount(s.refunded)})
	}
	rep.VAT = []vatTotals{}
	for _, v := range slices.Sorted(maps.Keys(rates)) {
		s := rates[v]
		rep.VAT = append(rep.VAT, vatTotals{VAT: v, Label: v.Label(), Sales: FormatAmount(s.sales), SalesVAT: FormatAmount(s.salesVAT),
			Refunds: FormatAmount(s.refundSales), RefundsVAT: FormatAmount(s.refundSaleVAT)})
	}
	rep.Orders, rep.Amount, rep.Refunded = all.orders, FormatAmount(all.amount), FormatAmount(all.refunded)
	return rep, nil
}

// sumsOf is m's sums under k, new ones if it has none yet.
func sumsOf[K comparable](m map[K]*sums, k K) *sums {
	if m[k] == nil {
		m[k] = &sums{}
	}
	return m[k]
}

// receiptRates is order o's receipt's sum at each VAT rate, a position
// without a rate at defaultVAT, as the receipt page computes it.
func receiptRates(o *Order, defaultVAT VAT) map[VAT]decimal.Decimal {
	out := map[VAT]decimal.Decimal{}
	rec := &OrderReceipt{Type: ReceiptSale}
	for _, p := range fiscalReceipt(o, rec).Positions {
		v := p.VAT
		if v == 0 {
			v = defaultVAT
		}
		out[v] = out[v].Add(p.Price.Mul(decimal.NewFromInt(p.Quantity)))
	}
	return out
}

// adminTotals answers GET /kassa/orders/totals?month=YYYY-MM (or from and
// to): the period's totals per account and per VAT rate.
func (a *App) adminTotals(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var from, to time.Time
	var err error
	if month := q.Get("month"); q.Has("month") {
		if q.Has("from") || q.Has("to") {
			return badRequest("bad_query", "month", "give month, or from and to, not both")
		}
		if from, to, err = a.monthRange(month); err != nil {
			return err
		}
	} else {
		if from, to, err = a.timeRange(q); err != nil {
			return err
		}
		if from.IsZero() || to.IsZero() {
			return badRequest("bad_range", "from", "give month (2026-11), or both from and to")
		}
	}
	rep, err := a.totals(r.Context(), from, to)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

// monthRange is a month (YYYY-MM) from its first midnight to the next
// month's, in the app's time zone.
func (a *App) monthRange(month string) (from, to time.Time, err error) {
	t, perr := time.ParseInLocation("2006-01", strings.TrimSpace(month), a.location())
	if perr != nil {
		return from, to, badRequest("bad_month", "month", "month is YYYY-MM (2026-11), got %s", quoteInput(month))
	}
	return t, t.AddDate(0, 1, 0), nil
}
