package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// ProbeTimeout bounds Probe.
const ProbeTimeout = 2 * time.Second

// Probe pings Redis once, when the configuration loads, within
// ProbeTimeout. It returns an error only when TLS certificate verification
// fails: the server's certificate does not verify (wrong CA, wrong name,
// expired), or the server refuses the client certificate. That is a
// configuration error which waiting does not fix. Any other failure
// (Redis down or starting, a wrong password, a refused command) is logged
// as a warning and Probe returns nil, so that a brief Redis outage does
// not stop Caddy from starting: requests answer store_unavailable until
// Redis answers, and the client reconnects by itself.
func (r *Redis) Probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	err := r.conn.client.Ping(ctx).Err()
	if err == nil {
		r.log.Debug("store: redis answers")
		return nil
	}
	if what := certificateError(err); what != "" {
		if what == certServer {
			if r.caFile != "" {
				what += " against the CA file " + r.caFile
			} else {
				what += " against the system's CAs (set a CA file for a private CA)"
			}
		}
		return fmt.Errorf("store: redis TLS: %s: %v", what, err)
	}
	r.log.Warn("store: redis is not usable at load; its requests answer store_unavailable until it is",
		zap.String("error", describe(err)))
	return nil
}

const (
	certServer = "the server's certificate does not verify"
	certClient = "the server refused the client certificate"
)

// certificateError tells whether err is a certificate verification
// failure, on our side (certServer) or the server's (certClient: a TLS
// alert about our certificate); "" for any other error.
func certificateError(err error) string {
	var (
		cv *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		he x509.HostnameError
		ci x509.CertificateInvalidError
	)
	if errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) {
		return certServer
	}
	// The server's alert arrives as a net.OpError "remote error" around
	// crypto/tls's unexported alert type: compare its text.
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" && oe.Err != nil {
		switch oe.Err.Error() {
		case "tls: bad certificate", "tls: unsupported certificate", "tls: revoked certificate",
			"tls: expired certificate", "tls: unknown certificate", "tls: unknown certificate authority",
			"tls: certificate required", "tls: access denied":
			return certClient
		}
	}
	return ""
}

// clusterReloadHook makes a Cluster client reload its slot map when a
// command fails without a reply from Redis (a node unreachable, or not
// answering in time). go-redis reloads the map on MOVED and ASK replies,
// and otherwise only once a minute: after a master dies and a replica
// takes its slots over, the commands for those slots would keep going to
// the dead address for up to a minute. Reloads are asynchronous and
// coalesced by go-redis (one at a time, at most about five a second).
type clusterReloadHook struct{ c *redis.ClusterClient }

func (h clusterReloadHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h clusterReloadHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.reloadAfter(err)
		return err
	}
}

func (h clusterReloadHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			if h.reloadAfter(c.Err()) {
				break
			}
		}
		return err
	}
}

// reloadAfter asks for a reload after an error that is not a reply.
func (h clusterReloadHook) reloadAfter(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, redis.ErrClosed) || errors.Is(err, context.Canceled) {
		return false
	}
	var reply redis.Error
	if errors.As(err, &reply) {
		return false
	}
	h.c.ReloadState(context.Background())
	return true
}
