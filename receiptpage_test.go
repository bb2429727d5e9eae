package kassa

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// TestReceiptQR: the QR content has the tax service's fields, with the
// receipt's time in Moscow time; the vendor document's processed receipt
// gives the document's own numbers.
func TestReceiptQR(t *testing.T) {
	f := &FiscalParams{DocumentNumber: 24, DocumentSign: "0637894524", FNNumber: "9999451122",
		DocumentTime: time.Date(2019, 5, 1, 14, 33, 11, 628793600, time.UTC)}
	got := receiptQR(f, decimal.NewFromInt(270), ReceiptSale)
	if want := "t=20190501T1733&s=270.00&fn=9999451122&i=24&fp=0637894524&n=1"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := receiptQR(f, decimal.RequireFromString("99.9"), ReceiptSaleReturn); !strings.HasSuffix(got, "&n=2") || !strings.Contains(got, "&s=99.90&") {
		t.Errorf("return receipt QR: %s", got)
	}
}

func TestQRSVG(t *testing.T) {
	svg, err := qrSVG("t=20190501T1733&s=270.00&fn=9999451122&i=24&fp=0637894524&n=1")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		ViewBox string `xml:"viewBox,attr"`
		Path    struct {
			D string `xml:"d,attr"`
		} `xml:"path"`
	}
	if err := xml.Unmarshal([]byte(svg), &doc); err != nil {
		t.Fatalf("not SVG: %v", err)
	}
	// A QR code of this length is version 4 (33 modules) at level M, plus
	// a 4-module quiet zone on each side.
	if doc.ViewBox != "-4 -4 41 41" {
		t.Errorf("viewBox %q", doc.ViewBox)
	}
	if modules := strings.Count(doc.Path.D, "M"); modules < 300 || modules > 33*33-300 {
		t.Errorf("%d dark modules", modules)
	}
}

func TestVATShare(t *testing.T) {
	for _, tc := range []struct {
		vat   VAT
		sum   string
		share string
		label string
	}{
		{VAT20, "700", "116.67", "НДС 20%"},
		{VAT120, "120", "20", "НДС 20%"},
		{VAT10, "450", "40.91", "НДС 10%"},
		{VAT0, "100", "0", "НДС 0%"},
		{VATNone, "100", "0", "Без НДС"},
	} {
		share, label := vatShare(tc.vat, decimal.RequireFromString(tc.sum))
		if !share.Equal(decimal.RequireFromString(tc.share)) || label != tc.label {
			t.Errorf("%v of %s: %s %s", tc.vat, tc.sum, share, label)
		}
	}
}
