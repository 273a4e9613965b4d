"""Writes BENCHMARKS.md from the run's figures (see bench/run.sh)."""
import platform
import subprocess
import sys

tsv, naive, one_trip, rsa, hwm, duration = sys.argv[1:7]
rows = [line.rstrip("\n").split("\t") for line in open(tsv) if line.strip()]


def out(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def rps(name, conns):
    for r in rows:
        if r[0].startswith(name) and r[1] == conns and r[2]:
            return float(r[2])
    return 0.0


cpu = out("lscpu | awk -F: '/Model name/ {print $2; exit}'").strip()
print("# Benchmarks\n")
print(f"Produced by `bench/run.sh` (BENCH_DURATION={duration}); rerun it to refresh this file.\n")
mem = out("free -g | awk '/Mem/ {print $2}'")
print(f"- machine: {out('nproc')} cores ({cpu}), {mem} GiB; "
      "load generator, PostgreSQL and orgwall share the cores")
print(f"- {out('rustc --version')}; {out('psql --version')}; {out('wrk --version 2>&1 | head -n1')}; {out('openssl version')}")
print(f"- kernel {platform.release()}\n")
print("Commands: `wrk -t2 -c{32,128} -d" + duration + " --latency URL` (POSTs through the lua scripts the "
      "script writes to bench/results/); floors with `pgbench -n -c 32 -j 2 -T ... -f SCRIPT` as the "
      "limited runtime role; `openssl speed -multi 2 -seconds 5 rsa2048`.\n")
print("| scenario | connections | requests/s | p50 ms | p99 ms | errors |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]} |")
print(f"\nPeak resident memory of orgwall over the whole run (VmHWM): {hwm}\n")
print("## Floors and ratios (same run)\n")
print(f"- PostgreSQL, naive tenant transaction (BEGIN; set_config; select limit 10; COMMIT: 4 round trips): {naive} tps")
print(f"- PostgreSQL, the same in one round trip: {one_trip} tps")
print(f"- RSA-2048 signatures/s, 2 processes: {rsa}\n")
lst, health, inv, tok = rps("GET /orgs/{org}/data?limit", "32"), rps("GET /health", "32"), rps("invalid", "32"), rps("POST /oauth2/token", "32")
try:
    print("Goals we set ourselves for these ratios (each compares orgwall with a floor measured in the\n"
          "same run, so that the figures travel between machines):\n")
    print(f"| ratio | measured | goal we set |\n| --- | ---: | ---: |")
    print(f"| list read / naive pgbench | {lst / float(naive):.2f} | >= 1.5 |")
    print(f"| invalid-token rejection / health | {inv / health:.2f} | >= 0.25 |")
    print(f"| token issuance / openssl RSA-2048 signs (2 cores) | {tok / float(rsa):.2f} | >= 0.75 |")
except (ValueError, ZeroDivisionError):
    print("(ratios unavailable: a figure is missing)")

try:
    print()
    print(open("bench/NOTES.md").read())
except OSError:
    pass
