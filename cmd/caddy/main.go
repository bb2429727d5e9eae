// Command caddy is the development build of Caddy with caddy-kassa and its
// sandbox plugged in: the standard modules, the kassa modules, the Redis
// storage for clusters and the offline provider simulator. Production
// builds use xcaddy (see xcaddy.md).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-kassa/kassa"
	_ "github.com/caddy-kassa/kassa/redisstorage"
	_ "github.com/caddy-kassa/kassa/sandbox"
)

func main() {
	caddycmd.Main()
}
