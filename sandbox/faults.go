package sandbox

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Fault modes.
const (
	FaultLatency      = "latency"
	FaultError500     = "error500"
	FaultTimeout      = "timeout"
	FaultMalformed    = "malformed"
	FaultHTML         = "html"
	FaultAuth         = "auth"
	FaultForbidden    = "forbidden"
	FaultDrop         = "drop"
	FaultNotProcessed = "notprocessed"
	// FaultForgedCallback signs the next CrystalPAY v3 callbacks (op
	// callback) with a wrong salt.
	FaultForgedCallback = "forgedcallback"
)

// faultModes lists every mode, in the order the docs give them.
var faultModes = []string{
	FaultLatency, FaultError500, FaultTimeout, FaultMalformed, FaultHTML,
	FaultAuth, FaultForbidden, FaultDrop, FaultNotProcessed, FaultForgedCallback,
}

// apiOps lists the operations of each API that a fault can name.
var apiOps = map[string][]string{
	APICrystalPay: append([]string{"balance", "generate", "checkpay", "withdraw"},
		append(crystalPayV3Ops, opCallback)...),
	APIPegas:        {"deposit", "deposit/cancel", "withdrawal", "transaction/receipt/file", "balance"},
	APISmartCashier: {"formReceipt", "depositCash", "withdrawCash", "checkStatus"},
}

// cashierCreatingOps are the Smart Cashier operations a notprocessed fault
// applies to.
var cashierCreatingOps = []string{"formReceipt", "depositCash", "withdrawCash"}

// defaultNotProcessedMessage is the errorMessage of a notprocessed fault
// without a message of its own.
const defaultNotProcessedMessage = "Открыта крышка."

// timeoutHold is how long a timeout fault holds a request at most.
const timeoutHold = 60 * time.Second

// malformedBody is the truncated JSON a malformed fault answers.
const malformedBody = `{"id":"1_ab`

// badGatewayPage is the page an html fault answers, as a broken proxy would.
const badGatewayPage = "<html><body><h1>502 Bad Gateway</h1></body></html>\n"

// Fault is a failure injected into the simulated APIs.
type Fault struct {
	// API is crystalpay, pegas or smartcashier.
	API string `json:"api"`

	// Op is the operation the fault applies to, or * for all of them.
	Op string `json:"op"`

	// Mode is what goes wrong: latency, error500, timeout, malformed, html,
	// auth, forbidden, drop or notprocessed.
	Mode string `json:"mode"`

	// Count is how many of the next matching calls the fault applies to;
	// 0 means until cleared.
	Count int `json:"count,omitempty"`

	// Latency is waited before the fault's answer (the whole point of
	// mode latency).
	Latency caddy.Duration `json:"latency,omitempty"`

	// Message replaces the default text of an error500, auth, forbidden or
	// notprocessed reply.
	Message string `json:"message,omitempty"`

	configured bool // from the Caddyfile/JSON config: survives a reset
}

// normalize checks the fault and fills in defaults.
func (f *Fault) normalize() error {
	ops, ok := apiOps[f.API]
	if !ok {
		return fmt.Errorf("unknown api %q (want crystalpay, pegas or smartcashier)", f.API)
	}
	if f.Op != "*" && !slices.Contains(ops, f.Op) {
		return fmt.Errorf("unknown %s op %q (want * or one of %v)", f.API, f.Op, ops)
	}
	if !slices.Contains(faultModes, f.Mode) {
		return fmt.Errorf("unknown fault mode %q (want one of %v)", f.Mode, faultModes)
	}
	if f.Count < 0 {
		return errors.New("fault count must not be negative")
	}
	if f.Latency < 0 {
		return errors.New("fault latency must not be negative")
	}
	if f.Op == opCallback && f.Mode != FaultForgedCallback {
		return errors.New("crystalpay callback takes mode forgedcallback only")
	}
	switch f.Mode {
	case FaultLatency:
		if f.Latency <= 0 {
			return errors.New("a latency fault needs a positive latency")
		}
	case FaultForgedCallback:
		if f.API != APICrystalPay || f.Op != opCallback {
			return errors.New("forgedcallback applies to crystalpay callback only")
		}
	case FaultNotProcessed:
		if f.API != APISmartCashier || (f.Op != "*" && !slices.Contains(cashierCreatingOps, f.Op)) {
			return errors.New("notprocessed applies to smartcashier formReceipt, depositCash and withdrawCash only")
		}
		if f.Message == "" {
			f.Message = defaultNotProcessedMessage
		}
	}
	return nil
}

// matches reports whether the fault applies to a call of op on api.
func (f *Fault) matches(api, op string) bool {
	if f.API != api || (f.Op != "*" && f.Op != op) {
		return false
	}
	switch f.Mode {
	case FaultNotProcessed:
		return slices.Contains(cashierCreatingOps, op)
	case FaultForgedCallback:
		return op == opCallback
	}
	return op != opCallback
}

// consumeLocked counts one use of the fault and drops it when used up.
func (s *state) consumeLocked(f *Fault) {
	if f.Count == 0 {
		return
	}
	f.Count--
	if f.Count == 0 {
		s.faults = slices.DeleteFunc(s.faults, func(g *Fault) bool { return g == f })
	}
}

// takeFault finds the faults that apply to a call of op on api, before the
// call is processed: it returns how long to wait and the fault to answer
// with (nil: answer normally). Every latency fault that matches adds its
// latency; the first other matching fault is the answer. notprocessed faults
// are left for takeNotProcessedLocked.
func (s *state) takeFault(api, op string) (time.Duration, *Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var wait time.Duration
	var answer *Fault
	for _, f := range slices.Clone(s.faults) {
		if f.Mode == FaultNotProcessed || f.Mode == FaultForgedCallback || !f.matches(api, op) {
			continue
		}
		if f.Mode != FaultLatency && answer != nil {
			continue
		}
		wait += time.Duration(f.Latency)
		if f.Mode != FaultLatency {
			c := *f
			answer = &c
		}
		s.consumeLocked(f)
	}
	return wait, answer
}

// takeNotProcessedLocked consumes a notprocessed fault for an operation
// being queued and returns its message ("" if none applies).
func (s *state) takeNotProcessedLocked(op string) string {
	for _, f := range s.faults {
		if f.Mode == FaultNotProcessed && f.matches(APISmartCashier, op) {
			msg := f.Message
			s.consumeLocked(f)
			return msg
		}
	}
	return ""
}

// takeForgedLocked consumes a forgedcallback fault for a callback being
// sent and reports whether one applied.
func (s *state) takeForgedLocked() bool {
	for _, f := range s.faults {
		if f.Mode == FaultForgedCallback && f.matches(APICrystalPay, opCallback) {
			s.consumeLocked(f)
			return true
		}
	}
	return false
}

// addFault adds a fault at run time.
func (s *state) addFault(f Fault) (Fault, error) {
	if err := f.normalize(); err != nil {
		return f, err
	}
	f.configured = false
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
	return f, nil
}

// listFaults returns the faults in force, with their remaining counts.
func (s *state) listFaults() []faultView {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []faultView{}
	for _, f := range s.faults {
		out = append(out, f.view())
	}
	return out
}

// clearFaults removes every fault and tells how many there were.
func (s *state) clearFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.faults)
	s.faults = nil
	return n
}

// faultView is the JSON of a fault on the control endpoint.
type faultView struct {
	API     string `json:"api"`
	Op      string `json:"op"`
	Mode    string `json:"mode"`
	Count   int    `json:"count"`
	Latency string `json:"latency,omitempty"`
	Message string `json:"message,omitempty"`
}

func (f *Fault) view() faultView {
	v := faultView{API: f.API, Op: f.Op, Mode: f.Mode, Count: f.Count, Message: f.Message}
	if f.Latency > 0 {
		v.Latency = time.Duration(f.Latency).String()
	}
	return v
}

// faultStyle is how one API words the faults whose reply is its own.
type faultStyle struct {
	error500  func(w http.ResponseWriter, message string)
	auth      func(w http.ResponseWriter, message string)
	forbidden func(w http.ResponseWriter, message string)
}

// injectFault answers a call with fault f in the style of the API. A
// timeout or drop journals the call first, with no status, since it never
// answers.
func (c *call) injectFault(f *Fault, style faultStyle) {
	w, r := c.w, c.r
	switch f.Mode {
	case FaultError500:
		style.error500(w, f.Message)
	case FaultAuth:
		style.auth(w, f.Message)
	case FaultForbidden:
		style.forbidden(w, f.Message)
	case FaultMalformed:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(malformedBody))
	case FaultHTML:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte(badGatewayPage))
	case FaultTimeout:
		c.finish()
		t := time.NewTimer(c.h.timeoutHold())
		defer t.Stop()
		select {
		case <-r.Context().Done():
		case <-t.C:
		}
		c.abort()
	case FaultDrop:
		c.finish()
		c.abort()
	}
}

// timeoutHold is how long a timeout fault holds a request.
func (h *Handler) timeoutHold() time.Duration {
	if h.holdFor > 0 {
		return h.holdFor
	}
	return timeoutHold
}

// abort closes the connection without an answer: hijacked and closed on
// HTTP/1, the stream reset on HTTP/2 and 3.
func (c *call) abort() {
	conn, _, err := http.NewResponseController(c.w).Hijack()
	if err == nil {
		_ = conn.Close()
		return
	}
	panic(http.ErrAbortHandler)
}

// sleep waits d or until the request is cancelled.
func sleep(r *http.Request, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.Context().Done():
	case <-t.C:
	}
}
