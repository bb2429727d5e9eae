package kassa

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
)

// stubRequest is one request a providerStub received.
type stubRequest struct {
	Method, Path string
	Query        url.Values
	RawQuery     string
	Header       http.Header
	Body         []byte
}

// stubAnswer answers a request a providerStub received; n counts the
// stub's requests from 1.
type stubAnswer func(w http.ResponseWriter, r *http.Request, n int)

// providerStub is a provider's API as the unit tests of CrystalPAY,
// Pegas-kassa and Smart Cashier see it: an httptest server that records
// every request and answers each with a function of it.
type providerStub struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []stubRequest
}

// newProviderStub starts a stub that records each request and answers it
// with answer, and closes it when the test ends.
func newProviderStub(t *testing.T, answer stubAnswer) *providerStub {
	t.Helper()
	s := &providerStub{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		s.mu.Lock()
		s.reqs = append(s.reqs, stubRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(),
			RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
		n := len(s.reqs)
		s.mu.Unlock()
		answer(w, r, n)
	}))
	t.Cleanup(s.Close)
	return s
}

// count is how many requests the stub received.
func (s *providerStub) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

// requests returns the requests received so far.
func (s *providerStub) requests() []stubRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// only returns the stub's single request, failing unless there was exactly
// one.
func (s *providerStub) only(t *testing.T) stubRequest {
	t.Helper()
	reqs := s.requests()
	if len(reqs) != 1 {
		t.Fatalf("stub got %d requests, want 1", len(reqs))
	}
	return reqs[0]
}

// last returns the stub's latest request, failing if there was none.
func (s *providerStub) last(t *testing.T) stubRequest {
	t.Helper()
	reqs := s.requests()
	if len(reqs) == 0 {
		t.Fatal("no request reached the stub")
	}
	return reqs[len(reqs)-1]
}

// stubReply answers with a status, a content type ("" for none) and a body.
func stubReply(status int, contentType, body string) stubAnswer {
	return func(w http.ResponseWriter, _ *http.Request, _ int) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// stubJSON answers with a status and a body typed as JSON.
func stubJSON(status int, body string) stubAnswer {
	return stubReply(status, "application/json", body)
}

// stubHangUp closes the connection without answering.
func stubHangUp(t *testing.T) stubAnswer {
	return func(w http.ResponseWriter, _ *http.Request, _ int) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		conn.Close()
	}
}

// stubPick answers each request with the answer pick chooses for it, by its
// number (from 1) and the request itself.
func stubPick(pick func(n int, r *http.Request) stubAnswer) stubAnswer {
	return func(w http.ResponseWriter, r *http.Request, n int) { pick(n, r)(w, r, n) }
}
