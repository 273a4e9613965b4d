"""Reads wrk --latency output on stdin; prints one TSV row: name, conns, req/s, p50, p99, errors."""
import re
import sys

name, conns = sys.argv[1], sys.argv[2]
text = sys.stdin.read()


def ms(label):
    m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not m:
        return ""
    value, unit = float(m.group(1)), m.group(2)
    return f"{value / 1000 if unit == 'us' else value * 1000 if unit == 's' else value:.2f}"


rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
errors = int(non2xx.group(1)) if non2xx else 0
if "invalid signature" in name:
    errors = 0  # its 401s are the expected answer
if sock:
    errors += sum(int(x) for x in sock.groups())
print("\t".join([name, conns, rps.group(1) if rps else "", ms("50%"), ms("99%"), str(errors)]))
