package sandbox

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Operation statuses.
const (
	statusQueued       = 1
	statusProcessed    = 2
	statusNotProcessed = 3
)

// The fiscal data of the simulated cash register.
const (
	sandboxCashboxID   = "c0264f46-4bfd-4953-bfbe-2e3cd1e0a4ad"
	sandboxFNNumber    = "9999078900012345"
	sandboxRegNumber   = "0000000001012345"
	sandboxFNSURL      = "www.nalog.gov.ru"
	notEnoughCash      = "Недостаточно наличных в кассе"
	problemTypeBad     = "https://tools.ietf.org/html/rfc7231#section-6.5.1"
	problemTypeMissing = "https://tools.ietf.org/html/rfc7231#section-6.5.4"
	problemTypeServer  = "https://tools.ietf.org/html/rfc7231#section-6.6.1"
	problemTypeMedia   = "https://tools.ietf.org/html/rfc7231#section-6.5.13"
)

// moscow is the zone Smart Cashier writes its times in.
var moscow = time.FixedZone("MSK", 3*60*60)

var (
	guidPattern  = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	emailPattern = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
)

// cashierState is the simulated Smart Cashier account and its cash
// register.
type cashierState struct {
	operations     map[string]*cashierOperation
	order          []string // operation ids, oldest first
	queue          []string // ids of queued operations, in queue order
	cash           map[string]decimal.Decimal
	documentNumber int
	receiptNumber  int
	shift          int
}

// cashierOperation is a receipt, a cash deposit or a cash withdrawal.
type cashierOperation struct {
	id        string
	kind      string // formReceipt, depositCash or withdrawCash
	request   json.RawMessage
	cashboxID string          // as requested; "" for any
	cash      decimal.Decimal // how the cash in the till changes if processed
	attempts  int
	failWith  string // errorMessage forced by a notprocessed fault
	status    int
	created   time.Time
	queued    time.Time
	processed time.Time
	handler   string
	fiscal    *fiscalParams
	errorMsg  string
}

// fiscalParams are the fiscal data of a processed receipt.
type fiscalParams struct {
	FiscalDocumentNumber      int      `json:"fiscalDocumentNumber"`
	FiscalDocumentSign        string   `json:"fiscalDocumentSign"`
	FiscalDocumentDateTimeUtc cashTime `json:"fiscalDocumentDateTimeUtc"`
	FiscalReceiptNumber       int      `json:"fiscalReceiptNumber"`
	ShiftNumber               int      `json:"shiftNumber"`
	FnNumber                  string   `json:"fnNumber"`
	RegistrationNumber        string   `json:"registrationNumber"`
	FnsURL                    string   `json:"fnsUrl"`
	NotPrinted                bool     `json:"notPrinted"`
}

// cashTime is a time as Smart Cashier writes it:
// 2019-05-01T17:29:59.6282936+03:00.
type cashTime time.Time

// MarshalJSON writes the time in Moscow time with seven decimals.
func (t cashTime) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Time(t).In(moscow).Format("2006-01-02T15:04:05.0000000Z07:00") + `"`), nil
}

// statusReply is the reply of checkStatus.
type statusReply struct {
	Status                int           `json:"status"`
	CreationDateTimeUtc   cashTime      `json:"creationDateTimeUtc"`
	HandlerCashboxID      *string       `json:"handlerCashboxId"`
	ProcessingDateTimeUtc *cashTime     `json:"processingDateTimeUtc"`
	FiscalParams          *fiscalParams `json:"fiscalParams"`
	ErrorMessage          *string       `json:"errorMessage"`
}

func (op *cashierOperation) reply() statusReply {
	r := statusReply{Status: op.status, CreationDateTimeUtc: cashTime(op.created), FiscalParams: op.fiscal}
	if op.handler != "" {
		r.HandlerCashboxID = &op.handler
	}
	if !op.processed.IsZero() {
		t := cashTime(op.processed)
		r.ProcessingDateTimeUtc = &t
	}
	if op.errorMsg != "" {
		r.ErrorMessage = &op.errorMsg
	}
	return r
}

// problem is an ASP.NET Core problem-details body.
type problem struct {
	Type   string              `json:"type,omitempty"`
	Title  string              `json:"title"`
	Status int                 `json:"status"`
	Detail string              `json:"detail,omitempty"`
	Errors map[string][]string `json:"errors,omitempty"`
}

func (p *problem) write(w http.ResponseWriter) {
	b, _ := json.Marshal(p)
	w.Header().Set("Content-Type", "application/problem+json; charset=utf-8")
	w.WriteHeader(p.Status)
	_, _ = w.Write(b)
}

// validationProblem is the 400 reply for the given field errors.
func validationProblem(errs map[string][]string) *problem {
	return &problem{Type: problemTypeBad, Title: "One or more validation errors occurred.", Status: http.StatusBadRequest, Errors: errs}
}

// emptyStatus answers status with no body, as ASP.NET does for 401, 403
// and 405.
func emptyStatus(w http.ResponseWriter, status int) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
}

// smartCashierFaults words faults the way Smart Cashier (ASP.NET Core)
// would.
var smartCashierFaults = faultStyle{
	error500: func(w http.ResponseWriter, message string) {
		(&problem{Type: problemTypeServer, Title: "An error occurred while processing your request.",
			Status: http.StatusInternalServerError, Detail: message}).write(w)
	},
	auth:      func(w http.ResponseWriter, _ string) { emptyStatus(w, http.StatusUnauthorized) },
	forbidden: func(w http.ResponseWriter, _ string) { emptyStatus(w, http.StatusForbidden) },
}

// smartCashierMethods is the method of every Smart Cashier operation.
var smartCashierMethods = map[string]string{
	"formReceipt":  http.MethodPost,
	"depositCash":  http.MethodPost,
	"withdrawCash": http.MethodPost,
	"checkStatus":  http.MethodGet,
}

// serveSmartCashier answers /smartcashier/v1.0/{rest}.
func (h *Handler) serveSmartCashier(w http.ResponseWriter, r *http.Request, rest string) {
	op, isOp := strings.CutPrefix(rest, "operations/")
	method, known := smartCashierMethods[op]
	if !isOp || !known {
		(&problem{Type: problemTypeMissing, Title: "Not Found", Status: http.StatusNotFound}).write(w)
		return
	}
	body, bodyErr := readBody(r)
	c := h.newCall(w, r, APISmartCashier, op, body)
	if r.Method != method {
		c.w.Header().Set("Allow", method)
		emptyStatus(c.w, http.StatusMethodNotAllowed)
		c.finish()
		return
	}
	c.run(smartCashierFaults, func(w http.ResponseWriter) {
		if !h.bearerOK(r) {
			emptyStatus(w, http.StatusUnauthorized)
			return
		}
		if op == "checkStatus" {
			h.checkStatus(w, r)
			return
		}
		if bodyErr != nil {
			validationProblem(map[string][]string{"$": {"The request body is too large."}}).write(w)
			return
		}
		h.queueOperation(w, r, op, body)
	})
}

// bearerOK checks the Authorization header.
func (h *Handler) bearerOK(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return ok && strings.EqualFold(scheme, "Bearer") && secureEqual(token, h.creds.smartCashierToken)
}

// checkStatus answers GET operations/checkStatus.
func (h *Handler) checkStatus(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("operationId")
	if id == "" {
		validationProblem(map[string][]string{"operationId": {"The operationId field is required."}}).write(w)
		return
	}
	reply, ok := h.st.operationStatus(id)
	if !ok {
		(&problem{Type: problemTypeMissing, Title: "Not Found", Status: http.StatusNotFound}).write(w)
		return
	}
	writeJSON(w, http.StatusOK, reply)
}

// queueOperation answers formReceipt, depositCash and withdrawCash.
func (h *Handler) queueOperation(w http.ResponseWriter, r *http.Request, kind string, body []byte) {
	op := &cashierOperation{kind: kind, request: json.RawMessage(body)}
	var p *problem
	if kind == "formReceipt" {
		var req receiptRequest
		if p = decodeStrict(r, body, &req, "FormReceiptRequest"); p == nil {
			p = req.check(op, h.SmartCashierTaxTypes)
		}
	} else {
		var req cashRequest
		if p = decodeStrict(r, body, &req, "CashOperationRequest"); p == nil {
			p = req.check(op)
		}
	}
	if p != nil {
		p.write(w)
		return
	}
	h.st.queueOperation(op)
	writeJSON(w, http.StatusOK, map[string]string{"operationId": op.id})
}

// queueOperation stores a new operation. An operation id it knows is
// answered as the first time and nothing is done again, whatever became of
// it (the seed: a repeat "returns the same result as the first request,
// without processing it again"): one the till failed (status 3) stays
// failed, and is done only under a new id.
func (s *state) queueOperation(op *cashierOperation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.processLocked()
	now := s.now()
	if _, ok := s.cashier.operations[op.id]; ok {
		return
	}
	op.created = now
	s.cashier.operations[op.id] = op
	s.cashier.order = append(s.cashier.order, op.id)
	op.attempts++
	op.status = statusQueued
	op.queued = now
	op.failWith = s.takeNotProcessedLocked(op.kind)
	s.cashier.queue = append(s.cashier.queue, op.id)
}

// operationStatus is the checkStatus reply for an operation.
func (s *state) operationStatus(id string) (statusReply, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.processLocked()
	op, ok := s.cashier.operations[id]
	if !ok {
		return statusReply{}, false
	}
	return op.reply(), true
}

// processLocked processes, in queue order, every operation that has been
// queued for receipt_delay.
func (s *state) processLocked() {
	now, delay := s.now(), s.settings.ReceiptDelay
	waiting := s.cashier.queue[:0]
	for _, id := range s.cashier.queue {
		op := s.cashier.operations[id]
		due := op.queued.Add(delay)
		if now.Before(due) {
			waiting = append(waiting, id)
			continue
		}
		s.completeLocked(op, due)
	}
	s.cashier.queue = waiting
}

// completeLocked processes one operation at time at.
func (s *state) completeLocked(op *cashierOperation, at time.Time) {
	op.handler = op.cashboxID
	if op.handler == "" {
		op.handler = sandboxCashboxID
	}
	fail := func(msg string) {
		op.status, op.errorMsg = statusNotProcessed, msg
	}
	if op.failWith != "" {
		fail(op.failWith)
		return
	}
	till := s.cashier.cash[op.handler]
	if op.cash.IsNegative() && till.LessThan(op.cash.Neg()) {
		fail(notEnoughCash)
		return
	}
	if !op.cash.IsZero() {
		s.cashier.cash[op.handler] = till.Add(op.cash)
	}
	op.status, op.processed = statusProcessed, at
	if op.kind != "formReceipt" {
		return
	}
	s.cashier.documentNumber++
	s.cashier.receiptNumber++
	op.fiscal = &fiscalParams{
		FiscalDocumentNumber:      s.cashier.documentNumber,
		FiscalDocumentSign:        fmt.Sprintf("%010d", rand.Int64N(1e10)),
		FiscalDocumentDateTimeUtc: cashTime(at),
		FiscalReceiptNumber:       s.cashier.receiptNumber,
		ShiftNumber:               s.cashier.shift,
		FnNumber:                  sandboxFNNumber,
		RegistrationNumber:        sandboxRegNumber,
		FnsURL:                    sandboxFNSURL,
	}
}

// smartCashierView is the Smart Cashier part of GET /control/state.
type smartCashierView struct {
	Operations []cashierOperationView `json:"operations"`
	Cash       map[string]string      `json:"cash"`
}

type cashierOperationView struct {
	OperationID string          `json:"operationId"`
	Kind        string          `json:"kind"`
	Attempts    int             `json:"attempts"`
	Request     json.RawMessage `json:"request"`
	Result      statusReply     `json:"result"`
}

func (op *cashierOperation) view() cashierOperationView {
	return cashierOperationView{OperationID: op.id, Kind: op.kind, Attempts: op.attempts, Request: op.request, Result: op.reply()}
}
