#!/usr/bin/env bash
# Why this exists: the README's "RSS bytes per idle connection" depends on how the clients arrive, so this
# measures it for several connect patterns, each against a fresh broker started with default settings:
#
#   target/release/ractmq start --listen 127.0.0.1:PORT --no-api --sys-interval 0
#
# For each pattern it starts the broker, waits until it listens, reads its VmRSS, connects N idle MQTT 3.1.1
# clients (keepalive 600) with the load generator's `conns` scenario, waits SETTLE seconds, reads VmRSS again and
# prints (RSS after - RSS before) / N. Then every client pings once and is quiet again for SETTLE seconds (longer
# than the default --hibernate-after-ms), and the last column is the same quotient for these clients that have
# spoken once: the cost of a client that was active and went idle. Then it stops the broker. One line per
# pattern on stdout, the raw JSON of each run in $OUT (default: a temporary directory, printed).
#
#   benches/idle_memory.sh                    all patterns below
#   benches/idle_memory.sh burst3k trickle    only these
#   options: --no-build  --port P  --settle S  --out DIR  --repeat R  (each pattern R times, fresh broker each)
#   environment: CARGO_TARGET_DIR (where ractmq and ractmq-loadgen are built), RACTMQ_ARGS (extra broker
#   arguments, word-split, e.g. "--hibernate-after-ms 0" to compare without hibernation)
#
# Patterns:
#   burst3k        3,000 clients as fast as they can (512 handshakes in flight)
#   rate3k         3,000 clients at 5,000 connects/s
#   batches15k     15,000 clients in batches of 500, 0.2 s apart
#   burst20k       19,900 clients as fast as they can (128 in flight: what benches/run.sh's `conns` does)
#   trickle        1,000 clients at 200 connects/s
set -euo pipefail
export NO_COLOR=1

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PORT=18840
SETTLE=2
BUILD=1
OUT=""
REPEAT=1
PATTERNS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) BUILD=0 ;;
        --port) PORT=$2; shift ;;
        --settle) SETTLE=$2; shift ;;
        --out) OUT=$2; shift ;;
        --repeat) REPEAT=$2; shift ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        -*) echo "idle_memory.sh: unknown option $1" >&2; exit 2 ;;
        *) PATTERNS+=("$1") ;;
    esac
    shift
done
[ ${#PATTERNS[@]} -gt 0 ] || PATTERNS=(burst3k rate3k batches15k burst20k trickle)

# The load generator's arguments for a pattern.
pattern_args() {
    case "$1" in
        burst3k) echo "--connect-concurrency 512 conns --count 3000" ;;
        rate3k) echo "--connect-concurrency 512 conns --count 3000 --rate 5000" ;;
        batches15k) echo "--connect-concurrency 500 conns --count 15000 --batch 500 --batch-pause 0.2" ;;
        burst20k) echo "--connect-concurrency 128 conns --count 19900" ;;
        trickle) echo "--connect-concurrency 64 conns --count 1000 --rate 200" ;;
        *) echo "idle_memory.sh: unknown pattern $1" >&2; return 1 ;;
    esac
}
for p in "${PATTERNS[@]}"; do pattern_args "$p" > /dev/null || exit 2; done

if [ "$BUILD" = 1 ]; then
    echo "building ractmq and ractmq-loadgen (release, target dir $TARGET)" >&2
    (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build --release -q -p ractmq -p ractmq-loadgen)
fi
RACTMQ="$TARGET/release/ractmq"
LOADGEN="$TARGET/release/ractmq-loadgen"
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/ractmq-idle.XXXXXX")}
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

BROKER=""
cleanup() {
    if [ -n "$BROKER" ]; then
        kill "$BROKER" 2>/dev/null || true
        wait "$BROKER" 2>/dev/null || true
        BROKER=""
    fi
}
trap cleanup EXIT INT TERM

if ss -Hltn "sport = :$PORT" | grep -q .; then
    echo "idle_memory.sh: port $PORT is already in use (--port)" >&2
    exit 1
fi

printf '%-12s %8s %9s %11s %11s %10s %-12s %s\n' pattern clients conn/s "rss_before" "rss_after" "B/conn" "(KiB/conn)" \
    "B/conn after one ping"
for p in "${PATTERNS[@]}"; do
    for r in $(seq "$REPEAT"); do
        log="$OUT/$p.$r.broker.log"
        # shellcheck disable=SC2086
        "$RACTMQ" start --listen "127.0.0.1:$PORT" --no-api --sys-interval 0 ${RACTMQ_ARGS:-} > "$log" 2>&1 &
        BROKER=$!
        for _ in $(seq 100); do
            ss -Hltn "sport = :$PORT" | grep -q . && break
            sleep 0.05
        done
        sleep 0.5 # let the freshly started broker finish its own start-up allocations
        # shellcheck disable=SC2046
        "$LOADGEN" --addr "127.0.0.1:$PORT" --broker-pid "$BROKER" --label ractmq --keepalive 600 \
            --deadline 120 $(pattern_args "$p") --settle "$SETTLE" > "$OUT/$p.$r.json"
        cleanup
        python3 - "$p" "$OUT/$p.$r.json" <<'EOF'
import json, sys
name, path = sys.argv[1], sys.argv[2]
r = json.loads(open(path).read())
per = r.get("rss_bytes_per_conn") or 0
pinged = r.get("rss_bytes_per_conn_idle_after_ping") or 0
flag = "" if r.get("ok") else "  NOT OK: " + json.dumps({k: r[k] for k in ("established", "failed", "timed_out", "errors")})
print(f"{name:<12} {r['established']:>8} {r['connects_per_s']:>9.0f} {r['broker_rss_kib_before']:>8} KiB"
      f" {r['broker_rss_kib_after']:>7} KiB {per:>10.0f} {f'({per / 1024:.2f})':<12} {pinged:.0f}"
      f" ({pinged / 1024:.2f}){flag}")
EOF
    done
done
echo "raw results: $OUT" >&2
