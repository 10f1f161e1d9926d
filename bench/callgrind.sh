#!/usr/bin/env bash
# User-space instructions per request, counted by valgrind's callgrind, for
# tandem-server and redis-server under the same redis-benchmark load.
#
# Instruction counts do not depend on what else the machine runs, so they compare
# two builds (or the two servers) where req/s on a shared machine cannot. They leave
# out the kernel, cache misses and waiting; read them with the run.py table.
# The count includes the server's start-up and shutdown (a few million
# instructions), which matters only for small -n.
#
# Usage: bench/callgrind.sh [-t set] [-P 16] [-n 200000] [-r 100000] [-x 'ARGS'] [BINARY ...]
#   -r: redis-benchmark's keyspace (random keys, and ZADD's random members and
#   scores, as the cpu part of bench/run.py sends them); 0 for one fixed key
#   -x: more server arguments, for every binary (e.g. '--maxmemory 1gb')
#   default binaries: $CARGO_TARGET_DIR/release/tandem-server (or target/release)
#   and /usr/bin/redis-server. Needs valgrind, redis-benchmark, redis-cli.
set -euo pipefail
test=set pipeline=16 n=200000 keyspace=100000 extra=
while getopts "t:P:n:r:x:" o; do
  case $o in
    t) test=$OPTARG ;;
    P) pipeline=$OPTARG ;;
    n) n=$OPTARG ;;
    r) keyspace=$OPTARG ;;
    x) extra=$OPTARG ;;
    *) sed -n '2,16p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
read -r -a extra_args <<< "$extra"
root=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -eq 0 ]; then
  set -- "${CARGO_TARGET_DIR:-$root/target}/release/tandem-server" /usr/bin/redis-server
fi
for tool in valgrind redis-benchmark redis-cli; do
  command -v $tool >/dev/null || { echo "callgrind.sh: $tool not found" >&2; exit 2; }
done

work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
for bin in "$@"; do
  out=$work/callgrind.out
  (cd "$work" && exec valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$bin" --bind 127.0.0.1 --port "$port" --save '' --appendonly no "${extra_args[@]}" >/dev/null 2>&1) &
  pid=$!
  up=
  for _ in $(seq 300); do
    if redis-cli -p "$port" ping >/dev/null 2>&1; then up=1; break; fi
    sleep 0.1
  done
  [ -n "$up" ] || { echo "callgrind.sh: $bin did not start" >&2; exit 1; }
  random=()
  if [ "$keyspace" -gt 0 ]; then random=(-r "$keyspace"); fi
  timeout 600 redis-benchmark -p "$port" -c 50 -P "$pipeline" -t "$test" -n "$n" "${random[@]}" -q >/dev/null 2>&1
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
  ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$out")
  printf '%-16s %-6s -P %-3s n=%-8s instructions=%-12s per request=%s\n' \
    "$(basename "$bin")" "$test" "$pipeline" "$n" "$ir" "$((ir / n))"
  rm -f "$out"
done
