package kassa

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func exportCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "export [--month <YYYY-MM> | --from <date> --to <date>] [--format csv|jsonl] [--totals] > orders.csv",
		Short: "Writes every order created in a range to stdout, oldest first, as CSV or JSON Lines: the accountant's export",
		Long: `
Writes every order created in [--from, --to) to stdout, oldest first, as
CSV with a header row (the default) or as JSON Lines (--format jsonl), with
its amounts, state, provider ids, paid time, and its receipts' state and
fiscal data; never the buyer's contacts. --from and --to are dates
(2026-11-01: midnight in the kassa app's time_zone) or RFC 3339 times;
without them the range is open.

--month 2026-11 is the month from its first midnight to the next month's,
in the kassa app's time_zone.

The orders stream through as they are read, so any history fits in memory.
A progress line on stderr counts them. An export that fails midway exits 1
with the reason; what reached stdout until then is incomplete.

--totals prints the period's totals instead, for the month end: per payment
account the orders paid, their amount, what the provider reported paid, its
commission, the late payments and the refunds; per VAT rate the sales and
their VAT (computed as each receipt computes it: once per rate, from the
receipt's sum at that rate), and the refunds and theirs. An order counts in
the period it was paid in, also one paid late; a refund in the period its
return receipt was done. Exact to the kopeck.
`,
		Args: cobra.ArbitraryArgs,
		RunE: kassaRunE(0, cliExport),
	}
	c.Flags().String("from", "", "Only orders created at or after this date (2026-11-01) or RFC 3339 time")
	c.Flags().String("to", "", "Only orders created before this date (2026-12-01) or RFC 3339 time")
	c.Flags().String("format", "csv", "csv (RFC 4180, with a header row) or jsonl (one JSON object a line)")
	c.Flags().String("month", "", "The month 2026-11, in the kassa app's time_zone, instead of --from and --to")
	c.Flags().Bool("totals", false, "Print the period's totals per account and per VAT rate instead of its orders")
	return c
}

// exportQuery reads --month, or --from and --to, into the query's
// parameters.
func exportQuery(k *kassaCLI, q url.Values) error {
	flags := k.cmd.Flags()
	if month, _ := flags.GetString("month"); flags.Changed("month") {
		if flags.Changed("from") || flags.Changed("to") {
			return usageErrorf("--month names the period: it takes no --from or --to")
		}
		t, err := time.Parse("2006-01", month)
		if err != nil {
			return usageErrorf("--month %q: want YYYY-MM, such as 2026-11", month)
		}
		q.Set("from", t.Format(time.DateOnly))
		q.Set("to", t.AddDate(0, 1, 0).Format(time.DateOnly))
		return nil
	}
	for _, name := range []string{"from", "to"} {
		if v, _ := flags.GetString(name); v != "" {
			q.Set(name, v)
		}
	}
	return nil
}

// cliExport: caddy kassa export. It copies the API's stream to stdout a
// line at a time, counting the orders for the progress line, and turns
// the stream's error line into the command's error.
func cliExport(k *kassaCLI, _ []string) error {
	if totals, _ := k.cmd.Flags().GetBool("totals"); totals {
		if k.cmd.Flags().Changed("format") {
			return usageErrorf("--totals prints a table (or --json): it takes no --format")
		}
		return cliTotals(k)
	}
	format, _ := k.cmd.Flags().GetString("format")
	if format != "csv" && format != "jsonl" {
		return usageErrorf("--format %q: want csv or jsonl", format)
	}
	q := url.Values{"format": {format}}
	if err := exportQuery(k, q); err != nil {
		return err
	}
	resp, err := k.admin.stream("/kassa/orders/export?" + q.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out := bufio.NewWriterSize(k.out, 64<<10)
	progress := newProgress(k.errOut)
	in := bufio.NewReaderSize(resp.Body, 64<<10)
	header := format == "csv"
	for {
		line, err := in.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return fmt.Errorf("the export holds a line over %d bytes", in.Size())
		}
		if len(line) > 0 {
			if failure := exportFailure(line); failure != nil {
				out.Flush()
				progress.done()
				return failure
			}
			if _, werr := out.Write(line); werr != nil {
				return werr
			}
			if header {
				header = false
			} else if line[len(line)-1] == '\n' {
				progress.add()
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			out.Flush()
			progress.done()
			return fmt.Errorf("the export broke off after %d orders: %v", progress.n, err)
		}
	}
	if err := out.Flush(); err != nil {
		return err
	}
	progress.done()
	return nil
}

// exportFailure reads the error line that ends an export which failed
// midway (export.go), or returns nil for any other line.
func exportFailure(line []byte) error {
	if rest, ok := bytes.CutPrefix(line, []byte(exportErrorPrefix)); ok {
		code, msg, _ := strings.Cut(strings.TrimSpace(string(rest)), ": ")
		return &apiError{Status: 200, Code: code, Message: "the export failed midway: " + msg}
	}
	if !bytes.HasPrefix(line, []byte(`{"error":`)) {
		return nil
	}
	var reply struct {
		Error apiError `json:"error"`
	}
	if json.Unmarshal(line, &reply) != nil {
		return nil
	}
	reply.Error.Status = 200
	reply.Error.Message = "the export failed midway: " + reply.Error.Message
	return &reply.Error
}

// progress is the export's progress line on stderr: the orders so far and
// their rate, rewritten at most once a second (a new line each time when
// stderr is not a terminal), and the final count.
type progress struct {
	w        io.Writer
	terminal bool
	n        int
	began    time.Time
	shown    time.Time
}

func newProgress(w io.Writer) *progress {
	f, ok := w.(*os.File)
	now := time.Now()
	return &progress{w: w, terminal: ok && term.IsTerminal(int(f.Fd())), began: now, shown: now}
}

func (p *progress) add() {
	p.n++
	if now := time.Now(); now.Sub(p.shown) >= time.Second {
		p.shown = now
		end := "\n"
		if p.terminal {
			end = "\r"
		}
		fmt.Fprintf(p.w, "kassa: exported %d orders (%.0f a second)%s", p.n, p.rate(now), end)
	}
}

func (p *progress) rate(now time.Time) float64 {
	return float64(p.n) / max(now.Sub(p.began).Seconds(), 1e-3)
}

// done writes the final count.
func (p *progress) done() {
	now := time.Now()
	fmt.Fprintf(p.w, "kassa: exported %d orders in %v (%.0f a second)\n", p.n, now.Sub(p.began).Round(time.Millisecond), p.rate(now))
}
