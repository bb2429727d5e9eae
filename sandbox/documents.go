package sandbox

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"strings"
	"time"
)

// receiptLines is the text of a Pegas receipt document.
func receiptLines(inv pegasInvoice) []string {
	return []string{
		"Pegas-kassa sandbox receipt",
		fmt.Sprintf("Invoice: %d", inv.id),
		"Order: " + inv.orderID,
		"Amount: " + inv.amount.StringFixed(2) + " RUB",
		"Commission: " + inv.commission.StringFixed(2) + " RUB",
		"Paid: " + inv.paidAt.In(moscow).Format(time.DateTime) + " MSK",
		"caddy-kassa sandbox: no money moved.",
	}
}

// receiptPDF is a one-page PDF 1.4 document with the receipt's text.
func receiptPDF(inv pegasInvoice) []byte {
	var text strings.Builder
	text.WriteString("BT\n/F1 16 Tf\n40 250 Td\n")
	for i, line := range receiptLines(inv) {
		switch i {
		case 0:
		case 1:
			text.WriteString("/F1 11 Tf\n0 -28 Td\n")
		default:
			text.WriteString("0 -18 Td\n")
		}
		fmt.Fprintf(&text, "(%s) Tj\n", pdfString(line))
	}
	text.WriteString("ET\n")
	objects := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 420 297] " +
			"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%sendstream", text.Len(), text.String()),
	}
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	offsets := make([]int, len(objects))
	for i, obj := range objects {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, obj)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objects)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF", len(objects)+1, xref)
	return b.Bytes()
}

// pdfString makes s safe inside a PDF literal string: printable ASCII
// only, with \, ( and ) escaped.
func pdfString(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\' || r == '(' || r == ')':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r > 0x7e:
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// glyphs is a 3×5 bitmap font for what a receipt image prints.
var glyphs = map[rune][5]string{
	'0': {"111", "101", "101", "101", "111"},
	'1': {"010", "110", "010", "010", "111"},
	'2': {"111", "001", "111", "100", "111"},
	'3': {"111", "001", "111", "001", "111"},
	'4': {"101", "101", "111", "001", "001"},
	'5': {"111", "100", "111", "001", "111"},
	'6': {"111", "100", "111", "101", "111"},
	'7': {"111", "001", "001", "001", "001"},
	'8': {"111", "101", "111", "101", "111"},
	'9': {"111", "101", "111", "001", "111"},
	'.': {"000", "000", "000", "000", "010"},
	'#': {"101", "111", "101", "111", "101"},
	'R': {"110", "101", "110", "101", "101"},
	'U': {"101", "101", "101", "101", "111"},
	'B': {"110", "101", "110", "101", "110"},
	' ': {"000", "000", "000", "000", "000"},
}

// receiptJPEG is a small JPEG image of the receipt: a green "paid" band, the
// invoice number and the amount.
func receiptJPEG(inv pegasInvoice) []byte {
	const scale = 5
	img := image.NewRGBA(image.Rect(0, 0, 360, 180))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	draw.Draw(img, image.Rect(0, 0, 360, 24), image.NewUniform(color.RGBA{0x15, 0x80, 0x3d, 0xff}), image.Point{}, draw.Src)
	ink := image.NewUniform(color.RGBA{0x1d, 0x23, 0x30, 0xff})
	printText := func(x, y int, s string) {
		for _, r := range s {
			g, ok := glyphs[r]
			if !ok {
				g = glyphs[' ']
			}
			for row, bits := range g {
				for col, bit := range bits {
					if bit == '1' {
						px := image.Rect(x+col*scale, y+row*scale, x+(col+1)*scale, y+(row+1)*scale)
						draw.Draw(img, px, ink, image.Point{}, draw.Src)
					}
				}
			}
			x += 4 * scale
		}
	}
	printText(20, 50, fmt.Sprintf("#%d", inv.id))
	printText(20, 110, inv.amount.StringFixed(2)+" RUB")
	var b bytes.Buffer
	_ = jpeg.Encode(&b, img, &jpeg.Options{Quality: 85})
	return b.Bytes()
}
