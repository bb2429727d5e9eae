package kassa

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// defaultTimeout bounds every provider call whose module sets no timeout.
const defaultTimeout = 10 * time.Second

// maxReplyBytes caps a JSON reply; a larger one is malformed.
const maxReplyBytes = 1 << 20

// maxBodyExcerpt is how much of a failed reply is kept for the operator.
const maxBodyExcerpt = 512

// userAgent is sent with every provider call.
const userAgent = "caddy-kassa (+https://github.com/caddy-kassa/kassa)"

// ProviderClient is the HTTP client of one provider module, the part every
// provider needs whatever its wire format: one keep-alive transport per
// module, a timeout on every call under the caller's context, no redirects,
// replies capped at 1 MiB, operations that move money never sent twice (see
// SendOnce), errors whose text carries no secret and no query string, and
// connections closed on a config reload (Close). A provider module makes
// one in Provision with NewProviderClient and closes it in Cleanup.
type ProviderClient struct {
	provider string
	base     *url.URL
	http     *http.Client
	timeout  time.Duration
	secrets  []string
	// sendOnce names the operations that move money: net/http must never
	// re-send them (see Do).
	sendOnce map[string]bool
	// conns are the transport's connections, closed with the client.
	conns *connPool
}

// NewProviderClient makes the client of the provider module named provider
// (its name in errors and metrics) for the API at endpoint, an absolute
// http(s) URL without credentials, query or fragment. timeout bounds each
// call (10 s when it is not positive). secrets are the values (tokens,
// passwords) that must never appear in an error; empty ones are ignored.
func NewProviderClient(provider, endpoint string, timeout time.Duration, secrets ...string) (*ProviderClient, error) {
	base, err := parseEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns = 256
	transport.MaxIdleConnsPerHost = 64
	transport.IdleConnTimeout = 90 * time.Second
	conns := newConnPool()
	transport.DialContext = conns.dialer((&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext)
	c := &ProviderClient{
		provider: provider,
		base:     base,
		timeout:  timeout,
		conns:    conns,
		http: &http.Client{
			Transport: transport,
			// An API does not redirect; following one could carry a
			// request to a host nobody configured.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	for _, s := range secrets {
		if s != "" {
			c.secrets = append(c.secrets, s)
		}
	}
	return c, nil
}

// parseEndpoint accepts an absolute http(s) URL with no credentials, query or
// fragment: secrets belong in their own options, not in the endpoint.
func parseEndpoint(endpoint string) (*url.URL, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("endpoint %q: want an absolute http:// or https:// URL", endpoint)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("endpoint of %s: credentials, query or fragment are not allowed; use the module's secret options", u.Host)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("endpoint of %s: use https://; plain http:// is allowed only to a loopback address (localhost, 127.0.0.0/8, ::1), "+
			"because every request carries the account's secret or token (CrystalPAY's API v1 even puts it in the URL)", u.Host)
	}
	return u, nil
}

// isLoopback reports whether host is localhost or a loopback IP address:
// a plain-HTTP request to it never leaves the machine.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// sandboxPaths are the API paths of kassa's sandbox (sandbox/handler.go):
// an endpoint below one is the sandbox wherever it runs.
var sandboxPaths = []string{"/crystalpay/", "/pegas/", "/smartcashier/"}

// APIEndpoint reports the endpoint's host, and whether it is a sandbox: a
// loopback endpoint (the demo's sandbox, a test's server) or one below a
// path of kassa's sandbox.
func (c *ProviderClient) APIEndpoint() (host string, sandbox bool) {
	path := strings.TrimSuffix(c.base.Path, "/") + "/"
	return c.base.Host, isLoopback(c.base.Hostname()) ||
		slices.ContainsFunc(sandboxPaths, func(p string) bool { return strings.HasPrefix(path, p) })
}

// SendOnce marks the operations (by the op names given to Do, Call,
// GetJSON and PostJSON) that create invoices or move money: such a call is
// sent at most once, even when net/http would re-send it by itself over a
// keep-alive connection that died. It is called once, in Provision, and
// returns c.
func (c *ProviderClient) SendOnce(ops ...string) *ProviderClient {
	c.sendOnce = make(map[string]bool, len(ops))
	for _, op := range ops {
		c.sendOnce[op] = true
	}
	return c
}

// WithSecrets returns a client for one call that also redacts extra values,
// such as a signature derived from a secret. It shares c's connections.
func (c *ProviderClient) WithSecrets(extra ...string) *ProviderClient {
	call := *c
	call.secrets = append(append([]string(nil), c.secrets...), extra...)
	return &call
}

// CallTimeout is how long one call may take. A provider reports it as its
// own (CallTimeoutReporter) so that the reconciler knows how long a
// checkout can take.
func (c *ProviderClient) CallTimeout() time.Duration { return c.timeout }

// Close closes the client's connections: now if no call is in flight, or
// else when the last one ends. A provider module calls it in Cleanup, so
// that a config reload leaves no connection open.
func (c *ProviderClient) Close() {
	c.conns.close()
}

// URL returns the URL of path below the endpoint, with the query q (none
// when q is nil).
func (c *ProviderClient) URL(path string, q url.Values) *url.URL {
	u := *c.base
	if path != "" {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/" + strings.TrimPrefix(path, "/")
	}
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return &u
}

// Do sends one request of the operation op and returns the response with
// its body open, for a reply to stream (a document). Closing the body ends
// the call. A transport failure is an ErrUnavailable *ProviderError.
func (c *ProviderClient) Do(ctx context.Context, op, method string, u *url.URL, header http.Header, body []byte) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), reader)
	if err != nil {
		cancel()
		return nil, c.Failure(op, ErrUnavailable, 0, nil, c.scrub(err))
	}
	for k, v := range header {
		req.Header[k] = v
	}
	switch {
	case c.sendOnce[op] && len(body) == 0:
		// net/http re-sends a request without a body (a GET, or any with
		// an Idempotency-Key), unasked, when a reused keep-alive connection
		// closes before the reply: after the provider may have acted on
		// it. http.NoBody, which an empty body becomes, stays replayable;
		// a body of our own without GetBody does not, and being empty,
		// nothing of it goes on the wire.
		req.Body, req.GetBody, req.ContentLength = emptyBody{}, nil, 0
	case c.sendOnce[op]:
		// It re-sends a request with a body too when it can rewind it and
		// the request carries an Idempotency-Key header.
		req.GetBody = nil
	}
	req.Header.Set("User-Agent", userAgent)
	c.conns.begin()
	resp, err := c.http.Do(req)
	if err != nil {
		cancel()
		c.conns.end()
		return nil, c.Failure(op, ErrUnavailable, 0, nil, c.scrub(err))
	}
	resp.Body = &endOnClose{ReadCloser: resp.Body, cancel: cancel, conns: c.conns}
	return resp, nil
}

// Call sends one request of the operation op and returns the reply's HTTP
// status and body, whatever the status: reading an error reply is the
// provider's part. A transport failure is an ErrUnavailable
// *ProviderError, a reply over 1 MiB an ErrMalformedReply one.
func (c *ProviderClient) Call(ctx context.Context, op, method string, u *url.URL, header http.Header, body []byte) (int, []byte, error) {
	resp, err := c.Do(ctx, op, method, u, header, body)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes+1))
	if err != nil {
		return resp.StatusCode, nil, c.Failure(op, ErrUnavailable, resp.StatusCode, nil, c.scrub(err))
	}
	if len(reply) > maxReplyBytes {
		return resp.StatusCode, nil, c.Failure(op, ErrMalformedReply, resp.StatusCode, reply[:maxBodyExcerpt],
			errors.New("reply larger than 1 MiB"))
	}
	return resp.StatusCode, reply, nil
}

// GetJSON sends a GET of the operation op to path with the query q and
// decodes a 2xx reply into out. See PostJSON for the errors.
func (c *ProviderClient) GetJSON(ctx context.Context, op, path string, q url.Values, header http.Header, out any) error {
	return c.callJSON(ctx, op, http.MethodGet, c.URL(path, q), header, nil, out)
}

// PostJSON sends in as the JSON body of a POST of the operation op to path
// and decodes a 2xx reply into out (out may be nil when the reply does not
// matter). The call is counted in the provider call metrics. A reply of
// another status is a *ProviderError of kind ErrAuth (401, 403),
// ErrNotFound (404), ErrUnavailable (408, 429, 5xx) or ErrRejected (any
// other), with an excerpt of the reply and the code, field and message an
// error reply of a common shape carries ({"error":{"code","message"}},
// {"errors":[...]}, {"code","message"}...); a 2xx reply that is not JSON of
// out's shape is ErrMalformedReply.
func (c *ProviderClient) PostJSON(ctx context.Context, op, path string, header http.Header, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("%s %s: encoding the request: %w", c.provider, op, err)
	}
	return c.callJSON(ctx, op, http.MethodPost, c.URL(path, nil), header, body, out)
}

// callJSON makes a JSON call and decodes a 2xx reply into out.
func (c *ProviderClient) callJSON(ctx context.Context, op, method string, u *url.URL, header http.Header, body []byte, out any) (err error) {
	defer c.Observe(op, time.Now(), &err)
	h := header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if h.Get("Accept") == "" {
		h.Set("Accept", "application/json")
	}
	if body != nil {
		h.Set("Content-Type", "application/json; charset=utf-8")
	}
	status, reply, err := c.Call(ctx, op, method, u, h, body)
	if err != nil {
		return err
	}
	if status < 200 || status > 299 {
		fault := readReplyError(reply)
		if fault.Message == "" {
			fault.Message = plainReplyText(reply)
		}
		e := c.Failure(op, replyStatusKind(status), status, reply, nil)
		e.Code, e.Path, e.Message = c.Clean(fault.Code), c.Clean(fault.Path), c.Clean(fault.Message)
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(reply, out); err != nil {
		return c.Malformed(op, status, reply, "%v", err)
	}
	return nil
}

// Failure builds the *ProviderError of a failed call of op: kind is one of
// ErrAuth, ErrRejected, ErrDuplicate, ErrNotFound, ErrUnavailable or
// ErrMalformedReply, body the reply (kept as a short excerpt with the
// secrets removed), cause the underlying error or nil. The caller may set
// its Code and Message from the reply, through Redact.
func (c *ProviderClient) Failure(op string, kind error, status int, body []byte, cause error) *ProviderError {
	return &ProviderError{
		Provider: c.provider,
		Op:       op,
		Kind:     kind,
		Status:   status,
		Body:     c.excerpt(body),
		Err:      cause,
	}
}

// Malformed is the ErrMalformedReply *ProviderError of a reply that is not
// what the API documents; the message is redacted.
func (c *ProviderClient) Malformed(op string, status int, body []byte, format string, args ...any) *ProviderError {
	return c.Failure(op, ErrMalformedReply, status, body, errors.New(c.Redact(fmt.Sprintf(format, args...))))
}

// excerpt returns the start of a reply, valid UTF-8, with secrets removed.
func (c *ProviderClient) excerpt(body []byte) string {
	if len(body) == 0 {
		return ""
	}
	// Redact before cutting, so that a secret across the cut leaves no part.
	s := c.Redact(string(body))
	if len(s) > maxBodyExcerpt {
		s = s[:maxBodyExcerpt]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// Redact replaces every secret, plain or URL-escaped, with [redacted]: for
// text of a reply (a provider's message) that goes into an error.
func (c *ProviderClient) Redact(s string) string {
	for _, secret := range c.secrets {
		for _, form := range []string{secret, url.QueryEscape(secret), url.PathEscape(secret)} {
			s = strings.ReplaceAll(s, form, "[redacted]")
		}
	}
	return s
}

// Clean makes text from a reply (a provider's message, code or field) fit
// for an error, a log line and a stored record: secrets removed, valid
// UTF-8, each run of white space and control characters one space, and at
// most 600 bytes. Secrets are removed again once the white space is
// flattened, so that one echoed across a line break is caught too, and
// before the text is cut, so that no part of one is left.
func (c *ProviderClient) Clean(s string) string {
	return capReplyText(c.Redact(flatReplyText(c.Redact(s))))
}

// scrub turns a transport error into one that says what failed without the
// URL's query (where CrystalPAY and Pegas-kassa carry their secrets). It keeps
// context.DeadlineExceeded and context.Canceled visible to errors.Is.
func (c *ProviderClient) scrub(err error) error {
	text := err.Error()
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		text = urlErr.Op + " " + safeURL(urlErr.URL) + ": " + urlErr.Err.Error()
	}
	scrubbed := &scrubbedError{text: c.Redact(text)}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		scrubbed.cause = context.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		scrubbed.cause = context.Canceled
	}
	return scrubbed
}

// safeURL is a URL without its credentials, query and fragment.
func safeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment = nil, "", false, ""
	return u.String()
}

// scrubbedError is a transport error's text with secrets removed.
type scrubbedError struct {
	text  string
	cause error
}

func (e *scrubbedError) Error() string { return e.text }
func (e *scrubbedError) Unwrap() error { return e.cause }

// emptyBody is an empty request body that net/http cannot replay.
type emptyBody struct{}

func (emptyBody) Read([]byte) (int, error) { return 0, io.EOF }
func (emptyBody) Close() error             { return nil }

// endOnClose ends a call when its body is closed: it releases the call's
// timeout and counts the call done in the client's pool, once.
type endOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
	conns  *connPool
	once   sync.Once
}

func (b *endOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() {
		b.cancel()
		b.conns.end()
	})
	return err
}

// flexString is a JSON value that providers send as either a string or a
// number (ids, mostly); it keeps the text of either.
type flexString string

// UnmarshalJSON accepts a string, a number or null.
func (f *flexString) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch {
	case bytes.Equal(data, []byte("null")):
		*f = ""
		return nil
	case len(data) > 0 && data[0] == '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	default:
		var n json.Number
		if err := json.Unmarshal(data, &n); err != nil {
			return fmt.Errorf("want a string or a number, got %.20s", data)
		}
		*f = flexString(n.String())
		return nil
	}
}

// resolvePlaceholders resolves {env.*} and other global placeholders in a
// configuration value. Secrets stay placeholders in the JSON config and the
// autosave, and are resolved only here, in Provision.
func resolvePlaceholders(s string) string {
	return caddy.NewReplacer().ReplaceKnown(s, "")
}
