package kassa

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

func checkCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "check [--since <duration|date>]",
		Short: "The morning check: what needs action (failed receipts, late and underpaid payments, undelivered events, stuck orders, a stalled reconciler); exits 3 if anything",
		Long: `
Shows what needs an operator's action, one table per kind, each with its
orders (or events) and what settles it:

  reconciler_stalled  no reconciler pass for five poll intervals (at least a minute)
  stuck_creating      an order whose payment's creation was never confirmed
  receipt_failed      a sale or refund receipt the receipt service refused
  underpaid           the provider reports less money than the order's amount
  payment_problem     the provider reports a problem (CrystalPAY wrongamount)
  paid_late           paid after the order had closed unpaid
  event_undelivered   a notification a receiver did not get

Failed receipts of orders created, and late payments made, since --since
(a duration back from now, such as 24h or 30d, or a date; default 7d) are
listed; the other kinds whenever they are open.

Exit status: 0 when nothing needs action; 3 when something does (the kinds
are named on stderr); 1 when the admin API fails; 2 on a usage error.
`,
		Args: cobra.ArbitraryArgs,
		RunE: kassaRunE(0, cliCheck),
	}
	c.Flags().String("since", "", "How far back to look for failed receipts and late payments: a duration (24h, 30d) or a date; default 7d")
	return c
}

// needsAction is the check's outcome when something needs action: exit
// status 3.
type needsAction struct{ kinds []string }

func (e needsAction) Error() string {
	return "needs action: " + strings.Join(e.kinds, ", ")
}

// cliCheck: caddy kassa check.
func cliCheck(k *kassaCLI, _ []string) error {
	uri := "/kassa/check"
	if k.cmd.Flags().Changed("since") {
		since, _ := k.cmd.Flags().GetString("since")
		if since == "" {
			return usageErrorf("--since is empty")
		}
		uri += "?" + url.Values{"since": {since}}.Encode()
	}
	data, table, err := k.call(http.MethodGet, uri, nil)
	if err != nil {
		return err
	}
	var rep checkReport
	if err := decodeReply(data, &rep); err != nil {
		return err
	}
	if table {
		if err := printCheck(k, &rep); err != nil {
			return err
		}
	}
	if rep.OK {
		return nil
	}
	var kinds []string
	for _, kind := range rep.NeedsAction {
		kinds = append(kinds, kind.Kind+" ("+strconv.Itoa(kind.Count)+")")
	}
	return needsAction{kinds}
}

// printCheck writes the check's tables: one per kind, with its hint.
func printCheck(k *kassaCLI, rep *checkReport) error {
	r := rep.Reconciler
	fmt.Fprintf(k.out, "reconciler: %s, last pass %s\n", orDash(r.Holder), ago(rep.CheckedAt, r.PassedAt))
	if rep.OK {
		fmt.Fprintf(k.out, "nothing needs action (failed receipts and late payments since %s)\n", formatTime(rep.Since))
		return nil
	}
	for _, kind := range rep.NeedsAction {
		fmt.Fprintf(k.out, "\n%s: %d\n  fix: %s\n", strings.ToUpper(kind.Kind), kind.Count, kind.Hint)
		tw := newTable(k.out)
		if kind.Kind == checkEventUndelivered {
			row(tw, "  EVENT", "ORDER", "CREATED", "DETAIL")
		} else {
			row(tw, "  ORDER", "STATE", "AMOUNT", "ACCOUNT", "AT", "DETAIL")
		}
		for _, it := range kind.Items {
			if kind.Kind == checkEventUndelivered {
				row(tw, "  "+it.EventID, it.OrderID, formatTime(it.At), it.Detail)
			} else {
				row(tw, "  "+orDash(it.OrderID), string(it.State), it.Amount, it.Account, formatTime(it.At), it.Detail)
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if kind.Count > len(kind.Items) {
			fmt.Fprintf(k.out, "  ... and %d more\n", kind.Count-len(kind.Items))
		}
	}
	if rep.Truncated {
		fmt.Fprintf(k.errOut, "kassa: the window holds more than %d orders: the oldest were not read; use a shorter --since\n", maxCheckScan)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
