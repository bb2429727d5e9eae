package kassa

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// Limits of a catalog.
const (
	// maxSKU bounds a SKU's length in bytes.
	maxSKU = 64
	// maxCatalogProducts bounds the products of a catalog, file and inline
	// products together.
	maxCatalogProducts = 10000
	// maxCatalogFile bounds a catalog file's size.
	maxCatalogFile = 8 << 20
)

// Product is a thing the shop sells: its SKU, display name, price, and VAT
// rate (zero = the receipt provider's default). In JSON (the catalog file
// and the app's inline products) it is
// {"sku":"tea-green","name":"Green tea 100 g","price":"350.00","vat":"vat20"},
// read strictly: an unknown or repeated field is an error, and the price
// must be a string in plain decimal notation, so that a typo can never make
// a product free or a hundred times dearer.
type Product struct {
	SKU   string          `json:"sku"`
	Name  string          `json:"name"`
	Price decimal.Decimal `json:"price"`
	VAT   VAT             `json:"vat,omitempty"`
}

// Validate checks a product: a SKU of 1 to 64 characters from
// [A-Za-z0-9._-]; a name of 1 to 128 characters, not blank, valid UTF-8,
// without control characters; a price from 0 to maxAmount with at most two
// decimals; a known VAT rate or zero.
func (p Product) Validate() error {
	if !validSKU(p.SKU) {
		return fmt.Errorf("sku %s: want 1 to %d characters of A-Z, a-z, 0-9, dot, underscore and dash", quoteInput(p.SKU), maxSKU)
	}
	if err := checkItemName(p.Name); err != nil {
		return err
	}
	switch {
	case p.Price.IsNegative():
		return fmt.Errorf("price %s is negative", p.Price.String())
	case !p.Price.Equal(p.Price.Round(2)):
		return fmt.Errorf("price %s has more than two decimals", p.Price.String())
	case p.Price.GreaterThan(maxAmount):
		return fmt.Errorf("price %s is more than %s", p.Price.String(), FormatAmount(maxAmount))
	}
	if p.VAT != 0 && !p.VAT.Valid() {
		return fmt.Errorf("unknown VAT rate %d", int(p.VAT))
	}
	return nil
}

// MarshalJSON writes the product as the catalog file has it, with the price
// as a string with two decimals.
func (p Product) MarshalJSON() ([]byte, error) {
	type product struct {
		SKU   string `json:"sku"`
		Name  string `json:"name"`
		Price string `json:"price"`
		VAT   VAT    `json:"vat,omitempty"`
	}
	return json.Marshal(product{p.SKU, p.Name, FormatAmount(p.Price), p.VAT})
}

// UnmarshalJSON reads a product strictly: only the fields sku, name, price
// and vat, each at most once; sku, name and price required strings; price
// in plain decimal notation (a JSON number is refused: quote it); vat a VAT
// rate's name, or null or absent for the default. The rest of the rules are
// Validate's.
func (p *Product) UnmarshalJSON(data []byte) error {
	var sku string
	parsed, err := decodeProduct(data, &sku)
	if err != nil && sku != "" {
		return fmt.Errorf("product %s: %v", quoteInput(sku), err)
	}
	if err != nil {
		return fmt.Errorf("product: %v", err)
	}
	*p = parsed
	return nil
}

// decodeProduct reads a product's JSON. It sets *sku as soon as the SKU is
// known, so that an error about another field can name the product.
func decodeProduct(data []byte, sku *string) (Product, error) {
	var rawSKU, rawName, rawPrice, rawVAT json.RawMessage
	var unknown string // the first unknown field, reported once the SKU is known
	err := decodeOneJSON(data, func(dec *json.Decoder) error {
		return readJSONObject(dec, func(key string, value json.RawMessage) error {
			switch key {
			case "sku":
				rawSKU = value
			case "name":
				rawName = value
			case "price":
				rawPrice = value
			case "vat":
				rawVAT = value
			default:
				if unknown == "" {
					unknown = key
				}
			}
			return nil
		})
	})
	if errors.Is(err, errNotObject) {
		return Product{}, errors.New("a product must be a JSON object")
	}
	if err != nil {
		return Product{}, err
	}
	var p Product
	unknownErr := func() error {
		return fmt.Errorf("unknown field %s (want sku, name, price and vat)", quoteInput(unknown))
	}
	switch {
	case rawSKU == nil && unknown != "":
		return p, unknownErr()
	case rawSKU == nil:
		return p, errors.New(`no "sku"`)
	case !jsonString(rawSKU, &p.SKU):
		return p, errors.New(`"sku" must be a string`)
	}
	*sku = p.SKU
	if unknown != "" {
		return p, unknownErr()
	}
	switch {
	case rawName == nil:
		return p, errors.New(`no "name"`)
	case !jsonString(rawName, &p.Name):
		return p, errors.New(`"name" must be a string`)
	}
	var price string
	switch {
	case rawPrice == nil:
		return p, errors.New(`no "price"`)
	case isJSONNumber(rawPrice):
		return p, fmt.Errorf(`"price" is the JSON number %s: quote it, as a string in plain notation like "350.00"`, quoteInput(string(rawPrice)))
	case !jsonString(rawPrice, &price):
		return p, errors.New(`"price" must be a string in plain notation, like "350.00"`)
	}
	amount, err := ParseAmount("price", price)
	if err != nil {
		return p, errors.New(err.Error())
	}
	p.Price = amount
	if rawVAT != nil && string(rawVAT) != "null" {
		var name string
		if !jsonString(rawVAT, &name) {
			return p, errors.New(`"vat" must be a string naming a VAT rate`)
		}
		if p.VAT, err = ParseVAT(name); err != nil {
			return p, err
		}
	}
	return p, nil
}

// Catalog is the set of products, by SKU. It is immutable once built and
// safe for concurrent use. A nil *Catalog is an empty catalog.
type Catalog struct {
	bySKU    map[string]Product
	products []Product // in SKU order
}

// NewCatalog builds a catalog, validating each product (Product.Validate).
// A duplicate SKU is an error naming it; an empty list gives an empty
// catalog (a shop that only takes buyer-chosen amounts). Errors name the
// product by its index in products and its SKU.
func NewCatalog(products []Product) (*Catalog, error) {
	if len(products) > maxCatalogProducts {
		return nil, fmt.Errorf("%d products: a catalog holds at most %d", len(products), maxCatalogProducts)
	}
	c := &Catalog{bySKU: make(map[string]Product, len(products)), products: slices.Clone(products)}
	first := make(map[string]int, len(products))
	for i, p := range products {
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("product %d (sku %s): %v", i, quoteInput(p.SKU), err)
		}
		if j, dup := first[p.SKU]; dup {
			return nil, fmt.Errorf("duplicate SKU %q: products %d and %d", p.SKU, j, i)
		}
		first[p.SKU] = i
		c.bySKU[p.SKU] = p
	}
	slices.SortFunc(c.products, func(a, b Product) int { return strings.Compare(a.SKU, b.SKU) })
	return c, nil
}

// inlineProducts names the inline products in an error: they are written
// one way in a Caddyfile and another in JSON.
const inlineProducts = `inline products ("product" lines in the Caddyfile, "products" in JSON)`

// MergeCatalog returns the products of the catalog file at path (none when
// path is empty) followed by the inline products. A SKU may appear once
// across the two: a SKU in both, or twice inline, is an error that names
// it, and the file, and says to define it once. An invalid inline product
// is an error naming its index among the inline products.
func MergeCatalog(path string, inline []Product) ([]Product, error) {
	var products []Product
	if path != "" {
		fromFile, err := LoadCatalogFile(path)
		if err != nil {
			return nil, err
		}
		products = fromFile
	}
	inFile := make(map[string]bool, len(products))
	for _, p := range products {
		inFile[p.SKU] = true
	}
	first := make(map[string]int, len(inline))
	for i, p := range inline {
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("catalog: inline product %d (sku %s): %v", i, quoteInput(p.SKU), err)
		}
		if inFile[p.SKU] {
			return nil, fmt.Errorf("catalog: SKU %q is both in the catalog file %s and in the %s: a SKU may appear once, define it in one place",
				p.SKU, path, inlineProducts)
		}
		if j, dup := first[p.SKU]; dup {
			return nil, fmt.Errorf("catalog: SKU %q is twice in the %s (products %d and %d): define it once", p.SKU, inlineProducts, j, i)
		}
		first[p.SKU] = i
	}
	return append(products, inline...), nil
}

// LoadCatalogFile reads a catalog file:
// {"products":[{"sku":"tea-green","name":"Green tea 100 g","price":"350.00","vat":"vat20"}]}.
// The file must be valid UTF-8, at most 8 MiB, one JSON object with only a
// "products" array of at most 10000 products, each valid (see Product) and
// with a SKU of its own. The products come back in file order. Every error
// names the file and, for a product, its index and SKU.
func LoadCatalogFile(path string) ([]Product, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %v", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCatalogFile+1))
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %v", path, err)
	}
	products, err := parseCatalog(data)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %v", path, err)
	}
	return products, nil
}

// parseCatalog reads a catalog file's content.
func parseCatalog(data []byte) ([]Product, error) {
	if len(data) > maxCatalogFile {
		return nil, fmt.Errorf("larger than %d MiB", maxCatalogFile>>20)
	}
	if !utf8.Valid(data) {
		return nil, errors.New("not valid UTF-8")
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New(`empty: want {"products":[...]}`)
	}
	var raws []json.RawMessage
	found := false
	err := decodeOneJSON(data, func(dec *json.Decoder) error {
		return readJSONObject(dec, func(key string, value json.RawMessage) error {
			if key != "products" {
				return fmt.Errorf("unknown field %s (want only \"products\")", quoteInput(key))
			}
			found = true
			if len(value) == 0 || value[0] != '[' {
				return errors.New(`"products" must be an array`)
			}
			return json.Unmarshal(value, &raws)
		})
	})
	if errors.Is(err, errNotObject) {
		return nil, errors.New(`want a JSON object: {"products":[...]}`)
	}
	if err != nil {
		return nil, jsonSyntaxText(err)
	}
	if !found {
		return nil, errors.New(`no "products" array`)
	}
	if len(raws) > maxCatalogProducts {
		return nil, fmt.Errorf("%d products: a catalog holds at most %d", len(raws), maxCatalogProducts)
	}
	products := make([]Product, 0, len(raws))
	first := make(map[string]int, len(raws))
	for i, raw := range raws {
		var sku string
		p, err := decodeProduct(raw, &sku)
		if err == nil {
			err = p.Validate()
		}
		if err != nil {
			if sku == "" {
				return nil, fmt.Errorf("products[%d]: %v", i, err)
			}
			return nil, fmt.Errorf("products[%d] (sku %s): %v", i, quoteInput(sku), err)
		}
		if j, dup := first[p.SKU]; dup {
			return nil, fmt.Errorf("products[%d] (sku %q): duplicate SKU, also products[%d]", i, p.SKU, j)
		}
		first[p.SKU] = i
		products = append(products, p)
	}
	return products, nil
}

// Product returns the product with this SKU.
func (c *Catalog) Product(sku string) (Product, bool) {
	if c == nil {
		return Product{}, false
	}
	p, ok := c.bySKU[sku]
	return p, ok
}

// Products returns every product, in SKU order (byte order), whatever order
// they were given in: a catalog merged from a file and inline products
// lists the same way however it was assembled. The slice is the caller's.
func (c *Catalog) Products() []Product {
	if c == nil {
		return nil
	}
	return slices.Clone(c.products)
}

// Len is the number of products.
func (c *Catalog) Len() int {
	if c == nil {
		return 0
	}
	return len(c.products)
}

// WithKopecks returns, in SKU order, the SKUs whose price has kopecks: the
// app warns about them when a CrystalPAY account (whole rubles only)
// exists.
func (c *Catalog) WithKopecks() []string {
	if c == nil {
		return nil
	}
	var skus []string
	for _, p := range c.products {
		if !p.Price.Equal(p.Price.Truncate(0)) {
			skus = append(skus, p.SKU)
		}
	}
	return skus
}

// validSKU reports whether s is 1 to 64 characters of [A-Za-z0-9._-].
func validSKU(s string) bool { return validIdent(s, maxSKU, "") }

// validIdent reports whether s is 1 to max ASCII letters, digits, dots,
// underscores, dashes or bytes of also: an identifier (a SKU, an
// upstream's order id, a payout id) that a URL, a log line or the admin
// API may carry as it is.
func validIdent(s string, max int, also string) bool {
	if len(s) < 1 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' ||
			strings.IndexByte(also, c) >= 0) {
			return false
		}
	}
	return true
}

// checkItemName checks a product's or an item's name as the receipt will
// print it: valid UTF-8, 1 to 128 characters, not only spaces, no control
// characters.
func checkItemName(name string) error {
	switch {
	case !utf8.ValidString(name):
		return errors.New("name is not valid UTF-8")
	case strings.TrimSpace(name) == "":
		return errors.New("name is empty")
	case utf8.RuneCountInString(name) > maxPositionName:
		return fmt.Errorf("name is longer than %d characters", maxPositionName)
	case strings.ContainsFunc(name, unicode.IsControl):
		return errors.New("name contains a control character")
	}
	return nil
}
