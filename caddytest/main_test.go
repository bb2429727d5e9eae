// Package caddytest holds caddy-kassa's integration tests: each runs a real
// in-process Caddy (Caddy's caddytest harness, admin on localhost:2999)
// with the kassa modules and the sandbox as provider, over real HTTP. One
// Caddy per test binary, so the tests in this package never run in parallel.
package caddytest

import (
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-kassa/kassa"
	_ "github.com/caddy-kassa/kassa/sandbox"
)
