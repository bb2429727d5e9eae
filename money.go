package kassa

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// maxAmountDigits bounds the integer digits of an amount as written: ten
// digits, which already allow more than maxAmount.
const maxAmountDigits = 10

// ParseAmount reads money as accepted from a request, a header or a config:
// plain decimal notation only — one or more ASCII digits, optionally a dot
// and one or two digits ("350", "350.5", "350.00", "0.01"). No sign,
// exponent, spaces, thousands separators, leading dot (".5"), trailing dot
// ("5."), comma, or more than two decimals; at most ten integer digits
// (leading zeros count); never above maxAmount. Anything else would let a
// typo or a tamperer change a price by orders of magnitude, so nothing is
// trimmed or guessed. The error is a *RequestError (400, code "bad_amount",
// Field as given) whose message quotes the input safely.
func ParseAmount(field, s string) (decimal.Decimal, error) {
	if !isPlainAmount(s) {
		if s == "" {
			return decimal.Zero, badRequest("bad_amount", field, "%s is empty: want an amount like 350.00", field)
		}
		return decimal.Zero, badRequest("bad_amount", field,
			"%s %s is not an amount: want digits, optionally a dot and one or two decimals, like 350 or 350.00 (no sign, spaces, separators or exponent)",
			field, quoteInput(s))
	}
	d, err := decimal.NewFromString(s)
	if err != nil { // unreachable after isPlainAmount, kept as a guard
		return decimal.Zero, badRequest("bad_amount", field, "%s %s is not an amount", field, quoteInput(s))
	}
	if d.GreaterThan(maxAmount) {
		return decimal.Zero, badRequest("bad_amount", field, "%s %s is more than %s", field, s, FormatAmount(maxAmount))
	}
	return d, nil
}

// isPlainAmount reports whether s is written in plain decimal notation:
// 1 to maxAmountDigits ASCII digits, optionally a dot and one or two digits.
func isPlainAmount(s string) bool {
	whole, frac, dotted := strings.Cut(s, ".")
	if len(whole) < 1 || len(whole) > maxAmountDigits || !allDigits(whole) {
		return false
	}
	if dotted && (len(frac) < 1 || len(frac) > 2 || !allDigits(frac)) {
		return false
	}
	return true
}

// allDigits reports whether s consists of ASCII digits only (full-width
// and other Unicode digits are not digits here).
func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// FormatAmount writes an amount with exactly two decimals ("700.00"), as
// every JSON reply does. Amounts here never carry more than two decimals; one
// that did would be rounded half away from zero.
func FormatAmount(d decimal.Decimal) string { return d.StringFixed(2) }

// maxQuoted bounds how much of a caller's input an error message repeats.
const maxQuoted = 64

var markupEscaper = strings.NewReplacer("<", `\u003c`, ">", `\u003e`, "&", `\u0026`)

// quoteInput makes a caller's input safe to repeat in an error message that
// may end up in an HTML page or a log: cut to at most 64 bytes (on a rune
// boundary, marked with "..."), quoted as Go quotes strings (control
// characters and invalid UTF-8 escaped), and with <, > and & escaped as
// \u003c, \u003e and \u0026 so that no markup survives.
func quoteInput(s string) string {
	cut := false
	if len(s) > maxQuoted {
		n := maxQuoted
		for i := 0; i < utf8.UTFMax-1 && !utf8.RuneStart(s[n]); i++ {
			n--
		}
		s, cut = s[:n], true
	}
	q := strconv.Quote(s)
	q = markupEscaper.Replace(q)
	if cut {
		q += "..."
	}
	return q
}
