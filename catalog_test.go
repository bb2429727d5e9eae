package kassa

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// rub is an amount of rubles, for tests.
func rub(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func TestLoadCatalogFileGood(t *testing.T) {
	products, err := LoadCatalogFile("testdata/catalog/good.json")
	if err != nil {
		t.Fatal(err)
	}
	want := []Product{
		{SKU: "tea-green", Name: "Green tea 100 g", Price: rub("350"), VAT: VAT20},
		{SKU: "tea.black_2", Name: "Чай чёрный, 250 г", Price: rub("99.99")},
		{SKU: "cup", Name: "Cup", Price: rub("120.5"), VAT: VATNone},
		{SKU: "sample", Name: "Free sample", Price: rub("0")},
		{SKU: "SAMOVAR", Name: "Samovar", Price: rub("1000000000")},
	}
	if len(products) != len(want) {
		t.Fatalf("got %d products, want %d", len(products), len(want))
	}
	for i := range want {
		got := products[i]
		if got.SKU != want[i].SKU || got.Name != want[i].Name || !got.Price.Equal(want[i].Price) || got.VAT != want[i].VAT {
			t.Errorf("product %d = %+v, want %+v (file order)", i, got, want[i])
		}
	}
	c, err := NewCatalog(products)
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 5 {
		t.Errorf("Len = %d", c.Len())
	}
	var skus []string
	for _, p := range c.Products() {
		skus = append(skus, p.SKU)
	}
	if wantSKUs := []string{"SAMOVAR", "cup", "sample", "tea-green", "tea.black_2"}; !slices.Equal(skus, wantSKUs) {
		t.Errorf("Products in order %v, want SKU order %v", skus, wantSKUs)
	}
	if got := c.WithKopecks(); !slices.Equal(got, []string{"cup", "tea.black_2"}) {
		t.Errorf("WithKopecks = %v", got)
	}
	p, ok := c.Product("tea-green")
	if !ok || p.Name != "Green tea 100 g" || !p.Price.Equal(rub("350.00")) || p.VAT != VAT20 {
		t.Errorf("Product(tea-green) = %+v, %v", p, ok)
	}
	for _, sku := range []string{"", "TEA-GREEN", "tea-green ", "nope"} {
		t.Run(sku, func(t *testing.T) {
			if _, ok := c.Product(sku); ok {
				t.Errorf("Product(%q) found", sku)
			}
		})
	}
	// Products is a copy: changing it changes nothing in the catalog.
	ps := c.Products()
	ps[0].Price = rub("1")
	if p, _ := c.Product("SAMOVAR"); !p.Price.Equal(rub("1000000000")) {
		t.Error("Products returned the catalog's own slice")
	}
}

func TestLoadCatalogFileErrors(t *testing.T) {
	for file, want := range map[string][]string{
		"unknown-field.json":  {"products[1]", `"cup"`, `unknown field "prise"`},
		"numeric-price.json":  {"products[0]", `"tea-green"`, "JSON number", "quote it"},
		"bad-vat.json":        {"products[0]", `"tea-green"`, `unknown VAT "vat21"`},
		"duplicate-sku.json":  {"products[2]", `"tea-green"`, "duplicate SKU", "products[0]"},
		"bad-sku.json":        {"products[0]", `"tea green"`, "sku"},
		"empty-name.json":     {"products[0]", `"tea-green"`, "name is empty"},
		"long-name.json":      {"products[0]", `"long"`, "longer than 128"},
		"control-name.json":   {"products[0]", `"tea-green"`, "control character"},
		"exponent-price.json": {"products[0]", `"tea-green"`, "not an amount"},
		"negative-price.json": {"products[0]", `"tea-green"`, "not an amount"},
		"missing-price.json":  {"products[0]", `"tea-green"`, `no "price"`},
		"duplicate-key.json":  {"products[0]", `"price" appears twice`},
		"trailing.json":       {"after the JSON value"},
		"unknown-top.json":    {`unknown field "product"`},
		"does-not-exist.json": {"no such file"},
	} {
		t.Run(file, func(t *testing.T) {
			path := filepath.Join("testdata", "catalog", file)
			products, err := LoadCatalogFile(path)
			if err == nil {
				t.Fatalf("loaded %v, want an error", products)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) {
				t.Errorf("error %q does not name the file", msg)
			}
			for _, w := range want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
		})
	}
}

func TestLoadCatalogFileLimits(t *testing.T) {
	ok, err := LoadCatalogFile("testdata/catalog/max-name.json")
	if err != nil || len(ok) != 1 {
		t.Fatalf("a 128-character name: %v", err)
	}
	empty, err := LoadCatalogFile("testdata/catalog/empty.json")
	if err != nil || len(empty) != 0 {
		t.Fatalf("an empty product list: %v, %v", empty, err)
	}

	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	catalogOf := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"products":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"sku":"p%05d","name":"Product %d","price":"1.00"}`, i, i)
		}
		b.WriteString("]}")
		return b.String()
	}
	if products, err := LoadCatalogFile(write("max.json", catalogOf(maxCatalogProducts))); err != nil || len(products) != maxCatalogProducts {
		t.Errorf("%d products: %v", maxCatalogProducts, err)
	}
	path := write("too-many.json", catalogOf(maxCatalogProducts+1))
	if _, err := LoadCatalogFile(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "at most 10000") {
		t.Errorf("too many products: %v", err)
	}
	big := `{"products":[]}` + strings.Repeat(" ", maxCatalogFile)
	path = write("big.json", big)
	if _, err := LoadCatalogFile(path); err == nil || !strings.Contains(err.Error(), "8 MiB") {
		t.Errorf("a file over 8 MiB: %v", err)
	}

	for name, content := range map[string]string{
		"blank":            "  \n",
		"null":             "null",
		"array":            `[{"sku":"a","name":"A","price":"1"}]`,
		"products null":    `{"products":null}`,
		"products object":  `{"products":{}}`,
		"no products":      `{}`,
		"product null":     `{"products":[null]}`,
		"product string":   `{"products":["tea"]}`,
		"sku number":       `{"products":[{"sku":1,"name":"A","price":"1"}]}`,
		"name null":        `{"products":[{"sku":"a","name":null,"price":"1"}]}`,
		"no name":          `{"products":[{"sku":"a","price":"1"}]}`,
		"no sku":           `{"products":[{"name":"A","price":"1"}]}`,
		"price null":       `{"products":[{"sku":"a","name":"A","price":null}]}`,
		"price number 0":   `{"products":[{"sku":"a","name":"A","price":0}]}`,
		"price negative":   `{"products":[{"sku":"a","name":"A","price":-1}]}`,
		"price 3 decimals": `{"products":[{"sku":"a","name":"A","price":"1.001"}]}`,
		"price too large":  `{"products":[{"sku":"a","name":"A","price":"1000000000.01"}]}`,
		"price spaced":     `{"products":[{"sku":"a","name":"A","price":" 1"}]}`,
		"vat number":       `{"products":[{"sku":"a","name":"A","price":"1","vat":3}]}`,
		"vat empty":        `{"products":[{"sku":"a","name":"A","price":"1","vat":""}]}`,
		"blank name":       `{"products":[{"sku":"a","name":"   ","price":"1"}]}`,
		"long sku":         `{"products":[{"sku":"` + strings.Repeat("a", 65) + `","name":"A","price":"1"}]}`,
		"sku slash":        `{"products":[{"sku":"a/b","name":"A","price":"1"}]}`,
		"sku html":         `{"products":[{"sku":"<b>","name":"A","price":"1"}]}`,
		"invalid utf8":     "{\"products\":[{\"sku\":\"a\",\"name\":\"\xff\",\"price\":\"1\"}]}",
		"syntax":           `{"products":[{"sku":"a",}]}`,
		"truncated":        `{"products":[{"sku":"a"`,
		"two products":     `{"products":[],"products":[]}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := write("c.json", content)
			products, err := LoadCatalogFile(path)
			if err == nil {
				t.Errorf("%s: loaded %+v, want an error", name, products)
				return
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("%s: error %q does not name the file", name, err)
			}
			if strings.ContainsAny(err.Error(), "<>") || !utf8.ValidString(err.Error()) {
				t.Errorf("%s: error %q repeats unsafe input", name, err)
			}
		})
	}
}

func TestNewCatalog(t *testing.T) {
	good := []Product{
		{SKU: "b", Name: "B", Price: rub("2")},
		{SKU: "a", Name: "A", Price: rub("1.50"), VAT: VAT10},
	}
	c, err := NewCatalog(good)
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 2 || c.Products()[0].SKU != "a" {
		t.Errorf("catalog %+v", c.Products())
	}
	good[0].Price = rub("999") // the catalog holds its own copy
	if p, _ := c.Product("b"); !p.Price.Equal(rub("2")) {
		t.Error("NewCatalog kept the caller's slice")
	}

	empty, err := NewCatalog(nil)
	if err != nil || empty.Len() != 0 || len(empty.Products()) != 0 || len(empty.WithKopecks()) != 0 {
		t.Errorf("empty catalog: %v", err)
	}
	var none *Catalog
	if _, ok := none.Product("a"); ok || none.Len() != 0 || none.Products() != nil || none.WithKopecks() != nil {
		t.Error("a nil catalog is not empty")
	}

	for name, tc := range map[string]struct {
		products []Product
		want     string
	}{
		"duplicate":     {[]Product{{SKU: "a", Name: "A", Price: rub("1")}, {SKU: "a", Name: "A2", Price: rub("2")}}, `duplicate SKU "a": products 0 and 1`},
		"bad sku":       {[]Product{{SKU: "a b", Name: "A", Price: rub("1")}}, `product 0 (sku "a b")`},
		"empty sku":     {[]Product{{SKU: "", Name: "A", Price: rub("1")}}, "product 0"},
		"empty name":    {[]Product{{SKU: "a", Price: rub("1")}}, "name is empty"},
		"long name":     {[]Product{{SKU: "a", Name: strings.Repeat("x", 129), Price: rub("1")}}, "longer than 128"},
		"negative":      {[]Product{{SKU: "a", Name: "A", Price: rub("-1")}}, "negative"},
		"3 decimals":    {[]Product{{SKU: "a", Name: "A", Price: rub("1.001")}}, "two decimals"},
		"too expensive": {[]Product{{SKU: "a", Name: "A", Price: rub("1000000000.01")}}, "more than"},
		"bad vat":       {[]Product{{SKU: "a", Name: "A", Price: rub("1"), VAT: 13}}, "VAT"},
		"control":       {[]Product{{SKU: "a", Name: "A\x1b[31m", Price: rub("1")}}, "control"},
		"second bad":    {[]Product{{SKU: "a", Name: "A", Price: rub("1")}, {SKU: "b", Name: "", Price: rub("1")}}, `product 1 (sku "b")`},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewCatalog(tc.products); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: %v, want an error saying %q", name, err, tc.want)
			}
		})
	}
	many := make([]Product, maxCatalogProducts+1)
	for i := range many {
		many[i] = Product{SKU: fmt.Sprint(i), Name: "P", Price: rub("1")}
	}
	if _, err := NewCatalog(many); err == nil {
		t.Error("NewCatalog took more than 10000 products")
	}
}

// TestMergeCatalog: a SKU may appear once across the catalog file and the
// inline products; a SKU in both is refused with a message naming the
// SKU and the file and saying to define it once.
func TestMergeCatalog(t *testing.T) {
	const file = "testdata/catalog/good.json"
	fromFile, err := LoadCatalogFile(file)
	if err != nil {
		t.Fatal(err)
	}
	gift := Product{SKU: "gift-box", Name: "Gift box", Price: rub("500")}
	got, err := MergeCatalog(file, []Product{gift})
	if err != nil || !reflect.DeepEqual(got, append(slices.Clone(fromFile), gift)) {
		t.Errorf("file and a new inline SKU: %v, %v; want the file's products then the inline one", got, err)
	}
	if got, err := MergeCatalog("", []Product{gift}); err != nil || !reflect.DeepEqual(got, []Product{gift}) {
		t.Errorf("inline only: %v, %v", got, err)
	}
	if got, err := MergeCatalog(file, nil); err != nil || !reflect.DeepEqual(got, fromFile) {
		t.Errorf("file only: %v, %v", got, err)
	}

	for name, tc := range map[string]struct {
		inline []Product
		want   []string
	}{
		"in file and inline": {
			[]Product{gift, {SKU: "tea-green", Name: "Green tea", Price: rub("350")}},
			[]string{`SKU "tea-green"`, "catalog file " + file, `"product" lines`, `"products" in JSON`, "define it in one place"},
		},
		"twice inline": {
			[]Product{gift, {SKU: "gift-box", Name: "Gift box 2", Price: rub("600")}},
			[]string{`SKU "gift-box" is twice in the inline products`, "products 0 and 1", "define it once"},
		},
		"invalid inline": {
			[]Product{gift, {SKU: "b", Name: "", Price: rub("1")}},
			[]string{`inline product 1 (sku "b")`, "name"},
		},
	} {
		_, err := MergeCatalog(file, tc.inline)
		for _, want := range tc.want {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v, want an error saying %q", name, err, want)
			}
		}
	}
	if _, err := MergeCatalog("testdata/catalog/missing.json", []Product{gift}); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("a missing file: %v", err)
	}
}

func TestProductJSON(t *testing.T) {
	p := Product{SKU: "tea-green", Name: "Green tea <100 g>", Price: rub("350"), VAT: VAT20}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"sku":"tea-green","name":"Green tea \u003c100 g\u003e","price":"350.00","vat":"vat20"}`; string(b) != want {
		t.Errorf("Marshal = %s, want %s", b, want)
	}
	var back Product
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back.Price.String(), p.Price.String()) || back.SKU != p.SKU || back.Name != p.Name || back.VAT != p.VAT {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	b, _ = json.Marshal(Product{SKU: "a", Name: "A", Price: rub("0.5")})
	if string(b) != `{"sku":"a","name":"A","price":"0.50"}` {
		t.Errorf("Marshal without VAT = %s", b)
	}
	// The app's inline products are read as strictly as the file.
	var app struct{ Products []Product }
	for _, bad := range []string{
		`{"Products":[{"sku":"a","name":"A","price":350}]}`,
		`{"Products":[{"sku":"a","name":"A","price":"350","prise":"0"}]}`,
		`{"Products":[{"sku":"a","name":"A","price":"3.5e2"}]}`,
	} {
		t.Run(bad, func(t *testing.T) {
			if err := json.Unmarshal([]byte(bad), &app); err == nil {
				t.Errorf("Unmarshal(%s) accepted", bad)
			}
		})
	}
}

func TestCatalogConcurrentUse(t *testing.T) {
	c, err := NewCatalog([]Product{{SKU: "a", Name: "A", Price: rub("1.10")}, {SKU: "b", Name: "B", Price: rub("2")}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if _, total, err := c.Price([]CartLine{{"a", 2}, {"b", 1}}); err != nil || !total.Equal(rub("4.20")) {
					t.Errorf("Price: %s, %v", total, err)
					return
				}
				_ = c.Products()
				_ = c.WithKopecks()
			}
		})
	}
	wg.Wait()
}

func FuzzLoadCatalog(f *testing.F) {
	for _, name := range []string{"good.json", "unknown-field.json", "numeric-price.json", "duplicate-sku.json", "long-name.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "catalog", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"products":[{"sku":"a","name":"A","price":"1","vat":null}]}`))
	f.Add([]byte(`{"products":[{"sku":"a","name":"A","price":"1"}]} x`))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "catalog.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		products, err := LoadCatalogFile(path)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		c, err := NewCatalog(products)
		if err != nil {
			t.Fatalf("a loaded catalog does not build: %v", err)
		}
		for _, p := range products {
			if !validSKU(p.SKU) || p.Price.IsNegative() || p.Price.GreaterThan(maxAmount) || !p.Price.Equal(p.Price.Round(2)) {
				t.Fatalf("loaded an invalid product %+v", p)
			}
			if got, ok := c.Product(p.SKU); !ok || !got.Price.Equal(p.Price) {
				t.Fatalf("Product(%q) = %+v, %v", p.SKU, got, ok)
			}
		}
	})
}
