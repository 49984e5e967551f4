"""Tests for skhier._parallel: one rule for n_jobs, the shared pool, nested parallel steps."""

import threading

import numpy as np
import pytest

from skhier._parallel import (
    available_cores,
    n_threads,
    parallel_for,
    resolve_n_jobs,
    thread_limit,
)


def test_resolve_n_jobs():
    cores = available_cores()
    assert resolve_n_jobs(None) == resolve_n_jobs(-1) == cores
    assert resolve_n_jobs(3) == 3
    assert resolve_n_jobs(-cores - 5) == 1
    with pytest.raises(ValueError, match="n_jobs=0 is not valid"):
        resolve_n_jobs(0)
    with pytest.raises(TypeError, match="'two'"):
        resolve_n_jobs("two")
    with pytest.raises(TypeError, match="True"):
        resolve_n_jobs(True)


def test_thread_limit_nests_and_restores():
    outside = n_threads()
    with thread_limit(1):
        assert n_threads() == 1
        with thread_limit(2):
            assert n_threads() == 2
        assert n_threads() == 1
    assert n_threads() == outside


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_parallel_for_covers_every_item_once(threads):
    hits = np.zeros(1000, dtype=np.int64)
    tids = set()

    def work(lo, hi, tid, out):
        out[lo:hi] += 1
        tids.add(tid)

    parallel_for(work, hits.size, hits, threads=threads, batch=7)
    assert (hits == 1).all()
    assert tids <= set(range(threads))


def test_parallel_for_propagates_errors():
    def work(lo, hi, tid):
        if lo <= 50 < hi:
            raise RuntimeError("item 50")

    with pytest.raises(RuntimeError, match="item 50"):
        parallel_for(work, 100, threads=2, batch=10)


def test_nested_parallel_for_does_not_deadlock():
    """A parallel step inside a parallel step runs inline instead of waiting for the pool."""
    out = np.zeros((8, 50))

    def inner(lo, hi, tid, row):
        row[lo:hi] = np.arange(lo, hi)

    def outer(lo, hi, tid):
        for i in range(lo, hi):
            parallel_for(inner, out.shape[1], out[i], threads=2, batch=5)

    done = threading.Event()

    def main():
        parallel_for(outer, out.shape[0], threads=2, batch=1)
        done.set()

    threading.Thread(target=main, daemon=True).start()
    assert done.wait(30), "nested parallel_for deadlocked"
    assert (out == np.arange(50)).all()
