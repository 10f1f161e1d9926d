#!/usr/bin/env python3
"""Side-by-side benchmark: tandem-server vs Debian's redis-server 7.0.15.

Both servers run on loopback with equivalent configs (no persistence). The same
redis-benchmark invocation is run against each, alternating A/B/A/B, and the table
reports medians and Tandem/Redis ratios. The machine is shared and noisy: only the
ratios from one run mean anything.

Usage: python3 bench/run.py [--reps 3] [-n 100000] [--tests set,get,...] [--pipelines 1,16]
"""
import argparse
import csv
import io
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_TESTS = "set,get,incr,lpush,rpop,sadd,hset,zadd,lrange_100,mset"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, limit=10.0):
    deadline = time.time() + limit
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


class Server:
    def __init__(self, name, argv, port, workdir):
        self.name, self.port = name, port
        self.log = open(os.path.join(workdir, f"{name}.log"), "w")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, cwd=workdir)
        wait_port(port, self.proc)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def start_servers(workdir):
    tandem_bin = os.path.join(ROOT, "target", "release", "tandem-server")
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    tp, rp = free_port(), free_port()
    tandem = Server("tandem", [tandem_bin, "--port", str(tp), "--dir", workdir] + common, tp, workdir)
    redis = Server("redis", ["redis-server", "--port", str(rp), "--dir", workdir] + common, rp, workdir)
    return tandem, redis


def run_benchmark(port, tests, n, pipeline, clients):
    out = subprocess.run(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", tests, "-n", str(n),
         "-c", str(clients), "-P", str(pipeline), "--csv"],
        capture_output=True, text=True, timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed: {out.stderr.strip()}")
    rows = {}
    for row in csv.DictReader(io.StringIO(out.stdout)):
        rows[row["test"]] = (float(row["rps"]), float(row["p99_latency_ms"]))
    return rows


def flush(port):
    subprocess.run(["redis-cli", "-p", str(port), "FLUSHALL"], capture_output=True, timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("-n", type=int, default=100000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--tests", default=DEFAULT_TESTS)
    ap.add_argument("--pipelines", default="1,16")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "latest.md"))
    args = ap.parse_args()

    if not shutil.which("redis-benchmark") or not shutil.which("redis-server"):
        sys.exit("needs Debian's redis-server and redis-tools (apt-get install redis-server redis-tools)")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "tandem-server"], cwd=ROOT, check=True)
    version = subprocess.run(["redis-server", "-v"], capture_output=True, text=True).stdout.strip()

    workdir = tempfile.mkdtemp(prefix="tandem-bench-")
    tandem = redis = None
    results = {}  # (pipeline, test, server) -> [(rps, p99)]
    try:
        tandem, redis = start_servers(workdir)
        for p in [int(x) for x in args.pipelines.split(",")]:
            for rep in range(args.reps):
                # Alternate which server goes first so drift hits both equally.
                order = [tandem, redis] if rep % 2 == 0 else [redis, tandem]
                for srv in order:
                    flush(srv.port)
                    rows = run_benchmark(srv.port, args.tests, args.n, p, args.clients)
                    for test, v in rows.items():
                        results.setdefault((p, test, srv.name), []).append(v)
                print(f"pipeline {p}: rep {rep + 1}/{args.reps} done", file=sys.stderr)
    finally:
        for s in (tandem, redis):
            if s:
                s.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    lines = [
        f"# Throughput: tandem-server vs {version}",
        "",
        f"redis-benchmark -c {args.clients} -n {args.n}, {args.reps} alternating reps, medians; "
        f"ratio = Tandem / Redis (throughput: >1 is better; p99: <1 is better).",
        "",
        "| pipeline | test | tandem rps | redis rps | rps ratio | tandem p99 ms | redis p99 ms | p99 ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (p, test, name) in sorted(k for k in results if k[2] == "tandem"):
        t = results[(p, test, "tandem")]
        r = results.get((p, test, "redis"))
        if not r:
            continue
        trps, rrps = statistics.median(x[0] for x in t), statistics.median(x[0] for x in r)
        tp99, rp99 = statistics.median(x[1] for x in t), statistics.median(x[1] for x in r)
        lines.append(
            f"| {p} | {test} | {trps:,.0f} | {rrps:,.0f} | {trps / rrps:.2f} | "
            f"{tp99:.3f} | {rp99:.3f} | {(tp99 / rp99) if rp99 else float('nan'):.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
