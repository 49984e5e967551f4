"""Compiled row kernels of the predictions (numba): linear predictor, log density, logsumexp.

Every array is laid out (rows, draws), C-contiguous, so the inner loop runs over the draws of
one row with unit stride. Each kernel takes ``(lo, hi, tid, ...)`` and processes rows ``lo`` to
``hi - 1``; the functions below run them on skhier's thread pool
(:func:`skhier._parallel.parallel_for`, so they follow ``n_jobs``).
:mod:`skhier.predictive` calls them, and ``tests/test_predictive_numba.py`` checks each against
NumPy and SciPy.

Families (codes): 0 Gaussian (``par`` the residual variance per draw, plus a group variance
per row and draw where a group was not seen in fit), 1 Poisson, 2 negative binomial (``par``
PyMC's ``alpha`` per draw), the count families with a log link.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from skhier._parallel import parallel_for

__all__ = ["FAMILY_CODES", "eta_rows", "log_density_rows", "logsumexp_rows"]

#: Code of each family in the kernels.
FAMILY_CODES = {"gaussian": 0, "poisson": 1, "negativebinomial": 2}

_LOG_2PI = math.log(2.0 * math.pi)

_jit = numba.njit(cache=True, nogil=True)


@_jit
def _eta_block(lo, hi, tid, start, offset, W, common, common_cols, term_cols, codes, V, acc, out):
    """Rows ``start + lo : start + hi`` of the linear predictor into (or onto) ``out[lo:hi]``."""
    n_draws = out.shape[1]
    for j in range(lo, hi):
        i = start + j
        row = out[j]
        o = offset[i]
        if acc:
            for s in range(n_draws):
                row[s] += o
        else:
            for s in range(n_draws):
                row[s] = o
        for k in range(common_cols.shape[0]):
            w = W[i, common_cols[k]]
            c = common[k]
            for s in range(n_draws):
                row[s] += w * c[s]
        for t in range(term_cols.shape[0]):
            code = codes[t, i]
            if code >= 0:
                w = W[i, term_cols[t]]
                v = V[code]
                for s in range(n_draws):
                    row[s] += w * v[s]


def eta_rows(
    start, stop, offset, W, common, common_cols, term_cols, codes, V, *, out=None, accumulate=False
):
    """Linear predictor of rows ``start:stop`` per draw, shape (rows, draws).

    Parameters
    ----------
    start, stop : int
        The rows.
    offset : ndarray of shape (n_rows,)
        Offset of every row (zeros without one).
    W : ndarray of shape (n_rows, n_columns)
        Predictor matrix.
    common : ndarray of shape (n_common, n_draws)
        Draws of the common coefficients.
    common_cols : ndarray of int64, shape (n_common,)
        Their columns of ``W``.
    term_cols : ndarray of int64, shape (n_terms,)
        Column of ``W`` of each group term.
    codes : ndarray of int64, shape (n_terms, n_rows)
        Row of ``V`` holding each row's coefficient draws for each term, -1 for a group not
        seen in fit (it adds nothing here).
    V : ndarray of shape (n_levels, n_draws)
        Draws of every group coefficient, one row per level of every term (float64 or
        float32; the sums are float64).
    out : ndarray of shape (stop - start, n_draws) or None, default=None
        Where to write.
    accumulate : bool, default=False
        Add to ``out`` instead of overwriting it.

    Returns
    -------
    ndarray of shape (stop - start, n_draws)

    Examples
    --------
    >>> import numpy as np
    >>> W = np.array([[1.0, 2.0], [1.0, 3.0]])
    >>> common = np.array([[0.5, 1.0]])  # Intercept, two draws
    >>> V = np.array([[10.0, 20.0]])  # one level of a slope term on column 1
    >>> eta_rows(0, 2, np.zeros(2), W, common, np.array([0]), np.array([1]),
    ...          np.array([[0, -1]]), V).tolist()
    [[20.5, 41.0], [0.5, 1.0]]
    """
    n = stop - start
    if out is None:
        out = np.zeros((n, V.shape[1] if V.shape[0] else common.shape[1]))
    parallel_for(
        _eta_block, n, start, offset, W, common, common_cols, term_cols, codes, V, accumulate, out
    )
    return out


@_jit
def _log_density_range(lo, hi, tid, family, y, par, extra, inout):
    """Replace ``inout[i, s]`` (the linear predictor) by ``log p(y_i | draw s)``, rows lo:hi."""
    n_draws = inout.shape[1]
    has_extra = extra.shape[0] > 0
    for i in range(lo, hi):
        row = inout[i]
        yi = y[i]
        if family == 0:
            for s in range(n_draws):
                var = par[s] + (extra[i, s] if has_extra else 0.0)
                d = yi - row[s]
                row[s] = -0.5 * (_LOG_2PI + math.log(var) + d * d / var)
        elif family == 1:
            c = math.lgamma(yi + 1.0)
            for s in range(n_draws):
                eta = row[s]
                row[s] = yi * eta - math.exp(eta) - c
        else:
            c = math.lgamma(yi + 1.0)
            for s in range(n_draws):
                a = par[s]
                eta = row[s]
                log_a = math.log(a)
                log_am = max(log_a, eta) + math.log1p(math.exp(-abs(log_a - eta)))
                row[s] = (
                    math.lgamma(yi + a)
                    - math.lgamma(a)
                    - c
                    + a * (log_a - log_am)
                    + yi * (eta - log_am)
                )


def log_density_rows(family, y, par, eta, extra=None):
    """Turn a (rows, draws) linear predictor into the rows' log densities, in place.

    Parameters
    ----------
    family : {"gaussian", "poisson", "negativebinomial"}
        The family.
    y : ndarray of shape (n_rows,)
        The rows' response.
    par : ndarray of shape (n_draws,)
        Gaussian: the residual variance; negative binomial: ``alpha``; Poisson: unused.
    eta : ndarray of shape (n_rows, n_draws)
        The linear predictor, C-contiguous; overwritten.
    extra : ndarray of shape (n_rows, n_draws) or None, default=None
        Gaussian only: variance added by groups not seen in fit.

    Returns
    -------
    ndarray of shape (n_rows, n_draws)
        ``eta``, now holding ``log p(y_i | draw s)``.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.stats import norm
    >>> ll = log_density_rows("gaussian", np.array([1.0]), np.array([4.0]), np.array([[0.5]]))
    >>> bool(np.isclose(ll[0, 0], norm.logpdf(1.0, 0.5, 2.0)))
    True
    """
    extra = np.empty((0, 0)) if extra is None else extra
    par = np.asarray(par, dtype=np.float64)
    parallel_for(
        _log_density_range, eta.shape[0], FAMILY_CODES[family], y, par, extra, eta
    )
    return eta


@_jit
def _logsumexp_range(lo, hi, tid, x, out):
    n = x.shape[1]
    for i in range(lo, hi):
        row = x[i]
        m = -np.inf
        for s in range(n):
            if row[s] > m:
                m = row[s]
        if math.isinf(m):  # every value -inf, or one +inf (a NaN propagates below)
            out[i] = m
            continue
        acc = 0.0
        for s in range(n):
            acc += math.exp(row[s] - m)
        out[i] = m + math.log(acc)


def logsumexp_rows(x):
    """``log(sum(exp(x[i])))`` of every row of a 2-D array, stably.

    Parameters
    ----------
    x : ndarray of shape (n_rows, n)
        C-contiguous values.

    Returns
    -------
    ndarray of shape (n_rows,)
        Each row's log-sum-exp (NaN for a row holding a NaN; -inf for a row of -inf).

    Examples
    --------
    >>> import numpy as np
    >>> logsumexp_rows(np.log(np.array([[1.0, 3.0], [2.0, 2.0]]))).round(6).tolist()
    [1.386294, 1.386294]
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty(x.shape[0])
    parallel_for(_logsumexp_range, x.shape[0], x, out)
    return out
