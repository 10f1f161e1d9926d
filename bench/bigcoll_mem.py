#!/usr/bin/env python3
"""Memory of one big hash and one big set: tandem-server vs Debian's redis-server 7.0.15
(and optionally a second tandem binary, e.g. a baseline build).

Each server is started fresh (bench/run.py's `Server`, same flags), then one key is
filled over one connection in batches of 1,000: `HSET myhash element:NNNNNNNNNNNN xxx
...` (the shape of redis-benchmark's HSET with -r: 20-byte fields, 3-byte values) or
`SADD myset element:NNNNNNNNNNNN ...`. Reported: INFO used_memory, VmRSS and MEMORY
USAGE of the key, then the server is stopped by pid.

    python3 bench/bigcoll_mem.py                                  # 1M fields/members
    python3 bench/bigcoll_mem.py --base-bin /tmp/old-tandem-server --n 200000
"""

import argparse
import os
import socket
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the harness's Server)

BATCH = 1000


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def read_reply(f):
    """One reply line, or a bulk string's body."""
    line = f.readline()
    if line.startswith(b"$"):
        n = int(line[1:])
        return f.read(n + 2)[:-2] if n >= 0 else None
    return line.rstrip(b"\r\n")


def fill(port, kind, n):
    key = b"myhash" if kind == "hash" else b"myset"
    with socket.create_connection(("127.0.0.1", port)) as c:
        f = c.makefile("rb")
        for start in range(0, n, BATCH):
            names = [b"element:%012d" % j for j in range(start, min(n, start + BATCH))]
            if kind == "hash":
                args = [b"HSET", key] + [x for m in names for x in (m, b"xxx")]
            else:
                args = [b"SADD", key] + names
            c.sendall(resp(*args))
            read_reply(f)
        c.sendall(resp(b"INFO", b"memory"))
        info = read_reply(f).decode()
        used = int(next(l for l in info.split("\r\n") if l.startswith("used_memory:"))[12:])
        c.sendall(resp(b"MEMORY", b"USAGE", key, b"SAMPLES", b"0"))
        usage = int(read_reply(f)[1:])
    return used, usage


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tandem-bin", default=os.path.join(run.ROOT, "target/release/tandem-server"))
    ap.add_argument("--base-bin", help="a second tandem binary, reported as 'base'")
    ap.add_argument("--redis-bin", default="/usr/bin/redis-server")
    ap.add_argument("--n", type=int, default=1_000_000, help="fields / members")
    args = ap.parse_args()
    bins = [("tandem", args.tandem_bin), ("redis", args.redis_bin)]
    if args.base_bin:
        bins.insert(0, ("base", args.base_bin))
    wd = tempfile.mkdtemp(prefix="bigcoll-mem-")
    print(f"| impl | key | n | used_memory MB | RSS MB | MEMORY USAGE MB |")
    print("|---|---|---|---|---|---|")
    for kind in ("hash", "set"):
        for impl, binary in bins:
            s = run.Server(impl, binary, wd)
            try:
                used, usage = fill(s.port, kind, args.n)
                rss = s.rss_bytes()
            finally:
                s.stop()
            print(f"| {impl} | {kind} | {args.n} | {used / 1e6:.1f} | {rss / 1e6:.1f} "
                  f"| {usage / 1e6:.1f} |", flush=True)


if __name__ == "__main__":
    main()
