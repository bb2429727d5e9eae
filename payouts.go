package kassa

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/shopspring/decimal"
	"go.uber.org/zap"
)

// payoutRequest is a payout as an operator posts it.
type payoutRequest struct {
	Payment string `json:"payment"`
	Amount  string `json:"amount"`
	To      string `json:"to"`
	Method  string `json:"method"`
	Comment string `json:"comment"`
	OrderID string `json:"order_id"`
}

// adminPayout sends money from a payment account, at most once per
// Idempotency-Key. The payout's record is stored before the provider hears
// of it and again with the outcome, so a retry, a double click or a lost
// reply answers with the first outcome instead of paying again; an outcome
// that is not known is never sent again, except to a provider that refuses
// a repeated order id (Pegas-kassa), under the same order id. A provider
// that makes payouts in two steps (TwoStepPayer) is asked by the payout's
// id instead (payoutsteps.go).
func (a *App) adminPayout(w http.ResponseWriter, r *http.Request) error {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		return badRequest("idempotency_key_required", "Idempotency-Key",
			"send an Idempotency-Key header, new for each payout you mean to make (caddy kassa payout sends one): "+
				"a payout is made at most once per key, whatever retries happen")
	}
	if err := ValidIdempotencyKey(key); err != nil {
		return err
	}
	var req payoutRequest
	if err := decodeAdminBody(r, &req); err != nil {
		return err
	}
	if req.Payment == "" {
		return badRequest("bad_payment", "payment", "name the payment account")
	}
	acc, ok := a.accounts[req.Payment]
	if !ok {
		return badRequest("bad_payment", "payment", "no payment account %s (there are: %s)", quoteInput(req.Payment), a.accountNames())
	}
	amount, err := ParseAmount("amount", req.Amount)
	if err != nil {
		return err
	}
	if err := checkPayoutText(req); err != nil {
		return err
	}

	scope := payoutScope(acc.name, key)
	unlock := a.locks.payouts.lock(scope)
	defer unlock()
	// From here on an operator who hangs up does not cut the payout short:
	// the provider's timeout bounds it, and its outcome is recorded. The
	// storage lock keeps another instance from sending the same key's
	// payout at once (a double click that a load balancer split).
	ctx := context.WithoutCancel(r.Context())
	return a.withStorageLock(ctx, "kassa/payouts/"+scope, func() error {
		return a.payoutUnderKey(ctx, w, acc, req, amount, scope)
	})
}

// payoutUnderKey makes, or answers again, the payout of one key, under the
// key's locks.
func (a *App) payoutUnderKey(ctx context.Context, w http.ResponseWriter, acc *account, req payoutRequest, amount decimal.Decimal, scope string) error {
	p := &payout{acc: acc, req: req, amount: amount, storageKey: payoutStorageKey(scope), keyHash: scope[:12]}
	p.steps, _ = acc.PaymentProvider.(TwoStepPayer)
	rec, err := a.loadPayout(ctx, p.storageKey)
	if err != nil {
		return err // nothing was sent
	}
	fingerprint := payoutFingerprint(req, amount)
	if rec == nil {
		now := a.now().UTC()
		rec = &payoutRecord{Account: acc.name, Provider: acc.provider, Fingerprint: fingerprint, State: payoutSending,
			Amount: FormatAmount(amount), Method: req.Method, OrderID: req.OrderID, CreatedAt: now}
		if _, ok := acc.PaymentProvider.(OrderIDIdempotent); (ok || p.steps != nil) && rec.OrderID == "" {
			rec.OrderID = payoutOrderID(scope)
		}
		if p.steps != nil {
			rec.TwoStep = true
			return a.createPayout(ctx, w, p, rec)
		}
		return a.sendPayout(ctx, w, p, rec)
	}
	if rec.Fingerprint != fingerprint {
		return &RequestError{Status: http.StatusUnprocessableEntity, Code: "idempotency_key_reused", Field: "Idempotency-Key",
			Message: "this Idempotency-Key was used at " + rec.CreatedAt.Format(time.RFC3339) +
				" for another payout: send a new key for a new payout"}
	}
	switch rec.State {
	case payoutSent, payoutFailed:
		w.Header().Set("Idempotent-Replayed", "true")
		return answerPayout(w, rec, false)
	case payoutCreated:
		return a.resumePayout(ctx, w, p, rec)
	case payoutSending:
		if wait := rec.UpdatedAt.Add(creatingGrace(acc)).Sub(a.now()); wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
			return &RequestError{Status: http.StatusConflict, Code: "payout_in_progress",
				Message: "this payout is being sent right now; ask again in a moment for its outcome"}
		}
	}
	// Sending for too long (the shop stopped mid-call), or unknown.
	if rec.TwoStep && rec.State == payoutSending {
		// Stopped before the payout's id was stored: it was never submitted.
		return a.payoutNotMade(ctx, w, p, rec, "the shop stopped before it stored the payout's id")
	}
	if p.resendable(rec) {
		// The provider refuses a repeated order id: sending it again pays
		// at most once, and tells what became of the first.
		return a.sendPayout(ctx, w, p, rec)
	}
	sentAt := rec.UpdatedAt
	if rec.State == payoutSending {
		rec.State, rec.UpdatedAt = payoutUnknown, a.now().UTC()
		rec.Error = &adminErrorBody{Code: "payout_outcome_unknown", Message: "the shop stopped while the payout was being sent"}
		if err := a.storePayout(ctx, p.storageKey, rec); err != nil {
			return err
		}
		p.log(a.logger, rec, nil)
	}
	return &RequestError{Status: http.StatusConflict, Code: "payout_outcome_unknown",
		Message: "this payout was sent at " + sentAt.Format(time.RFC3339) + " and its outcome is unknown (" + rec.Error.Message + "): " +
			"check " + acc.provider + "'s dashboard before doing anything else. It is never sent again under this key; " +
			"if the dashboard shows no such payout, send it with a new key"}
}

// payout is one payout request on its way: what the operator asked for,
// and where its record is kept.
type payout struct {
	acc        *account
	req        payoutRequest
	amount     decimal.Decimal
	storageKey string
	// keyHash is the start of the key's scope hash, which names the
	// payout in logs.
	keyHash string
	// steps is the account's provider when it makes payouts in two steps;
	// nil otherwise.
	steps TwoStepPayer
}

// resendable reports whether rec may be sent again after a lost reply: its
// provider refuses a repeated order id, and it has one.
func (p *payout) resendable(rec *payoutRecord) bool {
	_, ok := p.acc.PaymentProvider.(OrderIDIdempotent)
	return ok && rec.OrderID != ""
}

// sendPayout records that rec is being sent, sends it and records its
// outcome, then answers with it. When the first record cannot be written
// nothing is sent.
func (a *App) sendPayout(ctx context.Context, w http.ResponseWriter, p *payout, rec *payoutRecord) error {
	rec.State, rec.Attempts, rec.UpdatedAt = payoutSending, rec.Attempts+1, a.now().UTC()
	if err := a.storePayout(ctx, p.storageKey, rec); err != nil {
		return err
	}
	out, err := p.acc.Payout(ctx, PayoutRequest{Amount: p.amount, To: p.req.To, Method: p.req.Method, Comment: p.req.Comment, OrderID: rec.OrderID})
	rec.State, rec.UpdatedAt = payoutOutcome(err, rec.Attempts > 1, rec.OrderID != p.req.OrderID), a.now().UTC()
	rec.Error, rec.Status = nil, 0
	switch {
	case rec.State == payoutSent && err == nil:
		rec.PayoutID, rec.Commission = out.ID, FormatAmount(out.Commission)
	case rec.State == payoutSent:
		rec.IDUnknown = true
	default:
		body := adminError(err)
		rec.Error, rec.Status = &body, StatusCode(err)
	}
	if serr := a.storePayout(ctx, p.storageKey, rec); serr != nil {
		// The answer still tells what happened; a retry meets the record
		// in sending, and recovers it as a lost reply.
		a.logger.Error("operator: storing a payout's outcome", zap.String("account", p.acc.name),
			zap.String("key_hash", p.keyHash), zap.String("state", string(rec.State)), zap.Error(serr))
	}
	p.log(a.logger, rec, err)
	return answerPayout(w, rec, p.resendable(rec))
}

// log writes the one line of a payout's outcome.
func (p *payout) log(logger *zap.Logger, rec *payoutRecord, err error) {
	fields := []zap.Field{zap.String("account", p.acc.name), zap.String("provider", p.acc.provider),
		zap.String("method", rec.Method), zap.String("state", string(rec.State)), zap.String("key_hash", p.keyHash),
		zap.Int("attempt", rec.Attempts)}
	if rec.OrderID != "" {
		fields = append(fields, zap.String("order_id", rec.OrderID))
	}
	if rec.PayoutState != "" {
		fields = append(fields, zap.String("payout_state", string(rec.PayoutState)))
	}
	switch rec.State {
	case payoutSent:
		logger.Info("operator: payout sent", append(fields, zap.String("payout_id", rec.PayoutID), zap.Bool("id_unknown", rec.IDUnknown))...)
	case payoutCreated:
		logger.Info("operator: payout created", append(fields, zap.String("payout_id", rec.PayoutID))...)
	case payoutFailed:
		if rec.PayoutID != "" {
			fields = append(fields, zap.String("payout_id", rec.PayoutID))
		}
		logger.Warn("operator: payout failed", append(fields, zap.Error(err))...)
	default:
		if err != nil {
			fields = append(fields, zap.Error(err))
		}
		logger.Error("operator: payout outcome unknown: check the provider's dashboard", fields...)
	}
}

// payoutOutcome is the state a send leaves a payout in: sent, failed when
// the provider refused it (nothing was paid), or unknown when it may have
// been paid. A refusal of a repeated order id means an earlier send went
// through when this key sent it before (resent) or the id is made from the
// key (ownID); an id the operator gave may have been another payout's. A
// resent payout that meets any other refusal stays unknown: the refusal
// does not tell whether the first send went through.
func payoutOutcome(err error, resent, ownID bool) payoutState {
	switch {
	case err == nil:
		return payoutSent
	case errors.Is(err, ErrDuplicate) && (resent || ownID):
		return payoutSent
	case resent, errors.Is(err, ErrUnavailable), errors.Is(err, ErrMalformedReply):
		return payoutUnknown
	case refusal(err):
		return payoutFailed
	default:
		return payoutUnknown
	}
}

// refusal reports whether err is a refusal that did nothing: a request
// refused before it was sent, or one the provider refused.
func refusal(err error) bool {
	return errors.Is(err, ErrInvalid) || errors.Is(err, ErrAuth) || errors.Is(err, ErrRejected) || errors.Is(err, ErrNotSupported)
}

// payoutAnswer is what a sent payout is answered with.
type payoutAnswer struct {
	Payment string `json:"payment"`
	// ID is the provider's payout id: empty when it gave none (CrystalPAY)
	// or it is not known.
	ID string `json:"id"`
	// Commission is empty when it is not known.
	Commission string      `json:"commission"`
	State      payoutState `json:"state"`
	// PayoutState is where the payout stands at a provider that tracks
	// payouts (processing or paid), as it last said.
	PayoutState PayoutState `json:"payout_state,omitempty"`
	// OrderID is the order id the payout was sent with.
	OrderID string `json:"order_id,omitempty"`
	Message string `json:"message,omitempty"`
}

// answerPayout answers with a payout's recorded outcome: the same answer
// for the first request and for every repeat. An unknown outcome is told
// whether a repeat may send it again (resendable).
func answerPayout(w http.ResponseWriter, rec *payoutRecord, resendable bool) error {
	switch rec.State {
	case payoutSent:
		out := payoutAnswer{Payment: rec.Account, ID: rec.PayoutID, Commission: rec.Commission, State: rec.State,
			PayoutState: rec.PayoutState, OrderID: rec.OrderID}
		if rec.IDUnknown {
			out.Message = "the provider already had this payout's order id, so an earlier send of it went through; " +
				"its payout id and commission are not known here: find them by the order id in the provider's dashboard"
		}
		return writeJSON(w, http.StatusOK, out)
	case payoutFailed:
		return &RequestError{Status: rec.Status, Code: rec.Error.Code, Field: rec.Error.Field, Message: rec.Error.Message}
	default:
		status := rec.Status
		if status < 500 {
			status = http.StatusBadGateway
		}
		msg := "the payout may have been made (" + rec.Error.Message + "): check " + rec.Provider + "'s dashboard"
		advice := "It is never sent again under this key; if the dashboard shows no such payout, send it with a new key."
		if resendable {
			msg += " for order id " + rec.OrderID
			advice = "Sending this request again with the same Idempotency-Key is safe: the provider refuses a repeated order id, so it pays at most once."
		}
		return &RequestError{Status: status, Code: "payout_outcome_unknown", Message: msg + " before doing anything else. " + advice}
	}
}

// payoutState is where a payout stands.
type payoutState string

// The states of a payout. It is sending from before the provider is asked
// until its outcome is stored; a two-step payout is created between its
// two steps, from when its id is stored until its outcome is; sent and
// failed are final; unknown means it may have been paid.
const (
	payoutSending payoutState = "sending"
	payoutCreated payoutState = "created"
	payoutSent    payoutState = "sent"
	payoutFailed  payoutState = "failed"
	payoutUnknown payoutState = "unknown"
)

// payoutRecord is the durable record of the payout made under one account
// and Idempotency-Key (kassa/payouts/<scope>.json), written before the
// provider is asked and again with its outcome.
type payoutRecord struct {
	Account  string `json:"account"`
	Provider string `json:"provider"`
	// Fingerprint is the hash of the request (payoutFingerprint): a repeat
	// of the key with another request is refused.
	Fingerprint string      `json:"fingerprint"`
	State       payoutState `json:"state"`
	Amount      string      `json:"amount"`
	Method      string      `json:"method"`
	// OrderID is the order id sent with the payout: the operator's, or
	// one made from the key for a provider that refuses a repeated one or
	// makes payouts in two steps.
	OrderID string `json:"order_id,omitempty"`
	// TwoStep marks a payout made in two steps (TwoStepPayer): created,
	// then submitted by its id. Only such a record is ever asked about by
	// id; one made in one step keeps its recovery, whatever the account's
	// provider is now.
	TwoStep bool `json:"two_step,omitempty"`
	// PayoutState is where the provider last said the payout stands, for
	// a provider that tracks payouts.
	PayoutState PayoutState `json:"payout_state,omitempty"`
	// Attempts counts the sends: more than one only for a provider that
	// refuses a repeated order id.
	Attempts   int    `json:"attempts"`
	PayoutID   string `json:"payout_id,omitempty"`
	Commission string `json:"commission,omitempty"`
	// IDUnknown marks a payout known to be sent only from the provider's
	// refusal of its repeated order id.
	IDUnknown bool `json:"id_unknown,omitempty"`
	// Error is what the operator was told of a failed or unknown payout,
	// and Status the answer's HTTP status: a repeat is told the same.
	Error     *adminErrorBody `json:"error,omitempty"`
	Status    int             `json:"status,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// payoutsPrefix is the storage prefix of the payout records.
const payoutsPrefix = "kassa/payouts"

// payoutScope is the hex SHA-256 of account + ":" + key: it names the
// payout made under a key, each account's keys apart (an account name has
// no colon).
func payoutScope(account, key string) string {
	sum := sha256.Sum256([]byte(account + ":" + key))
	return hex.EncodeToString(sum[:])
}

func payoutStorageKey(scope string) string { return payoutsPrefix + "/" + scope + ".json" }

// payoutOrderID is the order id of a payout made under scope when the
// operator gave none: stable for a key, so a provider that refuses a
// repeated order id refuses a second send of it, and a two-step payout
// left created can be told by it. 47 printable ASCII
// characters, within Pegas-kassa's 64.
func payoutOrderID(scope string) string { return "payout-" + scope[:40] }

// payoutFingerprint is the hash of a payout request in canonical form
// (the amount with two decimals), to tell a repeat of a key from its reuse
// for another payout.
func payoutFingerprint(req payoutRequest, amount decimal.Decimal) string {
	canonical, _ := json.Marshal([]string{req.Payment, FormatAmount(amount), req.To, req.Method, req.Comment, req.OrderID})
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:])
}

// loadPayout reads a payout's record; nil when there is none.
func (a *App) loadPayout(ctx context.Context, key string) (*payoutRecord, error) {
	b, err := a.storage.Load(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kassa: loading %s: %w", key, storageFailure{err})
	}
	stored := storedPayout{payoutRecord: new(payoutRecord)}
	if err := json.Unmarshal(b, &stored); err != nil {
		return nil, fmt.Errorf("kassa: %s does not hold a payout record: %v", key, err)
	}
	if err := checkRecordVersion(stored.V); err != nil {
		return nil, fmt.Errorf("kassa: payout record %s: %w", key, err)
	}
	return stored.payoutRecord, nil
}

// storePayout writes a payout's record, with "v" (records.go).
func (a *App) storePayout(ctx context.Context, key string, rec *payoutRecord) error {
	b, err := json.Marshal(storedPayout{V: recordVersion, payoutRecord: rec})
	if err != nil {
		return err
	}
	if err := a.storage.Store(ctx, key, b); err != nil {
		return fmt.Errorf("kassa: storing %s: %w", key, storageFailure{err})
	}
	return nil
}

// maxPayoutToken bounds a payout's payee, method and order id.
const maxPayoutToken = 64

// checkPayoutText refuses what no provider's payee, method or order id
// looks like before a provider hears of it: anything but 1 to 64 ASCII
// letters, digits and + - . _ @ (the order id may be absent), and a comment
// with control characters or bidi controls. Money sent to a payee that
// displays as another cannot be called back.
func checkPayoutText(req payoutRequest) error {
	for _, f := range []struct{ name, value string }{{"to", req.To}, {"method", req.Method}, {"order_id", req.OrderID}} {
		if f.name == "order_id" && f.value == "" {
			continue
		}
		ok := len(f.value) >= 1 && len(f.value) <= maxPayoutToken
		for i := 0; ok && i < len(f.value); i++ {
			c := f.value[i]
			ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("+-._@", c) >= 0
		}
		if !ok {
			return badRequest("bad_"+f.name, f.name, "%s must be 1 to %d ASCII letters, digits or + - . _ @", f.name, maxPayoutToken)
		}
	}
	if strings.ContainsFunc(req.Comment, unicode.IsControl) || hasBidiControl(req.Comment) {
		return badRequest("bad_comment", "comment", "the comment must not contain control characters or bidi controls")
	}
	return nil
}
