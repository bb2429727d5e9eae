// Command caddy is the development build of Caddy with caddy-kassa and its
// sandbox plugged in: the standard modules, the kassa modules, the
// ecosystem's Redis storage for clusters (caddy.storage.redis, from
// github.com/pberkel/caddy-storage-redis) and the offline provider
// simulator. Production builds use xcaddy (see xcaddy.md).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/pberkel/caddy-storage-redis"

	_ "github.com/caddy-kassa/kassa"
	_ "github.com/caddy-kassa/kassa/sandbox"
)

func main() {
	caddycmd.Main()
}
