#!/bin/sh
# Installs npm dependencies when they are missing or older than package-lock.json. Plain sh on
# purpose: it runs before the TypeScript toolchain (deno, from npm) exists.
set -e
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/deno ] || [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "installing npm dependencies (npm ci)…"
  npm ci --no-audit --no-fund
fi
