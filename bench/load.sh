#!/usr/bin/env bash
# Load test of the sidecar: what the plugin costs next to a bare
# reverse_proxy, in ONE run on ONE caddy (ratios matter, not absolute
# figures: the machine is shared). Run from anywhere: bash bench/load.sh
#
# Starts, all on 127.0.0.1 and all killed at exit: mpsim (the platform), a
# fast Go upstream (200 "ok"), redis-server on a free port (no
# persistence), and one caddy built from ./cmd/caddy with one site per
# scenario. Then, with wrk (installed with apt-get if missing), ROUNDS
# rounds of every scenario, interleaved (a shared machine's load comes and
# goes: each ratio is taken within a round, and the median over the rounds
# is reported):
#
#   bare-get        GET  /api/orders  reverse_proxy alone (no plugin)
#   passthrough     GET  /api/orders  plugin in front, no route: header strip only
#   bare-bearer     GET  /api/orders  the bound scenarios' requests, reverse_proxy alone
#   bound-memory    GET  /api/orders  with a bound token (Authorization: Bearer):
#                                     identity on every request, memory store
#   bound-redis     GET  /api/orders  the same, Redis store
#   bare-post       POST /api/phone   the phone bodies, reverse_proxy alone
#   phone-memory    POST /api/phone   phone route, memory store
#   phone-redis     POST /api/phone   phone route, Redis store
#   login           POST /api/login   login route, a fresh code every request
#                                     (a code2session with mpsim each)
#   bare-post-c1, phone-memory-c1     bare-post and phone-memory with one
#                                     connection: latency without queueing
#
# and prints a table (req/s, p50, p99, ratio to bare) and the targets. It
# fails when a scenario has more than MAX_ERROR_FRACTION of non-2xx or
# socket errors. Before the load, the Redis bytes per session are measured
# (REDIS_SESSIONS sessions through store.Redis on a redis-server of their
# own).
#
# Environment: SCENARIOS (a space-separated subset of the names above;
# default all), DURATION (10s, per scenario and round), ROUNDS (3),
# WARMUP (2s before each measured run, 0 for none), THREADS (2),
# CONNECTIONS (32), PHONE_USERS (1000), LOGIN_RATE (15000: login codes are
# minted for LOGIN_RATE × DURATION requests), REDIS_SESSIONS (100000; 0
# skips the Redis memory measurement), MAX_ERROR_FRACTION (0.001),
# KEEP=1 keeps the work directory (logs, Caddyfile, results),
# PROFILE=1 enables caddy's admin endpoint and saves a CPU profile of caddy
# during the PROFILE_RUNS runs (default "bare-post#1 phone-memory#1
# phone-redis#1") into PROFILE_DIR (default /tmp/mp-bench-profiles): read them with
# go tool pprof -top <caddy binary> <file> (the binary is saved beside them).
set -euo pipefail

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
PHONE_USERS=${PHONE_USERS:-1000}
LOGIN_RATE=${LOGIN_RATE:-15000}
REDIS_SESSIONS=${REDIS_SESSIONS:-100000}
MAX_ERROR_FRACTION=${MAX_ERROR_FRACTION:-0.001}
ROUNDS=${ROUNDS:-3}
APP_ID=wxdemoapp0000001
APP_SECRET=demo-wechat-secret
# The login site has an app of its own, hence a memory store of its own: the
# memory store keeps at most 4 × max_sessions refs (400,000), least recently
# written evicted first, and the login runs' fresh codes would otherwise
# evict the phone users' sessions (as they would in production).
LOGIN_APP_ID=wxbenchlogin0001
LOGIN_APP_SECRET=bench-login-secret

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mp-bench.XXXXXX")
PIDS=()

cleanup() {
	local rc=$?
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [[ "${KEEP:-}" == 1 ]]; then
		echo "work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '== %s\n' "$*"; }

seconds() { # "10s" / "1m" / "10" -> seconds
	local d=$1
	case $d in
	*ms) echo 1 ;;
	*s) echo "${d%s}" ;;
	*m) echo $((${d%m} * 60)) ;;
	*) echo "$d" ;;
	esac
}

# --- tools -------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
	log "installing wrk (apt-get)"
	SUDO=; [[ $(id -u) -ne 0 ]] && SUDO=sudo
	$SUDO apt-get update -qq >/dev/null
	$SUDO apt-get install -y -qq wrk >/dev/null
fi
command -v redis-server >/dev/null 2>&1 || { echo "redis-server is required (apt-get install redis-server)" >&2; exit 1; }

log "building caddy, mpsim and the load helper into $WORK"
(cd "$ROOT" && go build -o "$WORK/caddy" ./cmd/caddy && go build -o "$WORK/mpsim" ./cmd/mpsim && go build -o "$WORK/load" ./bench/load)
LOAD=$WORK/load

# --- processes -----------------------------------------------------------
mapfile -t P < <("$LOAD" ports 12)
SIM_PORT=${P[0]} UP_PORT=${P[1]} REDIS_PORT=${P[2]} MEMREDIS_PORT=${P[3]}
BARE=${P[4]} PASS=${P[5]} PHONE_MEM=${P[6]} PHONE_REDIS=${P[7]} LOGIN=${P[8]} ADMIN_PORT=${P[9]}
BOUND_MEM=${P[10]} BOUND_REDIS=${P[11]}
PROFILE=${PROFILE:-0}
PROFILE_RUNS=${PROFILE_RUNS:-bare-post#1 phone-memory#1 phone-redis#1}
PROFILE_DIR=${PROFILE_DIR:-${TMPDIR:-/tmp}/mp-bench-profiles}
ADMIN="admin off"
if [[ "$PROFILE" == 1 ]]; then
	ADMIN="admin 127.0.0.1:$ADMIN_PORT"
	mkdir -p "$PROFILE_DIR"
	cp "$WORK/caddy" "$PROFILE_DIR/caddy"
fi
SIM=http://127.0.0.1:$SIM_PORT

wait_port() { # port name
	for _ in $(seq 1 200); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "$2 did not start listening on 127.0.0.1:$1; its log:" >&2
	cat "$WORK/$2.log" >&2 || true
	exit 1
}

start() { # name cmd...
	local name=$1; shift
	"$@" >"$WORK/$name.log" 2>&1 &
	PIDS+=($!)
}

start mpsim "$WORK/mpsim" -listen "127.0.0.1:$SIM_PORT" -quiet -app "wechat:$APP_ID:$APP_SECRET:unionid" -app "wechat:$LOGIN_APP_ID:$LOGIN_APP_SECRET:unionid"
SIM_PID=$!
start upstream "$LOAD" upstream -listen "127.0.0.1:$UP_PORT"
UP_PID=$!
start redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --protected-mode yes
REDIS_PID=$!
wait_port "$SIM_PORT" mpsim
wait_port "$UP_PORT" upstream
wait_port "$REDIS_PORT" redis

if [[ "$REDIS_SESSIONS" != 0 ]]; then
	log "Redis memory: $REDIS_SESSIONS sessions through store.Redis (a redis-server of its own)"
	start memredis redis-server --bind 127.0.0.1 --port "$MEMREDIS_PORT" --save "" --appendonly no --protected-mode yes
	wait_port "$MEMREDIS_PORT" memredis
	"$LOAD" redismem -redis "redis://127.0.0.1:$MEMREDIS_PORT/0" -n "$REDIS_SESSIONS" | tee "$WORK/redismem.txt"
	kill "${PIDS[-1]}" 2>/dev/null || true
fi

mp_block() { # store-line [app-id secret [extra]]
	cat <<EOF
	miniprogram {
		platform wechat
		app_id ${2:-$APP_ID}
		app_secret ${3:-$APP_SECRET}
		api_base $SIM
		$1
		login /api/login
		phone /api/phone
		${4:-}
	}
EOF
}
BINDING="token_binding {
			from json data.token
		}"

cat >"$WORK/Caddyfile" <<EOF
{
	$ADMIN
	auto_https off
	default_bind 127.0.0.1
	log {
		output file $WORK/caddy-runtime.log
		level WARN
	}
}

# bare: reverse_proxy alone
http://127.0.0.1:$BARE {
	reverse_proxy 127.0.0.1:$UP_PORT
}

# pass-through: the plugin in front, requests on none of its routes
http://127.0.0.1:$PASS {
$(mp_block "store memory")
	reverse_proxy 127.0.0.1:$UP_PORT
}

http://127.0.0.1:$PHONE_MEM {
$(mp_block "store memory")
	reverse_proxy 127.0.0.1:$UP_PORT
}

http://127.0.0.1:$PHONE_REDIS {
$(mp_block "store redis redis://127.0.0.1:$REDIS_PORT/0")
	reverse_proxy 127.0.0.1:$UP_PORT
}

# identity on every request: a bound token on an arbitrary path
http://127.0.0.1:$BOUND_MEM {
$(mp_block "store memory" "$APP_ID" "$APP_SECRET" "$BINDING")
	reverse_proxy 127.0.0.1:$UP_PORT
}

http://127.0.0.1:$BOUND_REDIS {
$(mp_block "store redis redis://127.0.0.1:$REDIS_PORT/0" "$APP_ID" "$APP_SECRET" "$BINDING")
	reverse_proxy 127.0.0.1:$UP_PORT
}

http://127.0.0.1:$LOGIN {
$(mp_block "store memory" "$LOGIN_APP_ID" "$LOGIN_APP_SECRET")
	reverse_proxy 127.0.0.1:$UP_PORT
}
EOF

start caddy "$WORK/caddy" run --config "$WORK/Caddyfile" --adapter caddyfile
CADDY_PID=$!
for p in "$BARE" "$PASS" "$PHONE_MEM" "$PHONE_REDIS" "$LOGIN" "$BOUND_MEM" "$BOUND_REDIS"; do wait_port "$p" caddy; done
log "caddy up: bare :$BARE, pass-through :$PASS, bound/memory :$BOUND_MEM, bound/redis :$BOUND_REDIS, phone/memory :$PHONE_MEM, phone/redis :$PHONE_REDIS, login :$LOGIN"

# --- requests ------------------------------------------------------------
log "logging $PHONE_USERS users in through each phone site's login route"
"$LOAD" phone -sim "$SIM" -app "$APP_ID" -login "http://127.0.0.1:$PHONE_MEM/api/login" -users "$PHONE_USERS" -prefix pm -out "$WORK/phone-memory.txt"
"$LOAD" phone -sim "$SIM" -app "$APP_ID" -login "http://127.0.0.1:$PHONE_REDIS/api/login" -users "$PHONE_USERS" -prefix pr -out "$WORK/phone-redis.txt"
log "binding $PHONE_USERS users' tokens through each bound site's login route"
"$LOAD" bound -sim "$SIM" -app "$APP_ID" -login "http://127.0.0.1:$BOUND_MEM/api/login" -users "$PHONE_USERS" -prefix bm -out "$WORK/bound-memory.txt"
"$LOAD" bound -sim "$SIM" -app "$APP_ID" -login "http://127.0.0.1:$BOUND_REDIS/api/login" -users "$PHONE_USERS" -prefix br -out "$WORK/bound-redis.txt"

RESULTS=$WORK/results.tsv CPU=$WORK/cpu.tsv
: >"$RESULTS"
: >"$CPU"
run() { # label url mode file [connections threads]
	local label=$1 url=$2 mode=$3 file=${4:-} conns=${5:-$CONNECTIONS} threads=${6:-$THREADS}
	local path=/${url#http://*/}
	if [[ "$WARMUP" != 0 && "$WARMUP" != 0s && "$mode" != codes ]]; then
		WRK_LABEL=warmup WRK_OUT= WRK_MODE=$mode WRK_FILE=$file WRK_PATH=$path WRK_THREADS=$threads \
			wrk -t"$threads" -c"$conns" -d"$WARMUP" -s "$ROOT/bench/wrk.lua" "$url" >/dev/null
	fi
	printf '%-22s ' "$label"
	local prof_pid=
	if [[ "$PROFILE" == 1 && " $PROFILE_RUNS " == *" $label "* ]]; then
		local secs=$(($(seconds "$DURATION") - 1))
		curl -s -o "$PROFILE_DIR/${label%%#*}.pprof" "http://127.0.0.1:$ADMIN_PORT/debug/pprof/profile?seconds=$((secs > 0 ? secs : 1))" &
		prof_pid=$!
	fi
	WRK_LABEL=$label WRK_OUT=$RESULTS WRK_MODE=$mode WRK_FILE=$file WRK_PATH=$path WRK_THREADS=$threads \
		"$LOAD" measure -out "$CPU" -label "$label" -pid caddy=$CADDY_PID -pid upstream=$UP_PID -pid redis=$REDIS_PID -pid mpsim=$SIM_PID -- \
		wrk -t"$threads" -c"$conns" -d"$DURATION" --latency -s "$ROOT/bench/wrk.lua" "$url" >"$WORK/wrk-$label.txt"
	if [[ -n "$prof_pid" ]]; then wait "$prof_pid" || true; fi
	tail -n 1 "$WORK/wrk-$label.txt" | awk -F'\t' '{printf "%8.0f req/s  p50 %7.3f ms  p99 %8.3f ms  non-2xx %d  errors %d\n", $4, $5/1000, $7/1000, $11, $8+$9+$10+$12}'
}

scenario() { # name round
	local r=$2
	case $1 in
	bare-get) run "bare-get#$r" "http://127.0.0.1:$BARE/api/orders" get ;;
	passthrough) run "passthrough#$r" "http://127.0.0.1:$PASS/api/orders" get ;;
	bare-bearer) run "bare-bearer#$r" "http://127.0.0.1:$BARE/api/orders" bearer "$WORK/bound-memory.txt" ;;
	bound-memory) run "bound-memory#$r" "http://127.0.0.1:$BOUND_MEM/api/orders" bearer "$WORK/bound-memory.txt" ;;
	bound-redis) run "bound-redis#$r" "http://127.0.0.1:$BOUND_REDIS/api/orders" bearer "$WORK/bound-redis.txt" ;;
	bare-post) run "bare-post#$r" "http://127.0.0.1:$BARE/api/phone" body "$WORK/phone-memory.txt" ;;
	phone-memory) run "phone-memory#$r" "http://127.0.0.1:$PHONE_MEM/api/phone" body "$WORK/phone-memory.txt" ;;
	phone-redis) run "phone-redis#$r" "http://127.0.0.1:$PHONE_REDIS/api/phone" body "$WORK/phone-redis.txt" ;;
	login)
		# Fresh codes every round, over users of their own (the
		# simulator's 100 code2session calls per user and minute).
		"$LOAD" codes -sim "$SIM" -app "$LOGIN_APP_ID" -n "$NCODES" -prefix "login-r$r" -out "$WORK/codes-$r.txt" >"$WORK/codes-$r.log"
		run "login#$r" "http://127.0.0.1:$LOGIN/api/login" codes "$WORK/codes-$r.txt"
		;;
	bare-post-c1) run "bare-post-c1#$r" "http://127.0.0.1:$BARE/api/phone" body "$WORK/phone-memory.txt" 1 1 ;;
	phone-memory-c1) run "phone-memory-c1#$r" "http://127.0.0.1:$PHONE_MEM/api/phone" body "$WORK/phone-memory.txt" 1 1 ;;
	esac
}

SCENARIOS=(${SCENARIOS:-bare-get passthrough bare-bearer bound-memory bound-redis bare-post phone-memory phone-redis login bare-post-c1 phone-memory-c1})
NCODES=$(($(seconds "$DURATION") * LOGIN_RATE))
log "load: $ROUNDS round(s) of ${#SCENARIOS[@]} scenarios, $DURATION each (warm-up $WARMUP), $THREADS threads, $CONNECTIONS connections (the -c1 ones: 1 thread, 1 connection)"
for r in $(seq 1 "$ROUNDS"); do
	# Each round starts one scenario later, so no scenario always runs
	# right after the same neighbour.
	n=${#SCENARIOS[@]}
	for i in $(seq 0 $((n - 1))); do
		scenario "${SCENARIOS[$(((i + r - 1) % n))]}" "$r"
	done
done

# The floor under a session lookup on Redis: one round trip's client CPU.
"$LOAD" redisfloor -redis "redis://127.0.0.1:$REDIS_PORT/0" -c "$CONNECTIONS" >"$WORK/redisfloor.txt"

# --- report ----------------------------------------------------------------
echo
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS round(s); one caddy (GOMAXPROCS=$(nproc)), mpsim, upstream, redis and wrk on the same CPUs"
if [[ -f "$WORK/redismem.txt" ]]; then
	grep -v '^RESULT' "$WORK/redismem.txt"
fi
cat "$WORK/redisfloor.txt"
"$LOAD" report -results "$RESULTS" -cpu "$CPU" -max-error-fraction "$MAX_ERROR_FRACTION"
