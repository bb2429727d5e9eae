package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// pegasField is one parameter of a Pegas call.
type pegasField struct {
	name     string
	required bool
	check    func(name, v string) string // a validation message, or ""
}

// pegasCalls lists the parameters of every call besides token.
var pegasCalls = map[string][]pegasField{
	"deposit": {
		{"amount", true, checkPegasAmount},
		{"type", true, oneOf(pegasDepositTypes)},
		{"order_id", true, checkLength(1, 64)},
		{"phone", false, checkPhone},
		{"qiwi_account", false, checkLength(1, 64)},
		{"ttl", false, checkTTL},
		{"success_url", false, checkURL},
	},
	"deposit/cancel": {
		{"order_id", true, checkLength(1, 64)},
		{"id", true, checkInteger},
	},
	"withdrawal": {
		{"amount", true, checkPegasAmount},
		{"number", true, checkLength(1, 64)},
		{"method", true, oneOf(pegasWithdrawalMethods)},
		{"comment", false, checkLength(3, 100)},
		{"order_id", false, checkLength(1, 64)},
		{"ttl", false, checkTTL},
	},
	"transaction/receipt/file": {
		{"order_id", false, checkLength(1, 64)},
		{"id", false, checkInteger},
		{"format", true, oneOf(pegasFormats)},
	},
	"balance": {},
}

// label is how Laravel names a parameter in a message: order_id → order id.
func label(name string) string { return strings.ReplaceAll(name, "_", " ") }

func checkPegasAmount(name, v string) string {
	d, ok := parseMoney(v)
	switch {
	case !ok:
		return fmt.Sprintf("The %s must be a number with at most 2 decimal places.", label(name))
	case !d.IsPositive():
		return fmt.Sprintf("The %s must be greater than 0.", label(name))
	case d.GreaterThan(maxAmount):
		return fmt.Sprintf("The %s must not be greater than %s.", label(name), maxAmount)
	}
	return ""
}

func oneOf(values []string) func(string, string) string {
	return func(name, v string) string {
		if !slices.Contains(values, v) {
			return fmt.Sprintf("The selected %s is invalid.", label(name))
		}
		return ""
	}
}

func checkLength(lo, hi int) func(string, string) string {
	return func(name, v string) string {
		switch n := utf8.RuneCountInString(v); {
		case n < lo:
			return fmt.Sprintf("The %s must be at least %d characters.", label(name), lo)
		case n > hi:
			return fmt.Sprintf("The %s must not be greater than %d characters.", label(name), hi)
		}
		return ""
	}
}

func checkPhone(name, v string) string {
	if !phonePattern.MatchString(v) {
		return fmt.Sprintf("The %s format is invalid.", label(name))
	}
	return ""
}

func checkInteger(name, v string) string {
	if !integerPattern.MatchString(v) || len(v) > 15 {
		return fmt.Sprintf("The %s must be an integer.", label(name))
	}
	return ""
}

func checkTTL(name, v string) string {
	if msg := checkInteger(name, v); msg != "" {
		return msg
	}
	if n, _ := strconv.Atoi(v); n < 1 {
		return fmt.Sprintf("The %s must be at least 1.", label(name))
	}
	return ""
}

func checkURL(name, v string) string {
	if !isWebURL(v) {
		return fmt.Sprintf("The %s must be a valid URL.", label(name))
	}
	return ""
}

// pegasInput is the parameters of a call: the query string merged with a
// JSON object body (the body wins), and what was wrong with any of them.
type pegasInput struct {
	values   map[string]string
	problems map[string]string
}

// readPegasInput collects the parameters of a call. A POST body that is not
// a JSON object is a parsing_error.
func readPegasInput(r *http.Request, body []byte, bodyErr error) (pegasInput, *pegasError) {
	in := pegasInput{values: map[string]string{}, problems: map[string]string{}}
	for k, v := range r.URL.Query() {
		in.values[k] = v[0]
		if len(v) > 1 {
			in.problems[k] = fmt.Sprintf("The %s parameter must not be repeated.", label(k))
		}
	}
	if r.Method != http.MethodPost {
		return in, nil
	}
	parsing := func(msg string) *pegasError {
		return &pegasError{status: http.StatusBadRequest, Code: "parsing_error", Message: msg}
	}
	if bodyErr != nil {
		return in, parsing("The request body could not be read: " + bodyErr.Error())
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return in, nil
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return in, parsing("The request body must be JSON, sent with Content-Type: application/json.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return in, parsing("The request body must be a JSON object.")
	}
	if _, err := dec.Token(); err != io.EOF {
		return in, parsing("The request body must be a single JSON object.")
	}
	for k, v := range obj {
		delete(in.problems, k)
		switch v := v.(type) {
		case string:
			in.values[k] = v
		case json.Number:
			in.values[k] = v.String()
		default:
			in.values[k] = ""
			in.problems[k] = fmt.Sprintf("The %s must be a string or a number.", label(k))
		}
	}
	return in, nil
}

// validate checks the parameters of call op and returns their values
// (empty strings count as absent, as in Laravel).
func (in pegasInput) validate(op string) (map[string]string, *pegasError) {
	fields := pegasCalls[op]
	known := map[string]bool{"token": true}
	for _, f := range fields {
		known[f.name] = true
	}
	for _, k := range slices.Sorted(maps.Keys(in.values)) {
		if !known[k] {
			return nil, invalidParam(k, fmt.Sprintf("The %s parameter is not allowed.", label(k)))
		}
	}
	out := map[string]string{}
	for _, f := range fields {
		v := in.values[f.name]
		if msg, bad := in.problems[f.name]; bad {
			return nil, invalidParam(f.name, msg)
		}
		if v == "" {
			if f.required {
				return nil, invalidParam(f.name, fmt.Sprintf("The %s field is required.", label(f.name)))
			}
			continue
		}
		if msg := f.check(f.name, v); msg != "" {
			return nil, invalidParam(f.name, msg)
		}
		out[f.name] = v
	}
	if op == "transaction/receipt/file" && out["id"] == "" && out["order_id"] == "" {
		return nil, invalidParam("id", "The id field is required when order id is not present.")
	}
	return out, nil
}
