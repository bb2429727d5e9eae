package kassa

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

func TestParseAmountAccepts(t *testing.T) {
	for in, want := range map[string]string{
		"350":          "350",
		"350.5":        "350.5",
		"350.50":       "350.5",
		"350.00":       "350",
		"0.01":         "0.01",
		"0":            "0",
		"0.0":          "0",
		"007":          "7",
		"999999999":    "999999999",
		"1000000000":   "1000000000",
		"999999999.99": "999999999.99",
		"0000000001":   "1",
	} {
		t.Run(in, func(t *testing.T) {
			got, err := ParseAmount("amount", in)
			if err != nil {
				t.Errorf("ParseAmount(%q): %v", in, err)
				return
			}
			if !got.Equal(decimal.RequireFromString(want)) {
				t.Errorf("ParseAmount(%q) = %s, want %s", in, got, want)
			}
		})
	}
}

func TestParseAmountRefuses(t *testing.T) {
	for _, in := range []string{
		"", "1e3", "1E3", "-1", "+1", " 1", "1 ", "1 000", "1,00", "1,000.00", "1.", ".5", "0x10",
		"１２", "١٢", "1.001", "1.000", "12345678901", "00000000001", "1000000000.01", "9999999999",
		"1_000", "NaN", "Inf", "1.2.3", "..", ".", "1..2", "1.-2", "1.+2", "\t1", "1\n", "1\x00",
		"350₽", "＄1", "1.0e2", "1/2", "½",
	} {
		t.Run(in, func(t *testing.T) {
			d, err := ParseAmount("amount", in)
			if err == nil {
				t.Errorf("ParseAmount(%q) = %s, want an error", in, d)
				return
			}
			var re *RequestError
			if !errors.As(err, &re) {
				t.Errorf("ParseAmount(%q): %T, want *RequestError", in, err)
				return
			}
			if re.Status != http.StatusBadRequest || re.Code != "bad_amount" || re.Field != "amount" {
				t.Errorf("ParseAmount(%q) = %+v, want 400 bad_amount on amount", in, re)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("ParseAmount(%q): error is not ErrInvalid", in)
			}
			if !d.IsZero() {
				t.Errorf("ParseAmount(%q) returned %s with its error", in, d)
			}
		})
	}
}

func TestParseAmountFieldAndSafeMessage(t *testing.T) {
	_, err := ParseAmount("X-Kassa-Amount", "<script>alert(1)</script>\x00\n"+strings.Repeat("9", 100))
	var re *RequestError
	if !errors.As(err, &re) {
		t.Fatalf("got %v", err)
	}
	if re.Field != "X-Kassa-Amount" {
		t.Errorf("Field = %q", re.Field)
	}
	for _, bad := range []string{"<", ">", "\x00", "\n", strings.Repeat("9", 65)} {
		t.Run(bad, func(t *testing.T) {
			if strings.Contains(re.Message, bad) {
				t.Errorf("message %q contains %q", re.Message, bad)
			}
		})
	}
	_, err = ParseAmount("amount", "1000000000.01")
	if err == nil || !strings.Contains(err.Error(), "1000000000.00") {
		t.Errorf("above the limit: %v, want the limit named", err)
	}
}

func TestFormatAmount(t *testing.T) {
	for in, want := range map[string]string{
		"700":          "700.00",
		"0":            "0.00",
		"0.5":          "0.50",
		"0.01":         "0.01",
		"299.97":       "299.97",
		"1000000000":   "1000000000.00",
		"350.10":       "350.10",
		"-1.5":         "-1.50",
		"12345.678":    "12345.68",
		"100000000000": "100000000000.00",
	} {
		t.Run(in, func(t *testing.T) {
			if got := FormatAmount(decimal.RequireFromString(in)); got != want {
				t.Errorf("FormatAmount(%s) = %q, want %q", in, got, want)
			}
		})
	}
	if got := FormatAmount(decimal.Decimal{}); got != "0.00" {
		t.Errorf("FormatAmount(zero value) = %q", got)
	}
}

func TestQuoteInput(t *testing.T) {
	for in, want := range map[string]string{
		"tea":                         `"tea"`,
		"<b>&":                        `"\u003cb\u003e\u0026"`,
		"a\x00\n\x7f":                 `"a\x00\n\x7f"`,
		"\xff":                        `"\xff"`,
		strings.Repeat("a", 64):       `"` + strings.Repeat("a", 64) + `"`,
		strings.Repeat("a", 65):       `"` + strings.Repeat("a", 64) + `"...`,
		strings.Repeat("я", 40):       `"` + strings.Repeat("я", 32) + `"...`,
		"a" + strings.Repeat("я", 40): `"a` + strings.Repeat("я", 31) + `"...`,
	} {
		t.Run(in, func(t *testing.T) {
			if got := quoteInput(in); got != want {
				t.Errorf("quoteInput(%q) = %s, want %s", in, got, want)
			}
		})
	}
}

func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"350", "350.5", "0.01", "1e3", "-1", ".5", "5.", "1000000000", "1000000000.01", "１２", "0000000000.00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseAmount("amount", s)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || re.Code != "bad_amount" || re.Status != http.StatusBadRequest {
				t.Fatalf("ParseAmount(%q): %#v", s, err)
			}
			if strings.ContainsAny(re.Message, "<>\x00\n") {
				t.Fatalf("unsafe message %q", re.Message)
			}
			return
		}
		if d.IsNegative() || d.GreaterThan(maxAmount) {
			t.Fatalf("ParseAmount(%q) = %s: out of range", s, d)
		}
		if !d.Equal(d.Round(2)) {
			t.Fatalf("ParseAmount(%q) = %s: more than two decimals", s, d)
		}
		formatted := FormatAmount(d)
		again, err := ParseAmount("amount", formatted)
		if err != nil || !again.Equal(d) {
			t.Fatalf("ParseAmount(FormatAmount(%s) = %q) = %s, %v", d, formatted, again, err)
		}
		if !strings.Contains(formatted, ".") || len(formatted)-strings.Index(formatted, ".") != 3 {
			t.Fatalf("FormatAmount(%s) = %q: not two decimals", d, formatted)
		}
	})
}

// plainAmount reports whether d has at most two decimals, is not
// negative and is at most maxAmount: what ParseAmount promises.
func plainAmount(d decimal.Decimal) bool {
	return !d.IsNegative() && d.Equal(d.Round(2)) && !d.GreaterThan(maxAmount)
}
