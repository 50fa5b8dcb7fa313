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
	// Ahead of every handler that may route or answer (basic_auth, handle,
	// route, reverse_proxy...): a site that proxies from inside a handle
	// block is still protected. Only rewrite, uri and try_files run
	// earlier; the handler recognises its routes on the original request
	// too.
	httpcaddyfile.RegisterDirectiveOrder("miniprogram", httpcaddyfile.Before, "basicauth")
}
