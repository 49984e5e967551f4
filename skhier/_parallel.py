"""Thread counts: one rule for ``n_jobs`` in every step, and the small thread pool the kernels use.

``n_jobs`` means the same everywhere in skhier: the chains run in parallel on at most that many
cores, and the coefficient draws, the diagnostics and the ranking kernels use that many threads.
``None`` and ``-1`` mean every core the process may run on, ``-2`` all but one, and a positive
number that many. In a task on a Dask worker, "every core" is the task's share instead (see
:func:`available_cores`): the worker runs as many tasks at once as it has threads.
:func:`thread_limit` sets the count for a block of work (the estimator wraps ``fit`` in it);
:func:`n_threads` is what every parallel step asks.

The pool hands out ranges of items from a shared counter (dynamic scheduling), so a step
rebalances when another process takes a core; numba kernels compiled with ``nogil=True`` run
on it without numba's own threading layer.
"""

from __future__ import annotations

import numbers
import os
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["available_cores", "resolve_n_jobs", "n_threads", "thread_limit", "parallel_for"]

_LIMIT: ContextVar[int | None] = ContextVar("skhier_threads", default=None)
_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()
# Set in the pool's threads while they run a batch: a parallel_for called from inside one runs
# inline, since waiting for the pool from its own threads would deadlock.
_IN_POOL = threading.local()


def _dask_task_threads() -> int | None:
    """Threads a task on a Dask worker may use, or None outside a Dask task.

    A Dask worker runs as many tasks at once as it has threads, and its nanny tells native
    thread pools how many threads each task gets through ``OMP_NUM_THREADS`` (1 by default,
    Dask's ``distributed.nanny.pre-spawn-environ`` setting). Without that variable (a worker
    without a nanny), each task gets one thread.
    """
    distributed = sys.modules.get("distributed")
    if distributed is None:  # never imported: not a Dask worker
        return None
    try:
        distributed.get_worker()
    except ValueError:  # not in a task running on a worker
        return None
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    except ValueError:
        return 1


def available_cores() -> int:
    """Return the number of cores this process may run on.

    In a task running on a Dask worker, the task's share: ``OMP_NUM_THREADS`` as the worker's
    nanny sets it (Dask's default is 1, since the worker runs one task per thread), at most the
    cores of the process. Several fits on one worker then do not compete for its cores; give
    an estimator a positive ``n_jobs`` to use more threads in a task.

    Returns
    -------
    int
        At least 1.

    Examples
    --------
    >>> available_cores() >= 1
    True
    """
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        cores = max(1, os.cpu_count() or 1)
    share = _dask_task_threads()
    return cores if share is None else min(cores, share)


def resolve_n_jobs(n_jobs) -> int:
    """Turn an ``n_jobs`` value into a number of threads or processes.

    Parameters
    ----------
    n_jobs : int or None
        None or -1: every core; ``-k``: all but ``k - 1`` cores (at least one); a positive
        integer: that many.

    Returns
    -------
    int
        At least 1.

    Raises
    ------
    TypeError
        If ``n_jobs`` is not an integer or None.
    ValueError
        If ``n_jobs`` is 0.

    Examples
    --------
    >>> resolve_n_jobs(1)
    1
    >>> resolve_n_jobs(None) == available_cores()
    True
    >>> resolve_n_jobs(0)
    Traceback (most recent call last):
    ...
    ValueError: n_jobs=0 is not valid; give a positive number of cores, -1 (or None) for every core, or -k for all but k - 1.
    """  # noqa: E501
    if n_jobs is None:
        return available_cores()
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral):
        raise TypeError(f"n_jobs must be an integer or None, got {n_jobs!r}.")
    n_jobs = int(n_jobs)
    if n_jobs == 0:
        raise ValueError(
            "n_jobs=0 is not valid; give a positive number of cores, -1 (or None) for every "
            "core, or -k for all but k - 1."
        )
    if n_jobs < 0:
        return max(1, available_cores() + 1 + n_jobs)
    return n_jobs


def n_threads() -> int:
    """Return the number of threads a parallel step may use now.

    Inside :func:`thread_limit`, its count; elsewhere every core.

    Returns
    -------
    int
        At least 1.

    Examples
    --------
    >>> with thread_limit(1):
    ...     n_threads()
    1
    """
    limit = _LIMIT.get()
    return available_cores() if limit is None else limit


@contextmanager
def thread_limit(n_jobs) -> Iterator[int]:
    """Limit every parallel step inside the block to ``n_jobs`` threads.

    Parameters
    ----------
    n_jobs : int or None
        As for :func:`resolve_n_jobs`.

    Yields
    ------
    int
        The resolved number of threads.

    Examples
    --------
    >>> with thread_limit(2) as n:
    ...     n == n_threads() == 2
    True
    """
    n = resolve_n_jobs(n_jobs)
    token = _LIMIT.set(n)
    try:
        yield n
    finally:
        _LIMIT.reset(token)


def _pool(size: int) -> ThreadPoolExecutor:
    global _POOL, _POOL_SIZE
    with _POOL_LOCK:
        if _POOL is None or _POOL_SIZE < size:
            _POOL = ThreadPoolExecutor(max_workers=size, thread_name_prefix="skhier")
            _POOL_SIZE = size
        return _POOL


def parallel_for(
    worker: Callable[..., None],
    n_items: int,
    *args,
    threads: int | None = None,
    batch: int | None = None,
) -> None:
    """Run ``worker(lo, hi, tid, *args)`` over ``range(n_items)`` in parallel.

    Items are handed out in batches from a shared counter; ``tid`` in ``0..threads-1``
    identifies the thread (for per-thread accumulators). Exceptions propagate. Called from inside
    a worker (a parallel step within a parallel step), it runs in the calling thread.

    Parameters
    ----------
    worker : callable
        ``worker(lo, hi, tid, *args)`` processes items ``lo`` to ``hi - 1``; it should release
        the GIL (a numba kernel with ``nogil=True``, or NumPy on large arrays).
    n_items : int
        Number of items.
    *args
        Passed to ``worker``.
    threads : int or None, default=None
        Threads to use; None asks :func:`n_threads`.
    batch : int or None, default=None
        Items per hand-out; None gives each thread about eight batches.

    Examples
    --------
    >>> import numpy as np
    >>> out = np.zeros(10)
    >>> def work(lo, hi, tid, out):
    ...     out[lo:hi] = np.arange(lo, hi)
    >>> parallel_for(work, 10, out, threads=2)
    >>> out.tolist() == list(range(10))
    True
    """
    threads = n_threads() if threads is None else threads
    threads = max(1, min(threads, n_items))
    if getattr(_IN_POOL, "active", False):
        threads = 1  # nested inside a pool thread: run here
    if batch is None:
        batch = max(1, -(-n_items // (8 * threads)))
    if threads == 1:
        if n_items > 0:
            worker(0, n_items, 0, *args)
        return
    lock = threading.Lock()
    state = [0]

    def run(tid):
        _IN_POOL.active = True
        try:
            while True:
                with lock:
                    lo = state[0]
                    state[0] = lo + batch
                if lo >= n_items:
                    return
                worker(lo, min(lo + batch, n_items), tid, *args)
        finally:
            _IN_POOL.active = False

    pool = _pool(threads)
    futures = [pool.submit(run, tid) for tid in range(threads)]
    for future in futures:
        future.result()
