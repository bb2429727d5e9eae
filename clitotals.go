package kassa

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// cliTotals: caddy kassa export --totals [--month M | --from F --to T].
func cliTotals(k *kassaCLI) error {
	q := url.Values{}
	if err := exportQuery(k, q); err != nil {
		return err
	}
	if q.Get("from") == "" || q.Get("to") == "" {
		return usageErrorf("--totals needs the period: --month 2026-11, or --from and --to")
	}
	data, table, err := k.call(http.MethodGet, "/kassa/orders/totals?"+q.Encode(), nil)
	if err != nil || !table {
		return err
	}
	var rep totalsReport
	if err := decodeReply(data, &rep); err != nil {
		return err
	}
	fmt.Fprintf(k.out, "Paid from %s to %s (%s), by the time of payment; refunds by the time of their receipt\n\n",
		rep.From.Format("2006-01-02 15:04"), rep.To.Format("2006-01-02 15:04"), rep.TimeZone)
	tw := newTable(k.out)
	row(tw, "ACCOUNT", "PROVIDER", "ORDERS", "AMOUNT", "PAID", "COMMISSION", "PAID LATE", "REFUNDS", "REFUNDED")
	for _, a := range rep.Accounts {
		row(tw, a.Account, a.Provider, strconv.Itoa(a.Orders), a.Amount, a.PaidAmount, a.Commission,
			strconv.Itoa(a.PaidLate), strconv.Itoa(a.Refunds), a.Refunded)
	}
	row(tw, "total", "", strconv.Itoa(rep.Orders), rep.Amount, "", "", "", "", rep.Refunded)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(k.out)
	tw = newTable(k.out)
	row(tw, "VAT", "SALES", "SALES VAT", "REFUNDS", "REFUNDS VAT")
	for _, v := range rep.VAT {
		row(tw, v.Label, v.Sales, v.SalesVAT, v.Refunds, v.RefundsVAT)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if n := len(rep.ReceiptsNotDone); n > 0 {
		fmt.Fprintf(k.errOut, "kassa: %d orders paid in the period have no receipt done, and are missing from the fiscal reports: %s\n",
			n, strings.Join(rep.ReceiptsNotDone, ", "))
	}
	return nil
}
