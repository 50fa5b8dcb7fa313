# caddy-miniprogram developer targets. `make help` lists them.

GO             ?= go
BIN            ?= bin
# A count of executions, not a duration: with a duration, Go 1.26's fuzz
# coordinator can fail a target with a bare "context deadline exceeded" when
# the time runs out while a worker is mid-call (golang/go#75804, fixed in Go
# 1.27). FUZZTIMEOUT bounds each target's run in time.
FUZZTIME       ?= 100000x
FUZZTIMEOUT    ?= 5m
# Fuzz targets (func FuzzXxx in *_test.go) are looked for under these directories.
FUZZ_DIRS      ?= internal
XCADDY_VERSION ?= v0.4.5
XCADDY_JSON    ?= xcaddy.json
STATICCHECK_VERSION ?= v0.8.2

.PHONY: all help deps build demo test test-scale fuzz bench xcaddy lint clean

all: build

help:
	@echo "make build   build $(BIN)/caddy (Caddy + plugin), $(BIN)/mpsim (platform simulator) and $(BIN)/mpecho (echo backend)"
	@echo "make demo    play the login → phone story end to end (go run ./examples/demo; ARGS=-caddyfile=examples/Caddyfile.douyin for Douyin, examples/Caddyfile.cloudrun for a CloudRun-style backend, examples/Caddyfile.apps for one backend of three apps)"
	@echo "make deps    install redis-server/redis-tools, php-cli/php-fpm, curl with apt-get when missing"
	@echo "make test    make deps, then go test -race -count=1 ./..."
	@echo "make test-scale  10,000 concurrent logins on two instances sharing Redis"
	@echo "make fuzz    run every Fuzz* target under $(FUZZ_DIRS)/ for $(FUZZTIME) executions each (at most $(FUZZTIMEOUT))"
	@echo "make bench   Go benchmarks, SDK comparison, then the wrk load test (bench/README.md)"
	@echo "make xcaddy  build $(BIN)/caddy-xcaddy with xcaddy $(XCADDY_VERSION) from $(XCADDY_JSON)"
	@echo "make lint    go vet, a gofmt check and staticcheck $(STATICCHECK_VERSION) (installed into GOBIN when missing)"
	@echo "make clean   remove $(BIN)/"

build:
	$(GO) build -o $(BIN)/caddy ./cmd/caddy
	$(GO) build -o $(BIN)/mpsim ./cmd/mpsim
	$(GO) build -o $(BIN)/mpecho ./cmd/mpecho

demo: build
	$(GO) run ./examples/demo -caddy $(BIN)/caddy -mpsim $(BIN)/mpsim $(ARGS)

# Installs what the tests need and a fresh machine may lack (redis-server
# and redis-cli; php and php-fpm, the lenient upstreams of the trust-boundary
# tests; curl, for the README's walk-through), from Debian's packages.
# Debian names the FastCGI server php-fpm<version> (in /usr/sbin), hence the
# glob.
deps:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v redis-cli >/dev/null 2>&1 || missing="$$missing redis-tools"; \
	command -v gcc >/dev/null 2>&1 || missing="$$missing gcc libc6-dev"; \
	command -v curl >/dev/null 2>&1 || missing="$$missing curl"; \
	command -v php >/dev/null 2>&1 || missing="$$missing php-cli"; \
	{ command -v php-fpm >/dev/null 2>&1 || ls /usr/sbin/php-fpm* >/dev/null 2>&1; } || missing="$$missing php-fpm"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test: deps
	$(GO) test -race -count=1 ./...

# The full-size scale test: 10,000 concurrent logins with distinct codes and
# 1,000 with one code against two instances sharing Redis (make test runs a
# 2,000-login version, since the race detector slows the test client).
test-scale: deps
	MP_CADDY_NORACE=1 MP_SCALE_LOGINS=10000 $(GO) test -count=1 -v -run '^TestScaleConcurrentLogins$$' ./integration/

# One bounded run per target: go test -fuzz takes one target per package at a time.
fuzz:
	@set -e; found=0; \
	for f in $$(grep -rlE '^func Fuzz[A-Za-z0-9_]*\(' --include='*_test.go' $(FUZZ_DIRS) | sort); do \
		pkg=./$$(dirname $$f); \
		for name in $$(sed -nE 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/p' $$f); do \
			found=$$((found+1)); \
			echo "== $$pkg $$name ($(FUZZTIME))"; \
			$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=100x -timeout=$(FUZZTIMEOUT) $$pkg; \
		done; \
	done; \
	if [ $$found -eq 0 ]; then echo "no Fuzz targets under $(FUZZ_DIRS)"; else echo "fuzz: $$found target(s) OK"; fi

# The Go benchmarks, the memory store's bytes per session, the decryption
# next to the silenceper/wechat SDK (bench/sdkcompare, a module of its own),
# then the load test (bench/load.sh: wrk against one caddy; DURATION, ROUNDS
# and the rest of its environment pass through). bench/README.md has figures.
bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...
	$(GO) test -run='^TestMemoryBytesPerSession$$' -count=1 -v ./internal/store
	cd bench/sdkcompare && $(GO) test -run=. -bench=. -benchmem -count=1 .
	bash bench/load.sh

# The build xcaddy.json records (a serialized xcaddy Builder), run with
# xcaddy's own flags: caddy_version is the version argument, each plugin
# `--with module_path@version`, each replacement `--replace old=new` (a
# relative new is relative to this directory, where xcaddy.json is). Only
# those keys, one per line, values without spaces: anything else is refused
# rather than ignored. Installs xcaddy first if it is neither in PATH nor in
# GOBIN (GOPATH/bin), then checks the module is in the binary.
xcaddy:
	@set -e; j=$(XCADDY_JSON); \
	fail() { echo "$$j: $$*" >&2; exit 1; }; \
	for k in $$(grep -o '"[^"]*"[[:space:]]*:' $$j | sed 's/[":[:space:]]//g'); do case $$k in \
		caddy_version|plugins|module_path|version|replacements|old|new) ;; \
		*) fail "key '$$k': make xcaddy reads caddy_version, plugins (module_path, version) and replacements (old, new) only";; \
	esac; done; \
	val() { sed -n 's/^[[:space:]]*"'"$$1"'"[[:space:]]*:[[:space:]]*"\([^"]*\)"[[:space:]]*,\{0,1\}[[:space:]]*$$/\1/p' $$j; }; \
	count() { echo $$#; }; \
	[ "$$(count $$(val caddy_version))" = 1 ] || fail "want one caddy_version, one key per line"; \
	[ "$$(count $$(val module_path))" = "$$(count $$(val version))" ] || fail "every plugin needs a module_path and a version, without spaces"; \
	[ "$$(count $$(val old))" = "$$(count $$(val new))" ] || fail "every replacement needs an old and a new, without spaces"; \
	args="build $$(val caddy_version)"; \
	set -- $$(val version); for m in $$(val module_path); do args="$$args --with $$m@$$1"; shift; done; \
	set -- $$(val new); for o in $$(val old); do args="$$args --replace $$o=$$1"; shift; done; \
	gobin=$$($(GO) env GOBIN); [ -n "$$gobin" ] || gobin=$$($(GO) env GOPATH | cut -d: -f1)/bin; \
	PATH="$$PATH:$$gobin"; \
	if ! command -v xcaddy >/dev/null 2>&1; then \
		echo "installing xcaddy $(XCADDY_VERSION) into $$gobin"; \
		$(GO) install github.com/caddyserver/xcaddy/cmd/xcaddy@$(XCADDY_VERSION); \
	fi; \
	echo "xcaddy $$args --output $(BIN)/caddy-xcaddy"; \
	xcaddy $$args --output $(BIN)/caddy-xcaddy
	$(BIN)/caddy-xcaddy list-modules | grep -x 'http.handlers.miniprogram'

# go vet, gofmt and staticcheck on the module and on bench/sdkcompare (a
# module of its own). staticcheck is pinned: it is installed into GOBIN
# (GOPATH/bin) when that copy is missing, another version, or built by
# another Go (it must read this Go's standard library), and run by that path.
lint:
	$(GO) vet ./...
	cd bench/sdkcompare && $(GO) vet ./...
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	@set -e; \
	gobin=$$($(GO) env GOBIN); [ -n "$$gobin" ] || gobin=$$($(GO) env GOPATH | cut -d: -f1)/bin; \
	sc=$$gobin/staticcheck; goversion=$$($(GO) env GOVERSION); \
	v=$$("$$sc" -debug.version 2>/dev/null || true); \
	if ! echo "$$v" | grep -qF '($(STATICCHECK_VERSION:v%=%))' || ! echo "$$v" | grep -qx "Compiled with Go version: $$goversion"; then \
		echo "installing staticcheck $(STATICCHECK_VERSION) ($$goversion) into $$gobin"; \
		$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION); \
	fi; \
	echo "$$sc ./..."; "$$sc" ./...; \
	echo "cd bench/sdkcompare && $$sc ./..."; cd bench/sdkcompare && "$$sc" ./...

clean:
	rm -rf $(BIN)
