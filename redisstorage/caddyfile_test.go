package redisstorage

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		input string
		want  Storage
	}{
		{`kassa_redis`, Storage{}},
		{`kassa_redis redis.internal:6379`, Storage{Address: "redis.internal:6379"}},
		{`kassa_redis {
			address    10.0.0.5:6380
			username   caddy
			password   {env.REDIS_PASSWORD}
			db         2
			key_prefix shop1
			tls
			tls_server_name redis.internal
			timeout    2s
		}`, Storage{Address: "10.0.0.5:6380", Username: "caddy", Password: "{env.REDIS_PASSWORD}", DB: 2,
			KeyPrefix: "shop1", TLS: true, TLSServerName: "redis.internal", Timeout: caddy.Duration(2 * time.Second)}},
		{`kassa_redis {
			tls false
		}`, Storage{}},
		{`kassa_redis {
			password "with spaces"
		}`, Storage{Password: "with spaces"}},
	} {
		var got Storage
		if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input)); err != nil {
			t.Errorf("%s: %v", tc.input, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s:\ngot  %+v\nwant %+v", tc.input, got, tc.want)
		}
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	for input, want := range map[string]string{
		`kassa_redis a:1 b:2`:                         "wrong argument count",
		"kassa_redis a:1 {\n address b:2\n}":          "address given twice",
		"kassa_redis {\n db 1\n db 2\n}":              "db given twice",
		"kassa_redis {\n db -1\n}":                    "not a database number",
		"kassa_redis {\n db one\n}":                   "not a database number",
		"kassa_redis {\n timeout soon\n}":             "not a duration",
		"kassa_redis {\n timeout 0s\n}":               "not a duration above zero",
		"kassa_redis {\n tls maybe\n}":                "not true or false",
		"kassa_redis {\n tls true false\n}":           "wrong argument count",
		"kassa_redis {\n username\n}":                 "username takes one argument, got 0",
		"kassa_redis {\n key_prefix \"\"\n}":          "key_prefix must not be empty",
		"kassa_redis {\n adress x:1\n}":               `unrecognized subdirective "adress"`,
		"kassa_redis {\n password hunter2 hunter3\n}": "password takes one argument, got 2",
	} {
		var s Storage
		err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one saying %q", input, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter") {
			t.Errorf("%q: the error shows the password: %v", input, err)
		}
	}
}

// TestGlobalStorageOption adapts Caddy's global storage option: the module
// is Caddy's storage, its password placeholder left for Provision.
func TestGlobalStorageOption(t *testing.T) {
	adapted, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(`{
	storage kassa_redis {
		address 10.0.0.5:6379
		password {env.REDIS_PASSWORD}
	}
}
`), nil)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("adapting: %v %v", err, warnings)
	}
	var cfg struct {
		Storage map[string]any `json:"storage"`
	}
	if err := json.Unmarshal(adapted, &cfg); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"module": "kassa_redis", "address": "10.0.0.5:6379", "password": "{env.REDIS_PASSWORD}"}
	if len(cfg.Storage) != len(want) {
		t.Fatalf("storage %v, want %v", cfg.Storage, want)
	}
	for k, v := range want {
		if cfg.Storage[k] != v {
			t.Errorf("storage %v, want %v", cfg.Storage, want)
		}
	}
}
