"""Compiled per-cell kernels of the count engine (numba): modes, curvatures, exact log likelihoods.

A cell is one level of the finest grouping factor (an sgRNA); its rows are the cell's samples
(sorted by cell, ``ptr`` delimits them). The rows' linear predictor is
``eta_i = offset_i + W_i . theta`` with one coefficient vector ``theta`` (``q`` columns) per
cell. Families (codes): 0 Poisson, 1 negative binomial with PyMC's ``alpha``
(``var = mu + mu**2 / alpha``), both with a log link. Per row, with ``mu = exp(eta)``:

- Poisson: ``l = y eta - mu - lgamma(y + 1)``, ``dl/deta = y - mu``, ``-d2l/deta2 = mu``;
- negative binomial: ``l = lgamma(y + a) - lgamma(a) - lgamma(y + 1) + a log(a / (a + mu))
  + y log(mu / (a + mu))``, ``dl/deta = a (y - mu) / (a + mu)``,
  ``-d2l/deta2 = a mu (y + a) / (a + mu)**2`` (positive for every count: each cell's log
  likelihood is concave in ``theta``).

Each kernel loops over a range of cells; the public functions run the ranges on skhier's
thread pool (:func:`skhier._parallel.parallel_for`, so they follow ``n_jobs``).
:mod:`skhier.engine.counts` calls them, and ``tests/engine/test_counts.py`` checks each
against a NumPy/SciPy reference.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from skhier._parallel import parallel_for

__all__ = ["POISSON", "NEGATIVE_BINOMIAL", "cell_modes", "cell_log_weights", "row_terms"]

POISSON = 0
NEGATIVE_BINOMIAL = 1

#: The linear predictor is clipped to this range before ``exp`` (counts beyond e**30 do not
#: occur; the clip keeps a wild Newton trial step finite).
_ETA_MAX = 30.0

_jit = numba.njit(cache=True, nogil=True)
_jit_inline = numba.njit(cache=True, nogil=True, inline="always")


@_jit_inline
def row_terms(family, alpha, y, eta):
    """Log likelihood of one row, its derivative and minus its second derivative in ``eta``."""
    eta = min(max(eta, -_ETA_MAX), _ETA_MAX)
    mu = math.exp(eta)
    if family == POISSON:
        return y * eta - mu - math.lgamma(y + 1.0), y - mu, mu
    am = alpha + mu
    log_am = math.log(am)
    ll = (
        math.lgamma(y + alpha)
        - math.lgamma(alpha)
        - math.lgamma(y + 1.0)
        + alpha * (math.log(alpha) - log_am)
        + y * (eta - log_am)
    )
    return ll, alpha * (y - mu) / am, alpha * mu * (y + alpha) / (am * am)


@_jit_inline
def _eta(off, W, i, th):
    """Linear predictor of row ``i`` at coefficients ``th``."""
    eta = off[i]
    for a in range(th.shape[0]):
        eta += W[i, a] * th[a]
    return eta


@_jit_inline
def _cell_terms(y, off, W, lo, hi, family, alpha, th, g, H):
    """Fill the gradient ``g`` and minus the Hessian ``H`` of one cell; return its log lik."""
    q = th.shape[0]
    for a in range(q):
        g[a] = 0.0
        for b in range(q):
            H[a, b] = 0.0
    ll = 0.0
    for i in range(lo, hi):
        li, r, w = row_terms(family, alpha, y[i], _eta(off, W, i, th))
        ll += li
        for a in range(q):
            g[a] += r * W[i, a]
            for b in range(a + 1):
                H[a, b] += w * W[i, a] * W[i, b]
    for a in range(q):
        for b in range(a):
            H[b, a] = H[a, b]
    return ll


@_jit_inline
def _cell_loglik(y, off, W, lo, hi, family, alpha, th):
    """Log likelihood of one cell at ``th``."""
    ll = 0.0
    for i in range(lo, hi):
        ll += row_terms(family, alpha, y[i], _eta(off, W, i, th))[0]
    return ll


@_jit_inline
def _cholesky_solve(A, b, L, x):
    """Solve ``A x = b`` for a small positive definite ``A``; return log det A (-inf if not PD)."""
    q = A.shape[0]
    logdet = 0.0
    for j in range(q):
        s = A[j, j]
        for k in range(j):
            s -= L[j, k] * L[j, k]
        if s <= 0.0:
            return -np.inf
        L[j, j] = math.sqrt(s)
        logdet += 2.0 * math.log(L[j, j])
        for i in range(j + 1, q):
            s = A[i, j]
            for k in range(j):
                s -= L[i, k] * L[j, k]
            L[i, j] = s / L[j, j]
    for i in range(q):  # forward
        s = b[i]
        for k in range(i):
            s -= L[i, k] * x[k]
        x[i] = s / L[i, i]
    for i in range(q - 1, -1, -1):  # backward
        s = x[i]
        for k in range(i + 1, q):
            s -= L[k, i] * x[k]
        x[i] = s / L[i, i]
    return logdet


@_jit
def _cell_modes_range(lo_cell, hi_cell, tid, y, off, W, ptr, family, alpha, m, d, max_iter, tol,
                      theta, g_out, H_out, ll_out, ld_out, it_out):  # fmt: skip
    """:func:`cell_modes` for cells ``lo_cell`` to ``hi_cell - 1``, written into the outputs.

    ``theta`` holds the starting values on entry and the modes on return; ``tid`` (the
    thread, from :func:`skhier._parallel.parallel_for`) is not used.
    """
    q = theta.shape[1]
    for c in range(lo_cell, hi_cell):
        lo, hi = ptr[c], ptr[c + 1]
        th = theta[c].copy()
        trial = np.empty(q)
        g = np.empty(q)
        H = np.empty((q, q))
        A = np.empty((q, q))
        L = np.zeros((q, q))
        b = np.empty(q)
        step = np.empty(q)
        it = 0
        converged = False
        while it < max_iter:
            it += 1
            ll = _cell_terms(y, off, W, lo, hi, family, alpha, th, g, H)
            obj = ll
            for a in range(q):
                dev = th[a] - m[c, a]
                obj -= 0.5 * d[c, a] * dev * dev
                b[a] = g[a] - d[c, a] * dev
                for k in range(q):
                    A[a, k] = H[a, k]
                A[a, a] += d[c, a] + 1e-10
            if _cholesky_solve(A, b, L, step) == -np.inf:
                break
            t = 1.0
            moved = 0.0
            while True:  # halve the step until the objective does not decrease
                for a in range(q):
                    trial[a] = th[a] + t * step[a]
                new = _cell_loglik(y, off, W, lo, hi, family, alpha, trial)
                for a in range(q):
                    dev = trial[a] - m[c, a]
                    new -= 0.5 * d[c, a] * dev * dev
                if new >= obj - 1e-12 * (1.0 + abs(obj)) or t < 1e-8:
                    break
                t *= 0.5
            for a in range(q):
                moved = max(moved, abs(trial[a] - th[a]))
                th[a] = trial[a]
            if moved < tol:
                converged = True
                break
        ll = _cell_terms(y, off, W, lo, hi, family, alpha, th, g, H)
        for a in range(q):
            for k in range(q):
                A[a, k] = H[a, k]
            A[a, a] += d[c, a]
            b[a] = 0.0
        ld_out[c] = _cholesky_solve(A, b, L, step)
        for a in range(q):
            theta[c, a] = th[a]
            g_out[c, a] = g[a]
            for k in range(q):
                H_out[c, a, k] = H[a, k]
        ll_out[c] = ll
        it_out[c] = it if converged else max_iter + 1


def cell_modes(y, off, W, ptr, family, alpha, m, d, theta0, max_iter, tol):
    """Mode of each cell's log likelihood plus a diagonal Gaussian prior, by damped Newton.

    Parameters
    ----------
    y, off : float64[:]
        Counts and offsets of the rows, sorted by cell.
    W : float64[:, :]
        Predictor columns of the rows (``q`` columns).
    ptr : int64[:]
        Rows of cell ``c`` are ``ptr[c]:ptr[c + 1]``.
    family : int
        0 Poisson, 1 negative binomial.
    alpha : float
        Negative binomial ``alpha`` (ignored for Poisson).
    m, d : float64[:, :]
        Prior mean and precision of each cell's coefficients, shape (cells, q); precision 0
        is a flat prior.
    theta0 : float64[:, :]
        Starting values, shape (cells, q).
    max_iter : int
        Newton iterations at most.
    tol : float
        Stop when no coefficient moves by more than this.

    Returns
    -------
    theta : float64[:, :]
        The modes.
    g : float64[:, :]
        Gradient of the log likelihood (without the prior) at the mode.
    H : float64[:, :, :]
        Minus the Hessian of the log likelihood (without the prior) at the mode.
    ll : float64[:]
        Log likelihood at the mode.
    logdet : float64[:]
        ``log det(H + diag(d))`` at the mode (the Laplace normalizer).
    n_iter : int64[:]
        Iterations used (``max_iter + 1`` when not converged).
    """
    n_cells, q = theta0.shape
    theta = np.array(theta0, dtype=np.float64, order="C")
    out = (
        np.empty((n_cells, q)),
        np.empty((n_cells, q, q)),
        np.empty(n_cells),
        np.empty(n_cells),
        np.empty(n_cells, dtype=np.int64),
    )
    args = (y, off, W, ptr, family, float(alpha), m, d, max_iter, tol, theta, *out)
    parallel_for(_cell_modes_range, n_cells, *args)
    return (theta, *out)


@_jit_inline
def _cell_loglik_kernel(y, off, W, lo, hi, family, alpha, th):
    """Log likelihood of one cell at ``th`` without the terms free of ``th``."""
    ll = 0.0
    for i in range(lo, hi):
        eta = min(max(_eta(off, W, i, th), -_ETA_MAX), _ETA_MAX)
        if family == POISSON:
            ll += y[i] * eta - math.exp(eta)
        else:
            ll += y[i] * eta - (y[i] + alpha) * math.log(alpha + math.exp(eta))
    return ll


@_jit
def _cell_log_weights_range(lo_cell, hi_cell, tid, y, off, W, ptr, family, alpha, theta_star, g,
                            H, draws, out):  # fmt: skip
    """:func:`cell_log_weights` for cells ``lo_cell`` to ``hi_cell - 1``, written into ``out``."""
    n_draws, _, q = draws.shape
    th = np.empty(q)
    dev = np.empty(q)
    for c in range(lo_cell, hi_cell):
        lo, hi = ptr[c], ptr[c + 1]
        base = _cell_loglik_kernel(y, off, W, lo, hi, family, alpha, theta_star[c])
        for s in range(n_draws):
            for a in range(q):
                th[a] = draws[s, c, a]
                dev[a] = th[a] - theta_star[c, a]
            quad = base
            for a in range(q):
                quad += g[c, a] * dev[a]
                for k in range(q):
                    quad -= 0.5 * dev[a] * H[c, a, k] * dev[k]
            out[c, s] = _cell_loglik_kernel(y, off, W, lo, hi, family, alpha, th) - quad


def cell_log_weights(y, off, W, ptr, family, alpha, theta_star, g, H, draws):
    """Log ratio of each cell's exact log likelihood to its quadratic approximation, per draw.

    The approximation is the second-order Taylor expansion at ``theta_star``:
    ``l(theta_star) + g (t - theta_star) - (t - theta_star)' H (t - theta_star) / 2``.

    Parameters
    ----------
    y, off, W, ptr, family, alpha
        As in :func:`cell_modes`.
    theta_star : float64[:, :]
        Expansion points, shape (cells, q).
    g : float64[:, :]
        Gradients there.
    H : float64[:, :, :]
        Minus the Hessians there.
    draws : float64[:, :, :]
        Draws of each cell's coefficients, shape (draws, cells, q).

    Returns
    -------
    float64[:, :]
        ``log p(y_c | t) - q_c(t)``, shape (cells, draws).

    Notes
    -----
    The terms of the log likelihood that do not depend on the coefficients (the log gamma
    functions) cancel between the exact and the expanded likelihood, so neither computes them:
    the expansion's constant ``l(theta_star)`` is the same reduced likelihood at
    ``theta_star``, and each draw costs an ``exp`` and a ``log`` per row instead of three more
    log gammas.
    """
    n_draws, n_cells, _ = draws.shape
    out = np.empty((n_cells, n_draws))
    args = (y, off, W, ptr, family, float(alpha), theta_star, g, H, draws, out)
    parallel_for(_cell_log_weights_range, n_cells, *args)
    return out
