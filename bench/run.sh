#!/usr/bin/env bash
# orgwall's benchmark: release build, a fresh database (3 organizations x 1,000 records, one
# API, one app per organization), orgwall serving it, wrk at 32 and 128 connections, the
# PostgreSQL floors with pgbench as the runtime (limited) role, and openssl's RSA-2048 signing
# rate. Prints the results and writes ../BENCHMARKS.md.
#
#   bench/run.sh                 # 10 s per scenario
#   BENCH_DURATION=30s bench/run.sh
#
# Needs PostgreSQL on 127.0.0.1:5432 with a superuser `postgres` (trust auth), as the tests do.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-10s}
PORT=${BENCH_PORT:-3100}
DB=orgwall_bench
PG=postgres://postgres@127.0.0.1:5432
APP_ROLE=orgwall_bench_app
OUT=bench/results
BASE=http://127.0.0.1:$PORT
AUDIENCE=https://api.yourapp.com
mkdir -p "$OUT"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
command -v pgbench >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql-contrib; }

echo "==> cargo build --release"
cargo build --release --quiet
BIN=target/release/orgwall

echo "==> fresh database $DB"
psql "$PG/postgres" -qc "drop database if exists $DB with (force)"
export DATABASE_URL=$PG/$DB
DATABASE_RUNTIME_ROLE=$APP_ROLE DATABASE_RUNTIME_PASSWORD=bench-only-password-0123 "$BIN" migrate >/dev/null
"$BIN" api create --audience "$AUDIENCE" --name "Bench API" \
  --scope read:data --scope write:data --scope delete:data --scope read:users >/dev/null
declare -a IDS SECRETS
for i in 1 2 3; do
  "$BIN" org create --code "org_bench_$i" --name "Bench Org $i" >/dev/null
  app=$("$BIN" app create --name "bench app $i" --org "org_bench_$i")
  IDS[$i]=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])' <<<"$app")
  SECRETS[$i]=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])' <<<"$app")
  "$BIN" app authorize --client-id "${IDS[$i]}" --audience "$AUDIENCE" --scopes "read:data write:data" >/dev/null
done
psql "$PG/$DB" -q <<'SQL'
insert into records (org_code, id, name, value)
select 'org_bench_' || o, n, 'record ' || n, jsonb_build_object('n', n, 'payload', repeat('x', 40))
  from generate_series(1, 3) o, generate_series(1, 1000) n;
insert into tenant_counters (org_code, counter, last_value)
select 'org_bench_' || o, 'records', 1000 from generate_series(1, 3) o;
analyze;
SQL

echo "==> orgwall serve on $BASE (runtime role $APP_ROLE)"
DATABASE_URL=postgres://$APP_ROLE@127.0.0.1:5432/$DB PORT=$PORT RUST_LOG=warn "$BIN" serve 2>"$OUT/server.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -fs "$BASE/health" >/dev/null && break; sleep 0.2; done

form="grant_type=client_credentials&client_id=${IDS[1]}&client_secret=${SECRETS[1]}&audience=https%3A%2F%2Fapi.yourapp.com"
TOKEN=$(curl -fs -X POST "$BASE/oauth2/token" -d "$form" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
BAD_TOKEN="${TOKEN%?????}AAAAA"

cat >"$OUT/token.lua" <<LUA
wrk.method = "POST"
wrk.body = "$form"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
LUA
cat >"$OUT/create.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"name": "bench write", "value": {"n": 1}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
LUA

# scenario name | wrk arguments
scenarios=(
  "GET /health|$BASE/health"
  "POST /oauth2/token (RS256)|-s $OUT/token.lua $BASE/oauth2/token"
  "GET /orgs/{org}/data?limit=10|-H Authorization:Bearer_$TOKEN $BASE/orgs/org_bench_1/data?limit=10"
  "GET /orgs/{org}/data/{id}|-H Authorization:Bearer_$TOKEN $BASE/orgs/org_bench_1/data/500"
  "POST /orgs/{org}/data|-s $OUT/create.lua $BASE/orgs/org_bench_1/data"
  "invalid signature (401)|-H Authorization:Bearer_$BAD_TOKEN $BASE/orgs/org_bench_1/data?limit=10"
)

: >"$OUT/wrk.tsv"
for conns in 32 128; do
  for s in "${scenarios[@]}"; do
    name=${s%%|*}
    args=${s#*|}
    # Header values cannot carry spaces through the array; `_` stands for one.
    read -ra argv <<<"$args"
    for k in "${!argv[@]}"; do argv[$k]=${argv[$k]//Authorization:Bearer_/Authorization: Bearer }; done
    echo "==> wrk -t2 -c$conns -d$DURATION --latency  $name"
    wrk -t2 -c"$conns" -d"$DURATION" --latency "${argv[@]}" >"$OUT/wrk.txt" 2>&1 || true
    python3 bench/parse_wrk.py "$name" "$conns" <"$OUT/wrk.txt" >>"$OUT/wrk.tsv"
    tail -n1 "$OUT/wrk.tsv"
  done
done
HWM=$(awk '/VmHWM/ {print $2" "$3}' "/proc/$SERVER/status")

echo "==> pgbench floors as $APP_ROLE (limited role, RLS on)"
cat >"$OUT/naive.sql" <<'SQL'
BEGIN;
SELECT set_config('app.org_code', 'org_bench_1', true);
SELECT id, name, value, created_at, updated_at FROM records WHERE org_code = 'org_bench_1' AND id > 0 ORDER BY id LIMIT 10;
COMMIT;
SQL
cat >"$OUT/one_trip.sql" <<'SQL'
BEGIN \; SELECT set_config('app.org_code', 'org_bench_1', true) \; SELECT id, name, value, created_at, updated_at FROM records WHERE org_code = 'org_bench_1' AND id > 0 ORDER BY id LIMIT 10 \; COMMIT;
SQL
pg_tps() {
  pgbench -h 127.0.0.1 -U "$APP_ROLE" -n -c 32 -j 2 -T "${DURATION%s}" -f "$1" "$DB" 2>/dev/null |
    awk '/^tps/ {print $3; exit}'
}
NAIVE=$(pg_tps "$OUT/naive.sql")
ONE=$(pg_tps "$OUT/one_trip.sql")
echo "naive 4-round-trip tps: $NAIVE; single-round-trip tps: $ONE"

echo "==> openssl speed rsa2048 (2 processes)"
RSA=$(openssl speed -multi 2 -seconds 5 rsa2048 2>/dev/null | awk '/^rsa 2048/ {print $6}' | tail -n1)
echo "RSA-2048 signs/s on 2 cores: $RSA"

python3 bench/report.py "$OUT/wrk.tsv" "$NAIVE" "$ONE" "$RSA" "$HWM" "$DURATION" >BENCHMARKS.md
echo "==> wrote BENCHMARKS.md"
cat BENCHMARKS.md
