"""Compiled log density of the collapsed engine's scales, with its exact gradient (numba).

The same algebra as :mod:`skhier.engine.tree` (information-form messages integrated along
the tree of levels, finest first), written as one compiled function that also carries the
derivatives of every message with respect to each sampled scale (forward mode: one extra copy
of the messages per scale, a handful for a hierarchy). nutpie samples it directly through a C
entry point (:func:`c_function`, reading the model's arrays through :func:`kernel_table`): no
Python and no GIL per gradient. The functions are compiled once and cached on disk, so a fit
pays no per-model compilation (nutpie's compilation of the equivalent PyMC graph takes about
9 s, longer than sampling the full 650,000-row screen).

For one predictor column (``y ~ 0 + x:(1|gene/sgRNA)``, a count screen's treatment effect) a
node's message is two numbers and the kernel is a few plain loops: the cells' pass keeps a
parent's running sums in registers while consecutive cells share it and turns the
log-determinants into the log of a running product (one ``log`` per few hundred cells); it runs
at the speed of a plain C loop doing the same arithmetic (``benchmarks/bench_full_fit.py``).

Derivatives of one integration step (``S = diag(tau)`` on the level's columns ``c``,
``A = I + S P_cc S``, ``V = S A^-1 S``): ``P' = P - P_:c V P_c:``, ``h' = h - P_:c V h_c``,
``c' = c + h_c' V h_c / 2 - log|A| / 2``, and with ``dA = dS P_cc S + S dP_cc S + S P_cc dS``,
``dV = dS A^-1 S + S A^-1 dS - S A^-1 dA A^-1 S``, ``d log|A| = tr(A^-1 dA)``.

This module imports numba; :mod:`skhier.engine.compiled` imports it only when nutpie samples.
"""

from __future__ import annotations

import functools
import math

import numba
import numba.extending
import numpy as np

__all__ = ["c_function", "kernel_table", "log_density", "log_marginal_grad"]

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


#: A running product of factors in (0, 1] is turned into its log before it can underflow.
_TINY = 1e-250


@_jit_inline
def _add_run(sums, g, a, b, c, d, e, f):
    """Add a run of cells' six sums to parent ``g``'s."""
    sums[0, g] += a
    sums[1, g] += b
    sums[2, g] += c
    sums[3, g] += d
    sums[4, g] += e
    sums[5, g] += f


@_jit
def _cells_q1(sigma, sigma_index, s, sidx, WW, Wy, n, yy, parent, n_parent, dc):
    """Build the cells' messages and integrate them into their parents in one pass (q = 1).

    Cell ``i``'s parent is ``parent[i]`` (every cell's is 0 when ``parent`` is empty); ``s`` is
    the prior sd integrated at this level (0 sums the cells into the root: no group level).
    Returns the parents' messages ``P``, ``h`` and their derivatives ``dP``, ``dh`` (m, parents),
    and the cells' share of the constant ``c``, whose derivatives are added to ``dc``.

    With ``p = WW / sigma**2``, ``h = Wy / sigma**2`` and ``a = 1 / (1 + s**2 p)``, a cell adds
    ``p a`` and ``h a`` to its parent's message; the derivatives in ``sigma`` and ``s`` (the
    only non-zero ones at this level) are ``-2 / sigma`` times ``p a**2``, ``h a**2`` and
    ``-2 s`` times ``(p a)**2``, ``p h a**2``; the constants (and their derivatives) only add up
    on the way to the root, so they are summed over all cells. The loop keeps the running sums
    of a parent in registers while consecutive cells share it (cells come sorted by parent) and
    sums the log-determinants as the log of a running product: no scatter per cell, one ``log``
    per few hundred cells.
    """
    m = dc.shape[0]
    n_cells = Wy.shape[0]
    s2 = sigma * sigma
    inv_s2 = 1.0 / s2
    s2t = s * s
    sums = np.zeros((6, n_parent))
    to_parents = parent.shape[0] > 0
    run = parent[0] if to_parents and n_cells > 0 else 0
    rP = rh = rP2 = rh2 = rPP = rPh = 0.0
    s_hY = s_YY = s_X = s_n = s_yy = 0.0
    prod = 1.0
    log_a = 0.0
    for i in range(n_cells):
        g = parent[i] if to_parents else 0
        if g != run:
            _add_run(sums, run, rP, rh, rP2, rh2, rPP, rPh)
            rP = rh = rP2 = rh2 = rPP = rPh = 0.0
            run = g
        p = WW[i, 0, 0] * inv_s2
        hc = Wy[i, 0] * inv_s2
        a = 1.0 / (1.0 + s2t * p)
        X = p * a
        Y = hc * a
        rP += X
        rh += Y
        rP2 += X * a
        rh2 += Y * a
        rPP += X * X
        rPh += X * Y
        s_hY += hc * Y
        s_YY += Y * Y
        s_X += X
        s_n += n[i]
        s_yy += yy[i]
        prod *= a
        if prod < _TINY:
            log_a += math.log(prod)
            prod = 1.0
    if n_cells > 0:
        _add_run(sums, run, rP, rh, rP2, rh2, rPP, rPh)
    P, h, P2, h2, PP, Ph = sums[0], sums[1], sums[2], sums[3], sums[4], sums[5]
    log_a += math.log(prod)
    dP = np.zeros((m, n_parent))
    dh = np.zeros((m, n_parent))
    if sidx >= 0:
        for g in range(n_parent):
            dP[sidx, g] = -2.0 * s * PP[g]
            dh[sidx, g] = -2.0 * s * Ph[g]
        dc[sidx] += s * (s_YY - s_X)
    if sigma_index >= 0:
        for g in range(n_parent):
            dP[sigma_index, g] = -2.0 / sigma * P2[g]
            dh[sigma_index, g] = -2.0 / sigma * h2[g]
        dc[sigma_index] += (s_yy * inv_s2 - s_n - s2t * (s_hY + s_YY - s_X)) / sigma
    c = 0.5 * s2t * s_hY - 0.5 * (s_n * (LOG2PI + math.log(s2)) + s_yy * inv_s2) + 0.5 * log_a
    return P, h, dP, dh, c


@_jit
def _level_q1(P, h, dP, dh, parent, n_parent, s, sidx, active, dc):
    """Integrate one level's coefficient (prior sd ``s``) out of its nodes' messages (q = 1).

    Node ``i`` (message ``P[i]``, ``h[i]``, derivatives ``dP[:, i]``, ``dh[:, i]``) goes to
    parent ``parent[i]`` (0 when ``parent`` is empty). ``sidx`` is the index of ``s`` among the
    derivatives (-1: fixed); directions with ``active`` False are zero and skipped. Returns the
    parents' messages and derivatives and the level's share of the constant ``c``, whose
    derivatives are added to ``dc``.

    With ``a = 1 / (1 + s**2 P)``: ``P' = P a``, ``h' = h a``,
    ``c' = s**2 a h**2 / 2 + log(a) / 2``; in a direction with ``dA = 2 s P [s moves] +
    s**2 dP``: ``dP' = a dP - a**2 P dA``, ``dh' = a dh - a**2 h dA`` and ``dc' = s a h**2 [s
    moves] - s**2 a**2 h**2 dA / 2 + s**2 a h dh - a dA / 2``.
    """
    m = dc.shape[0]
    s2 = s * s
    oP = np.zeros(n_parent)
    oh = np.zeros(n_parent)
    odP = np.zeros((m, n_parent))
    odh = np.zeros((m, n_parent))
    to_parents = parent.shape[0] > 0
    c = 0.0
    prod = 1.0
    log_a = 0.0
    for i in range(P.shape[0]):
        g = parent[i] if to_parents else 0
        p = P[i]
        hc = h[i]
        a = 1.0 / (1.0 + s2 * p)
        oP[g] += p * a
        oh[g] += hc * a
        c += 0.5 * s2 * a * hc * hc
        prod *= a
        if prod < _TINY:
            log_a += math.log(prod)
            prod = 1.0
        for q in range(m):
            if not active[q]:
                continue
            own = q == sidx
            dA = (2.0 * s * p if own else 0.0) + s2 * dP[q, i]
            odP[q, g] += a * dP[q, i] - a * a * p * dA
            odh[q, g] += a * dh[q, i] - a * a * hc * dA
            dc[q] += (
                (s * a * hc * hc if own else 0.0)
                - 0.5 * s2 * a * a * hc * hc * dA
                + s2 * a * hc * dh[q, i]
                - 0.5 * a * dA
            )
    return oP, oh, odP, odh, c + 0.5 * (log_a + math.log(prod))


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

    Every message is two numbers a node (``P``, ``h``) and their derivatives, and the
    constants add up at the root, so the arrays are one-dimensional and the loops plain: the
    forum's ``y ~ 0 + x:(1|a/b)`` and intercept-only hierarchies are this case.
    """
    m = theta.shape[0]
    sigma = theta[sigma_index] if sigma_index >= 0 else sigma_fixed
    active = np.zeros(m, dtype=np.bool_)
    if sigma_index >= 0:
        active[sigma_index] = True
    dc = np.zeros(m)
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
    P, h, dP, dh, c = _cells_q1(
        sigma, sigma_index, s, sidx, WW, Wy, n, yy, parents[lo:hi], n_parent, dc
    )
    for t in range(max(n_levels - 2, -1), -2, -1):
        # t >= 0: integrate level t's coefficient; t == -1: the common coefficient (if any).
        if t >= 0:
            sidx = scale_index[t]
            s = theta[sidx] if sidx >= 0 else scale_fixed[t]
            if sidx >= 0:
                active[sidx] = True
            n_parent = level_nodes[t - 1] if t > 0 else 1
            lo = parent_offsets[t] if t > 0 else 0
            hi = parent_offsets[t + 1] if t > 0 else 0
        else:
            if common_cols.shape[0] == 0:
                break
            sidx = -1
            s = s0[0]
            n_parent = 1
            lo = hi = 0
            # shift to the prior mean: b = mu0 + d
            g0 = mu0[0]
            c += -0.5 * P[0] * g0 * g0 + g0 * h[0]
            h[0] -= P[0] * g0
            for p in range(m):
                dc[p] += -0.5 * dP[p, 0] * g0 * g0 + g0 * dh[p, 0]
                dh[p, 0] -= dP[p, 0] * g0
        P, h, dP, dh, c_level = _level_q1(P, h, dP, dh, parents[lo:hi], n_parent, s, sidx, active,
                                          dc)  # fmt: skip
        c += c_level
    return c, dc


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


# --------------------------------------------------------------------------------------------
# C entry points for nutpie: the sampler calls the kernel directly, without Python or the GIL
# --------------------------------------------------------------------------------------------
#: The arrays of :func:`log_density` after ``u``, in order (``sigma_index`` and ``sigma_fixed``,
#: two scalars, come between ``prior_b`` and ``WW``).
TABLE_ARRAYS = (
    "prior_code", "prior_a", "prior_b", "WW", "Wy", "n", "yy", "level_nodes", "parents",
    "parent_offsets", "level_cols", "col_offsets", "scale_index", "scale_fixed", "common_cols",
    "mu0", "s0",
)  # fmt: skip
#: Table layout: n_cells, q, sigma_index, the address of sigma_fixed (one float64), then an
#: (address, length) pair for each of :data:`TABLE_ARRAYS`.
TABLE_LEN = 4 + 2 * len(TABLE_ARRAYS)


@numba.extending.intrinsic
def _void_pointer(typingctx, address):
    """Return the ``void *`` at an integer address."""
    from numba.core import cgutils, types

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen


@_jit_inline
def _f64(tab, k):
    return numba.carray(_void_pointer(tab[k]), (tab[k + 1],), np.float64)


@_jit_inline
def _i64(tab, k):
    return numba.carray(_void_pointer(tab[k]), (tab[k + 1],), np.int64)


@_jit_inline
def _unpack(table):
    """Return the arguments of :func:`log_density` after ``u`` from a :func:`kernel_table`."""
    tab = numba.carray(table, (TABLE_LEN,), np.int64)
    c, q = tab[0], tab[1]
    sigma_fixed = numba.carray(_void_pointer(tab[3]), (1,), np.float64)[0]
    WW = numba.carray(_void_pointer(tab[10]), (c, q, q), np.float64)
    Wy = numba.carray(_void_pointer(tab[12]), (c, q), np.float64)
    return (
        _i64(tab, 4), _f64(tab, 6), _f64(tab, 8), tab[2], sigma_fixed, WW, Wy, _f64(tab, 14),
        _f64(tab, 16), _i64(tab, 18), _i64(tab, 20), _i64(tab, 22), _i64(tab, 24), _i64(tab, 26),
        _i64(tab, 28), _f64(tab, 30), _i64(tab, 32), _f64(tab, 34), _f64(tab, 36),
    )  # fmt: skip


@_jit_inline
def _finish(value, grad, n_dim, out_, logp_):
    """Write nutpie's outputs; its return codes: 0 fine, 3 gradient or 4 value not finite."""
    out = numba.carray(out_, (n_dim,))
    for p in range(n_dim):
        out[p] = grad[p]
    numba.carray(logp_, (1,))[0] = value
    for p in range(n_dim):
        if not math.isfinite(grad[p]):
            return 3
    return 0 if math.isfinite(value) else 4


def _logp_q1_c(n_dim, x_, out_, logp_, table):
    value, grad = log_density_q1(numba.carray(x_, (n_dim,)), *_unpack(table))
    return _finish(value, grad, n_dim, out_, logp_)


def _logp_c(n_dim, x_, out_, logp_, table):
    value, grad = log_density(numba.carray(x_, (n_dim,)), *_unpack(table))
    return _finish(value, grad, n_dim, out_, logp_)


def _expand_c(n_dim, n_out, x_, out_, table):
    """Write the scales (``exp`` of the sampled logs), as nutpie stores a draw."""
    x = numba.carray(x_, (n_dim,))
    out = numba.carray(out_, (n_out,))
    for p in range(n_dim):
        out[p] = math.exp(x[p])
    return 0


_C_SOURCES = {"logp_q1": _logp_q1_c, "logp": _logp_c, "expand": _expand_c}


@functools.cache
def c_function(name):
    """Return a C entry point for nutpie (compiled on first use, cached on disk).

    ``"logp_q1"`` and ``"logp"``: ``int64 (uint64 n_dim, double *x, double *grad,
    double *logp, void *table)`` evaluate :func:`log_density_q1` / :func:`log_density` on the
    arrays a table points to (:func:`kernel_table`); ``"expand"``: ``int64 (uint64 n_dim,
    uint64 n_out, double *x, double *out, void *table)`` writes ``exp(x)``.

    Parameters
    ----------
    name : {"logp_q1", "logp", "expand"}
        Which entry point.

    Returns
    -------
    numba.core.ccallback.CFunc
        Its ``address`` is the C function pointer.

    Examples
    --------
    >>> import ctypes
    >>> f = c_function("expand")
    >>> call = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint64,
    ...                         ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)(f.address)
    >>> x, out = np.log([2.0, 3.0]), np.zeros(2)
    >>> call(2, 2, x.ctypes.data, out.ctypes.data, None), out.round(12).tolist()
    (0, [2.0, 3.0])
    """
    from numba import types

    dp = types.CPointer(types.float64)
    if name == "expand":
        sig = types.int64(types.uint64, types.uint64, dp, dp, types.voidptr)
    else:
        sig = types.int64(types.uint64, dp, dp, dp, types.voidptr)
    return numba.cfunc(sig, cache=True)(_C_SOURCES[name])


def kernel_table(args):
    """Return the table through which a C entry point reads the density's arrays.

    Parameters
    ----------
    args : tuple
        The arguments of :func:`log_density` after ``u``.

    Returns
    -------
    table : ndarray of int64, shape (TABLE_LEN,)
        Addresses and lengths (valid while ``keep`` lives).
    keep : tuple of ndarray
        The contiguous arrays the table points to.

    Examples
    --------
    >>> import pandas as pd
    >>> from skhier.engine.collapsed import build_tree
    >>> from skhier.engine.compiled import compiled_inputs
    >>> from skhier.plan import make_plan
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 3.5, 4.0], "x": [1.0, 2.0, 3.0, 4.0],
    ...                    "g": ["a", "a", "b", "b"]})
    >>> inputs = compiled_inputs(*(lambda p: (p, build_tree(p)))(make_plan(
    ...     {"formula": "y ~ 0 + x:(1|g)"}, df)))
    >>> table, keep = kernel_table(inputs.args)
    >>> table.shape == (TABLE_LEN,) and int(table[0]) == 2  # two cells
    True
    """
    code, a, b, sigma_index, sigma_fixed, *rest = args
    dtypes = [np.int64, np.float64, np.float64, np.float64, np.float64, np.float64, np.float64,
              np.int64, np.int64, np.int64, np.int64, np.int64, np.int64, np.float64, np.int64,
              np.float64, np.float64]  # fmt: skip
    arrays = [
        np.ascontiguousarray(x, dtype=t)
        for x, t in zip((code, a, b, *rest), dtypes, strict=True)
    ]
    fixed = np.array([float(sigma_fixed)])
    WW = arrays[3]
    table = np.zeros(TABLE_LEN, dtype=np.int64)
    table[:4] = WW.shape[0], WW.shape[1], int(sigma_index), fixed.ctypes.data
    for k, x in enumerate(arrays):
        table[4 + 2 * k] = x.ctypes.data
        table[5 + 2 * k] = x.size
    return table, (*arrays, fixed)
