package sandbox

import (
	"encoding/json"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/shopspring/decimal"
)

// settings are the options that the control endpoint can change at run
// time.
type settings struct {
	Latency           time.Duration
	ReceiptDelay      time.Duration
	CrystalPayWallets bool
}

// config is what a Provision hands to the shared state: the starting point
// that a reset returns to.
type config struct {
	balances map[string]decimal.Decimal
	settings settings
	faults   []Fault
}

// state is everything a named sandbox remembers. It is shared by every
// handler with the same name and survives config reloads. Every field is
// guarded by mu.
type state struct {
	mu       sync.Mutex
	now      func() time.Time
	cfg      config
	settings settings

	crystalPay   crystalPayState
	crystalPayV3 crystalPayV3State
	pegas        pegasState
	cashier      cashierState
	journal      []Call
	faults       []*Fault
}

// newState returns a fresh state started from cfg.
func newState(cfg config) *state {
	s := &state{now: time.Now, cfg: cfg}
	s.resetLocked()
	return s
}

// Destruct is called by the usage pool when the last handler using the state
// is cleaned up. There is nothing to release.
func (s *state) Destruct() error { return nil }

// setClock replaces the clock (tests).
func (s *state) setClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// reset forgets everything and returns to the configured starting point.
func (s *state) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
}

func (s *state) resetLocked() {
	s.settings = s.cfg.settings
	s.crystalPay = crystalPayState{
		balance:  s.cfg.balances[APICrystalPay],
		invoices: map[string]*crystalPayInvoice{},
	}
	s.crystalPayV3 = crystalPayV3State{
		since:    s.now(),
		invoices: map[string]*v3Invoice{},
		payoffs:  map[string]*v3Payoff{},
	}
	s.pegas = pegasState{
		balance:            s.cfg.balances[APIPegas],
		invoices:           map[int64]*pegasInvoice{},
		depositOrderIDs:    map[string]int64{},
		withdrawalOrderIDs: map[string]int64{},
		nextInvoiceID:      firstPegasInvoiceID,
		nextWithdrawalID:   firstPegasWithdrawalID,
	}
	s.cashier = cashierState{
		operations: map[string]*cashierOperation{},
		cash:       map[string]decimal.Decimal{},
		shift:      1,
	}
	s.journal = nil
	s.faults = nil
	for _, f := range s.cfg.faults {
		s.faults = append(s.faults, &f)
	}
}

// reconfigure applies the configuration of a later Provision (a config
// reload) to a state that already exists: whatever the new configuration
// changes takes effect, the rest of the state is kept.
func (s *state) reconfigure(cfg config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cfg
	s.cfg = cfg
	s.processLocked() // what is due under the old receipt_delay is processed under it
	if old.settings != cfg.settings {
		s.settings = cfg.settings
	}
	if !old.balances[APICrystalPay].Equal(cfg.balances[APICrystalPay]) {
		s.crystalPay.balance = cfg.balances[APICrystalPay]
	}
	if !old.balances[APIPegas].Equal(cfg.balances[APIPegas]) {
		s.pegas.balance = cfg.balances[APIPegas]
	}
	if !sameFaults(old.faults, cfg.faults) {
		s.faults = slices.DeleteFunc(s.faults, func(f *Fault) bool { return f.configured })
		for _, f := range cfg.faults {
			s.faults = append(s.faults, &f)
		}
	}
}

func sameFaults(a, b []Fault) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// stateView is the JSON of GET /control/state.
type stateView struct {
	CrystalPay   crystalPayView   `json:"crystalpay"`
	Pegas        pegasView        `json:"pegas"`
	SmartCashier smartCashierView `json:"smartcashier"`
	Settings     settingsView     `json:"settings"`
}

// view takes a snapshot of the whole state.
func (s *state) view() stateView {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.processLocked()
	s.processPayoffsLocked()
	v := stateView{
		CrystalPay: crystalPayView{
			Balance:     s.crystalPay.balance.String(),
			Invoices:    []crystalPayInvoiceView{},
			Withdrawals: []crystalPayWithdrawalView{},
			V3Invoices:  []v3InvoiceView{},
			Payoffs:     []v3PayoffInfo{},
		},
		Pegas: pegasView{
			Balance:     s.pegas.balance.StringFixed(2),
			Invoices:    []pegasInvoiceView{},
			Withdrawals: []pegasWithdrawalView{},
		},
		SmartCashier: smartCashierView{
			Operations: []cashierOperationView{},
			Cash:       map[string]string{},
		},
		Settings: viewSettings(s.settings),
	}
	for _, id := range s.crystalPay.order {
		v.CrystalPay.Invoices = append(v.CrystalPay.Invoices, s.crystalPay.invoices[id].view())
	}
	for _, w := range s.crystalPay.withdrawals {
		v.CrystalPay.Withdrawals = append(v.CrystalPay.Withdrawals, w.view())
	}
	for _, id := range s.crystalPayV3.invoiceOrder {
		inv := s.crystalPayV3.invoices[id]
		v.CrystalPay.V3Invoices = append(v.CrystalPay.V3Invoices, v3InvoiceView{inv.info(), inv.payerDetails})
	}
	for _, id := range s.crystalPayV3.payoffOrder {
		v.CrystalPay.Payoffs = append(v.CrystalPay.Payoffs, s.crystalPayV3.payoffs[id].info())
	}
	for _, id := range slices.Sorted(maps.Keys(s.pegas.invoices)) {
		v.Pegas.Invoices = append(v.Pegas.Invoices, s.pegas.invoices[id].view())
	}
	for _, w := range s.pegas.withdrawals {
		v.Pegas.Withdrawals = append(v.Pegas.Withdrawals, w.view())
	}
	for _, id := range s.cashier.order {
		v.SmartCashier.Operations = append(v.SmartCashier.Operations, s.cashier.operations[id].view())
	}
	for box, cash := range s.cashier.cash {
		v.SmartCashier.Cash[box] = cash.StringFixed(2)
	}
	return v
}
