package caddytest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddy-kassa/kassa"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// exampleFiles are the shipped example Caddyfiles that must start as they
// are, besides the docs' examples.
var exampleFiles = []string{"example/Caddyfile", "example/proxied.Caddyfile", "example/Caddyfile.production"}

// dummyEnv is a value of the right shape for each {env.NAME} the examples
// use. An example naming another variable fails until it is added here.
var dummyEnv = map[string]string{
	"CRYSTALPAY_LOGIN":          "shop-login",
	"CRYSTALPAY_SECRET":         "0123456789abcdef0123456789abcdef",
	"CRYSTALPAY_SECRET2":        "fedcba9876543210fedcba9876543210",
	"CRYSTALPAY_SALT":           "fedcba9876543210fedcba9876543210",
	"PEGAS_TOKEN":               "pegas-token-0123456789",
	"PEGAS_ENDPOINT":            "https://pegas.example/api/v1",
	"SMARTCASHIER_TOKEN":        "smartcashier-token-0123456789",
	"KASSA_NOTIFY_SECRET":       "notify-secret-0123456789abcdef",
	"KASSA_BENCH_NOTIFY_SECRET": "notify-secret-0123456789abcdef",
	"REDIS_PASSWORD":            "redis-password-0123456789",
	"SENTINEL_PASSWORD":         "sentinel-password-0123456789",
	"REDIS_KEY":                 "0123456789abcdef0123456789abcdef", // AES-256: 32 characters
}

// exampleFixtures maps a file an example names to the repository's file
// that stands in for it (paths from the repository root). Site roots need
// none: a file server does not look at its root until it serves.
var exampleFixtures = map[string]string{
	"/srv/shop/catalog.json": "example/catalog.json",
}

// envName matches an {env.NAME} placeholder, read when Caddy starts.
var envName = regexp.MustCompile(`\{env\.([A-Za-z_][A-Za-z0-9_]*)\}`)

// TestDocExamplesValidate does what `caddy validate` does (adapt, then
// provision every module without starting any) with every ```caddyfile
// example and every ```json Caddy config ("apps") of the docs, and with the
// example Caddyfiles: an example a reader copies must start, not only
// adapt. A ```json catalog file example ({"products":[...]}) must load. Secrets are dummies set in the environment, files the examples
// name are mapped to the repository's (exampleFixtures), Caddy's storage
// is a fresh directory, and an example using caddy.storage.redis (whose
// Provision connects) gets a throwaway redis-server. Syntax reference
// (<placeholders>) is not validated; snippets are wrapped as
// TestDocExamples wraps them.
func TestDocExamplesValidate(t *testing.T) {
	validated := 0
	for _, doc := range docFiles(t) {
		src, err := os.ReadFile("../" + doc)
		if err != nil {
			t.Fatal(err)
		}
		caddyfileIndex, jsonIndex := -1, -1
		for _, m := range docFence.FindAllStringSubmatch(string(src), -1) {
			lang, text := m[1], m[2]
			switch lang {
			case "caddyfile":
				caddyfileIndex++
				example, _ := wrapSnippet(text)
				if syntaxReference.MatchString(example) {
					continue
				}
				validated++
				t.Run(fmt.Sprintf("%s/caddyfile%02d", doc, caddyfileIndex), func(t *testing.T) {
					validateExample(t, example, "caddyfile")
				})
			case "json":
				var cfg map[string]any
				if json.Unmarshal([]byte(text), &cfg) != nil {
					continue
				}
				if _, ok := cfg["products"]; ok && len(cfg) == 1 {
					validated++
					t.Run(fmt.Sprintf("%s/catalog", doc), func(t *testing.T) {
						validateCatalog(t, text)
					})
					continue
				}
				if cfg["apps"] == nil {
					continue
				}
				jsonIndex++
				validated++
				t.Run(fmt.Sprintf("%s/json%02d", doc, jsonIndex), func(t *testing.T) {
					validateExample(t, text, "json")
				})
			}
		}
	}
	for _, file := range exampleFiles {
		src, err := os.ReadFile("../" + file)
		if err != nil {
			t.Fatal(err)
		}
		validated++
		t.Run(file, func(t *testing.T) {
			validateExample(t, string(src), "caddyfile")
		})
	}
	if validated < 15 {
		t.Errorf("only %d examples validated", validated)
	}
}

// validateExample adapts an example (a Caddyfile, or Caddy's JSON as is)
// and validates it as `caddy validate` does.
func validateExample(t *testing.T, example, adapter string) {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_DATA_HOME", filepath.Join(home, "data"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "config"))
	// Relative paths are from the repository's root, where the demo runs.
	t.Chdir("..")
	config := []byte(example)
	if adapter == "caddyfile" {
		adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(config, nil)
		if err != nil {
			t.Fatalf("does not adapt: %v\n%s", err, example)
		}
		config = adapted
	}
	// Looked for in the config, not the example: a comment may name one.
	for _, m := range envName.FindAllStringSubmatch(string(config), -1) {
		value, ok := dummyEnv[m[1]]
		if !ok {
			t.Fatalf("the example uses {env.%s}: give it a dummy value in dummyEnv", m[1])
		}
		t.Setenv(m[1], value)
	}
	for path, fixture := range exampleFixtures {
		abs, err := filepath.Abs(fixture)
		if err != nil {
			t.Fatal(err)
		}
		config = []byte(strings.ReplaceAll(string(config), jsonString(path), jsonString(abs)))
	}
	config = withTestRedis(t, config)
	var cfg *caddy.Config
	if err := caddy.StrictUnmarshalJSON(caddy.RemoveMetaFields(config), &cfg); err != nil {
		t.Fatalf("not a Caddy config: %v\n%s", err, example)
	}
	if err := caddy.Validate(cfg); err != nil {
		t.Errorf("does not start: %v\n%s", err, example)
	}
}

// validateCatalog loads a catalog file example as Caddy would.
func validateCatalog(t *testing.T, example string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "catalog.json")
	if err := os.WriteFile(path, []byte(example), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := kassa.LoadCatalogFile(path); err != nil {
		t.Errorf("the catalog file example does not load: %v\n%s", err, example)
	}
}

// jsonString is s as a JSON string, quotes included.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// withTestRedis points every caddy.storage.redis of a config at a
// throwaway redis-server, with the example's ACL user (its password is
// the dummy of its {env.*}), and returns the config. A config without one
// comes back as it is.
func withTestRedis(t *testing.T, config []byte) []byte {
	t.Helper()
	var cfg any
	if err := json.Unmarshal(config, &cfg); err != nil {
		t.Fatal(err)
	}
	var stores []map[string]any
	var find func(v any)
	find = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["module"] == "redis" {
				stores = append(stores, v)
			}
			for _, e := range v {
				find(e)
			}
		case []any:
			for _, e := range v {
				find(e)
			}
		}
	}
	find(cfg)
	if len(stores) == 0 {
		return config
	}
	srv := redisStartServer(t, t.TempDir())
	repl := caddy.NewReplacer()
	for _, store := range stores {
		store["address"] = []any{srv.addr}
		delete(store, "host")
		delete(store, "port")
		if user, _ := store["username"].(string); user != "" {
			password, _ := store["password"].(string)
			reply, err := srv.do("ACL", "SETUSER", user, "on", ">"+repl.ReplaceAll(password, ""), "~*", "&*", "+@all")
			if err != nil || reply != "+OK" {
				t.Fatalf("creating the example's redis user %q: %q %v", user, reply, err)
			}
		}
	}
	out, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
