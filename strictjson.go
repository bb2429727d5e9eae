package kassa

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// errNotObject is readJSONObject's error for a value that is not an object.
var errNotObject = errors.New("not a JSON object")

// readJSONObject reads one JSON object from dec, handing each member to
// field in order, with the value's raw JSON. A key that appears twice is an
// error, so that no one can hide a second "price" behind the first.
func readJSONObject(dec *json.Decoder, field func(key string, value json.RawMessage) error) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errNotObject
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return errNotObject
		}
		if seen[key] {
			return &duplicateFieldError{key}
		}
		seen[key] = true
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return err
		}
		if err := field(key, bytes.TrimSpace(value)); err != nil {
			return err
		}
	}
	_, err = dec.Token() // the closing brace
	return err
}

// duplicateFieldError is readJSONObject's error for a key given twice.
type duplicateFieldError struct{ key string }

func (e *duplicateFieldError) Error() string {
	return "field " + quoteInput(e.key) + " appears twice"
}

// errTrailingData is decodeOneJSON's error for data after the value.
var errTrailingData = errors.New("data after the JSON value")

// decodeOneJSON runs read on a decoder over data and then makes sure
// nothing but white space follows what it read.
func decodeOneJSON(data []byte, read func(dec *json.Decoder) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := read(dec); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errTrailingData
	}
	return nil
}

// isJSONNumber reports whether raw is a JSON number.
func isJSONNumber(raw json.RawMessage) bool {
	return len(raw) > 0 && (raw[0] == '-' || '0' <= raw[0] && raw[0] <= '9')
}

// jsonString decodes raw into *s if it is a JSON string.
func jsonString(raw json.RawMessage, s *string) bool {
	return len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, s) == nil
}

// jsonSyntaxText rewrites encoding/json's errors, which repeat input
// characters, into ones that give only a position.
func jsonSyntaxText(err error) error {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("not valid JSON (at byte %d)", syn.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errors.New("not valid JSON: it ends too soon")
	}
	return err
}

// maxJSONErrorText bounds how much of a JSON decoding error a message
// repeats.
const maxJSONErrorText = 160

// jsonErrorText is a JSON decoding error as a reply may repeat it:
// encoding/json quotes the input it names (an unknown field), which may be
// as long as the body and carry markup, so it is cut short and <, > and &
// are escaped.
func jsonErrorText(err error) string {
	text := err.Error()
	if len(text) > maxJSONErrorText {
		n := maxJSONErrorText
		for n > 0 && !utf8.RuneStart(text[n]) {
			n--
		}
		text = text[:n] + "..."
	}
	return markupEscaper.Replace(text)
}
