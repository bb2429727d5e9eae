package kassa

import "time"

// The JSON a buyer's client gets. Amounts are strings with two decimals.

// itemView is an order line.
type itemView struct {
	SKU   string `json:"sku,omitempty"`
	Name  string `json:"name"`
	Qty   int64  `json:"qty"`
	Price string `json:"price"`
	VAT   VAT    `json:"vat,omitempty"`
}

// payToView is where to pay when the provider has no payment page.
type payToView struct {
	Wallet string `json:"wallet,omitempty"`
	Card   string `json:"card,omitempty"`
}

// createdView answers a checkout.
type createdView struct {
	OrderID    string     `json:"order_id"`
	State      OrderState `json:"state"`
	Amount     string     `json:"amount"`
	PaymentURL string     `json:"payment_url,omitempty"`
	PayTo      *payToView `json:"pay_to"`
}

// statusView answers a status poll; the buyer's contacts are masked, and
// a failed receipt's provider text is not shown.
type statusView struct {
	createdView
	Items     []itemView  `json:"items"`
	CreatedAt time.Time   `json:"created_at"`
	PaidAt    *time.Time  `json:"paid_at"`
	PaidLate  bool        `json:"paid_late,omitempty"`
	ExpiresAt time.Time   `json:"expires_at"`
	Email     string      `json:"email,omitempty"`
	Phone     string      `json:"phone,omitempty"`
	Receipt   receiptView `json:"receipt"`
}

// receiptView is where an order's fiscal receipt stands: none, queued,
// done or failed, with the fiscal data once done.
type receiptView struct {
	OrderID     string        `json:"order_id,omitempty"`
	OperationID string        `json:"operation_id,omitempty"`
	State       ReceiptState  `json:"state"`
	Fiscal      *FiscalParams `json:"fiscal,omitempty"`
	Error       string        `json:"error,omitempty"`
}

// newReceiptView reports an order's sale receipt.
func newReceiptView(o *Order) receiptView {
	if o.Receipt == nil {
		return receiptView{State: "none"}
	}
	return receiptView{OperationID: o.Receipt.OperationID, State: o.Receipt.State.Public(), Fiscal: o.Receipt.Fiscal, Error: o.Receipt.Error}
}

// buyerReceiptError is all a buyer reads of a receipt that failed: the
// provider's text may name the shop's till, account or token, so it stays
// on the admin API and in the shop's events.
const buyerReceiptError = "the receipt could not be issued yet; the shop has been told"

// forBuyer is v as a buyer sees it: without the provider's error text.
func (v receiptView) forBuyer() receiptView {
	if v.Error != "" {
		v.Error = buyerReceiptError
	}
	return v
}

// newCreatedView reports an order; where to pay only while it is pending,
// so that nobody is sent to pay an order that has closed.
func newCreatedView(o *Order) createdView {
	v := createdView{OrderID: o.ID, State: o.State.Public(), Amount: FormatAmount(o.Amount)}
	if o.State != OrderPending {
		return v
	}
	v.PaymentURL = o.Payment.URL
	if o.Payment.Wallet != "" || o.Payment.Card != "" {
		v.PayTo = &payToView{Wallet: o.Payment.Wallet, Card: o.Payment.Card}
	}
	return v
}

func newStatusView(o *Order) statusView {
	v := statusView{createdView: newCreatedView(o), Items: make([]itemView, len(o.Items)),
		CreatedAt: o.CreatedAt, ExpiresAt: o.ExpiresAt, PaidLate: o.PaidLate, Email: MaskEmail(o.Email), Phone: MaskPhone(o.Phone),
		Receipt: newReceiptView(o).forBuyer()}
	for i, it := range o.Items {
		v.Items[i] = itemView{SKU: it.SKU, Name: it.Name, Qty: it.Qty, Price: FormatAmount(it.Price), VAT: it.VAT}
	}
	if !o.PaidAt.IsZero() {
		paid := o.PaidAt
		v.PaidAt = &paid
	}
	return v
}

// newOperationView reports a receipt-service operation as a receipt.
func newOperationView(id string, op Operation) receiptView {
	state := map[OperationStatus]ReceiptState{OperationQueued: ReceiptQueued, OperationProcessed: ReceiptDone, OperationFailed: ReceiptFailed}[op.Status]
	return receiptView{OperationID: id, State: state, Fiscal: op.Fiscal, Error: op.Error}
}
