package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// callbackHeading starts the report's section on the callback figures.
const callbackHeading = "## Callbacks"

// secondsCell is d in seconds, two decimals.
func secondsCell(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// callbackRows are the callback section's figures: label, value and notes.
func (f *figures) callbackRows() [][3]string {
	c := &f.callback
	var rows [][3]string
	add := func(label, value, notes string) { rows = append(rows, [3]string{label, value, notes}) }
	all := c.open + c.callback.paid
	add(fmt.Sprintf("expected sweep of the %d open orders", all), secondsCell(callbackSweep(all, callbackLatencyMean, crystalPayV3Rate)),
		fmt.Sprintf("%d ÷ %d calls a second (the account's rate limit; %d workers at %s would allow %.0f)", all, crystalPayV3Rate,
			defaultPollWorkers, callbackLatencyMean, ratio(defaultPollWorkers, callbackLatencyMean.Seconds())))
	for _, run := range []callbackRun{c.callback, c.polls} {
		how := "polling alone"
		if run.callbacks {
			how = "with callbacks"
		}
		missed := ""
		if run.missed() > 0 {
			missed = fmt.Sprintf("; %d not recorded paid within %s", run.missed(), run.wait)
		}
		for i, q := range []struct {
			name string
			q    float64
		}{{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"max", 1}} {
			notes := ""
			if i == 0 {
				notes = fmt.Sprintf("%d of %d paid orders%s", len(run.noticed), run.paid, missed)
			}
			add(fmt.Sprintf("payment → order paid, %s, %s", how, q.name), secondsCell(percentile(run.noticed, q.q)), notes)
		}
		add(fmt.Sprintf("invoice/info calls per paid order, %s", how), fmt.Sprintf("%.1f", run.perPaidOrder(run.statusCalls)),
			fmt.Sprintf("%.0f calls in the %s from the first payment to the last order seen paid (%.1f a second); all CrystalPAY calls: %.0f",
				run.statusCalls, secondsCell(run.window), ratio(run.statusCalls, run.window.Seconds()), run.calls))
		add(fmt.Sprintf("callback posts (answers), %s", how), fmt.Sprintf("%d", run.deliveries.posts),
			fmt.Sprintf("answered %s; %d retries; the shop's results: %s", statusCounts(run.deliveries.byStatus),
				run.deliveries.retries, resultCounts(run.results)))
		add(fmt.Sprintf("making the %d orders, %s", c.open+run.paid, how), roundDuration(run.setup).String(),
			"through the checkout, the provider at zero latency")
	}
	return rows
}

// statusCounts is the callback posts by HTTP status, such as "200 × 200",
// or "none".
func statusCounts(byStatus map[int]int) string {
	var parts []string
	for _, status := range slices.Sorted(maps.Keys(byStatus)) {
		label := fmt.Sprintf("%d", status)
		if status == 0 {
			label = "no answer"
		}
		parts = append(parts, fmt.Sprintf("%s × %d", label, byStatus[status]))
	}
	return cmpOr(strings.Join(parts, ", "), "none")
}

// resultCounts is kassa_callbacks_total's increase by result, such as
// "paid 200", or "none".
func resultCounts(results map[string]float64) string {
	var parts []string
	for _, result := range slices.Sorted(maps.Keys(results)) {
		parts = append(parts, fmt.Sprintf("%s %.0f", result, results[result]))
	}
	return cmpOr(strings.Join(parts, ", "), "none")
}

// callbackSummary is the callback figures as plain text.
func (f *figures) callbackSummary() string {
	var b strings.Builder
	for _, r := range f.callbackRows() {
		fmt.Fprintf(&b, "%-60s %10s  %s\n", r[0], r[1], r[2])
	}
	return b.String()
}

// callbackMarkdown is the report's section on the callback figures; alone
// is whether they were measured on their own (-only callback).
func (f *figures) callbackMarkdown(alone bool) string {
	var b strings.Builder
	b.WriteString(callbackHeading + "\n\n")
	b.WriteString(f.measured(alone))
	c := &f.callback
	fmt.Fprintf(&b, "How soon a paid CrystalPAY v3 invoice makes its order paid: on a shop the provider calls back, "+
		"and on one that polls alone. Every provider call takes %s to %s; the shops' poll_interval is %s, "+
		"their account held to %d calls a second; %d open orders wait beside the %d paid, one every %s.\n\n",
		callbackLatencyMin, callbackLatencyMax, scalePollInterval, crystalPayV3Rate, c.open, c.callback.paid, callbackPayEvery)
	b.WriteString("| figure | value | notes |\n|---|---|---|\n")
	for _, r := range f.callbackRows() {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r[0], r[1], r[2])
	}
	fmt.Fprintf(&b, `
- Two shops, one after the other, alike but for the callback: each has one CrystalPAY account
  on API v3 (login, secret and salt the sandbox's public ones), poll_interval %[1]s, order_ttl
  24h, max_open_orders off and no rate_limit, so the account keeps the %[9]d calls a second
  CrystalPAY v3 asks for, which bounds the reconciler's sweep. The first also has the
  account's callback URL and its route (kassa_callback main); the second has neither, so its
  reconciler alone finds the payments.
- The shop reaches the sandbox through a proxy the harness serves, which holds every provider
  call for a time drawn uniformly from %[2]s to %[3]s (the sandbox's own latency is one fixed
  duration); the sandbox's callbacks go to the shop straight.
- Each shop takes its orders through its checkout as JSON clients, the proxy holding nothing
  meanwhile; %[4]d of them, spread from the oldest to the newest, are the ones paid. Then the
  proxy's latency is turned on, and after one poll interval the harness pays them through the
  sandbox's POST /control/pay (what its payment page's button does), one every %[5]s. Nobody
  polls their status.
- Payment → order paid is, for each paid order, the time from the sandbox's answer to its
  payment to the order's paid_at, the shop's clock as it recorded the order paid (both clocks
  are this machine's). The harness reads paid_at through the admin API, GET
  /kassa/orders?state=paid&limit=%[6]d, which reads storage and asks no provider, once a second
  after the last payment until every paid order is there, or for %[7]d expected sweeps (at
  least %[8]s); the rate it reads at does not change the figure. Percentiles are nearest-rank.
- Provider calls are the shop's kassa_provider_calls_total between the first payment and the
  read that found the last order paid, so they include the reconciler's sweeps over the open
  orders, which callbacks do not spare: polling stays the fallback. A callback's own
  invoice/info call takes a token of the rate limit but never waits for one, so with
  callbacks the calls run above the limit by about one per paid order. Callback posts are the
  sandbox's journal (GET /control/calls?op=callback) with the status the shop answered each;
  the shop's results are its kassa_callbacks_total.
`, scalePollInterval, callbackLatencyMin, callbackLatencyMax, c.callback.paid, callbackPayEvery, maxAdminPage,
		callbackWaitSweeps, shortDuration(minCallbackWait), crystalPayV3Rate)
	return b.String()
}
