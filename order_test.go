package kassa

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNewOrderID(t *testing.T) {
	const n = 10000
	seen := make(map[string]bool, n)
	for range n {
		id := NewOrderID()
		if len(id) != 22 {
			t.Fatalf("NewOrderID() = %q: %d characters, want 22", id, len(id))
		}
		if !ValidOrderID(id) {
			t.Fatalf("ValidOrderID(%q) = false for a fresh id", id)
		}
		// One id in 32 would start so by chance: 10 000 ids would show it.
		if id[0] == '-' || id[0] == '_' {
			t.Fatalf("NewOrderID() = %q starts with %q, which a command line takes for a flag", id, id[0])
		}
		if seen[id] {
			t.Fatalf("NewOrderID repeated %q", id)
		}
		seen[id] = true
	}
}

func TestValidOrderID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"AAAAAAAAAAAAAAAAAAAAAA", true},
		{"abcdefghijklmnopqrstuv", true},
		{"0123456789-_ABCDEFwxyz", true},
		{"", false},
		{"../etc/passwd", false},
		{"../../../../etc/passwd", false}, // 22 characters
		{strings.Repeat("a", 21), false},
		{strings.Repeat("a", 23), false},
		{"abcdefghijklmnopqrstu+", false},
		{"abcdefghijklmnopqrstu/", false},
		{"abcdefghijklmnopqrstu=", false},
		{"abcdefghijklmnopqrstu.", false},
		{"abcdefghijklmnopqrstu ", false},
		{"abcdefghijklmnopqrst\u00e9", false}, // 22 bytes, 21 runes
		{"abcdefghijklmnopqrstu\x00", false},
	} {
		t.Run(tc.id, func(t *testing.T) {
			if got := ValidOrderID(tc.id); got != tc.want {
				t.Errorf("ValidOrderID(%q) = %v, want %v", tc.id, got, tc.want)
			}
		})
	}
}

func TestMaskEmail(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"buyer@example.com", "b***r@example.com"},
		{"abc@x.ru", "a***c@x.ru"},
		{"ab@x.ru", "a***@x.ru"},
		{"a@x.ru", "a***@x.ru"},
		{"@x.ru", "***@x.ru"},
		{"ivan.petrov+shop@mail.ru", "i***p@mail.ru"},
		{"\"a@b\"@example.com", "\"***\"@example.com"},
		{"иван@почта.рф", "и***н@почта.рф"},
		{"buyer", "b***r"},
		{"", ""},
		{"x@", "x***@"},
		{"\xff\xfe\xfd@ex\xffample.com", "\uFFFD***\uFFFD@ex\uFFFDample.com"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got := MaskEmail(tc.in)
			if got != tc.want {
				t.Errorf("MaskEmail(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("MaskEmail(%q) = %q is not valid UTF-8", tc.in, got)
			}
		})
	}
}

func TestMaskPhone(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"+79991234567", "+7*******67"},
		{"79991234567", "7*******67"},
		{"+7 (999) 123-45-67", "+7*******67"},
		{"89991234567", "8*******67"},
		{"12345", "1*******45"},
		{"1234", "*******"},
		{"+1", "+*******"},
		{"", ""},
		{"call me", "*******"},
		{"\xff+7999\xfe1234567", "7*******67"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := MaskPhone(tc.in); got != tc.want {
				t.Errorf("MaskPhone(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestValidIdempotencyKey(t *testing.T) {
	for _, key := range []string{"a", "550e8400-e29b-41d4-a716-446655440000", strings.Repeat("k", 255), "with space ~!@#$%^&*()"} {
		t.Run(key, func(t *testing.T) {
			if err := ValidIdempotencyKey(key); err != nil {
				t.Errorf("ValidIdempotencyKey(%q) = %v", key, err)
			}
		})
	}
	for _, key := range []string{"", strings.Repeat("k", 256), "tab\there", "new\nline", "ключ", "nul\x00", "del\x7f", "\xff"} {
		t.Run(key, func(t *testing.T) {
			t.Run(key, func(t *testing.T) {
				err := ValidIdempotencyKey(key)
				var re *RequestError
				if !errors.As(err, &re) || re.Status != http.StatusBadRequest || re.Code != "bad_idempotency_key" {
					t.Errorf("ValidIdempotencyKey(%q) = %v, want a 400 bad_idempotency_key", key, err)
					return
				}
				if !errors.Is(err, ErrInvalid) || StatusCode(err) != http.StatusBadRequest {
					t.Errorf("ValidIdempotencyKey(%q) is not a 400 ErrInvalid", key)
				}
			})
		})
	}
}
