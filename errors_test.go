package kassa

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
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
		nil:                                     http.StatusOK,
		invalid("qty", "x"):                     http.StatusBadRequest,
		&ProviderError{Kind: ErrUnavailable}:    http.StatusServiceUnavailable,
		&ProviderError{Kind: ErrAuth}:           http.StatusBadGateway,
		&ProviderError{Kind: ErrRejected}:       http.StatusBadGateway,
		&ProviderError{Kind: ErrDuplicate}:      http.StatusBadGateway,
		&ProviderError{Kind: ErrNotFound}:       http.StatusBadGateway,
		&ProviderError{Kind: ErrMalformedReply}: http.StatusBadGateway,
		&ProviderError{Kind: ErrNotSupported}:   http.StatusNotImplemented,
		errors.New("disk full"):                 http.StatusInternalServerError,
		fmt.Errorf("x: %w", &RequestError{Status: 413, Code: "body_too_large"}): http.StatusRequestEntityTooLarge,
	} {
		if got := StatusCode(err); got != want {
			t.Errorf("StatusCode(%v) = %d, want %d", err, got, want)
		}
	}
}
