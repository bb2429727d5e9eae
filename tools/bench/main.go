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
//     notify measures this alone and replaces its section of -out.
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
	"flag"
	"fmt"
	"os"
	"os/signal"
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
	flag.StringVar(&opts.only, "only", "", "measure only this part: `notify` (the checkout with and without notifications, and their delivery); with -out, only its section of the report is replaced")
	flag.Parse()
	if flag.NArg() > 0 || (opts.only != "" && opts.only != onlyNotify) || opts.concurrency < 1 || opts.duration <= 0 || opts.orders < 0 {
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
	if opts.only == onlyNotify {
		fmt.Print(f.notifySummary())
	} else {
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
