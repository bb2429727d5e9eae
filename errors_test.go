package kassa

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/caddyserver/certmagic"
)

func TestProviderErrorKinds(t *testing.T) {
	kinds := []error{ErrAuth, ErrRejected, ErrDuplicate, ErrNotFound, ErrUnavailable, ErrMalformedReply}
	for _, kind := range kinds {
		err := fmt.Errorf("checkout: %w", &ProviderError{Provider: "pegas", Op: "deposit", Kind: kind})
		for _, other := range append(kinds, ErrInvalid, ErrNotSupported) {
			want := other == kind ||
				(other == ErrRejected && (kind == ErrDuplicate || kind == ErrNotFound))
			if got := errors.Is(err, other); got != want {
				t.Errorf("errors.Is(%v, %v) = %v, want %v", kind, other, got, want)
			}
		}
	}
	var ve error = &ValidationError{Field: "amount", Reason: "negative"}
	if !errors.Is(fmt.Errorf("x: %w", ve), ErrInvalid) || errors.Is(ve, ErrRejected) {
		t.Error("ValidationError must be ErrInvalid and nothing else")
	}
}

func TestProviderErrorText(t *testing.T) {
	err := &ProviderError{Provider: "pegas", Op: "deposit", Kind: ErrDuplicate, Status: 400,
		Code: "invalid_parameters", Path: "order_id", Message: "The order id has already been taken."}
	want := "pegas deposit: provider already has this order id (HTTP 400): invalid_parameters: order_id: The order id has already been taken."
	if err.Error() != want {
		t.Errorf("got  %s\nwant %s", err, want)
	}
	cause := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	err = &ProviderError{Provider: "crystalpay", Op: "generate", Kind: ErrUnavailable, Err: cause}
	if !errors.Is(err, cause) || err.Error() != "crystalpay generate: provider unavailable: "+cause.Error() {
		t.Errorf("got %s", err)
	}
}

func TestStatusCode(t *testing.T) {
	for err, want := range map[error]int{
		nil:                                                          http.StatusOK,
		invalid("qty", "x"):                                          http.StatusBadRequest,
		&ProviderError{Kind: ErrUnavailable}:                         http.StatusServiceUnavailable,
		&ProviderError{Kind: ErrAuth}:                                http.StatusBadGateway,
		&ProviderError{Kind: ErrRejected}:                            http.StatusBadGateway,
		&ProviderError{Kind: ErrDuplicate}:                           http.StatusBadGateway,
		&ProviderError{Kind: ErrNotFound}:                            http.StatusBadGateway,
		&ProviderError{Kind: ErrMalformedReply}:                      http.StatusBadGateway,
		&ProviderError{Kind: ErrNotSupported}:                        http.StatusNotImplemented,
		errors.New("disk full"):                                      http.StatusInternalServerError,
		fmt.Errorf("x: %w", storageFailure{errors.New("disk full")}): http.StatusServiceUnavailable,
		fmt.Errorf("x: %w", &RequestError{Status: 413, Code: "body_too_large"}): http.StatusRequestEntityTooLarge,
	} {
		t.Run(fmt.Sprint(err), func(t *testing.T) {
			if got := StatusCode(err); got != want {
				t.Errorf("StatusCode(%v) = %d, want %d", err, got, want)
			}
		})
	}
}

// downStorage is a storage that cannot be reached: every call fails.
type downStorage struct{}

var errDown = errors.New("dial tcp 10.0.0.5:6379: connect: connection refused")

func (downStorage) Store(context.Context, string, []byte) error  { return errDown }
func (downStorage) Load(context.Context, string) ([]byte, error) { return nil, errDown }
func (downStorage) Delete(context.Context, string) error         { return errDown }
func (downStorage) Exists(context.Context, string) bool          { return false }
func (downStorage) List(context.Context, string, bool) ([]string, error) {
	return nil, errDown
}
func (downStorage) Stat(context.Context, string) (certmagic.KeyInfo, error) {
	return certmagic.KeyInfo{}, errDown
}
func (downStorage) Lock(context.Context, string) error   { return errDown }
func (downStorage) Unlock(context.Context, string) error { return errDown }

// TestStorageDownIs503: when the order storage cannot be reached, a
// checkout and a status poll answer 503 storage_unavailable, not a 500,
// and a buyer's retry works once the storage is back.
func TestStorageDownIs503(t *testing.T) {
	h, storage, _ := benchCheckout(t)
	id := benchOrder(t, h)
	h.app.useStorage(downStorage{})

	req := httptest.NewRequest(http.MethodPost, "/pay", strings.NewReader(`{"items":[{"sku":"cup"}]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	for _, req := range []*http.Request{req, httptest.NewRequest(http.MethodGet, "/pay?order="+id, nil)} {
		w := serveBench(t, h, req)
		if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), `"storage_unavailable"`) ||
			strings.Contains(w.Body.String(), "10.0.0.5") {
			t.Errorf("%s %s with the storage down: %d %s; want 503 storage_unavailable, no detail", req.Method, req.URL, w.Code, w.Body)
		}
	}
	h.app.useStorage(storage)
	benchOrder(t, h)
}

// checkRequestError checks that err is a RequestError with one of the
// statuses and a code, whose message is valid UTF-8 with no control
// character, and returns it.
func checkRequestError(t *testing.T, err error, statuses ...int) *RequestError {
	t.Helper()
	var re *RequestError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not a *RequestError", err, err)
	}
	found := false
	for _, s := range statuses {
		found = found || re.Status == s
	}
	if !found {
		t.Fatalf("error %v: status %d, want one of %v", err, re.Status, statuses)
	}
	if re.Code == "" || strings.ContainsAny(re.Code, " \t\r\n") {
		t.Fatalf("error %v: code %q", err, re.Code)
	}
	if !utf8.ValidString(re.Message) || strings.ContainsFunc(re.Message, unsafeRune) {
		t.Fatalf("error message %q carries an unsafe character", re.Message)
	}
	return re
}

// unsafeRune is a character no message may repeat raw: C0 and C1
// controls, DEL, the line and paragraph separators, and the bidi controls
// that reorder text (Trojan Source).
func unsafeRune(r rune) bool {
	return r < 0x20 || r >= 0x7f && r < 0xa0 || r == '\u2028' || r == '\u2029' || bidiControl(r)
}

// bidiControl reports whether r is a bidi embedding, override or isolate.
func bidiControl(r rune) bool {
	return r >= '\u202a' && r <= '\u202e' || r >= '\u2066' && r <= '\u2069'
}
