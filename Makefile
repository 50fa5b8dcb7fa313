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

.PHONY: all help deps build demo test test-scale fuzz bench xcaddy lint clean

all: build

help:
	@echo "make build   build $(BIN)/caddy (Caddy + plugin) and $(BIN)/mpsim (platform simulator)"
	@echo "make demo    play the login → phone story end to end (go run ./examples/demo)"
	@echo "make deps    install redis-server/redis-tools, php-cli/php-fpm with apt-get when missing"
	@echo "make test    make deps, then go test -race -count=1 ./..."
	@echo "make test-scale  10,000 concurrent logins on two instances sharing Redis"
	@echo "make fuzz    run every Fuzz* target under $(FUZZ_DIRS)/ for $(FUZZTIME) executions each (at most $(FUZZTIMEOUT))"
	@echo "make bench   Go benchmarks, SDK comparison, then the wrk load test (bench/README.md)"
	@echo "make xcaddy  build $(BIN)/caddy-xcaddy with xcaddy $(XCADDY_VERSION) from xcaddy.json"
	@echo "make lint    go vet ./... and a gofmt check"
	@echo "make clean   remove $(BIN)/"

build:
	$(GO) build -o $(BIN)/caddy ./cmd/caddy
	$(GO) build -o $(BIN)/mpsim ./cmd/mpsim

demo: build
	$(GO) run ./examples/demo -caddy $(BIN)/caddy -mpsim $(BIN)/mpsim

# Installs what the tests need and a fresh machine may lack (redis-server
# and redis-cli; php and php-fpm, the lenient upstreams of the trust-boundary
# tests), from Debian's packages. Debian names the FastCGI server
# php-fpm<version> (in /usr/sbin), hence the glob.
deps:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v redis-cli >/dev/null 2>&1 || missing="$$missing redis-tools"; \
	command -v gcc >/dev/null 2>&1 || missing="$$missing gcc libc6-dev"; \
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

# Installs xcaddy if it is neither in PATH nor in GOBIN (GOPATH/bin), then
# runs the build xcaddy.json describes and checks the module is in the binary.
xcaddy:
	@if ! command -v xcaddy >/dev/null 2>&1; then \
		gobin=$$($(GO) env GOBIN); \
		[ -n "$$gobin" ] || gobin=$$($(GO) env GOPATH | cut -d: -f1)/bin; \
		if [ ! -x "$$gobin/xcaddy" ]; then \
			echo "installing xcaddy $(XCADDY_VERSION) into $$gobin"; \
			$(GO) install github.com/caddyserver/xcaddy/cmd/xcaddy@$(XCADDY_VERSION); \
		fi; \
	fi
	$(GO) run ./internal/tools/xcaddybuild -config xcaddy.json -o $(BIN)/caddy-xcaddy
	./$(BIN)/caddy-xcaddy list-modules | grep -x 'http.handlers.miniprogram'

lint:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi

clean:
	rm -rf $(BIN)
