#!/usr/bin/env bash
# The console's browser tests: installs what they need (Debian's chromium, playwright-core
# from package-lock.json), builds the orgwall binary when missing, and runs them with node's
# test runner. Exits non-zero on any failure. Screenshots and the server log land in
# target/console-screenshots/. Needs PostgreSQL on 127.0.0.1:5432 (TEST_DATABASE_URL to change).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
if [ -d "$HOME/.cargo/bin" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "node and npm are required (Node 20 or later)" >&2
    exit 1
fi

export CHROMIUM_BIN=${CHROMIUM_BIN:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM_BIN" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium
fi
"$CHROMIUM_BIN" --version 2>/dev/null | head -n 1 || true

if ! command -v psql >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postgresql-client
fi

(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)

export ORGWALL_BIN=${ORGWALL_BIN:-target/debug/orgwall}
# cargo decides whether anything changed; a no-op when the binary is current.
if [ "$ORGWALL_BIN" = "target/debug/orgwall" ]; then
    cargo build --bin orgwall
fi
if [ ! -x "$ORGWALL_BIN" ]; then
    echo "no orgwall binary at $ORGWALL_BIN" >&2
    exit 1
fi

rm -rf target/console-screenshots
node --test tests/browser/*.test.mjs
