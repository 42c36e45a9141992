#!/usr/bin/env bash
# The dashboard's npm packages reach the binary as files in assets/vendor, committed, so that `cargo build` on a
# fresh machine needs neither npm nor the network. This script is how those files are made: it installs the
# versions pinned in npm/package-lock.json (integrity-checked by npm) and copies their browser builds.
#   vendor.sh          refresh assets/vendor from the lock file (after changing npm/package.json)
#   vendor.sh --check  fail if assets/vendor differs from what the lock file gives (CI runs this)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/npm/package.json" "$here/npm/package-lock.json" "$work/"
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --silent)
m="$work/node_modules"
out="$work/vendor"
mkdir -p "$out"
# Each file: where npm puts it -> its name in assets/vendor.
cp "$m/mqtt/dist/mqtt.esm.js" "$out/mqtt.esm.js"
cp "$m/mqtt/LICENSE.md" "$out/mqtt.LICENSE.md"
cp "$m/uplot/dist/uPlot.esm.js" "$out/uPlot.esm.js"
cp "$m/uplot/dist/uPlot.min.css" "$out/uPlot.min.css"
cp "$m/uplot/LICENSE" "$out/uPlot.LICENSE"
if [ "${1:-}" = "--check" ]; then
  if ! diff -r "$out" "$here/assets/vendor" >/dev/null; then
    echo "crates/ractmq-dashboard/assets/vendor differs from npm/package-lock.json: run crates/ractmq-dashboard/vendor.sh and commit" >&2
    diff -rq "$out" "$here/assets/vendor" >&2 || true
    exit 1
  fi
  echo "dashboard vendor files match npm/package-lock.json"
else
  rm -rf "$here/assets/vendor"
  cp -r "$out" "$here/assets/vendor"
  echo "assets/vendor refreshed from npm/package-lock.json"
fi
