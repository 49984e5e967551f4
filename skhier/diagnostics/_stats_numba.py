"""Compiled (numba) convergence statistics: every statistic of a parameter in one pass.

:func:`rank_stats_rows` computes, for each parameter (a row of split-chain draws), what
:func:`skhier.diagnostics.stats._stats_block` computes with NumPy passes over (parameters, draws)
arrays: it sorts the draws exactly (the radix sort of the ranking kernels,
:func:`skhier.ranking._kernels._sort_row`), takes the normal scores of the tie-averaged ranks and
their split R-hat, sorts the folded draws ``|x - median|`` by merging the two halves of the sorted
draws (linear time), takes their R-hat, and the ESS of the normal scores, of the two tail
indicators and of the raw draws. Each ESS follows ArviZ's ``_ess`` loop for loop (Geyer's initial
positive, then monotone sequence) with the autocovariances computed directly, two lags per pass,
as the loop asks for them; a parameter whose truncation lag exceeds ``max_lag`` is flagged not
done, and the caller computes it again with every lag (FFT). This module imports numba; it is
loaded only for posteriors large enough to need it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from skhier.ranking._kernels import _LOW, _jit, _sort_row

__all__ = ["rank_stats_rows"]

_RESOLUTION = np.finfo(np.float64).resolution
# Reassociation (and fused multiply-adds) let LLVM vectorize the sums; the results move by
# rounding only. No flag that assumes finite values: NaN and infinity are tested for.
_FAST = {"reassoc", "contract"}


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _rhat(y, m, n):
    """Classic R-hat of ``m`` split chains of ``n`` draws laid end to end in ``y``."""
    grand = 0.0
    within = 0.0
    means = np.empty(m)
    for j in range(m):
        s = 0.0
        for t in range(j * n, (j + 1) * n):
            s += y[t]
        mu = s / n
        means[j] = mu
        v = 0.0
        for t in range(j * n, (j + 1) * n):
            d = y[t] - mu
            v += d * d
        within += v / (n - 1)
        grand += mu
    within /= m
    grand /= m
    between = 0.0
    for j in range(m):
        d = means[j] - grand
        between += d * d
    between = n * between / (m - 1)
    if within == 0.0:
        return np.nan if between == 0.0 else np.inf
    return math.sqrt((between / within + n - 1) / n)


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _acov_pair(yc, m, n, lag):
    """Autocovariances at ``lag`` and ``lag + 1`` in one pass over the draws."""
    s0 = 0.0
    s1 = 0.0
    for j in range(m):
        a = yc[j * n : (j + 1) * n - lag - 1]
        b = yc[j * n + lag : (j + 1) * n - 1]
        c = yc[j * n + lag + 1 : (j + 1) * n]
        for t in range(a.shape[0]):
            s0 += a[t] * b[t]
            s1 += a[t] * c[t]
        s0 += yc[(j + 1) * n - lag - 1] * yc[(j + 1) * n - 1]
    return s0 / (n * m), s1 / (n * m)


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _ess(y, yc, rho, m, n, constant, max_lag):
    """ESS of ``m`` split chains of ``n`` draws in ``y``; returns ``(ess, done)``.

    ``yc`` and ``rho`` are work buffers (``m * n`` and ``n + 2`` long). ``constant`` marks a
    series ArviZ treats as constant (ESS = number of draws).
    """
    size = m * n
    if constant:
        return float(size), True
    grand = 0.0
    between = 0.0
    for j in range(m):
        s = 0.0
        for t in range(j * n, (j + 1) * n):
            s += y[t]
        mu = s / n
        rho[j] = mu  # the chain means, kept for a moment in the lag buffer
        grand += mu
        for t in range(j * n, (j + 1) * n):
            yc[t] = y[t] - mu
    grand /= m
    if m > 1:
        for j in range(m):
            d = rho[j] - grand
            between += d * d
        between /= m - 1
    acov0, acov1 = _acov_pair(yc, m, n, 0)
    mean_var = acov0 * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n + between
    if not (var_plus > 0.0) or not math.isfinite(var_plus):
        return np.nan, True
    for t in range(n):
        rho[t] = 0.0
    rho_even = 1.0
    rho[0] = rho_even
    rho_odd = 1.0 - (mean_var - acov1) / var_plus
    rho[1] = rho_odd
    t = 1
    while t < n - 3 and rho_even + rho_odd > 0.0:
        if t + 2 > max_lag:
            return np.nan, False
        a_even, a_odd = _acov_pair(yc, m, n, t + 1)
        rho_even = 1.0 - (mean_var - a_even) / var_plus
        rho_odd = 1.0 - (mean_var - a_odd) / var_plus
        if rho_even + rho_odd >= 0.0:
            rho[t + 1] = rho_even
            rho[t + 2] = rho_odd
        t += 2
    max_t = t - 2
    if rho_even > 0.0:
        rho[max_t + 1] = rho_even
    t = 1
    while t <= max_t - 2:
        if rho[t + 1] + rho[t + 2] > rho[t - 1] + rho[t]:
            rho[t + 1] = (rho[t - 1] + rho[t]) / 2.0
            rho[t + 2] = rho[t + 1]
        t += 2
    acc = 0.0
    for k in range(max_t + 1):
        acc += rho[k]
    tau = -rho[0] + 2.0 * acc + (rho[max_t + 1] if max_t + 1 < n else 0.0)
    floor = 1.0 / math.log10(size)
    if tau < floor:
        tau = floor
    return size / tau, True


@numba.njit(cache=True, nogil=True, inline="always")
def _scores(vals, order, grid, z):
    """Write the normal scores of the tie-averaged ranks of sorted ``vals`` to ``z[order]``."""
    size = vals.shape[0]
    c0 = 0
    while c0 < size:
        c1 = c0
        while c1 + 1 < size and vals[c1 + 1] == vals[c0]:
            c1 += 1
        g = grid[c0 + c1 + 2]  # twice the average 1-based rank of positions c0..c1
        for c in range(c0, c1 + 1):
            z[order[c]] = g
        c0 = c1 + 1


@_jit(nogil=True, cache=True)  # exact arithmetic: quantiles and folds must match ArviZ
def rank_stats_rows(flat, grid, q, q_at, q_weight, find_q, m, max_lag, out, done):  # fmt: skip
    """Bulk and tail ESS, R-hat, the raw ESS and the range of each row of split-chain draws.

    Parameters
    ----------
    flat : ndarray of shape (p, m * n)
        Each row: ``m`` split chains of ``n`` finite draws, end to end.
    grid : ndarray of shape (2 * m * n + 1,)
        Normal scores of the half-integer ranks ``k / 2``.
    q : ndarray of shape (p, 2)
        The 5% and 95% quantiles of each row's (unsplit) draws; written when ``find_q``.
    q_at : ndarray of int64, shape (2,)
        With ``find_q``: each quantile is ``(1 - w) * v[k - 1] + w * v[k]`` of the sorted draws
        ``v``, with ``k = q_at[i]`` and ``w = q_weight[i]``.
    q_weight : ndarray of shape (2,)
        See ``q_at``.
    find_q : bool
        Whether the rows hold every draw (an even number per chain), so that the quantiles
        come from their order; otherwise the caller gives ``q`` (and the range).
    m : int
        Split chains per row.
    max_lag : int
        Largest autocovariance lag computed directly.
    out : ndarray of shape (p, 5)
        Written: bulk ESS, tail ESS, R-hat (the larger of the bulk and the folded one; the
        caller sets NaN for a single chain), the ESS of the raw draws and the range.
    done : ndarray of bool, shape (p,)
        Written: False where some ESS needs more than ``max_lag`` lags (``out`` undefined).
    """
    p, size = flat.shape
    n = size // m
    vals = np.empty(size)
    z = np.empty(size)
    fvals = np.empty(size)
    forder = np.empty(size, dtype=np.int64)
    o = np.empty(size, dtype=np.int64)
    key_a = np.empty(size, dtype=np.uint64)
    key_b = np.empty(size, dtype=np.uint64)
    hist = np.empty((3, 2048), dtype=np.int32)
    yc = np.empty(size)
    rho = np.empty(max(n + 2, m))
    half = size // 2
    k_low = half + 1 if size % 2 else half
    for r in range(p):
        row = flat[r]
        srt, _ = _sort_row(row.view(np.uint64), False, key_a, key_b, hist)  # exact, ascending
        for c in range(size):
            o[c] = np.int64(srt[c] & _LOW)
            vals[c] = row[o[c]]
        spread = vals[size - 1] - vals[0]
        if find_q:
            for k in range(2):
                at = q_at[k]
                w = q_weight[k]
                q[r, k] = (1.0 - w) * vals[at - 1] + w * vals[at]
        ok = True

        # bulk: normal scores of the ranks
        _scores(vals, o, grid, z)
        rhat_bulk = _rhat(z, m, n)
        ess_bulk, d1 = _ess(z, yc, rho, m, n, not (spread > 0.0), max_lag)
        ok = ok and d1

        # folded: merge the lower half (reversed) and the upper half of the sorted draws
        if size % 2:
            med = vals[half]
        else:
            med = (vals[half - 1] + vals[half]) / 2.0
        i = k_low - 1  # next of the lower half, walking down
        j = k_low  # next of the upper half, walking up
        for c in range(size):  # branch-free: the two halves interleave unpredictably
            ii = i if i >= 0 else 0
            jj = j if j < size else size - 1
            a = med - vals[ii] if i >= 0 else np.inf
            b = vals[jj] - med if j < size else np.inf
            low_first = a <= b
            fvals[c] = a if low_first else b
            forder[c] = o[ii] if low_first else o[jj]
            step = 1 if low_first else 0
            i -= step
            j += 1 - step
        _scores(fvals, forder, grid, z)
        rhat_tail = _rhat(z, m, n)
        rhat = rhat_tail if rhat_tail > rhat_bulk else rhat_bulk

        # tail ESS: indicators of the 5% and 95% quantiles
        ess_tail = 0.0
        for k in range(2):
            qk = q[r, k]
            for c in range(size):
                z[c] = 1.0 if row[c] <= qk else 0.0
            mixed = vals[0] <= qk and vals[size - 1] > qk
            e, d2 = _ess(z, yc, rho, m, n, not mixed, max_lag)
            ok = ok and d2
            if k == 0 or e < ess_tail:  # NaN stays as NumPy's where(e < t, e, t) keeps it
                ess_tail = e
        # raw draws, for the MCSE of the mean
        ess_raw, d3 = _ess(row, yc, rho, m, n, spread < _RESOLUTION, max_lag)
        ok = ok and d3
        out[r, 0] = ess_bulk
        out[r, 1] = ess_tail
        out[r, 2] = rhat
        out[r, 3] = ess_raw
        out[r, 4] = spread
        done[r] = ok
