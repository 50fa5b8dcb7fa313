// Command caddy is Caddy with the miniprogram plugin and Caddy's standard
// modules: `go build ./cmd/caddy`.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-miniprogram/caddy-miniprogram"
)

func main() {
	caddycmd.Main()
}
