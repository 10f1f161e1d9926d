#!/usr/bin/env python3
"""Nemesis long form (issue 19): many rounds of faults on one local-mode instance, each
checked like Jepsen checks a database, then the verdict and the distributions.

It runs the ignored `long_form` test of tests/nemesis.rs (the harness lives in
tests/common/nemesis*.rs) with `cargo test`, which has no per-test time limit, and reads
the `NEMESIS_ROUND {json}` line each round prints:

  fault, failover_ms (fault start -> promotion recorded in the status; for restart-all,
  -> first acknowledged write), window_ms (longest time two pods both accepted writes),
  acked / acked_lost / unacked_lost, split_epochs, converged, passed.

It prints one line per round as it goes, then per fault type the median and max of the
failover time and of the dual-write (unacknowledged-loss) window, the totals, and the
verdict: PASS when every round passed (0 acknowledged writes lost, 0 epochs with two pods
accepting acknowledged writes, convergence after every round). Exit status 0 on PASS.

Needs root (network namespaces, tc netem) and iproute2; a missing tool ends the run at
once with a message naming it. Every wait of the harness is bounded; on failure the test's
guards undo the faults and local mode's cleanup removes pods, namespaces and links.

Usage: python3 bench/nemesis.py [--rounds 50] [--faults pause,partition,...]
                                [--json-out FILE]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAULTS = [
    "pause",
    "partition",
    "partition-client-side",
    "netem",
    "kill",
    "operator-kill",
    "restart-all",
    "flap",
]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def dist(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    return f"median {statistics.median(vals):.0f} ms, max {max(vals):.0f} ms (n={len(vals)})"


def summarize(rounds, aborted):
    print("\n== nemesis long form ==")
    by_fault = {}
    for r in rounds:
        by_fault.setdefault(r["fault"], []).append(r)
    for fault in sorted(by_fault):
        rs = by_fault[fault]
        print(f"{fault:>22}: {len(rs)} rounds; failover {dist([r['failover_ms'] for r in rs])}; "
              f"dual-write window {dist([r['window_ms'] for r in rs])}; "
              f"unacked lost {sum(r['unacked_lost'] for r in rs)}")
    acked = sum(r["acked"] for r in rounds)
    lost = sum(r["acked_lost"] for r in rounds)
    split = sum(r["split_epochs"] for r in rounds)
    unconverged = sum(1 for r in rounds if not r["converged"])
    failed = [r for r in rounds if not r["passed"]]
    print(f"rounds {len(rounds)}; acknowledged writes {acked}; acknowledged lost {lost}; "
          f"epochs with two acknowledging pods {split}; rounds not converged {unconverged}")
    for r in failed:
        print(f"  round {r['round']} ({r['fault']}) FAILED: {r['problems'][:3]}")
    if aborted:
        print(f"  ABORTED at round {aborted['round']} ({aborted['fault']}): {aborted['error']}")
    ok = not failed and not aborted and rounds
    print("VERDICT:", "PASS" if ok else "FAIL")
    return bool(ok)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--faults", default=",".join(FAULTS),
                    help="comma-separated fault names, cycled through")
    ap.add_argument("--json-out", help="also write every round's JSON here")
    args = ap.parse_args()
    unknown = [f for f in args.faults.split(",") if f.strip() not in FAULTS]
    if unknown:
        sys.exit(f"unknown fault(s) {unknown}; known: {FAULTS}")
    if args.rounds < 1:
        sys.exit("--rounds must be at least 1")
    env = dict(os.environ, TANDEM_NEMESIS_ROUNDS=str(args.rounds),
               TANDEM_NEMESIS_FAULTS=args.faults, CARGO_INCREMENTAL="0")
    log("building tandem-server")
    subprocess.run(["cargo", "build", "-p", "tandem-server", "--bin", "tandem-server"],
                   cwd=ROOT, env=env, check=True)
    cmd = ["cargo", "test", "--test", "nemesis", "long_form", "--",
           "--ignored", "--exact", "long_form", "--nocapture"]
    log(f"running {args.rounds} rounds: {' '.join(cmd)}")
    rounds, aborted = [], None
    out = open(args.json_out, "w") if args.json_out else None
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("NEMESIS_ROUND "):
                r = json.loads(line[len("NEMESIS_ROUND "):])
                rounds.append(r)
                if out:
                    out.write(json.dumps(r) + "\n")
                log(f"round {r['round']:>3} {r['fault']:>22}: failover {r['failover_ms']} ms, "
                    f"window {r['window_ms']} ms, acked {r['acked']}, "
                    f"acked lost {r['acked_lost']}, unacked lost {r['unacked_lost']}, "
                    f"{'pass' if r['passed'] else 'FAIL'}")
            elif line.startswith("NEMESIS_ABORT "):
                aborted = json.loads(line[len("NEMESIS_ABORT "):])
                log(f"aborted: {aborted}")
            elif line.startswith(("operator-kill: ", "netem: ")):
                log(line.rstrip())
            elif "panicked" in line or line.startswith("error"):
                sys.stderr.write(line)
    except KeyboardInterrupt:
        # Ctrl-C reached the test too (same process group); a test killed by a signal
        # runs no Drop: see docs/nemesis.md for the leftovers to sweep.
        log("interrupted")
    finally:
        proc.wait()
        if out:
            out.close()
    ok = summarize(rounds, aborted)
    sys.exit(0 if ok and proc.returncode == 0 else 1)


if __name__ == "__main__":
    main()
