#!/usr/bin/env bash
# Prepares the WebAssembly devices (node-wasm, chromium-wasm):
#   .node/node_modules/   @litertjs/core (LiteRT's wasm build) and playwright-core, pinned by
#                         runtimes/js/package.json and package-lock.json, installed with `npm ci`
#   --browser             also installs Debian's chromium (headless browser for chromium-wasm)
# Needs Node >= 18 and npm (Debian: nodejs npm). Usage: scripts/setup-wasm.sh [--browser]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/.node"
command -v node >/dev/null && command -v npm >/dev/null || {
  echo "wasm: node and npm are missing; install Node.js 20 (Debian: apt-get install nodejs npm)" >&2; exit 1; }

mkdir -p "$DEST"
if ! cmp -s "$ROOT/runtimes/js/package.json" "$DEST/package.json" \
   || ! cmp -s "$ROOT/runtimes/js/package-lock.json" "$DEST/package-lock.json" \
   || [ ! -d "$DEST/node_modules/@litertjs/core" ]; then
  cp "$ROOT/runtimes/js/package.json" "$ROOT/runtimes/js/package-lock.json" "$DEST/"
  echo "wasm: npm ci into $DEST"
  (cd "$DEST" && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ "${1:-}" = "--browser" ] && ! command -v chromium >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "wasm: installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
echo "wasm: ready ($(node --version), chromium: $(command -v chromium || echo 'not installed; run with --browser'))"
