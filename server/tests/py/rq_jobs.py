"""The job function rq's worker imports (a module of its own, as rq requires)."""


def add(a, b):
    return a + b
