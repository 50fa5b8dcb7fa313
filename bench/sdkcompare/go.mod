module github.com/caddy-miniprogram/caddy-miniprogram/bench/sdkcompare

go 1.26.0

require (
	github.com/caddy-miniprogram/caddy-miniprogram v0.0.0
	github.com/silenceper/wechat/v2 v2.1.10
)

require (
	github.com/bradfitz/gomemcache v0.0.0-20220106215444-fb4bf637b56d // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dgryski/go-rendezvous v0.0.0-20200823014737-9f7001d12a5f // indirect
	github.com/go-redis/redis/v8 v8.11.5 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	golang.org/x/crypto v0.57.0 // indirect
)

replace github.com/caddy-miniprogram/caddy-miniprogram => ../..
