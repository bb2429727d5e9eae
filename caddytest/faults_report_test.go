package caddytest

// The fault matrix's report: docs/RELIABILITY.md, rendered from the cells
// TestFaultMatrix observed.

import (
	"fmt"
	"strings"
)

// matrixDocument renders the matrix as docs/RELIABILITY.md.
func matrixDocument(rows []matrixRow, cells [][]matrixCell) string {
	var b strings.Builder
	b.WriteString(`# Reliability: the fault matrix

<!-- Written by TestFaultMatrix (caddytest/faults_test.go): do not edit by hand. -->

What a buyer and an operator see when a provider fails, for every provider operation caddy-kassa
calls and every way a provider fails. ` + "`TestFaultMatrix`" + ` runs each cell against the sandbox
and writes what it observed here; the test fails when this file says anything else, so it cannot
go stale. To regenerate it after a change in behaviour (and review the diff):

` + "```sh" + `
go test -race -count=1 -run TestFaultMatrix ./caddytest -update
` + "```" + `

How it runs: the shop and the sandbox are separate Caddy processes (the development build). The
shop's provider endpoints point at TCP forwarders in front of the sandbox, one per API (CrystalPAY's
v3 apart from its v1, as their hosts are), with a provider ` + "`timeout`" + ` of ` + matrixTimeout + `, one Smart
Cashier retry and a 200ms ` + "`poll_interval`" + `. CrystalPAY v3's callbacks come straight from the
sandbox to the shop's kassa_callback route. For each cell the fault is injected (every call of
the operation fails, not only the next), the surface is used as a buyer or operator uses it, the
fault is cleared, and the flow is finished. The faults:

| fault | what the shop gets |
|---|---|
| connection refused | the forwarder is closed: nothing listens on the port |
| timeout | no reply (the sandbox holds the request until the shop gives up) |
| HTTP 500 | the API's own 500 |
| HTML error page | 502 with an HTML page, as from a broken proxy in front of the API |
| malformed JSON | 200 with truncated JSON |
| auth error | the API's own authentication error |
| slow reply | the reply after ` + matrixSlow + `, within the timeout: everything must work |

A cell passes (✓) when:

- **the answer is the documented one** ([Reference, Errors](reference.md#errors)): 503
  ` + "`provider_unavailable`" + ` when the provider could not be reached, timed out, or answered 5xx or
  an HTML page; 502 ` + "`provider_error`" + ` when it refused or answered nonsense; success when it
  was only slow. A payout made in one step (CrystalPAY v1, Pegas-kassa) answers the same statuses
  with ` + "`payout_outcome_unknown`" + ` unless the provider refused it: only a refusal proves that
  nothing was paid. A CrystalPAY v3 payout, made in two steps, answers 502 ` + "`payout_not_made`" + `
  when it was never submitted, and 503 ` + "`payout_outcome_pending`" + ` when it was created and its
  fate is learnt by its id on the operator's retry. A provider's callback that cannot be checked
  against the provider is answered 503 ` + "`provider_unavailable`" + `, whatever the fault, so that
  the provider sends it again. Surfaces that do not report provider failures (a buyer's status
  poll, the reconciler) show the order as it stands;
- **no order is lost**: every checkout leaves an order record, and every order reaches the
  right final state once the fault clears;
- **nothing is done twice**: one invoice per order, paid once; one Smart Cashier operation per
  operation id (accepted once); at most one payout per ` + "`Idempotency-Key`" + ` (for CrystalPAY v3, at
  most one ` + "`payoff/create`" + ` and one ` + "`payoff/submit`" + ` taken per key); and ` + "`generate`" + `,
  ` + "`invoice/create`" + `, ` + "`payoff/create`" + `, ` + "`withdraw`" + ` and ` + "`withdrawal`" + ` never retried by the shop on
  its own;
- **it recovers**: once the provider is back, the same flow succeeds; the reconciler finishes
  what it can by itself, and the operator's retry (which docs/reference.md asks for) the rest.

## Summary

`)
	b.WriteString("| operation | surface |")
	for _, f := range matrixFaults {
		b.WriteString(" " + f.title + " |")
	}
	b.WriteString("\n|---|---|" + strings.Repeat("---|", len(matrixFaults)) + "\n")
	for i, row := range rows {
		fmt.Fprintf(&b, "| %s `%s` | %s |", row.provider, row.op, row.surface)
		for _, c := range cells[i] {
			b.WriteString(" " + matrixMark(c, c.short) + " |")
		}
		b.WriteString("\n")
	}
	b.WriteString("\n\\* `GET /kassa/balance` answers 200 while any account answers; a failing account carries its " +
		"error (`provider_unavailable` or `provider_error`) in place of its balance.\n")

	provider := ""
	for i, row := range rows {
		if row.provider != provider {
			provider = row.provider
			fmt.Fprintf(&b, "\n## %s\n", provider)
		}
		fmt.Fprintf(&b, "\n### `%s` — %s\n\n%s\n\n", row.op, row.surface, row.detail)
		b.WriteString("| fault | seen | outcome | nothing twice | recovered |\n|---|---|---|---|---|\n")
		for j, f := range matrixFaults {
			c := cells[i][j]
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", f.title, c.seen, c.outcome, c.once, matrixMark(c, c.recovered))
		}
	}
	return b.String()
}

// matrixMark is a cell's text, marked ✓ if the cell passed and ✗ if not.
func matrixMark(c matrixCell, text string) string {
	if !c.passed {
		return "✗ failed"
	}
	if text == "✓" {
		return text
	}
	return text + " ✓"
}

// matrixFirstDifference shows where two texts first differ.
func matrixFirstDifference(have, want string) string {
	h, w := strings.Split(have, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(h) || i < len(w); i++ {
		var hl, wl string
		if i < len(h) {
			hl = h[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if hl != wl {
			return fmt.Sprintf("line %d is\n\t%s\nbut the matrix observed\n\t%s", i+1, hl, wl)
		}
	}
	return "no difference"
}
