#!/usr/bin/env python3
"""EVALSHA cost: server CPU per call, Tandem vs Debian's redis-server 7.0.15.

Starts the servers on loopback (no persistence), loads a 1-command script (one SET)
and a 10-command script (ten INCRs), and for each script and pipeline depth runs
`redis-benchmark -n N -P 1|16 evalsha <sha> 0` against each server in turn,
alternating, --reps times. The CPU a server used for the run is read from
/proc/<pid>/stat (utime + stime) before and after; the table shows the median
microseconds per call and the ratio to Redis. The machine is shared and noisy: only
the ratios of one run mean anything.

Usage: python3 bench/evalsha.py [--tandem target/release/tandem-server]
       [--base OTHER_TANDEM_BINARY] [-n 200000] [--reps 3] [--pipelines 1,16] [--split]
--base adds a column for a second Tandem build (say, the one before a change).
--split adds a second table: the medians of user and system time per call apart.
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = {
    "1 command": "return redis.call('set', 'bench:k', 'v')",
    "10 commands": " ".join(["redis.call('incr', 'bench:c')"] * 9)
    + " return redis.call('incr', 'bench:c')",
}
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(port, *args):
    out = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        check=True, capture_output=True, text=True, timeout=30,
    )
    return out.stdout.strip()


class Server:
    def __init__(self, name, binary, workdir):
        self.name = name
        self.port = free_port()
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name}: port {self.port} did not open")
                time.sleep(0.02)

    def cpu_seconds(self):
        """(user, system) CPU seconds so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            # Fields after the command name (which may hold spaces): utime is the
            # 14th field of the line, stime the 15th.
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) / TICK, int(rest[12]) / TICK

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def measure(server, sha, n, pipeline):
    """Server (user, system) CPU microseconds per EVALSHA over one redis-benchmark run."""
    before = server.cpu_seconds()
    subprocess.run(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", str(server.port), "-n", str(n),
         "-P", str(pipeline), "-q", "evalsha", sha, "0"],
        check=True, capture_output=True, timeout=600,
    )
    after = server.cpu_seconds()
    return tuple((a - b) / n * 1e6 for a, b in zip(after, before))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tandem", default=os.path.join(ROOT, "target/release/tandem-server"))
    ap.add_argument("--base", help="a second tandem-server binary to compare")
    ap.add_argument("--redis", default=shutil.which("redis-server") or "/usr/bin/redis-server")
    ap.add_argument("-n", type=int, default=200000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--pipelines", default="1,16")
    ap.add_argument("--split", action="store_true")
    a = ap.parse_args()
    impls = [("redis", a.redis), ("tandem", a.tandem)]
    if a.base:
        impls.append(("base", a.base))
    pipelines = [int(p) for p in a.pipelines.split(",")]
    work = tempfile.mkdtemp(prefix="evalsha-bench-")
    servers = []
    try:
        servers = [Server(name, binary, work) for name, binary in impls]
        shas = {}
        for label, src in SCRIPTS.items():
            found = {cli(s.port, "SCRIPT", "LOAD", src) for s in servers}
            if len(found) != 1:
                raise RuntimeError(f"servers disagree on the sha of {label!r}: {found}")
            shas[label] = found.pop()
        results, split = {}, {}
        for rep in range(a.reps):
            for label, sha in shas.items():
                for p in pipelines:
                    order = servers if rep % 2 == 0 else list(reversed(servers))
                    for s in order:
                        user, system = measure(s, sha, a.n, p)
                        results.setdefault((label, p, s.name), []).append(user + system)
                        split.setdefault((label, p, s.name), []).append((user, system))
                        print(f"rep {rep + 1} {label} -P{p} {s.name}: {user + system:.2f} "
                              f"us/call (user {user:.2f}, system {system:.2f})",
                              file=sys.stderr, flush=True)
        names = [s.name for s in servers]
        head = "| script | -P | " + " | ".join(f"{n} µs/call" for n in names)
        head += " | " + " | ".join(f"{n}/redis" for n in names if n != "redis") + " |"
        print(head)
        print("|" + "---|" * (2 + len(names) + len(names) - 1))
        for label in shas:
            for p in pipelines:
                med = {n: statistics.median(results[(label, p, n)]) for n in names}
                cells = [f"{med[n]:.2f}" for n in names]
                cells += [f"{med[n] / med['redis']:.2f}x" for n in names if n != "redis"]
                print(f"| {label} | {p} | " + " | ".join(cells) + " |")
        if a.split:
            print()
            print("| script | -P | " + " | ".join(f"{n} user / system µs" for n in names) + " |")
            print("|" + "---|" * (2 + len(names)))
            for label in shas:
                for p in pipelines:
                    cells = []
                    for n in names:
                        runs = split[(label, p, n)]
                        u = statistics.median(r[0] for r in runs)
                        st = statistics.median(r[1] for r in runs)
                        cells.append(f"{u:.2f} / {st:.2f}")
                    print(f"| {label} | {p} | " + " | ".join(cells) + " |")
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
