#!/usr/bin/env bash
# orgwall's benchmark: a release build, fresh databases (3 organizations x 1,000 records, one API,
# one secret app per organization, one key-bound app), orgwall serving them, wrk against each
# scenario, PostgreSQL floors with pgbench as the limited runtime role, openssl's RSA-2048 signing
# rate, and the CPU per request of orgwall and of PostgreSQL. Writes ../BENCHMARKS.md.
#
#   bench/run.sh                                   # 10 s per run, median of 3
#   BENCH_DURATION=5s BENCH_REPEATS=1 bench/run.sh # a quick look
#   BENCH_BASELINE_BIN=/path/to/old/orgwall BENCH_BASELINE_NAME=e4b6aba bench/run.sh
#                                                  # also runs an older build, side by side
#
# Needs PostgreSQL on 127.0.0.1:5432 with a superuser `postgres` (trust auth), as the tests do.
# Uses PgBouncer (Debian's `pgbouncer`) for the pooled scenario when it is installed.
# Keep the machine otherwise idle while it runs: every figure is compared with others of the run.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2"; }; }
need wrk wrk
need pgbench postgresql-contrib

# cryptography signs the assertions and DPoP proofs that wrk sends (a fresh one per request).
VENV=${ORGWALL_BENCH_VENV:-$HOME/.cache/orgwall-bench}
if ! "$VENV/bin/python" -c 'import cryptography' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q cryptography==48.0.0
fi

echo "==> cargo build --release"
SQLX_OFFLINE=true cargo build --release --quiet --bin orgwall
exec "$VENV/bin/python" bench/bench.py
