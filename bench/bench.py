#!/usr/bin/env python3
"""orgwall's benchmark driver (bench/run.sh builds, installs the tools and calls this).

Every figure is taken in one run on one machine, so that ratios between them travel between
machines: orgwall scenarios with wrk (one thread, 32 connections, a warm-up, then the median of
BENCH_REPEATS runs), the PostgreSQL floors with pgbench, openssl's RSA-2048 signing rate, and
the CPU each process spent per request, read from /proc/<pid>/stat around every run.
Comparisons (metrics on and off, revocations loaded or not, the older binary, the pooler) run
their servers side by side and alternate, so that drift in the machine's speed hits both sides.
Writes BENCHMARKS.md.
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "results")
PG = "postgres://postgres@127.0.0.1:5432"
AUDIENCE = "https://api.yourapp.com"
DURATION = int(os.environ.get("BENCH_DURATION", "10s").rstrip("s"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
WARMUP = 3
BIN = os.path.join(ROOT, "target", "release", "orgwall")
BASELINE_BIN = os.environ.get("BENCH_BASELINE_BIN")  # an older release binary to compare with
BASELINE_NAME = os.environ.get("BENCH_BASELINE_NAME", "baseline")
PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None
)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PASSWORD = "bench-only-password-0123"


def log(message: str) -> None:
    print(f"==> {message}", flush=True)


def run(cmd, env=None, check=True, **kw) -> str:
    result = subprocess.run(
        cmd, env=env, check=check, capture_output=True, text=True, **kw
    )
    return result.stdout


def psql(db: str, sql: str) -> str:
    return run(["psql", "-qAtX", f"{PG}/{db}", "-c", sql])


# ---------------------------------------------------------------------------------- processes


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def postgres_ticks() -> dict:
    """CPU ticks of each PostgreSQL process that serves the benchmark: the backends connected
    to its databases, and the server's own processes (WAL writer, checkpointer, ...). Backends
    of other databases (anything else on the machine) are left out."""
    ticks = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                text = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().decode("latin-1")
        except OSError:
            continue
        if not text.split("(", 1)[1].startswith("postgres)"):
            continue
        is_backend = re.search(r"\d+\.\d+\.\d+\.\d+\(\d+\)|\[local\]", cmdline)
        if is_backend and "orgwall_bench" not in cmdline:
            continue
        fields = text.rsplit(")", 1)[1].split()
        ticks[entry] = int(fields[11]) + int(fields[12])
    return ticks


def ticks_since(before: dict) -> int:
    """CPU spent since `before` by the processes alive now (one that exited meanwhile is lost)."""
    return sum(t - before.get(pid, 0) for pid, t in postgres_ticks().items())


def vm_hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1])
    return 0


class Server:
    def __init__(self, name, binary, db_url, port, extra_env=None, public_url=None):
        self.name, self.port = name, port
        self.base = f"http://127.0.0.1:{port}"
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": db_url,
                "PORT": str(port),
                "HOST": "127.0.0.1",
                "RUST_LOG": "warn",
                "METRICS_ADDR": f"127.0.0.1:{port + 1000}",
            }
        )
        if public_url:
            # Servers that share a database share its issuer: one PUBLIC_URL, one `iss`.
            env["PUBLIC_URL"] = public_url
        env.update(extra_env or {})
        self.log = open(os.path.join(OUT, f"server-{name}.log"), "w")
        self.proc = subprocess.Popen([binary, "serve"], env=env, stdout=self.log, stderr=self.log)
        for _ in range(100):
            try:
                urllib.request.urlopen(self.base + "/health", timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"server {name} did not start; see {self.log.name}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


# ---------------------------------------------------------------------------------- set-up


def cli(binary, db_url, *args, env=None) -> str:
    e = dict(os.environ, DATABASE_URL=db_url, **(env or {}))
    return run([binary, *args], env=e)


def set_up_database(binary, db, role, key_dir):
    """A fresh database: 3 organizations x 1,000 records, one API, one secret app per org and,
    when the binary supports it, one key-bound app (ES256 key, DPoP required) in org 1."""
    psql("postgres", f"drop database if exists {db} with (force)")
    url = f"{PG}/{db}"
    cli(binary, url, "migrate", env={"DATABASE_RUNTIME_ROLE": role, "DATABASE_RUNTIME_PASSWORD": PASSWORD})
    cli(binary, url, "api", "create", "--audience", AUDIENCE, "--name", "Bench API",
        "--scope", "read:data", "--scope", "write:data", "--scope", "delete:data", "--scope", "read:users")
    apps = {}
    for i in (1, 2, 3):
        org = f"org_bench_{i}"
        cli(binary, url, "org", "create", "--code", org, "--name", f"Bench Org {i}")
        app = json.loads(cli(binary, url, "app", "create", "--name", f"bench app {i}", "--org", org))
        cli(binary, url, "app", "authorize", "--client-id", app["client_id"], "--audience", AUDIENCE,
            "--scopes", "read:data write:data")
        apps[org] = app
    if key_dir:
        app = json.loads(cli(binary, url, "app", "create", "--name", "bench key app", "--org", "org_bench_1",
                             "--jwks-file", os.path.join(key_dir, "jwks.json"), "--require-dpop"))
        cli(binary, url, "app", "authorize", "--client-id", app["client_id"], "--audience", AUDIENCE,
            "--scopes", "read:data write:data")
        apps["key"] = app
        # The same key for issuance without DPoP (an app that requires DPoP refuses that).
        app = json.loads(cli(binary, url, "app", "create", "--name", "bench key app, bearer", "--org",
                             "org_bench_1", "--jwks-file", os.path.join(key_dir, "jwks.json")))
        cli(binary, url, "app", "authorize", "--client-id", app["client_id"], "--audience", AUDIENCE,
            "--scopes", "read:data write:data")
        apps["key-bearer"] = app
    psql(db, """
        insert into records (org_code, id, name, value)
        select 'org_bench_' || o, n, 'record ' || n, jsonb_build_object('n', n, 'payload', repeat('x', 40))
          from generate_series(1, 3) o, generate_series(1, 1000) n;
    """)
    # The counters that go with 1,000 records per org: one row per org (org_counters), or, in
    # schemas before it (an older baseline binary), one row per counter.
    if psql(db, "select to_regclass('org_counters') is not null").strip() == "t":
        psql(db, """
            insert into org_counters (org_code, last_record_id, live_records)
            select 'org_bench_' || o, 1000, 1000 from generate_series(1, 3) o
            on conflict (org_code) do update set last_record_id = 1000, live_records = 1000;
        """)
    else:
        psql(db, """
            insert into tenant_counters (org_code, counter, last_value)
            select 'org_bench_' || o, c, 1000 from generate_series(1, 3) o,
                   unnest(array['records', 'records_live']) c
            on conflict (org_code, counter) do update set last_value = excluded.last_value;
        """)
    psql(db, "analyze")
    return apps


def load_revocations(db):
    """10,000 revoked token ids (unexpired) and 1,000 apps with a revocation cut-off."""
    psql(db, """
        insert into revoked_tokens (jti, client_id, expires_at)
        select 'revoked-' || n, 'app_revoked_' || (n % 1000), extract(epoch from now())::bigint + 7200
          from generate_series(1, 10000) n;
        insert into app_token_cutoffs (client_id, revoked_before)
        select 'app_revoked_' || n, extract(epoch from now())::bigint from generate_series(1, 1000) n;
    """)


def post_form(base, form, headers=None) -> dict:
    request = urllib.request.Request(
        base + "/oauth2/token",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
    )
    return json.loads(urllib.request.urlopen(request).read())


def secret_form(app) -> dict:
    return {
        "grant_type": "client_credentials",
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
        "audience": AUDIENCE,
    }


def gen(*args) -> str:
    return run([sys.executable, os.path.join(ROOT, "bench", "gen_jwts.py"), *args])


# ---------------------------------------------------------------------------------- wrk


def lua_static(name, method, body, headers) -> str:
    path = os.path.join(OUT, f"{name}.lua")
    with open(path, "w") as f:
        f.write(f"wrk.method = {json.dumps(method)}\n")
        if body is not None:
            f.write(f"wrk.body = {json.dumps(body)}\n")
        for k, v in headers.items():
            f.write(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n")
    return path


def lua_per_request(name, lines_file, method, template_body, header_name, static_headers) -> str:
    """A fresh line of `lines_file` with every request: in the body (replacing @@) or in a
    header. One wrk thread, so no line is sent twice."""
    path = os.path.join(OUT, f"{name}.lua")
    with open(path, "w") as f:
        f.write(f"""
local lines, i = {{}}, 0
for line in io.lines({json.dumps(lines_file)}) do lines[#lines + 1] = line end
local headers = {{}}
""")
        for k, v in static_headers.items():
            f.write(f"headers[{json.dumps(k)}] = {json.dumps(v)}\n")
        f.write(f"""
request = function()
  i = i + 1
  local line = lines[(i - 1) % #lines + 1]
  local body = nil
""")
        if template_body is not None:
            f.write(f"  body = string.gsub({json.dumps(template_body)}, '@@', function() return line end)\n")
        if header_name:
            f.write(f"  headers[{json.dumps(header_name)}] = line\n")
        f.write(f"  return wrk.format({json.dumps(method)}, nil, headers, body)\nend\n")
    return path


class Scenario:
    def __init__(self, name, server, url, script=None, headers=None, prepare=None, expect_errors=False,
                 connections=32):
        self.name, self.server, self.url, self.script = name, server, url, script
        self.headers = headers or {}
        self.prepare = prepare  # called before each run (fresh one-time JWTs)
        self.expect_errors = expect_errors
        self.connections = connections
        self.runs = []

    def wrk(self, seconds) -> dict:
        if self.prepare:
            self.prepare()
        argv = ["wrk", "-t1", f"-c{self.connections}", f"-d{seconds}s", "--latency"]
        for k, v in self.headers.items():
            argv += ["-H", f"{k}: {v}"]
        if self.script:
            argv += ["-s", self.script]
        argv.append(self.url)
        pid = self.server.proc.pid
        o0, p0, t0 = cpu_ticks(pid), postgres_ticks(), time.time()
        text = run(argv, check=False)
        o1, pg = cpu_ticks(pid), ticks_since(p0)
        result = parse_wrk(text)
        if not result["requests"]:
            raise SystemExit(f"wrk returned nothing for {self.name}:\n{text}")
        result["orgwall_us"] = (o1 - o0) * 1e6 / CLK_TCK / result["requests"]
        result["postgres_us"] = pg * 1e6 / CLK_TCK / result["requests"]
        result["wall"] = time.time() - t0
        if self.expect_errors:
            result["errors"] -= result["non2xx"]
        elif result["errors"] and not self.script:
            try:
                self.check()
                log(f"{self.name}: {result['errors']} errors during the run; a request now succeeds")
            except SystemExit as e:
                log(f"{self.name}: {result['errors']} errors during the run; now: {e}")
        return result

    def check(self):
        """One request first, so that a scenario measuring refusals by mistake stops the run.
        (Scripted scenarios send one-time JWTs: their errors column tells.)"""
        if self.script or self.expect_errors:
            return
        try:
            urllib.request.urlopen(urllib.request.Request(self.url, headers=self.headers), timeout=10).read()
        except urllib.error.HTTPError as e:
            raise SystemExit(f"{self.name}: {e.code} {e.read()[:300]!r}")

    def median(self, key):
        return statistics.median(r[key] for r in self.runs)


def parse_wrk(text) -> dict:
    def ms(label):
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non = int(non2xx.group(1)) if non2xx else 0
    errors = non + (sum(int(x) for x in sock.groups()) if sock else 0)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "requests": int(total.group(1)) if total else 0,
        "p50": ms("50%"),
        "p99": ms("99%"),
        "errors": errors,
        "non2xx": non,
    }


def measure(groups):
    """Warms each scenario up, then runs every group's scenarios in turn, REPEATS times, so
    that the members of a group (the two sides of a comparison) alternate."""
    for group in groups:
        for s in group:
            s.check()
            log(f"warm-up {s.name}")
            s.wrk(WARMUP)
    for rep in range(REPEATS):
        for group in groups:
            for s in group:
                r = s.wrk(DURATION)
                s.runs.append(r)
                log(f"[{rep + 1}/{REPEATS}] {s.name}: {r['rps']:.0f} req/s, p50 {r['p50']:.2f} ms, "
                    f"p99 {r['p99']:.2f} ms, orgwall {r['orgwall_us']:.0f} us/req, "
                    f"postgres {r['postgres_us']:.0f} us/req, errors {r['errors']}")


# ---------------------------------------------------------------------------------- floors


def pgbench(db, role, name, sql, clients=16) -> dict:
    """tps, and PostgreSQL's CPU per transaction, sampled inside the run: pgbench's backends
    start and end with it, so their CPU is read while they live (from 1.5 s in to 1 s
    before the end, at the run's overall rate)."""
    path = os.path.join(OUT, f"{name}.sql")
    with open(path, "w") as f:
        f.write(sql)
    results = []
    for _ in range(REPEATS):
        proc = subprocess.Popen(["pgbench", "-h", "127.0.0.1", "-U", role, "-n", "-M", "prepared", "-c",
                                 str(clients), "-j", "1", "-T", str(DURATION), "-f", path, db],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.5)
        p0, t0 = postgres_ticks(), time.time()
        time.sleep(max(DURATION - 2.5, 0.5))
        pg, window = ticks_since(p0), time.time() - t0
        text = proc.communicate()[0]
        tps = re.search(r"^tps = ([\d.]+)", text, re.M)
        if not tps:
            raise SystemExit(f"pgbench {name} failed:\n{text}")
        rate = float(tps.group(1))
        results.append({"tps": rate, "postgres_us": pg * 1e6 / CLK_TCK / (rate * window)})
        log(f"pgbench {name}: {rate:.0f} tps, postgres {results[-1]['postgres_us']:.0f} us/tx")
    return {k: statistics.median(r[k] for r in results) for k in ("tps", "postgres_us")}


def floors(role) -> dict:
    return {
        "read": pgbench("orgwall_bench", role, "one_trip_read",
                        "select * from tenant_list_records('org_bench_1', 0, 10);\n"),
        "naive": pgbench("orgwall_bench", role, "naive_read", """BEGIN;
SELECT set_config('app.org_code', 'org_bench_1', true);
SELECT id, name, value, created_at, updated_at FROM records WHERE org_code = 'org_bench_1' AND id > 0 ORDER BY id LIMIT 10;
COMMIT;
"""),
        "insert": pgbench("orgwall_bench", role, "one_trip_insert", create_sql()),
    }


def openssl_rsa() -> float:
    text = run(["openssl", "speed", "-multi", "2", "-seconds", "5", "rsa2048"], check=False)
    rows = [line.split() for line in text.splitlines() if line.startswith("rsa 2048") or line.startswith("rsa  2048")]
    # `rsa 2048 bits 0.000136s 0.000004s 7347.8 250000.0` (sign/s is the 6th field)
    for fields in rows[::-1]:
        try:
            return float(fields[5])
        except (IndexError, ValueError):
            continue
    raise SystemExit(f"openssl speed: unexpected output:\n{text}")


# ---------------------------------------------------------------------------------- pooler


def start_pgbouncer(port, dbs, users) -> subprocess.Popen:
    directory = os.path.join(OUT, "pgbouncer")
    os.makedirs(directory, exist_ok=True)
    ini = os.path.join(directory, "pgbouncer.ini")
    with open(ini, "w") as f:
        f.write("[databases]\n")
        for db in dbs:
            f.write(f"{db} = host=127.0.0.1 port=5432 dbname={db}\n")
        f.write(f"""[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
auth_type = trust
auth_file = {directory}/userlist.txt
pool_mode = transaction
default_pool_size = 10
max_client_conn = 200
ignore_startup_parameters = extra_float_digits
unix_socket_dir =
""")
    with open(os.path.join(directory, "userlist.txt"), "w") as f:
        f.writelines(f'"{user}" ""\n' for user in users)
    # PgBouncer refuses to run as root.
    as_user = ["-u", "postgres"] if os.geteuid() == 0 else []
    proc = subprocess.Popen([PGBOUNCER, *as_user, ini], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    return proc


# ---------------------------------------------------------------------------------- main


def main():
    os.makedirs(OUT, exist_ok=True)
    key_dir = os.path.join(OUT, "keys")
    gen("keygen", key_dir)
    started = []
    try:
        bench(key_dir, started)
    finally:
        for p in started:
            try:
                p.stop() if isinstance(p, Server) else p.terminate()
            except Exception:  # noqa: BLE001 (best effort at exit)
                pass


def bench(key_dir, started):
    role = "orgwall_bench_app"
    log("fresh databases")
    apps = set_up_database(BIN, "orgwall_bench", role, key_dir)
    psql("postgres", "drop database if exists orgwall_bench_rev with (force)")
    psql("postgres", "create database orgwall_bench_rev template orgwall_bench")
    load_revocations("orgwall_bench_rev")
    runtime = f"postgres://{role}@127.0.0.1:5432"

    port = int(os.environ.get("BENCH_PORT", "3100"))
    public = f"http://127.0.0.1:{port}"
    main_server = Server("main", BIN, f"{runtime}/orgwall_bench", port, public_url=public)
    started.append(main_server)
    no_metrics = Server("no-metrics", BIN, f"{runtime}/orgwall_bench", port + 1, {"METRICS_ADDR": "off"},
                        public_url=public)
    started.append(no_metrics)
    revoked = Server("revocations", BIN, f"{runtime}/orgwall_bench_rev", port + 2, public_url=public)
    started.append(revoked)
    time.sleep(1)

    app1 = apps["org_bench_1"]
    token = post_form(main_server.base, secret_form(app1))["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    bad = {"Authorization": f"Bearer {token[:-5]}AAAAA"}
    list_path = "/orgs/org_bench_1/data?limit=10"
    form = urllib.parse.urlencode(secret_form(app1))
    token_lua = lua_static("token", "POST", form, {"Content-Type": "application/x-www-form-urlencoded"})
    create_lua = lua_static("create", "POST", '{"name": "bench write", "value": {"n": 1}}',
                            {"Content-Type": "application/json", **bearer})

    def at(server, path):
        return server.base + path

    health = Scenario("GET /health", main_server, at(main_server, "/health"))
    read = Scenario("list read (Bearer)", main_server, at(main_server, list_path), headers=bearer)
    get_one = Scenario("GET one record", main_server, at(main_server, "/orgs/org_bench_1/data/500"), headers=bearer)
    create = Scenario("create (POST)", main_server, at(main_server, "/orgs/org_bench_1/data"), script=create_lua)
    issue = Scenario("token, client_secret_post (RS256)", main_server, at(main_server, "/oauth2/token"), script=token_lua)
    invalid = Scenario("invalid signature (401)", main_server, at(main_server, list_path), headers=bad,
                       expect_errors=True)
    read_no_metrics = Scenario("list read, metrics off", no_metrics, at(no_metrics, list_path), headers=bearer)
    read_revoked = Scenario("list read, 10,000 jtis + 1,000 apps revoked", revoked, at(revoked, list_path),
                            headers=bearer)
    groups = [[health], [read, read_no_metrics, read_revoked], [get_one], [invalid]]

    # Key-bound: private_key_jwt (ES256 assertion) at the token endpoint, and a DPoP-bound read.
    key_app = apps.get("key")
    if key_app:
        token_url = main_server.base + "/oauth2/token"
        public_token_url = "http://127.0.0.1:{}/oauth2/token".format(port)
        assertions_file = os.path.join(OUT, "assertions.txt")
        proofs_file = os.path.join(OUT, "proofs.txt")
        # Comfortably above the rates a 2-core machine reaches (a line sent twice is refused).
        assertions_per_run, proofs_per_run = 8000 * (DURATION + 1), 12000 * (DURATION + 1)

        one = gen("assertions", key_dir, "1", key_app["client_id"], public_token_url).strip()
        proof = gen("dpop", key_dir, "1", "POST", public_token_url).strip()
        dpop_token = post_form(main_server.base, {
            "grant_type": "client_credentials", "audience": AUDIENCE,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": one}, {"DPoP": proof})
        assert dpop_token["token_type"] == "DPoP", dpop_token
        read_url = main_server.base + list_path
        htu = main_server.base + "/orgs/org_bench_1/data"

        bearer_key_app = apps["key-bearer"]
        one = gen("assertions", key_dir, "1", bearer_key_app["client_id"], public_token_url).strip()
        assert post_form(main_server.base, {
            "grant_type": "client_credentials", "audience": AUDIENCE,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": one})["token_type"] == "Bearer"

        def fresh_assertions():
            with open(assertions_file, "w") as f:
                f.write(gen("assertions", key_dir, str(assertions_per_run), bearer_key_app["client_id"],
                            public_token_url))

        def fresh_proofs():
            with open(proofs_file, "w") as f:
                f.write(gen("dpop", key_dir, str(proofs_per_run), "GET", htu, dpop_token["access_token"]))

        fresh_assertions()
        fresh_proofs()
        body = ("grant_type=client_credentials&audience=" + urllib.parse.quote(AUDIENCE, safe="")
                + "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
                + "&client_assertion=@@")
        assertion_lua = lua_per_request("assertion", assertions_file, "POST", body, None,
                                        {"Content-Type": "application/x-www-form-urlencoded"})
        dpop_lua = lua_per_request("dpop", proofs_file, "GET", None, "DPoP",
                                   {"Authorization": "DPoP " + dpop_token["access_token"]})
        issue_pkjwt = Scenario("token, private_key_jwt ES256 (RS256 token)", main_server, token_url,
                               script=assertion_lua, prepare=fresh_assertions)
        read_dpop = Scenario("list read (DPoP-bound)", main_server, read_url, script=dpop_lua,
                             prepare=fresh_proofs)
        groups += [[issue, issue_pkjwt], [read, read_dpop]]
        # `read` is in two groups: it runs twice as often, beside each of its comparisons.
    else:
        groups += [[issue]]
    groups += [[create]]

    pooled = None
    # Builds that know pooler mode (the setting's name, as the binary spells it).
    pooler_mode = b"database_statement_cache" in open(BIN, "rb").read().lower()
    if PGBOUNCER and pooler_mode:
        bouncer = start_pgbouncer(port + 50, ["orgwall_bench"], [role])
        started.append(bouncer)
        pooled_server = Server("pooled", BIN, f"postgres://{role}@127.0.0.1:{port + 50}/orgwall_bench", port + 3,
                               {"DATABASE_STATEMENT_CACHE": "false",
                                "DATABASE_LISTEN_URL": f"{runtime}/orgwall_bench"}, public_url=public)
        started.append(pooled_server)
        pooled = Scenario("list read through PgBouncer", pooled_server, at(pooled_server, list_path),
                          headers=bearer)
        groups.append([read, pooled])

    baseline = {}
    if BASELINE_BIN:
        old_role = "orgwall_bench_old_app"
        old_apps = set_up_database(BASELINE_BIN, "orgwall_bench_old", old_role, None)
        old = Server("baseline", BASELINE_BIN, f"postgres://{old_role}@127.0.0.1:5432/orgwall_bench_old",
                     port + 4, {"METRICS_ADDR": "off"})
        started.append(old)
        old_app = old_apps["org_bench_1"]
        old_token = post_form(old.base, secret_form(old_app))["access_token"]
        old_bearer = {"Authorization": f"Bearer {old_token}"}
        old_token_lua = lua_static("token-old", "POST", urllib.parse.urlencode(secret_form(old_app)),
                                   {"Content-Type": "application/x-www-form-urlencoded"})
        old_create_lua = lua_static("create-old", "POST", '{"name": "bench write", "value": {"n": 1}}',
                                    {"Content-Type": "application/json", **old_bearer})
        baseline = {
            "health": Scenario(f"GET /health ({BASELINE_NAME})", old, at(old, "/health")),
            "read": Scenario(f"list read ({BASELINE_NAME})", old, at(old, list_path), headers=old_bearer),
            "issue": Scenario(f"token, client_secret_post ({BASELINE_NAME})", old, at(old, "/oauth2/token"),
                              script=old_token_lua),
            "create": Scenario(f"create (POST) ({BASELINE_NAME})", old, at(old, "/orgs/org_bench_1/data"),
                               script=old_create_lua),
        }
        groups += [[health, baseline["health"]], [read, baseline["read"]], [issue, baseline["issue"]],
                   [create, baseline["create"]]]

    only = os.environ.get("BENCH_ONLY")
    if only:
        # A second look at some comparisons: only the groups with a scenario whose name contains
        # one of BENCH_ONLY's comma-separated words (`floors`: also the pgbench floors); the
        # figures go to bench/results/partial.md and the log, BENCHMARKS.md is left alone.
        items = only.split(",")
        groups = [g for g in groups if any(i in s.name for i in items for s in g)]
        measure(groups)
        partial(unique([s for g in groups for s in g]))
        if "floors" in items:
            for name, f in floors(role).items():
                log(f"floor {name}: {f['tps']:.0f} tps, PostgreSQL {f['postgres_us']:.0f} µs/tx")
        return
    # A scenario that appears in several groups keeps all its runs (more samples for its median).
    measure(groups)

    log("128 connections (tail latency and peak memory)")
    read128 = Scenario("list read (Bearer)", main_server, read.url, headers=bearer, connections=128)
    issue128 = Scenario("token, client_secret_post (RS256)", main_server, issue.url, script=token_lua,
                        connections=128)
    for s in (read128, issue128):
        s.wrk(WARMUP)
        s.runs.append(s.wrk(DURATION))
    hwm = vm_hwm_kib(main_server.proc.pid)

    log("floors: pgbench as the runtime role, openssl")
    measured_floors = floors(role)
    rsa = openssl_rsa()
    log(f"openssl RSA-2048 signs/s on 2 processes: {rsa}")

    all_scenarios = unique([s for g in groups for s in g])
    report(all_scenarios, [read128, issue128], measured_floors, rsa, hwm, locals())


def create_sql() -> str:
    """pgbench's insert through the same function the create route calls."""
    args = run(["psql", "-qAtX", f"{PG}/orgwall_bench", "-c",
                "select pg_get_function_identity_arguments('tenant_create_record'::regproc)"]).strip()
    if "client_id" in args:
        return "select * from tenant_create_record('org_bench_1', 'bench', 'bench write', '{\"n\": 1}');\n"
    return "select * from tenant_create_record('org_bench_1', 'bench write', '{\"n\": 1}');\n"


def unique(items):
    seen, out = set(), []
    for item in items:
        if id(item) not in seen:
            seen.add(id(item))
            out.append(item)
    return out


# ---------------------------------------------------------------------------------- report


def scenario_rows(scenarios):
    rows = ["| scenario | req/s | p50 ms | p99 ms | p99/p50 | orgwall µs/req | PostgreSQL µs/req | errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for s in scenarios:
        p50, p99 = s.median("p50"), s.median("p99")
        rows.append(f"| {s.name} | {fmt(s.median('rps'))} | {p50:.2f} | {p99:.2f} | {p99 / p50:.2f} | "
                    f"{fmt(s.median('orgwall_us'))} | {fmt(s.median('postgres_us'))} | "
                    f"{sum(r['errors'] for r in s.runs)} |")
    return rows


def partial(scenarios):
    lines = [f"BENCH_ONLY={os.environ.get('BENCH_ONLY')!r}, {time.strftime('%Y-%m-%d %H:%M')}, "
             f"wrk -t1 -c32 -d{DURATION}s, median of {REPEATS}\n", *scenario_rows(scenarios)]
    with open(os.path.join(OUT, "partial.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def fmt(x, digits=0):
    return "n/a" if x != x else f"{x:,.{digits}f}"


def report(scenarios, wide, floors, rsa, hwm, ctx):
    lines = []
    w = lines.append
    w("# Benchmarks\n")
    w(f"Produced by `bench/run.sh` on {time.strftime('%Y-%m-%d')} (BENCH_DURATION={DURATION}s, "
      f"BENCH_REPEATS={REPEATS}); rerun it to refresh this file. Every figure below comes from that one run.\n")
    cpu = subprocess.run("lscpu | awk -F: '/Model name/ {print $2; exit}'", shell=True,
                         capture_output=True, text=True).stdout.strip()
    w(f"- machine: {os.cpu_count()} cores ({cpu}); wrk, PostgreSQL and orgwall share them")
    versions = "; ".join(
        subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip().splitlines()[0]
        for c in ("rustc --version", "psql --version", "wrk --version 2>&1", "openssl version"))
    w(f"- {versions}")
    if BASELINE_BIN:
        w(f"- baseline: `{BASELINE_NAME}`, an older release binary, on its own database set up the same way")
    w("")
    w(f"Commands: `wrk -t1 -c32 -d{DURATION}s --latency` after a {WARMUP} s warm-up, median of {REPEATS} runs "
      "(lua scripts in bench/results/; key-bound scenarios send a fresh assertion or DPoP proof with "
      "every request). CPU per request: utime+stime from /proc/<pid>/stat around each run, divided "
      "by the requests it served, for orgwall and for all PostgreSQL processes. The two sides of "
      "every comparison run alternately.\n")
    for row in scenario_rows(scenarios):
        w(row)
    w("\nAt 128 connections (one run each):\n")
    w("| scenario | req/s | p50 ms | p99 ms | p99/p50 | errors |")
    w("| --- | ---: | ---: | ---: | ---: | ---: |")
    for s in wide:
        r = s.runs[0]
        w(f"| {s.name} | {fmt(r['rps'])} | {r['p50']:.2f} | {r['p99']:.2f} | {r['p99'] / r['p50']:.2f} | {r['errors']} |")
    w(f"\nPeak resident memory of orgwall (`main` server, VmHWM, after the 128-connection runs): "
      f"{hwm / 1024:.1f} MiB\n")
    w("Floors, same run (pgbench `-M prepared -c 16 -j 1` as the limited runtime role, RLS on):\n")
    w(f"- the list read in one round trip, `select * from tenant_list_records('org_bench_1', 0, 10)`: "
      f"{fmt(floors['read']['tps'])} tps, PostgreSQL {fmt(floors['read']['postgres_us'])} µs/tx")
    w(f"- the naive 4-round-trip transaction (BEGIN; set_config; SELECT; COMMIT): {fmt(floors['naive']['tps'])} tps")
    w(f"- the insert in one round trip through `tenant_create_record`: {fmt(floors['insert']['tps'])} tps, "
      f"PostgreSQL {fmt(floors['insert']['postgres_us'])} µs/tx")
    w(f"- `openssl speed -multi 2 -seconds 5 rsa2048`: {fmt(rsa)} RSA-2048 signatures/s\n")

    g = ctx
    read, health, issue, create = g["read"], g["health"], g["issue"], g["create"]
    rows = []

    def ratio(name, num, den, goal, ok):
        value = num / den if den else float("nan")
        met = "—" if goal == "(reported)" else "yes" if ok(value) else "**no**"
        shown = f"{value:.2f}"
        if goal != "(reported)" and ok(float(shown)) != ok(value):
            shown = f"{value:.3f}"  # two decimals would round it across the goal
        rows.append((name, shown, goal, met))

    ratio("list read / one-round-trip pgbench read", read.median("rps"), floors["read"]["tps"], ">= 0.5",
          lambda v: v >= 0.5)
    ratio("PostgreSQL CPU per list read / per pgbench one-round-trip read", read.median("postgres_us"),
          floors["read"]["postgres_us"], "<= 1.1", lambda v: v <= 1.1)
    ratio("orgwall CPU per list read / per /health", read.median("orgwall_us"), health.median("orgwall_us"),
          "<= 2.5", lambda v: v <= 2.5)
    ratio("list read p99 / p50 (32 connections)", read.median("p99"), read.median("p50"), "<= 2",
          lambda v: v <= 2)
    ratio("token p99 / p50 (32 connections)", issue.median("p99"), issue.median("p50"), "<= 2",
          lambda v: v <= 2)
    ratio("token issuance (RS256) / openssl RSA-2048 signs on 2 processes", issue.median("rps"), rsa,
          ">= 0.85", lambda v: v >= 0.85)
    ratio("create / one-round-trip pgbench insert", create.median("rps"), floors["insert"]["tps"], ">= 0.5",
          lambda v: v >= 0.5)
    rows.append(("peak RSS at 128 connections", f"{hwm / 1024:.1f} MiB", "<= 64 MiB",
                 "yes" if hwm <= 64 * 1024 else "**no**"))
    ratio("list read, metrics off / metrics on", g["read_no_metrics"].median("rps"), read.median("rps"),
          "<= 1.03", lambda v: v <= 1.03)
    ratio("list read with 10,000 revoked jtis + 1,000 revoked apps / with none", g["read_revoked"].median("rps"),
          read.median("rps"), ">= 0.95", lambda v: v >= 0.95)
    if "read_dpop" in g:
        ratio("DPoP-bound read / Bearer read", g["read_dpop"].median("rps"), read.median("rps"), "(reported)",
              lambda v: True)
        ratio("token with private_key_jwt (ES256) / with client_secret_post", g["issue_pkjwt"].median("rps"),
              issue.median("rps"), "(reported)", lambda v: True)
    if g.get("pooled"):
        ratio("list read through PgBouncer / direct", g["pooled"].median("rps"), read.median("rps"),
              "(reported)", lambda v: True)
    base = g.get("baseline") or {}
    if base:
        ratio(f"create now (audit log) / create {BASELINE_NAME}", create.median("rps"), base["create"].median("rps"),
              ">= 0.85", lambda v: v >= 0.85)
        ratio(f"list read now / {BASELINE_NAME}", read.median("rps"), base["read"].median("rps"), "(reported)",
              lambda v: True)
        ratio(f"token now / {BASELINE_NAME}", issue.median("rps"), base["issue"].median("rps"), "(reported)",
              lambda v: True)
        ratio(f"orgwall CPU per list read, now / {BASELINE_NAME}", read.median("orgwall_us"),
              base["read"].median("orgwall_us"), "(reported)", lambda v: True)
        ratio(f"PostgreSQL CPU per list read, now / {BASELINE_NAME}", read.median("postgres_us"),
              base["read"].median("postgres_us"), "(reported)", lambda v: True)
    w("## Ratios and the goals we set (same run)\n")
    w("| ratio | measured | goal | met |")
    w("| --- | ---: | ---: | --- |")
    for r in rows:
        w(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} |")
    w("")
    notes = os.path.join(ROOT, "bench", "NOTES.md")
    if os.path.exists(notes):
        w(open(notes).read())
    with open(os.path.join(ROOT, "BENCHMARKS.md"), "w") as f:
        f.write("\n".join(lines))
    with open(os.path.join(OUT, "raw.json"), "w") as f:
        json.dump({s.name + (f" [{s.server.name}]"): s.runs for s in scenarios}, f, indent=1)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
