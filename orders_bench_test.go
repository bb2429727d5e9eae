package kassa

import "testing"

// BenchmarkOrderDecode reads a full order record, as every status poll and
// every reconciler step does.
func BenchmarkOrderDecode(b *testing.B) {
	rec, err := encodeOrder(fullOrder())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		if _, err := decodeOrder(rec); err != nil {
			b.Fatal(err)
		}
	}
}
