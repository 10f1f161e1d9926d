#!/usr/bin/env python3
"""Local-mode Service path benchmark (issue 21 item 4): what the `-master` Service proxy
costs compared with sending the same load to the master pod's own address.

One command: builds the release binaries (unless --no-build), starts `tandem-operator local`
in a temporary state dir with a RedisReplication of --replicas pods, waits until it is
Ready, then for each pipeline depth (--pipelines, default 1 and 16) runs --rounds times,
alternating which target goes first,

  redis-benchmark -t set -P <depth> -c <clients> -n <requests> -a <password>

against the `-master` Service address (DIR/endpoints.json) and against the master pod's
address (status.podIP and its `redis` container port). It prints, per depth, the median
SET/s of each target and their ratio (Service / direct), and the CPU the operator process
spent per request while the Service was measured (the proxy runs inside it), next to the
master server's CPU per request in both cases.

Every redis-benchmark run is bounded by --timeout seconds; the operator is stopped by pid
(SIGTERM, then SIGKILL to its process group) and its state dir removed, also on failure
(kept for inspection only when something failed). This is a benchmark, not a test: the
machine is shared and noisy, so compare the two targets within one run only.

Usage: python3 bench/service_path.py [--rounds 3] [--requests 100000] [--clients 50]
       [--pipelines 1,16] [--replicas 1] [--no-build | --bin-dir DIR]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from failover import NAME, NS, Local, log, ready, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(stat_path):
    """utime + stime of a /proc/<pid>/stat file (0 when it is gone)."""
    try:
        with open(stat_path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def benchmark(addr, password, depth, clients, requests, timeout):
    host, port = addr.rsplit(":", 1)
    cmd = ["redis-benchmark", "-h", host, "-p", port, "-a", password, "-t", "set",
           "-P", str(depth), "-c", str(clients), "-n", str(requests), "--csv"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True).stdout
    for line in out.splitlines():
        cells = [c.strip('"') for c in line.split(",")]
        if len(cells) > 1 and cells[0] == "SET":
            return float(cells[1])
    raise RuntimeError(f"no SET row in redis-benchmark output: {out!r}")


def master_addrs(local):
    rr = local.rr()
    master = rr["status"]["master"]
    pod = local.get(f"/api/v1/namespaces/{NS}/pods/{master}")
    port = next(p["containerPort"] for c in pod["spec"]["containers"]
                for p in c.get("ports", []) if p.get("name") == "redis")
    return local.endpoint(f"{NAME}-master"), f"{pod['status']['podIP']}:{port}", master


def measure(local, password, args):
    service, direct, master = master_addrs(local)
    log(f"Service {service}, master {master} at {direct}")
    op_stat = f"/proc/{local.proc.pid}/stat"
    srv_stat = f"/proc/{local.pid(master)}/stat"
    rows = []
    for depth in args.pipelines:
        got = {"service": [], "direct": []}
        cpu = {"operator": [], "server_service": [], "server_direct": []}
        for r in range(args.rounds):
            order = ["service", "direct"] if r % 2 == 0 else ["direct", "service"]
            for target in order:
                addr = service if target == "service" else direct
                before = (cpu_ticks(op_stat), cpu_ticks(srv_stat))
                rps = benchmark(addr, password, depth, args.clients, args.requests, args.timeout)
                after = (cpu_ticks(op_stat), cpu_ticks(srv_stat))
                per_req = [(a - b) * 1e6 / TICK / args.requests for a, b in zip(after, before)]
                got[target].append(rps)
                cpu[f"server_{target}"].append(per_req[1])
                if target == "service":
                    cpu["operator"].append(per_req[0])
                log(f"-P {depth} round {r + 1} {target}: {rps:.0f} SET/s")
        med = {k: statistics.median(v) for k, v in got.items()}
        rows.append({"depth": depth, **med, "ratio": med["service"] / med["direct"],
                     **{f"cpu_{k}": statistics.median(v) for k, v in cpu.items()}})
    return rows


def report(rows, args):
    lines = [
        f"redis-benchmark -t set -c {args.clients} -n {args.requests}, {args.replicas} pod(s), "
        f"median of {args.rounds} alternating runs; CPU in microseconds per request",
        "",
        "| -P | Service SET/s | direct SET/s | Service / direct | operator CPU (Service runs) "
        "| server CPU via Service | server CPU direct |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['depth']} | {r['service']:.0f} | {r['direct']:.0f} | {r['ratio']:.2f} "
            f"| {r['cpu_operator']:.1f} | {r['cpu_server_service']:.1f} "
            f"| {r['cpu_server_direct']:.1f} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=100000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--pipelines", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16])
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=120, help="seconds per redis-benchmark run")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--bin-dir", help="directory of tandem-operator and tandem-server "
                    "(implies --no-build; default $CARGO_TARGET_DIR/release)")
    args = ap.parse_args()
    if shutil.which("redis-benchmark") is None:
        sys.exit("redis-benchmark not found (Debian package redis-tools)")
    if not (args.no_build or args.bin_dir):
        subprocess.run(["cargo", "build", "--release", "-p", "tandem-operator", "-p", "tandem-server",
                        "--bins"], cwd=ROOT, check=True)
    bin_dir = args.bin_dir or os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release")
    binary = os.path.join(bin_dir, "tandem-operator")
    server_bin = os.path.join(bin_dir, "tandem-server")
    state = tempfile.mkdtemp(prefix="tandem-service-bench-")
    manifest = os.path.join(state, "rr.yaml")
    with open(manifest, "w") as f:
        f.write(f"""apiVersion: tandem.dev/v1alpha1
kind: RedisReplication
metadata:
  name: {NAME}
  namespace: {NS}
spec:
  replicas: {args.replicas}
""")
    local = Local(binary, server_bin, state, manifest)
    failed = False
    started = time.monotonic()
    try:
        wait_until("Ready", lambda: ready(local.rr().get("status", {})), 120)
        rows = measure(local, local.password(), args)
    except BaseException:
        failed = True
        raise
    finally:
        local.stop()
        if failed:
            log(f"failed: state kept in {state} (local.out, operator.log, pods/*/log)")
        else:
            shutil.rmtree(state, ignore_errors=True)
    out = report(rows, args)
    log(f"took {time.monotonic() - started:.0f} s")
    print(out)


if __name__ == "__main__":
    main()
