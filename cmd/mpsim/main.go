// Command mpsim serves the WeChat/Douyin mini-program server API simulator
// (internal/mpsim) so that the plugin can be tried without a real app id:
// point the plugin's api_base at the printed address.
//
//	mpsim -listen 127.0.0.1:9090 [-app wechat:APPID:SECRET[:unionid]]... [-quiet]
//	      [-seed N] [-success-errcode mixed|always|never] [-string-errcode mixed|always|never]
//	      [-wechat-content-type text/plain] [-werun-watermark] [-key-idle-ttl 72h|never]
//
// Without -app it serves mpsim.DemoApps(). The quirk flags set mpsim.Quirks
// (the defaults are the unkind ones; see the README). It logs one line per request
// (method, path, status, outcome; never a query string, code, secret, token
// or key) and shuts down gracefully on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mpsim:", err)
		os.Exit(1)
	}
}

type appFlags []mpsim.App

func (a *appFlags) String() string { return fmt.Sprint(len(*a), " apps") }

func (a *appFlags) Set(v string) error {
	app, err := parseApp(v)
	if err != nil {
		return err
	}
	*a = append(*a, app)
	return nil
}

// parseApp reads PLATFORM:APPID:SECRET[:unionid]. A secret may contain ':'.
func parseApp(v string) (mpsim.App, error) {
	parts := strings.Split(v, ":")
	if len(parts) < 3 {
		return mpsim.App{}, fmt.Errorf("-app %q: want platform:appid:secret[:unionid]", redact(v))
	}
	a := mpsim.App{Platform: parts[0], AppID: parts[1]}
	rest := parts[2:]
	if len(rest) > 1 && rest[len(rest)-1] == "unionid" {
		a.UnionID = true
		rest = rest[:len(rest)-1]
	}
	a.Secret = strings.Join(rest, ":")
	if err := mpsim.ValidateApp(a); err != nil {
		return mpsim.App{}, fmt.Errorf("-app %q: %w", redact(v), err)
	}
	return a, nil
}

// redact keeps platform and appid of an -app value, for error messages.
func redact(v string) string {
	parts := strings.SplitN(v, ":", 3)
	if len(parts) == 3 {
		parts[2] = "***"
	}
	return strings.Join(parts, ":")
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mpsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9090", "address to listen on")
	var apps appFlags
	fs.Var(&apps, "app", "app as platform:appid:secret[:unionid], repeatable (default: the demo apps)")
	wechatTTL := fs.Duration("wechat-code-ttl", 5*time.Minute, "lifetime of a WeChat login code")
	douyinTTL := fs.Duration("douyin-code-ttl", 3*time.Minute, "lifetime of a Douyin login or anonymous code")
	phoneTTL := fs.Duration("phone-code-ttl", 5*time.Minute, "lifetime of a WeChat phone code")
	quiet := fs.Bool("quiet", false, "do not log requests")
	var qj mpsim.QuirksJSON
	fs.Uint64Var(&qj.Seed, "seed", 0, "seed of the per-call choice of answer shapes")
	fs.TextVar(&qj.SuccessErrcode, "success-errcode", mpsim.ShapeMixed, "WeChat successes carry \"errcode\":0: mixed, always or never")
	fs.TextVar(&qj.StringErrcode, "string-errcode", mpsim.ShapeMixed, "error numbers as JSON strings: mixed, always or never")
	fs.StringVar(&qj.WeChatContentType, "wechat-content-type", mpsim.DefaultWeChatContentType, "Content-Type of WeChat answers")
	fs.BoolVar(&qj.WeRunWatermark, "werun-watermark", false, "give WeRun payloads a watermark")
	fs.StringVar(&qj.KeyIdleTTL, "key-idle-ttl", mpsim.DefaultKeyIdleTTL.String(), "a session key unused this long expires silently (\"never\": keys never expire)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	quirks, err := mpsim.ParseQuirks(qj)
	if err != nil {
		return err
	}

	logger := log.New(stderr, "mpsim: ", log.LstdFlags|log.Lmicroseconds)
	opts := mpsim.Options{Apps: apps, WeChatCodeTTL: *wechatTTL, DouyinCodeTTL: *douyinTTL, PhoneCodeTTL: *phoneTTL, Quirks: quirks}
	if !*quiet {
		opts.Logger = logger
	}
	demo := len(apps) == 0
	sim := mpsim.New(opts)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "mpsim listening on %s\n", ln.Addr())
	for _, a := range sim.Apps() {
		secret := "(as given)"
		if demo {
			secret = a.Secret // the demo secrets are public
		}
		fmt.Fprintf(stdout, "  app %-6s appid=%s secret=%s unionid=%v\n", a.Platform, a.AppID, secret, a.UnionID)
	}
	qs := mpsim.QuirksToJSON(sim.Quirks())
	fmt.Fprintf(stdout, "  quirks: seed=%d success-errcode=%s string-errcode=%s wechat-content-type=%q werun-watermark=%v key-idle-ttl=%s\n",
		qs.Seed, qs.SuccessErrcode, qs.StringErrcode, qs.WeChatContentType, qs.WeRunWatermark, qs.KeyIdleTTL)
	fmt.Fprintf(stdout, "  plugin: api_base %s\n  control API: %s/_sim/ (e.g. curl -XPOST %s/_sim/login -d '{\"appid\":\"...\",\"user\":\"alice\"}')\n", base, base, base)

	// Canceled at shutdown so that requests held by a Delay fault end at once.
	baseCtx, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := &http.Server{
		Handler:           sim,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          logger,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stop()
	logger.Print("shutting down")
	cancelBase()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
