package kassa

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// ReceiptType is the kind of a fiscal receipt (Smart Cashier receiptType).
type ReceiptType int

// The receipt types of 54-FZ.
const (
	ReceiptSale           ReceiptType = 1 // приход
	ReceiptSaleReturn     ReceiptType = 2 // возврат прихода
	ReceiptPurchase       ReceiptType = 3 // расход
	ReceiptPurchaseReturn ReceiptType = 4 // возврат расхода
)

// TaxationSystem is the seller's taxation system (Smart Cashier
// taxationSystem).
type TaxationSystem int

// The taxation systems; their config names are in taxationNames.
const (
	TaxationOSN              TaxationSystem = 1 // general
	TaxationUSNIncome        TaxationSystem = 2 // simplified, on income
	TaxationUSNIncomeOutcome TaxationSystem = 3 // simplified, on income minus expense
	TaxationENVD             TaxationSystem = 4 // imputed income
	TaxationESN              TaxationSystem = 5 // unified agricultural tax
	TaxationPatent           TaxationSystem = 6 // patent
)

// VAT is a position's VAT rate. Which code the receipt service takes for a
// rate is the receipt service's business (Smart Cashier's tax_type).
type VAT int

// The VAT rates of 2026 (the general rate is 22% since 1 January 2026;
// shops on the simplified system may charge 5% or 7% since 2025), each
// with its calculated form (22/122...), and the legacy 20% rates, which
// remain only for transitional cases.
const (
	VAT0    VAT = iota + 1 // 0%
	VAT5                   // 5%
	VAT7                   // 7%
	VAT10                  // 10%
	VAT20                  // 20%, before 2026 (18% before 2019)
	VAT22                  // 22%
	VAT105                 // 5/105
	VAT107                 // 7/107
	VAT110                 // 10/110
	VAT120                 // 20/120, before 2026
	VAT122                 // 22/122
	VATNone                // not subject to VAT
)

// Valid reports whether v is one of the rates above.
func (v VAT) Valid() bool { return v >= VAT0 && v <= VATNone }

// Legacy reports whether the rate is the general rate before 2026 (20%,
// 20/120), which a receipt of 2026 carries only in transitional cases.
func (v VAT) Legacy() bool { return v == VAT20 || v == VAT120 }

// Share is the VAT included in an amount at the rate (prices include VAT):
// amount × 22/122 at 22% or 22/122, and so on; zero at 0% and without VAT.
func (v VAT) Share(amount decimal.Decimal) decimal.Decimal {
	var rate int64
	switch v {
	case VAT5, VAT105:
		rate = 5
	case VAT7, VAT107:
		rate = 7
	case VAT10, VAT110:
		rate = 10
	case VAT20, VAT120:
		rate = 20
	case VAT22, VAT122:
		rate = 22
	default:
		return decimal.Zero
	}
	return amount.Mul(decimal.NewFromInt(rate)).Div(decimal.NewFromInt(100 + rate)).Round(2)
}

// Label is the rate as a receipt prints it: НДС 22%, НДС 22/122, НДС 0%,
// Без НДС.
func (v VAT) Label() string {
	if label, ok := vatLabels[v]; ok {
		return label
	}
	return "Без НДС"
}

var vatLabels = map[VAT]string{
	VAT0: "НДС 0%", VAT5: "НДС 5%", VAT7: "НДС 7%", VAT10: "НДС 10%", VAT20: "НДС 20%", VAT22: "НДС 22%",
	VAT105: "НДС 5/105", VAT107: "НДС 7/107", VAT110: "НДС 10/110", VAT120: "НДС 20/120", VAT122: "НДС 22/122",
}

// OperationStatus is where a receipt-service operation stands.
type OperationStatus int

// The operation statuses of Smart Cashier checkStatus.
const (
	OperationQueued    OperationStatus = 1
	OperationProcessed OperationStatus = 2
	OperationFailed    OperationStatus = 3
)

var receiptTypeNames = directory[ReceiptType]{
	"receipt type", map[string]ReceiptType{
		"sale": ReceiptSale, "sale_return": ReceiptSaleReturn,
		"purchase": ReceiptPurchase, "purchase_return": ReceiptPurchaseReturn,
	}, nil,
}

var taxationNames = directory[TaxationSystem]{
	"taxation system", map[string]TaxationSystem{
		"osn": TaxationOSN, "usn_income": TaxationUSNIncome, "usn_income_outcome": TaxationUSNIncomeOutcome,
		"envd": TaxationENVD, "esn": TaxationESN, "patent": TaxationPatent,
	}, nil,
}

// vatNames holds the config names of PROVIDERS.md; vat20 and vat120 are
// the legacy rates, vat18 and vat118 their historical aliases.
var vatNames = directory[VAT]{
	"VAT", map[string]VAT{
		"vat0": VAT0, "vat5": VAT5, "vat7": VAT7, "vat10": VAT10, "vat22": VAT22,
		"vat105": VAT105, "vat107": VAT107, "vat110": VAT110, "vat122": VAT122, "none": VATNone,
		"vat20": VAT20, "vat18": VAT20, "vat120": VAT120, "vat118": VAT120,
	}, map[VAT]string{VAT20: "vat20", VAT120: "vat120"},
}

var operationStatusNames = directory[OperationStatus]{
	"operation status", map[string]OperationStatus{
		"queued": OperationQueued, "processed": OperationProcessed, "failed": OperationFailed,
	}, nil,
}

// directory maps a provider's numeric codes to their config names.
type directory[T ~int] struct {
	what      string
	byName    map[string]T
	preferred map[T]string // the name to print where a code has several
}

func (d directory[T]) parse(name string) (T, error) {
	if v, ok := d.byName[strings.ToLower(strings.TrimSpace(name))]; ok {
		return v, nil
	}
	names := make([]string, 0, len(d.byName))
	for n := range d.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	return 0, fmt.Errorf("unknown %s %q (want one of %s)", d.what, name, strings.Join(names, ", "))
}

func (d directory[T]) name(v T) string {
	if n, ok := d.preferred[v]; ok {
		return n
	}
	for n, code := range d.byName {
		if code == v {
			return n
		}
	}
	return fmt.Sprintf("%d", int(v))
}

func (d directory[T]) unmarshal(v *T, text []byte) error {
	parsed, err := d.parse(string(text))
	if err != nil {
		return err
	}
	*v = parsed
	return nil
}

// ParseReceiptType reads a receipt type's name: sale, sale_return, purchase
// or purchase_return.
func ParseReceiptType(name string) (ReceiptType, error) { return receiptTypeNames.parse(name) }

// ParseTaxationSystem reads a taxation system's config name: osn,
// usn_income, usn_income_outcome, envd, esn or patent.
func ParseTaxationSystem(name string) (TaxationSystem, error) { return taxationNames.parse(name) }

// ParseVAT reads a VAT rate's config name: vat0, vat5, vat7, vat10,
// vat22, vat105, vat107, vat110, vat122, none, or the legacy vat20 (or
// vat18) and vat120 (or vat118).
func ParseVAT(name string) (VAT, error) { return vatNames.parse(name) }

func (t ReceiptType) String() string    { return receiptTypeNames.name(t) }
func (t TaxationSystem) String() string { return taxationNames.name(t) }
func (v VAT) String() string            { return vatNames.name(v) }
func (s OperationStatus) String() string {
	return operationStatusNames.name(s)
}

// MarshalText writes the receipt type's name.
func (t ReceiptType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText reads a receipt type's name.
func (t *ReceiptType) UnmarshalText(b []byte) error { return receiptTypeNames.unmarshal(t, b) }

// MarshalText writes the taxation system's config name.
func (t TaxationSystem) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText reads a taxation system's config name.
func (t *TaxationSystem) UnmarshalText(b []byte) error { return taxationNames.unmarshal(t, b) }

// MarshalText writes the VAT rate's config name.
func (v VAT) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText reads a VAT rate's config name.
func (v *VAT) UnmarshalText(b []byte) error { return vatNames.unmarshal(v, b) }

// MarshalText writes the status's name: queued, processed or failed.
func (s OperationStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a status's name.
func (s *OperationStatus) UnmarshalText(b []byte) error { return operationStatusNames.unmarshal(s, b) }

// Receipt is a fiscal receipt to form. Zero Type, Taxation and position VAT
// take the receipt provider's configured defaults.
type Receipt struct {
	// OperationID makes the receipt idempotent: the receipt service prints
	// one receipt per operation id, however often it is sent.
	OperationID string          `json:"operation_id"`
	Type        ReceiptType     `json:"type,omitempty"`
	Taxation    TaxationSystem  `json:"taxation,omitempty"`
	Email       string          `json:"email,omitempty"`
	Phone       string          `json:"phone,omitempty"`
	Cash        decimal.Decimal `json:"cash"`
	Cashless    decimal.Decimal `json:"cashless"`
	Positions   []Position      `json:"items"`
	// Print asks for a paper receipt; nil takes the provider's setting.
	Print *bool `json:"print,omitempty"`
	// The legal entity, cashbox group or cashbox that must print the
	// receipt (GUIDs); empty takes the provider's configured cashbox.
	JuridicalPersonID string `json:"juridical_person_id,omitempty"`
	CashboxGroupID    string `json:"cashbox_group_id,omitempty"`
	CashboxID         string `json:"cashbox_id,omitempty"`
}

// Position is one line of a receipt.
type Position struct {
	Name     string          `json:"name"`
	Quantity int64           `json:"qty"`
	Price    decimal.Decimal `json:"price"`
	VAT      VAT             `json:"vat,omitempty"`
}

// Limits of a receipt, beyond which it is refused locally.
const (
	// maxPositionName is the fiscal-data limit on a position's name.
	maxPositionName = 128
	// maxQuantity bounds a position's quantity.
	maxQuantity = 1_000_000
	// maxOperationID bounds an operation id.
	maxOperationID = 128
	// maxContact bounds a buyer's email or phone.
	maxContact = 254
)

// maxAmount bounds any amount of money accepted anywhere: a billion rubles.
var maxAmount = decimal.New(1, 9)

// Total is the receipt's total: the sum of quantity × price over positions.
func (r Receipt) Total() decimal.Decimal {
	total := decimal.Zero
	for _, p := range r.Positions {
		total = total.Add(p.Price.Mul(decimal.NewFromInt(p.Quantity)))
	}
	return total
}

// Validate checks the invariants the receipt service would otherwise refuse
// the receipt for: an operation id; at least one position; names non-empty
// and at most 128 characters; quantities of at least 1; prices of at least 0
// with at most two decimals; known VAT, type and taxation codes; and cash +
// cashless = total, to the kopeck. The error is a *ValidationError naming the
// field.
func (r Receipt) Validate() error {
	if err := validateOperationID(r.OperationID); err != nil {
		return err
	}
	if r.Type < ReceiptSale || r.Type > ReceiptPurchaseReturn {
		return invalid("type", "unknown receipt type %d", int(r.Type))
	}
	if r.Taxation < TaxationOSN || r.Taxation > TaxationPatent {
		return invalid("taxation", "unknown taxation system %d", int(r.Taxation))
	}
	if err := validateContact("email", r.Email); err != nil {
		return err
	}
	if err := validateContact("phone", r.Phone); err != nil {
		return err
	}
	if len(r.Positions) == 0 {
		return invalid("items", "a receipt needs at least one position")
	}
	for i, p := range r.Positions {
		field := fmt.Sprintf("items[%d]", i)
		name := strings.TrimSpace(p.Name)
		switch {
		case name == "":
			return invalid(field+".name", "must not be empty")
		case !utf8.ValidString(p.Name):
			return invalid(field+".name", "must be valid UTF-8")
		case utf8.RuneCountInString(p.Name) > maxPositionName:
			return invalid(field+".name", "longer than %d characters", maxPositionName)
		case strings.IndexFunc(p.Name, unicode.IsControl) >= 0:
			return invalid(field+".name", "must not contain control characters")
		case p.Quantity < 1 || p.Quantity > maxQuantity:
			return invalid(field+".qty", "must be a whole number from 1 to %d", maxQuantity)
		case !p.VAT.Valid():
			return invalid(field+".vat", "unknown VAT rate %d", int(p.VAT))
		}
		if err := validateMoney(field+".price", p.Price, true); err != nil {
			return err
		}
	}
	if err := validateMoney("cash", r.Cash, true); err != nil {
		return err
	}
	if err := validateMoney("cashless", r.Cashless, true); err != nil {
		return err
	}
	total := r.Total()
	if total.GreaterThan(maxAmount) {
		return invalid("items", "total %s is more than %s", total.StringFixed(2), maxAmount.String())
	}
	if paid := r.Cash.Add(r.Cashless); !paid.Equal(total) {
		return invalid("cashless", "cash %s + cashless %s = %s, but the positions total %s",
			r.Cash.StringFixed(2), r.Cashless.StringFixed(2), paid.StringFixed(2), total.StringFixed(2))
	}
	return nil
}

// validateMoney checks an amount: at most two decimals, not negative, not
// above maxAmount, and above zero unless zeroOK.
func validateMoney(field string, amount decimal.Decimal, zeroOK bool) error {
	switch {
	case amount.IsNegative():
		return invalid(field, "must not be negative")
	case amount.IsZero() && !zeroOK:
		return invalid(field, "must be more than zero")
	case !amount.Equal(amount.Round(2)):
		return invalid(field, "%s has more than two decimals", amount.String())
	case amount.GreaterThan(maxAmount):
		return invalid(field, "%s is more than %s", amount.String(), maxAmount.String())
	}
	return nil
}

func validateOperationID(id string) error {
	if id == "" {
		return invalid("operation_id", "must not be empty")
	}
	if len(id) > maxOperationID {
		return invalid("operation_id", "longer than %d characters", maxOperationID)
	}
	for _, r := range id {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) || r == ' ' {
			return invalid("operation_id", "only printable ASCII without spaces")
		}
	}
	return nil
}

func validateContact(field, value string) error {
	switch {
	case len(value) > maxContact:
		return invalid(field, "longer than %d characters", maxContact)
	case !utf8.ValidString(value):
		return invalid(field, "must be valid UTF-8")
	case strings.IndexFunc(value, unicode.IsControl) >= 0:
		return invalid(field, "must not contain control characters")
	case field == "email" && value != "" && !strings.Contains(value, "@"):
		return invalid(field, "is not an email address")
	}
	return nil
}

// Operation is the state of a receipt-service operation.
type Operation struct {
	ID        string          `json:"operation_id"`
	Status    OperationStatus `json:"status"`
	Created   time.Time       `json:"created_at,omitzero"`
	Processed time.Time       `json:"processed_at,omitzero"`
	CashboxID string          `json:"cashbox_id,omitempty"`
	// Fiscal holds the receipt's fiscal data once processed.
	Fiscal *FiscalParams `json:"fiscal,omitempty"`
	// Error is the receipt service's message when the operation failed.
	Error string `json:"error,omitempty"`
}

// FiscalParams are a processed receipt's fiscal data, under the names the
// receipt service gives them.
type FiscalParams struct {
	DocumentNumber     int64     `json:"fiscalDocumentNumber"`
	DocumentSign       string    `json:"fiscalDocumentSign"`
	DocumentTime       time.Time `json:"fiscalDocumentDateTimeUtc"`
	ReceiptNumber      int64     `json:"fiscalReceiptNumber"`
	ShiftNumber        int64     `json:"shiftNumber"`
	FNNumber           string    `json:"fnNumber"`
	RegistrationNumber string    `json:"registrationNumber"`
	FNSURL             string    `json:"fnsUrl"`
	NotPrinted         bool      `json:"notPrinted"`
}
