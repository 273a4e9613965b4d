# Sourced by the scripts under tests/ that test the real binary from outside (schemathesis, the
# key-bound example): builds the binary unless ORGWALL_BIN names one, and `start_demo` starts
# `orgwall demo` on a free port with a fresh database of its own. The server is stopped, its
# database dropped and the scratch directory removed when the script exits, whatever happens;
# on failure the server's last log lines are shown.
#
# Needs, before sourcing: ROOT (the repository), PG_SERVER (a superuser URL without a database)
# and a `say` function. Sets ORGWALL_BIN, WORK (a scratch directory), and with `start_demo`:
# DB_NAME, PORT, BASE, SERVER_PID, DATABASE_URL (exported); `orgwall demo`'s credentials JSON is
# in $WORK/demo.json, its log in $WORK/server.log.

if [ -z "${ORGWALL_BIN:-}" ]; then
    SQLX_OFFLINE=${SQLX_OFFLINE:-true} cargo build --quiet --bin orgwall
    ORGWALL_BIN=$ROOT/target/debug/orgwall
fi

WORK=$(mktemp -d)
DB_NAME=
SERVER_PID=

cleanup() {
    local status=$?
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    if [ -n "$DB_NAME" ]; then
        psql "$PG_SERVER/postgres" -q -v ON_ERROR_STOP=1 \
            -c "drop database if exists \"$DB_NAME\" with (force)" >/dev/null 2>&1 ||
            say "could not drop database $DB_NAME"
    fi
    if [ "$status" -ne 0 ] && [ -f "$WORK/server.log" ]; then
        say "server log (last 40 lines):"
        tail -n 40 "$WORK/server.log" >&2
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_demo PREFIX [NAME=VALUE ...]: `orgwall demo` (migrate, the tutorial's world, serve) on a
# database named PREFIX_<random>, with the settings given on top of the defaults below; returns
# once /ready answers.
start_demo() {
    local prefix=$1
    shift
    DB_NAME=${prefix}_$(python3 -c 'import uuid; print(uuid.uuid4().hex)')
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    BASE=http://127.0.0.1:$PORT
    export DATABASE_URL=$PG_SERVER/$DB_NAME
    say "starting orgwall on $BASE with database $DB_NAME"
    env HOST=127.0.0.1 PORT="$PORT" PUBLIC_URL="$BASE" METRICS_ADDR=off LOG_FORMAT=json \
        RUST_LOG=warn "$@" "$ORGWALL_BIN" demo >"$WORK/demo.json" 2>"$WORK/server.log" &
    SERVER_PID=$!
    for _ in $(seq 1 120); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            say "orgwall exited before it was ready"
            exit 1
        fi
        if curl -fsS "$BASE/ready" >/dev/null 2>&1; then
            break
        fi
        sleep 0.5
    done
    curl -fsS "$BASE/ready" >/dev/null
}
