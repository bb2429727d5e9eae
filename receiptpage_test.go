package kassa

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// TestReceiptQR: the QR content has the tax service's fields, with the
// receipt's time at the place of settlement; the vendor document's
// processed receipt gives the document's own numbers.
func TestReceiptQR(t *testing.T) {
	f := &FiscalParams{DocumentNumber: 24, DocumentSign: "0637894524", FNNumber: "9999451122",
		DocumentTime: time.Date(2019, 5, 1, 14, 33, 11, 628793600, time.UTC)}
	got := receiptQR(f, decimal.NewFromInt(270), ReceiptSale, moscow)
	if want := "t=20190501T1733&s=270.00&fn=9999451122&i=24&fp=0637894524&n=1"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := receiptQR(f, decimal.RequireFromString("99.9"), ReceiptSaleReturn, moscow); !strings.HasSuffix(got, "&n=2") || !strings.Contains(got, "&s=99.90&") {
		t.Errorf("return receipt QR: %s", got)
	}
	vladivostok, err := time.LoadLocation("Asia/Vladivostok")
	if err != nil {
		t.Fatal(err)
	}
	if got := receiptQR(f, decimal.NewFromInt(270), ReceiptSale, vladivostok); !strings.HasPrefix(got, "t=20190502T0033&") {
		t.Errorf("a shop in Vladivostok: %s, want its local time", got)
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

// TestVATShare: the VAT included in a rate's total, and the rate's label.
func TestVATShare(t *testing.T) {
	for _, tc := range []struct {
		vat   VAT
		sum   string
		share string
		label string
	}{
		{VAT22, "1220.00", "220.00", "НДС 22%"},
		{VAT122, "122", "22", "НДС 22/122"},
		{VAT20, "700", "116.67", "НДС 20%"},
		{VAT120, "120", "20", "НДС 20/120"},
		{VAT10, "450", "40.91", "НДС 10%"},
		{VAT110, "110", "10", "НДС 10/110"},
		{VAT5, "210", "10", "НДС 5%"},
		{VAT105, "105", "5", "НДС 5/105"},
		{VAT7, "214", "14", "НДС 7%"},
		{VAT107, "107", "7", "НДС 7/107"},
		{VAT0, "100", "0", "НДС 0%"},
		{VATNone, "100", "0", "Без НДС"},
	} {
		t.Run(tc.vat.String(), func(t *testing.T) {
			if share := tc.vat.Share(decimal.RequireFromString(tc.sum)); !share.Equal(decimal.RequireFromString(tc.share)) {
				t.Errorf("VAT in %s: %s, want %s", tc.sum, share, tc.share)
			}
			if label := tc.vat.Label(); label != tc.label {
				t.Errorf("label %q, want %q", label, tc.label)
			}
		})
	}
}
