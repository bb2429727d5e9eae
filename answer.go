package kassa

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// answerError answers a handler's error: through the site's handle_errors
// routes when it has any, else as a short page for a form's buyer (page)
// or JSON. The answer never carries a provider's internals; a server-side
// failure is logged as what failed.
func answerError(w http.ResponseWriter, r *http.Request, logger *zap.Logger, what string, err error, page bool) error {
	status, code, message := publicError(err)
	if status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "5")
	}
	// A RequestError is an answer the handler chose (shop_busy logs
	// itself, at most once a minute); anything else is a failure.
	var refusal *RequestError
	if status >= 500 && !errors.As(err, &refusal) {
		logger.Error(what, zap.Int("status", status), zap.String("code", code), zap.Error(err))
	}
	if hasErrorRoutes(r) {
		return caddyhttp.Error(status, &RequestError{Status: status, Code: code, Message: message})
	}
	if page {
		return writeErrorPage(w, status, message)
	}
	return writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": message}})
}

// readBody reads a request body of at most limit bytes.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, &RequestError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
			Message: fmt.Sprintf("the request body is larger than %d bytes", limit)}
	}
	if err != nil {
		return nil, badRequest("bad_request", "", "reading the request body failed")
	}
	return body, nil
}

// publicError is what a buyer is told of err.
func publicError(err error) (status int, code, message string) {
	status = StatusCode(err)
	var re *RequestError
	var ve *ValidationError
	switch {
	case errors.As(err, &re):
		return status, re.Code, re.Message
	case errors.As(err, &ve):
		return status, "invalid_" + strings.ReplaceAll(ve.Field, ".", "_"), ve.Error()
	case errors.Is(err, ErrUnavailable):
		return status, "provider_unavailable", "the payment service is not answering; please try again in a minute"
	case errors.Is(err, ErrStorage):
		return status, "storage_unavailable", "the shop cannot reach its order records; please try again in a minute"
	case errors.Is(err, ErrAuth), errors.Is(err, ErrRejected), errors.Is(err, ErrMalformedReply):
		return status, "provider_error", "the payment service refused the payment; please try again later or contact the shop"
	default:
		return http.StatusInternalServerError, "internal_error", "something went wrong on our side; please try again later"
	}
}

// hasErrorRoutes reports whether the site handles errors itself.
func hasErrorRoutes(r *http.Request) bool {
	srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	return ok && srv.Errors != nil && len(srv.Errors.Routes) > 0
}

// wantsJSON reports whether the client speaks JSON rather than HTML forms.
func wantsJSON(r *http.Request) bool {
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mediaType == "application/json" || strings.Contains(r.Header.Get("Accept"), "application/json")
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeJSONBody(w, status, append(body, '\n'))
}

// writeJSONBody answers with body: a JSON value and its newline.
func writeJSONBody(w http.ResponseWriter, status int, body []byte) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err := w.Write(body)
	return err
}
