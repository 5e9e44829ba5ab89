#!/bin/sh
# Installs npm dependencies when they are missing or older than package-lock.json. Plain sh on
# purpose: it runs before the TypeScript toolchain (deno, from npm) exists.
set -e
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/deno ] || [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # npm install, not npm ci: npm 11 leaves other platforms' optional binaries (deno, supabase)
  # out of the lockfile, which npm ci then rejects.
  echo "installing npm dependencies…"
  npm install --no-audit --no-fund
fi
