#!/usr/bin/env bash
# Property-based tests of the server against its own OpenAPI document (schemathesis).
#
# Starts the real orgwall binary (debug build) with a fresh database of its own, the tutorial's
# world from `orgwall demo`, the admin API on and a valid org token for org_acme, then lets
# schemathesis generate requests for every operation in /openapi.json and checks that no answer
# is a 5xx and that every answer matches the document (status, content type, headers, body). Exits non-zero on any failure; the
# server is stopped and its database dropped whatever happens.
#
# Environment (all optional):
#   PG_SERVER            PostgreSQL superuser URL without a database (postgres://postgres@127.0.0.1:5432)
#   ORGWALL_BIN          the binary to test (default: `cargo build` and target/debug/orgwall)
#   SCHEMATHESIS_EXAMPLES  examples per operation and phase (default 50)
#   SCHEMATHESIS_SEED    a seed, to replay a run
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)

SCHEMATHESIS_VERSION=4.32.5
PG_SERVER=${PG_SERVER:-postgres://postgres@127.0.0.1:5432}
EXAMPLES=${SCHEMATHESIS_EXAMPLES:-50}
# No 5xx, and every answer as documented: its status, content type, headers and body.
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance
CHECKS=$CHECKS,response_headers_conformance,response_schema_conformance
VENV=${XDG_CACHE_HOME:-$HOME/.cache}/orgwall-ci/schemathesis-$SCHEMATHESIS_VERSION

say() { echo "schemathesis run.sh: $*" >&2; }

# 1. schemathesis, pinned, in a virtualenv of its own (reused by later runs).
if [ ! -x "$VENV/bin/schemathesis" ]; then
    say "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
"$VENV/bin/schemathesis" --version

# 2. The binary, and the server: migrate, the tutorial's world with the admin API on, serve.
# `orgwall demo`'s credentials JSON goes to $WORK/demo.json.
ADMIN_TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
# shellcheck source=tests/support/demo-server.sh
. "$ROOT/tests/support/demo-server.sh"
start_demo orgwall_schemathesis ADMIN_TOKEN="$ADMIN_TOKEN"

# 3. Credentials: Acme's app, granted every scope of the tutorial's API, and a token for it.
read -r CLIENT_ID CLIENT_SECRET < <(python3 -c '
import json, sys
apps = json.load(open(sys.argv[1]))["apps"]
acme = next(a for a in apps if a["org_code"] == "org_acme")
print(acme["client_id"], acme["client_secret"])' "$WORK/demo.json")
AUDIENCE=https://api.yourapp.com
curl -fsS -X POST "$BASE/admin/apps/$CLIENT_ID/authorize" \
    -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
    -d "{\"audience\": \"$AUDIENCE\", \"scopes\": \"read:data write:data delete:data read:users read:audit\"}" \
    >/dev/null
ORG_TOKEN=$(curl -fsS -X POST "$BASE/oauth2/token" \
    --data-urlencode grant_type=client_credentials \
    --data-urlencode "client_id=$CLIENT_ID" \
    --data-urlencode "client_secret=$CLIENT_SECRET" \
    --data-urlencode "audience=$AUDIENCE" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
# An app of its own for the admin operations on one app (rotate, disable, delete, ...), so that
# they reach their handlers without touching Acme's.
TARGET_CLIENT_ID=$(curl -fsS -X POST "$BASE/admin/apps" \
    -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
    -d '{"name": "schemathesis target", "org_code": "org_gamma"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["client_id"])')
export ORG_TOKEN ADMIN_TOKEN CLIENT_ID CLIENT_SECRET TARGET_CLIENT_ID

# A number jsonb writes back in 309 digits must read back (this binary is built without the
# test-only dependencies, which switch exact float parsing on for `cargo test` builds).
curl -fsS -X POST "$BASE/orgs/org_acme/data" -o /dev/null \
    -H "Authorization: Bearer $ORG_TOKEN" -H 'Content-Type: application/json' \
    -d '{"name": "near the float limit", "value": [1.7976931348623157e308, 5e-324]}'
curl -fsS "$BASE/orgs/org_acme/data?limit=1000" -H "Authorization: Bearer $ORG_TOKEN" |
    python3 -c '
import json, sys
values = [r["value"] for r in json.load(sys.stdin)["records"]]
assert [1.7976931348623157e308, 5e-324] in values, values'

# 4. schemathesis. Credentials per security scheme of the document; the resource API's
# operations get the token's own organization (another one is a 403 every time).
cat >"$WORK/schemathesis.toml" <<'EOF'
[auth.openapi.bearer_jwt]
bearer = "${ORG_TOKEN}"

[auth.openapi.admin_token]
bearer = "${ADMIN_TOKEN}"

[auth.openapi.client_secret_basic]
username = "${CLIENT_ID}"
password = "${CLIENT_SECRET}"

[[operations]]
include-path-regex = '^/orgs/'
parameters = { "path.org_code" = "org_acme" }

[[operations]]
include-path-regex = '^/admin/apps/\{client_id\}'
parameters = { "path.client_id" = "${TARGET_CLIENT_ID}" }

[[operations]]
include-path-regex = '^/console/'
parameters = { "path.asset" = "console.js" }
EOF

seed_args=()
if [ -n "${SCHEMATHESIS_SEED:-}" ]; then
    seed_args=(--seed "$SCHEMATHESIS_SEED")
fi
say "running schemathesis: $EXAMPLES examples per operation"
# From the scratch directory: schemathesis keeps a cache in the working directory. One worker:
# its generator is not safe to run in threads on every Python 3.11 (SystemError from `ast`).
cd "$WORK"
"$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" run "$BASE/openapi.json" \
    --checks "$CHECKS" \
    --max-examples "$EXAMPLES" \
    --workers 1 \
    --request-timeout 10 \
    --no-color \
    "${seed_args[@]}"
