"""A job queue built on streams and transactions, run against a server on
127.0.0.1:<port> (argv[1]): rq enqueues 200 jobs and a burst worker runs them all
(rq keeps its results in streams: XADD/XREVRANGE, with MULTI/EXEC and WATCH around
its bookkeeping). Exits non-zero with a message on the first failure; prints OK."""

import sys
import time

import redis
from rq import Queue, Worker

import rq_jobs


def main():
    port = int(sys.argv[1])
    r = redis.Redis(host="127.0.0.1", port=port)
    r.flushall()
    q = Queue("default", connection=r)
    jobs = [q.enqueue(rq_jobs.add, i, i) for i in range(200)]
    started = time.time()
    Worker([q], connection=r).work(burst=True)
    if time.time() - started > 120:
        print("FAILED: the burst took over 120 s")
        sys.exit(1)
    for i, job in enumerate(jobs):
        status = job.get_status(refresh=True)
        if status != "finished":
            print("FAILED: job %d is %s" % (i, status))
            sys.exit(1)
        if job.return_value() != 2 * i:
            print("FAILED: job %d returned %r" % (i, job.return_value()))
            sys.exit(1)
    if q.count != 0:
        print("FAILED: %d jobs left queued" % q.count)
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
