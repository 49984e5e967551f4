"""Per-draw ranks of the groups (average ranks, 1 = best)."""

from __future__ import annotations

import numpy as np

from skhier.ranking._inputs import (
    NUMPY_MAX_VALUES,
    _as_2d,
    _as_draws,
    _check_backend,
    _check_finite_numpy,
    _choose,
    _load_kernels,
    _raise_nonfinite,
    accepts_engine,
)


def _np_tie_ranks(x2, ascending):
    """numpy: per draw, ``start`` (#worse) and ``end`` (last worse-to-better position) (S, N)."""
    S, N = x2.shape
    key = -x2 if ascending else x2
    order = np.argsort(key, axis=1, kind="stable")
    sk = np.take_along_axis(key, order, axis=1)
    new = np.ones((S, N), dtype=bool)
    new[:, 1:] = sk[:, 1:] != sk[:, :-1]
    pos = np.broadcast_to(np.arange(N), (S, N))
    start_sorted = np.maximum.accumulate(np.where(new, pos, 0), axis=1)
    last = np.ones((S, N), dtype=bool)
    last[:, :-1] = new[:, 1:]
    end_sorted = np.minimum.accumulate(np.where(last, pos, N)[:, ::-1], axis=1)[:, ::-1]
    start = np.empty((S, N), dtype=np.int64)
    end = np.empty((S, N), dtype=np.int64)
    np.put_along_axis(start, order, start_sorted, axis=1)
    np.put_along_axis(end, order, end_sorted, axis=1)
    return start, end


def _numba_doubled_ranks(x2, ascending, mode=1):
    """numba: ``(V (N, S) int32, wsum (N,) int64, ties (S,))``; V = 2 x average rank.

    ``wsum[i]`` is the sum over draws of ``2 * (#worse + #tied-others / 2)`` (valid for mode 1).
    """
    K = _load_kernels()
    S, N = x2.shape
    out = np.empty((1, N, S), dtype=np.int32)
    _, ties, bad = K.rank_draws(x2, ascending, out, mode)
    if bad.any():
        _raise_nonfinite(int(bad.sum()), int((bad > 0).sum()))
    return out[0], 2 * N * S - K.row_stats(out, N, S)[0], ties


@accepts_engine
def draw_ranks(draws, *, ascending=False, backend="auto"):
    """Per-draw average ranks of the groups (1 = best; ties share the mean of their positions).

    Parameters
    ----------
    draws : array-like of shape (chains, draws, N) or (draws, N)
        Posterior draws of the effects of ``N`` groups.
    ascending : bool, default=False
        If False the largest effect ranks 1; if True the smallest does.
    backend : {"auto", "numba", "numpy"}, default="auto"
        Implementation; "auto" uses numpy for small inputs and the compiled radix-sort kernel
        otherwise. Both give identical results.

    Returns
    -------
    ranks : ndarray of float64, same shape as ``draws``
        ``rank_i = 1 + #{j better} + #{j != i tied} / 2`` in each draw.

    Raises
    ------
    ValueError
        If ``draws`` has the wrong number of dimensions or non-finite values.

    See Also
    --------
    rank_table : Summaries of these ranks per group.

    Examples
    --------
    >>> import numpy as np
    >>> from skhier.ranking import draw_ranks
    >>> draw_ranks(np.array([[0.5, 2.0, 0.5], [3.0, 1.0, 2.0]]))
    array([[2.5, 1. , 2.5],
           [1. , 3. , 2. ]])
    >>> draw_ranks(np.array([[0.5, 2.0, 0.5]]), ascending=True)
    array([[1.5, 3. , 1.5]])
    """
    arr = np.asarray(draws)
    shape = arr.shape
    arr = _as_draws(arr)
    x2 = _as_2d(arr)
    backend = _choose(_check_backend(backend), x2.size, NUMPY_MAX_VALUES)
    if backend == "numpy":
        _check_finite_numpy(x2)
        start, end = _np_tie_ranks(x2, ascending)
        ranks = x2.shape[1] - (start + end) / 2.0
    else:
        V, _, _ = _numba_doubled_ranks(x2, ascending)
        ranks = V.T / 2.0
    return np.ascontiguousarray(ranks).reshape(shape)


