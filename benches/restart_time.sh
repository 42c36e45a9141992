#!/usr/bin/env bash
# Why this exists: how long a durable ractmq node takes to come back after kill -9 with a full data dir (issue
# 15): it fills a fresh node's --data-dir with 100,000 persistent sessions holding 1,000,000 queued QoS 1
# messages in total, kills it with SIGKILL, starts it again on the same data dir and measures the time until
# it accepts TCP connections and answers its first CONNACK (a resumed session). Then a sample of the sessions
# reconnects: each must have session present and get all its messages. Run by hand; not part of CI.
#
#   benches/restart_time.sh                 100,000 sessions x 10 messages, kill -9, ractmq
#   options: --sessions N (100000)  --per-topic N (100 sessions share each topic)  --msgs N (10 per topic)
#            --pubs N (4 publishers)  --sample N (200 sessions checked after the restart)  --stop kill|term
#            --peer ractmq|mosquitto-persist  --no-build  --out FILE (the JSON summary; default: stdout only)
#
# Sessions: lg-r0 .. lg-rN-1 connect with clean session 0, subscribe at QoS 1 to bench/restart/G (G = i /
# per-topic) and disconnect; then the publishers send --msgs QoS 1 messages to every topic and wait for every
# PUBACK (a durable node acknowledges only what it has committed), so SESSIONS x MSGS messages are queued.
# ractmq runs as `ractmq start --listen 127.0.0.1:PORT --no-api --sys-interval 0 --data-dir DIR` plus
# $RACTMQ_ARGS (empty by default). --peer mosquitto-persist runs Mosquitto with `persistence true` for
# comparison: it saves its database at exit and every autosave_interval (30 minutes by default), so use it with
# --stop term (after kill -9 it comes back with nothing of the fill).
set -euo pipefail
export NO_COLOR=1

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PORT=${PORT_RACTMQ:-18833}
RACTMQ_ARGS=${RACTMQ_ARGS:-}

SESSIONS=100000
PER_TOPIC=100
MSGS=10
PUBS=4
SAMPLE=200
STOP=kill
PEER=ractmq
BUILD=1
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --sessions) SESSIONS=$2; shift ;;
        --per-topic) PER_TOPIC=$2; shift ;;
        --msgs) MSGS=$2; shift ;;
        --pubs) PUBS=$2; shift ;;
        --sample) SAMPLE=$2; shift ;;
        --stop) STOP=$2; shift ;;
        --peer) PEER=$2; shift ;;
        --no-build) BUILD=0 ;;
        --out) OUT=$2; shift ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "restart_time.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
case "$STOP" in kill|term) ;; *) echo "restart_time.sh: --stop kill or term" >&2; exit 2 ;; esac
case "$PEER" in ractmq|mosquitto-persist) ;; *) echo "restart_time.sh: --peer ractmq or mosquitto-persist" >&2; exit 2 ;; esac

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

if [ "$BUILD" = 1 ]; then
    log "building ractmq and ractmq-loadgen (release, target dir $TARGET)"
    (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build --release -q -p ractmq -p ractmq-loadgen)
fi
RACTMQ="$TARGET/release/ractmq"
LOADGEN="$TARGET/release/ractmq-loadgen"
if [ "$PEER" = mosquitto-persist ]; then
    if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
        log "installing mosquitto (apt-get)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
    fi
    MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if ss -Hltn "sport = :$PORT" | grep -q .; then
    echo "restart_time.sh: port $PORT is already in use (PORT_RACTMQ)" >&2
    exit 1
fi
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ractmq-restart.XXXXXX")
DATA="$RUN_DIR/data"
mkdir -p "$DATA"
PID=""
cleanup() {
    if [ -n "$PID" ]; then kill -KILL "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    rm -rf "$RUN_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$PEER" = mosquitto-persist ]; then
    {
        echo "listener $PORT 127.0.0.1"
        echo "allow_anonymous true"
        echo "persistence true"
        echo "persistence_location $DATA/"
    } > "$RUN_DIR/mosquitto.conf"
    # started as root, Mosquitto runs as its own user, which must be able to write its database
    if [ "$(id -u)" -eq 0 ] && id mosquitto >/dev/null 2>&1; then
        chmod 711 "$RUN_DIR"
        chown mosquitto: "$DATA"
    fi
fi

# Starts the node in the background (PID) on the data dir; returns at once.
start_node() { # logfile
    case "$PEER" in
        ractmq)
            # shellcheck disable=SC2086
            "$RACTMQ" start --listen "127.0.0.1:$PORT" --no-api --sys-interval 0 --data-dir "$DATA" $RACTMQ_ARGS \
                >> "$1" 2>&1 &
            ;;
        mosquitto-persist)
            "$MOSQUITTO" -c "$RUN_DIR/mosquitto.conf" >> "$1" 2>&1 &
            ;;
    esac
    PID=$!
}

wait_listening() { # logfile
    for _ in $(seq 600); do
        if ss -Hltn "sport = :$PORT" | grep -q .; then return 0; fi
        if ! kill -0 "$PID" 2>/dev/null; then break; fi
        sleep 0.05
    done
    echo "restart_time.sh: $PEER did not start listening on $PORT:" >&2
    tail -5 "$1" >&2 || true
    return 1
}

LOG="$RUN_DIR/node.log"
log "$PEER: first start on an empty data dir"
start_node "$LOG"
if ! wait_listening "$LOG"; then
    [ "$PEER" = ractmq ] && echo "restart_time.sh: (a ractmq without durability does not know --data-dir)" >&2
    exit 1
fi

log "filling: $SESSIONS persistent sessions, $PER_TOPIC per topic, $MSGS QoS 1 messages per topic"
fill=$("$LOADGEN" --addr "127.0.0.1:$PORT" --broker-pid "$PID" --label "$PEER" --deadline 3600 \
    fill --sessions "$SESSIONS" --per-topic "$PER_TOPIC" --msgs "$MSGS" --pubs "$PUBS") || {
    echo "restart_time.sh: the fill failed: $fill" >&2
    exit 1
}
log "fill: $fill"
if ! python3 -c 'import json, sys; sys.exit(0 if json.loads(sys.argv[1])["ok"] else 1)' "$fill"; then
    echo "restart_time.sh: the fill did not complete (see above); measuring anyway" >&2
fi

if [ "$STOP" = kill ]; then
    log "kill -9 $PID"
    kill -KILL "$PID"
    wait "$PID" 2>/dev/null || true
else
    log "SIGTERM $PID (waiting up to 10 minutes for it to exit)"
    kill -TERM "$PID"
    for _ in $(seq 6000); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$PID" 2>/dev/null; then
        echo "restart_time.sh: $PEER did not exit after SIGTERM" >&2
        exit 1
    fi
    wait "$PID" 2>/dev/null || true
fi
PID=""
data_bytes=$(du -sb "$DATA" | cut -f1)
log "data dir: $(du -sh "$DATA" | cut -f1) in $(find "$DATA" -type f | wc -l) files"

log "restart on the same data dir"
echo "----- restart -----" >> "$LOG"
start_node "$LOG"
# resume measures from its own start, right after the node's
resume=$("$LOADGEN" --addr "127.0.0.1:$PORT" --broker-pid "$PID" --label "$PEER" \
    resume --sessions "$SESSIONS" --sample "$SAMPLE" --msgs "$MSGS" --wait 600) || true
log "resume: $resume"
alive=true
kill -0 "$PID" 2>/dev/null || alive=false

summary=$(python3 - "$fill" "$resume" "$STOP" "$data_bytes" "$alive" <<'PY'
import json, sys
fill, resume = json.loads(sys.argv[1]), json.loads(sys.argv[2] or "{}")
stop, data_bytes, alive = sys.argv[3], int(sys.argv[4]), sys.argv[5] == "true"
out = {"peer": fill.get("peer"), "stop": stop, "sessions": fill.get("sessions"),
       "queued_expected": fill.get("queued_expected"), "fill_ok": fill.get("ok"),
       "data_dir_bytes": data_bytes, "accept_s": resume.get("accept_s"),
       "first_connack_s": resume.get("first_connack_s"), "resume_ok": resume.get("ok"), "alive": alive,
       "fill": fill, "resume": resume}
print(json.dumps(out))
def s(v):
    return "—" if v is None else f"{v:.2f} s"
print(f"{out['peer']}: {fill.get('sessions_made')}/{fill.get('sessions')} sessions, "
      f"{fill.get('queued_expected'):,} messages queued (fill {fill.get('subscribe_s', 0):.1f} s + "
      f"{fill.get('publish_s', 0):.1f} s), data dir {data_bytes / 2**20:.1f} MiB, stopped with "
      f"{'kill -9' if stop == 'kill' else 'SIGTERM'}", file=sys.stderr)
print(f"restart: accepts connections after {s(out['accept_s'])}, first CONNACK after "
      f"{s(out['first_connack_s'])}; sample: {resume.get('session_present')}/{resume.get('sampled')} with "
      f"session present, {resume.get('complete')} with all {resume.get('messages_expected')} messages, "
      f"{resume.get('dups')} dups, errors {resume.get('errors')}", file=sys.stderr)
PY
)
echo "$summary"
if [ -n "$OUT" ]; then echo "$summary" > "$OUT"; fi
python3 -c 'import json, sys; r = json.loads(sys.argv[1]); sys.exit(0 if r["resume_ok"] and r["alive"] else 1)' "$summary"
