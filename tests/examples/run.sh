#!/usr/bin/env bash
# The README's key-bound client example (examples/keybound_client.py), run for real.
#
# Starts the real orgwall binary (debug build) with a fresh database of its own and the
# tutorial's world from `orgwall demo`; then, for a P-256 and an Ed25519 key made with the
# README's openssl commands: registers the public JWKS the example prints with
# `app create --jwks-file --require-dpop`, authorizes the app for read:data, and runs the example.
# A case passes only if the example printed exactly org_acme's records (as the database has
# them), and a replayed proof, the token sent as Bearer and a proof from another key were each
# refused with 401. Prints `# pass N` and `# fail N`; exits non-zero on any failure. The server
# is stopped and its database dropped whatever happens.
#
# Environment (all optional):
#   PG_SERVER    PostgreSQL superuser URL without a database (postgres://postgres@127.0.0.1:5432)
#   ORGWALL_BIN  the binary to test (default: `cargo build` and target/debug/orgwall)
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)

PG_SERVER=${PG_SERVER:-postgres://postgres@127.0.0.1:5432}
REQUIREMENTS=$ROOT/examples/requirements.txt
# One virtualenv per set of pinned versions, reused by later runs.
VENV=${XDG_CACHE_HOME:-$HOME/.cache}/orgwall-ci/keybound-example-$(sha256sum "$REQUIREMENTS" | cut -c1-12)
EXAMPLE=$ROOT/examples/keybound_client.py
AUDIENCE=https://api.yourapp.com
ORG=org_acme

say() { echo "examples run.sh: $*" >&2; }

# 1. The example's dependencies, pinned, in a virtualenv of their own.
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import authlib, joserfc, requests' 2>/dev/null; then
    say "installing $(tr '\n' ' ' <"$REQUIREMENTS")into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
fi
PYTHON=$VENV/bin/python

# 2. The binary, and the server: migrate, the tutorial's world (org_acme and its records), serve.
# shellcheck source=tests/support/demo-server.sh
. "$ROOT/tests/support/demo-server.sh"
start_demo orgwall_examples

# The records the example must print: the database's own list, read as the superuser.
EXPECTED=$(psql "$DATABASE_URL" -qAt -v ON_ERROR_STOP=1 \
    -c "select coalesce(json_agg(name order by id), '[]') from records where org_code = '$ORG'")
if [ "$EXPECTED" = "[]" ]; then
    say "the demo seeded no records for $ORG: nothing to compare with"
    exit 1
fi

# 3. One case per key type, each with an app of its own.
pass=0
fail=0
run_case() {
    local name=$1
    shift
    local dir=$WORK/$name
    mkdir -p "$dir"
    # The README's commands: a private key, its public JWKS, the app, its grant.
    # (A function called as an `if` condition runs without `set -e`: every step is checked.)
    local client_id
    if ! openssl genpkey "$@" -out "$dir/client.key.pem" 2>>"$WORK/setup.log" ||
        ! "$PYTHON" "$EXAMPLE" jwks "$dir/client.key.pem" >"$dir/client.jwks.json" 2>>"$WORK/setup.log" ||
        ! "$ORGWALL_BIN" app create --name "example $name" --org "$ORG" \
            --jwks-file "$dir/client.jwks.json" --require-dpop >"$dir/app.json" 2>>"$WORK/setup.log" ||
        ! client_id=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["client_id"])' <"$dir/app.json") ||
        ! "$ORGWALL_BIN" app authorize --client-id "$client_id" --audience "$AUDIENCE" \
            --scopes read:data >/dev/null 2>>"$WORK/setup.log"; then
        echo "not ok - $name: setting up the key and the app failed"
        sed 's/^/#   /' "$WORK/setup.log"
        return 1
    fi

    if ! "$PYTHON" "$EXAMPLE" call --url "$BASE" --client-id "$client_id" \
        --key "$dir/client.key.pem" --audience "$AUDIENCE" --org "$ORG" --show-refusals \
        >"$dir/stdout" 2>"$dir/stderr"; then
        echo "not ok - $name: the example failed"
        sed 's/^/#   /' "$dir/stderr"
        return 1
    fi
    # stdout: the org's records, exactly; stderr: three refusals, each a 401.
    if ! python3 - "$dir/stdout" "$dir/stderr" "$ORG" "$EXPECTED" <<'EOF'; then
import json, sys
out, err, org, expected = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
body = json.load(open(out))
names = [r["name"] for r in body["records"]]
problems = []
if body.get("org_code") != org or names != expected or body.get("total") != len(expected):
    problems.append(f"printed {body.get('org_code')!r} {names}, expected {org!r} {expected}")
refusals = [l for l in open(err).read().splitlines() if l.startswith("refusal: ")]
if len(refusals) != 3:
    problems.append(f"expected 3 refusal lines, got {refusals}")
problems += [f"not refused: {l}" for l in refusals if not l.endswith(": 401")]
for p in problems:
    print("#   " + p)
sys.exit(1 if problems else 0)
EOF
        echo "not ok - $name: wrong output"
        return 1
    fi
    echo "ok - $name: printed $ORG's records; replayed proof, Bearer use and foreign key refused"
}

# The README shows the example's core: every code line it shows must still be the example's.
if python3 - "$ROOT/README.md" "$EXAMPLE" <<'EOF'; then
import re, sys
readme, example = open(sys.argv[1]).read(), open(sys.argv[2]).read()
lines = {l.strip() for l in example.splitlines()}
blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
shown = [l.strip() for b in blocks for l in b.splitlines() if l.strip() and not l.strip().startswith("#")]
missing = [l for l in shown if l not in lines]
for l in missing:
    print("#   not in the example: " + l)
sys.exit(1 if missing or not shown else 0)
EOF
    echo "ok - README: the Python it shows is examples/keybound_client.py's"
    pass=$((pass + 1))
else
    echo "not ok - README: the Python it shows differs from examples/keybound_client.py"
    fail=$((fail + 1))
fi

for case in "p256 -algorithm EC -pkeyopt ec_paramgen_curve:P-256" "ed25519 -algorithm ed25519"; do
    # shellcheck disable=SC2086 # the case's openssl arguments, split on purpose
    if run_case $case; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
    fi
done

echo "# pass $pass"
echo "# fail $fail"
[ "$fail" -eq 0 ]
