package sandbox

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// defaultCallbackRetries are the waits before the second, third and fourth
// delivery of a callback that was not answered 200. The provider's schedule
// is not documented: this one is the sandbox's own.
var defaultCallbackRetries = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}

// callbackTimeout bounds one delivery attempt.
const callbackTimeout = 10 * time.Second

// v3Callback is a callback waiting to be sent: the info object of an
// invoice or payoff, not yet signed.
type v3Callback struct {
	id, url string
	body    []byte
	forged  bool // signed with the wrong salt (fault forgedcallback)
}

// queueCallbackLocked queues the callback of invoice or payoff id, whose
// info object is info, for the next flushCallbacks.
func (s *state) queueCallbackLocked(id, callbackURL string, info any) {
	b, err := phpJSON(info)
	if err != nil {
		return
	}
	s.crystalPayV3.outbox = append(s.crystalPayV3.outbox, v3Callback{id: id, url: callbackURL, body: b})
}

// queueCallback queues the callback of an invoice or payoff as it is now,
// for the control endpoint. It fails with errUnknownInvoice for an unknown
// id and errNoCallbackURL for one created without a callback_url.
func (s *state) queueCallback(id string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v3 := &s.crystalPayV3
	switch inv, p := v3.invoices[id], v3.payoffs[id]; {
	case inv != nil && inv.callback != nil:
		s.queueCallbackLocked(id, *inv.callback, inv.info())
		return *inv.callback, nil
	case p != nil && p.callback != nil:
		s.queueCallbackLocked(id, *p.callback, p.info())
		return *p.callback, nil
	case inv != nil || p != nil:
		return "", errNoCallbackURL
	}
	return "", errUnknownInvoice
}

// takeCallbacks empties the queue; each callback consumes a forgedcallback
// fault if one is in force.
func (s *state) takeCallbacks() []v3Callback {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.crystalPayV3.outbox
	s.crystalPayV3.outbox = nil
	for i := range out {
		out[i].forged = s.takeForgedLocked()
	}
	return out
}

// signCallback appends "signature": sha1(id + ":" + salt) to the JSON
// object body.
func signCallback(body []byte, id, salt string) []byte {
	signed := bytes.TrimSuffix(body, []byte("}"))
	signed = append(signed[:len(signed):len(signed)], `,"signature":"`+sha1Hex(id+":"+salt)+`"}`...)
	return signed
}

// flushCallbacks sends every queued callback, each from its own goroutine.
func (h *Handler) flushCallbacks() {
	for _, cb := range h.st.takeCallbacks() {
		salt := h.creds.crystalPaySalt
		if cb.forged {
			salt = "forged-" + salt
		}
		body := signCallback(cb.body, cb.id, salt)
		h.callbacks.start(func(ctx context.Context) { h.deliver(ctx, cb, body) })
	}
}

// deliver posts a callback until it is answered 200, the retries run out
// or the handler is cleaned up, journaling every attempt.
func (h *Handler) deliver(ctx context.Context, cb v3Callback, body []byte) {
	target, _ := url.Parse(cb.url)
	fault := ""
	if cb.forged {
		fault = FaultForgedCallback
	}
	for attempt := 1; ; attempt++ {
		start := h.st.clock()
		status := h.callbacks.post(ctx, cb.url, body)
		h.st.record(Call{
			API: APICrystalPay, Op: opCallback, Method: http.MethodPost, Path: target.Path,
			URL: withoutQuery(cb.url), Query: map[string]string{}, Body: maskSecrets(body),
			Status: status, Fault: fault, Attempt: attempt, Time: start,
		})
		if status == http.StatusOK || attempt > len(h.callbacks.retryAfter) {
			return
		}
		t := time.NewTimer(h.callbacks.retryAfter[attempt-1])
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// withoutQuery is a URL without its user info, query and fragment, which
// may carry a secret.
func withoutQuery(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// callbackSender delivers callbacks from goroutines that stop when the
// handler is cleaned up, so that a config reload leaks none.
type callbackSender struct {
	client     *http.Client
	retryAfter []time.Duration
	ctx        context.Context
	cancel     context.CancelFunc

	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
}

func newCallbackSender(retryAfter []time.Duration) *callbackSender {
	ctx, cancel := context.WithCancel(context.Background())
	return &callbackSender{
		client: &http.Client{
			// A redirect is not a 200: it is not followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		retryAfter: retryAfter, ctx: ctx, cancel: cancel,
	}
}

// start runs f in a goroutine that stop waits for; f must return soon
// after ctx is done. Once stopped, start does nothing.
func (cs *callbackSender) start(f func(ctx context.Context)) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.stopped {
		return
	}
	cs.wg.Add(1)
	go func() {
		defer cs.wg.Done()
		f(cs.ctx)
	}()
}

// stop cancels every delivery and waits for its goroutine to end.
func (cs *callbackSender) stop() {
	cs.mu.Lock()
	cs.stopped = true
	cs.mu.Unlock()
	cs.cancel()
	cs.wg.Wait()
	cs.client.CloseIdleConnections()
}

// post sends one delivery attempt and returns the HTTP status (0 if none
// came back).
func (cs *callbackSender) post(ctx context.Context, target string, body []byte) int {
	ctx, cancel := context.WithTimeout(ctx, callbackTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := cs.client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	return resp.StatusCode
}
