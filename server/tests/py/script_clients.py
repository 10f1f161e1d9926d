"""Real client libraries whose features are Lua scripts, run against a server on
127.0.0.1:<port> (argv[1]): redis-py's Lock, a token-bucket rate limiter written as
a Lua script, and the `limits` package's Redis storage with the moving-window
strategy. Exits non-zero with a message on the first failure; prints OK."""

import sys
import time

import redis
from redis.exceptions import LockError, LockNotOwnedError


def check(cond, what):
    if not cond:
        print("FAILED: " + what)
        sys.exit(1)


def redis_py_lock(r):
    r.delete("lock:a")
    lock = r.lock("lock:a", timeout=10)
    check(lock.acquire(blocking=False), "first acquire")
    check(lock.locked() and lock.owned(), "locked and owned after acquire")
    other = r.lock("lock:a", timeout=10)
    check(not other.acquire(blocking=False), "second holder refused")
    check(not other.owned(), "second holder does not own it")
    # extend adds to the remaining time; reacquire resets it to the timeout.
    check(lock.extend(20), "extend")
    ttl = r.pttl("lock:a")
    check(20000 < ttl <= 30000, "ttl after extend: %d" % ttl)
    check(lock.extend(5, replace_ttl=True), "extend replace_ttl")
    ttl = r.pttl("lock:a")
    check(0 < ttl <= 5000, "ttl after replace_ttl: %d" % ttl)
    check(lock.reacquire(), "reacquire")
    ttl = r.pttl("lock:a")
    check(5000 < ttl <= 10000, "ttl after reacquire: %d" % ttl)
    # Another token can neither release nor extend it.
    other.local.token = b"not-the-token"
    try:
        other.release()
        check(False, "release with a wrong token")
    except LockNotOwnedError:
        pass
    other.local.token = b"not-the-token"
    try:
        other.extend(5)
        check(False, "extend with a wrong token")
    except LockNotOwnedError:
        pass
    check(r.exists("lock:a") == 1, "lock survives foreign release")
    lock.release()
    check(r.exists("lock:a") == 0, "released")
    try:
        lock.release()
        check(False, "release of a released lock")
    except LockError:
        pass
    # Expiry frees it for the next holder.
    short = r.lock("lock:a", timeout=0.2)
    check(short.acquire(blocking=False), "short acquire")
    waiter = r.lock("lock:a", timeout=5, blocking_timeout=3)
    t0 = time.time()
    check(waiter.acquire(), "acquire after expiry")
    check(time.time() - t0 < 3, "waited for expiry only")
    waiter.release()
    # The context-manager form.
    with r.lock("lock:b", timeout=5):
        check(r.exists("lock:b") == 1, "held inside with")
    check(r.exists("lock:b") == 0, "released after with")


TOKEN_BUCKET = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])      -- tokens per second
local capacity = tonumber(ARGV[2])
local now = tonumber(ARGV[3])       -- milliseconds
local requested = tonumber(ARGV[4])
local state = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then
  tokens = capacity
  ts = now
end
local elapsed = math.max(0, now - ts)
tokens = math.min(capacity, tokens + elapsed * rate / 1000)
local allowed = 0
if tokens >= requested then
  tokens = tokens - requested
  allowed = 1
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', key, math.ceil(capacity / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""


def token_bucket(r):
    r.delete("bucket")
    bucket = r.register_script(TOKEN_BUCKET)
    now = 1_000_000
    # Capacity 5 at 1 token/s: five pass at once, the sixth is refused.
    results = [bucket(keys=["bucket"], args=[1, 5, now, 1])[0] for _ in range(6)]
    check(results == [1, 1, 1, 1, 1, 0], "burst: %r" % results)
    # 2.5 s later two tokens are back (and a half).
    later = [bucket(keys=["bucket"], args=[1, 5, now + 2500, 1])[0] for _ in range(3)]
    check(later == [1, 1, 0], "refill: %r" % later)
    allowed, left = bucket(keys=["bucket"], args=[1, 5, now + 2500, 1])
    check(allowed == 0 and left == b"0.5", "half token left: %r" % left)
    check(0 < r.pttl("bucket") <= 6000, "bucket expires")
    # EVALSHA after SCRIPT FLUSH: redis-py reloads the script (NOSCRIPT path).
    r.script_flush()
    check(bucket(keys=["bucket2"], args=[10, 1, now, 1])[0] == 1, "after flush")


def limits_moving_window(port):
    from limits import parse, storage, strategies

    store = storage.RedisStorage("redis://127.0.0.1:%d" % port)
    check(store.check(), "limits storage check")
    limiter = strategies.MovingWindowRateLimiter(store)
    item = parse("5/second")
    limiter.clear(item, "user1")
    hits = [limiter.hit(item, "user1") for _ in range(7)]
    check(hits == [True] * 5 + [False] * 2, "moving window hits: %r" % hits)
    check(not limiter.test(item, "user1"), "window full")
    stats = limiter.get_window_stats(item, "user1")
    check(stats.remaining == 0, "remaining: %r" % (stats,))
    check(limiter.hit(item, "user2"), "other key independent")
    time.sleep(1.1)
    check(limiter.test(item, "user1"), "window slides")
    check(limiter.hit(item, "user1", cost=2), "hit with cost")
    stats = limiter.get_window_stats(item, "user1")
    check(stats.remaining == 3, "remaining after cost 2: %r" % (stats,))
    # The fixed window strategy on the same storage.
    fixed = strategies.FixedWindowRateLimiter(store)
    per_min = parse("3/minute")
    fixed.clear(per_min, "f")
    check([fixed.hit(per_min, "f") for _ in range(4)] == [True, True, True, False], "fixed")


def main():
    port = int(sys.argv[1])
    r = redis.Redis(host="127.0.0.1", port=port)
    redis_py_lock(r)
    token_bucket(r)
    limits_moving_window(port)
    print("OK")


if __name__ == "__main__":
    main()
