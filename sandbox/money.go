package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf16"

	"github.com/shopspring/decimal"
)

// maxAmount is the largest amount any simulated API accepts, in rubles.
var maxAmount = decimal.NewFromInt(1000000)

var (
	wholeRubles = regexp.MustCompile(`^[1-9][0-9]*$`)
	plainMoney  = regexp.MustCompile(`^[0-9]+(\.[0-9]{1,2})?$`)
)

// parseWholeRubles parses a positive whole-ruble amount written with digits
// only (no sign, spaces, exponent, decimals or leading zeros).
func parseWholeRubles(s string) (decimal.Decimal, error) {
	if !wholeRubles.MatchString(s) {
		return decimal.Zero, fmt.Errorf("amount must be a whole number of rubles written with digits only")
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return decimal.Zero, err
	}
	if d.GreaterThan(maxAmount) {
		return decimal.Zero, fmt.Errorf("amount must not exceed %s", maxAmount)
	}
	return d, nil
}

// parseMoney parses an amount in plain decimal notation with at most two
// decimals (no sign, spaces or exponent).
func parseMoney(s string) (decimal.Decimal, bool) {
	if !plainMoney.MatchString(s) {
		return decimal.Zero, false
	}
	d, err := decimal.NewFromString(s)
	return d, err == nil
}

// isKopecks reports whether d has at most two decimals.
func isKopecks(d decimal.Decimal) bool {
	return d.Equal(d.Round(2))
}

// number is an amount that goes on the wire as a JSON number (8.75), not as
// the quoted string decimal.Decimal marshals to.
type number decimal.Decimal

// MarshalJSON writes the amount as a JSON number.
func (n number) MarshalJSON() ([]byte, error) {
	return []byte(decimal.Decimal(n).String()), nil
}

// percentOf is amount × percent / 100, rounded to kopecks.
func percentOf(amount, percent decimal.Decimal) decimal.Decimal {
	return amount.Mul(percent).Div(decimal.NewFromInt(100)).Round(2)
}

// isWebURL reports whether s is an absolute http(s) URL with a host.
func isWebURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		!strings.ContainsAny(s, " \t\r\n")
}

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{"error":"internal error"}`)
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writePHPJSON answers status with v as JSON encoded the way PHP's
// json_encode does (see phpJSON).
func writePHPJSON(w http.ResponseWriter, status int, v any) {
	b, err := phpJSON(v)
	if err != nil {
		b = []byte(`{"error":true}`)
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// phpJSON encodes v the way PHP's json_encode does by default: slashes
// escaped (\/) and every non-ASCII character as \uXXXX. CrystalPAY and
// Pegas-kassa are PHP services; a client must decode JSON properly, not
// pattern-match it.
func phpJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var sb strings.Builder
	for _, r := range string(b) {
		switch {
		case r == '/':
			sb.WriteString(`\/`)
		case r < 0x80:
			sb.WriteRune(r)
		case r > 0xFFFF:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&sb, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&sb, `\u%04x`, r)
		}
	}
	return []byte(sb.String()), nil
}
