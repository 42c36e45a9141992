#!/usr/bin/env bash
# Tools the tests run that come neither from Debian nor from PyPI, built from crates.io with cargo into a
# cache directory outside target/ (RACTMQ_TOOLS, default ${XDG_CACHE_HOME:-$HOME/.cache}/ractmq-tools), so a
# `cargo clean` keeps them and a machine builds each once. Each is built only when missing or of another
# version. scripts/test-all.sh calls this; the tests find the tools through the same RACTMQ_TOOLS.
#
# tansu: a Kafka-compatible broker written in Rust. The Kafka sink's tests
# (crates/ractmq-bridge/tests/kafka_sink.rs) start it with in-memory storage and produce to it: a real Kafka
# protocol server without a JVM, Docker or a download from outside the package registries. The in-memory
# storage engine is its `dynostore` feature: a default build has no storage engine a test can read back from.
set -euo pipefail

RACTMQ_TOOLS="${RACTMQ_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/ractmq-tools}"
# The version the Kafka sink's tests were written against.
TANSU_VERSION=0.6.0

tansu="$RACTMQ_TOOLS/bin/tansu"
if [ -x "$tansu" ] && [ "$("$tansu" --version 2>/dev/null)" = "tansu $TANSU_VERSION" ]; then
  echo "==> tansu $TANSU_VERSION: $tansu"
else
  echo "==> building tansu $TANSU_VERSION into $RACTMQ_TOOLS (a release build, once per machine: 10 to 16 minutes on 2 cores)"
  # --locked: the dependency versions tansu's release was built and tested with. Without CARGO_TARGET_DIR,
  # cargo builds in a temporary directory and removes it after, instead of leaving tansu's release
  # artifacts in the workspace's target directory.
  env -u CARGO_TARGET_DIR nice -n 10 cargo install --locked --root "$RACTMQ_TOOLS" \
    tansu --version "$TANSU_VERSION" --features dynostore
fi
