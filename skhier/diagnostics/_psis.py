"""Pareto smoothed importance sampling for many rows at once (numba, parallel over rows).

The algorithm of Vehtari, Simpson, Gelman, Yao and Gabry (2024), as ArviZ's ``psislw`` computes it
for one row (the tail of the ``M = ceil(min(S / 5, 3 sqrt(S / r_eff)))`` largest weights
fitted by the generalized Pareto distribution with Zhang and Stephens' empirical Bayes
estimate and a weak prior on ``k``, the tail replaced by the fit's quantiles), run over rows
in parallel on skhier's thread pool: ArviZ loops over rows in Python (about 0.15 ms a row),
which dominates the count engine's check on a genome-wide screen (90,000 rows).
``tests/diagnostics/test_psis.py`` checks it against ArviZ row by row.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from skhier._parallel import parallel_for

__all__ = ["psis_smooth"]

_EPS = np.finfo(np.float64).eps
_LOG_TINY = math.log(np.finfo(np.float64).tiny)


@numba.njit(cache=True, nogil=True, inline="always")
def _logsumexp(a):
    """``log(sum(exp(a)))`` of a 1-D array of finite values, stably."""
    top = -np.inf
    for j in range(a.shape[0]):
        top = max(top, a[j])
    acc = 0.0
    for j in range(a.shape[0]):
        acc += math.exp(a[j] - top)
    return top + math.log(acc)


@numba.njit(cache=True, nogil=True)
def _gpdfit(ary):
    """Generalized Pareto fit (Zhang and Stephens) to sorted exceedances: (k, sigma)."""
    n = ary.shape[0]
    m_est = 30 + int(n**0.5)
    b = np.empty(m_est)
    q = ary[int(n / 4 + 0.5) - 1]
    for j in range(m_est):
        b[j] = (1.0 - math.sqrt(m_est / (j + 1 - 0.5))) / (3.0 * q) + 1.0 / ary[n - 1]
    len_scale = np.empty(m_est)
    for j in range(m_est):
        acc = 0.0
        for i in range(n):
            acc += math.log1p(-b[j] * ary[i])
        k = acc / n
        len_scale[j] = n * (math.log(-(b[j] / k)) - k - 1.0)
    # w_j = 1 / sum_i exp(L_i - L_j) = exp(L_j - logsumexp(L)): m_est exps, not m_est**2
    log_total = _logsumexp(len_scale)
    w = np.empty(m_est)
    for j in range(m_est):
        w[j] = math.exp(len_scale[j] - log_total)
    total = 0.0
    for j in range(m_est):
        if w[j] >= 10 * _EPS:
            total += w[j]
    b_post = 0.0
    for j in range(m_est):
        if w[j] >= 10 * _EPS:
            b_post += b[j] * w[j] / total
    acc = 0.0
    for i in range(n):
        acc += math.log1p(-b_post * ary[i])
    k_post = acc / n
    sigma = -k_post / b_post
    return (n * k_post + 10 * 0.5) / (n + 10), sigma


@numba.njit(cache=True, nogil=True)
def _gpinv(p, kappa, sigma):
    if sigma <= 0:
        return np.nan
    if abs(kappa) < _EPS:
        return -sigma * math.log1p(-p)
    return sigma * math.expm1(-kappa * math.log1p(-p)) / kappa


@numba.njit(cache=True, nogil=True)
def _select(a, k):
    """Return the ``k``-th smallest value of ``a`` (0-based), reordering ``a`` (quickselect)."""
    lo, hi = 0, a.shape[0] - 1
    while lo < hi:
        pivot = a[(lo + hi) // 2]
        i, j = lo, hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    return a[k]


@numba.njit(cache=True, nogil=True)
def _psis_range(lo, hi, tid, log_weights, n_tail, out, k_out):
    """Smooth rows ``lo`` to ``hi - 1`` of ``log_weights`` into ``out``; their k into ``k_out``.

    ``tid`` (the thread, from :func:`skhier._parallel.parallel_for`) is not used.

    Only the tail is sorted: a selection finds the cut-off (the ``n - n_tail``-th smallest
    value), then the ``n_tail`` or fewer values above it are ordered by insertion. A row with
    a NaN gets NaN weights and k (no estimate). Plain loops, no NumPy sorting: the kernel
    compiles in a fraction of the time.
    """
    n = log_weights.shape[1]
    x = np.empty(n)
    work = np.empty(n)
    order = np.empty(n_tail + 1, dtype=np.int64)
    tail = np.empty(n_tail + 1)
    for r in range(lo, hi):
        row = log_weights[r]
        mx = -np.inf
        has_nan = False
        for j in range(n):
            v = row[j]
            if v != v:
                has_nan = True
            elif v > mx:
                mx = v
        if has_nan or mx == -np.inf:
            for j in range(n):
                out[r, j] = np.nan
            k_out[r] = np.nan
            continue
        for j in range(n):
            x[j] = row[j] - mx
            work[j] = x[j]
        xcut = max(_select(work, n - n_tail - 1), _LOG_TINY)
        ecut = math.exp(xcut)
        tail_len = 0
        for j in range(n):  # the tail's indices, in increasing order of value
            if x[j] > xcut:
                pos = tail_len
                while pos > 0 and x[order[pos - 1]] > x[j]:
                    order[pos] = order[pos - 1]
                    pos -= 1
                order[pos] = j
                tail_len += 1
        k = np.inf
        if tail_len > 4:
            for j in range(tail_len):
                tail[j] = math.exp(x[order[j]]) - ecut
            k, sigma = _gpdfit(tail[:tail_len])
            if np.isfinite(k):
                for j in range(tail_len):
                    v = math.log(_gpinv((j + 0.5) / tail_len, k, sigma) + ecut)
                    x[order[j]] = min(v, 0.0)
        shift = _logsumexp(x)  # normalize: x - logsumexp(x)
        for j in range(n):
            out[r, j] = x[j] - shift
        k_out[r] = k


def psis_smooth(log_weights, r_eff: float = 1.0):
    """Pareto smooth the importance log weights of every row; return them and each row's k.

    Parameters
    ----------
    log_weights : array-like of shape (n_rows, n_draws)
        Log importance ratios, one row per quantity (an observation, a cell, a group).
    r_eff : float, default=1.0
        Relative efficiency of the draws (1 for independent draws).

    Returns
    -------
    smoothed : ndarray of shape (n_rows, n_draws)
        Smoothed log weights, normalized so each row's weights sum to 1.
    k : ndarray of shape (n_rows,)
        Pareto shape estimate of each row (inf when the tail has 4 draws or fewer; NaN, with
        NaN weights, for a row holding a NaN or only -inf). Below 0.5 the weights are
        reliable; 0.5-0.7 usable; above 0.7 the importance sampling fails.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> lw = np.vstack([rng.normal(0, 0.1, 1000), rng.standard_t(1, 1000) * 3])
    >>> smoothed, k = psis_smooth(lw)
    >>> bool(k[0] < 0.5 < k[1]), np.allclose(np.exp(smoothed).sum(axis=1), 1.0)
    (True, True)
    """
    lw = np.ascontiguousarray(log_weights, dtype=np.float64)
    if lw.ndim != 2:
        raise ValueError(f"log_weights must be 2-D (rows, draws), got shape {lw.shape}.")
    n = lw.shape[1]
    if n < 2:
        raise ValueError(f"psis_smooth needs at least 2 draws per row, got {n}.")
    n_tail = int(math.ceil(min(0.2 * n, 3.0 * math.sqrt(n / r_eff))))
    n_tail = min(n_tail, n - 1)
    out = np.empty(lw.shape)
    k = np.empty(lw.shape[0])
    parallel_for(_psis_range, lw.shape[0], lw, n_tail, out, k)
    return out, k
