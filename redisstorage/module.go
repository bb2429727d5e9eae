// Package redisstorage is a Caddy storage module that keeps Caddy's data in
// Redis, so that several Caddy instances share it: caddy-kassa's orders
// and the reconciler's lock, and, as Caddy's global storage, certificates.
//
// Each key is a Redis hash holding its value, when it was last written and
// its size; each directory is a Redis set of its children's names, written
// in the same transaction as the value, so a listing never misses a stored
// key. Locks are Redis keys set with NX and a time to live that a
// background goroutine renews while the lock is held: a holder that dies
// loses its locks within that time.
//
// It speaks to one standalone Redis server (or a primary behind a proxy);
// Redis Cluster is not supported.
package redisstorage

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Storage{})
}

// Defaults of the options.
const (
	defaultAddress   = "127.0.0.1:6379"
	defaultKeyPrefix = "caddy"
	defaultTimeout   = 5 * time.Second
)

// Storage is Caddy storage in a Redis server. Its options name the server
// and how to reach it; one Redis client serves every call until Caddy
// cleans the module up (at a config reload or shutdown).
type Storage struct {
	// Address is the server's host:port; default 127.0.0.1:6379.
	// Placeholders such as {env.REDIS_ADDRESS} are expanded.
	Address string `json:"address,omitempty"`
	// Username is the Redis ACL user, for servers with ACLs. Placeholders
	// are expanded.
	Username string `json:"username,omitempty"`
	// Password authenticates to the server. Give it as {env.REDIS_PASSWORD}:
	// the placeholder is expanded when the module is provisioned, so the
	// password never appears in the JSON config, and it is never logged.
	Password string `json:"password,omitempty"`
	// DB is the Redis database number; default 0.
	DB int `json:"db,omitempty"`
	// KeyPrefix starts every Redis key the module writes, so that several
	// applications or clusters can share a server; default "caddy".
	KeyPrefix string `json:"key_prefix,omitempty"`
	// TLS connects to the server over TLS.
	TLS bool `json:"tls,omitempty"`
	// TLSServerName is the name the server's certificate must have;
	// default the host of Address. Needs TLS.
	TLSServerName string `json:"tls_server_name,omitempty"`
	// Timeout bounds connecting to the server and each read and write;
	// default 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// address, username and password are the options with placeholders
	// expanded.
	address, username, password string

	client *redis.Client
	keys   keyspace
	locks  *heldLocks
	timing lockTiming
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Storage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "caddy.storage.kassa_redis",
		New: func() caddy.Module { return new(Storage) },
	}
}

// Provision expands placeholders, sets defaults and creates the Redis
// client. It does not connect: a server that is down at start only makes
// the storage calls fail until it is back.
func (s *Storage) Provision(ctx caddy.Context) error {
	return s.setup(ctx.Logger())
}

// setup is Provision with the logger given, so tests can read the logs.
func (s *Storage) setup(logger *zap.Logger) error {
	repl := caddy.NewReplacer()
	s.address = repl.ReplaceKnown(s.Address, "")
	s.username = repl.ReplaceKnown(s.Username, "")
	s.password = repl.ReplaceKnown(s.Password, "")
	if s.Password != "" && s.password == "" {
		// Names the option as written (a placeholder), never a secret.
		return fmt.Errorf("kassa_redis: password %s is empty", s.Password)
	}
	if s.address == "" {
		s.address = defaultAddress
	}
	if s.KeyPrefix == "" {
		s.KeyPrefix = defaultKeyPrefix
	}
	if s.Timeout == 0 {
		s.Timeout = caddy.Duration(defaultTimeout)
	}
	s.keys = keyspace(s.KeyPrefix)
	s.locks = newHeldLocks()
	s.timing = lockTiming{ttl: lockTTL, refresh: lockRefresh, retry: lockRetry}
	s.logger = logger
	s.client = redis.NewClient(s.options())
	s.logger.Info("redis storage", zap.String("server", s.String()))
	return nil
}

// Validate checks the options, once provisioned.
func (s *Storage) Validate() error {
	if _, _, err := net.SplitHostPort(s.address); err != nil {
		// As written: an expanded placeholder is not shown.
		return fmt.Errorf("kassa_redis: address %q: want host:port", s.Address)
	}
	switch {
	case s.DB < 0:
		return fmt.Errorf("kassa_redis: db %d: must not be negative", s.DB)
	case s.Timeout < 0:
		return fmt.Errorf("kassa_redis: timeout %v: must not be negative", time.Duration(s.Timeout))
	case s.TLSServerName != "" && !s.TLS:
		return errors.New("kassa_redis: tls_server_name needs tls")
	}
	return nil
}

// options are the Redis client's options.
func (s *Storage) options() *redis.Options {
	timeout := time.Duration(s.Timeout)
	opts := &redis.Options{
		Addr:                  s.address,
		Username:              s.username,
		Password:              s.password,
		DB:                    s.DB,
		DialTimeout:           timeout,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		ContextTimeoutEnabled: true,
		// The client would otherwise probe for a Redis Enterprise
		// feature on every connection.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	if s.TLS {
		name := s.TLSServerName
		if name == "" {
			name, _, _ = net.SplitHostPort(s.address)
		}
		opts.TLSConfig = &tls.Config{ServerName: name, MinVersion: tls.VersionTLS12}
	}
	return opts
}

// CertMagicStorage returns the storage itself.
func (s *Storage) CertMagicStorage() (certmagic.Storage, error) {
	return s, nil
}

// String names the server and key prefix, never the credentials: Caddy
// and certmagic log storage values.
func (s *Storage) String() string {
	scheme := "redis"
	if s.TLS {
		scheme = "rediss"
	}
	return fmt.Sprintf("kassa_redis %s://%s/%d (key prefix %q)", scheme, s.address, s.DB, s.KeyPrefix)
}

// Cleanup stops renewing the locks still held, releases them, and closes
// the Redis client.
func (s *Storage) Cleanup() error {
	if s.client == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(s.Timeout))
	defer cancel()
	for _, name := range s.locks.names() {
		if err := s.Unlock(ctx, name); err != nil {
			s.logger.Warn("releasing a lock at cleanup", zap.String("lock", name), zap.Error(err))
		}
	}
	return s.client.Close()
}

// Interface guards.
var (
	_ caddy.Provisioner      = (*Storage)(nil)
	_ caddy.Validator        = (*Storage)(nil)
	_ caddy.CleanerUpper     = (*Storage)(nil)
	_ caddy.StorageConverter = (*Storage)(nil)
	_ certmagic.Storage      = (*Storage)(nil)
	_ fmt.Stringer           = (*Storage)(nil)
)
