#!/usr/bin/env python3
"""Writes server/src/commands/meta.rs: the command metadata of Redis 7.0.15 (names, arity,
flags, key ranges, ACL categories, tips, key specs, subcommands) as Rust data, read from a
running redis-server's `COMMAND INFO` (facts and formats only: the free-text `notes` of key
specs are left out).

    python3 scripts/gen_command_meta.py [PORT]    # default: starts /usr/bin/redis-server

The file is checked in; server/tests/command_meta.rs compares what Tandem answers to COMMAND
INFO with a live Redis 7.0.15, so a stale or wrong table fails a test.
"""
import os, socket, subprocess, sys, tempfile, time

OUT = os.path.join(os.path.dirname(__file__), "..", "server", "src", "commands", "meta.rs")


def read_reply(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise RuntimeError("short read")
    t, rest = line[:1], line[1:-2]
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
        data = f.read(n + 2)
        return data[:-2].decode()
    if t in (b"*", b"~"):
        n = int(rest)
        return None if n < 0 else [read_reply(f) for _ in range(n)]
    raise RuntimeError(f"unexpected reply type {t!r}")


def command(port, *args):
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")
    req = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in (x.encode() for x in args))
    s.sendall(req)
    r = read_reply(f)
    s.close()
    return r


def rs_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rs_strs(v):
    return "&[" + ", ".join(rs_str(x) for x in v) + "]"


def kv(pairs):
    return {pairs[i]: pairs[i + 1] for i in range(0, len(pairs), 2)}


def key_spec(spec):
    d = kv(spec)
    bs = kv(d["begin_search"])
    fk = kv(d["find_keys"])
    bspec = kv(bs["spec"]) if bs["spec"] else {}
    if bs["type"] == "index":
        begin = f"Begin::Index({bspec['index']})"
    elif bs["type"] == "keyword":
        begin = f"Begin::Keyword({rs_str(bspec['keyword'])}, {bspec['startfrom']})"
    else:
        begin = "Begin::Unknown"
    fspec = kv(fk["spec"]) if fk["spec"] else {}
    if fk["type"] == "range":
        find = f"Find::Range {{ last: {fspec['lastkey']}, step: {fspec['keystep']}, limit: {fspec['limit']} }}"
    elif fk["type"] == "keynum":
        find = f"Find::Keynum {{ index: {fspec['keynumidx']}, first: {fspec['firstkey']}, step: {fspec['keystep']} }}"
    else:
        find = "Find::Unknown"
    return f"KeySpec {{ flags: {rs_strs(d['flags'])}, begin: {begin}, find: {find} }}"


def meta(e, indent):
    name, arity, flags, first, last, step, acl, tips, specs, subs = e
    pad = " " * indent
    specs_rs = "&[" + ", ".join(key_spec(s) for s in specs) + "]"
    subs_sorted = subs  # Redis's own order (COMMAND INFO lists them so)
    subs_rs = "&[]" if not subs else "&[\n" + "".join(meta(s, indent + 8) + ",\n" for s in subs_sorted) + pad + "    ]"
    return (
        f"{pad}Meta {{\n"
        f"{pad}    name: {rs_str(name)},\n"
        f"{pad}    arity: {arity},\n"
        f"{pad}    flags: {rs_strs(flags)},\n"
        f"{pad}    keys: ({first}, {last}, {step}),\n"
        f"{pad}    acl: {rs_strs(acl)},\n"
        f"{pad}    tips: {rs_strs(tips)},\n"
        f"{pad}    key_specs: {specs_rs},\n"
        f"{pad}    subs: {subs_rs},\n"
        f"{pad}}}"
    )


def main():
    proc = tmp = None
    if len(sys.argv) > 1:
        port = int(sys.argv[1])
    else:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        tmp = tempfile.mkdtemp()
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--dir", tmp],
                                stdout=subprocess.DEVNULL)
        for _ in range(100):
            try:
                command(port, "PING")
                break
            except OSError:
                time.sleep(0.05)
    try:
        version = kv(sum(([l.split(":", 1)[0], l.split(":", 1)[1]] for l in command(port, "INFO", "server").splitlines() if ":" in l), []))["redis_version"]
        infos = command(port, "COMMAND", "INFO")
    finally:
        if proc:
            proc.terminate()
            proc.wait()
    infos.sort(key=lambda e: e[0])
    body = "".join(meta(e, 4) + ",\n" for e in infos)
    with open(OUT, "w") as f:
        f.write(
            "//! Command metadata of Redis " + version + " as its `COMMAND INFO` reports it: arity,\n"
            "//! flags, legacy key range, ACL categories, tips, key specs and subcommands. Generated\n"
            "//! by `scripts/gen_command_meta.py` (do not edit by hand); COMMAND INFO/LIST/COUNT\n"
            "//! answer from it for the commands Tandem has, and `tests/command_meta.rs` checks it\n"
            "//! against a live server.\n\n"
            "use super::meta_types::{Begin, Find, KeySpec, Meta};\n\n"
            f"/// Every top-level command of Redis {version}, sorted by name.\n"
            "pub const META: &[Meta] = &[\n" + body + "];\n"
        )
    print(f"wrote {len(infos)} commands from Redis {version} to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
