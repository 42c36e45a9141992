#!/usr/bin/env bash
# Every test ractmq has: format and lint gates, Rust unit and integration tests, and the interoperability
# suite with real third-party clients (paho-mqtt, mosquitto_pub/sub). Installs what it needs first, so it
# runs on a fresh machine; CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# mosquitto_pub/sub are clients of the interop suite, mosquitto_passwd writes the password files of the security
# tests; openssl makes the TLS certificates.
missing=()
command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
command -v mosquitto_passwd >/dev/null 2>&1 || missing+=(mosquitto)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# PostgreSQL's server binaries (initdb, postgres): ractmq-bridge's postgres_sink tests start a server of their own
# and fail, not skip, without them.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
# Debian's Chromium, headless, is the browser of the dashboard's tests (Playwright drives it; it downloads none).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "==> installing Python test dependencies"
python3 -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt
# Tools built from crates.io: tansu, the Kafka-compatible broker the Kafka sink's tests start and produce to.
# They live outside target/ (built once per machine, kept by cargo clean), where the tests look for them.
export RACTMQ_TOOLS="${RACTMQ_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/ractmq-tools}"
bash scripts/install-tools.sh

# One build, thrown away after: incremental caches would only double the disk the build takes.
export CARGO_INCREMENTAL=0

echo "==> format and lint"
# The dashboard's vendored npm files are exactly what its lock file pins.
bash crates/ractmq-dashboard/vendor.sh --check
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The API docs build clean: every public item documented (the public crates deny missing_docs), no broken link.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

echo "==> Rust tests"
cargo test --workspace

echo "==> interoperability tests (paho-mqtt, mosquitto clients) and the dashboard in headless Chromium"
# Against the release build, the binary users run: the order in which the node reads packets that reach it
# from different clients at nearly the same moment depends on how fast its readers run, and the paho
# interoperability tests count on the order an optimised build gives.
cargo build --release --bin ractmq
RACTMQ_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/ractmq" python3 -m pytest tests/python -q

echo "==> MQTT.js interoperability tests"
# MQTT.js (npm mqtt, pinned in tests/js/package-lock.json), the client most web apps use, over TCP and
# WebSocket, against the same release binary. Needs node (20 or later) and npm on the machine.
(cd tests/js && npm ci --no-audit --no-fund --silent)
RACTMQ_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/ractmq" node --test tests/js/
