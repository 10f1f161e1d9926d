#!/usr/bin/env python3
"""Server CPU per request and system calls per request: tandem-server vs Debian's
redis-server 7.0.15 (and optionally a second tandem binary, e.g. a baseline build).

For every (pipeline depth, command) a fresh redis-benchmark run of a fixed request
count is sent to each server in turn (A/B then B/A between repetitions, see
run.alternating); the server's utime and stime are read from /proc/<pid>/stat before
and after, so what is reported is the server process's own CPU (all its threads,
kernel included) per request, in microseconds. Medians over the repetitions.

`--strace` instead attaches `strace -c -f` to each server for one bounded run per
(depth, command) and reports the system calls per request by name.

    python3 bench/cpu.py                          # 3 reps, -P 1 and -P 16, all tests
    python3 bench/cpu.py --base-bin /tmp/old-tandem-server --impls base,tandem,redis
    python3 bench/cpu.py --strace --tests get,set --p1-n 20000 --p16-n 200000

The machine's load average is printed at the start and the end of each run: other
jobs on a shared machine change how many requests a server finds per wake-up.
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the harness's Server, kill_proc and alternating)

TICK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    """(utime, stime, minor page faults) of the whole process, times in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name may hold spaces: fields are counted after its ')'.
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12]), int(fields[7])


def ctx_switches(pid):
    """(voluntary, involuntary) context switches summed over the process's threads."""
    vol = invol = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        invol += int(line.split()[1])
        except FileNotFoundError:
            pass
    return vol, invol


def bench(port, test, n, pipeline, clients):
    out = subprocess.run(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", test, "-n", str(n),
         "-c", str(clients), "-P", str(pipeline), "-r", "100000", "--csv"],
        capture_output=True, text=True, timeout=900,
    )
    if out.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed: {out.stderr.strip()}")
    rps = 0.0
    for line in out.stdout.splitlines()[1:]:
        cols = [c.strip('"') for c in line.split(",")]
        if len(cols) > 1:
            rps = float(cols[1])
    return rps


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def measure_cpu(server, test, n, pipeline, clients):
    u0, s0, f0 = cpu_ticks(server.pid)
    c0 = ctx_switches(server.pid)
    rps = bench(server.port, test, n, pipeline, clients)
    u1, s1, f1 = cpu_ticks(server.pid)
    c1 = ctx_switches(server.pid)
    us = 1e6 / TICK / n
    return {"user": (u1 - u0) * us, "sys": (s1 - s0) * us, "rps": rps,
            "vcs": (c1[0] - c0[0]) / n, "ics": (c1[1] - c0[1]) / n, "flt": (f1 - f0) / n}


def measure_syscalls(server, test, n, pipeline, clients, wd):
    out = os.path.join(wd, f"strace-{server.impl}-{test}-{pipeline}.txt")
    st = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(server.pid)],
                          stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # attached to every thread before the load starts
        bench(server.port, test, n, pipeline, clients)
    finally:
        st.send_signal(signal.SIGINT)
        try:
            st.wait(timeout=30)
        except subprocess.TimeoutExpired:
            run.kill_proc(st)
    calls = {}
    with open(out) as f:
        for line in f:
            cols = line.split()
            # % time, seconds, usecs/call, calls, [errors], syscall
            if len(cols) >= 5 and cols[0][0].isdigit() and cols[-1] != "total":
                calls[cols[-1]] = int(cols[3])
    return {k: v / n for k, v in calls.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tandem-bin", default=os.path.join(run.ROOT, "target/release/tandem-server"))
    ap.add_argument("--base-bin", help="a second tandem binary, reported as 'base'")
    ap.add_argument("--impls", default="tandem,redis")
    ap.add_argument("--tests", default=run.DEFAULT_TESTS)
    ap.add_argument("--pipelines", default="1,16")
    ap.add_argument("--p1-n", type=int, default=200_000)
    ap.add_argument("--p16-n", type=int, default=2_000_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--strace", action="store_true", help="count system calls instead")
    ap.add_argument("--extra", default="", help="extra tandem arguments, space separated")
    args = ap.parse_args()

    bins = {"tandem": args.tandem_bin, "redis": shutil.which("redis-server"),
            "base": args.base_bin}
    impls = args.impls.split(",")
    for i in impls:
        if not bins.get(i):
            sys.exit(f"no binary for {i}")
    tests = args.tests.split(",")
    pipelines = [int(p) for p in args.pipelines.split(",")]
    reps = 1 if args.strace else args.reps
    wd = tempfile.mkdtemp(prefix="tandem-cpu-")
    results = {}  # (impl, P, test) -> list of dicts
    start_load = loadavg()
    run.log(f"load average {start_load}; impls {impls}; reps {reps}")
    try:
        for rep, impl in run.alternating(reps, impls):
            extra = args.extra.split() if impl != "redis" else []
            srv = run.Server(impl, bins[impl], wd, extra)
            try:
                for p in pipelines:
                    n = args.p1_n if p == 1 else args.p16_n
                    for t in tests:
                        if args.strace:
                            r = measure_syscalls(srv, t, n, p, args.clients, wd)
                        else:
                            r = measure_cpu(srv, t, n, p, args.clients)
                        results.setdefault((impl, p, t), []).append(r)
                        run.log(f"rep {rep} {impl} -P {p} {t}: " + (
                            f"{sum(r.values()):.2f} syscalls/req" if args.strace else
                            f"user {r['user']:.2f} sys {r['sys']:.2f} us/req, "
                            f"{r['rps']:.0f} req/s, {r['vcs']:.3f}+{r['ics']:.3f} cs/req, {r['flt']:.4f} faults/req"))
            finally:
                srv.stop()
    finally:
        shutil.rmtree(wd, ignore_errors=True)
    end_load = loadavg()
    print(f"# load average {start_load} at start, {end_load} at end; "
          f"{reps} rep(s), medians; -c {args.clients} -r 100000")
    if args.strace:
        report_syscalls(results, impls, pipelines, tests)
    else:
        report_cpu(results, impls, pipelines, tests)


def med(rows, key):
    return statistics.median(r[key] for r in rows)


def report_cpu(results, impls, pipelines, tests):
    cols = " | ".join(f"{i} user+sys us/req (user / sys)" for i in impls)
    ratios = " | ".join(f"{i}/redis" for i in impls if i != "redis")
    print(f"| -P | test | {cols} | {ratios} | req/s ({', '.join(impls)}) "
          f"| context switches/req, voluntary+involuntary ({', '.join(impls)}) |")
    print("|---" * (4 + len(impls) + len([i for i in impls if i != "redis"])) + "|")
    for p in pipelines:
        for t in tests:
            tot = {}
            cells = []
            for i in impls:
                rows = results[(i, p, t)]
                u, s = med(rows, "user"), med(rows, "sys")
                tot[i] = statistics.median(r["user"] + r["sys"] for r in rows)
                cells.append(f"{tot[i]:.2f} ({u:.2f} / {s:.2f})")
            rat = [f"{tot[i] / tot['redis']:.2f}" if "redis" in tot and tot["redis"] else "-"
                   for i in impls if i != "redis"]
            rps = ", ".join(f"{med(results[(i, p, t)], 'rps'):.0f}" for i in impls)
            cs = ", ".join(f"{med(results[(i, p, t)], 'vcs'):.3f}+"
                           f"{med(results[(i, p, t)], 'ics'):.3f}" for i in impls)
            print(f"| {p} | {t} | {' | '.join(cells)} | {' | '.join(rat)} | {rps} | {cs} |")


def report_syscalls(results, impls, pipelines, tests):
    for p in pipelines:
        for t in tests:
            parts = []
            for i in impls:
                calls = results[(i, p, t)][0]
                top = sorted(calls.items(), key=lambda kv: -kv[1])[:6]
                parts.append(f"{i} {sum(calls.values()):.3f} ("
                             + ", ".join(f"{k} {v:.3f}" for k, v in top) + ")")
            print(f"-P {p} {t}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
