#!/usr/bin/env bash
# Where the CPU of one request goes: orgwall's own CPU and its PostgreSQL backends' CPU per
# request, for GET /health and for the authorized read GET /orgs/{org}/data?limit=10, and the
# PostgreSQL CPU of the same read done by pgbench in one round trip (the floor).
#
# CPU is read from /proc/<pid>/stat (utime + stime, in clock ticks) before and after a fixed
# `wrk -t1 -c32` run and divided by the requests wrk counted: no perf counters needed. Other
# work on the machine makes absolute figures noisy; compare the ratios printed at the end
# (read / health for orgwall, orgwall read / pgbench for PostgreSQL), and repeat.
#
#   bench/cpu_split.sh                      # builds nothing: uses target/release/orgwall
#   BIN=/path/to/orgwall DURATION=10 ROUNDS=3 bench/cpu_split.sh
#   KEEP_DB=1 bench/cpu_split.sh            # reuse the database of a previous run
#
# Needs PostgreSQL on 127.0.0.1:5432 with a superuser `postgres` (trust auth), wrk, pgbench.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release/orgwall}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
PORT=${PORT:-3310}
DB=${DB:-orgwall_cpu_split}
APP_ROLE=${APP_ROLE:-orgwall_cpu_split_app}
PG=postgres://postgres@127.0.0.1:5432
BASE=http://127.0.0.1:$PORT
AUDIENCE=https://api.yourapp.com
TICK=$(getconf CLK_TCK)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

[ -x "$BIN" ] || { echo "no binary at $BIN (cargo build --release)" >&2; exit 1; }

if [ -z "${KEEP_DB:-}" ] || ! psql "$PG/$DB" -qc 'select 1' >/dev/null 2>&1; then
  echo "==> fresh database $DB"
  psql "$PG/postgres" -qc "drop database if exists $DB with (force)"
  DATABASE_URL=$PG/$DB DATABASE_RUNTIME_ROLE=$APP_ROLE \
    DATABASE_RUNTIME_PASSWORD=cpu-split-only-password-0123 "$BIN" migrate >/dev/null
  DATABASE_URL=$PG/$DB "$BIN" api create --audience "$AUDIENCE" --name "Bench API" \
    --scope read:data --scope write:data >/dev/null
  DATABASE_URL=$PG/$DB "$BIN" org create --code org_bench_1 --name "Bench Org 1" >/dev/null
  app=$(DATABASE_URL=$PG/$DB "$BIN" app create --name "bench app" --org org_bench_1)
  python3 -c 'import json,sys; a=json.load(sys.stdin); print(a["client_id"]); print(a["client_secret"])' \
    <<<"$app" >"$WORK/app"
  DATABASE_URL=$PG/$DB "$BIN" app authorize --client-id "$(sed -n 1p "$WORK/app")" \
    --audience "$AUDIENCE" --scopes "read:data" >/dev/null
  cp "$WORK/app" "/tmp/$DB.app"
  psql "$PG/$DB" -q <<'SQL'
insert into records (org_code, id, name, value)
select 'org_bench_1', n, 'record ' || n, jsonb_build_object('n', n, 'payload', repeat('x', 40))
  from generate_series(1, 1000) n;
insert into tenant_counters (org_code, counter, last_value) values ('org_bench_1', 'records', 1000);
analyze;
SQL
else
  cp "/tmp/$DB.app" "$WORK/app"
fi
CLIENT_ID=$(sed -n 1p "$WORK/app")
CLIENT_SECRET=$(sed -n 2p "$WORK/app")

DATABASE_URL=postgres://$APP_ROLE@127.0.0.1:5432/$DB PORT=$PORT METRICS_ADDR=127.0.0.1:0 \
  RUST_LOG=${RUST_LOG:-warn} "$BIN" serve 2>"$WORK/server.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 50); do curl -fs "$BASE/health" >/dev/null && break; sleep 0.2; done

TOKEN=$(curl -fs -X POST "$BASE/oauth2/token" \
  -d "grant_type=client_credentials&client_id=$CLIENT_ID&client_secret=$CLIENT_SECRET&audience=https%3A%2F%2Fapi.yourapp.com" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

# Sum of utime + stime (ticks) of the given pids; pids that are gone count 0.
ticks() {
  local total=0 pid line
  for pid in "$@"; do
    line=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    line=${line##*) }
    # after "comm) ": field 3 is state, so utime/stime (14, 15) are words 12 and 13.
    set -- $line
    total=$((total + ${12} + ${13}))
  done
  echo "$total"
}
# "pid ticks" lines for every backend connected to $DB, read in one pass.
backends() {
  python3 - "$DB" <<'PY'
import os, re, sys
# "postgres: [cluster: ]user database host(port) state"
title = re.compile(r"^postgres: (.*: )?\S+ " + re.escape(sys.argv[1]) + r" (\d|\[local\])")
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0].decode(errors="replace")
        if title.match(cmd):
            stat = open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1].split()
            print(pid, int(stat[11]) + int(stat[12]))
    except OSError:
        pass
PY
}
# PostgreSQL ticks spent between two `backends` samples (backends new in the second count whole).
pg_delta() {
  awk 'NR == FNR { before[$1] = $2; next } { total += $2 - (($1 in before) ? before[$1] : 0) }
       END { print total + 0 }' "$1" "$2"
}

run() { # name, wrk arguments...
  local name=$1; shift
  wrk -t1 -c32 -d2s "$@" >/dev/null 2>&1 || true # warm-up: connections, statements, memo
  local app0 app1
  backends >"$WORK/pg0"
  app0=$(ticks "$SERVER")
  wrk -t1 -c32 -d"${DURATION}s" --latency "$@" >"$WORK/wrk.txt" 2>&1 || true
  app1=$(ticks "$SERVER")
  backends >"$WORK/pg1"
  local requests non2xx p50 p99
  requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$WORK/wrk.txt")
  p50=$(awk '$1 == "50%" {print $2}' "$WORK/wrk.txt")
  p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk.txt")
  python3 - "$name" "$requests" "$((app1 - app0))" "$(pg_delta "$WORK/pg0" "$WORK/pg1")" \
    "$TICK" "${non2xx:-0}" "$p50" "$p99" <<'PY' | tee -a "$WORK/results"
import sys
name, n, app, pg, tick, bad, p50, p99 = sys.argv[1:]
n = int(n); us = 1e6 / int(tick)
print(f"{name}\t{n}\t{int(app) * us / n:.1f}\t{int(pg) * us / n:.1f}\t{bad}\t{p50}\t{p99}")
PY
}

pgbench_floor() {
  cat >"$WORK/one_trip.sql" <<'SQL'
BEGIN \; SELECT set_config('app.org_code', 'org_bench_1', true) \; SELECT id, name, value, created_at, updated_at FROM records WHERE org_code = 'org_bench_1' AND id > 0 ORDER BY id LIMIT 10 \; COMMIT;
SQL
  local total=$((DURATION + 6))
  pgbench -h 127.0.0.1 -U "$APP_ROLE" -n -c 32 -j 1 -T "$total" -f "$WORK/one_trip.sql" "$DB" \
    >"$WORK/pgbench.txt" 2>&1 &
  local bench=$!
  sleep 2
  backends >"$WORK/pg0"
  local t0; t0=$(date +%s.%N)
  sleep "$DURATION"
  backends >"$WORK/pg1"
  local t1; t1=$(date +%s.%N)
  wait $bench || true
  local tps; tps=$(awk '/^tps/ {print $3; exit}' "$WORK/pgbench.txt")
  python3 - "$tps" "$t0" "$t1" "$(pg_delta "$WORK/pg0" "$WORK/pg1")" "$TICK" <<'PY' | tee -a "$WORK/results"
import sys
tps, t0, t1, pg, tick = (float(x) for x in sys.argv[1:])
n = tps * (t1 - t0)
print(f"pgbench one trip\t{int(n)}\t-\t{pg * 1e6 / tick / n:.1f}\t0\t-\t-")
PY
}

printf 'scenario\trequests\torgwall µs/req\tpostgres µs/req\tnon-2xx\tp50\tp99\n'
for round in $(seq 1 "$ROUNDS"); do
  run "GET /health" "$BASE/health"
  run "GET /orgs/{org}/data?limit=10" -H "Authorization: Bearer $TOKEN" \
    "$BASE/orgs/org_bench_1/data?limit=10"
  pgbench_floor
done
echo
python3 - "$WORK/results" <<'PY'
import collections, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    rows[f[0]].append(f)
def mean(name, col):
    vals = [float(r[col]) for r in rows[name] if r[col] != "-"]
    return sum(vals) / len(vals)
health, read = "GET /health", "GET /orgs/{org}/data?limit=10"
print(f"orgwall CPU, read / health: {mean(read, 2) / mean(health, 2):.2f} x "
      f"({mean(read, 2):.1f} / {mean(health, 2):.1f} µs)")
print(f"PostgreSQL CPU, orgwall read / pgbench one trip: "
      f"{mean(read, 3) / mean('pgbench one trip', 3):.2f} x "
      f"({mean(read, 3):.1f} / {mean('pgbench one trip', 3):.1f} µs)")
PY
