package sandbox

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 5, 1, 14, 29, 59, 628293600, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testSandbox is a provisioned handler behind an httptest server.
type testSandbox struct {
	t     *testing.T
	h     *Handler
	srv   *httptest.Server
	clock *fakeClock
}

// provision provisions h under a name unique to the test and releases it
// when the test ends.
func provision(t *testing.T, h *Handler) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Cleanup(); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
	})
}

// newTestSandbox starts a sandbox with a fake clock; configure may change
// the handler's configuration before it is provisioned.
func newTestSandbox(t *testing.T, configure func(h *Handler)) *testSandbox {
	t.Helper()
	h := &Handler{Name: t.Name()}
	if configure != nil {
		configure(h)
	}
	provision(t, h)
	h.logger = zap.NewNop()
	clock := newFakeClock()
	h.st.setClock(clock.Now)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.ServeHTTP(w, r, nil); err != nil {
			t.Errorf("ServeHTTP: %v", err)
		}
	}))
	t.Cleanup(srv.Close)
	return &testSandbox{t: t, h: h, srv: srv, clock: clock}
}

// reply is an answered request.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// decode decodes the body as JSON into a fresh map.
func (r reply) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

// do sends a request; headers are name, value pairs.
func (s *testSandbox) do(method, path, body string, headers ...string) reply {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.srv.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// get sends a GET.
func (s *testSandbox) get(path string, headers ...string) reply {
	s.t.Helper()
	return s.do(http.MethodGet, path, "", headers...)
}

// postJSON sends a POST with a JSON body.
func (s *testSandbox) postJSON(path, body string, headers ...string) reply {
	s.t.Helper()
	return s.do(http.MethodPost, path, body, append([]string{"Content-Type", "application/json"}, headers...)...)
}

// control calls the control endpoint and decodes its JSON reply into v (if
// not nil), failing the test unless the status is want.
func (s *testSandbox) control(method, route, body string, want int, v any) {
	s.t.Helper()
	r := s.do(method, "/control/"+route, body, "Content-Type", "application/json")
	if r.status != want {
		s.t.Fatalf("%s /control/%s: status %d, want %d: %s", method, route, r.status, want, r.body)
	}
	if v != nil {
		if err := json.Unmarshal(r.body, v); err != nil {
			s.t.Fatalf("%s /control/%s: %v\n%s", method, route, err, r.body)
		}
	}
}

// addFault adds a fault through the control endpoint.
func (s *testSandbox) addFault(fault string) {
	s.t.Helper()
	s.control(http.MethodPost, "faults", fault, http.StatusOK, nil)
}

// calls reads the journal.
func (s *testSandbox) calls(query string) []Call {
	s.t.Helper()
	var out struct{ Calls []Call }
	s.control(http.MethodGet, "calls"+query, "", http.StatusOK, &out)
	return out.Calls
}

// state reads GET /control/state.
func (s *testSandbox) state() stateJSON {
	s.t.Helper()
	var st stateJSON
	s.control(http.MethodGet, "state", "", http.StatusOK, &st)
	return st
}

// stateJSON is GET /control/state as a client reads it.
type stateJSON struct {
	CrystalPay struct {
		Balance  string
		Invoices []struct {
			ID, Amount, State, URL string
		}
		Withdrawals []map[string]any
		V3Invoices  []map[string]any `json:"v3_invoices"`
		Payoffs     []map[string]any
	}
	Pegas struct {
		Balance  string
		Invoices []struct {
			ID                              int64
			OrderID                         string `json:"order_id"`
			Amount, Commission, State, Type string
		}
		Withdrawals []map[string]any
	}
	SmartCashier struct {
		Operations []struct {
			OperationID string
			Kind        string
			Attempts    int
			Request     json.RawMessage
			Result      map[string]any
		}
		Cash map[string]string
	}
	Settings map[string]any
}

// crystalPayURL is an api.php URL with the default credentials.
func crystalPayURL(params ...string) string {
	q := url.Values{"s": {DefaultCrystalPaySecret}, "n": {DefaultCrystalPayLogin}}
	for i := 0; i+1 < len(params); i += 2 {
		q.Add(params[i], params[i+1])
	}
	return "/crystalpay/api.php?" + q.Encode()
}

// wantJSON fails unless the reply has the status and its body decodes to
// the same JSON value as want.
func wantJSON(t *testing.T, r reply, status int, want string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	var got, exp any
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("reply is not JSON: %v: %s", err, r.body)
	}
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		t.Fatalf("bad want: %v", err)
	}
	g, _ := json.Marshal(got)
	e, _ := json.Marshal(exp)
	if string(g) != string(e) {
		t.Fatalf("reply\n%s\nwant\n%s", g, e)
	}
}

// decodeJSON decodes a response body.
func decodeJSON(r *http.Response, v any) error {
	return json.NewDecoder(r.Body).Decode(v)
}
