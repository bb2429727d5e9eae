package redisstorage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestModuleRegistered(t *testing.T) {
	info, err := caddy.GetModule("caddy.storage.kassa_redis")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := info.New().(caddy.StorageConverter); !ok {
		t.Errorf("%T is not a caddy.StorageConverter", info.New())
	}
}

func TestDefaults(t *testing.T) {
	s := new(Storage)
	if err := s.setup(zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	defer s.Cleanup()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	opts := s.options()
	if opts.Addr != "127.0.0.1:6379" || opts.DB != 0 || opts.TLSConfig != nil || opts.Password != "" ||
		opts.DialTimeout != 5*time.Second || opts.ReadTimeout != 5*time.Second || opts.WriteTimeout != 5*time.Second {
		t.Errorf("default client options: %+v", opts)
	}
	if s.KeyPrefix != "caddy" || s.keys.lock("kassa/reconciler") != "caddy:lock:kassa/reconciler" {
		t.Errorf("default key prefix %q, lock key %q", s.KeyPrefix, s.keys.lock("kassa/reconciler"))
	}
	if s.timing.ttl != 5*time.Second {
		t.Errorf("lock TTL %v, want 5s", s.timing.ttl)
	}
}

func TestOptions(t *testing.T) {
	t.Setenv("KASSA_REDIS_TEST_ADDRESS", "redis.internal:6380")
	s := &Storage{Address: "{env.KASSA_REDIS_TEST_ADDRESS}", DB: 3, TLS: true, Timeout: caddy.Duration(time.Second)}
	if err := s.setup(zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	defer s.Cleanup()
	opts := s.options()
	if opts.Addr != "redis.internal:6380" || opts.DB != 3 || opts.DialTimeout != time.Second {
		t.Errorf("client options: %+v", opts)
	}
	if opts.TLSConfig == nil || opts.TLSConfig.ServerName != "redis.internal" {
		t.Errorf("TLS config %+v, want server name redis.internal", opts.TLSConfig)
	}
	s.TLSServerName = "cache.example"
	if got := s.options().TLSConfig.ServerName; got != "cache.example" {
		t.Errorf("TLS server name %q, want tls_server_name's", got)
	}
	if got := s.String(); got != `kassa_redis rediss://redis.internal:6380/3 (key prefix "caddy")` {
		t.Errorf("String() = %q", got)
	}
}

func TestValidate(t *testing.T) {
	for name, s := range map[string]*Storage{
		"address without port": {Address: "localhost"},
		"negative db":          {DB: -1},
		"negative timeout":     {Timeout: caddy.Duration(-time.Second)},
		"server name, no tls":  {TLSServerName: "redis.internal"},
	} {
		if err := s.setup(zap.NewNop()); err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(); err == nil {
			t.Errorf("%s: valid", name)
		}
		s.Cleanup()
	}
	if err := (&Storage{Password: "{env.KASSA_REDIS_TEST_UNSET}"}).setup(zap.NewNop()); err == nil ||
		!strings.Contains(err.Error(), "{env.KASSA_REDIS_TEST_UNSET}") {
		t.Errorf("a password from an unset variable: %v, want an error naming the placeholder", err)
	}
}

// TestPassword proves that a password from the environment authenticates
// the ACL user, and that a password appears in no error, no log line and
// no logged storage value.
func TestPassword(t *testing.T) {
	const secret, wrong = "kassa-s3cret-!#%", "wr0ng-pass%word"
	ctx := context.Background()
	user := "kassa-test-user"
	admin := testClient(t)
	prefix := "test:" + t.Name()
	if err := admin.Do(ctx, "ACL", "SETUSER", user, "reset", "on", ">"+secret, "~"+prefix+":*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	defer admin.Do(ctx, "ACL", "DELUSER", user)
	t.Setenv("KASSA_REDIS_TEST_PASSWORD", secret)

	core, logs := observer.New(zapcore.DebugLevel)
	s := &Storage{Address: testServer.Addr, Username: user, Password: "{env.KASSA_REDIS_TEST_PASSWORD}", KeyPrefix: prefix}
	if err := s.setup(zap.New(core)); err != nil {
		t.Fatal(err)
	}
	defer s.Cleanup()
	if err := s.Store(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("Store as %s with the password from the environment: %v", user, err)
	}
	if err := s.Lock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unlock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	// The ACL holds the user to its prefix: the user is who is logged in.
	if _, err := s.client.Get(ctx, "elsewhere").Result(); err == nil || errors.Is(err, redis.Nil) {
		t.Errorf("GET outside the user's keys = %v, want a NOPERM error", err)
	}

	bad := &Storage{Address: testServer.Addr, Username: user, Password: wrong, KeyPrefix: prefix}
	if err := bad.setup(zap.New(core)); err != nil {
		t.Fatal(err)
	}
	defer bad.Cleanup()
	var errs []error
	errs = append(errs, bad.Store(ctx, "k", []byte("v")), bad.Lock(ctx, "l"), bad.Delete(ctx, "k"))
	_, err := bad.Load(ctx, "k")
	errs = append(errs, err)
	for _, err := range errs {
		if err == nil {
			t.Fatal("a call with the wrong password succeeded")
		}
		if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), secret) {
			t.Errorf("error shows the password: %v", err)
		}
	}

	// Log the storages as certmagic does, through the same core.
	zap.New(core).Info("storage", zap.Any("storage", s), zap.Any("bad", bad))
	var all bytes.Buffer
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	for _, entry := range logs.All() {
		buf, err := enc.EncodeEntry(entry.Entry, entry.Context)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(buf.Bytes())
	}
	if logs.Len() < 3 || !strings.Contains(all.String(), testServer.Addr) {
		t.Fatalf("expected the provisioning lines and the storage values in the logs, got:\n%s", all.String())
	}
	if strings.Contains(all.String(), secret) || strings.Contains(all.String(), wrong) {
		t.Errorf("the logs show a password:\n%s", all.String())
	}
}

// TestThroughCaddy loads the module as Caddy does, from JSON, and proves
// that cancelling its context (a config reload or stop) closes its client.
func TestThroughCaddy(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	raw, _ := json.Marshal(map[string]any{"address": testServer.Addr, "key_prefix": "test:" + t.Name()})
	mod, err := ctx.LoadModuleByID("caddy.storage.kassa_redis", raw)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	st, err := mod.(caddy.StorageConverter).CertMagicStorage()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := st.Store(ctx, "k", []byte("v")); err != nil {
		t.Error(err)
	}
	cancel()
	if err := st.Store(context.Background(), "k", []byte("v")); !errors.Is(err, redis.ErrClosed) {
		t.Errorf("Store after the context was cancelled = %v, want redis.ErrClosed", err)
	}
}
