package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// notifyHeading starts the report's section on notifications.
const notifyHeading = "## Notifications"

// minNotifyRatio is the bound on the checkout's rate with
// notifications over that without.
const minNotifyRatio = 0.9

// notifyTargets are the targets of the notifications' section.
func (f *figures) notifyTargets() []target {
	n := &f.notify
	return []target{{
		what: "checkout with notifications",
		want: fmt.Sprintf("≥ %.1f × without", minNotifyRatio),
		got: fmt.Sprintf("%.2f × (%.0f against %.0f orders/s; by CPU time per order: %.2f ×)",
			n.ratio(), n.on.rate(), n.off.rate(), ratio(float64(n.off.allCPUPerRequest()), float64(n.on.allCPUPerRequest()))),
		met: n.ratio() >= minNotifyRatio,
	}, {
		what: "order.paid events",
		want: "one per paid order, each signed, none twice without a retry",
		got: fmt.Sprintf("%d received for %d paid orders; %d bad signatures, %d twice, %.0f retries",
			n.received["order.paid"], len(n.paid), n.badSignatures, n.duplicates, n.retried),
		met: n.complete(),
	}}
}

// notifyRows are the section's figures.
func (f *figures) notifyRows() [][3]string {
	n := &f.notify
	d := func(v time.Duration) string { return roundDuration(v).String() }
	rounds := func(figure func(notifyRound) loadResult) string {
		rates := make([]string, len(n.rounds))
		for i, r := range n.rounds {
			rates[i] = fmt.Sprintf("%.0f", figure(r).rate())
		}
		return strings.Join(rates, ", ")
	}
	var others []string
	for typ, count := range n.received {
		if typ != "order.paid" {
			others = append(others, fmt.Sprintf("%d %s", count, typ))
		}
	}
	return [][3]string{
		{"kassa_checkout form posts, notifications off", fmt.Sprintf("%.0f orders/s", n.off.rate()),
			fmt.Sprintf("%d posts (%d failed), CPU per order %s shop, %s all", n.off.requests, n.off.failures,
				cpuCell(n.off.cpu, n.off.cpuPerRequest()), cpuCell(n.off.allCPU, n.off.allCPUPerRequest()))},
		{"kassa_checkout form posts, notifications on", fmt.Sprintf("%.0f orders/s", n.on.rate()),
			fmt.Sprintf("%d posts (%d failed), CPU per order %s shop, %s all", n.on.requests, n.on.failures,
				cpuCell(n.on.cpu, n.on.cpuPerRequest()), cpuCell(n.on.allCPU, n.on.allCPUPerRequest()))},
		{"on ÷ off", fmt.Sprintf("%.2f", n.ratio()), fmt.Sprintf("%d rounds each", len(n.rounds))},
		{"orders/s off, round by round", rounds(func(r notifyRound) loadResult { return r.off }), ""},
		{"orders/s on, round by round", rounds(func(r notifyRound) loadResult { return r.on }), ""},
		{"paid → delivered (order.paid at the receiver), p50", d(percentile(n.delivered, 0.5)), fmt.Sprintf("%d events", len(n.delivered))},
		{"paid → delivered, p99", d(percentile(n.delivered, 0.99)), fmt.Sprintf("%d events", len(n.delivered))},
		{"paid → delivered, max", d(percentile(n.delivered, 1)), fmt.Sprintf("%d events", len(n.delivered))},
		{"of which paid → the shop answers paid to the buyer's poll, p50", d(percentile(n.noticed, 0.5)), fmt.Sprintf("%d orders", len(n.noticed))},
		{"paid → the shop answers paid, p99", d(percentile(n.noticed, 0.99)), fmt.Sprintf("%d orders", len(n.noticed))},
		{"orders paid, order.paid events received", fmt.Sprintf("%d, %d", len(n.paid), n.received["order.paid"]),
			"other events: " + cmpOr(strings.Join(others, ", "), "none")},
		{"events received twice, retries (kassa_events_retried_total), failed", fmt.Sprintf("%d, %.0f, %.0f", n.duplicates, n.retried, n.failedEvents), ""},
		{"bad signatures", fmt.Sprintf("%d", n.badSignatures), "checked with crypto/hmac"},
		{"last event after the last round", d(n.drain), ""},
	}
}

// cmpOr is s, or else if it is empty.
func cmpOr(s, orElse string) string {
	if s == "" {
		return orElse
	}
	return s
}

// notifySummary is the notifications' figures and targets as plain text.
func (f *figures) notifySummary() string {
	var b strings.Builder
	for _, r := range f.notifyRows() {
		fmt.Fprintf(&b, "%-66s %14s  %s\n", r[0], r[1], r[2])
	}
	for _, t := range f.notifyTargets() {
		fmt.Fprintf(&b, "%s %s: %s (want %s)\n", verdict(t.met), t.what, t.got, t.want)
	}
	return b.String()
}

// notifyMarkdown is the report's section on notifications, which says how
// it was measured; alone is whether it was measured on its own (-only
// notify), with its own command line and date.
func (f *figures) notifyMarkdown(alone bool) string {
	var b strings.Builder
	b.WriteString(notifyHeading + "\n\n")
	b.WriteString(f.measured(alone))
	fmt.Fprintf(&b, "%d workers, %s per checkout figure.\n\n", f.opts.concurrency, f.opts.duration)
	b.WriteString("| target | want | measured | |\n|---|---|---|---|\n")
	for _, t := range f.notifyTargets() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.what, t.want, t.got, verdict(t.met))
	}
	b.WriteString("\n| figure | value | samples, notes |\n|---|---|---|\n")
	for _, r := range f.notifyRows() {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r[0], r[1], r[2])
	}
	fmt.Fprintf(&b, `
- Two shops run side by side on the same sandbox, alike but for one line of the kassa option:
  the second has a notify block (every event, its secret from {env.%s}) pointing at a
  receiver the harness serves on loopback. The receiver answers 204 at once, verifies each
  Kassa-Signature with crypto/hmac over the raw body, and records each event's id, type, order
  and arrival time; an event id it has seen already counts as received twice.
- The checkout's form posts are measured on the two shops in alternate rounds, %d of each,
  each a fifth of a figure's duration, back to back, with the same workers and client as the
  checkout figure above; each figure adds up its rounds. Beside the load, in every round, one
  buyer pays orders one after another: creates an order (as a JSON client), pays its
  CrystalPAY invoice through the sandbox's POST /control/pay (what its payment page's button
  does) and polls the order's status (GET ?order=, at once and then every %s) until the shop
  answers paid, as the buyer's page does. The reconciler's period is %s, so the buyer's poll
  is what notices the payment.
- Paid → delivered is, for each order paid on the shop with notifications, the time from the
  sandbox's answer to /control/pay (the invoice is paid by then) to the arrival of the
  order's order.paid event at the receiver: the poll that notices the payment (its part is
  listed), the order's state change with its event, and the delivery worker's post.
  Percentiles are nearest-rank over every paid order. After the last round the harness waits
  (at most a minute) for every paid order's event.
`, notifySecretEnv, interleavedRounds, statusPollEvery, strings.TrimSuffix(loadPollInterval.String(), "0m0s"))
	return b.String()
}

// write writes the report to file; with -only, it replaces that part's
// section of the report already there (or adds it before the Go
// benchmarks' section), leaving the rest as it was.
func (f *figures) write(file string) error {
	var heading, section string
	switch f.opts.only {
	case onlyNotify:
		heading, section = notifyHeading, f.notifyMarkdown(true)
	case onlyScale:
		heading, section = scaleHeading, f.scaleMarkdown(true)
	case onlyCallback:
		heading, section = callbackHeading, f.callbackMarkdown(true)
	default:
		return os.WriteFile(file, []byte(f.markdown()), 0o644)
	}
	old, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("-only %s replaces its section of a report: %v", f.opts.only, err)
	}
	return os.WriteFile(file, []byte(replaceSection(string(old), heading, section, "## Go benchmarks")), 0o644)
}

// replaceSection replaces the section of report that starts with the line
// heading, up to the next "## " heading, by section; a report without it
// gets it before the line before, or at its end.
func replaceSection(report, heading, section, before string) string {
	start := strings.Index(report, "\n"+heading+"\n")
	if start < 0 {
		if i := strings.Index(report, "\n"+before+"\n"); i >= 0 {
			return report[:i+1] + section + "\n" + report[i+1:]
		}
		return strings.TrimRight(report, "\n") + "\n\n" + section
	}
	start++
	end := len(report)
	if i := strings.Index(report[start+len(heading):], "\n## "); i >= 0 {
		end = start + len(heading) + i + 1
		section += "\n"
	}
	return report[:start] + section + report[end:]
}
