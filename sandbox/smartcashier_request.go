package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// jsonDecimal is a JSON number decoded exactly, without float; a JSON
// string is refused.
type jsonDecimal struct{ decimal.Decimal }

// UnmarshalJSON accepts a JSON number only.
func (d *jsonDecimal) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9')) {
		v, err := decimal.NewFromString(string(b))
		if err == nil {
			d.Decimal = v
			return nil
		}
	}
	return &json.UnmarshalTypeError{Value: string(b), Type: reflect.TypeFor[decimal.Decimal]()}
}

// dotnetType names a Go type the way the .NET error would.
func dotnetType(t reflect.Type) string {
	if t == nil {
		return "System.Object"
	}
	switch t.Kind() {
	case reflect.Int:
		return "System.Int32"
	case reflect.String:
		return "System.String"
	case reflect.Bool:
		return "System.Boolean"
	case reflect.Slice:
		return "System.Collections.Generic.List`1"
	}
	if t == reflect.TypeFor[decimal.Decimal]() {
		return "System.Decimal"
	}
	return t.Name()
}

// decodeStrict decodes a JSON body into v the way the ASP.NET service does,
// but stricter: unknown fields and wrong JSON types are refused.
func decodeStrict(r *http.Request, body []byte, v any, typeName string) *problem {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return &problem{Type: problemTypeMedia, Title: "Unsupported Media Type", Status: http.StatusUnsupportedMediaType}
	}
	fail := func(path, msg string) *problem {
		return validationProblem(map[string][]string{path: {msg}})
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return fail("", "A non-empty request body is required.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case err == nil:
		if _, err := dec.Token(); err != io.EOF {
			return fail("$", "The JSON value is followed by unexpected data.")
		}
		return nil
	case errors.As(err, &typeErr):
		path := "$"
		if typeErr.Field != "" {
			path += "." + typeErr.Field
		}
		return fail(path, fmt.Sprintf("The JSON value could not be converted to %s. Path: %s", dotnetType(typeErr.Type), path))
	case errors.As(err, &syntaxErr):
		return fail("$", fmt.Sprintf("The JSON value is invalid at byte %d: %v", syntaxErr.Offset, err))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return fail("$", fmt.Sprintf("The JSON property '%s' could not be mapped to any .NET member contained in type '%s'.", name, typeName))
	default:
		return fail("$", "The JSON value could not be read: "+err.Error())
	}
}

// receiptRequest is the body of formReceipt.
type receiptRequest struct {
	OperationID        *string           `json:"operationId"`
	ReceiptType        *int              `json:"receiptType"`
	PrintReceipt       *bool             `json:"printReceipt"`
	TaxationSystem     *int              `json:"taxationSystem"`
	BuyerEmail         *string           `json:"buyerEmail"`
	BuyerPhoneNumber   *string           `json:"buyerPhoneNumber"`
	CashPaymentSum     *jsonDecimal      `json:"cashPaymentSum"`
	CashlessPaymentSum *jsonDecimal      `json:"cashlessPaymentSum"`
	TotalSum           *jsonDecimal      `json:"totalSum"`
	Positions          []receiptPosition `json:"positions"`
	JuridicalPersonID  *string           `json:"juridicalPersonId"`
	CashboxGroupID     *string           `json:"cashboxGroupId"`
	CashboxID          *string           `json:"cashboxId"`
}

// receiptPosition is one line of a receipt.
type receiptPosition struct {
	Name     *string      `json:"name"`
	Quantity *int         `json:"quantity"`
	Price    *jsonDecimal `json:"price"`
	TaxType  *int         `json:"taxType"`
}

// cashRequest is the body of depositCash and withdrawCash.
type cashRequest struct {
	CashboxID   *string      `json:"cashboxId"`
	Amount      *jsonDecimal `json:"amount"`
	OperationID *string      `json:"operationId"`
}

// fieldErrors collects validation errors by field path.
type fieldErrors map[string][]string

func (e fieldErrors) add(path, format string, args ...any) {
	e[path] = append(e[path], fmt.Sprintf(format, args...))
}

func (e fieldErrors) required(path, name string, missing bool) bool {
	if missing {
		e.add(path, "The %s field is required.", name)
	}
	return !missing
}

func (e fieldErrors) intRange(path, name string, v *int, lo, hi int) {
	if e.required(path, name, v == nil) && (*v < lo || *v > hi) {
		e.add(path, "The field %s must be between %d and %d.", name, lo, hi)
	}
}

// money checks a sum: present, not negative (positive if strict), kopecks.
func (e fieldErrors) money(path, name string, v *jsonDecimal, positive bool) bool {
	if !e.required(path, name, v == nil) {
		return false
	}
	switch {
	case positive && !v.IsPositive():
		e.add(path, "The field %s must be greater than 0.", name)
	case v.IsNegative():
		e.add(path, "The field %s must not be negative.", name)
	case !isKopecks(v.Decimal):
		e.add(path, "The field %s must have at most 2 decimal places.", name)
	case v.GreaterThan(maxAmount):
		e.add(path, "The field %s must not be greater than %s.", name, maxAmount)
	default:
		return true
	}
	return false
}

func (e fieldErrors) optionalGUID(path, name string, v *string) {
	if v != nil && *v != "" && !guidPattern.MatchString(*v) {
		e.add(path, "The field %s must be empty or a GUID.", name)
	}
}

func (e fieldErrors) problem() *problem {
	if len(e) == 0 {
		return nil
	}
	return validationProblem(e)
}

// check validates a receipt and fills in op.
func (req *receiptRequest) check(op *cashierOperation, extraTaxTypes []int) *problem {
	e := fieldErrors{}
	e.required("operationId", "OperationId", req.OperationID == nil || *req.OperationID == "")
	e.intRange("receiptType", "ReceiptType", req.ReceiptType, 1, 4)
	e.required("printReceipt", "PrintReceipt", req.PrintReceipt == nil)
	e.intRange("taxationSystem", "TaxationSystem", req.TaxationSystem, 1, 6)
	if req.BuyerEmail != nil && *req.BuyerEmail != "" && !emailPattern.MatchString(*req.BuyerEmail) {
		e.add("buyerEmail", "The BuyerEmail field is not a valid e-mail address.")
	}
	if req.BuyerPhoneNumber != nil && *req.BuyerPhoneNumber != "" && !phonePattern.MatchString(*req.BuyerPhoneNumber) {
		e.add("buyerPhoneNumber", "The field BuyerPhoneNumber must be a phone number: + and 10 to 15 digits.")
	}
	sumsOK := e.money("cashPaymentSum", "CashPaymentSum", req.CashPaymentSum, false)
	sumsOK = e.money("cashlessPaymentSum", "CashlessPaymentSum", req.CashlessPaymentSum, false) && sumsOK
	sumsOK = e.money("totalSum", "TotalSum", req.TotalSum, false) && sumsOK
	if len(req.Positions) == 0 {
		e.add("positions", "At least one position is required.")
		sumsOK = false
	}
	total := decimal.Zero
	for i, p := range req.Positions {
		path := fmt.Sprintf("positions[%d].", i)
		if e.required(path+"name", "Name", p.Name == nil || *p.Name == "") && utf8.RuneCountInString(*p.Name) > 128 {
			e.add(path+"name", "The field Name must be a string with a maximum length of 128.")
		}
		if e.required(path+"quantity", "Quantity", p.Quantity == nil) {
			switch {
			case *p.Quantity < 1:
				e.add(path+"quantity", "Quantity must be at least 1.")
				sumsOK = false
			case *p.Quantity > math.MaxInt32:
				e.add(path+"quantity", "The JSON value could not be converted to System.Int32.")
				sumsOK = false
			}
		} else {
			sumsOK = false
		}
		if e.money(path+"price", "Price", p.Price, false) && p.Quantity != nil {
			total = total.Add(p.Price.Mul(decimal.NewFromInt(int64(*p.Quantity))))
		} else {
			sumsOK = false
		}
		if p.TaxType == nil || !slices.Contains(extraTaxTypes, *p.TaxType) {
			e.intRange(path+"taxType", "TaxType", p.TaxType, 1, 6)
		}
	}
	e.optionalGUID("juridicalPersonId", "JuridicalPersonId", req.JuridicalPersonID)
	e.optionalGUID("cashboxGroupId", "CashboxGroupId", req.CashboxGroupID)
	e.optionalGUID("cashboxId", "CashboxId", req.CashboxID)
	if sumsOK {
		if !req.TotalSum.Equal(total) {
			e.add("totalSum", "TotalSum (%s) must equal the sum of quantity × price over the positions (%s).",
				req.TotalSum.StringFixed(2), total.StringFixed(2))
		}
		if paid := req.CashPaymentSum.Add(req.CashlessPaymentSum.Decimal); !paid.Equal(req.TotalSum.Decimal) {
			e.add("totalSum", "CashPaymentSum + CashlessPaymentSum (%s) must equal TotalSum (%s).",
				paid.StringFixed(2), req.TotalSum.StringFixed(2))
		}
	}
	if p := e.problem(); p != nil {
		return p
	}
	op.id = *req.OperationID
	if req.CashboxID != nil {
		op.cashboxID = strings.ToLower(*req.CashboxID)
	}
	// A sale or the return of a purchase brings cash into the till; a
	// return of a sale or a purchase takes it out.
	op.cash = req.CashPaymentSum.Decimal
	if *req.ReceiptType == 2 || *req.ReceiptType == 3 {
		op.cash = op.cash.Neg()
	}
	return nil
}

// check validates a cash deposit or withdrawal and fills in op.
func (req *cashRequest) check(op *cashierOperation) *problem {
	e := fieldErrors{}
	if e.required("cashboxId", "CashboxId", req.CashboxID == nil || *req.CashboxID == "") && !guidPattern.MatchString(*req.CashboxID) {
		e.add("cashboxId", "The field CashboxId must be a GUID.")
	}
	e.money("amount", "Amount", req.Amount, true)
	e.required("operationId", "OperationId", req.OperationID == nil || *req.OperationID == "")
	if p := e.problem(); p != nil {
		return p
	}
	op.id, op.cashboxID, op.cash = *req.OperationID, strings.ToLower(*req.CashboxID), req.Amount.Decimal
	if op.kind == "withdrawCash" {
		op.cash = op.cash.Neg()
	}
	return nil
}
