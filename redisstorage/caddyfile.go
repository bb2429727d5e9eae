package redisstorage

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// UnmarshalCaddyfile sets up the storage from Caddyfile tokens, as the
// global storage option or kassa's storage option.
//
// Syntax:
//
//	kassa_redis [<address>] {
//		address         <host:port>    # default 127.0.0.1:6379
//		username        <user>         # Redis ACL user
//		password        <password>     # use {env.REDIS_PASSWORD}
//		db              <n>            # default 0
//		key_prefix      <prefix>       # default caddy
//		tls             [true|false]   # bare tls = true; default false
//		tls_server_name <name>         # default the address's host
//		timeout         <duration>     # dial, read and write; default 5s
//	}
func (s *Storage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module's name
	if d.NextArg() {
		s.Address = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	seen := make(map[string]bool)
	for d.NextBlock(0) {
		name := d.Val()
		if seen[name] || name == "address" && s.Address != "" {
			return d.Errf("%s given twice", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "address":
			err = oneArg(d, &s.Address)
		case "username":
			err = oneArg(d, &s.Username)
		case "password":
			err = oneArg(d, &s.Password)
		case "key_prefix":
			err = oneArg(d, &s.KeyPrefix)
		case "tls_server_name":
			err = oneArg(d, &s.TLSServerName)
		case "db":
			var raw string
			if err = oneArg(d, &raw); err == nil {
				if s.DB, err = strconv.Atoi(raw); err != nil || s.DB < 0 {
					err = d.Errf("db: %q is not a database number", raw)
				}
			}
		case "tls":
			err = parseBool(d, &s.TLS)
		case "timeout":
			var raw string
			if err = oneArg(d, &raw); err == nil {
				if dur, perr := caddy.ParseDuration(raw); perr != nil || dur <= 0 {
					err = d.Errf("timeout: %q is not a duration above zero", raw)
				} else {
					s.Timeout = caddy.Duration(dur)
				}
			}
		default:
			err = d.Errf("unrecognized subdirective %q", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// oneArg reads a subdirective's single, non-empty argument into dst. Its
// errors never quote an argument, which may be a password.
func oneArg(d *caddyfile.Dispenser, dst *string) error {
	name := d.Val()
	args := d.RemainingArgs()
	switch {
	case len(args) != 1:
		return d.Errf("%s takes one argument, got %d (quote a value with spaces)", name, len(args))
	case args[0] == "":
		return d.Errf("%s must not be empty", name)
	}
	*dst = args[0]
	return nil
}

// parseBool reads an optional true or false: the bare subdirective means
// true.
func parseBool(d *caddyfile.Dispenser, dst *bool) error {
	name := d.Val()
	if !d.NextArg() {
		*dst = true
		return nil
	}
	switch strings.ToLower(d.Val()) {
	case "true":
		*dst = true
	case "false":
		*dst = false
	default:
		return d.Errf("%s: %q is not true or false", name, d.Val())
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Storage)(nil)
