package kassa

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// payoutView is a payout as GET /kassa/payouts/{id} shows it: where it
// stands at its account's provider.
type payoutView struct {
	Payment    string      `json:"payment"`
	ID         string      `json:"id"`
	State      PayoutState `json:"state"`
	Commission string      `json:"commission"`
}

// adminPayoutStatus asks an account's provider where the payout of the
// provider's id stands: the account of ?payment=, or the only one whose
// provider tracks payouts (TwoStepPayer). The id is checked before any
// call.
func (a *App) adminPayoutStatus(w http.ResponseWriter, r *http.Request, id string) error {
	if !validPayoutID(id) {
		return badRequest("bad_payout_id", "id", "a payout id is 1 to %d ASCII letters, digits, dots, underscores or dashes", maxPayoutToken)
	}
	acc, steps, err := a.payoutTracker(r.URL.Query())
	if err != nil {
		return err
	}
	out, err := steps.PayoutStatus(r.Context(), id)
	if errors.Is(err, ErrNotFound) {
		return &RequestError{Status: http.StatusNotFound, Code: "unknown_payout", Message: acc.provider + " has no payout " + id + " on account " + acc.name}
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, payoutView{Payment: acc.name, ID: id, State: out.State, Commission: FormatAmount(out.Commission)})
}

// payoutTracker is the account q's payment names, which must track
// payouts; without payment, the one account that does.
func (a *App) payoutTracker(q url.Values) (*account, TwoStepPayer, error) {
	if names := q["payment"]; len(names) > 1 || len(names) == 1 && names[0] == "" {
		return nil, nil, badRequest("bad_payment", "payment", "name one payment account, or leave payment out")
	}
	if name := q.Get("payment"); name != "" {
		acc, ok := a.accounts[name]
		if !ok {
			return nil, nil, badRequest("bad_payment", "payment", "no payment account %s (there are: %s)", quoteInput(name), a.accountNames())
		}
		steps, ok := acc.PaymentProvider.(TwoStepPayer)
		if !ok {
			return nil, nil, badRequest("payouts_not_tracked", "payment",
				"account %s pays out through %s, which gives payouts no status to ask for: see its dashboard", acc.name, acc.provider)
		}
		return acc, steps, nil
	}
	var trackers []*account
	for _, acc := range a.sortedAccounts() {
		if _, ok := acc.PaymentProvider.(TwoStepPayer); ok {
			trackers = append(trackers, acc)
		}
	}
	switch len(trackers) {
	case 0:
		return nil, nil, badRequest("payouts_not_tracked", "payment", "no payment account's provider gives payouts a status to ask for")
	case 1:
		return trackers[0], trackers[0].PaymentProvider.(TwoStepPayer), nil
	}
	names := make([]string, len(trackers))
	for i, acc := range trackers {
		names[i] = acc.name
	}
	return nil, nil, badRequest("bad_payment", "payment", "name the payment account: several track payouts (%s)", strings.Join(names, ", "))
}

// validPayoutID reports whether id looks like a provider's payout id:
// 1 to 64 ASCII letters, digits, dots, underscores or dashes.
func validPayoutID(id string) bool { return validIdent(id, maxPayoutToken, "") }
