// Package miniprogram registers the miniprogram Caddy module and its
// Caddyfile directive. The handler lives in ./module, the Caddyfile parsing
// in ./caddyfile.
package miniprogram

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	mpcaddyfile "github.com/caddy-miniprogram/caddy-miniprogram/caddyfile"
	"github.com/caddy-miniprogram/caddy-miniprogram/module"
)

func init() {
	caddy.RegisterModule(module.Handler{})
	httpcaddyfile.RegisterHandlerDirective("miniprogram", mpcaddyfile.Parse)
	httpcaddyfile.RegisterDirectiveOrder("miniprogram", httpcaddyfile.Before, "reverse_proxy")
}
