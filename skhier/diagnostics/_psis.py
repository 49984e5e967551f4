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

__all__ = ["psis_loo", "psis_smooth"]

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


@numba.njit(cache=True, nogil=True, inline="always")
def _smooth_row(row, sign, n_tail, x, work, order, tail):
    """Put ``sign * row - max`` into ``x`` and Pareto smooth its tail in place.

    Only the tail is sorted: a selection finds the cut-off (the ``n - n_tail``-th smallest
    value), then the ``n_tail`` or fewer values above it are ordered by insertion into
    ``order``. Returns ``(k, tail_len, max)``; ``k`` is NaN for a row holding a NaN or
    only -inf (``x`` is then not filled).
    """
    n = row.shape[0]
    mx = -np.inf
    has_nan = False
    for j in range(n):
        v = sign * row[j]
        if v != v:
            has_nan = True
        elif v > mx:
            mx = v
    if has_nan or mx == -np.inf:
        return np.nan, 0, mx
    for j in range(n):
        x[j] = sign * row[j] - mx
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
    return k, tail_len, mx


@numba.njit(cache=True, nogil=True)
def _psis_range(lo, hi, tid, log_weights, n_tail, out, k_out):
    """Smooth rows ``lo`` to ``hi - 1`` of ``log_weights`` into ``out``; their k into ``k_out``.

    ``tid`` (the thread, from :func:`skhier._parallel.parallel_for`) is not used. A row with
    a NaN gets NaN weights and k (no estimate). Plain loops, no NumPy sorting: the kernel
    compiles in a fraction of the time.
    """
    n = log_weights.shape[1]
    x = np.empty(n)
    work = np.empty(n)
    order = np.empty(n_tail + 1, dtype=np.int64)
    tail = np.empty(n_tail + 1)
    for r in range(lo, hi):
        k, _, _ = _smooth_row(log_weights[r], 1.0, n_tail, x, work, order, tail)
        k_out[r] = k
        if k != k:
            for j in range(n):
                out[r, j] = np.nan
            continue
        shift = _logsumexp(x)  # normalize: x - logsumexp(x)
        for j in range(n):
            out[r, j] = x[j] - shift


@numba.njit(cache=True, nogil=True)
def _psis_loo_range(lo, hi, tid, log_lik, n_tail, lppd, loo, k_out):
    """PSIS-LOO of rows ``lo`` to ``hi - 1`` of ``log_lik``: lppd, elpd and k of each row.

    The log weights are ``-log_lik``. Outside the smoothed tail a draw's normalized weight
    times its likelihood is the same for every draw, ``exp(-max - shift)``, so only the tail
    needs its own terms in ``log sum_s w_s p_s``.
    """
    n = log_lik.shape[1]
    x = np.empty(n)
    work = np.empty(n)
    order = np.empty(n_tail + 1, dtype=np.int64)
    tail = np.empty(n_tail + 1)
    log_n = math.log(n)
    for r in range(lo, hi):
        row = log_lik[r]
        k, tail_len, mx = _smooth_row(row, -1.0, n_tail, x, work, order, tail)
        k_out[r] = k
        if k != k:
            lppd[r] = np.nan
            loo[r] = np.nan
            continue
        lppd[r] = _logsumexp(row) - log_n
        shift = _logsumexp(x)
        base = -mx - shift  # x_j + log_lik_j - shift of every draw outside the tail
        top = base
        for j in range(tail_len):
            i = order[j]
            top = max(top, x[i] - shift + row[i])
        acc = (n - tail_len) * math.exp(base - top)
        for j in range(tail_len):
            i = order[j]
            acc += math.exp(x[i] - shift + row[i] - top)
        loo[r] = top + math.log(acc)


def _tail_length(n, r_eff):
    """Draws in the fitted tail: ``ceil(min(n / 5, 3 sqrt(n / r_eff)))``, below ``n``."""
    return min(int(math.ceil(min(0.2 * n, 3.0 * math.sqrt(n / r_eff)))), n - 1)


def psis_loo(log_lik, r_eff: float = 1.0):
    """PSIS-LOO of every row of a log likelihood: its elpd, its lppd and its Pareto k.

    The importance log weights of leaving a row out are minus its log likelihood; they are
    smoothed as :func:`psis_smooth` does, without storing them.

    Parameters
    ----------
    log_lik : array-like of shape (n_rows, n_draws)
        ``log p(y_i | theta_s)``, one row per observation.
    r_eff : float, default=1.0
        Relative efficiency of the draws.

    Returns
    -------
    loo : ndarray of shape (n_rows,)
        ``log sum_s w_s p(y_i | theta_s)`` with the smoothed, normalized weights.
    lppd : ndarray of shape (n_rows,)
        ``log mean_s p(y_i | theta_s)``.
    k : ndarray of shape (n_rows,)
        Pareto k of each row (NaN, with NaN values, for a row holding a NaN).

    Examples
    --------
    >>> import numpy as np
    >>> ll = np.random.default_rng(0).normal(-1.0, 0.1, size=(2, 1000))
    >>> loo, lppd, k = psis_loo(ll)
    >>> bool(np.all(loo <= lppd)), bool(np.all(k < 0.5))
    (True, True)
    """
    ll = np.ascontiguousarray(log_lik, dtype=np.float64)
    if ll.ndim != 2 or ll.shape[1] < 2:
        raise ValueError(f"log_lik must be 2-D (rows, draws >= 2), got shape {ll.shape}.")
    loo = np.empty(ll.shape[0])
    lppd = np.empty(ll.shape[0])
    k = np.empty(ll.shape[0])
    parallel_for(_psis_loo_range, ll.shape[0], ll, _tail_length(ll.shape[1], r_eff), lppd, loo, k)
    return loo, lppd, k


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
    n_tail = _tail_length(n, r_eff)
    out = np.empty(lw.shape)
    k = np.empty(lw.shape[0])
    parallel_for(_psis_range, lw.shape[0], lw, n_tail, out, k)
    return out, k
