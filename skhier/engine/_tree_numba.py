"""Compiled log density of the collapsed engine's scales, with its exact gradient (numba).

The same algebra as :mod:`skhier.engine.tree` (information-form messages integrated along
the tree of levels, finest first), written as one compiled function that also carries the
derivatives of every message with respect to each sampled scale (forward mode: one extra copy
of the messages per scale, a handful for a hierarchy). nutpie samples it directly
(:func:`nutpie.compiled_pyfunc.from_pyfunc`): the function is compiled once and cached on disk,
so a fit pays no per-model compilation (nutpie's compilation of the equivalent PyMC graph takes
about 9 s, longer than sampling the full 650,000-row screen).

Derivatives of one integration step (``S = diag(tau)`` on the level's columns ``c``,
``A = I + S P_cc S``, ``V = S A^-1 S``): ``P' = P - P_:c V P_c:``, ``h' = h - P_:c V h_c``,
``c' = c + h_c' V h_c / 2 - log|A| / 2``, and with ``dA = dS P_cc S + S dP_cc S + S P_cc dS``,
``dV = dS A^-1 S + S A^-1 dS - S A^-1 dA A^-1 S``, ``d log|A| = tr(A^-1 dA)``.

This module imports numba; :mod:`skhier.engine.compiled` imports it only when nutpie samples.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["log_marginal_grad", "log_density"]

LOG2PI = math.log(2.0 * math.pi)

_jit = numba.njit(cache=True, nogil=True)
# The per-node functions are inlined into their loops: called, they would count references on
# their scratch arrays at every node (atomic operations: 150 ns a node, against 10 inlined).
_jit_inline = numba.njit(cache=True, nogil=True, inline="always")


@_jit
def _prior_logp(code, a, b, t):
    """Log density of a positive scale ``t`` and its derivative in ``t``.

    Codes as in :mod:`skhier.engine.compiled`: 0 HalfNormal(sigma=a); 1 HalfStudentT(nu=a,
    sigma=b); 2 HalfCauchy(beta=a); 3 Exponential(lam=a); 4 Gamma(alpha=a, beta=b);
    5 InverseGamma(alpha=a, beta=b); 6 LogNormal(mu=a, sigma=b).
    """
    if code == 0:
        z = t / a
        return 0.5 * math.log(2.0 / math.pi) - math.log(a) - 0.5 * z * z, -z / a
    if code == 1:
        nu, s = a, b
        z = t / s
        lp = (
            math.log(2.0)
            + math.lgamma(0.5 * (nu + 1.0))
            - math.lgamma(0.5 * nu)
            - 0.5 * math.log(nu * math.pi)
            - math.log(s)
            - 0.5 * (nu + 1.0) * math.log1p(z * z / nu)
        )
        return lp, -(nu + 1.0) * z / (s * (nu + z * z))
    if code == 2:
        z = t / a
        lp = math.log(2.0 / math.pi) - math.log(a) - math.log1p(z * z)
        return lp, -2.0 * z / (a * (1.0 + z * z))
    if code == 3:
        return math.log(a) - a * t, -a
    if code == 4:
        lp = a * math.log(b) - math.lgamma(a) + (a - 1.0) * math.log(t) - b * t
        return lp, (a - 1.0) / t - b
    if code == 5:
        lp = a * math.log(b) - math.lgamma(a) - (a + 1.0) * math.log(t) - b / t
        return lp, -(a + 1.0) / t + b / (t * t)
    # 6: LogNormal
    lt = math.log(t)
    z = (lt - a) / b
    return -lt - math.log(b) - 0.5 * LOG2PI - 0.5 * z * z, (-1.0 - z / b) / t


@_jit
def _chol_inv(A, L, Ainv, k):
    """Cholesky factor ``L`` of ``A`` (k x k) and ``A^-1``; returns ``log|A|``."""
    logdet = 0.0
    for i in range(k):
        for j in range(i + 1):
            s = A[i, j]
            for m in range(j):
                s -= L[i, m] * L[j, m]
            if i == j:
                L[i, i] = math.sqrt(s)
                logdet += 2.0 * math.log(L[i, i])
            else:
                L[i, j] = s / L[j, j]
        for j in range(i + 1, k):
            L[i, j] = 0.0
    # A^-1 = L^-T L^-1, column by column.
    for col in range(k):
        # forward: L y = e_col
        for i in range(k):
            s = 1.0 if i == col else 0.0
            for m in range(i):
                s -= L[i, m] * Ainv[m, col]
            Ainv[i, col] = s / L[i, i]
        # backward: L' x = y
        for i in range(k - 1, -1, -1):
            s = Ainv[i, col]
            for m in range(i + 1, k):
                s -= L[m, i] * Ainv[m, col]
            Ainv[i, col] = s / L[i, i]
    return logdet


@_jit_inline
def _node(P, h, c, dP, dh, dc, i, cols, s, sidx, active, work):
    """Integrate the coefficients on ``cols`` (prior sd ``s``) out of node ``i``'s message.

    In place: ``P[i, i]`` (q, q), ``h[i, i]`` (q,), ``c[i]`` and their derivatives ``dP[:, i]``,
    ``dh[:, i]``, ``dc[:, i]`` become the message on the parent total (nodes are addressed by
    index, not through array views, which cost a reference count each). ``sidx[a]`` is the index
    of column ``a``'s sd among the derivatives (-1: fixed); derivatives ``p`` with
    ``active[p]`` False are zero and skipped. ``work`` holds scratch arrays.
    """
    q = h.shape[1]
    m = dc.shape[0]
    k = cols.shape[0]
    Pcc, A, L, Ainv, V, dPcc, dA, T, dV, hc, Vh, ds, dhc, Pv, dPv, nP, nh = work
    for a in range(k):
        hc[a] = h[i, cols[a]]
        for b in range(k):
            Pcc[a, b] = P[i, cols[a], cols[b]]
            A[a, b] = s[a] * Pcc[a, b] * s[b] + (1.0 if a == b else 0.0)
    logdet = _chol_inv(A, L, Ainv, k)
    for a in range(k):
        for b in range(k):
            V[a, b] = s[a] * Ainv[a, b] * s[b]
    for x in range(q):
        for b in range(k):
            acc = 0.0
            for a in range(k):
                acc += P[i, x, cols[a]] * V[a, b]
            Pv[x, b] = acc
    quad = 0.0
    for a in range(k):
        acc = 0.0
        for b in range(k):
            acc += V[a, b] * hc[b]
        Vh[a] = acc
        quad += hc[a] * acc
    # Derivatives first: they need the old messages.
    for p in range(m):
        if not active[p]:
            continue
        for a in range(k):
            ds[a] = 1.0 if sidx[a] == p else 0.0
            dhc[a] = dh[p, i, cols[a]]
            for b in range(k):
                dPcc[a, b] = dP[p, i, cols[a], cols[b]]
        for a in range(k):
            for b in range(k):
                dA[a, b] = ds[a] * Pcc[a, b] * s[b] + s[a] * dPcc[a, b] * s[b] + s[a] * Pcc[
                    a, b
                ] * ds[b]
        tr = 0.0
        for a in range(k):  # L <- Ainv dA (L is free after the inverse)
            for b in range(k):
                acc = 0.0
                for e in range(k):
                    acc += Ainv[a, e] * dA[e, b]
                L[a, b] = acc
            tr += L[a, a]
        for a in range(k):
            for b in range(k):
                acc = 0.0
                for e in range(k):
                    acc += L[a, e] * Ainv[e, b]
                T[a, b] = acc
        for a in range(k):
            for b in range(k):
                dV[a, b] = (ds[a] * s[b] + s[a] * ds[b]) * Ainv[a, b] - s[a] * T[a, b] * s[b]
        for x in range(q):
            for b in range(k):
                acc = 0.0
                for a in range(k):
                    acc += dP[p, i, x, cols[a]] * V[a, b] + P[i, x, cols[a]] * dV[a, b]
                dPv[x, b] = acc
        for x in range(q):  # dP' = dP - dPv P[i, cols, :] - Pv dP[cols, :]
            for y in range(q):
                acc = dP[p, i, x, y]
                for b in range(k):
                    acc -= dPv[x, b] * P[i, cols[b], y] + Pv[x, b] * dP[p, i, cols[b], y]
                nP[x, y] = acc
            acc = dh[p, i, x]
            for b in range(k):
                acc -= dPv[x, b] * hc[b] + Pv[x, b] * dhc[b]
            nh[x] = acc
        dquad = 0.0
        for a in range(k):
            acc = 0.0
            for b in range(k):
                acc += dV[a, b] * hc[b]
            dquad += 2.0 * Vh[a] * dhc[a] + hc[a] * acc
        dc[p, i] += 0.5 * dquad - 0.5 * tr
        for x in range(q):
            dh[p, i, x] = nh[x]
            for y in range(q):
                dP[p, i, x, y] = nP[x, y]
    for x in range(q):
        for y in range(q):
            acc = P[i, x, y]
            for b in range(k):
                acc -= Pv[x, b] * P[i, cols[b], y]
            nP[x, y] = acc
        acc = h[i, x]
        for b in range(k):
            acc -= Pv[x, b] * hc[b]
        nh[x] = acc
    for x in range(q):
        h[i, x] = nh[x]
        for y in range(q):
            P[i, x, y] = nP[x, y]
    c[i] += 0.5 * quad - 0.5 * logdet


@_jit_inline
def _node1(P, h, c, dP, dh, dc, i, col, s, sidx, active, work):
    """:func:`_node` for one column: scalar algebra (the common, fast case)."""
    q = h.shape[1]
    m = dc.shape[0]
    Pv, row, dPv, drow = work
    s2 = s * s
    pcc = P[i, col, col]
    A = 1.0 + s2 * pcc
    Ai = 1.0 / A
    V = s2 * Ai
    hc = h[i, col]
    for x in range(q):
        Pv[x] = P[i, x, col] * V
        row[x] = P[i, col, x]
    for p in range(m):
        if not active[p]:
            continue
        ds = 1.0 if sidx == p else 0.0
        dhc = dh[p, i, col]
        dA = 2.0 * ds * s * pcc + s2 * dP[p, i, col, col]
        dV = 2.0 * ds * s * Ai - s2 * Ai * Ai * dA
        for x in range(q):
            dPv[x] = dP[p, i, x, col] * V + P[i, x, col] * dV
            drow[x] = dP[p, i, col, x]
        for x in range(q):
            for y in range(q):
                dP[p, i, x, y] -= dPv[x] * row[y] + Pv[x] * drow[y]
            dh[p, i, x] -= dPv[x] * hc + Pv[x] * dhc
        dc[p, i] += V * hc * dhc + 0.5 * dV * hc * hc - 0.5 * Ai * dA
    for x in range(q):
        for y in range(q):
            P[i, x, y] -= Pv[x] * row[y]
        h[i, x] -= Pv[x] * hc
    c[i] += 0.5 * V * hc * hc - 0.5 * math.log(A)


@_jit
def _work(q, k):
    """Scratch arrays of :func:`_node` (k columns) and :func:`_node1`."""
    big = (
        np.empty((k, k)), np.empty((k, k)), np.empty((k, k)), np.empty((k, k)), np.empty((k, k)),
        np.empty((k, k)), np.empty((k, k)), np.empty((k, k)), np.empty((k, k)),
        np.empty(k), np.empty(k), np.empty(k), np.empty(k),
        np.empty((q, k)), np.empty((q, k)), np.empty((q, q)), np.empty(q),
    )
    small = (np.empty(q), np.empty(q), np.empty(q), np.empty(q))
    return big, small


@_jit
def _integrate_level(P, h, c, dP, dh, dc, cols, s, sidx, active, parent, out):
    """Integrate every node of a level and add its message to its parent's (in ``out``)."""
    n_nodes, q = h.shape
    m = dc.shape[0]
    k = cols.shape[0]
    big, small = _work(q, k)
    oP, oh, oc, odP, odh, odc = out
    for i in range(n_nodes):
        if k == 1:
            _node1(P, h, c, dP, dh, dc, i, cols[0], s[0], sidx[0], active, small)
        else:
            _node(P, h, c, dP, dh, dc, i, cols, s, sidx, active, big)
        g = parent[i]
        oc[g] += c[i]
        for x in range(q):
            oh[g, x] += h[i, x]
            for y in range(q):
                oP[g, x, y] += P[i, x, y]
        for p in range(m):
            if not active[p]:
                continue
            odc[p, g] += dc[p, i]
            for x in range(q):
                odh[p, g, x] += dh[p, i, x]
                for y in range(q):
                    odP[p, g, x, y] += dP[p, i, x, y]


@_jit
def _messages(n_nodes, q, m):
    return (
        np.zeros((n_nodes, q, q)),
        np.zeros((n_nodes, q)),
        np.zeros(n_nodes),
        np.zeros((m, n_nodes, q, q)),
        np.zeros((m, n_nodes, q)),
        np.zeros((m, n_nodes)),
    )


@_jit
def _messages_q1(n_nodes, m):
    """Zeroed one-column messages of ``n_nodes`` nodes and their derivatives in ``m`` scales."""
    return (
        np.zeros(n_nodes),
        np.zeros(n_nodes),
        np.zeros(n_nodes),
        np.zeros((m, n_nodes)),
        np.zeros((m, n_nodes)),
        np.zeros((m, n_nodes)),
    )


@_jit_inline
def _direction_q1(ds, s, s2t, pcc, hc, Ai, V, dpcc, dhc, dcc):
    """Return what one gradient direction of a node's message adds to its parent's (q = 1).

    The node's message is ``pcc``, ``hc`` (with ``Ai = 1 / (1 + s2t pcc)`` and ``V = s2t Ai``
    for the prior sd ``s`` being integrated, ``s2t = s**2``) and its derivatives in this
    direction are ``dpcc``, ``dhc``, ``dcc``; ``ds`` is 1 when the direction is ``s`` itself.
    Returns the increments of the parent's ``dP``, ``dh`` and ``dc``.
    """
    dA = 2.0 * ds * s * pcc + s2t * dpcc
    dV = 2.0 * ds * s * Ai - s2t * Ai * Ai * dA
    dPv = dpcc * V + pcc * dV
    return (
        dpcc - dPv * pcc - pcc * V * dpcc,
        dhc - dPv * hc - pcc * V * dhc,
        dcc + V * hc * dhc + 0.5 * dV * hc * hc - 0.5 * Ai * dA,
    )


@_jit
def _integrate_cells_q1(sigma_index, sigma, WW, Wy, n, yy, parent, n_parent, sidx, s, m):
    """Build the cells' messages and integrate them into their parents in one pass (q = 1).

    Cell ``i``'s parent is ``parent[i]`` (every cell's is 0 when ``parent`` is empty); ``s`` is
    the prior sd integrated at this level (0 sums the cells into the root: no group level).
    A cell's message depends on the data and ``sigma`` alone, so only two directions of the
    gradient are non-zero at this level: ``sigma`` (when sampled) and the level's own scale
    (when sampled), not every scale. No cell-level array is stored: the pass reads the
    statistics once. The constants ``c`` of the messages (and their derivatives) only ever add
    up on the way to the root, so the cells' share is summed once and given to parent 0; the
    log-determinants are summed as the log of a running product (one ``log`` per few hundred
    cells instead of one per cell).
    """
    s2 = sigma * sigma
    inv_s2 = 1.0 / s2
    inv_sigma = 1.0 / sigma
    c_norm = LOG2PI + math.log(s2)
    s2t = s * s
    oP, oh, oc, odP, odh, odc = _messages_q1(n_parent, m)
    c_sum = 0.0
    log_ai = 0.0
    prod = 1.0
    dc_s = 0.0
    dc_sigma = 0.0
    to_parents = parent.shape[0] > 0
    for i in range(Wy.shape[0]):
        g = parent[i] if to_parents else 0
        pcc = WW[i, 0, 0] * inv_s2
        hc = Wy[i, 0] * inv_s2
        Ai = 1.0 / (1.0 + s2t * pcc)
        V = s2t * Ai
        oP[g] += pcc * Ai
        oh[g] += hc * Ai
        c_sum += 0.5 * V * hc * hc - 0.5 * (n[i] * c_norm + yy[i] * inv_s2)
        prod *= Ai
        if prod < 1e-250:  # Ai is in (0, 1]: flush before the product underflows
            log_ai += math.log(prod)
            prod = 1.0
        if sidx >= 0:
            # the level's scale: _direction_q1(1, ...) with the cell's own derivatives 0,
            # simplified by hand (dA = 2 s pcc, dV = 2 s Ai^2); the hot loop of a count screen
            dV = 2.0 * s * Ai * Ai
            dPv = pcc * dV
            odP[sidx, g] -= dPv * pcc
            odh[sidx, g] -= dPv * hc
            dc_s += 0.5 * dV * hc * hc - s * pcc * Ai
        if sigma_index >= 0:  # sigma: the cell's own message moves
            dp, dh, dc = _direction_q1(
                0.0, s, s2t, pcc, hc, Ai, V, -2.0 * pcc * inv_sigma, -2.0 * hc * inv_sigma,
                (yy[i] * inv_s2 - n[i]) * inv_sigma,
            )  # fmt: skip
            odP[sigma_index, g] += dp
            odh[sigma_index, g] += dh
            dc_sigma += dc
    oc[0] += c_sum + 0.5 * (log_ai + math.log(prod))
    if sidx >= 0:
        odc[sidx, 0] += dc_s
    if sigma_index >= 0:
        odc[sigma_index, 0] += dc_sigma
    return oP, oh, oc, odP, odh, odc


@_jit
def _one_column(Wy, level_nodes, col_offsets):
    """Whether a model has one predictor column and one group coefficient per level."""
    return Wy.shape[1] == 1 and col_offsets[-1] == level_nodes.shape[0]


@_jit
def _log_marginal_grad_q1(
    theta, sigma_index, sigma_fixed, WW, Wy, n, yy, level_nodes, parents, parent_offsets,
    scale_index, scale_fixed, common_cols, mu0, s0,
):
    """:func:`log_marginal_grad` for one predictor column (q = 1, one coefficient per level).

    Every message is three numbers a node (``P``, ``h``, ``c``) and their derivatives, so the
    arrays are one-dimensional and the loops plain: about five times faster than the general
    kernel (the forum's ``y ~ 0 + x:(1|a/b)`` and intercept-only hierarchies are this case).
    """
    m = theta.shape[0]
    sigma = theta[sigma_index] if sigma_index >= 0 else sigma_fixed
    active = np.zeros(m, dtype=np.bool_)
    if sigma_index >= 0:
        active[sigma_index] = True
    n_levels = level_nodes.shape[0]
    # the finest level integrated straight from the cells' statistics (none: summed to the root)
    t = n_levels - 1
    sidx = scale_index[t] if t >= 0 else -1
    s = theta[sidx] if sidx >= 0 else (scale_fixed[t] if t >= 0 else 0.0)
    if sidx >= 0:
        active[sidx] = True
    lo = parent_offsets[t] if t > 0 else 0
    hi = parent_offsets[t + 1] if t > 0 else 0
    n_parent = level_nodes[t - 1] if t > 0 else 1
    P, h, c, dP, dh, dc = _integrate_cells_q1(
        sigma_index, sigma, WW, Wy, n, yy, parents[lo:hi], n_parent, sidx, s, m
    )
    for t in range(max(n_levels - 2, -1), -2, -1):
        # t >= 0: integrate level t's coefficient; t == -1: the common coefficient (if any).
        if t >= 0:
            sidx = scale_index[t]
            s = theta[sidx] if sidx >= 0 else scale_fixed[t]
            if sidx >= 0:
                active[sidx] = True
            n_parent = level_nodes[t - 1] if t > 0 else 1
        else:
            if common_cols.shape[0] == 0:
                break
            sidx = -1
            s = s0[0]
            n_parent = 1
            # shift to the prior mean: b = mu0 + d
            g0 = mu0[0]
            c[0] += -0.5 * P[0] * g0 * g0 + g0 * h[0]
            h[0] -= P[0] * g0
            for p in range(m):
                dc[p, 0] += -0.5 * dP[p, 0] * g0 * g0 + g0 * dh[p, 0]
                dh[p, 0] -= dP[p, 0] * g0
        s2t = s * s
        oP, oh, oc, odP, odh, odc = _messages_q1(n_parent, m)
        lo = parent_offsets[t] if t > 0 else 0
        for i in range(P.shape[0]):
            g = parents[lo + i] if t > 0 else 0
            pcc = P[i]
            hc = h[i]
            A = 1.0 + s2t * pcc
            Ai = 1.0 / A
            V = s2t * Ai
            for p in range(m):
                if not active[p]:
                    continue
                ds = 1.0 if sidx == p else 0.0
                a, b, e = _direction_q1(ds, s, s2t, pcc, hc, Ai, V, dP[p, i], dh[p, i], dc[p, i])
                odP[p, g] += a
                odh[p, g] += b
                odc[p, g] += e
            oP[g] += pcc - pcc * V * pcc
            oh[g] += hc - pcc * V * hc
            oc[g] += c[i] + 0.5 * V * hc * hc - 0.5 * math.log(A)
        P, h, c, dP, dh, dc = oP, oh, oc, odP, odh, odc
    grad = np.empty(m)
    for p in range(m):
        grad[p] = dc[p, 0]
    return c[0], grad


@_jit
def log_marginal_grad(
    theta,
    sigma_index,
    sigma_fixed,
    WW,
    Wy,
    n,
    yy,
    level_nodes,
    parents,
    parent_offsets,
    level_cols,
    col_offsets,
    scale_index,
    scale_fixed,
    common_cols,
    mu0,
    s0,
):
    """Log marginal likelihood of the data given the scales, and its gradient in the scales.

    Parameters
    ----------
    theta : ndarray (m,)
        Sampled scales (the residual sd and the group sds).
    sigma_index : int
        Index of the residual sd in ``theta`` (-1: fixed at ``sigma_fixed``).
    sigma_fixed : float
        The residual sd when not sampled.
    WW, Wy, n, yy : ndarray
        Per-cell sufficient statistics, shapes (C, q, q), (C, q), (C,), (C,).
    level_nodes : ndarray of int64 (L,)
        Nodes per level, coarse to fine (the finest level's nodes are the cells).
    parents, parent_offsets : ndarray of int64
        Parent node of every node of levels 1..L-1, concatenated; level ``t`` occupies
        ``parents[parent_offsets[t]:parent_offsets[t + 1]]``.
    level_cols, col_offsets : ndarray of int64
        Columns with a group coefficient at each level, concatenated likewise.
    scale_index, scale_fixed : ndarray
        For each entry of ``level_cols``: index of its sd in ``theta`` (-1: fixed at
        ``scale_fixed``).
    common_cols, mu0, s0 : ndarray
        Columns with a common coefficient and its Normal prior mean and sd.

    Returns
    -------
    value : float
        Log marginal likelihood.
    grad : ndarray (m,)
        Its derivative in each entry of ``theta``.
    """
    m = theta.shape[0]
    n_cells, q = Wy.shape
    if _one_column(Wy, level_nodes, col_offsets):
        return _log_marginal_grad_q1(
            theta, sigma_index, sigma_fixed, WW, Wy, n, yy, level_nodes, parents,
            parent_offsets, scale_index, scale_fixed, common_cols, mu0, s0,
        )
    sigma = theta[sigma_index] if sigma_index >= 0 else sigma_fixed
    s2 = sigma * sigma
    s3 = s2 * sigma
    # The cells' messages (the data given the finest coefficients).
    P, h, c, dP, dh, dc = _messages(n_cells, q, m)
    for i in range(n_cells):
        c[i] = -0.5 * (n[i] * (LOG2PI + math.log(s2)) + yy[i] / s2)
        for x in range(q):
            h[i, x] = Wy[i, x] / s2
            for y in range(q):
                P[i, x, y] = WW[i, x, y] / s2
        if sigma_index >= 0:
            dc[sigma_index, i] = -n[i] / sigma + yy[i] / s3
            for x in range(q):
                dh[sigma_index, i, x] = -2.0 * Wy[i, x] / s3
                for y in range(q):
                    dP[sigma_index, i, x, y] = -2.0 * WW[i, x, y] / s3
    active = np.zeros(m, dtype=np.bool_)
    if sigma_index >= 0:
        active[sigma_index] = True
    n_levels = level_nodes.shape[0]
    for t in range(n_levels - 1, -1, -1):
        lo, hi = col_offsets[t], col_offsets[t + 1]
        cols = level_cols[lo:hi]
        sidx = scale_index[lo:hi]
        s = np.empty(hi - lo)
        for a in range(hi - lo):
            if sidx[a] >= 0:
                s[a] = theta[sidx[a]]
                active[sidx[a]] = True
            else:
                s[a] = scale_fixed[lo + a]
        if t > 0:
            parent = parents[parent_offsets[t] : parent_offsets[t + 1]]
            n_parent = level_nodes[t - 1]
        else:  # the coarsest level's messages all go to the root
            parent = np.zeros(level_nodes[0], dtype=np.int64)
            n_parent = 1
        out = _messages(n_parent, q, m)
        _integrate_level(P, h, c, dP, dh, dc, cols, s, sidx, active, parent, out)
        P, h, c, dP, dh, dc = out
    if n_levels == 0:  # no group levels: sum the cells
        out = _messages(1, q, m)
        for i in range(n_cells):
            out[2][0] += c[i]
            out[1][0] += h[i]
            out[0][0] += P[i]
            for p in range(m):
                out[5][p, 0] += dc[p, i]
                out[4][p, 0] += dh[p, i]
                out[3][p, 0] += dP[p, i]
        P, h, c, dP, dh, dc = out
    k0 = common_cols.shape[0]
    if k0 > 0:
        g0 = np.zeros(q)
        for a in range(k0):
            g0[common_cols[a]] = mu0[a]
        # Shift to the prior mean (b = mu0 + d), then integrate d ~ N(0, diag(s0**2)).
        for p in range(-1, m):
            PP = P[0] if p < 0 else dP[p, 0]
            hh = h[0] if p < 0 else dh[p, 0]
            quad = 0.0
            lin = 0.0
            for x in range(q):
                acc = 0.0
                for y in range(q):
                    acc += PP[x, y] * g0[y]
                quad += g0[x] * acc
                lin += g0[x] * hh[x]
                hh[x] -= acc
            if p < 0:
                c[0] += -0.5 * quad + lin
            else:
                dc[p, 0] += -0.5 * quad + lin
        big, _ = _work(q, k0)
        _node(P, h, c, dP, dh, dc, 0, common_cols, s0, np.full(k0, -1, dtype=np.int64), active,
              big)
    grad = np.empty(m)
    for p in range(m):
        grad[p] = dc[p, 0]
    return c[0], grad


@_jit
def _with_priors(u, theta, value, grad, prior_code, prior_a, prior_b):
    """Add the scales' log priors and the log-transform's Jacobian to a log likelihood."""
    m = u.shape[0]
    out = np.empty(m)
    for p in range(m):
        lp, dlp = _prior_logp(prior_code[p], prior_a[p], prior_b[p], theta[p])
        value += lp + u[p]
        out[p] = (grad[p] + dlp) * theta[p] + 1.0
    return value, out


@_jit
def log_density(u, prior_code, prior_a, prior_b, *data):
    """Log posterior density of the log scales ``u`` (priors and Jacobian included) and gradient.

    ``theta = exp(u)``; the density is ``log p(y | theta) + sum log p(theta) + sum u``, as PyMC
    writes a positive variable on its log-transformed scale. ``prior_code``, ``prior_a`` and
    ``prior_b`` give each scale's prior (see :func:`_prior_logp`); ``data`` are the arguments of
    :func:`log_marginal_grad` after ``theta``.
    """
    theta = np.exp(u)
    value, grad = log_marginal_grad(theta, *data)
    return _with_priors(u, theta, value, grad, prior_code, prior_a, prior_b)


@_jit
def log_density_q1(u, prior_code, prior_a, prior_b, sigma_index, sigma_fixed, WW, Wy, n, yy,
                   level_nodes, parents, parent_offsets, level_cols, col_offsets, scale_index,
                   scale_fixed, common_cols, mu0, s0):  # fmt: skip
    """:func:`log_density` of a one-column model (the scalar kernel alone).

    Same arguments and values; it compiles only the one-column path (about a third of the
    general kernel's compile time), which every ``x:(1|a/b)`` model and count screen uses.
    """
    theta = np.exp(u)
    value, grad = _log_marginal_grad_q1(
        theta, sigma_index, sigma_fixed, WW, Wy, n, yy, level_nodes, parents, parent_offsets,
        scale_index, scale_fixed, common_cols, mu0, s0,
    )  # fmt: skip
    return _with_priors(u, theta, value, grad, prior_code, prior_a, prior_b)


def density_kernel(args):
    """Return the density kernel for these arguments.

    :func:`log_density_q1` for a one-column model, else :func:`log_density`.

    Parameters
    ----------
    args : tuple
        The arguments after ``u``, as :func:`skhier.engine.compiled.compiled_inputs` gives
        them.

    Returns
    -------
    numba dispatcher
        The kernel.
    """
    return log_density_q1 if _one_column(args[6], args[9], args[13]) else log_density
