package sandbox

import (
	"net/http/httptest"
	"testing"

	"github.com/shopspring/decimal"
)

func TestParseWholeRubles(t *testing.T) {
	for in, ok := range map[string]bool{
		"1": true, "100": true, "1000000": true,
		"0": false, "0100": false, "100.50": false, "100.": false, "-5": false, "+5": false,
		"1e3": false, " 100": false, "100 ": false, "1 000": false, "": false, "1000001": false,
	} {
		t.Run(in, func(t *testing.T) {
			d, err := parseWholeRubles(in)
			if (err == nil) != ok {
				t.Errorf("%q: err %v, want ok=%v", in, err, ok)
			}
			if ok && d.String() != in {
				t.Errorf("%q parsed as %s", in, d)
			}
		})
	}
}

func TestParseMoney(t *testing.T) {
	for in, ok := range map[string]bool{
		"0": true, "1": true, "1.5": true, "1.50": true, "100000.99": true,
		"1.505": false, ".5": false, "1.": false, "-1": false, "1e2": false, "1,5": false, " 1": false, "": false,
	} {
		t.Run(in, func(t *testing.T) {
			if _, got := parseMoney(in); got != ok {
				t.Errorf("%q: ok=%v, want %v", in, got, ok)
			}
		})
	}
}

func TestPercentOf(t *testing.T) {
	for _, tc := range []struct{ amount, percent, want string }{
		{"350", "2.5", "8.75"}, {"1", "2.5", "0.03"}, {"100.5", "2.5", "2.51"}, {"0.01", "2.5", "0"}, {"99.99", "3.3", "3.3"},
	} {
		t.Run(tc.amount+" "+tc.percent, func(t *testing.T) {
			got := percentOf(decimal.RequireFromString(tc.amount), decimal.RequireFromString(tc.percent))
			if !got.Equal(decimal.RequireFromString(tc.want)) {
				t.Errorf("%s%% of %s = %s, want %s", tc.percent, tc.amount, got, tc.want)
			}
		})
	}
}

func TestWritePHPJSON(t *testing.T) {
	w := httptest.NewRecorder()
	writePHPJSON(w, 201, map[string]any{"url": "https://a/b", "msg": "Оплата 😀", "n": number(decimal.RequireFromString("8.750"))})
	want := `{"msg":"\u041e\u043f\u043b\u0430\u0442\u0430 \ud83d\ude00","n":8.75,"url":"https:\/\/a\/b"}`
	if w.Code != 201 || w.Body.String() != want || w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("%d %s\nwant %s", w.Code, w.Body, want)
	}
}
