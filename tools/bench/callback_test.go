package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCallbackSmoke runs the callback figures alone with tiny numbers, so
// that they keep working: in both runs every paid order is recorded paid;
// with callbacks the sandbox posts one callback per paid order, the shop
// answers each 200 and records it paid; polling alone, nothing is posted;
// and the section replaces its own in a report. It asserts no speed.
func TestCallbackSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "PERFORMANCE.md")
	const before = "# Performance\n\n## Figures\n\n| figure | value |\n|---|---|\n| respond | 1 req/s |\n\n## Go benchmarks\n\nbenchmarks\n"
	if err := os.WriteFile(out, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	const paid = 5
	opts := options{concurrency: 4, duration: time.Second, only: onlyCallback, out: out, callbackOpen: 20, callbackOrders: paid}
	var progress strings.Builder
	f, err := run(ctx, opts, &progress)
	if err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, progress.String())
	}
	c := f.callback
	for _, r := range []callbackRun{c.callback, c.polls} {
		if r.paid != paid || r.missed() != 0 {
			t.Errorf("callbacks %v: %d of %d paid orders recorded paid", r.callbacks, len(r.noticed), r.paid)
		}
		if r.statusCalls < 1 {
			t.Errorf("callbacks %v: %v invoice/info calls", r.callbacks, r.statusCalls)
		}
	}
	if d := c.callback.deliveries; !c.callback.callbacks || d.posts != paid || d.byStatus[200] != paid || d.retries != 0 {
		t.Errorf("with callbacks: %+v", d)
	}
	if got := c.callback.results["paid"]; got != paid {
		t.Errorf("with callbacks: the shop's results %v, want paid %d", c.callback.results, paid)
	}
	if d := c.polls.deliveries; c.polls.callbacks || d.posts != 0 || len(c.polls.results) != 0 {
		t.Errorf("polling alone: %+v, results %v", d, c.polls.results)
	}

	if err := f.write(out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	report := string(b)
	checkTables(t, report)
	if !strings.HasPrefix(report, strings.TrimSuffix(before, "## Go benchmarks\n\nbenchmarks\n")+callbackHeading+"\n") ||
		!strings.HasSuffix(report, "\n## Go benchmarks\n\nbenchmarks\n") {
		t.Errorf("the section is not where it belongs, or the rest of the report changed:\n%s", report)
	}
	for _, want := range []string{opts.command(), "payment → order paid, with callbacks, p99", "payment → order paid, polling alone, max",
		"callback posts (answers), with callbacks | 5 | answered 200 × 5; 0 retries; the shop's results: paid 5"} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if testing.Verbose() {
		_, _ = io.WriteString(os.Stdout, f.callbackSummary())
	}
}

// TestDrawLatency spreads a uniform draw over [lo, hi).
func TestDrawLatency(t *testing.T) {
	lo, hi := 100*time.Millisecond, 500*time.Millisecond
	for u, want := range map[float64]time.Duration{0: lo, 0.25: 200 * time.Millisecond, 0.5: 300 * time.Millisecond, 0.999: 499600 * time.Microsecond} {
		if got := drawLatency(lo, hi, u); got != want {
			t.Errorf("drawLatency(%v) = %v, want %v", u, got, want)
		}
	}
}

// TestCallbackSweep is held by the rate limit when it is the tighter
// bound, and by the workers' latency otherwise.
func TestCallbackSweep(t *testing.T) {
	for _, tc := range []struct {
		n         int
		latency   time.Duration
		perSecond float64
		want      time.Duration
	}{
		{500, 300 * time.Millisecond, 5, 100 * time.Second},                   // 16 workers would do 53 a second
		{160, 300 * time.Millisecond, 100, 3 * time.Second},                   // 160 × 300 ms ÷ 16
		{0, 300 * time.Millisecond, 5, 0},                                     // nothing to sweep
		{1, 2 * time.Second, 5, 200 * time.Millisecond},                       // 2 s ÷ 16 is less than a fifth of a second
		{32, 2 * time.Second, 5, time.Duration(6.4 * float64(time.Second))},   // 32 ÷ 5
		{3200, 100 * time.Millisecond, 1000, time.Duration(20 * time.Second)}, // 3200 × 100 ms ÷ 16
	} {
		if got := callbackSweep(tc.n, tc.latency, tc.perSecond); got != tc.want {
			t.Errorf("callbackSweep(%d, %v, %v) = %v, want %v", tc.n, tc.latency, tc.perSecond, got, tc.want)
		}
	}
}

// TestNoticedTimes takes, for each order the harness paid and the shop
// recorded paid, paid_at minus the payment, sorted; other orders are left
// out.
func TestNoticedTimes(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	paidAt := map[string]time.Time{"a": t0, "b": t0.Add(time.Second), "c": t0.Add(2 * time.Second)}
	recorded := map[string]time.Time{
		"a": t0.Add(3 * time.Second),         // 3 s
		"b": t0.Add(1300 * time.Millisecond), // 300 ms
		"x": t0.Add(time.Second),             // paid by no one the harness paid
	}
	got := noticedTimes(paidAt, recorded)
	if want := []time.Duration{300 * time.Millisecond, 3 * time.Second}; !slices.Equal(got, want) {
		t.Errorf("noticedTimes = %v, want %v", got, want)
	}
	if got := noticedTimes(paidAt, nil); len(got) != 0 {
		t.Errorf("noticedTimes of nothing recorded = %v", got)
	}
}

// TestCountDeliveries counts the callback posts alone, their retries and
// their answers, and the report lists them.
func TestCountDeliveries(t *testing.T) {
	calls := []sandboxCall{
		{Op: "callback", Status: 200, Attempt: 1},
		{Op: "invoice/info", Status: 200},
		{Op: "callback", Status: 503, Attempt: 1},
		{Op: "callback", Status: 200, Attempt: 2},
		{Op: "callback", Status: 0, Attempt: 1},
	}
	d := countDeliveries(calls)
	if d.posts != 4 || d.retries != 1 || d.byStatus[200] != 2 || d.byStatus[503] != 1 || d.byStatus[0] != 1 || len(d.byStatus) != 3 {
		t.Errorf("countDeliveries = %+v", d)
	}
	if got, want := statusCounts(d.byStatus), "no answer × 1, 200 × 2, 503 × 1"; got != want {
		t.Errorf("statusCounts = %q, want %q", got, want)
	}
	if got := statusCounts(countDeliveries(nil).byStatus); got != "none" {
		t.Errorf("statusCounts of nothing = %q", got)
	}
	if got, want := resultCounts(map[string]float64{"paid": 4, "bad_signature": 1}), "bad_signature 1, paid 4"; got != want {
		t.Errorf("resultCounts = %q, want %q", got, want)
	}
}
