package sandbox

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// maxJournal is how many calls the journal keeps.
const maxJournal = 10000

// maxBody is the largest request body an API call may have.
const maxBody = 1 << 20

// errBodyTooLarge is returned by readBody for a body above maxBody.
var errBodyTooLarge = errors.New("request body too large")

// Call is one API call in the journal, as GET /control/calls shows it.
type Call struct {
	API    string            `json:"api"`
	Op     string            `json:"op"`
	Method string            `json:"method"`
	Path   string            `json:"path"`
	Query  map[string]string `json:"query"`
	// Body is the request body: the JSON as received, a JSON string if the
	// body was not JSON, null if there was none; in it, as in Query, the
	// values of maskedFields show as "***".
	Body json.RawMessage `json:"body"`
	// Status is the HTTP status answered; 0 if none was (timeout, drop).
	Status int `json:"status"`
	// Fault is the mode of the fault that answered the call instead of the
	// API (error500, malformed, ...); empty when the API answered it, after
	// any latency. A faulted call did nothing, whatever its status.
	Fault string `json:"fault,omitempty"`
	// URL is where a callback was sent, without its query; Attempt counts
	// its deliveries from 1. Both are empty for API calls.
	URL     string    `json:"url,omitempty"`
	Attempt int       `json:"attempt,omitempty"`
	Time    time.Time `json:"time"`
}

// call is one API request being answered: it applies latency and faults
// and journals the call once, with the status it got.
type call struct {
	h       *Handler
	w       *recorder
	r       *http.Request
	api, op string
	body    []byte
	start   time.Time
	fault   string // mode of the fault that answers, if one does
	done    bool
}

// newCall starts an API call of op on api.
func (h *Handler) newCall(w http.ResponseWriter, r *http.Request, api, op string, body []byte) *call {
	return &call{
		h: h, w: &recorder{ResponseWriter: w}, r: r,
		api: api, op: op, body: body, start: h.st.clock(),
	}
}

// run answers the call: the configured latency, then faults, then serve.
func (c *call) run(style faultStyle, serve func(w http.ResponseWriter)) {
	defer c.finish()
	sleep(c.r, c.h.st.latency())
	wait, f := c.h.st.takeFault(c.api, c.op)
	sleep(c.r, wait)
	if f != nil {
		c.fault = f.Mode
		c.injectFault(f, style)
		return
	}
	serve(c.w)
}

// finish journals the call; only the first call counts.
func (c *call) finish() {
	if c.done {
		return
	}
	c.done = true
	entry := Call{
		API: c.api, Op: c.op, Method: c.r.Method, Path: c.r.URL.Path,
		Query: map[string]string{}, Status: c.w.status, Fault: c.fault, Time: c.start,
	}
	for k, v := range c.r.URL.Query() {
		entry.Query[k] = v[0]
		if slices.Contains(maskedFields, k) {
			entry.Query[k] = "***"
		}
	}
	switch {
	case len(c.body) == 0:
	case json.Valid(c.body):
		entry.Body = maskSecrets(c.body)
	default:
		entry.Body, _ = json.Marshal(maskForm(string(c.body)))
	}
	c.h.st.record(entry)
}

// maskedFields are the query parameters and body fields (of a JSON object
// or a form) that the journal hides: CrystalPAY v3's auth_secret and
// signatures, v1's secret (s) and withdraw signature (secret), and
// Pegas-kassa's token.
var maskedFields = []string{"auth_secret", "signature", "s", "secret", "token"}

// maskForm returns a form-encoded body with the values of maskedFields
// replaced by "***"; any other body is returned as it is.
func maskForm(body string) string {
	form, err := url.ParseQuery(body)
	if err != nil || !maskFields(form, []string{"***"}) {
		return body
	}
	return form.Encode()
}

// maskSecrets returns a JSON body with the values of maskedFields replaced
// by "***"; a body without them is returned as it is.
func maskSecrets(body []byte) json.RawMessage {
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil || !maskFields(fields, json.RawMessage(`"***"`)) {
		return body
	}
	b, err := json.Marshal(fields)
	if err != nil {
		return json.RawMessage(`"***"`)
	}
	return b
}

// maskFields sets the value of every key of maskedFields that m holds to
// masked, and reports whether it held any.
func maskFields[V any](m map[string]V, masked V) bool {
	found := false
	for _, k := range maskedFields {
		if _, ok := m[k]; ok {
			m[k] = masked
			found = true
		}
	}
	return found
}

// recorder remembers the status of a response.
type recorder struct {
	http.ResponseWriter
	status int
}

// WriteHeader records the status and sends it.
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200 and writes.
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// readBody reads a request body of at most maxBody bytes.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return b, err
	}
	if len(b) > maxBody {
		return b[:maxBody], errBodyTooLarge
	}
	return b, nil
}

// record appends a call to the journal.
func (s *state) record(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.journal = append(s.journal, c)
	if len(s.journal) >= 2*maxJournal {
		s.journal = append([]Call(nil), s.journal[len(s.journal)-maxJournal:]...)
	}
}

// calls returns the journal, oldest first, filtered by api and op when they
// are not empty.
func (s *state) calls(api, op string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.journal
	if len(j) > maxJournal {
		j = j[len(j)-maxJournal:]
	}
	out := []Call{}
	for _, c := range j {
		if (api == "" || c.API == api) && (op == "" || c.Op == op) {
			out = append(out, c)
		}
	}
	return out
}

// clearCalls empties the journal and tells how many calls it held.
func (s *state) clearCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(len(s.journal), maxJournal)
	s.journal = nil
	return n
}

// clock reads the state's clock.
func (s *state) clock() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now()
}

// latency is the latency added to every API call.
func (s *state) latency() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settings.Latency
}
