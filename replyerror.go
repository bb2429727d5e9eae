package kassa

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	// maxReplyItems bounds how many list items or fields of an error
	// reply are read at each level, and how many messages are kept.
	maxReplyItems = 10
	// maxReplyText bounds, in bytes, an error's code, path or message kept
	// from a reply: some 300 letters of Russian.
	maxReplyText = 600
	// maxReplyDepth bounds how deep an error reply's values are followed.
	maxReplyDepth = 3
)

// replyFault is what a provider's error reply says, read by readReplyError
// from whichever shape it came in. Its texts are as the reply has them:
// ProviderClient.Clean makes them fit for an error.
type replyFault struct {
	// Found: the reply carries a non-empty "errors" or "error" member,
	// which makes even an HTTP 200 reply a failure.
	Found bool
	// Code is the first error code, such as invalid_parameters.
	Code string
	// Path is the dotted path of the first refused field.
	Path string
	// Message joins the reply's distinct messages with "; ".
	Message string
	// Refused lists every field the reply refuses, in the order read.
	Refused []string
	// Said lists every message with the field it refuses, for a provider
	// that reads meaning from them (Pegas-kassa's taken order_id).
	Said []replyMessage
}

// replyMessage is one message of an error reply and the dotted path of the
// field it refuses ("" for none in particular).
type replyMessage struct {
	Field, Text string
}

// readReplyError reads a provider's error reply. No provider documents the
// shape of its errors, so it accepts each shape seen in the wild:
//
//	{"errors": [{"code": ..., "message": ..., "validation_error": {...}}, "text", ...]}
//	{"errors": [{"path" or "field": ..., "message": ...}]}
//	{"errors": {"field": "message" or ["message", ...] or {"message": ...}}}
//	{"error": {"code": ..., "message": ...}} or {"error": "text"}
//	{"code": ..., "message": ..., "validation_error": {"path": ..., "message": ...}}
//	{"title": ..., "detail": ..., "errors": {"$.field": ["message"]}} (ASP.NET problem details)
//
// where a message may be a list of messages, validation_error may be an
// array whose first element's message counts (every element's path counts
// as a refused field), and a field map may nest, its fields joined into a
// dotted path in document order. A body that is not a JSON object (plain
// text, an HTML page) says nothing: the ProviderError's Body keeps it.
func readReplyError(body []byte) replyFault {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil || top == nil {
		return replyFault{}
	}
	var r replyReader
	for _, key := range []string{"errors", "error"} {
		if raw, ok := top[key]; ok && !emptyReplyValue(raw) {
			r.fault.Found = true
			r.value(raw, 0, "")
		}
	}
	r.object(top, "")
	r.fault.Message = strings.Join(r.messages, "; ")
	return r.fault
}

// replyReader gathers a replyFault, and its distinct messages.
type replyReader struct {
	fault    replyFault
	messages []string
}

// value reads an error value refusing field (dotted path; "" for none in
// particular): a message, a list of errors, an error object or a
// field → message(s) map.
func (r *replyReader) value(raw json.RawMessage, depth int, field string) {
	if depth > maxReplyDepth {
		return
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			r.message(s, field)
		}
	case '[':
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) == nil {
			for i, item := range list {
				if i == maxReplyItems {
					break
				}
				r.value(item, depth+1, field)
			}
		}
	case '{':
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil {
			return
		}
		if isErrorObject(obj) {
			r.object(obj, field)
			return
		}
		for i, m := range replyMembers(raw) {
			if i == maxReplyItems {
				break
			}
			r.value(m.value, depth+1, joinPath(field, m.key))
		}
	}
}

// isErrorObject reports whether obj is an error object rather than a
// field → message map.
func isErrorObject(obj map[string]json.RawMessage) bool {
	for _, key := range []string{"code", "message", "validation_error", "path"} {
		if _, ok := obj[key]; ok {
			return true
		}
	}
	return false
}

// object reads an error object's code, path, messages and
// validation_error. The object's messages (title, message, detail) refuse
// its own path, else field (the field map entry it came in, "" at the
// top); validation_error's message refuses its path.
func (r *replyReader) object(obj map[string]json.RawMessage, field string) {
	if r.fault.Code == "" {
		r.fault.Code = replyText(obj["code"])
	}
	if path := objectPath(obj["path"], obj["field"]); path != "" {
		field = path
	}
	r.refuse(field)
	for _, key := range []string{"title", "message", "detail"} {
		r.messageValue(obj[key], field)
	}
	raw := bytes.TrimSpace(obj["validation_error"])
	var rest []json.RawMessage
	if len(raw) > 0 && raw[0] == '[' {
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) != nil || len(list) == 0 {
			return
		}
		raw, rest = list[0], list[1:]
	}
	var v struct {
		Path    json.RawMessage `json:"path"`
		Message json.RawMessage `json:"message"`
	}
	if json.Unmarshal(raw, &v) == nil {
		path := field
		if p := objectPath(v.Path, nil); p != "" {
			path = p
		}
		r.refuse(path)
		r.messageValue(v.Message, path)
	}
	for i, item := range rest {
		if i == maxReplyItems {
			break
		}
		var v struct {
			Path json.RawMessage `json:"path"`
		}
		if json.Unmarshal(item, &v) == nil {
			r.refuse(objectPath(v.Path, nil))
		}
	}
}

// refuse notes that the reply refuses the field at path ("" for none): the
// first one is the error's Path.
func (r *replyReader) refuse(path string) {
	if path == "" {
		return
	}
	if r.fault.Path == "" {
		r.fault.Path = path
	}
	r.fault.Refused = append(r.fault.Refused, path)
}

// messageValue reads a message, given as a string or a list of strings,
// that refuses field.
func (r *replyReader) messageValue(raw json.RawMessage, field string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) == nil {
			for i, item := range list {
				if i == maxReplyItems {
					break
				}
				r.message(replyText(item), field)
			}
		}
		return
	}
	r.message(replyText(raw), field)
}

// message adds a non-empty message that refuses field; Message keeps the
// first maxReplyItems distinct ones.
func (r *replyReader) message(s, field string) {
	s = strings.TrimSpace(s)
	if s == "" {
		return
	}
	r.refuse(field)
	r.fault.Said = append(r.fault.Said, replyMessage{Field: field, Text: s})
	if len(r.messages) < maxReplyItems && !slices.Contains(r.messages, s) {
		r.messages = append(r.messages, s)
	}
}

// replyMember is one member of a JSON object.
type replyMember struct {
	key   string
	value json.RawMessage
}

// replyMembers are the members of a JSON object in document order, as far
// as they can be read.
func replyMembers(raw json.RawMessage) []replyMember {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return nil
	}
	var members []replyMember
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return members
		}
		key, _ := tok.(string)
		var value json.RawMessage
		if dec.Decode(&value) != nil {
			return members
		}
		members = append(members, replyMember{key, value})
	}
	return members
}

// objectPath is an error object's field: its path, else its field member,
// as a dotted path.
func objectPath(path, field json.RawMessage) string {
	p := replyText(path)
	if p == "" {
		p = replyText(field)
	}
	return joinPath("", p)
}

// joinPath is the dotted path of name within parent ("" at the top).
// ASP.NET's "$." prefix of a JSON path is dropped.
func joinPath(parent, name string) string {
	name = strings.TrimPrefix(name, "$.")
	if parent == "" || name == "" {
		return parent + name
	}
	return parent + "." + name
}

// replyText is the text of a JSON string or number, or "" for anything
// else.
func replyText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || (raw[0] != '"' && raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return ""
	}
	var s flexString
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return strings.TrimSpace(string(s))
}

// emptyReplyValue reports whether a JSON value says "no error": absent,
// null, false, 0, an empty string, array or object.
func emptyReplyValue(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	switch string(raw) {
	case "", "null", "false", `""`, "0":
		return true
	}
	if raw[0] == '[' || raw[0] == '{' {
		var v []json.RawMessage
		if raw[0] == '[' && json.Unmarshal(raw, &v) == nil {
			return len(v) == 0
		}
		var m map[string]json.RawMessage
		if raw[0] == '{' && json.Unmarshal(raw, &m) == nil {
			return len(m) == 0
		}
	}
	return false
}

// flatReplyText is s as valid UTF-8 with each run of white space and
// control characters one space.
func flatReplyText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
}

// capReplyText cuts s to at most maxReplyText bytes, on a rune boundary.
func capReplyText(s string) string {
	if len(s) > maxReplyText {
		cut := maxReplyText
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = strings.TrimRight(s[:cut], " ") + "…"
	}
	return s
}

// plainReplyText is what a reply that is not a JSON object or array says:
// a plain-text body ("Invalid token", a gateway's "Bad Request") or a
// JSON string, as it is; "" for JSON of another shape and for an HTML
// page, whose markup says nothing an operator can use.
func plainReplyText(body []byte) string {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] == '<' || body[0] == '{' || body[0] == '[' {
		return ""
	}
	if json.Valid(body) {
		var s string
		if json.Unmarshal(body, &s) != nil {
			return "" // a number, true, false or null
		}
		return s
	}
	return string(body)
}

// replyStatusKind is the kind of failure an HTTP status outside 2xx means:
// 401 and 403 ErrAuth, 404 ErrNotFound, 408, 409, 425, 429 and 5xx
// ErrUnavailable, anything else (400, 422...) ErrRejected. A 409 or 425
// says another request of the same operation may be under way, not that
// this one was refused: its outcome is unknown, so it is never taken for a
// refusal (which would fail an order whose invoice may still be made).
func replyStatusKind(status int) error {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return ErrAuth
	case status == http.StatusNotFound:
		return ErrNotFound
	case status == http.StatusRequestTimeout || status == http.StatusConflict || status == http.StatusTooEarly ||
		status == http.StatusTooManyRequests || status >= 500:
		return ErrUnavailable
	default:
		return ErrRejected
	}
}
