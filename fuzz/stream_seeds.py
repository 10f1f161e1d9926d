import socket, sys, os
# Usage: stream_seeds.py PORT OUTDIR — builds streams on a Redis 7.0 at PORT, DUMPs them
# uncompressed and writes each listpack node as a `stream` fuzz seed (mode byte 0), plus
# a few operation tapes (mode byte 1).
port, out = int(sys.argv[1]), sys.argv[2]
f = socket.create_connection(("127.0.0.1", port)).makefile("rwb")
def cmd(*a):
    a = [x if isinstance(x, bytes) else str(x).encode() for x in a]
    f.write(b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in a)); f.flush()
    l = f.readline()
    if l[:1] == b"$":
        n = int(l[1:-2]); return None if n < 0 else f.read(n + 2)[:-2]
    return l
def rdb_len(b, p):
    t = b[p] >> 6
    if t == 0: return b[p] & 63, p + 1
    if t == 1: return ((b[p] & 63) << 8) | b[p + 1], p + 2
    if b[p] == 0x80: return int.from_bytes(b[p+1:p+5], "big"), p + 5
    if b[p] == 0x81: return int.from_bytes(b[p+1:p+9], "big"), p + 9
    raise ValueError("encoded string in an uncompressed dump")
def nodes(payload):
    assert payload[0] == 19
    n, p = rdb_len(payload, 1)
    for _ in range(n):
        l, p = rdb_len(payload, p); p += l          # master ID
        l, p = rdb_len(payload, p); yield payload[p:p + l]; p += l
cmd("CONFIG", "SET", "rdbcompression", "no")
cmd("CONFIG", "SET", "stream-node-max-entries", "6")
cmd("DEL", "fz")
for i in range(1, 15):
    fields = ["f", i, "g", "x" * (i * 7)] if i % 4 else ["other", -i * 1000, "n", 2**40 + i]
    cmd("XADD", "fz", f"{i}-{i * 3}", *fields)
cmd("XDEL", "fz", "2-6", "9-27")
cmd("XTRIM", "fz", "MAXLEN", "11")
os.makedirs(out, exist_ok=True)
for k, blob in enumerate(nodes(cmd("DUMP", "fz"))):
    open(os.path.join(out, f"node-{k}"), "wb").write(b"\x00" + blob)
cmd("DEL", "fz")
cmd("CONFIG", "SET", "rdbcompression", "yes")
cmd("CONFIG", "SET", "stream-node-max-entries", "100")
tapes = {
    "ops-appends": bytes([1, 40, 3]) + bytes(x for i in range(60) for x in (0, i % 4, i * 3 % 256)),
    "ops-mixed": bytes([1, 0, 2]) + bytes(x for i in range(80) for x in (i % 8, (i * 37) % 256, (i * 11) % 256)),
}
for name, t in tapes.items():
    open(os.path.join(out, name), "wb").write(t)
