#!/usr/bin/env python3
"""Failover benchmark (issue 7): time from killing the master's process to the first
successful write through the `-master` Service, in local cluster mode.

One command: builds the release binaries (unless --no-build), starts
`tandem-operator local` in a temporary state dir with a RedisReplication of --replicas pods,
waits until it is Ready, then --runs times:

  1. a writer sends SET through the `-master` endpoint (DIR/endpoints.json) every
     --interval seconds, reconnecting on any error;
  2. the current master (status.master) is killed with SIGKILL (its pid from
     DIR/pods/<ns>_<pod>/pid);
  3. the time until the writer's first successful SET after the kill is recorded, together
     with the new master, the epoch and status.lastFailover.durationMs;
  4. it waits until the resource is Ready again (the old master back as a replica) before
     the next run.

It prints the median, min and max and writes bench/results/failover.md. This is a benchmark,
not a test: the machine is shared and noisy.

Usage: python3 bench/failover.py [--runs 10] [--replicas 3] [--down-after 5] [--no-build]
"""
import argparse
import base64
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NS = "default"
NAME = "bench"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def resp(*args):
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def read_line(sock, buf):
    while b"\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    line, _, rest = buf.partition(b"\r\n")
    return line, rest


class Client:
    """Just enough RESP for AUTH and SET (simple replies only)."""

    def __init__(self, addr, password, timeout=1.0):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b""
        if password:
            self.call("AUTH", password)

    def call(self, *args):
        self.sock.sendall(resp(*args))
        line, self.buf = read_line(self.sock, self.buf)
        if line.startswith(b"-"):
            raise RuntimeError(line[1:].decode(errors="replace"))
        return line

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Local:
    def __init__(self, binary, server_bin, state, manifest):
        self.state = state
        self.log = open(os.path.join(state, "local.out"), "wb")
        self.proc = subprocess.Popen(
            [binary, "local", "--state-dir", state, "--server-bin", server_bin, "-f", manifest],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def api(self):
        with open(os.path.join(self.state, "kubeconfig")) as f:
            for line in f:
                line = line.strip()
                if line.startswith("server:"):
                    return line.split(":", 1)[1].strip()
        raise RuntimeError("no server in kubeconfig")

    def get(self, path):
        with urllib.request.urlopen(self.api() + path, timeout=5) as r:
            return json.load(r)

    def rr(self):
        return self.get(f"/apis/tandem.dev/v1alpha1/namespaces/{NS}/redisreplications/{NAME}")

    def password(self):
        s = self.get(f"/api/v1/namespaces/{NS}/secrets/{NAME}-auth")
        return base64.b64decode(s["data"]["password"]).decode()

    def endpoint(self, svc):
        with open(os.path.join(self.state, "endpoints.json")) as f:
            return json.load(f)[f"{NS}/{svc}"]

    def pid(self, pod):
        with open(os.path.join(self.state, "pods", f"{NS}_{pod}", "pid")) as f:
            return int(f.read().strip())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def ready(status):
    for c in status.get("conditions", []):
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def wait_until(what, fn, timeout):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - anything while the cluster converges
            last = e
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what} (last error: {last})")


def one_run(local, password, interval, timeout):
    rr = local.rr()
    master = rr["status"]["master"]
    epoch = rr["status"].get("epoch", 0)
    addr = local.endpoint(f"{NAME}-master")
    c = Client(addr, password)
    c.call("SET", "bench:before", "1")
    pid = local.pid(master)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    deadline = killed + timeout
    n = 0
    client = None
    while time.monotonic() < deadline:
        n += 1
        try:
            if client is None:
                client = Client(addr, password, timeout=0.5)
            client.call("SET", f"bench:{n}", n)
            break
        except Exception:  # noqa: BLE001 - errors are expected until the new master serves
            if client is not None:
                client.close()
                client = None
            time.sleep(interval)
    else:
        raise RuntimeError("no successful write within the timeout")
    took = time.monotonic() - killed
    if client is not None:
        client.close()
    c.close()
    st = wait_until("a new epoch", lambda: (s := local.rr()["status"]).get("epoch", 0) > epoch and s, 30)
    wait_until("Ready", lambda: ready(local.rr()["status"]), 90)
    lf = st.get("lastFailover") or {}
    return {"seconds": took, "from": master, "to": st.get("master"),
            "epoch": st.get("epoch"), "durationMs": lf.get("durationMs")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--down-after", type=int, default=5)
    ap.add_argument("--interval", type=float, default=0.02)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--workspace", "--bins"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = os.path.join(target, "release", "tandem-operator")
    server_bin = os.path.join(target, "release", "tandem-server")
    state = tempfile.mkdtemp(prefix="tandem-failover-bench-")
    manifest = os.path.join(state, "rr.yaml")
    with open(manifest, "w") as f:
        f.write(f"""apiVersion: tandem.dev/v1alpha1
kind: RedisReplication
metadata:
  name: {NAME}
  namespace: {NS}
spec:
  replicas: {args.replicas}
  failover:
    downAfterSeconds: {args.down_after}
""")
    local = Local(binary, server_bin, state, manifest)
    results = []
    failed = False
    try:
        wait_until("Ready", lambda: ready(local.rr().get("status", {})), 120)
        password = local.password()
        for i in range(args.runs):
            r = one_run(local, password, args.interval, args.down_after + 30)
            log(f"run {i + 1}: {r['seconds']:.3f} s  {r['from']} -> {r['to']} epoch {r['epoch']} "
                f"(operator durationMs {r['durationMs']})")
            results.append(r)
    except Exception:
        failed = True
        raise
    finally:
        local.stop()
        if failed:
            log(f"failed: state kept in {state} (local.out, operator.log, pods/*/log)")
        else:
            shutil.rmtree(state, ignore_errors=True)
    secs = [r["seconds"] for r in results]
    med = statistics.median(secs)
    lines = [
        "# Failover: master kill to first successful write through the -master Service",
        "",
        f"runs: {len(secs)}, replicas: {args.replicas}, downAfterSeconds: {args.down_after}, "
        f"writer retry interval: {args.interval} s",
        "",
        f"median {med:.3f} s, min {min(secs):.3f} s, max {max(secs):.3f} s",
        "",
        "| run | seconds | from | to | epoch | operator durationMs |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(results):
        lines.append(f"| {i + 1} | {r['seconds']:.3f} | {r['from']} | {r['to']} | {r['epoch']} | {r['durationMs']} |")
    out = "\n".join(lines) + "\n"
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "failover.md"), "w") as f:
        f.write(out)
    print(out)


if __name__ == "__main__":
    main()
