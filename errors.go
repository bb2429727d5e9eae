package kassa

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// The kinds of failure every provider client reports. Test for them with
// errors.Is; get the details (provider code, field path, HTTP status) with
// errors.As and *ProviderError or *ValidationError.
var (
	// ErrAuth: the provider refused the credentials (bad login, secret or
	// token). An operator must fix the configuration.
	ErrAuth = errors.New("provider refused the credentials")

	// ErrRejected: the provider understood the request and refused it.
	ErrRejected = errors.New("provider rejected the request")

	// ErrDuplicate: the provider already has an operation with this order
	// id. After a lost reply this means the first request went through.
	// Every ErrDuplicate is also ErrRejected.
	ErrDuplicate = errors.New("provider already has this order id")

	// ErrNotFound: the provider does not know the payment, document or
	// operation asked for. Every ErrNotFound is also ErrRejected.
	ErrNotFound = errors.New("provider does not know this object")

	// ErrUnavailable: the provider could not be reached or did not answer
	// in time, or answered with a server error. Safe operations may be
	// retried later.
	ErrUnavailable = errors.New("provider unavailable")

	// ErrMalformedReply: the provider answered something that is not the
	// reply its API documents.
	ErrMalformedReply = errors.New("provider sent a malformed reply")

	// ErrInvalid: the request was refused locally, before anything was
	// sent, because the provider would refuse it.
	ErrInvalid = errors.New("invalid request")

	// ErrNotSupported: the provider's API has no such operation.
	ErrNotSupported = errors.New("operation not supported by this provider")

	// ErrStorage: the order storage (a disk, Redis...) failed to read or
	// write. Requests answer 503 storage_unavailable; what a request left
	// half done, the reconciler or the client's retry finishes.
	ErrStorage = errors.New("order storage failed")

	// ErrBadSignature: a provider's callback carries a signature that does
	// not hold for its content: forged, or signed with another salt.
	ErrBadSignature = errors.New("callback signature does not hold")
)

// ProviderError is a failed provider call. Its text never carries a secret,
// a token or a URL with a query string.
type ProviderError struct {
	// Provider is the provider module's name: crystalpay, pegas,
	// smartcashier, or another module's.
	Provider string
	// Op is the provider's operation, as its API names it.
	Op string
	// Kind is one of ErrAuth, ErrRejected, ErrDuplicate, ErrNotFound,
	// ErrUnavailable or ErrMalformedReply.
	Kind error
	// Status is the reply's HTTP status, or 0 when there was no reply.
	Status int
	// Code is the provider's error code, when it sent one.
	Code string
	// Path is the dotted path of the field the provider refused, when it
	// named one (Pegas-kassa validation_error).
	Path string
	// Message is the provider's own message, when it sent one.
	Message string
	// Body is the start of the raw reply, with secrets removed, for the
	// operator.
	Body string
	// Err is the underlying cause, with secrets removed.
	Err error
}

// Error describes the failure for an operator's log.
func (e *ProviderError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %v", e.Provider, e.Op, e.Kind)
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.Status)
	}
	for _, s := range []string{e.Code, e.Path, e.Message} {
		if s != "" {
			b.WriteString(": ")
			b.WriteString(s)
		}
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Is reports whether the error is of the target kind.
func (e *ProviderError) Is(target error) bool {
	if target == e.Kind {
		return true
	}
	return target == ErrRejected && (e.Kind == ErrDuplicate || e.Kind == ErrNotFound)
}

// Unwrap returns the underlying cause.
func (e *ProviderError) Unwrap() error { return e.Err }

// ValidationError is a request refused locally before anything was sent.
// Every ValidationError is ErrInvalid.
type ValidationError struct {
	// Field is the path of the offending field, such as "amount" or
	// "positions[1].name".
	Field string
	// Reason says what is wrong with it.
	Reason string
}

// Error names the field and what is wrong with it.
func (e *ValidationError) Error() string {
	return "invalid " + e.Field + ": " + e.Reason
}

// Is makes every ValidationError match ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// StatusCode is the HTTP status a buyer or operator gets for err: a
// RequestError's own status; 400 for a request refused locally, 503 when the provider is unavailable (worth trying
// again), 502 when it refused or answered nonsense, 501 for an operation the
// provider lacks, and 500 for anything else.
func StatusCode(err error) int {
	var re *RequestError
	switch {
	case errors.As(err, &re):
		return re.Status
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrStorage):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrAuth), errors.Is(err, ErrRejected), errors.Is(err, ErrMalformedReply):
		return http.StatusBadGateway
	case errors.Is(err, ErrNotSupported):
		return http.StatusNotImplemented
	default:
		return http.StatusInternalServerError
	}
}

// RequestError is a request refused with a stable code that clients can
// act on, such as unknown_sku or amount_out_of_range. It is ErrInvalid when
// its status is a 4xx.
type RequestError struct {
	// Status is the HTTP status: 400, 404, 405, 413, 409...
	Status int
	// Code is the stable, machine-readable reason.
	Code string
	// Field names the offending field or parameter, when there is one.
	Field string
	// Message says what is wrong, for a person; it never carries a secret.
	Message string
}

// Error returns the message.
func (e *RequestError) Error() string { return e.Message }

// Is makes a 4xx RequestError match ErrInvalid.
func (e *RequestError) Is(target error) bool {
	return target == ErrInvalid && e.Status >= 400 && e.Status < 500
}

// badRequest is a 400 RequestError.
func badRequest(code, field, format string, args ...any) *RequestError {
	return &RequestError{Status: http.StatusBadRequest, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}
