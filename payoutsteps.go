package kassa

import (
	"context"
	"net/http"

	"go.uber.org/zap"
)

// Payouts in two steps (TwoStepPayer: CrystalPAY v3 payoff/create, then
// payoff/submit). The record is stored in sending, then created with the
// payout's id, then with its outcome; only a submit pays. So under one
// Idempotency-Key a payout is created at most once (a record without an id
// is never created again: nothing was submitted under it), and a record
// with an id is finished by asking the provider where that payout stands,
// never by creating another. A created payout is submitted only when the
// provider says it is still created.

// createPayout makes a new two-step payout: it stores rec in sending,
// creates the payout, stores its id, then submits it. When the first
// record cannot be written nothing is sent; when the id cannot be stored
// the payout is not submitted.
func (a *App) createPayout(ctx context.Context, w http.ResponseWriter, p *payout, rec *payoutRecord) error {
	rec.State, rec.Attempts, rec.UpdatedAt = payoutSending, rec.Attempts+1, a.now().UTC()
	if err := a.storePayout(ctx, p.storageKey, rec); err != nil {
		return err
	}
	out, err := p.steps.CreatePayout(ctx, PayoutRequest{Amount: p.amount, To: p.req.To, Method: p.req.Method, Comment: p.req.Comment, OrderID: rec.OrderID})
	if err == nil && out.ID == "" {
		err = &ProviderError{Provider: p.acc.provider, Op: "create payout", Kind: ErrMalformedReply, Message: "the reply names no payout id"}
	}
	switch {
	case err != nil && refusal(err):
		body := adminError(err)
		rec.State, rec.UpdatedAt, rec.Error, rec.Status = payoutFailed, a.now().UTC(), &body, StatusCode(err)
		return a.finishPayout(ctx, w, p, rec, err)
	case err != nil:
		// Perhaps created, its id unknown: never submitted, it pays nothing.
		return a.payoutNotMade(ctx, w, p, rec, "creating it got no usable reply: "+adminError(err).Message)
	}
	rec.State, rec.UpdatedAt, rec.PayoutID = payoutCreated, a.now().UTC(), out.ID
	rec.Commission, rec.PayoutState = FormatAmount(out.Commission), out.State
	if err := a.storePayout(ctx, p.storageKey, rec); err != nil {
		// A retry meets the record in sending and answers that the payout
		// was not made, which holds: it is not submitted, and withdrawn
		// if the provider lets it.
		if _, cerr := p.steps.CancelPayout(ctx, out.ID); cerr != nil {
			a.logger.Error("operator: a created payout whose id could not be stored is left created: cancel it in the provider's dashboard",
				zap.String("account", p.acc.name), zap.String("key_hash", p.keyHash), zap.String("payout_id", out.ID), zap.Error(cerr))
		}
		return err
	}
	p.log(a.logger, rec, nil)
	return a.submitPayout(ctx, w, p, rec)
}

// submitPayout pays a created payout whose id is stored. A lost reply
// leaves the record created, to be asked about by id; a refusal fails the
// payout, which is then cancelled so that nobody submits it later.
func (a *App) submitPayout(ctx context.Context, w http.ResponseWriter, p *payout, rec *payoutRecord) error {
	out, err := p.steps.SubmitPayout(ctx, rec.PayoutID)
	switch {
	case err == nil:
		if out.State == "" {
			out.State = PayoutProcessing
		}
		return a.settlePayout(ctx, w, p, rec, out)
	case !refusal(err):
		return p.pending(a.logger, rec, err)
	}
	body := adminError(err)
	msg := rec.Provider + " refused to pay payout " + rec.PayoutID + " (" + body.Message + ")"
	if c, cerr := p.steps.CancelPayout(ctx, rec.PayoutID); cerr == nil {
		rec.PayoutState = PayoutCanceled
		if c.State != "" {
			rec.PayoutState = c.State
		}
		msg += ": it was cancelled, so nothing was paid and it can never be"
	} else if st, serr := p.steps.PayoutStatus(ctx, rec.PayoutID); serr == nil && (st.State == PayoutProcessing || st.State == PayoutPaid) {
		// It is being paid all the same: submitted by another hand.
		return a.settlePayout(ctx, w, p, rec, st)
	} else {
		msg += ": nothing was paid, but cancelling it failed too (" + adminError(cerr).Message + "), so it may stay created at " +
			rec.Provider + ": cancel it in the dashboard and never submit it"
	}
	rec.State, rec.UpdatedAt = payoutFailed, a.now().UTC()
	rec.Error, rec.Status = &adminErrorBody{Code: body.Code, Message: msg, Field: body.Field}, StatusCode(err)
	return a.finishPayout(ctx, w, p, rec, err)
}

// resumePayout finishes a payout whose record holds its id but not its
// outcome (a lost submit reply, a stop between the steps): it asks the
// provider, submits the payout only if it is still created, and otherwise
// records what the provider says. When the provider cannot say, the record
// stays as it is.
func (a *App) resumePayout(ctx context.Context, w http.ResponseWriter, p *payout, rec *payoutRecord) error {
	if p.steps == nil {
		return &RequestError{Status: http.StatusConflict, Code: "payout_outcome_unknown",
			Message: "payout " + rec.PayoutID + " was created at " + rec.Provider + ", whose payouts account " + rec.Account +
				" can no longer ask about: check the provider's dashboard for it before doing anything else"}
	}
	st, err := p.steps.PayoutStatus(ctx, rec.PayoutID)
	if err != nil {
		return p.pending(a.logger, rec, err)
	}
	switch st.State {
	case PayoutCreated:
		return a.submitPayout(ctx, w, p, rec)
	case PayoutProcessing, PayoutPaid, PayoutFailed, PayoutCanceled:
		// Settled by an earlier request's submit: this one pays nothing.
		w.Header().Set("Idempotent-Replayed", "true")
	}
	return a.settlePayout(ctx, w, p, rec, st)
}

// settlePayout records what the provider says of a submitted payout: sent
// while it is being paid or once paid, failed once it failed or was
// cancelled. A state it does not know leaves the record as it is.
func (a *App) settlePayout(ctx context.Context, w http.ResponseWriter, p *payout, rec *payoutRecord, out Payout) error {
	switch out.State {
	case PayoutProcessing, PayoutPaid:
		rec.State, rec.Error, rec.Status = payoutSent, nil, 0
	case PayoutFailed, PayoutCanceled:
		rec.State, rec.Status = payoutFailed, http.StatusBadGateway
		rec.Error = &adminErrorBody{Code: "payout_failed",
			Message: rec.Provider + " reports payout " + rec.PayoutID + " " + string(out.State) + ": nothing was paid"}
	default:
		return p.pending(a.logger, rec, &ProviderError{Provider: rec.Provider, Op: "payout status", Kind: ErrMalformedReply,
			Message: "unknown payout state " + quoteInput(string(out.State))})
	}
	rec.PayoutState, rec.UpdatedAt = out.State, a.now().UTC()
	if !out.Commission.IsZero() {
		rec.Commission = FormatAmount(out.Commission)
	}
	return a.finishPayout(ctx, w, p, rec, nil)
}

// finishPayout stores a two-step payout's outcome and answers with it. An
// outcome that cannot be stored is still answered: a retry meets the
// record as it was last stored, in sending or created, and settles it
// again (not made, or asked of the provider by id).
func (a *App) finishPayout(ctx context.Context, w http.ResponseWriter, p *payout, rec *payoutRecord, err error) error {
	if serr := a.storePayout(ctx, p.storageKey, rec); serr != nil {
		a.logger.Error("operator: storing a payout's outcome", zap.String("account", p.acc.name),
			zap.String("key_hash", p.keyHash), zap.String("state", string(rec.State)), zap.Error(serr))
	}
	p.log(a.logger, rec, err)
	return answerPayout(w, rec, false)
}

// payoutNotMade fails a two-step payout that was never submitted, for the
// reason given: nothing was paid under its key, which never creates it
// again. The provider may hold it created (its reply was lost, or the shop
// stopped before storing its id): unsubmitted, it pays nothing, and the
// operator is told to cancel it.
func (a *App) payoutNotMade(ctx context.Context, w http.ResponseWriter, p *payout, rec *payoutRecord, reason string) error {
	rec.State, rec.UpdatedAt, rec.Status = payoutFailed, a.now().UTC(), http.StatusBadGateway
	rec.Error = &adminErrorBody{Code: "payout_not_made", Message: "the payout was not made (" + reason + "): nothing was paid under this key, " +
		"and it is never created again under it. " + rec.Provider + " may hold it created and unsubmitted (order id " + rec.OrderID +
		"), which pays nothing: cancel it in the dashboard, never submit it, and send the payout again with a new key"}
	return a.finishPayout(ctx, w, p, rec, nil)
}

// pending answers for a created payout whose fate is not known yet, and
// leaves its record as it is: asked again under the same key, the
// provider is asked about it by id.
func (p *payout) pending(logger *zap.Logger, rec *payoutRecord, err error) error {
	logger.Warn("operator: payout outcome pending", zap.String("account", p.acc.name), zap.String("provider", p.acc.provider),
		zap.String("key_hash", p.keyHash), zap.String("payout_id", rec.PayoutID), zap.Error(err))
	return &RequestError{Status: http.StatusServiceUnavailable, Code: "payout_outcome_pending",
		Message: "payout " + rec.PayoutID + " was created at " + rec.Provider + " and its outcome is not known yet (" + adminError(err).Message +
			"): send this request again with the same Idempotency-Key to learn it; the provider is asked about this payout, which is never paid twice"}
}
