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
	"net/url"
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

// apiClient is the HTTP side shared by the provider clients: one keep-alive
// transport per provider module, a timeout on every call under the caller's
// context, capped replies, and errors whose text carries no secret and no
// query string.
type apiClient struct {
	provider string
	base     *url.URL
	http     *http.Client
	timeout  time.Duration
	secrets  []string
	// sendOnce names the operations that move money: net/http must never
	// re-send them (see do).
	sendOnce map[string]bool
	// conns are the transport's connections, closed with the client.
	conns *connPool
}

// newAPIClient makes the client of one provider module. secrets are the
// values that must never appear in an error.
func newAPIClient(provider, endpoint string, timeout time.Duration, secrets ...string) (*apiClient, error) {
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
	c := &apiClient{
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
	return u, nil
}

// neverReplay marks operations that create invoices or move money, so that
// a call is sent at most once even over a connection that dies.
func (c *apiClient) neverReplay(ops ...string) *apiClient {
	c.sendOnce = make(map[string]bool, len(ops))
	for _, op := range ops {
		c.sendOnce[op] = true
	}
	return c
}

// withSecrets returns a client for one call that also redacts extra values,
// such as a signature derived from a secret. It shares the connections.
func (c *apiClient) withSecrets(extra ...string) *apiClient {
	call := *c
	call.secrets = append(append([]string(nil), c.secrets...), extra...)
	return &call
}

// callTimeout is how long one call may take.
func (c *apiClient) callTimeout() time.Duration { return c.timeout }

// close closes the client's connections: now if no call is in flight, or
// else when the last one ends.
func (c *apiClient) close() {
	c.conns.close()
}

// endpoint returns the URL of path below the base URL with the query q.
func (c *apiClient) endpoint(path string, q url.Values) *url.URL {
	u := *c.base
	if path != "" {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/" + strings.TrimPrefix(path, "/")
	}
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return &u
}

// do sends one request and returns the response with its body open.
// Closing the body ends the call (endOnClose). A transport failure is an
// ErrUnavailable ProviderError.
func (c *apiClient) do(ctx context.Context, op, method string, u *url.URL, header http.Header, body []byte) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), reader)
	if err != nil {
		cancel()
		return nil, c.failure(op, ErrUnavailable, 0, nil, c.scrub(err))
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if c.sendOnce[op] && body == nil {
		// net/http re-sends a GET without a body, unasked, when a reused
		// keep-alive connection closes before the reply: after the provider
		// may have acted on it. A body without GetBody makes the request
		// non-replayable; being empty, nothing of it goes on the wire.
		req.Body, req.GetBody, req.ContentLength = emptyBody{}, nil, 0
	}
	req.Header.Set("User-Agent", userAgent)
	c.conns.begin()
	resp, err := c.http.Do(req)
	if err != nil {
		cancel()
		c.conns.end()
		return nil, c.failure(op, ErrUnavailable, 0, nil, c.scrub(err))
	}
	resp.Body = &endOnClose{ReadCloser: resp.Body, cancel: cancel, conns: c.conns}
	return resp, nil
}

// call sends one request and reads the whole reply, up to maxReplyBytes.
func (c *apiClient) call(ctx context.Context, op, method string, u *url.URL, header http.Header, body []byte) (int, []byte, error) {
	resp, err := c.do(ctx, op, method, u, header, body)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes+1))
	if err != nil {
		return resp.StatusCode, nil, c.failure(op, ErrUnavailable, resp.StatusCode, nil, c.scrub(err))
	}
	if len(reply) > maxReplyBytes {
		return resp.StatusCode, nil, c.failure(op, ErrMalformedReply, resp.StatusCode, reply[:maxBodyExcerpt],
			errors.New("reply larger than 1 MiB"))
	}
	return resp.StatusCode, reply, nil
}

// failure builds a ProviderError of the given kind with an excerpt of the
// reply, secrets removed.
func (c *apiClient) failure(op string, kind error, status int, body []byte, cause error) *ProviderError {
	return &ProviderError{
		Provider: c.provider,
		Op:       op,
		Kind:     kind,
		Status:   status,
		Body:     c.excerpt(body),
		Err:      cause,
	}
}

// malformed is the error for a reply that is not what the API documents.
func (c *apiClient) malformed(op string, status int, body []byte, format string, args ...any) *ProviderError {
	return c.failure(op, ErrMalformedReply, status, body, errors.New(c.redact(fmt.Sprintf(format, args...))))
}

// excerpt returns the start of a reply, valid UTF-8, with secrets removed.
func (c *apiClient) excerpt(body []byte) string {
	if len(body) == 0 {
		return ""
	}
	// Redact before cutting, so that a secret across the cut leaves no part.
	s := c.redact(string(body))
	if len(s) > maxBodyExcerpt {
		s = s[:maxBodyExcerpt]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// redact replaces every secret, plain or URL-escaped, with [redacted].
func (c *apiClient) redact(s string) string {
	for _, secret := range c.secrets {
		for _, form := range []string{secret, url.QueryEscape(secret), url.PathEscape(secret)} {
			s = strings.ReplaceAll(s, form, "[redacted]")
		}
	}
	return s
}

// scrub turns a transport error into one that says what failed without the
// URL's query (where CrystalPAY and Pegas-kassa carry their secrets). It keeps
// context.DeadlineExceeded and context.Canceled visible to errors.Is.
func (c *apiClient) scrub(err error) error {
	text := err.Error()
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		text = urlErr.Op + " " + safeURL(urlErr.URL) + ": " + urlErr.Err.Error()
	}
	scrubbed := &scrubbedError{text: c.redact(text)}
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
