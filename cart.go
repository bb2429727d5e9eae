package kassa

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// The codes of the 400 RequestErrors that reading and pricing a cart
// return. Clients may act on them; they never change meaning.
//
//   - bad_request: the body is not what a checkout looks like: malformed
//     JSON, not one object, data after it, a field of the wrong type.
//   - bad_amount: an amount that is not plain decimal notation with at most
//     two decimals, or above the limit (ParseAmount).
//   - bad_quantity: a quantity that is not a whole number from 1 to
//     1000000, written in plain digits.
//   - unknown_sku: a SKU that is not in the catalog, or not a SKU at all.
//   - empty_cart: no items.
//   - too_many_items: more than 100 distinct products in a cart, more than
//     1000 item lines in a request, or more than 100 upstream items.
//   - amount_too_large: a total above a billion rubles.
//   - bad_email, bad_phone: a buyer's contact that is not an email address
//     or a phone number (ValidateContacts).
//   - bad_items: the items a trusted upstream supplied are malformed
//     (ParseItems).
const (
	codeBadRequest     = "bad_request"
	codeBadAmount      = "bad_amount"
	codeBadQuantity    = "bad_quantity"
	codeUnknownSKU     = "unknown_sku"
	codeEmptyCart      = "empty_cart"
	codeTooManyItems   = "too_many_items"
	codeAmountTooLarge = "amount_too_large"
	codeBadEmail       = "bad_email"
	codeBadPhone       = "bad_phone"
	codeBadItems       = "bad_items"
)

// Limits of a cart.
const (
	// maxCartLines bounds the distinct products of a cart, and the items a
	// trusted upstream may supply.
	maxCartLines = 100
	// maxRequestLines bounds the item lines of one request before merging,
	// so that a hostile body cannot make pricing do unbounded work.
	maxRequestLines = 1000
	// maxQuantityDigits bounds a quantity as written.
	maxQuantityDigits = 7
)

// CartLine is a SKU and a quantity as the buyer asked for them.
type CartLine struct {
	SKU string
	Qty int64
}

// CheckoutRequest is a buyer's checkout: cart lines, contacts, and (with
// amount_range only) the amount they chose. Email and Phone are already
// cleaned by ValidateContacts.
type CheckoutRequest struct {
	Items []CartLine
	Email string
	Phone string
	// Amount is raw: the handler parses it, with ParseAmount, only when
	// amount_range allows a buyer-chosen amount.
	Amount string
}

// parseFormBody reads a form-encoded body.
func parseFormBody(body []byte) (url.Values, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badRequest("bad_request", "", "the form is not valid application/x-www-form-urlencoded")
	}
	return form, nil
}

// ParseCheckoutForm reads a form post: repeated item=SKU or item=SKU:QTY;
// optional email, phone, amount. Unknown fields are ignored (a form may
// carry a submit button's name, or a price field a tamperer added: it
// changes nothing). A SKU is taken exactly as sent, nothing trimmed; a
// missing QTY is 1. Email, phone and amount may each appear once.
func ParseCheckoutForm(form url.Values) (CheckoutRequest, error) {
	var req CheckoutRequest
	values := form["item"]
	if len(values) > maxRequestLines {
		return req, badRequest(codeTooManyItems, "items", "more than %d item lines", maxRequestLines)
	}
	for _, v := range values {
		sku, qty, hasQty := strings.Cut(v, ":")
		line := CartLine{SKU: sku, Qty: 1}
		if !validSKU(sku) {
			return CheckoutRequest{}, unknownSKU(sku)
		}
		if hasQty {
			n, err := parseQuantity(qty)
			if err != nil {
				return CheckoutRequest{}, err
			}
			line.Qty = n
		}
		req.Items = append(req.Items, line)
	}
	single := func(key, code string) (string, error) {
		switch vs := form[key]; len(vs) {
		case 0:
			return "", nil
		case 1:
			return vs[0], nil
		default:
			return "", badRequest(code, key, "%s is given %d times", key, len(vs))
		}
	}
	var err error
	if req.Email, err = single("email", codeBadEmail); err != nil {
		return CheckoutRequest{}, err
	}
	if req.Phone, err = single("phone", codeBadPhone); err != nil {
		return CheckoutRequest{}, err
	}
	if req.Amount, err = single("amount", codeBadAmount); err != nil {
		return CheckoutRequest{}, err
	}
	if req.Email, req.Phone, err = ValidateContacts(req.Email, req.Phone); err != nil {
		return CheckoutRequest{}, err
	}
	return req, nil
}

// ParseCheckoutJSON reads
// {"items":[{"sku":"tea-green","qty":2}],"email":"...","phone":"...","amount":"..."}.
// Unknown fields are ignored (a "price" in an item changes nothing); a
// missing qty is 1. Wrong types are errors: a qty that is not a JSON integer
// in plain digits ("2", 2.5, 2.0, 1e3, -1) is bad_quantity; items that are
// not an array, an item that is not an object or has no string sku, and a
// field that appears twice are bad_request; an email, phone or amount that
// is not a string (null counts as absent) is bad_email, bad_phone or
// bad_amount. The body must be valid UTF-8 and one JSON object with nothing
// after it.
func ParseCheckoutJSON(body []byte) (CheckoutRequest, error) {
	var req CheckoutRequest
	if len(bytes.TrimSpace(body)) == 0 {
		return req, badRequest(codeBadRequest, "", "the request body is empty")
	}
	if !utf8.Valid(body) {
		return req, badRequest(codeBadRequest, "", "the request body is not valid UTF-8")
	}
	err := decodeOneJSON(body, func(dec *json.Decoder) error {
		return readJSONObject(dec, func(key string, value json.RawMessage) error {
			switch key {
			case "items":
				items, err := parseCartLines(value)
				req.Items = items
				return err
			case "email":
				return checkoutString(value, &req.Email, codeBadEmail, key)
			case "phone":
				return checkoutString(value, &req.Phone, codeBadPhone, key)
			case "amount":
				if isJSONNumber(value) {
					return badRequest(codeBadAmount, key, `amount must be a string, like "500.00"`)
				}
				return checkoutString(value, &req.Amount, codeBadAmount, key)
			}
			return nil
		})
	})
	if err != nil {
		return CheckoutRequest{}, jsonRequestError(err, codeBadRequest, "")
	}
	if req.Email, req.Phone, err = ValidateContacts(req.Email, req.Phone); err != nil {
		return CheckoutRequest{}, err
	}
	return req, nil
}

// parseCartLines reads the items array of a checkout.
func parseCartLines(raw json.RawMessage) ([]CartLine, error) {
	if len(raw) == 0 || raw[0] != '[' {
		return nil, badRequest(codeBadRequest, "items", `items must be an array, like [{"sku":"tea-green","qty":2}]`)
	}
	var lines []CartLine
	err := decodeOneJSON(raw, func(dec *json.Decoder) error {
		if _, err := dec.Token(); err != nil { // the opening bracket
			return err
		}
		for i := 0; dec.More(); i++ {
			if i == maxRequestLines {
				return badRequest(codeTooManyItems, "items", "more than %d item lines", maxRequestLines)
			}
			line := CartLine{Qty: 1}
			var hasSKU bool
			err := readJSONObject(dec, func(key string, value json.RawMessage) error {
				switch key {
				case "sku":
					if !jsonString(value, &line.SKU) {
						return badRequest(codeBadRequest, "items", "items[%d].sku must be a string", i)
					}
					hasSKU = true
				case "qty":
					if !allDigits(string(value)) {
						return badRequest(codeBadQuantity, "items",
							"items[%d].qty must be a whole number from 1 to %d, written as a JSON number like 2", i, maxQuantity)
					}
					n, err := parseQuantity(string(value))
					if err != nil {
						return err
					}
					line.Qty = n
				}
				return nil
			})
			if errors.Is(err, errNotObject) {
				return badRequest(codeBadRequest, "items", `items[%d] must be an object, like {"sku":"tea-green","qty":2}`, i)
			}
			if err != nil {
				return err
			}
			if !hasSKU {
				return badRequest(codeBadRequest, "items", "items[%d] has no sku", i)
			}
			if !validSKU(line.SKU) {
				return unknownSKU(line.SKU)
			}
			lines = append(lines, line)
		}
		_, err := dec.Token() // the closing bracket
		return err
	})
	return lines, err
}

// checkoutString reads a checkout's string field; null is absent.
func checkoutString(raw json.RawMessage, s *string, code, field string) error {
	if string(raw) == "null" || jsonString(raw, s) {
		return nil
	}
	return badRequest(code, field, "%s must be a string", field)
}

// jsonRequestError turns a JSON decoding error into a RequestError with the
// given code; a RequestError passes unchanged. encoding/json's own messages
// repeat input characters, so only a position is given.
func jsonRequestError(err error, code, field string) error {
	var re *RequestError
	var syn *json.SyntaxError
	var dup *duplicateFieldError
	switch {
	case errors.As(err, &re):
		return re
	case errors.Is(err, errNotObject):
		return badRequest(code, field, "want a JSON object")
	case errors.Is(err, errTrailingData):
		return badRequest(code, field, "there is data after the JSON value")
	case errors.As(err, &dup):
		return badRequest(code, field, "%v", dup)
	case errors.As(err, &syn):
		return badRequest(code, field, "malformed JSON at byte %d", syn.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return badRequest(code, field, "malformed JSON: it ends too soon")
	}
	return badRequest(code, field, "malformed JSON")
}

// parseQuantity reads a quantity written as plain digits (no sign, spaces
// or decimals, at most 7 digits) and checks it is from 1 to maxQuantity.
func parseQuantity(s string) (int64, error) {
	if len(s) == 0 || len(s) > maxQuantityDigits || !allDigits(s) {
		return 0, badRequest(codeBadQuantity, "items", "quantity %s is not a whole number from 1 to %d", quoteInput(s), maxQuantity)
	}
	n, _ := strconv.ParseInt(s, 10, 64) // at most 7 digits: cannot fail
	if n < 1 || n > maxQuantity {
		return 0, badRequest(codeBadQuantity, "items", "quantity %d is not from 1 to %d", n, maxQuantity)
	}
	return n, nil
}

// unknownSKU is the error for a SKU not in the catalog, quoted safely.
func unknownSKU(sku string) error {
	return badRequest(codeUnknownSKU, "items", "unknown product %s", quoteInput(sku))
}

// Price prices cart lines from the catalog only: whatever else a request
// carried, names, prices and VAT are the catalog's. Repeated SKUs are
// merged into one item, in the order each SKU first appears. It refuses an
// empty cart (empty_cart), a SKU that is not in the catalog (unknown_sku),
// a quantity, or a merged quantity, outside 1..1000000 (bad_quantity), more
// than 100 distinct products or 1000 lines (too_many_items), and a total
// above a billion rubles (amount_too_large); each is a 400 RequestError with
// Field "items" and a message that quotes input safely. It returns the
// items and their exact total, which may be zero if every product is free.
func (c *Catalog) Price(lines []CartLine) ([]OrderItem, decimal.Decimal, error) {
	switch {
	case len(lines) == 0:
		return nil, decimal.Zero, badRequest(codeEmptyCart, "items", "the cart is empty")
	case len(lines) > maxRequestLines:
		return nil, decimal.Zero, badRequest(codeTooManyItems, "items", "more than %d item lines", maxRequestLines)
	}
	var items []OrderItem
	index := make(map[string]int, len(lines))
	for _, line := range lines {
		if line.Qty < 1 || line.Qty > maxQuantity {
			return nil, decimal.Zero, badRequest(codeBadQuantity, "items", "quantity %d of %s is not from 1 to %d",
				line.Qty, quoteInput(line.SKU), maxQuantity)
		}
		if i, ok := index[line.SKU]; ok {
			if items[i].Qty += line.Qty; items[i].Qty > maxQuantity {
				return nil, decimal.Zero, badRequest(codeBadQuantity, "items", "quantity of %s adds up to more than %d",
					quoteInput(line.SKU), maxQuantity)
			}
			continue
		}
		p, ok := c.Product(line.SKU)
		if !ok {
			return nil, decimal.Zero, unknownSKU(line.SKU)
		}
		if len(items) == maxCartLines {
			return nil, decimal.Zero, badRequest(codeTooManyItems, "items", "more than %d different products", maxCartLines)
		}
		index[line.SKU] = len(items)
		items = append(items, OrderItem{SKU: p.SKU, Name: p.Name, Qty: line.Qty, Price: p.Price, VAT: p.VAT})
	}
	total := itemsTotal(items)
	if total.GreaterThan(maxAmount) {
		return nil, decimal.Zero, badRequest(codeAmountTooLarge, "items", "the total %s is more than %s",
			FormatAmount(total), FormatAmount(maxAmount))
	}
	return items, total, nil
}

// itemsTotal is the sum of quantity × price, exact.
func itemsTotal(items []OrderItem) decimal.Decimal {
	total := decimal.Zero
	for _, it := range items {
		total = total.Add(it.Price.Mul(decimal.NewFromInt(it.Qty)))
	}
	return total
}

// ParseItems reads the items a trusted upstream supplies for a proxied
// order: a JSON array of 1 to 100 {"name","qty","price","vat"}: name 1–128
// characters without control characters or bidi controls; qty a JSON integer
// from 1 to 1000000 in plain digits; price a string in plain notation
// (ParseAmount) or a JSON number written the same way (350, 350.5, 350.00:
// no exponent, sign or third decimal); vat optional, a VAT rate's name (null
// or absent: the default). The upstream is trusted but still validated:
// name, qty and price are required, and an unknown field is an error, so
// that a typo ("prise", "vta") cannot silently change a receipt. Errors are
// 400 RequestErrors with code bad_items (amount_too_large for a total above
// a billion rubles) and Field "items". Returns the items and their exact
// total.
func ParseItems(raw string) ([]OrderItem, decimal.Decimal, error) {
	fail := func(format string, args ...any) ([]OrderItem, decimal.Decimal, error) {
		return nil, decimal.Zero, badRequest(codeBadItems, "items", "items: "+format, args...)
	}
	data := []byte(raw)
	switch {
	case len(strings.TrimSpace(raw)) == 0:
		return fail("empty")
	case !utf8.Valid(data):
		return fail("not valid UTF-8")
	}
	var items []OrderItem
	err := decodeOneJSON(data, func(dec *json.Decoder) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return badRequest(codeBadItems, "items", `items: want a JSON array, like [{"name":"Tea","qty":1,"price":"350.00"}]`)
		}
		for i := 0; dec.More(); i++ {
			if i == maxCartLines {
				return badRequest(codeBadItems, "items", "items: more than %d", maxCartLines)
			}
			item, err := readUpstreamItem(dec, i)
			if err != nil {
				return err
			}
			items = append(items, item)
		}
		_, err = dec.Token() // the closing bracket
		return err
	})
	if err != nil {
		return nil, decimal.Zero, jsonRequestError(err, codeBadItems, "items")
	}
	if len(items) == 0 {
		return fail("the array is empty")
	}
	total := itemsTotal(items)
	if total.GreaterThan(maxAmount) {
		return nil, decimal.Zero, badRequest(codeAmountTooLarge, "items", "items: the total %s is more than %s",
			FormatAmount(total), FormatAmount(maxAmount))
	}
	return items, total, nil
}

// readUpstreamItem reads item i of ParseItems' array.
func readUpstreamItem(dec *json.Decoder, i int) (OrderItem, error) {
	fail := func(format string, args ...any) error {
		return badRequest(codeBadItems, "items", fmt.Sprintf("items[%d]", i)+format, args...)
	}
	var item OrderItem
	var hasName, hasQty, hasPrice bool
	err := readJSONObject(dec, func(key string, value json.RawMessage) error {
		switch key {
		case "name":
			if !jsonString(value, &item.Name) {
				return fail(".name must be a string")
			}
			if err := checkItemName(item.Name); err != nil {
				return fail(": %v", err)
			}
			if hasBidiControl(item.Name) {
				return fail(".name contains a bidi control character")
			}
			hasName = true
		case "qty":
			if !allDigits(string(value)) || len(value) > maxQuantityDigits {
				return fail(".qty must be a whole number from 1 to %d, written as a JSON number like 2", maxQuantity)
			}
			n, _ := strconv.ParseInt(string(value), 10, 64)
			if n < 1 || n > maxQuantity {
				return fail(".qty %d is not from 1 to %d", n, maxQuantity)
			}
			item.Qty, hasQty = n, true
		case "price":
			text := string(value)
			if !isJSONNumber(value) && !jsonString(value, &text) {
				return fail(`.price must be a string like "350.00" or a number like 350.00`)
			}
			price, err := ParseAmount("price", text)
			if err != nil {
				return fail(".price: %v", err)
			}
			item.Price, hasPrice = price, true
		case "vat":
			if string(value) == "null" {
				return nil
			}
			var name string
			if !jsonString(value, &name) {
				return fail(".vat must be a string naming a VAT rate")
			}
			vat, err := ParseVAT(name)
			if err != nil {
				return fail(".vat: unknown VAT rate %s", quoteInput(name))
			}
			item.VAT = vat
		default:
			return fail(": unknown field %s (want name, qty, price and vat)", quoteInput(key))
		}
		return nil
	})
	switch {
	case errors.Is(err, errNotObject):
		return item, fail(` must be an object, like {"name":"Tea","qty":1,"price":"350.00"}`)
	case err != nil:
		return item, err
	case !hasName:
		return item, fail(" has no name")
	case !hasQty:
		return item, fail(" has no qty")
	case !hasPrice:
		return item, fail(" has no price")
	}
	return item, nil
}

// ValidateContacts checks a buyer's email and phone, both optional, and
// returns them cleaned; cleaning a cleaned pair changes nothing. Spaces
// around either are dropped. The email must be at most 254 bytes of valid
// UTF-8 with exactly one @, a non-empty local part, a domain with a dot
// inside it, and no spaces, control characters, bidi controls or the
// characters "(),:;<>[\] (which only quoted addresses use). The phone may be
// written with spaces, dashes and parentheses and an optional leading +;
// what remains must be 10 to 15 digits. It comes back as + and its digits,
// with the Russian conventions applied to a number without +: 8XXXXXXXXXX
// and a bare 10-digit XXXXXXXXXX become +7XXXXXXXXXX. Errors are 400
// RequestErrors with codes bad_email and bad_phone; their messages do not
// repeat the contact.
func ValidateContacts(email, phone string) (string, string, error) {
	email = strings.Trim(email, " ")
	phone = strings.Trim(phone, " ")
	if email != "" {
		if err := checkEmail(email); err != nil {
			return "", "", err
		}
	}
	if phone != "" {
		normal, err := normalizePhone(phone)
		if err != nil {
			return "", "", err
		}
		phone = normal
	}
	return email, phone, nil
}

// checkEmail checks an email address as ValidateContacts describes.
func checkEmail(email string) error {
	// The address is the buyer's own: it is not repeated in the message,
	// which may be logged.
	bad := func(why string) error {
		return badRequest(codeBadEmail, "email", "the email %s", why)
	}
	switch {
	case len(email) > maxContact:
		return badRequest(codeBadEmail, "email", "the email is longer than %d characters", maxContact)
	case !utf8.ValidString(email):
		return bad("is not valid UTF-8")
	case strings.ContainsFunc(email, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return bad("contains a space or a control character")
	case hasBidiControl(email):
		return bad("contains a bidi control character")
	case strings.ContainsAny(email, `"(),:;<>[\]`):
		return bad("contains a character that only quoted addresses use, such as a quote, a comma or a bracket")
	case strings.Count(email, "@") != 1:
		return bad("is not an email address: it needs exactly one @")
	}
	local, domain, _ := strings.Cut(email, "@")
	dot := strings.Index(domain, ".")
	switch {
	case local == "":
		return bad("has nothing before the @")
	case domain == "":
		return bad("has nothing after the @")
	case dot <= 0 || strings.HasSuffix(domain, "."):
		return bad("has no domain like example.com after the @")
	}
	return nil
}

// hasBidiControl reports whether s holds a bidi embedding, override or
// isolate (U+202A–U+202E, U+2066–U+2069): characters that make text show
// in another order than it is stored ("Trojan Source"), so that an item
// name or an address would read as something it is not.
func hasBidiControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool {
		return '\u202a' <= r && r <= '\u202e' || '\u2066' <= r && r <= '\u2069'
	})
}

// normalizePhone cleans a phone number as ValidateContacts describes.
func normalizePhone(phone string) (string, error) {
	bad := func() (string, error) {
		return "", badRequest(codeBadPhone, "phone",
			"the phone is not a phone number: want an optional + and 10 to 15 digits, like +7 999 123-45-67")
	}
	if len(phone) > maxContact {
		return bad()
	}
	rest, plus := strings.CutPrefix(phone, "+")
	digits := make([]byte, 0, 16)
	for i := 0; i < len(rest); i++ {
		switch c := rest[i]; {
		case '0' <= c && c <= '9':
			digits = append(digits, c)
		case c == ' ' || c == '-' || c == '(' || c == ')':
		default:
			return bad()
		}
	}
	if len(digits) < 10 || len(digits) > 15 {
		return bad()
	}
	switch {
	case plus:
	case len(digits) == 10:
		return "+7" + string(digits), nil
	case len(digits) == 11 && digits[0] == '8':
		return "+7" + string(digits[1:]), nil
	}
	return "+" + string(digits), nil
}
