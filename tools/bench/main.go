// Command bench is caddy-kassa's load harness. It builds the dev Caddy
// (./cmd/caddy), starts it as a shop with the sandbox as its provider in a
// second Caddy, and measures on this machine, in one run and at one
// concurrency, what the shop does against what Caddy itself does:
//
//  1. respond: the ceiling of any handler;
//  2. reverse_proxy to the sandbox's CrystalPAY generate: the hop any
//     proxied checkout pays;
//  3. the durable write rate of the file storage (certmagic FileStorage,
//     which syncs every write): the floor under crash-safe orders;
//  4. kassa_checkout form posts: orders/s and provider calls per order;
//  5. GET ?order= over 100 pending orders polled by every worker: req/s and
//     provider polls per second per order;
//  6. memory: the shop's peak RSS before and after its storage holds
//     -orders closed orders, and the time of one reconciler pass then;
//  7. notifications: the checkout on a shop with a notify receiver
//     (served by the harness) against one without, and the time from an
//     order's payment to its order.paid event at the receiver. -only
//     notify measures this alone and replaces its section of -out;
//  8. scale, against a sandbox whose every API call takes -latency, on
//     shops with receipts and poll_interval 2s: the time from payments to
//     paid orders with their receipts done, nobody polling, with
//     -notice-orders open orders; the same for -young-new new orders
//     beside -young-orders older than an hour; the operator's page GET
//     /kassa/orders?limit=20 (and page 2 by its cursor) with each of
//     -page-orders orders stored (with kassa.OrderStore, over a year);
//     and caddy kassa export of the first half of that year. -only scale
//     measures these alone and replaces their section of -out;
//  9. callbacks, against the sandbox behind a proxy that holds every
//     provider call 100 to 500 ms, on shops with a CrystalPAY v3 account
//     and poll_interval 2s: with -callback-open open orders beside them,
//     -callback-orders orders paid five a second, and for each the time
//     from its payment to the shop recording it paid, on a shop told by
//     the provider's callbacks and on one polling alone. -only callback
//     measures this alone and replaces its section of -out.
//
// The figures 1 to 6 of the run are shown beside those of the report -out
// held before, so that a regression shows.
//
// It prints every figure and the ratios to the targets, and writes them,
// with the Go benchmarks of the hot paths and the machine it ran on, to
// -out. It is in the tools module (tools/go.mod), so run it from tools/:
//
//	go run ./bench -out ../docs/PERFORMANCE.md
//
// The closed orders of figure 6 are written straight into the shop's
// storage with kassa.OrderStore (the code the shop itself stores orders
// with), not through HTTP, so that the memory figure is not also a test of
// the sandbox's memory. Only Linux is supported: RSS is read from /proc.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"
)

func main() {
	var opts options
	flag.IntVar(&opts.concurrency, "concurrency", 16, "`workers`: concurrent clients of every load figure")
	flag.DurationVar(&opts.duration, "duration", 10*time.Second, "how long each load figure runs")
	flag.IntVar(&opts.orders, "orders", 100_000, "closed orders stored for the memory figure")
	flag.StringVar(&opts.out, "out", "", "write the report (Markdown) to this `file`, such as docs/PERFORMANCE.md")
	flag.StringVar(&opts.benchtime, "benchtime", "1s", "-benchtime of the Go benchmarks")
	flag.StringVar(&opts.pprof, "pprof", "", "write CPU profiles of the shop and sandbox Caddies during the status and checkout figures to this `directory`")
	flag.StringVar(&opts.only, "only", "", "measure only this `part`: notify (the checkout with and without notifications, and their delivery), scale (the scale figures) or callback (how fast a paid order is seen, with callbacks and by polling alone); with -out, only its section of the report is replaced")
	flag.DurationVar(&opts.latency, "latency", 200*time.Millisecond, "the sandbox's latency, added to every provider call, in the scale figures")
	opts.noticeOrders = intList{500, 5000}
	flag.Var(&opts.noticeOrders, "notice-orders", "`counts` of open orders of the notice figures, comma-separated")
	flag.IntVar(&opts.youngOld, "young-orders", 5000, "open orders older than an hour in the young-first figure (0: no such figure)")
	flag.IntVar(&opts.youngNew, "young-new", 50, "new orders paid in the young-first figure")
	opts.pageOrders = intList{10_000, 200_000}
	flag.Var(&opts.pageOrders, "page-orders", "`counts` of stored orders of the operator page figures, comma-separated (none: no operator or export figure)")
	flag.IntVar(&opts.callbackOpen, "callback-open", 250, "open orders in the background of the callback figures")
	flag.IntVar(&opts.callbackOrders, "callback-orders", 150, "orders paid in each run of the callback figures (0: no such figures; at most 1000)")
	flag.Parse()
	if flag.NArg() > 0 || (opts.only != "" && opts.only != onlyNotify && opts.only != onlyScale && opts.only != onlyCallback) ||
		opts.concurrency < 1 || opts.duration <= 0 || opts.orders < 0 || opts.latency < 0 || opts.youngOld < 0 || opts.youngNew < 0 ||
		opts.callbackOpen < 0 || opts.callbackOrders < 0 || opts.callbackOrders > maxAdminPage ||
		(opts.only == onlyCallback && opts.callbackOrders == 0) {
		flag.Usage()
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	f, err := run(ctx, opts, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Println()
	switch opts.only {
	case onlyNotify:
		fmt.Print(f.notifySummary())
	case onlyScale:
		fmt.Print(f.scaleSummary())
	case onlyCallback:
		fmt.Print(f.callbackSummary())
	default:
		fmt.Print(f.summary())
	}
	if opts.out != "" {
		if err := f.write(opts.out); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		fmt.Println("wrote", opts.out)
	}
	fmt.Printf("the harness ran for %s\n", time.Since(start).Round(time.Second))
}

// intList is a flag of positive whole numbers, comma-separated, such as
// 500,5000; an empty one is none.
type intList []int

// String is the list as the flag takes it.
func (l intList) String() string {
	s := make([]string, len(l))
	for i, n := range l {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// Set reads the flag's value.
func (l *intList) Set(v string) error {
	*l = nil
	for f := range strings.SplitSeq(v, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(strings.ReplaceAll(f, "_", ""))
		if err != nil || n < 1 {
			return errors.New("want positive whole numbers, comma-separated")
		}
		*l = append(*l, n)
	}
	return nil
}
