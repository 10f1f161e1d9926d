#!/usr/bin/env python3
"""Side-by-side benchmark: tandem-server vs Debian's redis-server 7.0.15.

One command builds the release binary and runs, for both servers on loopback with
equivalent configs (no persistence, DEBUG enabled), alternating A/B/A/B:

  ceiling     the client's own limit: redis-benchmark SET/GET rps against Redis and
              against server/examples/null_server.rs (answers +OK to every request,
              does no work), plain and busy-polling; null/Redis is the highest ratio
              any server can show in the throughput part on this machine
  throughput  redis-benchmark rps and p99 per command at -P 1 and -P 16
  cpu         server CPU seconds per request (utime+stime of /proc/<pid>/stat, and
              each alone) over a fixed request count per command at -P 1 and -P 16;
              with --callgrind also user-space instructions per request
  memory      RSS (VmRSS) and INFO used_memory after DEBUG POPULATE of N keys
  sync        full sync time of N keys (disk and diskless) and the master's PING
              p99/max latency while it serves the sync
  lag         replica offset lag (bytes) under a redis-benchmark SET load
  resync      catch-up time after the replica is paused (SIGSTOP) under load, and
              whether the master accepted a partial resync

It prints one table of medians with Tandem/Redis ratios, writes it to
bench/results/latest.md, and with --docs also replaces the LATEST table in
docs/benchmarks.md. The machine is shared and noisy: only the ratios of one run
mean anything. See docs/benchmarks.md for the methodology.

Usage: python3 bench/run.py [--only ceiling,throughput,cpu,memory,sync,lag,resync] [--keys 1000000]
       [--reps 3] [-n 100000] [--tests set,get,...] [--pipelines 1,16] [--callgrind]
       [--no-build] [--docs]
"""
import argparse
import csv
import datetime
import io
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_TESTS = "set,get,incr,lpush,rpop,sadd,hset,zadd,lrange_100,mset"
PARTS = ["ceiling", "throughput", "cpu", "memory", "sync", "lag", "resync"]
IMPLS = ["tandem", "redis"]
# The ceiling part's servers; in the table the null servers sit in the tandem column.
CEILING_IMPLS = ["redis", "null", "null-busy"]
CEILING_TESTS = "set,get"
COMMON = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
          "--enable-debug-command", "yes"]
DOCS_BEGIN = "<!-- LATEST:BEGIN -->"
DOCS_END = "<!-- LATEST:END -->"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, limit=20.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"port {port} did not open")


def spawn_listening(argv, port, **popen):
    """Starts argv and waits until it accepts on port; kills it if that fails."""
    proc = subprocess.Popen(argv, **popen)
    try:
        wait_port(port, proc)
    except BaseException:
        kill_proc(proc)
        raise
    return proc


class Server:
    """One server process in its own directory; stop() kills it by pid."""

    def __init__(self, impl, binary, workdir, extra=()):
        self.impl, self.port = impl, free_port()
        self.dir = tempfile.mkdtemp(prefix=f"{impl}-", dir=workdir)
        self.log = open(os.path.join(self.dir, "server.log"), "w")
        argv = [binary, "--port", str(self.port), "--dir", self.dir] + COMMON + list(extra)
        try:
            self.proc = spawn_listening(argv, self.port, stdout=self.log,
                                        stderr=subprocess.STDOUT, cwd=self.dir)
        except BaseException:
            self.log.close()
            raise
        self.pid = self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGCONT)  # in case it was paused
            except ProcessLookupError:
                pass
        kill_proc(self.proc)
        self.log.close()

    def rss_bytes(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")


class NullServer:
    """server/examples/null_server.rs on a free port; stop() ends it by pid."""

    def __init__(self, binary, busy_poll=False):
        self.port = free_port()
        argv = [binary, "--port", str(self.port)] + (["--busy-poll"] if busy_poll else [])
        self.proc = spawn_listening(argv, self.port, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        self.pid = self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                pass
        kill_proc(self.proc)


def kill_proc(p):
    if p is not None and p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


# ---------------------------------------------------------------- RESP client

class Conn:
    """Minimal blocking RESP2 client (enough for INFO, DEBUG, PING, DBSIZE)."""

    def __init__(self, port, timeout=30.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        self.sock.close()

    def settimeout(self, t):
        self.sock.settimeout(t)

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed")
                self.buf += chunk
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode(errors="replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError(f"bad reply {line!r}")

    def call(self, *args):
        self.send(*args)
        return self.read()


def parse_info(text):
    d = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            d[k] = v.strip()
    return d


def info(conn, section):
    return parse_info(conn.call("INFO", section))


def wait_link_up(port, limit):
    """Polls the replica's INFO replication every ~10 ms until master_link_status:up."""
    deadline = time.monotonic() + limit
    c = None
    try:
        while time.monotonic() < deadline:
            try:
                if c is None:
                    c = Conn(port, timeout=5)
                if info(c, "replication").get("master_link_status") == "up":
                    return time.monotonic()
            except (OSError, ConnectionError, RuntimeError):
                if c is not None:
                    c.close()
                c = None
            time.sleep(0.01)
    finally:
        if c is not None:
            c.close()
    raise RuntimeError(f"replica on port {port} not up after {limit}s")


def populate(port, keys, size):
    c = Conn(port, timeout=600)
    try:
        c.call("DEBUG", "POPULATE", keys, "key", size)
        n = c.call("DBSIZE")
        if n != keys:
            raise RuntimeError(f"DBSIZE {n} after populating {keys}")
    finally:
        c.close()


def dbsize(port):
    c = Conn(port)
    try:
        return c.call("DBSIZE")
    finally:
        c.close()


def pct(values, p):
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


class Probe(threading.Thread):
    """One connection doing PING in a loop, one at a time, a new PING every `interval`
    seconds (0: back to back); bounded by count and time."""

    def __init__(self, port, interval, max_count=2_000_000, max_secs=300.0):
        super().__init__(daemon=True)
        self.port, self.interval = port, interval
        self.max_count, self.max_secs = max_count, max_secs
        self.stop_evt = threading.Event()
        self.lat_ms = []
        self.error = None

    def run(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            deadline = time.monotonic() + self.max_secs
            req = b"*1\r\n$4\r\nPING\r\n"
            nxt = time.perf_counter()
            while (not self.stop_evt.is_set() and len(self.lat_ms) < self.max_count
                   and time.monotonic() < deadline):
                t0 = time.perf_counter()
                s.sendall(req)
                got = b""
                while not got.endswith(b"\r\n"):
                    chunk = s.recv(64)
                    if not chunk:
                        raise ConnectionError("closed")
                    got += chunk
                t1 = time.perf_counter()
                self.lat_ms.append((t1 - t0) * 1000.0)
                if self.interval > 0:
                    nxt = max(nxt + self.interval, t1)
                    time.sleep(max(0.0, nxt - time.perf_counter()))
            s.close()
        except Exception as e:  # reported, not fatal
            self.error = e

    def finish(self):
        self.stop_evt.set()
        self.join(timeout=35)


# ---------------------------------------------------------------- results

class Results:
    def __init__(self):
        self.metrics = {}  # key -> {"part","name","unit","better","vals":{impl:[..]}}
        self.order = []
        self.notes = []

    def add(self, part, name, unit, better, impl, value):
        key = (part, name)
        if key not in self.metrics:
            self.metrics[key] = {"part": part, "name": name, "unit": unit, "better": better,
                                 "vals": {i: [] for i in IMPLS}}
            self.order.append(key)
        self.metrics[key]["vals"][impl].append(value)

    def note(self, msg):
        log("NOTE: " + msg)
        self.notes.append(msg)

    def table(self):
        lines = ["| part | metric | unit | tandem | redis | tandem/redis | better |",
                 "|---|---|---|---|---|---|---|"]
        for key in self.order:
            m = self.metrics[key]
            t = statistics.median(m["vals"]["tandem"]) if m["vals"]["tandem"] else None
            r = statistics.median(m["vals"]["redis"]) if m["vals"]["redis"] else None
            ratio = f"{t / r:.2f}" if t is not None and r else "n/a"
            lines.append(f"| {m['part']} | {m['name']} | {m['unit']} | {fmt(t)} | {fmt(r)} "
                         f"| {ratio} | {m['better']} |")
        return "\n".join(lines)


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3f}"


def alternating(reps, impls=IMPLS):
    """(rep, impl) pairs, A/B then B/A so drift hits both equally."""
    for rep in range(reps):
        for impl in (impls if rep % 2 == 0 else impls[::-1]):
            yield rep, impl


# ---------------------------------------------------------------- parts

def run_benchmark(port, tests, n, pipeline, clients):
    out = subprocess.run(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", tests, "-n", str(n),
         "-c", str(clients), "-P", str(pipeline), "--csv"],
        capture_output=True, text=True, timeout=900,
    )
    if out.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed: {out.stderr.strip()}")
    rows = {}
    for row in csv.DictReader(io.StringIO(out.stdout)):
        rows[row["test"]] = (float(row["rps"]), float(row["p99_latency_ms"]))
    return rows


def part_ceiling(args, bins, wd, res):
    """redis-benchmark -t set,get against Redis and the null server (plain and
    busy-polling), same clients, pipelines and alternation as the throughput part."""
    labels = {"null": "null server", "null-busy": "null server, busy-poll"}
    servers = {}
    try:
        servers["redis"] = Server("redis", bins["redis"], wd)
        servers["null"] = NullServer(bins["null"])
        servers["null-busy"] = NullServer(bins["null"], busy_poll=True)
        for p in [int(x) for x in args.pipelines.split(",")]:
            runs = {impl: [] for impl in CEILING_IMPLS}
            for rep, impl in alternating(args.reps, CEILING_IMPLS):
                srv = servers[impl]
                c = Conn(srv.port)
                c.call("FLUSHALL")
                c.close()
                n = args.n if p == 1 else args.n_pipelined
                runs[impl].append(run_benchmark(srv.port, CEILING_TESTS, n, p, args.clients))
                got = ", ".join(f"{t} {v[0]:,.0f} rps p99 {v[1]:.2f} ms"
                                for t, v in runs[impl][-1].items())
                log(f"ceiling -P {p}: rep {rep + 1}/{args.reps} {impl}: {got}")
            for test in runs["redis"][0]:
                for impl, label in labels.items():
                    name = f"{test} -P {p} rps ({label})"
                    for rows in runs[impl]:
                        res.add("ceiling", name, "req/s", "ceiling", "tandem", rows[test][0])
                    for rows in runs["redis"]:
                        res.add("ceiling", name, "req/s", "ceiling", "redis", rows[test][0])
    finally:
        for s in servers.values():
            s.stop()


def part_throughput(args, bins, wd, res):
    servers = {}
    try:
        for impl in IMPLS:
            servers[impl] = Server(impl, bins[impl], wd)
        for p in [int(x) for x in args.pipelines.split(",")]:
            for rep, impl in alternating(args.reps):
                srv = servers[impl]
                c = Conn(srv.port)
                c.call("FLUSHALL")
                c.close()
                n = args.n if p == 1 else args.n_pipelined
                rows = run_benchmark(srv.port, args.tests, n, p, args.clients)
                for test, (rps, p99) in rows.items():
                    test = test.replace(" (needed to benchmark LRANGE)", " (LRANGE prep)")
                    test = test.replace(" (first 100 elements)", "")
                    res.add("throughput", f"{test} -P {p} rps", "req/s", "higher", impl, rps)
                    res.add("throughput", f"{test} -P {p} p99", "ms", "lower", impl, p99)
                log(f"throughput -P {p}: rep {rep + 1}/{args.reps} {impl} done")
    finally:
        for s in servers.values():
            s.stop()


# Server CPU per request: the test names of -t and, for LRANGE_100, the explicit
# command it stands for (so redis-benchmark's own LPUSH prep is not counted).
CPU_LIST = "mylist"
CPU_LIST_LEN = 600
CPU_TICK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    """(utime, stime) of the whole process in clock ticks (/proc/<pid>/stat fields 14
    and 15, every thread included, the dead ones too)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def cpu_bench_argv(port, test, n, pipeline, clients):
    argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-n", str(n),
            "-c", str(clients), "-P", str(pipeline), "-r", "100000", "-q"]
    if test == "lrange_100":
        return argv + ["LRANGE", CPU_LIST, "0", "99"]
    return argv + ["-t", test]


def cpu_run(srv, test, n, pipeline, clients):
    """Runs one redis-benchmark test against srv; returns (user, system) seconds of
    server CPU over it. LRANGE_100 gets a list of CPU_LIST_LEN elements first."""
    if test == "lrange_100":
        c = Conn(srv.port)
        c.call("DEL", CPU_LIST)
        c.call("RPUSH", CPU_LIST, *(["xxx"] * CPU_LIST_LEN))
        c.close()
    u0, s0 = cpu_ticks(srv.pid)
    out = subprocess.run(cpu_bench_argv(srv.port, test, n, pipeline, clients),
                         capture_output=True, text=True, timeout=900)
    u1, s1 = cpu_ticks(srv.pid)
    if out.returncode != 0:
        raise RuntimeError(f"redis-benchmark {test} failed: {out.stderr.strip()}")
    return (u1 - u0) / CPU_TICK, (s1 - s0) / CPU_TICK


def cpu_label(test):
    return "LRANGE_100" if test == "lrange_100" else test.upper()


def part_cpu(args, bins, wd, res):
    """Server CPU (utime+stime of /proc/<pid>/stat) over a fixed request count per
    command, one fresh keyspace per rep and server; tests run in --tests order so
    GET reads what SET wrote and RPOP pops what LPUSH pushed."""
    tests = [t.strip() for t in args.tests.split(",") if t.strip()]
    servers = {}
    try:
        for impl in IMPLS:
            servers[impl] = Server(impl, bins[impl], wd)
        for p in [int(x) for x in args.pipelines.split(",")]:
            n = args.cpu_n if p == 1 else args.cpu_n_pipelined
            for rep, impl in alternating(args.reps):
                srv = servers[impl]
                c = Conn(srv.port)
                c.call("FLUSHALL")
                c.close()
                for test in tests:
                    user, system = cpu_run(srv, test, n, p, args.clients)
                    name = f"{cpu_label(test)} -P {p}"
                    res.add("cpu", f"{name} CPU/request", "µs", "lower", impl,
                            (user + system) / n * 1e6)
                    res.add("cpu", f"{name} user CPU/request", "µs", "lower", impl,
                            user / n * 1e6)
                    res.add("cpu", f"{name} system CPU/request", "µs", "lower", impl,
                            system / n * 1e6)
                log(f"cpu -P {p}: rep {rep + 1}/{args.reps} {impl} done")
    finally:
        for s in servers.values():
            s.stop()
    if args.callgrind:
        part_callgrind(args, bins, res)


def callgrind_total(binary, test, pipeline, n):
    """User-space instructions of one server process over a redis-benchmark -t test
    run (bench/callgrind.sh; start-up and shutdown included)."""
    out = subprocess.run(
        [os.path.join(ROOT, "bench", "callgrind.sh"), "-t", test, "-P", str(pipeline),
         "-n", str(n), binary], capture_output=True, text=True, timeout=3600)
    m = re.search(r"instructions=(\d+)", out.stdout)
    if out.returncode != 0 or not m:
        raise RuntimeError(f"callgrind.sh -t {test} failed: {out.stderr.strip()[-300:]}")
    return int(m.group(1))


def part_callgrind(args, bins, res):
    """Instructions per request (deterministic, one run each). redis-benchmark's
    -t lrange_100 runs an LPUSH prep of the same count first: its LPUSH-only count is
    subtracted."""
    tests = [t.strip() for t in args.tests.split(",") if t.strip()]
    n = args.callgrind_n
    for p in [int(x) for x in args.pipelines.split(",")]:
        for impl in IMPLS:
            lpush = None
            for test in tests:
                total = callgrind_total(bins[impl], test, p, n)
                if test == "lrange_100":
                    if lpush is None:
                        lpush = callgrind_total(bins[impl], "lpush", p, n)
                    total -= lpush
                elif test == "lpush":
                    lpush = total
                res.add("cpu", f"{cpu_label(test)} -P {p} instructions/request (callgrind)",
                        "instr", "lower", impl, total / n)
            log(f"callgrind -P {p}: {impl} done")
# Small collections for the memory part: (row label, command of key i). Two
# elements of 10 bytes each: under every listpack/intset threshold of Redis 7.0
# (which has no listpack sets: its set of strings is a hashtable).
SMALL_COLLECTIONS = [
    ("hashes x 2 fields of 10 B",
     lambda i: ["HSET", f"hash:{i}", "field:a", f"va:{i:07d}"[:10], "field:b",
                f"vb:{i:07d}"[:10]]),
    ("sets x 2 members of 10 B",
     lambda i: ["SADD", f"set:{i}", f"ma:{i:07d}"[:10], f"mb:{i:07d}"[:10]]),
    ("zsets x 2 members of 10 B",
     lambda i: ["ZADD", f"zset:{i}", "1", f"ma:{i:07d}"[:10], "2", f"mb:{i:07d}"[:10]]),
]


def resp_file(path, n, make):
    """Writes n commands as RESP (for redis-cli --pipe), once per run."""
    if os.path.exists(path):
        return path
    with open(path, "wb") as f:
        chunk = []
        for i in range(n):
            args = make(i)
            chunk.append(f"*{len(args)}\r\n".encode())
            for a in args:
                a = a.encode()
                chunk.append(b"$%d\r\n%s\r\n" % (len(a), a))
            if len(chunk) > 100_000:
                f.write(b"".join(chunk))
                chunk = []
        f.write(b"".join(chunk))
    return path


def pipe_load(port, path, n):
    """Sends a RESP file with redis-cli --pipe; checks every reply was a success."""
    with open(path, "rb") as f:
        out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "--pipe"],
                             stdin=f, capture_output=True, text=True, timeout=600)
    m = re.search(r"errors: (\d+), replies: (\d+)", out.stdout)
    if out.returncode != 0 or not m or m.group(1) != "0" or int(m.group(2)) != n:
        raise RuntimeError(f"redis-cli --pipe failed: {out.stdout.strip()} {out.stderr.strip()}")


def part_memory(args, bins, wd, res):
    for rep, impl in alternating(args.reps):
        srv = Server(impl, bins[impl], wd)
        try:
            res.add("memory", "RSS empty server", "MB", "lower", impl, srv.rss_bytes() / 1e6)
            populate(srv.port, args.keys, args.value_size)
            c = Conn(srv.port)
            used = int(info(c, "memory")["used_memory"])
            c.close()
            res.add("memory", f"RSS {args.keys} keys x {args.value_size} B", "MB", "lower",
                    impl, srv.rss_bytes() / 1e6)
            res.add("memory", f"used_memory {args.keys} keys x {args.value_size} B", "MB",
                    "lower", impl, used / 1e6)
            log(f"memory: rep {rep + 1}/{args.reps} {impl} done")
        finally:
            srv.stop()
    for label, make in SMALL_COLLECTIONS:
        path = resp_file(os.path.join(wd, label.split()[0] + ".resp"), args.keys, make)
        for rep, impl in alternating(args.reps):
            srv = Server(impl, bins[impl], wd)
            try:
                pipe_load(srv.port, path, args.keys)
                if dbsize(srv.port) != args.keys:
                    raise RuntimeError(f"{label}: DBSIZE is not {args.keys}")
                res.add("memory", f"RSS {args.keys} {label}", "MB", "lower", impl,
                        srv.rss_bytes() / 1e6)
                log(f"memory: {label} rep {rep + 1}/{args.reps} {impl} done")
            finally:
                srv.stop()


def part_sync(args, bins, wd, res):
    for mode, diskless in (("disk", "no"), ("diskless", "yes")):
        for rep, impl in alternating(args.reps):
            master = replica = probe = None
            try:
                master = Server(impl, bins[impl], wd,
                                ["--repl-diskless-sync", diskless,
                                 "--repl-diskless-sync-delay", "0"])
                populate(master.port, args.keys, args.value_size)
                probe = Probe(master.port, args.probe_interval / 1000.0,
                              max_secs=args.sync_timeout + 30)
                probe.start()
                t0 = time.monotonic()
                replica = Server(impl, bins[impl], wd,
                                 ["--replicaof", "127.0.0.1", str(master.port)])
                t1 = wait_link_up(replica.port, args.sync_timeout)
                probe.finish()
                if probe.error:
                    res.note(f"sync {mode} {impl}: probe error {probe.error}")
                got = dbsize(replica.port)
                if got != args.keys:
                    res.note(f"sync {mode} {impl} rep {rep + 1}: replica has {got} keys, "
                             f"expected {args.keys}")
                res.add("sync", f"full sync {mode}, {args.keys} keys", "s", "lower", impl, t1 - t0)
                res.add("sync", f"master PING p99 during {mode} sync", "ms", "lower", impl,
                        pct(probe.lat_ms, 99))
                res.add("sync", f"master PING max during {mode} sync", "ms", "lower", impl,
                        max(probe.lat_ms) if probe.lat_ms else float("nan"))
                log(f"sync {mode}: rep {rep + 1}/{args.reps} {impl} {t1 - t0:.2f}s "
                    f"({len(probe.lat_ms)} pings)")
            finally:
                if probe is not None:
                    probe.finish()
                for s in (replica, master):
                    if s is not None:
                        s.stop()


def start_pair(impl, bins, wd, extra_master=(), extra_replica=()):
    master = Server(impl, bins[impl], wd, list(extra_master))
    try:
        replica = Server(impl, bins[impl], wd,
                         ["--replicaof", "127.0.0.1", str(master.port)] + list(extra_replica))
    except BaseException:
        master.stop()
        raise
    return master, replica


def repl_offsets(mc, rc):
    """Sends INFO replication to both at once, then reads both replies."""
    mc.send("INFO", "replication")
    rc.send("INFO", "replication")
    m = parse_info(mc.read())
    r = parse_info(rc.read())
    return int(m["master_repl_offset"]), int(r.get("slave_repl_offset", "-1"))


def write_load(port, n, pipeline, clients):
    return subprocess.Popen(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "set", "-n", str(n),
         "-P", str(pipeline), "-c", str(clients), "-r", "1000000", "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def part_lag(args, bins, wd, res):
    for rep, impl in alternating(args.reps):
        master = replica = load = mc = rc = None
        try:
            master, replica = start_pair(impl, bins, wd)
            wait_link_up(replica.port, args.sync_timeout)
            mc, rc = Conn(master.port), Conn(replica.port)
            load = write_load(master.port, args.lag_requests, 16, args.clients)
            t_start = time.monotonic()
            deadline = t_start + args.lag_timeout
            lags = []
            nxt = time.monotonic()
            while load.poll() is None and time.monotonic() < deadline:
                mo, ro = repl_offsets(mc, rc)
                if ro >= 0:
                    lags.append(max(0, mo - ro))
                nxt += 0.01
                time.sleep(max(0.0, nxt - time.monotonic()))
            elapsed = time.monotonic() - t_start
            if load.poll() is None:
                res.note(f"lag {impl}: load still running after {args.lag_timeout}s; stopped")
            res.add("lag", f"replica lag p50 (SET -P 16 load)", "bytes", "lower", impl,
                    pct(lags, 50))
            res.add("lag", f"replica lag p99 (SET -P 16 load)", "bytes", "lower", impl,
                    pct(lags, 99))
            res.add("lag", "load rate during lag test", "req/s", "higher", impl,
                    args.lag_requests / elapsed)
            log(f"lag: rep {rep + 1}/{args.reps} {impl} {len(lags)} samples, "
                f"p99 {pct(lags, 99)} B")
        finally:
            kill_proc(load)
            for c in (mc, rc):
                if c is not None:
                    c.close()
            for s in (replica, master):
                if s is not None:
                    s.stop()


def part_resync(args, bins, wd, res):
    # repl-timeout 2 makes the master drop the paused replica (no ACKs for > 2 s) and
    # the replica drop the stale link on resume, so it must PSYNC; the backlog is large
    # enough to hold the writes of the pause.
    extra = ["--repl-timeout", "2", "--repl-backlog-size", "256mb"]
    for rep, impl in alternating(args.reps):
        master = replica = load = mc = rc = None
        try:
            master, replica = start_pair(impl, bins, wd, extra, extra)
            wait_link_up(replica.port, args.sync_timeout)
            load = write_load(master.port, 1_000_000_000, 1, args.clients)
            time.sleep(1.0)  # load is running before the pause
            mc = Conn(master.port)
            before = info(mc, "stats")
            os.kill(replica.pid, signal.SIGSTOP)
            time.sleep(args.pause)
            os.kill(replica.pid, signal.SIGCONT)
            t0 = time.monotonic()
            target = int(info(mc, "replication")["master_repl_offset"])
            deadline = t0 + args.resync_timeout
            t1 = None
            while time.monotonic() < deadline:
                try:
                    if rc is None:
                        rc = Conn(replica.port, timeout=5)
                    ro = int(info(rc, "replication").get("slave_repl_offset", "-1"))
                    if ro >= target:
                        t1 = time.monotonic()
                        break
                except (OSError, ConnectionError, RuntimeError, ValueError):
                    if rc is not None:
                        rc.close()
                    rc = None
                time.sleep(0.01)
            after = info(mc, "stats")
            partial = int(after.get("sync_partial_ok", 0)) - int(before.get("sync_partial_ok", 0))
            full = int(after.get("sync_full", 0)) - int(before.get("sync_full", 0))
            if t1 is None:
                res.note(f"resync {impl} rep {rep + 1}: replica did not reach the master's "
                         f"offset within {args.resync_timeout}s")
            else:
                res.add("resync", f"catch-up after {args.pause:g} s pause", "s", "lower", impl,
                        t1 - t0)
            res.add("resync", "partial resyncs accepted per pause", "count", "1 expected",
                    impl, partial)
            if full:
                res.note(f"resync {impl} rep {rep + 1}: {full} full sync(s) instead of partial")
            log(f"resync: rep {rep + 1}/{args.reps} {impl} "
                f"{'timeout' if t1 is None else f'{t1 - t0:.2f}s'} partial+={partial} full+={full}")
        finally:
            kill_proc(load)
            for c in (mc, rc):
                if c is not None:
                    c.close()
            for s in (replica, master):
                if s is not None:
                    s.stop()


# ---------------------------------------------------------------- main

def git_commit():
    def git(*a):
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    c = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return c + (" (dirty tree)" if git("status", "--porcelain", "--untracked-files=no") else "")


def update_docs(path, text):
    with open(path) as f:
        doc = f.read()
    i, j = doc.find(DOCS_BEGIN), doc.find(DOCS_END)
    if i < 0 or j < i:
        raise RuntimeError(f"{path} lacks the {DOCS_BEGIN} / {DOCS_END} markers")
    doc = doc[:i + len(DOCS_BEGIN)] + "\n" + text + "\n" + doc[j:]
    with open(path, "w") as f:
        f.write(doc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=",".join(PARTS),
                    help=f"comma-separated parts to run, of: {','.join(PARTS)}")
    ap.add_argument("--reps", type=int, default=3, help="alternating repetitions per part")
    ap.add_argument("-n", type=int, default=100000,
                    help="requests per redis-benchmark test at -P 1")
    ap.add_argument("--n-pipelined", type=int, default=500000,
                    help="requests per redis-benchmark test at -P > 1 (longer runs, less noise)")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--tests", default=DEFAULT_TESTS)
    ap.add_argument("--pipelines", default="1,16")
    ap.add_argument("--cpu-n", type=int, default=200_000,
                    help="requests per command of the cpu part at -P 1")
    ap.add_argument("--cpu-n-pipelined", type=int, default=2_000_000,
                    help="requests per command of the cpu part at -P > 1")
    ap.add_argument("--callgrind", action="store_true",
                    help="cpu part: also count instructions per request with bench/callgrind.sh")
    ap.add_argument("--callgrind-n", type=int, default=200_000,
                    help="requests per command under callgrind")
    ap.add_argument("--keys", type=int, default=1_000_000, help="keys for memory and sync")
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--lag-requests", type=int, default=2_000_000,
                    help="SET requests of the lag test's load")
    ap.add_argument("--pause", type=float, default=5.0, help="replica SIGSTOP seconds")
    ap.add_argument("--probe-interval", type=float, default=1.0,
                    help="ms between the sync part's PINGs (0: back to back)")
    ap.add_argument("--sync-timeout", type=float, default=120.0)
    ap.add_argument("--lag-timeout", type=float, default=120.0)
    ap.add_argument("--resync-timeout", type=float, default=60.0)
    ap.add_argument("--tandem-bin", help="use this binary instead of building one")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "latest.md"))
    ap.add_argument("--docs", action="store_true",
                    help="also replace the LATEST table in docs/benchmarks.md")
    args = ap.parse_args()
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    bad = [p for p in parts if p not in PARTS]
    if bad:
        ap.error(f"unknown part(s) {bad}; choose from {PARTS}")

    for tool in ("redis-benchmark", "redis-server"):
        if not shutil.which(tool):
            sys.exit("needs Debian's redis-server and redis-tools "
                     "(apt-get install redis-server redis-tools)")
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    tandem_bin = args.tandem_bin or os.path.join(target, "release", "tandem-server")
    null_bin = os.path.join(target, "release", "examples", "null_server")
    if any(p != "ceiling" for p in parts):
        if not args.no_build and not args.tandem_bin:
            subprocess.run(["cargo", "build", "--release", "-p", "tandem-server"], cwd=ROOT,
                           check=True)
        if not os.access(tandem_bin, os.X_OK):
            sys.exit(f"{tandem_bin} not found (set CARGO_TARGET_DIR, --tandem-bin, "
                     "or drop --no-build)")
    if "ceiling" in parts:
        if not args.no_build:
            subprocess.run(["cargo", "build", "--release", "-p", "tandem-server", "--example",
                            "null_server"], cwd=ROOT, check=True)
        if not os.access(null_bin, os.X_OK):
            sys.exit(f"{null_bin} not found (set CARGO_TARGET_DIR or drop --no-build)")
    bins = {"tandem": tandem_bin, "redis": shutil.which("redis-server"), "null": null_bin}
    version = subprocess.run(["redis-server", "-v"], capture_output=True,
                             text=True).stdout.strip()
    commit = git_commit()
    started = datetime.datetime.now(datetime.timezone.utc)

    # SIGTERM unwinds like Ctrl-C, so the finally blocks kill what was started.
    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)

    res = Results()
    funcs = {"ceiling": part_ceiling, "throughput": part_throughput, "cpu": part_cpu,
             "memory": part_memory, "sync": part_sync, "lag": part_lag, "resync": part_resync}
    workdir = tempfile.mkdtemp(prefix="tandem-bench-")
    try:
        for p in parts:
            log(f"part {p}")
            try:
                funcs[p](args, bins, workdir, res)
            except Exception as e:  # keep the other parts' numbers
                res.note(f"part {p} failed: {type(e).__name__}: {e}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    secs = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()
    header = [
        f"Run {started:%Y-%m-%d %H:%M} UTC, tandem-server at commit {commit} (release build) "
        f"vs {version.split(' sha=')[0]}; {platform.machine()}, {os.cpu_count()} CPUs "
        f"(shared), {secs / 60:.1f} min.",
        "",
        f"Parts: {', '.join(parts)}; {args.reps} alternating reps, medians; "
        f"throughput: -c {args.clients} -n {args.n} (-P 1) / {args.n_pipelined} (-P > 1); "
        f"cpu: -c {args.clients} -r 100000 -n {args.cpu_n} (-P 1) / {args.cpu_n_pipelined} "
        f"(-P > 1) per command{', callgrind -n %d' % args.callgrind_n if args.callgrind else ''}; "
        f"memory/sync: {args.keys} keys x "
        f"{args.value_size} B; lag load: {args.lag_requests} SET -P 16; resync pause "
        f"{args.pause:g} s.",
        "Ratio = Tandem / Redis; the `better` column says which direction is better.",
    ]
    if "ceiling" in parts:
        header.append(
            f"Ceiling rows: redis-benchmark -t {CEILING_TESTS} against the null server "
            "(server/examples/null_server.rs: +OK to every request, no work) in the tandem "
            "column vs Redis; the plain null server's ratio is the highest a server that "
            "sleeps when idle can reach in the throughput part on this machine (the "
            "busy-poll rows: one that spins).")
    header += ["", ""]
    text = "\n".join(header) + res.table() + "\n"
    if res.notes:
        text += "\nNotes:\n" + "".join(f"- {n}\n" for n in res.notes)
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    log(f"wrote {args.out}")
    if args.docs:
        update_docs(os.path.join(ROOT, "docs", "benchmarks.md"), text)
        log("updated docs/benchmarks.md")


if __name__ == "__main__":
    main()
