package sandbox

import (
	"bytes"
	"fmt"
	"image/jpeg"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// checkPDF fails unless doc is a well-formed one-page PDF whose xref table
// points at its objects and whose text mentions want.
func checkPDF(t *testing.T, doc []byte, want string) {
	t.Helper()
	if !bytes.HasPrefix(doc, []byte("%PDF-1.4\n")) || !bytes.HasSuffix(doc, []byte("%%EOF")) {
		t.Fatalf("not a PDF: starts %q, ends %q", doc[:min(10, len(doc))], doc[max(0, len(doc)-10):])
	}
	m := regexp.MustCompile(`startxref\n(\d+)\n%%EOF$`).FindSubmatch(doc)
	if m == nil {
		t.Fatal("no startxref")
	}
	xref, _ := strconv.Atoi(string(m[1]))
	if !bytes.HasPrefix(doc[xref:], []byte("xref\n0 6\n0000000000 65535 f \n")) {
		t.Fatalf("startxref %d does not point at the xref table", xref)
	}
	entries := doc[xref+len("xref\n0 6\n"):]
	for i := 1; i <= 5; i++ {
		entry := entries[i*20 : (i+1)*20]
		off, err := strconv.Atoi(string(entry[:10]))
		if err != nil || string(entry[10:]) != " 00000 n \n" {
			t.Fatalf("xref entry %d is malformed: %q", i, entry)
		}
		if !bytes.HasPrefix(doc[off:], fmt.Appendf(nil, "%d 0 obj\n", i)) {
			t.Fatalf("xref entry %d points at %q", i, doc[off:min(off+12, len(doc))])
		}
	}
	lm := regexp.MustCompile(`<< /Length (\d+) >>\nstream\n`).FindSubmatchIndex(doc)
	if lm == nil {
		t.Fatal("no content stream")
	}
	length, _ := strconv.Atoi(string(doc[lm[2]:lm[3]]))
	if !bytes.HasPrefix(doc[lm[1]+length:], []byte("endstream")) {
		t.Fatal("content stream /Length is wrong")
	}
	if !bytes.Contains(doc, []byte(want)) {
		t.Fatalf("PDF does not mention %q", want)
	}
}

// checkJPEG fails unless doc starts with the JPEG magic bytes FF D8 FF (the
// client takes nothing else for a receipt image, and Go's decoder forgives
// junk after the start-of-image marker) and decodes as a JPEG image.
func checkJPEG(t *testing.T, doc []byte) {
	t.Helper()
	if !bytes.HasPrefix(doc, []byte{0xFF, 0xD8, 0xFF}) {
		t.Fatalf("not a JPEG: starts %q", doc[:min(4, len(doc))])
	}
	img, err := jpeg.Decode(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("not a JPEG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 50 {
		t.Fatalf("JPEG is %v, too small to show anything", b)
	}
}

func testInvoice(orderID string) pegasInvoice {
	return pegasInvoice{
		id: 100042, orderID: orderID, amount: decimal.RequireFromString("1000000"),
		commission: decimal.RequireFromString("25000"), state: pegasPaid,
		paidAt: time.Date(2026, 5, 1, 14, 0, 0, 0, time.UTC),
	}
}

func TestReceiptPDF(t *testing.T) {
	doc := receiptPDF(testInvoice(`a(b)c\d Заказ`))
	checkPDF(t, doc, "Invoice: 100042")
	for _, want := range []string{"Amount: 1000000.00 RUB", `Order: a\(b\)c\\d ?????`, "Paid: 2026-05-01 17:00:00 MSK"} {
		if !bytes.Contains(doc, []byte(want)) {
			t.Errorf("PDF lacks %q", want)
		}
	}
	if bytes.ContainsFunc(doc[15:], func(r rune) bool { return r > 0x7e }) {
		t.Error("PDF body has non-ASCII bytes")
	}
}

func TestReceiptJPEG(t *testing.T) {
	checkJPEG(t, receiptJPEG(testInvoice("x")))
}
