package main

import (
	"fmt"
	"strings"
	"time"
)

// scaleHeading starts the report's section on the scale figures.
const scaleHeading = "## Scale"

// Targets of the scale figures, in poll intervals of scalePollInterval
// and as a ratio of page times.
const (
	// noticeTargetOrders is the most open orders at which a payment's
	// notice has a target; beyond, the figure is shown beside the
	// expected sweep time.
	noticeTargetOrders = 500
	maxNoticeIntervals = 6
	maxYoungIntervals  = 3
	maxPageRatio       = 2
)

// shortDuration is d without its zero minutes and seconds: 24h, 1h10m.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// intervals is d in poll intervals of the scale figures' shop.
func intervals(d time.Duration) float64 { return d.Seconds() / scalePollInterval.Seconds() }

// seconds is d in seconds, and in poll intervals.
func seconds(d time.Duration) string {
	return fmt.Sprintf("%.2f s (%.1f poll intervals)", d.Seconds(), intervals(d))
}

// got is a notice figure's max and p50, and the orders it missed.
func (n noticeFigure) got() string {
	s := fmt.Sprintf("max %s, p50 %s", seconds(percentile(n.noticed, 1)), seconds(percentile(n.noticed, 0.5)))
	if n.missed() > 0 {
		s += fmt.Sprintf("; %d of %d paid orders not noticed within %s", n.missed(), n.paid, n.wait)
	}
	return s
}

// within reports whether every paid order of n was noticed within limit
// poll intervals.
func (n noticeFigure) within(limit float64) bool {
	return n.paid > 0 && n.missed() == 0 && intervals(percentile(n.noticed, 1)) <= limit
}

// pageRatio is the operator page's median time with the most orders
// stored over that with the fewest.
func (s *scaleFigures) pageRatio() float64 {
	if len(s.pages) < 2 {
		return 0
	}
	first, last := s.pages[0], s.pages[len(s.pages)-1]
	return ratio(float64(percentile(last.first, 0.5)), float64(percentile(first.first, 0.5)))
}

// growth is how much the shop's peak RSS grew during the export.
func (e exportFigure) growth() int64 { return e.shopAfter.peak - e.shopBefore.peak }

// scaleTargets are the targets of the scale section.
func (f *figures) scaleTargets() []target {
	s := &f.scale
	var ts []target
	for _, n := range s.notice {
		if n.open > noticeTargetOrders {
			continue
		}
		ts = append(ts, target{
			what: fmt.Sprintf("payment notice, %d open orders", n.open),
			want: fmt.Sprintf("max ≤ %d poll intervals", maxNoticeIntervals),
			got:  n.got(),
			met:  n.within(maxNoticeIntervals),
		})
	}
	if y := s.young; y.paid > 0 {
		ts = append(ts, target{
			what: fmt.Sprintf("young first: %d new orders beside %d older than an hour", y.fresh, y.open),
			want: fmt.Sprintf("max ≤ %d poll intervals", maxYoungIntervals),
			got:  y.got(),
			met:  y.within(maxYoungIntervals),
		})
	}
	if len(s.pages) >= 2 {
		first, last := s.pages[0], s.pages[len(s.pages)-1]
		ts = append(ts, target{
			what: fmt.Sprintf("operator page, %d ÷ %d stored orders", last.stored, first.stored),
			want: fmt.Sprintf("median ≤ %d ×", maxPageRatio),
			got: fmt.Sprintf("%.2f × (%s against %s)", s.pageRatio(),
				roundDuration(percentile(last.first, 0.5)), roundDuration(percentile(first.first, 0.5))),
			met: s.pageRatio() > 0 && s.pageRatio() <= maxPageRatio,
		})
	}
	if len(s.pages) > 0 {
		e := s.export
		t := target{
			what: "export",
			want: fmt.Sprintf("every order of the range, one row each; the shop's peak RSS grows < %s", megabytes(maxRSSGrowth)),
			got:  "not measured: " + e.missing,
			met:  e.complete() && e.growth() < maxRSSGrowth,
		}
		if e.missing == "" {
			t.got = fmt.Sprintf("%d rows for %d orders created from %s to %s; peak RSS %s → %s",
				e.rows, e.inRange, e.from, e.to, megabytes(e.shopBefore.peak), megabytes(e.shopAfter.peak))
		}
		ts = append(ts, t)
	}
	return ts
}

// scaleRows are the scale section's figures: label, value and notes.
func (f *figures) scaleRows() [][3]string {
	s := &f.scale
	var rows [][3]string
	add := func(label, value, notes string) { rows = append(rows, [3]string{label, value, notes}) }
	notice := func(what string, n noticeFigure, notes string) {
		missed := ""
		if n.missed() > 0 {
			missed = fmt.Sprintf("; %d not noticed within %s", n.missed(), n.wait)
		}
		add(what+", p50", seconds(percentile(n.noticed, 0.5)), fmt.Sprintf("%d of %d paid orders%s", len(n.noticed), n.paid, missed))
		add(what+", max", seconds(percentile(n.noticed, 1)), notes)
	}
	for _, n := range s.notice {
		sweep := expectedSweep(n.open, s.latency)
		notice(fmt.Sprintf("payment → paid with its receipt done, %d open orders", n.open), n,
			fmt.Sprintf("expected sweep %d ÷ (%d ÷ %s) = %s (%.1f poll intervals)", n.open, defaultPollWorkers, s.latency,
				roundDuration(sweep), intervals(sweep)))
		add(fmt.Sprintf("making the %d open orders", n.open), roundDuration(n.setup).String(), "through the checkout, the sandbox at zero latency")
	}
	if y := s.young; y.paid > 0 {
		notice(fmt.Sprintf("payment → paid with its receipt done, %d new orders beside %d older than an hour", y.fresh, y.open), y,
			fmt.Sprintf("expected sweep of all %d: %s", y.open+y.fresh, roundDuration(expectedSweep(y.open+y.fresh, s.latency))))
	}
	for _, p := range s.pages {
		what := fmt.Sprintf("GET /kassa/orders?limit=%d, %d stored orders", pageLimit, p.stored)
		add(what+", p50", roundDuration(percentile(p.first, 0.5)).String(), fmt.Sprintf("%d requests", len(p.first)))
		add(what+", p90", roundDuration(percentile(p.first, 0.9)).String(), fmt.Sprintf("storing the orders took %s", roundDuration(p.seedTime)))
		if p.secondMissing != "" {
			add(what+", page 2, p50", "—", "not measured: "+p.secondMissing)
			continue
		}
		add(what+", page 2, p50", roundDuration(percentile(p.second, 0.5)).String(), fmt.Sprintf("%d requests, with page 1's cursor", len(p.second)))
		add(what+", page 2, p90", roundDuration(percentile(p.second, 0.9)).String(), "")
	}
	if len(s.pages) > 0 {
		e := s.export
		what := fmt.Sprintf("caddy kassa export, %d stored orders", s.pages[len(s.pages)-1].stored)
		if e.missing != "" {
			add(what, "—", "not measured: "+e.missing)
			return rows
		}
		add(what, roundDuration(e.elapsed).String(), fmt.Sprintf("%d rows, from %s to %s", e.rows, e.from, e.to))
		add(what+", orders/s", fmt.Sprintf("%.0f", ratio(float64(e.rows), e.elapsed.Seconds())), "")
		add(what+", the shop's peak RSS", megabytes(e.shopAfter.peak), fmt.Sprintf("%s before, in a fresh process", megabytes(e.shopBefore.peak)))
		add(what+", the CLI's peak RSS", megabytes(e.cliPeak), "its output to a file")
	}
	return rows
}

// scaleSummary is the scale figures and targets as plain text.
func (f *figures) scaleSummary() string {
	var b strings.Builder
	for _, r := range f.scaleRows() {
		fmt.Fprintf(&b, "%-90s %30s  %s\n", r[0], r[1], r[2])
	}
	for _, t := range f.scaleTargets() {
		fmt.Fprintf(&b, "%s %s: %s (want %s)\n", verdict(t.met), t.what, t.got, t.want)
	}
	return b.String()
}

// scaleMarkdown is the report's section on the scale figures; alone is
// whether they were measured on their own (-only scale).
func (f *figures) scaleMarkdown(alone bool) string {
	var b strings.Builder
	b.WriteString(scaleHeading + "\n\n")
	b.WriteString(f.measured(alone))
	fmt.Fprintf(&b, "Every provider call takes %s (the sandbox's latency); the shop's poll_interval is %s.\n\n",
		f.scale.latency, scalePollInterval)
	b.WriteString("| target | want | measured | |\n|---|---|---|---|\n")
	for _, t := range f.scaleTargets() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.what, t.want, t.got, verdict(t.met))
	}
	fmt.Fprintf(&b, "\n| figure | value | previous run (%s) | notes |\n|---|---|---|---|\n", cmpOr(f.previous.date, "none"))
	for _, r := range f.scaleRows() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r[0], r[1], f.previous.value(r[0]), r[2])
	}
	fmt.Fprintf(&b, `
- The shops here have receipts on the sandbox's Smart Cashier, poll_interval %[1]s (the period
  of the issue's measurement) and every other kassa option at its default; the expected sweep
  time assumes poll_concurrency's default, %[2]d. The sandbox is the one above, its latency set
  through POST /control/settings.
- Payment notice: a fresh shop (order_ttl %[3]s, so nothing expires) takes the open orders
  through its checkout as JSON clients, the sandbox at zero latency meanwhile; then the
  sandbox's latency is set, and after one poll interval %[4]d of the orders, spread from the
  oldest to the newest, are paid through the sandbox's POST /control/pay. Nobody polls their
  status: the harness reads each through the admin API (GET /kassa/orders/{id}, which reads
  storage and asks no provider) every %[5]s until it is paid with its sale receipt done. The
  time is from the sandbox's answer to the payment to that read; percentiles are
  nearest-rank. An order not noticed within %[6]d expected sweeps (at least %[7]s) counts as
  missed.
- Young first: a shop takes the old orders; it is stopped, and each of their records in its
  file storage is rewritten as if created %[8]s earlier and expiring %[9]s from now; a fresh
  shop on that storage (order_ttl %[9]s), the sandbox at its latency, takes the new orders
  through its checkout one poll interval after it started, and all of them are paid and read
  as above.
- Operator page: orders written straight into the storage with kassa.OrderStore.Create (the
  shop's own code), from %[10]d workers, created over the year before the run (the first
  stored spread over all of it), 70 %% paid with their receipts done (one in 20 refunded), 25 %%
  expired, 3 %% cancelled, 2 %% failed, while one shop runs on that storage (started on it
  empty, as a shop's history begins). At each count: GET
  /kassa/orders?limit=%[11]d on the admin API, %[12]d times after %[13]d warm-up requests
  (fewer, at least %[14]d, once %[15]s is spent), each answer checked to hold %[11]d orders newest
  first; page 2 is the same with before= page 1's next cursor.
- Export: caddy kassa export --from --to of the first half of that year, against a fresh shop
  on the largest history, its output to a file whose CSV records (after the header) are
  counted against the orders the harness stored in the range (from inclusive, to exclusive,
  days in the shop's time zone). The shop's peak RSS is VmHWM before and after; the CLI's is
  its rusage maxrss.
`, scalePollInterval, defaultPollWorkers, shortDuration(noticeOrderTTL), noticePaid, noticeReadEvery, noticeWaitPerSweeps,
		shortDuration(minNoticeWait), shortDuration(youngAge), shortDuration(youngOrderTTL), f.opts.concurrency, pageLimit, pageSamples,
		pageWarmup, minPageSamples, shortDuration(pageBudget))
	return b.String()
}
