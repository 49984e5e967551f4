"""Rank probabilities ``P(rank_i = r)`` of every group."""

from __future__ import annotations

import numpy as np
import pandas as pd

from skhier.ranking._inputs import (
    NUMPY_MAX_VALUES,
    _as_2d,
    _check_backend,
    _check_finite_numpy,
    _check_labels,
    _choose,
    _extract,
    _load_kernels,
    accepts_engine,
)
from skhier.ranking.draws import _np_tie_ranks, _numba_doubled_ranks


@accepts_engine
def rank_probabilities(
    data, var_name=None, dim=None, *, ascending=False, order="rank", backend="auto"
):
    """Posterior probability of each rank for each group: ``P[i, r] = P(rank_i = r)``.

    Parameters
    ----------
    data : arviz.InferenceData, xarray.Dataset, xarray.DataArray or array-like
        Posterior draws, as for :func:`rank_posterior`.
    var_name : str, default=None
        Variable of an InferenceData/Dataset; required when there are several.
    dim : str, default=None
        Group dimension of a DataArray.
    ascending : bool, default=False
        If False the largest effect ranks 1; if True the smallest does.
    order : {"rank", None}, default="rank"
        Row order: by expected rank (best first) or the input order.
    backend : {"auto", "numba", "numpy"}, default="auto"
        Implementation (same results).

    Returns
    -------
    P : pandas.DataFrame of shape (N, N)
        Rows are groups, columns the ranks ``1..N``; every row sums to 1. In a draw where groups
        tie, their mass is spread evenly over the positions they occupy (random tie-breaking), so
        every column also sums to 1 and ``sum_r r * P[i, r]`` is the expected rank.

    Raises
    ------
    ValueError
        For bad input (see :func:`rank_table`).

    See Also
    --------
    rank_table : Summaries of the rank distribution.

    Examples
    --------
    >>> import numpy as np
    >>> from skhier import rank_probabilities
    >>> draws = np.array([[3.0, 1.0, 2.0], [1.0, 3.0, 2.0], [3.0, 2.0, 1.0], [2.0, 2.0, 1.0]])
    >>> rank_probabilities(draws, order=None)
    rank      1      2     3
    0     0.625  0.125  0.25
    1     0.375  0.375  0.25
    2     0.000  0.500  0.50
    """
    arr, labels, name = _extract(data, var_name, dim)
    n_chains, n_draws, N = arr.shape
    S = n_chains * n_draws
    labels = _check_labels(labels, N)
    if order not in ("rank", None):
        raise ValueError(f"order must be 'rank' or None; got {order!r}.")
    backend = _choose(_check_backend(backend), N * S, NUMPY_MAX_VALUES)
    x2 = _as_2d(arr)
    P = np.zeros((N, N))
    if backend == "numpy":
        _check_finite_numpy(x2)
        start, end = _np_tie_ranks(x2, ascending)
        wsum = (start + end).sum(axis=0)
        a = N - end  # best position (1-based) of the tie group
        b = N - start
        gsize = b - a + 1
        for width in np.unique(gsize):
            sel = gsize == width
            for off in range(int(width)):
                cols = (a + off - 1)[sel]
                grp = np.broadcast_to(np.arange(N), (S, N))[sel]
                np.add.at(P, (grp, cols), 1.0 / (width * S))
    else:
        K = _load_kernels()
        V, wsum, ties = _numba_doubled_ranks(x2, ascending)
        if ties.any():
            A = np.empty((1, N, S), dtype=np.int32)
            K.rank_draws(x2, ascending, A, 2)
            K.rank_histogram(V, A[0], True, P, 1.0 / S)
        else:
            K.rank_histogram(V, np.zeros((1, 1), np.int32), False, P, 1.0 / S)
    expected = N - wsum / (2.0 * S)
    idx = np.argsort(expected, kind="stable") if order == "rank" else np.arange(N)
    return pd.DataFrame(
        P[idx],
        index=pd.Index(labels[idx], name=name),
        columns=pd.RangeIndex(1, N + 1, name="rank"),
    )
