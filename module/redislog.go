package module

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// go-redis writes its own plain-text lines ("redis: 2026/12/01 ...
// pool.go:770: ...") to standard error, in the middle of Caddy's JSON log.
// Its logger is process-wide, so it is set once, on Caddy's root logger
// (a handler's logger is closed by the next config reload).
var redisLogOnce sync.Once

func routeRedisLogs() {
	redisLogOnce.Do(func() {
		redis.SetLogger(redisLogger{caddy.Log().Named("redis")})
	})
}

type redisLogger struct{ l *zap.Logger }

func (r redisLogger) Printf(_ context.Context, format string, v ...any) {
	r.l.Warn(strings.TrimSpace(fmt.Sprintf(format, v...)))
}
