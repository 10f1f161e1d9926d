#!/usr/bin/env bash
# Regenerates fuzz/seeds/ from a real Redis 7.0.15 (Debian's redis-server), so the rdb,
# aof and config targets start from files Redis itself wrote. Needs redis-server and
# redis-cli on PATH; runs one server on a free loopback port in a temp dir and stops it
# by PID. The output is committed; re-run only to refresh it.
#
# The resp and inline seeds are written here too: one control byte (see src/lib.rs,
# split_input: chunk schedule, tiny proto-max-bulk-len, unauthenticated limits), then
# the request bytes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
seeds="$here/seeds"
work="$(mktemp -d)"
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --save '' --appendonly no \
    --daemonize no --logfile "$work/redis.log" &
pid=$!
cli() { redis-cli -h 127.0.0.1 -p "$port" "$@" >/dev/null; }
for _ in $(seq 100); do redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done

rm -rf "$seeds"
mkdir -p "$seeds"/{rdb,aof,config,resp,inline,glob,stream}

# One key family per call; snapshot after each so small single-type files exist too.
populate() {
    case "$1" in
    strings)
        cli set str:embstr hello
        cli set str:int 12345
        cli set str:neg -7
        cli set str:big 4294967296
        cli set str:raw "$(printf 'x%.0s' $(seq 60))"
        cli set str:lzf "$(printf 'abcabcabc%.0s' $(seq 40))"
        cli set str:ttl v EX 100000
        cli set str:pttl v PX 99999999
        cli set "str:bin\x00" "$(printf '\001\002\377')" ;;
    lists)
        cli rpush list:small a b 1 2 -3 "$(printf 'y%.0s' $(seq 70))"
        for i in $(seq 0 9); do
            cli rpush list:large $(for j in $(seq 0 59); do printf 'element-%04d-%04d ' "$i" "$j"; done)
        done ;;
    sets)
        cli sadd set:intset 1 2 3 -4 70000 5000000000
        cli sadd set:small a b c
        cli sadd set:ht $(seq -f 'm%g' 1 600) ;;
    zsets)
        cli zadd zset:lp 1 a 2.5 b -3 c inf d -inf e
        cli zadd zset:skip $(for i in $(seq 1 200); do printf '%s m%s ' "$i.5" "$i"; done) ;;
    hashes)
        cli hset hash:lp f1 v1 f2 2 f3 -3
        cli hset hash:bigval f "$(printf 'z%.0s' $(seq 80))"
        cli hset hash:ht $(for i in $(seq 1 600); do printf 'f%s %s ' "$i" "$i"; done) ;;
    streams)
        cli xadd stream:s 1-1 name a n 1
        cli xadd stream:s 1-2 name b n 2
        cli xadd stream:s 2-0 other c
        cli xadd stream:s MAXLEN 100 '*' x y
        cli xgroup create stream:s g1 0
        cli xgroup create stream:s g2 '$'
        cli xreadgroup GROUP g1 alice COUNT 2 STREAMS stream:s '>'
        cli xreadgroup GROUP g1 bob COUNT 1 STREAMS stream:s '>'
        cli xack stream:s g1 1-1
        cli xdel stream:s 1-2
        cli xadd stream:empty MAXLEN 0 '*' k v ;;
    dbs)
        cli -n 1 set db1:key v
        cli -n 3 hset db3:hash f v
        cli -n 15 pexpire nothing 100 ;;
    esac
}

families="strings lists sets zsets hashes streams dbs"
for f in $families; do
    cli flushall
    populate "$f"
    cli save
    cp "$work/dump.rdb" "$seeds/rdb/$f.rdb"
done
cli flushall
for f in $families; do populate "$f"; done
cli save
cp "$work/dump.rdb" "$seeds/rdb/all.rdb"
cli config set rdbcompression no
cli save
cp "$work/dump.rdb" "$seeds/rdb/all-uncompressed.rdb"
cli config set rdbchecksum no
cli flushall
populate strings
cli save
cp "$work/dump.rdb" "$seeds/rdb/strings-no-checksum.rdb"
cli config set rdbchecksum yes
cli config set rdbcompression yes
cli flushall
cli save
cp "$work/dump.rdb" "$seeds/rdb/empty.rdb"
# A truncated file, so the fuzzer starts next to the "short read" paths too.
head -c 100 "$seeds/rdb/all.rdb" > "$seeds/rdb/truncated.rdb"

# AOF: the aof target's input is one control byte (bit 0: aof-load-truncated) then one
# file of the manifest. An RDB-preamble base, and an incr file with every kind of write.
cli flushall
populate sets; populate hashes
cli config set appendonly yes
for _ in $(seq 100); do
    [ "$(redis-cli -h 127.0.0.1 -p "$port" info persistence | grep -c 'aof_rewrite_in_progress:0')" = 1 ] && break
    sleep 0.05
done
populate strings; populate zsets; populate streams; populate dbs
cli rpush list:small a b 1 2 -3
redis-cli -h 127.0.0.1 -p "$port" >/dev/null <<'CMDS'
MULTI
INCR counter
LPUSH l x
EXEC
SELECT 2
SET k v PX 100000
DEL str:int
EXPIRE list:small 1000
CMDS
base=$(ls "$work"/appendonlydir/*.base.rdb)
incr=$(ls "$work"/appendonlydir/*.incr.aof)
{ printf '\001'; cat "$base"; } > "$seeds/aof/base-preamble"
{ printf '\001'; cat "$incr"; } > "$seeds/aof/incr"
{ printf '\000'; cat "$incr"; } > "$seeds/aof/incr-strict"
{ printf '\001'; head -c 200 "$incr"; } > "$seeds/aof/incr-torn"
{ printf '\001'; cat "$base" "$incr"; } > "$seeds/aof/preamble-then-commands"
{ printf '\001'; printf '*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\n'; } > "$seeds/aof/open-multi"
{ printf '\001'; printf '#TS:1700000000\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\n'; } > "$seeds/aof/annotation"

# Config: Debian's redis.conf without comments and without the directives the config
# target does not fuzz (they touch the filesystem; see fuzz_targets/config.rs).
if [ -r /etc/redis/redis.conf ]; then
    grep -v -E '^[[:space:]]*(#|$|dir |logfile |include )' /etc/redis/redis.conf > "$seeds/config/debian.conf"
fi
printf 'port 7000\nrequirepass "a b\\x41"\nmasterauth '"'"'it\\'"'"'s'"'"'\nmaxmemory 2GB\nsave ""\nsave 900 1 300 10\nappendonly YES\n' > "$seeds/config/quoting.conf"
printf 'bind 127.0.0.1 -::1\nmaxmemory-policy allkeys-lru\nclient-output-buffer-limit replica 256mb 64mb 60\nreplicaof 127.0.0.1 6379\nrename-command FLUSHALL ""\n' > "$seeds/config/lists-and-refused.conf"
printf 'hz 10\nhz abc\n' > "$seeds/config/bad-line.conf"

# RESP: control byte 0x00 (default limits), 0x40 (unauthenticated limits), 0x80 (tiny
# proto-max-bulk-len).
resp() { printf "$2" > "$seeds/resp/$1"; }
resp ping-pipeline '\000*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n'
resp empty-and-null '\000*0\r\n*-1\r\n*1\r\n$0\r\n\r\n'
resp mixed-inline '\000PING\r\n*1\r\n$4\r\nPING\r\nECHO hi\n'
resp unauth-many-args '\100*11\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n'
resp unauth-big-bulk '\100*2\r\n$4\r\nAUTH\r\n$20000\r\nxxxx'
resp tiny-max-bulk '\200*2\r\n$4\r\nECHO\r\n$17\r\n01234567890123456\r\n'
resp bad-headers '\000*2\r\n$x\r\n*abc\r\n$-1\r\n'
resp lone-cr '\000*1\r\r\n$4\r\r\nPING\r\n'
resp huge-count '\000*2147483647\r\n$1\r\na\r\n'
inline() { printf "$2" > "$seeds/inline/$1"; }
inline simple '\000PING\r\nSET k v\nGET k\r\n'
inline quoted '\000SET "a b" "c\\x41\\n\\"d"\r\nSET '"'"'it\\'"'"'s'"'"' x\r\n'
inline unbalanced '\000SET "abc\r\nPING\r\n'
inline bad-close '\000SET "a"b c\r\n'
inline blank-lines '\000\n\r\n   \r\nPING\n'
inline escapes '\000ECHO "\\t\\r\\b\\a\\xzz\\\\"\r\n'
inline ws '\000  ECHO\ta\x0cb  \r\n'
glob() { printf "$2" > "$seeds/glob/$1"; }
glob star '\000h*llo\000hello'
glob classes '\000h[^e]llo\000hallo'
glob range '\001[a-z]*[0-9]\000Key9'
glob escape '\000a\\*b\000a*b'
glob stars '\000a*a*a*a*a*a*a*a*b\000aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
glob unterminated '\000[abc\000b'
glob qmarks '\001??\\[?\000ab[c'

# List operation tapes (fuzz_targets/list.rs): byte 0 picks the node fill, then
# 3-byte operations (push, pop, insert, set, LREM, LTRIM, reads, LPOS).
mkdir -p "$seeds/list"
list() { printf "$2" > "$seeds/list/$1"; }
list mixed '\001\000\000\003\001\000\004\000\002\023\003\001\007\000\005\005\003\003\010\002\003'
list bigger-than-a-node '\005\000\000\001\001\000\021\000\000\003\003\001\021\002\000\020\006\001\002\007\000\011'

# Stream listpack nodes exactly as Redis lays them out (tombstones, SAMEFIELDS and
# explicit-field entries, integer and string values), and operation tapes.
python3 "$here/stream_seeds.py" "$port" "$seeds/stream"

redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
wait "$pid" 2>/dev/null || true
pid=""
du -sh "$seeds"
