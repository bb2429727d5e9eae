package kassa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestProviderClientURL(t *testing.T) {
	for base, want := range map[string]string{
		"https://pegas.example/api/v1":  "https://pegas.example/api/v1/deposit/cancel?id=7",
		"https://pegas.example/api/v1/": "https://pegas.example/api/v1/deposit/cancel?id=7",
	} {
		c, err := NewProviderClient("pegas", base, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.URL("/deposit/cancel", url.Values{"id": {"7"}}).String(); got != want {
			t.Errorf("%s: got %s, want %s", base, got, want)
		}
		if c.timeout != defaultTimeout {
			t.Errorf("default timeout = %v", c.timeout)
		}
	}
	c, _ := NewProviderClient("crystalpay", "https://api.crystalpay.ru/api.php", time.Second)
	if got := c.URL("", url.Values{"o": {"balance"}}).String(); got != "https://api.crystalpay.ru/api.php?o=balance" {
		t.Errorf("got %s", got)
	}
}

func TestRedact(t *testing.T) {
	c, _ := NewProviderClient("x", "http://127.0.0.1/", 0, "p@ss word/1", "", "tok")
	got := c.Redact("a p@ss word/1 b p%40ss+word%2F1 c p@ss%20word%2F1 d tok")
	if strings.Contains(got, "ss") || strings.Contains(got, "tok") {
		t.Errorf("redact left a secret: %q", got)
	}
	if strings.Count(got, "[redacted]") != 4 {
		t.Errorf("redact = %q", got)
	}
	if len(c.secrets) != 2 {
		t.Errorf("empty secret kept: %q", c.secrets)
	}
	one := c.WithSecrets("sig")
	if c.Redact("sig") != "sig" || one.Redact("sig tok") != "[redacted] [redacted]" {
		t.Error("WithSecrets must add to a copy only")
	}
}

// TestCleanRedactsWhatFlatteningJoins: a secret with a space in it,
// echoed across a line break, is whole only once the white space is
// flattened; Clean removes it all the same, and never leaves part of one
// at its cut.
func TestCleanRedactsWhatFlatteningJoins(t *testing.T) {
	const secret = "p@ss word/1"
	c, _ := NewProviderClient("x", "http://127.0.0.1/", 0, secret)
	for name, in := range map[string]string{
		"line break": "bad credentials p@ss\nword/1",
		"tab":        "bad credentials p@ss\t word/1 again",
		"at the cut": strings.Repeat("x", maxReplyText-5) + " " + secret,
	} {
		t.Run(name, func(t *testing.T) {
			got := c.Clean(in)
			if strings.Contains(got, secret) || strings.Contains(got, "p@ss") || len(got) > maxReplyText+len("…") {
				t.Errorf("Clean(%.40q...) = %.60q...", in, got)
			}
		})
	}
}

func TestSafeURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://u:p@api.example/api.php?s=secret&n=x#frag":  "https://api.example/api.php",
		"http://127.0.0.1:9080/pegas/api/v1/deposit?token=t": "http://127.0.0.1:9080/pegas/api/v1/deposit",
		"::": "(unparsable URL)",
	} {
		if got := safeURL(raw); got != want {
			t.Errorf("safeURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestTransportErrorsAreScrubbed(t *testing.T) {
	c, _ := NewProviderClient("crystalpay", closedEndpoint(t)+"/api.php", time.Second, "hunter2")
	_, _, err := c.Call(context.Background(), "balance", http.MethodGet,
		c.URL("", url.Values{"s": {"hunter2"}}), nil, nil)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "?") {
		t.Errorf("error carries the query: %v", err)
	}
	if !strings.Contains(err.Error(), "/api.php") {
		t.Errorf("error should still say which endpoint failed: %v", err)
	}

	// A timeout stays a deadline error under the scrubbing.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer slow.Close()
	c, _ = NewProviderClient("smartcashier", slow.URL, 50*time.Millisecond)
	_, _, err = c.Call(context.Background(), "checkStatus", http.MethodGet, c.URL("", nil), nil, nil)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want ErrUnavailable and DeadlineExceeded", err)
	}
}

func TestCallRefusesHugeReply(t *testing.T) {
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", maxReplyBytes+10)))
	}))
	defer big.Close()
	c, _ := NewProviderClient("pegas", big.URL, time.Second)
	_, _, err := c.Call(context.Background(), "balance", http.MethodGet, c.URL("", nil), nil, nil)
	var pe *ProviderError
	if !errors.As(err, &pe) || pe.Kind != ErrMalformedReply || len(pe.Body) > maxBodyExcerpt {
		t.Errorf("err = %v", err)
	}
}

// TestConnectionsAreReused proves one keep-alive connection serves
// sequential calls, and that Cleanup's close drops it.
func TestConnectionsAreReused(t *testing.T) {
	var mu sync.Mutex
	conns := map[net.Conn]http.ConnState{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"balance":"1","auth":"ok"}`))
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		mu.Lock()
		conns[c] = s
		mu.Unlock()
	}
	srv.Start()
	defer srv.Close()

	c, _ := NewProviderClient("crystalpay", srv.URL, time.Second)
	for range 20 {
		if _, _, err := c.Call(context.Background(), "balance", http.MethodGet, c.URL("", nil), nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	n := len(conns)
	mu.Unlock()
	if n != 1 {
		t.Errorf("20 calls opened %d connections, want 1", n)
	}
	c.Close()
	deadline := time.Now().Add(2 * time.Second)
	for {
		mu.Lock()
		state := conns[firstConn(conns)]
		mu.Unlock()
		if state == http.StateClosed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection still %v after close", state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func firstConn(m map[net.Conn]http.ConnState) net.Conn {
	for c := range m {
		return c
	}
	return nil
}

func TestNoRedirectIsFollowed(t *testing.T) {
	var hits int
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/steal?"+r.URL.RawQuery, http.StatusFound)
	}))
	defer srv.Close()
	c, _ := NewProviderClient("crystalpay", srv.URL, time.Second)
	status, _, err := c.Call(context.Background(), "balance", http.MethodGet, c.URL("", url.Values{"s": {"x"}}), nil, nil)
	if err != nil || status != http.StatusFound || hits != 0 {
		t.Errorf("status %d, err %v, redirect target hit %d times", status, err, hits)
	}
}

func TestFlexString(t *testing.T) {
	for in, want := range map[string]string{`"1_ab"`: "1_ab", `100001`: "100001", `null`: "", `1.5e3`: "1.5e3"} {
		var f flexString
		if err := json.Unmarshal([]byte(in), &f); err != nil || string(f) != want {
			t.Errorf("%s: %q, %v", in, f, err)
		}
	}
	for _, in := range []string{`true`, `{}`, `[1]`} {
		var f flexString
		if err := json.Unmarshal([]byte(in), &f); err == nil {
			t.Errorf("%s accepted as %q", in, f)
		}
	}
}

func TestExcerptRedactsAcrossTheCut(t *testing.T) {
	c, _ := NewProviderClient("pegas", "http://127.0.0.1/", 0, "TOKEN-0123456789")
	body := strings.Repeat("x", maxBodyExcerpt-5) + "TOKEN-0123456789 and more"
	got := c.excerpt([]byte(body))
	if strings.Contains(got, "TOKEN") || len(got) > maxBodyExcerpt {
		t.Errorf("excerpt = ...%q", got[len(got)-20:])
	}
	err := c.Malformed("balance", 200, nil, "bad %q", "TOKEN-0123456789")
	if strings.Contains(err.Error(), "TOKEN") {
		t.Errorf("malformed message carries the token: %v", err)
	}
}

// TestMoneyMovingCallsAreNeverReplayed: a provider acts on a request, then
// the reused keep-alive connection dies before the reply. net/http would
// re-send a plain GET by itself; an operation marked SendOnce is sent
// once and fails as unavailable.
func TestMoneyMovingCallsAreNeverReplayed(t *testing.T) {
	for _, tc := range []struct {
		op        string
		neverOnce bool
		get       bool // a GET even with a body (an empty one)
		body      []byte
		want      int
	}{
		{"generate", true, true, nil, 1},
		{"checkpay", false, true, nil, 2},
		// An empty body becomes http.NoBody, which net/http replays.
		{"create", true, true, []byte{}, 1},
		// net/http replays a POST that carries an Idempotency-Key.
		{"payout", true, false, []byte(`{}`), 1},
		{"withdraw", true, false, []byte{}, 1},
		{"refund", false, false, []byte(`{}`), 2},
	} {
		t.Run(tc.op, func(t *testing.T) {
			var mu sync.Mutex
			received := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				received++
				mu.Unlock()
				if r.URL.Query().Get("warm") != "" {
					w.Write([]byte("{}"))
					return
				}
				conn, _, _ := w.(http.Hijacker).Hijack()
				conn.Close()
			}))
			c, _ := NewProviderClient("crystalpay", srv.URL, time.Second)
			if tc.neverOnce {
				c.SendOnce(tc.op)
			}
			ctx := context.Background()
			if _, _, err := c.Call(ctx, "balance", http.MethodGet, c.URL("", url.Values{"warm": {"1"}}), nil, nil); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			received = 0
			mu.Unlock()
			method, header := http.MethodGet, http.Header(nil)
			if !tc.get {
				method, header = http.MethodPost, http.Header{"Idempotency-Key": {"k1"}}
			}
			_, _, err := c.Call(ctx, tc.op, method, c.URL("", url.Values{"o": {tc.op}}), header, tc.body)
			mu.Lock()
			got := received
			mu.Unlock()
			if tc.neverOnce && !errors.Is(err, ErrUnavailable) {
				t.Errorf("%s: err = %v, want ErrUnavailable", tc.op, err)
			}
			if got != tc.want {
				t.Errorf("%s: the provider received %d requests, want %d", tc.op, got, tc.want)
			}
			srv.Close()
		})
	}
}

// TestJSONCalls: GetJSON and PostJSON send JSON, decode a 2xx reply, and
// turn any other reply into a ProviderError of the status's kind, with the
// error reply's code and message, whose text carries no secret.
func TestJSONCalls(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "application/json" || r.Header.Get("Authorization") != "Bearer s3cret" {
			t.Errorf("%s %s: headers %v", r.Method, r.URL, r.Header)
		}
		status, _ := strconv.Atoi(r.URL.Query().Get("status"))
		if r.Method == http.MethodPost {
			var in struct{ Status int }
			if r.Header.Get("Content-Type") != "application/json; charset=utf-8" || json.NewDecoder(r.Body).Decode(&in) != nil {
				t.Errorf("POST body: %v", r.Header)
			}
			status = in.Status
		}
		w.WriteHeader(status)
		switch {
		case status == http.StatusTeapot:
			w.Write([]byte(`not json`))
		case status >= 300:
			fmt.Fprintf(w, `{"error":{"code":"c%d","message":"bad token s3cret"}}`, status)
		default:
			fmt.Fprintf(w, `{"id":"p-%d","echo":"token s3cret"}`, status)
		}
	}))
	defer srv.Close()
	c, _ := NewProviderClient("newpay", srv.URL+"/v3", time.Second, "s3cret")
	header := http.Header{"Authorization": {"Bearer s3cret"}}
	for _, tc := range []struct {
		status int
		want   error
	}{
		{http.StatusOK, nil},
		{http.StatusCreated, nil},
		{http.StatusUnauthorized, ErrAuth},
		{http.StatusNotFound, ErrNotFound},
		{http.StatusConflict, ErrUnavailable},
		{http.StatusTooEarly, ErrUnavailable},
		{http.StatusTooManyRequests, ErrUnavailable},
		{http.StatusBadGateway, ErrUnavailable},
		{http.StatusTeapot, ErrRejected},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			for method, call := range map[string]func(out any) error{
				http.MethodGet: func(out any) error {
					return c.GetJSON(context.Background(), "status", "payments", url.Values{"status": {strconv.Itoa(tc.status)}}, header, out)
				},
				http.MethodPost: func(out any) error {
					return c.PostJSON(context.Background(), "create", "payments", header, map[string]int{"status": tc.status}, out)
				},
			} {
				var out struct{ ID string }
				err := call(&out)
				if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
					t.Fatalf("%s: err = %v, want %v", method, err, tc.want)
				}
				if err == nil && out.ID != "p-"+strconv.Itoa(tc.status) {
					t.Errorf("%s: decoded %+v", method, out)
				}
				var pe *ProviderError
				if err != nil && (!errors.As(err, &pe) || pe.Status != tc.status || pe.Provider != "newpay" || strings.Contains(err.Error()+pe.Body, "s3cret")) {
					t.Errorf("%s: error %#v", method, err)
				}
				if err != nil && tc.status != http.StatusTeapot && (pe.Code != "c"+strconv.Itoa(tc.status) || pe.Message != "bad token [redacted]") {
					t.Errorf("%s: code %q, message %q from the error reply", method, pe.Code, pe.Message)
				}
				if tc.status == http.StatusTeapot && pe.Message != "not json" {
					t.Errorf("%s: message %q, want the plain-text reply", method, pe.Message)
				}
			}
		})
	}
	t.Run("malformed", func(t *testing.T) {
		var out struct{ ID int }
		err := c.GetJSON(context.Background(), "status", "payments", url.Values{"status": {"200"}}, header, &out)
		if !errors.Is(err, ErrMalformedReply) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("err = %v, want ErrMalformedReply without the secret", err)
		}
	})
}

// TestPlainHTTPOnlyToLoopback: an http:// endpoint is refused unless its
// host is a loopback address (the sandbox, tests), with an error that says
// why and carries no secret; https:// goes anywhere. Before: every http://
// endpoint was taken, and CrystalPAY v1 sent its secret in the URL.
func TestPlainHTTPOnlyToLoopback(t *testing.T) {
	const secret = "s3cret-Auth-0123"
	for _, endpoint := range []string{
		"http://127.0.0.1:9080/api.php", "http://127.8.9.10/", "http://localhost:9080/x", "http://LOCALHOST/",
		"http://[::1]:9080/", "https://api.crystalpay.io/v3/", "https://192.0.2.7/", "https://pay.example",
	} {
		if _, err := NewProviderClient("crystalpay", endpoint, 0, secret); err != nil {
			t.Errorf("%s: %v", endpoint, err)
		}
	}
	for _, endpoint := range []string{
		"http://api.crystalpay.io/v3/", "http://192.0.2.7/", "http://10.0.0.1:9080/", "http://[::ffff:192.0.2.7]/",
		"http://localhost.evil.example/", "http://127.0.0.1.nip.io/", "http://0.0.0.0/", "http://[::]/",
	} {
		_, err := NewProviderClient("crystalpay", endpoint, 0, secret)
		if err == nil || !strings.Contains(err.Error(), "https") || !strings.Contains(err.Error(), "loopback") ||
			strings.Contains(err.Error(), secret) {
			t.Errorf("%s: %v, want a refusal that says why", endpoint, err)
		}
	}
}
