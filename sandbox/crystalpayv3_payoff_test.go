package sandbox

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// sign is the lowercase hex SHA-1 of s, computed here rather than by the
// code under test.
func sign(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func withCrystalPayBalance(rubles int64) func(h *Handler) {
	return func(h *Handler) {
		h.Balances = map[string]decimal.Decimal{APICrystalPay: decimal.NewFromInt(rubles)}
	}
}

// createPayoff creates a payoff of amount (a literal JSON value) to card
// 4111, signed over amountText, and returns the reply.
func (s *testSandbox) createPayoff(amount, amountText, subtractFrom, more string) map[string]any {
	s.t.Helper()
	sig := sign(amountText + ":CARD:4111:sandbox-salt")
	fields := `"signature":"` + sig + `","amount":` + amount + `,"method":"CARD","wallet":"4111","subtract_from":"` + subtractFrom + `"`
	if more != "" {
		fields += "," + more
	}
	return s.v3("payoff/create", fields)
}

// decidePayoff submits or cancels a payoff with a correct signature.
func (s *testSandbox) decidePayoff(op, id string) map[string]any {
	s.t.Helper()
	return s.v3("payoff/"+op, `"id":"`+id+`","signature":"`+sign(id+":sandbox-salt")+`"`)
}

func TestCrystalPayV3PayoffSignature(t *testing.T) {
	s := newTestSandbox(t, withCrystalPayBalance(10000))
	// Each amount verifies only against the text it was sent as.
	for _, c := range []struct{ amount, signedText string }{
		{`350.5`, "350.5"}, {`350.50`, "350.50"}, {`"350.50"`, "350.50"}, {`"350.5"`, "350.5"}, {`350`, "350"},
	} {
		wantV3OK(t, s.createPayoff(c.amount, c.signedText, "amount", ""))
	}
	for _, c := range []struct{ amount, signedText string }{
		{`350.50`, "350.5"}, {`350.5`, "350.50"}, {`"350.50"`, "350.5"}, {`350`, "350.00"},
	} {
		wantV3Error(t, s.createPayoff(c.amount, c.signedText, "amount", ""), "Invalid signature")
	}
	for name, sig := range map[string]string{
		"other salt": sign("350.5:CARD:4111:other-salt"),
		"upper case": strings.ToUpper(sign("350.5:CARD:4111:sandbox-salt")),
		"secret 1":   sign("350.5:CARD:4111:sandbox-secret"),
		"order":      sign("CARD:350.5:4111:sandbox-salt"),
	} {
		m := s.v3("payoff/create", `"signature":"`+sig+`","amount":350.5,"method":"CARD","wallet":"4111","subtract_from":"amount"`)
		t.Run(name, func(t *testing.T) { wantV3Error(t, m, "Invalid signature") })
	}
	if n := len(s.state().CrystalPay.Payoffs); n != 5 {
		t.Errorf("%d payoffs, want the 5 correctly signed", n)
	}

	m := s.v3("payoff/create", "")
	for _, field := range []string{"signature", "amount", "method", "wallet", "subtract_from"} {
		wantV3Error(t, m, "`"+field+"` field is required")
	}
	wantV3Error(t, s.createPayoff(`350.555`, "350.555", "amount", ""), "`amount`")
	wantV3Error(t, s.createPayoff(`1`, "1", "both", ""), "`subtract_from`")
	wantV3Error(t, s.createPayoff(`1`, "1", "amount", `"amount_currency":"USDT"`), "`amount_currency`")
	wantV3Error(t, s.createPayoff(`1`, "1", "amount", `"callback_url":"cb"`), "`callback_url`")
	wantV3OK(t, s.createPayoff(`1`, "1", "amount", `"amount_currency":"RUB","wallet_extra":"x","extra":"p-1"`))
}

func TestCrystalPayV3PayoffLifecycle(t *testing.T) {
	s := newTestSandbox(t, withCrystalPayBalance(1000))
	created := s.createPayoff(`100`, "100", "balance", "")
	wantV3OK(t, created)
	id, _ := created["id"].(string)
	wantJSON(t, reply{status: http.StatusOK, body: mustMarshal(t, created)}, http.StatusOK, `{"error":false,"errors":[],
		"id":"`+id+`","subtract_from":"balance","method":"CARD","amount_currency":"RUB","amount":"100","rub_amount":"100",
		"receive_amount":"100","deduction_amount":"101","commission_amount":"1","wallet":"4111"}`)
	if !strings.HasPrefix(id, "123456789_") || len(id) != len("123456789_")+20 {
		t.Errorf("payoff id %q", id)
	}
	if b := s.state().CrystalPay.Balance; b != "1000" {
		t.Errorf("balance %s after create, want 1000: debited at submit", b)
	}

	wantV3Error(t, s.v3("payoff/submit", `"id":"`+id+`","signature":"`+sign(id+":other")+`"`), "Invalid signature")
	wantV3Error(t, s.v3("payoff/submit", `"id":"`+id+`"`), "`signature` field is required")
	wantV3Error(t, s.decidePayoff("submit", "123456789_nope"), "not found")
	submitted := s.decidePayoff("submit", id)
	wantV3OK(t, submitted)
	if submitted["state"] != "processing" || submitted["final_at"] != nil || submitted["message"] != nil {
		t.Errorf("submitted %v", submitted)
	}
	if b := s.state().CrystalPay.Balance; b != "899" {
		t.Errorf("balance %s after submit, want 899", b)
	}
	wantV3Error(t, s.decidePayoff("submit", id), "processing")
	wantV3Error(t, s.decidePayoff("cancel", id), "processing")

	s.clock.Advance(payoffDelay)
	info := s.v3("payoff/info", `"id":"`+id+`"`)
	if info["state"] != "payed" || info["final_at"] != "2026-05-01 17:30:00" || info["created_at"] != "2026-05-01 17:29:59" {
		t.Errorf("after a second %v, want payed", info)
	}
	wantV3Error(t, s.v3("payoff/info", ""), "`id` field is required")
	wantV3Error(t, s.v3("payoff/info", `"id":"123456789_nope"`), "not found")

	// Cancel a created payoff; it cannot be submitted after.
	canceled := s.createPayoff(`50`, "50", "amount", "")["id"].(string)
	if m := s.decidePayoff("cancel", canceled); m["state"] != "canceled" || m["final_at"] == nil {
		t.Errorf("cancel %v", m)
	}
	wantV3Error(t, s.decidePayoff("submit", canceled), "canceled")

	// A failed payoff gives its deduction back.
	failing := s.createPayoff(`500`, "500", "amount", "")["id"].(string)
	s.control(http.MethodPost, "payoff", `{"id":"`+failing+`","state":"failed"}`, http.StatusConflict, nil)
	if m := s.decidePayoff("submit", failing); m["receive_amount"] != "495" || m["deduction_amount"] != "500" {
		t.Errorf("subtract_from amount %v", m)
	}
	if b := s.state().CrystalPay.Balance; b != "399" {
		t.Errorf("balance %s while failing payoff processes, want 399", b)
	}
	var got struct{ Payoff map[string]any }
	s.control(http.MethodPost, "payoff", `{"id":"`+failing+`","state":"failed"}`, http.StatusOK, &got)
	if got.Payoff["state"] != "failed" {
		t.Errorf("control payoff %v", got.Payoff)
	}
	s.clock.Advance(time.Hour)
	if m := s.v3("payoff/info", `"id":"`+failing+`"`); m["state"] != "failed" {
		t.Errorf("a failed payoff became %v", m["state"])
	}
	if b := s.state().CrystalPay.Balance; b != "899" {
		t.Errorf("balance %s after the failure, want 899", b)
	}
	s.control(http.MethodPost, "payoff", `{"id":"123456789_nope","state":"payed"}`, http.StatusNotFound, nil)
	s.control(http.MethodPost, "payoff", `{"id":"`+failing+`","state":"canceled"}`, http.StatusBadRequest, nil)

	// The balance is checked at create and again at submit.
	wantV3Error(t, s.createPayoff(`900`, "900", "amount", ""), "Insufficient funds")
	first := s.createPayoff(`800`, "800", "amount", "")["id"].(string)
	second := s.createPayoff(`800`, "800", "amount", "")["id"].(string)
	wantV3OK(t, s.decidePayoff("submit", first))
	wantV3Error(t, s.decidePayoff("submit", second), "Insufficient funds")
	if m := s.v3("payoff/info", `"id":"`+second+`"`); m["state"] != "created" {
		t.Errorf("refused submit left the payoff %v", m["state"])
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
