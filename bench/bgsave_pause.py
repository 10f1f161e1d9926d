#!/usr/bin/env python3
"""Client pauses during BGSAVE and during a replica's full sync: tandem-server vs
Debian's redis-server 7.0.15, on loopback.

For each server: start it (no save rules, no AOF, DEBUG enabled), load N keys with
`DEBUG POPULATE N key SIZE`, then run a latency probe (one connection, alternating
PING and SET, bounded in count and time) while
  1. BGSAVE runs (from the command until rdb_bgsave_in_progress:0), and
  2. a replica of the same kind does a full sync (from the replica's start until
     its master_link_status:up), once disk-based and once diskless.
Reports max and p99 probe latency inside each window, the BGSAVE reply time and
the window length. The machine is shared and noisy: compare the two servers
within one run.

Usage: python3 bench/bgsave_pause.py [--keys 1000000] [--size 100]
       [--tandem PATH] [--redis PATH] [--skip-sync]
       [--variants tandem,tandem-nofork,redis]
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE_MAX_REQUESTS = 2_000_000
PROBE_MAX_SECONDS = 120.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_tandem():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", "tandem-server")


class Conn:
    """Minimal RESP client over one socket."""

    def __init__(self, port, timeout=60.0):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        self.s.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t in (b"+", b"-", b":"):
            if t == b"-":
                return RuntimeError(rest.decode())
            return int(rest) if t == b":" else rest.decode()
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ValueError(f"unexpected reply {line!r}")

    def cmd(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))
        return self.read()

    def info(self, section):
        text = self.cmd("INFO", section).decode()
        return dict(
            l.split(":", 1) for l in text.splitlines() if ":" in l and not l.startswith("#")
        )


def wait_up(port, proc, limit=20.0):
    deadline = time.time() + limit
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            c = Conn(port, timeout=1.0)
            if c.cmd("PING") == "PONG":
                c.close()
                return
            c.close()
        except (OSError, ConnectionError):
            pass
        time.sleep(0.05)
    raise RuntimeError("server did not start")


def start(kind, binary, extra=(), env=None):
    port = free_port()
    d = tempfile.mkdtemp(prefix=f"bgsave-{kind}-")
    args = [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", d,
        "--save", "", "--appendonly", "no", "--enable-debug-command", "yes",
        "--repl-diskless-sync-delay", "0", *extra,
    ]
    log = open(os.path.join(d, "server.log"), "w")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=d,
                            env=None if env is None else {**os.environ, **env})
    try:
        wait_up(port, proc)
    except Exception:
        proc.kill()
        raise
    return proc, port, d


def stop(proc, d):
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    shutil.rmtree(d, ignore_errors=True)


class Probe(threading.Thread):
    """PING/SET over one connection; records (start time, latency) per request."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.c = Conn(port)
        self.samples = []
        self.stop_flag = threading.Event()

    def run(self):
        t_end = time.perf_counter() + PROBE_MAX_SECONDS
        i = 0
        while not self.stop_flag.is_set() and i < PROBE_MAX_REQUESTS:
            t0 = time.perf_counter()
            if t0 > t_end:
                break
            if i % 2:
                self.c.cmd("SET", "probe:%d" % (i % 1000), "x")
            else:
                self.c.cmd("PING")
            self.samples.append((t0, time.perf_counter() - t0))
            i += 1

    def window(self, a, b):
        return sorted(lat for t0, lat in self.samples if a <= t0 <= b)

    def finish(self):
        self.stop_flag.set()
        self.join(timeout=30)
        self.c.close()


def stats(lats):
    if not lats:
        return "no samples"
    p99 = lats[min(len(lats) - 1, int(len(lats) * 0.99))]
    return f"max {lats[-1] * 1000:7.1f} ms  p99 {p99 * 1000:6.2f} ms  (n={len(lats)})"


def wait_for(pred, limit):
    deadline = time.time() + limit
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def bench_bgsave(kind, port):
    ctl = Conn(port)
    probe = Probe(port)
    probe.start()
    time.sleep(0.5)
    t0 = time.perf_counter()
    reply = ctl.cmd("BGSAVE")
    t_reply = time.perf_counter() - t0
    ok = wait_for(lambda: ctl.info("persistence")["rdb_bgsave_in_progress"] == "0", 120)
    t1 = time.perf_counter()
    time.sleep(0.3)
    probe.finish()
    status = ctl.info("persistence")["rdb_last_bgsave_status"]
    ctl.close()
    print(f"  {kind:13} BGSAVE  reply {reply!r} in {t_reply * 1000:.1f} ms, "
          f"done in {t1 - t0:.2f} s (finished={ok}, status={status})")
    print(f"  {kind:13} BGSAVE  window: {stats(probe.window(t0, t1))}")
    print(f"  {kind:13} idle    before: {stats(probe.window(0, t0))}")


def bench_sync(kind, binary, port, diskless, env):
    probe = Probe(port)
    probe.start()
    time.sleep(0.5)
    t0 = time.perf_counter()
    rproc, rport, rdir = start(
        f"{kind}-replica", binary,
        ["--replicaof", "127.0.0.1", str(port), "--repl-diskless-load", "disabled"],
        env,
    )
    rc = Conn(rport)
    ok = wait_for(lambda: rc.info("replication").get("master_link_status") == "up", 180)
    t1 = time.perf_counter()
    time.sleep(0.3)
    probe.finish()
    rc.close()
    stop(rproc, rdir)
    label = "diskless" if diskless else "disk"
    print(f"  {kind:13} SYNC/{label:8} done in {t1 - t0:.2f} s (up={ok})")
    print(f"  {kind:13} SYNC/{label:8} window: {stats(probe.window(t0, t1))}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--tandem", default=default_tandem())
    ap.add_argument("--redis", default="/usr/bin/redis-server")
    ap.add_argument("--skip-sync", action="store_true")
    ap.add_argument("--variants", default="tandem,redis",
                    help="comma list of tandem, tandem-nofork (fork disabled: the "
                         "old clone-under-the-lock path), redis")
    a = ap.parse_args()
    variants = {
        "tandem": (a.tandem, None),
        "tandem-nofork": (a.tandem, {"TANDEM_SNAPSHOT_NO_FORK": "1"}),
        "redis": (a.redis, None),
    }
    for kind in a.variants.split(","):
        binary, env = variants[kind]
        if not os.path.exists(binary):
            sys.exit(f"missing binary {binary}")
        for diskless in (None, False, True):
            if diskless is not None and a.skip_sync:
                continue
            extra = []
            if diskless is not None:
                extra = ["--repl-diskless-sync", "yes" if diskless else "no"]
            proc, port, d = start(kind, binary, extra, env)
            try:
                c = Conn(port, timeout=600)
                t = time.perf_counter()
                c.cmd("DEBUG", "POPULATE", a.keys, "key", a.size)
                mem = c.info("memory").get("used_memory_human", "?")
                if diskless is None:
                    print(f"{kind}: populated {a.keys} keys x {a.size} B in "
                          f"{time.perf_counter() - t:.1f} s, used_memory {mem}")
                c.close()
                if diskless is None:
                    bench_bgsave(kind, port)
                else:
                    bench_sync(kind, binary, port, diskless, env)
            finally:
                stop(proc, d)


if __name__ == "__main__":
    main()
