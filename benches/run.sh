#!/usr/bin/env bash
# Why this exists: the one script that compares ractmq with Mosquitto and rumqttd on this machine. It installs
# the peers if missing, builds ractmq and the load generator (benches/loadgen) in release mode, starts each
# broker on its own loopback port with the tuning its users would pick for the job, runs the same scenarios
# against each in turn (A B C, fresh broker per run, several rounds) and hands the raw results to
# benches/report.py for the markdown table with ratios, the JSON file and the PNG chart.
#
#   benches/run.sh            full mode: 3 rounds, medians, results in benches/results/
#   benches/run.sh --quick    quick mode (< 2 minutes): 1 round of short runs, prints the ratios,
#                             results in benches/results/quick/
#   options: --rounds N  --peers "mosquitto rumqttd ractmq"  --scenarios "fanin-q0 ..."  --no-build  --out DIR
#
# How each peer is run (see benches/README.md for why):
#   mosquitto  listener on its port with allow_anonymous true; max_queued_messages 0 (its default of 1000
#              silently drops QoS 1 fan-in overflow); max_inflight_messages 100; set_tcp_nodelay true in the
#              latency scenario only (what a user tuning for latency does).
#   rumqttd    its v4 listener only (it serves MQTT 5 on a separate port, unused here);
#              next_connection_delay_ms = 0 (its default throttles connects); router max_connections raised to
#              25000; max_inflight_count 100 (its default); the load generator sends keepalive 600 (it refuses 0).
#   ractmq     target/release/ractmq start --listen 127.0.0.1:PORT --sys-interval 0 --max-inflight 100;
#              fan-in and fan-out add --max-queue 100000 so that a subscriber's queue does not drop QoS 1 (or 0)
#              messages while publishers run ahead of it (Mosquitto runs with an unlimited queue, above).
set -euo pipefail
export NO_COLOR=1

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
TOOLS=${BENCH_TOOLS:-$(dirname "$ROOT")/.bench-tools}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PORT_MOSQUITTO=${PORT_MOSQUITTO:-18831}
PORT_RUMQTTD=${PORT_RUMQTTD:-18832}
PORT_RACTMQ=${PORT_RACTMQ:-18833}

MODE=full
ROUNDS=""
PEERS="mosquitto rumqttd ractmq"
SCENARIOS="fanin-q0 fanin-q1 fanout-q0 p2p-q0 latency-q0 conns"
BUILD=1
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) MODE=quick ;;
        --rounds) ROUNDS=$2; shift ;;
        --peers) PEERS=$2; shift ;;
        --scenarios) SCENARIOS=$2; shift ;;
        --no-build) BUILD=0 ;;
        --out) OUT=$2; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

# Run lengths. Every run is bounded by a message cap, a publishing time and a hard deadline.
if [ "$MODE" = quick ]; then
    ROUNDS=${ROUNDS:-1}
    DURATION=2; LAT_DURATION=2; LAT_WARMUP=0.5; CONNS=10000; DEADLINE=25
    OUT=${OUT:-$HERE/results/quick}
else
    ROUNDS=${ROUNDS:-3}
    DURATION=5; LAT_DURATION=8; LAT_WARMUP=1; CONNS=19900; DEADLINE=60
    OUT=${OUT:-$HERE/results}
fi

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# ---------------------------------------------------------------- prerequisites
ensure_mosquitto() {
    if [ -x "${MOSQUITTO:-}" ]; then return; fi
    if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
        log "installing mosquitto (apt-get)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
    fi
    MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
}

ensure_rumqttd() {
    RUMQTTD=${RUMQTTD:-$TOOLS/bin/rumqttd}
    if [ ! -x "$RUMQTTD" ]; then
        log "installing rumqttd into $TOOLS (cargo install, several minutes; not --locked: it does not build so)"
        CARGO_TARGET_DIR="$TOOLS/target" cargo install rumqttd --root "$TOOLS" >&2
        rm -rf "$TOOLS/target"
    fi
}

ensure_matplotlib() {
    python3 -c 'import matplotlib' 2>/dev/null || pip install -q matplotlib >&2 || log "no matplotlib: no PNG chart"
}

for p in $PEERS; do
    case "$p" in
        mosquitto) ensure_mosquitto ;;
        rumqttd) ensure_rumqttd ;;
        ractmq) ;;
        *) echo "run.sh: unknown peer $p" >&2; exit 2 ;;
    esac
done
ensure_matplotlib

if [ "$BUILD" = 1 ]; then
    log "building ractmq and ractmq-loadgen (release, target dir $TARGET)"
    (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build --release -q -p ractmq -p ractmq-loadgen)
fi
RACTMQ="$TARGET/release/ractmq"
LOADGEN="$TARGET/release/ractmq-loadgen"

# One descriptor per idle client in the connections scenario, in the broker and in the load generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

mkdir -p "$OUT"
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ractmq-bench.XXXXXX")
LOGS="$OUT/logs"
rm -rf "$LOGS"
mkdir -p "$LOGS"
RAW="$OUT/raw.jsonl"
: > "$RAW"

# ---------------------------------------------------------------- machine
{
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "kernel: $(uname -sr)"
    echo "memory: $(free -g | awk '/Mem:/ {print $2 " GiB"}')"
    echo "open files: $(ulimit -n)"
    for p in $PEERS; do
        case "$p" in
            mosquitto) echo "mosquitto: $("$MOSQUITTO" -h 2>/dev/null | head -1 | sed 's/mosquitto version //')" ;;
            rumqttd) echo "rumqttd: $("$RUMQTTD" --version 2>/dev/null | awk '{print $2}')" ;;
            ractmq) echo "ractmq: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo "+dirty ($(git -C "$ROOT" diff --shortstat | sed 's/^ *//'))")" ;;
        esac
    done
    echo "mode: $MODE, rounds: $ROUNDS, started: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    # anything else busy on 2 cores skews the numbers: say so
    echo "loadavg before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

# ---------------------------------------------------------------- brokers
port_of() {
    case "$1" in mosquitto) echo "$PORT_MOSQUITTO" ;; rumqttd) echo "$PORT_RUMQTTD" ;; ractmq) echo "$PORT_RACTMQ" ;; esac
}

BROKER_PID=""
start_broker() { # peer scenario logfile
    local peer=$1 scenario=$2 logf=$3 port
    port=$(port_of "$peer")
    if ss -Hltn "sport = :$port" | grep -q .; then
        echo "run.sh: port $port is already in use" >&2
        return 1
    fi
    case "$peer" in
        mosquitto)
            {
                echo "listener $port 127.0.0.1"
                echo "allow_anonymous true"
                echo "max_queued_messages 0"
                echo "max_inflight_messages 100"
                echo "persistence false"
                if [ "$scenario" = latency-q0 ]; then echo "set_tcp_nodelay true"; fi
            } > "$RUN_DIR/mosquitto.conf"
            "$MOSQUITTO" -c "$RUN_DIR/mosquitto.conf" > "$logf" 2>&1 &
            ;;
        rumqttd)
            cat > "$RUN_DIR/rumqttd.toml" <<EOF
id = 0

[router]
id = 0
max_connections = 25000
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "127.0.0.1:$port"
next_connection_delay_ms = 0
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 20480
    max_inflight_count = 100
    dynamic_filters = true
EOF
            "$RUMQTTD" -q -c "$RUN_DIR/rumqttd.toml" > "$logf" 2>&1 &
            ;;
        ractmq)
            local extra=()
            case "$scenario" in fanin-*|fanout-*) extra=(--max-queue 100000) ;; esac
            "$RACTMQ" start --listen "127.0.0.1:$port" --sys-interval 0 --max-inflight 100 "${extra[@]}" > "$logf" 2>&1 &
            ;;
    esac
    BROKER_PID=$!
    for _ in $(seq 100); do
        if ss -Hltn "sport = :$port" | grep -q .; then return 0; fi
        if ! kill -0 "$BROKER_PID" 2>/dev/null; then break; fi
        sleep 0.05
    done
    echo "run.sh: $peer did not start listening on $port (log: $logf)" >&2
    tail -5 "$logf" >&2 || true
    stop_broker
    return 1
}

stop_broker() {
    [ -n "$BROKER_PID" ] || return 0
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$BROKER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=""
}
cleanup() { stop_broker; rm -rf "$RUN_DIR"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

scenario_args() {
    case "$1" in
        fanin-q0) echo "--duration $DURATION fanin --pubs 4 --qos 0" ;;
        fanin-q1) echo "--duration $DURATION fanin --pubs 4 --qos 1" ;;
        fanout-q0) echo "--duration $DURATION fanout --subs 1000 --qos 0" ;;
        p2p-q0) echo "--duration $DURATION p2p --pairs 1000 --qos 0" ;;
        latency-q0) echo "--duration $LAT_DURATION latency --pairs 200 --rate 20000 --qos 0 --warmup $LAT_WARMUP" ;;
        conns) echo "conns --count $CONNS" ;;
        *) echo "run.sh: unknown scenario $1" >&2; return 1 ;;
    esac
}

# ---------------------------------------------------------------- the runs
started=$SECONDS
for round in $(seq "$ROUNDS"); do
    for scenario in $SCENARIOS; do
        args=$(scenario_args "$scenario")
        for peer in $PEERS; do
            logf="$LOGS/$peer-$scenario-r$round.log"
            port=$(port_of "$peer")
            if ! start_broker "$peer" "$scenario" "$logf"; then
                printf '{"round":%d,"peer":"%s","scenario":"%s","broker_alive":false,"result":null,"error":"broker did not start"}\n' \
                    "$round" "$peer" "$scenario" >> "$RAW"
                continue
            fi
            # shellcheck disable=SC2086
            out=$(timeout $((DEADLINE + 60)) "$LOADGEN" --addr "127.0.0.1:$port" --broker-pid "$BROKER_PID" \
                --label "$peer" --deadline "$DEADLINE" $args 2>>"$logf.loadgen") && rc=0 || rc=$?
            alive=true
            kill -0 "$BROKER_PID" 2>/dev/null || alive=false
            stop_broker
            [ -n "$out" ] || out=null
            printf '{"round":%d,"peer":"%s","scenario":"%s","broker_alive":%s,"loadgen_exit":%d,"result":%s}\n' \
                "$round" "$peer" "$scenario" "$alive" "$rc" "$out" >> "$RAW"
            python3 "$HERE/report.py" --line "$(tail -1 "$RAW")" >&2 || true
            # let the sockets of the run close before the next broker starts
            sleep 0.5
        done
    done
done
log "runs done in $((SECONDS - started)) s"
echo "loadavg after: $(cut -d' ' -f1-3 /proc/loadavg) (includes the benchmark itself)" >> "$OUT/machine.txt"

python3 "$HERE/report.py" --raw "$RAW" --machine "$OUT/machine.txt" --out "$OUT" --mode "$MODE"
