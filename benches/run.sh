#!/usr/bin/env bash
# Why this exists: the one script that compares ractmq with Mosquitto and rumqttd on this machine. It installs
# the peers if missing, builds ractmq and the load generator (benches/loadgen) in release mode, starts each
# broker on its own loopback port on its own defaults, runs the same scenarios against each in turn (A B C,
# fresh broker per run, several rounds) and hands the raw results to benches/report.py for the markdown table
# (every figure beside its run's loss and duplicates, no figure or ratio from a run that lost or duplicated
# messages), the JSON file and the PNG chart.
#
#   benches/run.sh            full mode: 3 rounds, medians, results in benches/results/
#   benches/run.sh --quick    quick mode: 1 round of short runs, prints the table, results in benches/results/quick/
#   options: --rounds N  --peers "mosquitto rumqttd ractmq ractmq-mem mosquitto-persist"  --scenarios "fanin-q0 ..."
#            --no-build  --out DIR
#
# The cluster-* scenarios run ractmq only, as a cluster of two nodes on this machine: publishers connect to
# node n1, subscribers to node n2, so every message crosses between the nodes; report.py sets them beside
# ractmq's single-node figure for the same scenario shape. The stuck-* scenarios run one publisher to 10
# healthy subscribers and one that subscribes and never reads its socket (see benches/README.md). The acl-*
# scenarios run ractmq only, with an ACL file of 10,000 rules with placeholders (9,999 `devices/%c/rN/#` rules
# the load's topics do not match, then one allowing everything), to measure what authorization costs;
# report.py sets them beside ractmq's run of the same scenario without an ACL. The durable-* scenarios have
# persistent subscribers (clean session 0) and run three peers only: ractmq on its defaults (durable: each
# PUBACK waits for the commit of the copies), ractmq-mem (ractmq --durability memory) and mosquitto-persist
# (Mosquitto with persistence true); report.py gives durable/memory and durable/mosquitto-persist.
# The bridge-* scenarios measure an MQTT egress bridge: a downstream ("remote") Mosquitto on its defaults on its
# own port, the broker under test (ractmq or Mosquitto) on its defaults plus only a bridge forwarding bench/#
# to that remote, the publishers on the broker under test and the subscriber on the remote; report.py gives
# ractmq's bridge / Mosquitto's bridge. idle-bridge-fanin-q1 (ractmq only) runs fanin-q1 with a connected bridge
# whose filter (elsewhere/#) matches none of the load, and report.py sets it beside ractmq's plain fanin-q1.
# The rules-* scenarios (ractmq only) run fan-in with 1,000 rules on topics of their own (site/N/+/telemetry, a
# JSON filter and a republish each) that the load does not match, beside ractmq's plain fan-in.
#
# Every broker runs on its defaults: what it is given is only what it needs to run at all on the bench port.
#   ractmq     target/release/ractmq start --listen 127.0.0.1:PORT --no-api --sys-interval 0 --data-dir DIR
#              (--no-api: no REST API port to clash with; --sys-interval 0 only turns off periodic $SYS
#              publishing; DIR: a fresh data dir per run under the run's temporary dir, so that no run restores
#              another's state and the two nodes of a cluster do not share the default ./data; a build without
#              durability, which knows no --data-dir, runs without it, except in the durable-* scenarios, where
#              its runs fail). No queue, inflight or flow-control flag.
#   ractmq-mem (durable-* scenarios) the same plus --durability memory.
#   ractmq cluster (cluster-* scenarios): the same, plus what forms the cluster: --node-name n1 --cluster-listen
#              127.0.0.1:C1 --cookie bench on n1 and --node-name n2 --cluster-listen 127.0.0.1:C2 --cookie bench
#              --seed n1@127.0.0.1:C1 on n2 (and $RACTMQ_CLUSTER_ARGS, empty by default, recorded in
#              machine.txt when set); the load starts once both nodes list "n1,n2" in $SYS/brokers.
#   mosquitto  "listener PORT 127.0.0.1" and "allow_anonymous true" (with a listener line, Mosquitto 2 refuses
#              anonymous clients otherwise); nothing else, so its defaults hold: max_queued_messages 1000,
#              max_inflight_messages 20, no persistence, Nagle on.
#   mosquitto-persist (durable-* scenarios) the same plus "persistence true" and "persistence_location DIR/"
#              (fresh per run); its autosave_interval stays at 1800 s: it writes its database then and at exit.
#   rumqttd    its own default configuration (`rumqttd generate-config`) with the v4 listener moved to
#              127.0.0.1:PORT and the other listeners (v5, websocket, console, prometheus) removed, since they
#              would only take ports; in the conns scenario only, router max_connections = 25000, because its
#              default of 10010 refuses the 19,900 clients of a full run. next_connection_delay_ms stays at its
#              default 1 (about 1,000 connects/s at most). The load generator sends keepalive 600 to every
#              broker: rumqttd refuses 0.
#   bridges    (bridge-* and idle-bridge-* scenarios) the remote: Mosquitto with "listener PORT_REMOTE 127.0.0.1"
#              and "allow_anonymous true" only. ractmq: the same flags as above plus -c FILE, FILE holding only
#              [[bridges.mqtt]] name = "cloud", server = "127.0.0.1:PORT_REMOTE", forward = ["bench/#"] and
#              qos = 0 or 1 (the scenario's); idle-bridge: forward = ["elsewhere/#"], qos = 1. mosquitto: its two
#              lines plus only "connection cloud", "address 127.0.0.1:PORT_REMOTE", "topic bench/# out 0|1".
#              The load starts once a probe published to the broker under test (mosquitto_pub, bench/probe or
#              elsewhere/probe) has come out at the remote (mosquitto_sub): the bridge is connected. bridge-q1's
#              publishers run at most BRIDGE_Q1_WINDOW (1000) messages ahead of the subscriber (below).
set -euo pipefail
export NO_COLOR=1

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
TOOLS=${BENCH_TOOLS:-$(dirname "$ROOT")/.bench-tools}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PORT_MOSQUITTO=${PORT_MOSQUITTO:-18831}
PORT_RUMQTTD=${PORT_RUMQTTD:-18832}
PORT_RACTMQ=${PORT_RACTMQ:-18833}
# the cluster scenarios: n1 serves MQTT on PORT_RACTMQ, n2 on PORT_RACTMQ_N2; the nodes talk over the CLUSTER ports
PORT_RACTMQ_N2=${PORT_RACTMQ_N2:-18834}
PORT_CLUSTER_N1=${PORT_CLUSTER_N1:-18835}
PORT_CLUSTER_N2=${PORT_CLUSTER_N2:-18836}
# the bridge scenarios: the downstream ("remote") Mosquitto the broker under test bridges to
PORT_REMOTE=${PORT_REMOTE:-18837}
# The flow window of bridge-q1 (messages the publishers may run ahead of the subscriber at the remote): the
# remote Mosquitto acknowledges the bridge's QoS 1 messages as they arrive and keeps at most max_queued_messages
# (1000, its default) for its subscriber beyond 20 in flight, dropping the rest; a window of 1000 keeps the
# remote from dropping, so that what is lost is lost by the broker under test. bridge-q0 keeps fanin's 20,000:
# at QoS 0 Mosquitto counts against that limit only the packets not yet written to the subscriber's socket,
# which it does not reach here (as in fanin-q0, where Mosquitto loses nothing).
BRIDGE_Q1_WINDOW=${BRIDGE_Q1_WINDOW:-1000}
# extra arguments for both cluster nodes (word-split), e.g. "--forward-queue 1000000"
RACTMQ_CLUSTER_ARGS=${RACTMQ_CLUSTER_ARGS:-}
# Lines added to ractmq's [[bridges.mqtt]] table in the bridge scenarios (empty by default: the defaults a user
# gets; recorded in machine.txt when set), e.g. BRIDGE_EXTRA='protocol = "3.1.1"'.
BRIDGE_EXTRA=${BRIDGE_EXTRA:-}

MODE=full
ROUNDS=""
PEERS="mosquitto rumqttd ractmq ractmq-mem mosquitto-persist"
SCENARIOS="fanin-q0 fanin-q1 fanout-q0 p2p-q0 p2p-q1 latency-q0 conns stuck-q1 stuck-q0 cluster-p2p-q0 cluster-p2p-q1 cluster-latency-q0 acl-fanin-q0 acl-fanin-q1 durable-fanin-q1 bridge-q0 bridge-q1 idle-bridge-fanin-q1 rules-fanin-q0 rules-fanin-q1"
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
        -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

# Run lengths. Every run is bounded by a message cap, a publishing time and a hard deadline. The stuck
# scenarios publish until STUCK_MSGS_Q1 (QoS 1) or STUCK_MSGS_Q0 messages or STUCK_DURATION seconds, whichever
# comes first: long enough for ractmq's stall timeout (5 s by default) to pass while the publisher is held. At
# QoS 0 nothing bounds what the broker may write into the stuck subscriber's socket buffers (tens of MB on
# loopback), so it takes more messages to reach the broker's own queue. The bridge-* scenarios publish for
# BRIDGE_DURATION seconds (3 in full mode): the rates at stake (30,000 to a few 100,000 msg/s) fill 1-3 s with
# 100,000s of messages.
if [ "$MODE" = quick ]; then
    ROUNDS=${ROUNDS:-1}
    DURATION=2; LAT_DURATION=2; LAT_WARMUP=0.5; CONNS=10000; DEADLINE=25; BRIDGE_DURATION=2
    STUCK_MSGS_Q1=100000; STUCK_MSGS_Q0=1000000; STUCK_DURATION=12
    OUT=${OUT:-$HERE/results/quick}
else
    ROUNDS=${ROUNDS:-3}
    DURATION=5; LAT_DURATION=8; LAT_WARMUP=1; CONNS=19900; DEADLINE=60; BRIDGE_DURATION=3
    STUCK_MSGS_Q1=300000; STUCK_MSGS_Q0=3000000; STUCK_DURATION=20
    OUT=${OUT:-$HERE/results}
fi

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

is_cluster() { case "$1" in cluster-*) return 0 ;; *) return 1 ;; esac; }
is_acl() { case "$1" in acl-*) return 0 ;; *) return 1 ;; esac; }
is_durable() { case "$1" in durable-*) return 0 ;; *) return 1 ;; esac; }
# rules-*: ractmq with 1,000 rules on topics of their own, none matching the load
is_rules() { case "$1" in rules-*) return 0 ;; *) return 1 ;; esac; }
# bridge-*: the broker under test bridges the load to the remote Mosquitto; idle-bridge-*: it has a bridge that
# forwards none of the load
is_bridge() { case "$1" in bridge-*) return 0 ;; *) return 1 ;; esac; }
is_idle_bridge() { case "$1" in idle-bridge-*) return 0 ;; *) return 1 ;; esac; }
has_remote() { is_bridge "$1" || is_idle_bridge "$1"; }

# The load generator's arguments for a scenario; a cluster scenario has those of its single-node shape.
scenario_args() {
    local msgs
    local shape=${1#cluster-}
    shape=${shape#acl-}
    shape=${shape#idle-bridge-}
    shape=${shape#rules-}
    case "$shape" in
        # persistent subscribers (clean session 0): every copy is kept for them, and committed by a durable node
        durable-fanin-q1) echo "--duration $DURATION --persistent-subs fanin --pubs 4 --qos 1" ;;
        fanin-q0) echo "--duration $DURATION fanin --pubs 4 --qos 0" ;;
        fanin-q1) echo "--duration $DURATION fanin --pubs 4 --qos 1" ;;
        # 4 publishers on the broker under test -> its bridge -> 1 subscriber on the remote Mosquitto (--sub-addr)
        # (QoS 0: fanin's window of 20,000; QoS 1: BRIDGE_Q1_WINDOW, see above)
        bridge-q0) echo "--duration $BRIDGE_DURATION fanin --pubs 4 --qos 0" ;;
        bridge-q1) echo "--duration $BRIDGE_DURATION --window $BRIDGE_Q1_WINDOW fanin --pubs 4 --qos 1" ;;
        fanout-q0) echo "--duration $DURATION fanout --subs 1000 --qos 0" ;;
        p2p-q0) echo "--duration $DURATION p2p --pairs 1000 --qos 0" ;;
        p2p-q1) echo "--duration $DURATION p2p --pairs 1000 --qos 1" ;;
        latency-q0) echo "--duration $LAT_DURATION latency --pairs 200 --rate 20000 --qos 0 --warmup $LAT_WARMUP" ;;
        conns) is_cluster "$1" && { echo "run.sh: no cluster variant of conns" >&2; return 1; }
            echo "conns --count $CONNS" ;;
        # the publisher waits up to 15 s for a PUBACK or a write (the loadgen's --stall), beyond ractmq's 5 s
        # stall timeout, so that a broker holding it is measured, not given up on
        stuck-q0|stuck-q1) is_cluster "$1" && { echo "run.sh: no cluster variant of $1" >&2; return 1; }
            msgs=$STUCK_MSGS_Q1; [ "$1" = stuck-q0 ] && msgs=$STUCK_MSGS_Q0
            echo "--duration $STUCK_DURATION --max-msgs $msgs --stall 15 stuck --subs 10 --stuck 1 --pubs 1 --qos ${1#stuck-q}" ;;
        *) echo "run.sh: unknown scenario $1" >&2; return 1 ;;
    esac
}

# The hard deadline of a run (the load generator's --deadline). conns allows 300 connects/s plus 10 s:
# rumqttd on its default next_connection_delay_ms accepts about 450/s here.
scenario_deadline() {
    case "$1" in
        stuck-*) echo $((STUCK_DURATION + 20)) ;;
        conns) echo $((CONNS / 300 + 10 > DEADLINE ? CONNS / 300 + 10 : DEADLINE)) ;;
        *) echo "$DEADLINE" ;;
    esac
}

for scenario in $SCENARIOS; do
    scenario_args "$scenario" > /dev/null || exit 2
done

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

ensure_mosquitto_sub() {
    if command -v mosquitto_sub >/dev/null && command -v mosquitto_pub >/dev/null; then return; fi
    log "installing mosquitto-clients (apt-get): mosquitto_sub tells when a cluster has formed or a bridge connected"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto-clients >/dev/null
}

ensure_matplotlib() {
    python3 -c 'import matplotlib' 2>/dev/null || pip install -q matplotlib >&2 || log "no matplotlib: no PNG chart"
}

for p in $PEERS; do
    case "$p" in
        mosquitto) ensure_mosquitto ;;
        rumqttd) ensure_rumqttd ;;
        mosquitto-persist) ensure_mosquitto ;;
        ractmq|ractmq-mem) ;;
        *) echo "run.sh: unknown peer $p" >&2; exit 2 ;;
    esac
done
for s in $SCENARIOS; do
    if is_cluster "$s" || has_remote "$s"; then ensure_mosquitto_sub; break; fi
done
# the bridge scenarios' remote is a Mosquitto, whichever the peers
for s in $SCENARIOS; do
    if has_remote "$s"; then ensure_mosquitto; break; fi
done
ensure_matplotlib

if [ "$BUILD" = 1 ]; then
    log "building ractmq and ractmq-loadgen (release, target dir $TARGET)"
    (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build --release -q -p ractmq -p ractmq-loadgen)
fi
RACTMQ="$TARGET/release/ractmq"
LOADGEN="$TARGET/release/ractmq-loadgen"
# A build with durability keeps its state in --data-dir (default ./data): every run gets a fresh one. A build
# without it knows no such flag.
RACTMQ_DATA_DIR=0
if "$RACTMQ" start --help 2>/dev/null | grep -q -- '--data-dir'; then RACTMQ_DATA_DIR=1; fi

# One descriptor per idle client in the connections scenario, in the broker and in the load generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

mkdir -p "$OUT"
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ractmq-bench.XXXXXX")
LOGS="$OUT/logs"
rm -rf "$LOGS"
mkdir -p "$LOGS"
RAW="$OUT/raw.jsonl"
: > "$RAW"

# The ACL of the acl-* scenarios: 10,000 native rules with a placeholder, in order; the last allows everything.
python3 - "$RUN_DIR/acl-10k.toml" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write('no_match = "deny"\n')
    for i in range(9999):
        f.write(f'[[rule]]\npermission = "allow"\naction = "all"\ntopics = ["devices/%c/r{i}/#"]\n')
    f.write('[[rule]]\npermission = "allow"\naction = "all"\ntopics = ["#"]\n')
PY

# The rules of the rules-* scenarios: 1,000 rules, each on a filter of its own (site/N/+/telemetry) that the load
# does not match, with a JSON filter and a republish, as an operator with many sites writes them.
python3 - "$RUN_DIR/rules-1k.toml" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(1000):
        f.write(f"[[rules]]\nname = \"site-{i}\"\n"
                f"sql = 'SELECT payload.v AS v, clientid FROM \"site/{i}/+/telemetry\" WHERE payload.v > 10'\n"
                f"actions = [{{ republish = {{ topic = \"alerts/{i}/${{clientid}}\", payload = '{{\"v\": ${{v}}}}' }} }}]\n")
PY

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
            ractmq) echo "ractmq: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo "+dirty ($(git -C "$ROOT" diff --shortstat | sed 's/^ *//'))")"
                [ "$RACTMQ_DATA_DIR" = 1 ] || echo "ractmq: no --data-dir in this build (no durability): runs without it, durable-* runs fail" ;;
            ractmq-mem) echo "ractmq-mem: the same ractmq with --durability memory" ;;
            mosquitto-persist) echo "mosquitto-persist: $("$MOSQUITTO" -h 2>/dev/null | head -1 | sed 's/mosquitto version //') with persistence true" ;;
        esac
    done
    echo "mode: $MODE, rounds: $ROUNDS, started: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "flags: every broker on its defaults (benches/README.md); ractmq: start --listen 127.0.0.1:PORT --no-api --sys-interval 0$([ "$RACTMQ_DATA_DIR" = 1 ] && echo " --data-dir FRESH-DIR")"
    if [ -n "$RACTMQ_CLUSTER_ARGS" ]; then echo "RACTMQ_CLUSTER_ARGS (both cluster nodes): $RACTMQ_CLUSTER_ARGS"; fi
    if [ -n "$BRIDGE_EXTRA" ]; then echo "BRIDGE_EXTRA (ractmq's bridge table): $BRIDGE_EXTRA"; fi
    for s in $SCENARIOS; do
        if has_remote "$s"; then
            echo "bridge remote: mosquitto $("$MOSQUITTO" -h 2>/dev/null | head -1 | sed 's/mosquitto version //') on 127.0.0.1:$PORT_REMOTE, defaults; bridges: ractmq -c FILE ([[bridges.mqtt]] name, server, forward, qos only), mosquitto \"connection\" section (address, topic only)"
            break
        fi
    done
    # anything else busy on 2 cores skews the numbers: say so
    echo "loadavg before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

# ---------------------------------------------------------------- brokers
port_of() {
    case "$1" in
        mosquitto|mosquitto-persist) echo "$PORT_MOSQUITTO" ;;
        rumqttd) echo "$PORT_RUMQTTD" ;;
        ractmq|ractmq-mem) echo "$PORT_RACTMQ" ;;
    esac
}

# The processes of the broker under test: one, or the two nodes of a cluster (n1 first).
BROKER_PIDS=()

port_free() { # port
    if ss -Hltn "sport = :$1" | grep -q .; then
        echo "run.sh: port $1 is already in use" >&2
        return 1
    fi
}

# Waits until the process just started (the last of BROKER_PIDS) listens on the port.
wait_listening() { # name port logfile
    local name=$1 port=$2 logf=$3 pid=${BROKER_PIDS[-1]}
    for _ in $(seq 100); do
        if ss -Hltn "sport = :$port" | grep -q .; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.05
    done
    echo "run.sh: $name did not start listening on $port (log: $logf)" >&2
    tail -5 "$logf" >&2 || true
    return 1
}

# The arguments ractmq gets, in every scenario: what it needs to serve the bench port, no tuning.
ractmq_args() { # port
    echo "start --listen 127.0.0.1:$1 --no-api --sys-interval 0"
}

# A fresh data dir for one ractmq process (none for a build without durability, unless the scenario needs it).
# Called in this shell, not in $(...), so that the count goes on: the result is in DATA_ARGS.
DATA_DIRS=0
DATA_ARGS=()
ractmq_data_args() { # scenario
    DATA_ARGS=()
    if [ "$RACTMQ_DATA_DIR" = 1 ] || is_durable "$1"; then
        DATA_DIRS=$((DATA_DIRS + 1))
        DATA_ARGS=(--data-dir "$RUN_DIR/data-$DATA_DIRS")
    fi
}

# rumqttd's own default configuration with only its v4 listener, on the bench port; max_connections raised in
# the conns scenario alone (its default refuses the 19,900 clients of a full run).
rumqttd_config() { # scenario port
    "$RUMQTTD" generate-config | python3 -c '
import re, sys
scenario, port = sys.argv[1], sys.argv[2]
keep = True
for line in sys.stdin:
    head = re.match(r"\s*\[([^\]]+)\]", line)
    if head:
        keep = head.group(1).split(".")[0] == "router" or head.group(1).startswith("v4.1")
    if not keep:
        continue
    if re.match(r"\s*listen\s*=", line):
        line = "listen = \"127.0.0.1:%s\"\n" % port
    if scenario == "conns" and re.match(r"\s*max_connections\s*=", line):
        line = "max_connections = 25000\n"
    sys.stdout.write(line)
' "$1" "$2"
}

start_broker() { # peer scenario logfile
    local peer=$1 scenario=$2 logf=$3 port
    port=$(port_of "$peer")
    port_free "$port" || return 1
    case "$peer" in
        mosquitto)
            {
                echo "listener $port 127.0.0.1"
                echo "allow_anonymous true"
                if is_bridge "$scenario"; then mosquitto_bridge_conf "$scenario"; fi
            } > "$RUN_DIR/mosquitto.conf"
            "$MOSQUITTO" -c "$RUN_DIR/mosquitto.conf" > "$logf" 2>&1 &
            ;;
        mosquitto-persist)
            DATA_DIRS=$((DATA_DIRS + 1))
            local dir="$RUN_DIR/mosquitto-data-$DATA_DIRS"
            mkdir -p "$dir"
            # started as root, Mosquitto runs as its own user, which must be able to write its database
            if [ "$(id -u)" -eq 0 ] && id mosquitto >/dev/null 2>&1; then
                chmod 711 "$RUN_DIR"
                chown mosquitto: "$dir"
            fi
            {
                echo "listener $port 127.0.0.1"
                echo "allow_anonymous true"
                echo "persistence true"
                echo "persistence_location $dir/"
            } > "$RUN_DIR/mosquitto.conf"
            "$MOSQUITTO" -c "$RUN_DIR/mosquitto.conf" > "$logf" 2>&1 &
            ;;
        rumqttd)
            rumqttd_config "$scenario" "$port" > "$RUN_DIR/rumqttd.toml" || return 1
            grep -q "127.0.0.1:$port" "$RUN_DIR/rumqttd.toml" || { echo "run.sh: no v4 listener in rumqttd's default config" >&2; return 1; }
            "$RUMQTTD" -q -c "$RUN_DIR/rumqttd.toml" > "$logf" 2>&1 &
            ;;
        ractmq)
            # shellcheck disable=SC2046
            local acl=() conf=()
            if is_acl "$scenario"; then acl=(--acl-file "$RUN_DIR/acl-10k.toml"); fi
            if has_remote "$scenario"; then
                ractmq_bridge_conf "$scenario" > "$RUN_DIR/ractmq-bridge.toml"
                conf=(-c "$RUN_DIR/ractmq-bridge.toml")
            fi
            if is_rules "$scenario"; then conf=(-c "$RUN_DIR/rules-1k.toml"); fi
            ractmq_data_args "$scenario"
            # shellcheck disable=SC2046
            "$RACTMQ" $(ractmq_args "$port") "${conf[@]}" "${DATA_ARGS[@]}" "${acl[@]}" > "$logf" 2>&1 &
            ;;
        ractmq-mem)
            ractmq_data_args "$scenario"
            # shellcheck disable=SC2046
            "$RACTMQ" $(ractmq_args "$port") "${DATA_ARGS[@]}" --durability memory > "$logf" 2>&1 &
            ;;
    esac
    BROKER_PIDS+=($!)
    wait_listening "$peer" "$port" "$logf" || { stop_broker; return 1; }
}

# ---------------------------------------------------------------- bridges
# What a bridge scenario's bridge forwards: the load's topics (bench/fanin, under bench/#), or for an idle bridge
# a filter none of the load matches.
bridge_prefix() { # scenario
    if is_idle_bridge "$1"; then echo elsewhere; else echo bench; fi
}

# The QoS of a bridge scenario's bridge: the load's (bridge-q0, bridge-q1); 1 for an idle bridge.
bridge_qos() { # scenario
    case "$1" in bridge-q0) echo 0 ;; *) echo 1 ;; esac
}

# ractmq's configuration file in a bridge scenario: one MQTT bridge and nothing else, every other key on its
# default (max_inflight 256, buffer 100000, protocol 5, clean_start false...).
ractmq_bridge_conf() { # scenario
    echo '[[bridges.mqtt]]'
    echo 'name = "cloud"'
    echo "server = \"127.0.0.1:$PORT_REMOTE\""
    echo "forward = [\"$(bridge_prefix "$1")/#\"]"
    echo "qos = $(bridge_qos "$1")"
    if [ -n "$BRIDGE_EXTRA" ]; then echo "$BRIDGE_EXTRA"; fi
}

# Mosquitto's bridge in a bridge scenario: a connection section with its address and one outgoing topic, every
# other bridge setting on its default (cleansession false, bridge_protocol_version mqttv311, try_private true,
# notifications true, keepalive_interval 60, restart_timeout 5 30), and the broker-wide max_inflight_messages
# 20 and max_queued_messages 1000 applying to the bridge's connection as to any client's.
mosquitto_bridge_conf() { # scenario
    echo "connection cloud"
    echo "address 127.0.0.1:$PORT_REMOTE"
    echo "topic $(bridge_prefix "$1")/# out $(bridge_qos "$1")"
}

# The downstream broker of a bridge scenario: Mosquitto on its defaults on PORT_REMOTE. Its process is not the
# broker under test: its CPU and memory are not counted, but a run where it died is not ok.
REMOTE_PID=""
start_remote() { # logfile
    port_free "$PORT_REMOTE" || return 1
    {
        echo "listener $PORT_REMOTE 127.0.0.1"
        echo "allow_anonymous true"
    } > "$RUN_DIR/remote.conf"
    "$MOSQUITTO" -c "$RUN_DIR/remote.conf" > "$1" 2>&1 &
    REMOTE_PID=$!
    for _ in $(seq 100); do
        if ss -Hltn "sport = :$PORT_REMOTE" | grep -q .; then return 0; fi
        kill -0 "$REMOTE_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "run.sh: the remote Mosquitto did not start listening on $PORT_REMOTE (log: $1)" >&2
    stop_remote
    return 1
}

remote_alive() { [ -z "$REMOTE_PID" ] || kill -0 "$REMOTE_PID" 2>/dev/null; }

stop_remote() {
    [ -n "$REMOTE_PID" ] || return 0
    kill -TERM "$REMOTE_PID" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$REMOTE_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$REMOTE_PID" 2>/dev/null || true
    wait "$REMOTE_PID" 2>/dev/null || true
    REMOTE_PID=""
}

# Waits until the broker under test's bridge is connected and forwarding: a subscriber on the remote
# (mosquitto_sub -C 1) must receive a probe published to the broker under test on PREFIX/probe (QoS 0, retried
# every 0.2 s, since a probe sent before the bridge or the subscriber is ready is lost or kept back); 20 s at
# most. The probe topic is under the bridge's filter but not the load's, so no load subscriber sees it.
wait_bridge() { # scenario port logfile
    local topic port=$2 sub
    topic="$(bridge_prefix "$1")/probe"
    mosquitto_sub -h 127.0.0.1 -p "$PORT_REMOTE" -t "$topic" -C 1 -W 20 > "$RUN_DIR/probe.out" 2>/dev/null &
    sub=$!
    for _ in $(seq 100); do
        timeout 2 mosquitto_pub -h 127.0.0.1 -p "$port" -t "$topic" -m probe -q 0 2>/dev/null || true
        if ! kill -0 "$sub" 2>/dev/null; then
            wait "$sub" 2>/dev/null || true
            if grep -q probe "$RUN_DIR/probe.out"; then return 0; fi
            break
        fi
        brokers_alive && remote_alive || break
        sleep 0.2
    done
    kill "$sub" 2>/dev/null || true
    wait "$sub" 2>/dev/null || true
    echo "run.sh: the bridge did not forward a probe to the remote within 20 s (logs: $3, $3.remote)" >&2
    return 1
}

# A ractmq cluster of two nodes, n1 (MQTT on PORT_RACTMQ) and n2 (PORT_RACTMQ_N2, joining through n1); both
# log to logfile. Returns once both nodes list both in $SYS/brokers.
start_cluster() { # scenario logfile
    local logf=$2 port
    for port in "$PORT_RACTMQ" "$PORT_RACTMQ_N2" "$PORT_CLUSTER_N1" "$PORT_CLUSTER_N2"; do
        port_free "$port" || return 1
    done
    # shellcheck disable=SC2046,SC2086
    ractmq_data_args "$1"
    # shellcheck disable=SC2046,SC2086
    "$RACTMQ" $(ractmq_args "$PORT_RACTMQ") "${DATA_ARGS[@]}" --node-name n1 \
        --cluster-listen "127.0.0.1:$PORT_CLUSTER_N1" --cookie bench $RACTMQ_CLUSTER_ARGS > "$logf.n1" 2>&1 &
    BROKER_PIDS+=($!)
    wait_listening "ractmq n1" "$PORT_RACTMQ" "$logf.n1" || { stop_broker; return 1; }
    # shellcheck disable=SC2046,SC2086
    ractmq_data_args "$1"
    # shellcheck disable=SC2046,SC2086
    "$RACTMQ" $(ractmq_args "$PORT_RACTMQ_N2") "${DATA_ARGS[@]}" --node-name n2 \
        --cluster-listen "127.0.0.1:$PORT_CLUSTER_N2" --cookie bench --seed "n1@127.0.0.1:$PORT_CLUSTER_N1" \
        $RACTMQ_CLUSTER_ARGS > "$logf.n2" 2>&1 &
    BROKER_PIDS+=($!)
    wait_listening "ractmq n2" "$PORT_RACTMQ_N2" "$logf.n2" || { stop_broker; return 1; }
    wait_joined "$logf" || { stop_broker; return 1; }
}

# $SYS/brokers, retained, is published on every membership change (whatever --sys-interval says): the nodes
# have joined when each of them lists "n1,n2" there.
wait_joined() { # logfile
    local port seen
    for _ in $(seq 30); do
        seen=""
        for port in "$PORT_RACTMQ" "$PORT_RACTMQ_N2"; do
            seen+="$(mosquitto_sub -h 127.0.0.1 -p "$port" -t '$SYS/brokers' -C 1 -W 2 2>/dev/null || true);"
        done
        if [ "$seen" = "n1,n2;n1,n2;" ]; then return 0; fi
        brokers_alive || break
        sleep 0.2
    done
    echo "run.sh: the cluster did not form (\$SYS/brokers on n1;n2: \"$seen\"; logs: $1.n1, $1.n2)" >&2
    return 1
}

# Every process of the broker under test is still running.
brokers_alive() {
    local pid
    [ ${#BROKER_PIDS[@]} -gt 0 ] || return 1
    for pid in "${BROKER_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || return 1
    done
}

stop_broker() {
    local pid
    [ ${#BROKER_PIDS[@]} -gt 0 ] || return 0
    kill -TERM "${BROKER_PIDS[@]}" 2>/dev/null || true
    for _ in $(seq 50); do
        brokers_any_alive || break
        sleep 0.1
    done
    for pid in "${BROKER_PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    BROKER_PIDS=()
}

brokers_any_alive() {
    local pid
    for pid in "${BROKER_PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then return 0; fi
    done
    return 1
}
cleanup() { stop_broker; stop_remote; rm -rf "$RUN_DIR"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# The peers a scenario runs against: ractmq alone for a cluster, ACL or idle-bridge scenario; ractmq, ractmq-mem
# and mosquitto-persist for a durable one; ractmq and Mosquitto (each with its own bridge) for a bridge one;
# ractmq, Mosquitto and rumqttd for the others.
peers_of() { # scenario
    local p
    for p in $PEERS; do
        if is_bridge "$1"; then
            case "$p" in ractmq|mosquitto) echo "$p" ;; esac
        elif is_cluster "$1" || is_acl "$1" || is_idle_bridge "$1" || is_rules "$1"; then
            if [ "$p" = ractmq ]; then echo "$p"; fi
        elif is_durable "$1"; then
            case "$p" in ractmq|ractmq-mem|mosquitto-persist) echo "$p" ;; esac
        else
            case "$p" in ractmq|mosquitto|rumqttd) echo "$p" ;; esac
        fi
    done
}

# Starts what a run needs and prints the load generator's address arguments; false when it did not start, with
# what failed in START_ERROR.
START_ERROR=""
start_run() { # peer scenario logfile
    START_ERROR="broker did not start"
    if is_cluster "$2"; then
        start_cluster "$2" "$3" || return 1
        echo "--addr 127.0.0.1:$PORT_RACTMQ --sub-addr 127.0.0.1:$PORT_RACTMQ_N2"
    elif has_remote "$2"; then
        # the remote first, so that the bridge connects at once; then the load once the bridge forwards
        start_remote "$3.remote" || return 1
        start_broker "$1" "$2" "$3" || { stop_remote; return 1; }
        START_ERROR="bridge did not connect"
        wait_bridge "$2" "$(port_of "$1")" "$3" || { stop_broker; stop_remote; return 1; }
        if is_bridge "$2"; then
            echo "--addr 127.0.0.1:$(port_of "$1") --sub-addr 127.0.0.1:$PORT_REMOTE"
        else
            echo "--addr 127.0.0.1:$(port_of "$1")"
        fi
    else
        start_broker "$1" "$2" "$3" || return 1
        echo "--addr 127.0.0.1:$(port_of "$1")"
    fi
}

# ---------------------------------------------------------------- the runs
for scenario in $SCENARIOS; do
    if [ -z "$(peers_of "$scenario")" ]; then log "skipping $scenario: none of the peers it runs against is in --peers"; fi
done
started=$SECONDS
for round in $(seq "$ROUNDS"); do
    for scenario in $SCENARIOS; do
        args=$(scenario_args "$scenario")
        for peer in $(peers_of "$scenario"); do
            logf="$LOGS/$peer-$scenario-r$round.log"
            # start_run runs in this shell (not in $(...)) so that BROKER_PIDS is kept
            if ! start_run "$peer" "$scenario" "$logf" > "$RUN_DIR/addrs"; then
                printf '{"round":%d,"peer":"%s","scenario":"%s","broker_alive":false,"result":null,"error":"%s"}\n' \
                    "$round" "$peer" "$scenario" "$START_ERROR" >> "$RAW"
                continue
            fi
            addrs=$(cat "$RUN_DIR/addrs")
            pid_args=""
            for pid in "${BROKER_PIDS[@]}"; do pid_args+=" --broker-pid $pid"; done
            # shellcheck disable=SC2086
            deadline=$(scenario_deadline "$scenario")
            out=$(timeout $((deadline + 60)) "$LOADGEN" $addrs $pid_args \
                --label "$peer" --deadline "$deadline" $args 2>>"$logf.loadgen") && rc=0 || rc=$?
            alive=true
            brokers_alive && remote_alive || alive=false
            # the broker under test first: its bridge goes before the remote
            stop_broker
            stop_remote
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
