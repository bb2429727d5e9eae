package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Limits of the targets that are not ratios.
const (
	// maxRSSGrowth bounds the peak RSS growth for the stored orders.
	maxRSSGrowth = 50_000_000 // bytes
	// passSlack is the noise a reconciler pass may gain from closed
	// orders it never reads: twice the time, and this much more.
	passSlack = 10 * time.Millisecond
)

// target is a target of the performance issue, as measured.
type target struct {
	what, want, got string
	met             bool
}

// orderFloor is the rate of orders the durable writes allow: the write
// rate shared out among the writes of one order.
func (f *figures) orderFloor() float64 {
	if f.writesPerOrder <= 0 {
		return 0
	}
	return f.writes.rate() / f.writesPerOrder
}

// orderWritesCPU is the CPU time of one order's durable writes, at the
// durable write figure's CPU time per write.
func (f *figures) orderWritesCPU() float64 {
	return f.writesPerOrder * float64(f.writes.allCPUPerRequest())
}

// checkoutByCPU is the checkout target's ratio by CPU time instead of
// rates: the CPU time of an order's durable writes over that of a whole
// checkout, what the ratio would be if both loads used the whole machine.
func (f *figures) checkoutByCPU() float64 {
	return ratio(f.orderWritesCPU(), float64(f.checkout.allCPUPerRequest()))
}

// checkoutCeilingByCPU is the most checkoutByCPU any checkout could reach
// on this machine: one that did nothing but its durable writes and one
// call to the provider through a bare reverse_proxy hop.
func (f *figures) checkoutCeilingByCPU() float64 {
	return ratio(f.orderWritesCPU(), f.orderWritesCPU()+float64(f.proxy.allCPUPerRequest()))
}

// roundRates is each round's rate of one of its figures, joined.
func (f *figures) roundRates(figure func(round) loadResult) string {
	rates := make([]string, len(f.rounds))
	for i, r := range f.rounds {
		rates[i] = fmt.Sprintf("%.0f", figure(r).rate())
	}
	return strings.Join(rates, ", ")
}

// callsPerOrder is the provider calls per order created.
func (f *figures) callsPerOrder() float64 {
	return ratio(f.generateCalls, float64(f.checkout.requests))
}

// pollsPerSecond is the provider's status calls per second per polled
// order.
func (f *figures) pollsPerSecond() float64 {
	return ratio(f.statusPolls, pendingOrders*f.statusWindow.Seconds())
}

// pollBound is the most status calls a window allows at one per second per
// order: calls at least a second apart fit ⌊window⌋+1 times in it.
func (f *figures) pollBound() float64 {
	return pendingOrders * (math.Floor(f.statusWindow.Seconds()) + 1)
}

// passWithClosed is the slower of the passes with the closed orders stored.
func (f *figures) passWithClosed() time.Duration {
	return max(f.memory.passAfter, f.memory.passRestarted)
}

// rssGrowth is how much more the shop's peak RSS is with the closed orders
// stored, in the same process or a fresh one, than without them.
func (f *figures) rssGrowth() int64 {
	m := f.memory
	return max(m.after.peak, m.restarted.peak) - m.before.peak
}

func (f *figures) targets() []target {
	m := f.memory
	checkout := ratio(f.checkout.rate(), f.orderFloor())
	status := ratio(f.status.rate(), f.respond.rate())
	statusByCPU := ratio(float64(f.respond.allCPUPerRequest()), float64(f.status.allCPUPerRequest()))
	return []target{{
		what: "checkout",
		want: "≥ 0.9 × durable writes/s ÷ writes per order",
		got: fmt.Sprintf("%.2f × (%.0f orders/s; %.0f writes/s ÷ %s; the same writes from OrderStore alone: %.0f orders/s; "+
			"by CPU time per order: %.2f ×, where its writes and one reverse_proxy hop alone would reach %.2f ×)",
			checkout, f.checkout.rate(), f.writes.rate(), strconv.FormatFloat(f.writesPerOrder, 'f', -1, 64), f.stored.rate(),
			f.checkoutByCPU(), f.checkoutCeilingByCPU()),
		met: checkout >= 0.9,
	}, {
		what: "status",
		want: "≥ 0.6 × respond",
		got: fmt.Sprintf("%.2f × (%.0f against %.0f req/s; by CPU time per request: %.2f ×)",
			status, f.status.rate(), f.respond.rate(), statusByCPU),
		met: status >= 0.6,
	}, {
		what: "provider calls per checkout",
		want: "exactly 1",
		got:  fmt.Sprintf("%.3f (%.0f generate calls for %d orders)", f.callsPerOrder(), f.generateCalls, f.checkout.requests),
		met:  f.checkout.requests > 0 && f.generateCalls == float64(f.checkout.requests),
	}, {
		what: "provider polls per pending order",
		want: "≤ 1 per second, however many buyers poll",
		got: fmt.Sprintf("%.2f/s (%.0f calls for %d orders in %.1f s, at most %.0f allowed; buyers polled each %.0f times/s)",
			f.pollsPerSecond(), f.statusPolls, pendingOrders, f.statusWindow.Seconds(), f.pollBound(),
			ratio(f.status.rate(), pendingOrders)),
		met: f.status.requests > 0 && f.statusPolls <= f.pollBound(),
	}, {
		what: "reconciler pass",
		want: fmt.Sprintf("reads only open orders: with the closed ones stored, ≤ 2 × the pass without them + %s", passSlack),
		got: fmt.Sprintf("%s with %d closed and %d open orders, %s with %d open only (reading every order: %s)",
			roundDuration(f.passWithClosed()), m.seeded, pendingOrders, roundDuration(m.passBefore), pendingOrders, roundDuration(m.scan)),
		met: f.passWithClosed() <= 2*m.passBefore+passSlack,
	}, {
		what: "RSS growth",
		want: fmt.Sprintf("< %s for %d stored orders", megabytes(maxRSSGrowth), m.seeded),
		got: fmt.Sprintf("%s (peak %s before, %s after in the same process, %s in a fresh one)",
			megabytes(f.rssGrowth()), megabytes(m.before.peak), megabytes(m.after.peak), megabytes(m.restarted.peak)),
		met: f.rssGrowth() < maxRSSGrowth,
	}}
}

// loads are the load figures, named.
func (f *figures) loads() []struct {
	name string
	res  loadResult
	unit string
} {
	return []struct {
		name string
		res  loadResult
		unit string
	}{
		{"respond", f.respond, "req/s"},
		{"reverse_proxy to the sandbox's CrystalPAY generate", f.proxy, "req/s"},
		{"durable writes (certmagic FileStorage.Store)", f.writes, "writes/s"},
		{"kassa_checkout form posts", f.checkout, "orders/s"},
		{"the checkout's storage writes alone (OrderStore.Create + SaveCreated)", f.stored, "orders/s"},
		{fmt.Sprintf("GET ?order= over %d pending orders", pendingOrders), f.status, "req/s"},
	}
}

// summary is the figures and targets as plain text.
func (f *figures) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d workers, %s per figure\n", f.opts.concurrency, f.opts.duration)
	for _, l := range f.loads() {
		fmt.Fprintf(&b, "%-52s %10.0f %-9s %7s %7s%s\n", l.name, l.res.rate(), l.unit, cpuCell(l.res.cpu, l.res.cpuPerRequest()),
			cpuCell(l.res.allCPU, l.res.allCPUPerRequest()), failures(l.res))
	}
	fmt.Fprintf(&b, "%-52s %10s\n", "storage writes per order", strconv.FormatFloat(f.writesPerOrder, 'f', -1, 64))
	fmt.Fprintf(&b, "%-52s %10.2f\n", "reverse_proxy ÷ respond", ratio(f.proxy.rate(), f.respond.rate()))
	for _, t := range f.targets() {
		fmt.Fprintf(&b, "%s %s: %s (want %s)\n", verdict(t.met), t.what, t.got, t.want)
	}
	b.WriteString(f.notifySummary())
	b.WriteString(f.scaleSummary())
	if f.opts.callbackOrders > 0 {
		b.WriteString(f.callbackSummary())
	}
	return b.String()
}

// markdown is the report.
func (f *figures) markdown() string {
	var b strings.Builder
	m, mem := f.machine, f.memory
	b.WriteString("# Performance\n\n")
	b.WriteString("Generated by `go run ./bench` in `tools/` (the load harness in `tools/bench/`); rerun it rather\n")
	b.WriteString("than edit this file. Every figure and ratio below comes from one run on one machine:\n\n")
	fmt.Fprintf(&b, "    %s\n\n", f.opts.command())
	fmt.Fprintf(&b, "on %s.\n\n", m.date.Format("2006-01-02 15:04 MST"))

	b.WriteString("## Machine\n\n| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| CPU | %s, %d logical cores |\n", m.cpu, m.cores)
	fmt.Fprintf(&b, "| memory | %s |\n", m.memory)
	fmt.Fprintf(&b, "| kernel | Linux %s |\n", m.kernel)
	fmt.Fprintf(&b, "| Go | %s |\n", m.goVersion)
	fmt.Fprintf(&b, "| storage | `file_system` on %s, in a temporary directory |\n", m.storageFS)
	fmt.Fprintf(&b, "| load average (1, 5, 15 min) | %s as the run began, %s as it ended |\n\n", m.loadBefore, m.loadAfter)

	b.WriteString("## Targets\n\n| target | want | measured | |\n|---|---|---|---|\n")
	for _, t := range f.targets() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.what, t.want, t.got, verdict(t.met))
	}

	fmt.Fprintf(&b, "\n## Figures\n\n%d workers, %s per load figure; beside each figure, the value of the report this run replaced.\n\n",
		f.opts.concurrency, f.opts.duration)
	previous := "previous run (" + cmpOr(f.previous.date, "none") + ")"
	fmt.Fprintf(&b, "| figure | value | %s | CPU per request: shop | all | requests | failed |\n|---|---|---|---|---|---|---|\n", previous)
	for _, l := range f.loads() {
		fmt.Fprintf(&b, "| %s | %.0f %s | %s | %s | %s | %d | %d |\n", l.name, l.res.rate(), l.unit, f.previous.value(l.name),
			cpuCell(l.res.cpu, l.res.cpuPerRequest()), cpuCell(l.res.allCPU, l.res.allCPUPerRequest()), l.res.requests, l.res.failures)
	}
	rows := [][2]string{
		{"reverse_proxy ÷ respond", fmt.Sprintf("%.2f", ratio(f.proxy.rate(), f.respond.rate()))},
		{"durable writes/s, round by round", f.roundRates(func(r round) loadResult { return r.writes })},
		{"checkout orders/s, round by round", f.roundRates(func(r round) loadResult { return r.checkout })},
		{"orders/s of the checkout's writes alone, round by round", f.roundRates(func(r round) loadResult { return r.stored })},
		{"storage writes per order", strconv.FormatFloat(f.writesPerOrder, 'f', -1, 64)},
		{"orders/s the durable writes allow", fmt.Sprintf("%.0f", f.orderFloor())},
		{"checkout ÷ its storage writes alone", fmt.Sprintf("%.2f", ratio(f.checkout.rate(), f.stored.rate()))},
		{"provider calls per order", fmt.Sprintf("%.3f", f.callsPerOrder())},
		{"provider polls per second per pending order", fmt.Sprintf("%.2f", f.pollsPerSecond())},
		{fmt.Sprintf("peak RSS, %d open orders", pendingOrders), megabytes(mem.before.peak)},
		{fmt.Sprintf("peak RSS, + %d closed orders, same process", mem.seeded), megabytes(mem.after.peak)},
		{fmt.Sprintf("peak RSS, + %d closed orders, fresh process", mem.seeded), megabytes(mem.restarted.peak)},
		{"RSS at the end: before, after, fresh", fmt.Sprintf("%s, %s, %s", megabytes(mem.before.rss), megabytes(mem.after.rss), megabytes(mem.restarted.rss))},
		{fmt.Sprintf("reconciler pass, %d open orders", pendingOrders), roundDuration(mem.passBefore).String()},
		{fmt.Sprintf("reconciler pass, + %d closed, same process", mem.seeded), roundDuration(mem.passAfter).String()},
		{fmt.Sprintf("reconciler pass, + %d closed, fresh process", mem.seeded), roundDuration(mem.passRestarted).String()},
		{"reading every stored order once", roundDuration(mem.scan).String()},
		{fmt.Sprintf("storing the %d closed orders", mem.seeded), roundDuration(mem.seedTime).String()},
	}
	fmt.Fprintf(&b, "\n| derived figure | value | %s |\n|---|---|---|\n", previous)
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r[0], r[1], f.previous.value(r[0]))
	}

	b.WriteString(`
## How it is measured

- The harness builds ./cmd/caddy and runs two Caddy processes on loopback ports: the shop
  (respond, reverse_proxy, kassa_checkout on a CrystalPAY account) and the sandbox in its
  zero-latency mode (latency 0s, receipt_delay 0s). The sandbox runs apart so that its
  invoices do not count in the shop's memory; both share the machine's cores with the
  harness's own client (keep-alive, one connection per worker).
- Durable writes are certmagic FileStorage.Store calls (a temporary file, fsync, rename) of an
  order-sized record under fresh keys in one directory, from the harness, at the same
  concurrency, on the same disk as the shop's storage. Storage writes per order are counted
  by the Go benchmark BenchmarkCheckoutForm, whose storage counts every Store and Delete of
  a form checkout. The checkout's writes alone are orders the harness writes as the checkout
  does (OrderStore.Create in creating, then SaveCreated once pending) without HTTP or a
  provider: how fast the checkout's own write pattern goes on this disk.
- The checkout figure, the durable writes and the checkout's writes alone are measured in
  interleaved rounds (a round of each in turn, each round a fifth of a figure's duration), so
  that a disk whose speed drifts is measured as the checkout met it; each figure adds up its
  rounds, and the rounds are listed above.
- "By CPU time per order" compares the CPU time of an order's durable writes (writes per order
  × the durable write figure's CPU time per write) with a whole checkout's, all three
  processes counted. Beside it, the ratio the same comparison gives a checkout that did
  nothing but those writes and one reverse_proxy hop to the provider (the reverse_proxy
  figure's CPU time per request): the most any checkout that calls its provider over HTTP
  could reach on this machine.
- CPU per request is user and system time during a figure divided by its requests: of the
  shop process (/proc/<pid>/stat), and of all three processes (shop, sandbox, harness)
  together. "By CPU time per request" compares the latter: what the requests-per-second
  ratio would be if the load used the whole machine and nothing else ran, the steadier
  figure on a machine shared with other work.
- Provider calls are the shop's own kassa_provider_calls_total metric, read from its admin
  endpoint before and after each figure. Every status poll goes through the poll coalescer;
  before the status figure each order is polled once, and calls at least a second apart fit
  ⌊window⌋+1 times in a window, which bounds the count.
- Memory: a fresh shop takes the open orders through its checkout and serves their status
  polls for one figure's duration; then the closed orders are written straight into its
  storage with kassa.OrderStore (the shop's own code, not HTTP), the same workload runs
  again, and once more in a fresh process on that storage. RSS is VmHWM (peak) and VmRSS
  from /proc/<pid>/status.
`)
	fmt.Fprintf(&b, `- During the load figures the reconciler's period is %s, so that its passes over the
  orders the checkout figure creates do not weigh on the request figures. It is timed in the
  memory figure, where its period is %s: once the buyers stop polling (and their polls no
  longer spare it its provider calls), the mean of its next two passes, from
  kassa_reconciler_pass_duration_seconds.
`, strings.TrimSuffix(loadPollInterval.String(), "0m0s"), memoryPollInterval)

	fmt.Fprintf(&b, "\n%s\n%s\n", f.notifyMarkdown(false), f.scaleMarkdown(false))
	if f.opts.callbackOrders > 0 {
		fmt.Fprintf(&b, "%s\n", f.callbackMarkdown(false))
	}
	fmt.Fprintf(&b, "## Go benchmarks\n\n    %s\n\n", f.bench.command)
	b.WriteString("| benchmark | ns/op | B/op | allocs/op | other |\n|---|---:|---:|---:|---|\n")
	for _, r := range f.bench.results {
		var other []string
		for _, v := range r.values {
			switch v.unit {
			case "ns/op", "B/op", "allocs/op":
			default:
				other = append(other, strconv.FormatFloat(v.value, 'f', -1, 64)+" "+v.unit)
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.name, benchCell(r, "ns/op"), benchCell(r, "B/op"),
			benchCell(r, "allocs/op"), strings.Join(other, ", "))
	}
	return b.String()
}

// cpuCell is a CPU time per request, if the CPU time was measured.
func cpuCell(total, perRequest time.Duration) string {
	if total == 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f µs", float64(perRequest)/float64(time.Microsecond))
}

// benchCell is a benchmark's value in unit, for the table.
func benchCell(r benchResult, unit string) string {
	v, ok := r.value(unit)
	if !ok {
		return ""
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func verdict(met bool) string {
	if met {
		return "pass"
	}
	return "MISS"
}

func failures(l loadResult) string {
	if l.failures == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d failed; the first: %s)", l.failures, l.firstFailure)
}

// megabytes is n bytes in MB (10⁶ bytes).
func megabytes(n int64) string {
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

// roundDuration rounds d to three significant digits' worth.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

// measured says how a section's figures were measured: alone, on their
// own (-only), by this run's command line, at its date; else in the run
// the report's top describes.
func (f *figures) measured(alone bool) string {
	if !alone {
		return "Measured in the run above.\n\n"
	}
	return fmt.Sprintf("Measured on its own, on the machine above, by\n\n    %s\n\non %s (load average %s as it began, %s as it ended).\n\n",
		f.opts.command(), f.machine.date.Format("2006-01-02 15:04 MST"), f.machine.loadBefore, f.machine.loadAfter)
}
