"""Exact coefficient draws of a one-column tree, compiled (numba).

The same algebra as :func:`skhier.engine.tree.draw_coefficients` when every level has one
column (``y ~ 0 + x:(1|gene/sgRNA)``, a count screen's treatment effect), written as one loop
per draw over the nodes instead of NumPy passes over (draws, nodes) arrays: the upward pass keeps
each node's message ``(P, h)`` before its integration, ``P / (1 + tau**2 P)`` and
``h / (1 + tau**2 P)`` go to the parent; the downward pass draws each node's deviation given its
parent's total, ``b = tau (tau (h - P g) / L + eps) / L`` with ``L = sqrt(1 + tau**2 P)``.
The normals come from the caller (NumPy, in the NumPy path's order), so both paths give the same
draws; the caller writes them where the draws go, and the kernel replaces them in place.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["draw_one_column"]

_SIGNATURE = (
    "void(float64[::1], float64[::1], int64[::1], int64[::1], float64[::1], float64[:, ::1], "
    "boolean, float64, float64, float64[::1], float64[::1], int64, int64, float64[::1])"
)


@numba.njit(_SIGNATURE, cache=True, nogil=True)
def draw_one_column(ww, wy, offsets, parents, s2, tau, has_common, mu0, s0, eps_common,
                    out_common, n_total, lo, out):  # fmt: skip
    """Draw the common coefficient and every node's deviation for each draw of the scales.

    Parameters
    ----------
    ww, wy : ndarray of shape (n_cells,)
        The cells' ``sum w**2`` and ``sum w y`` (the finest level's nodes are the cells).
    offsets : ndarray of shape (n_levels + 1,)
        Where each level's nodes start in the node arrays, coarse to fine.
    parents : ndarray of shape (n_nodes,)
        Each node's parent, as a position within the previous level (ignored on the first).
    s2 : ndarray of shape (m,)
        Residual variance of each of this chunk's ``m`` draws.
    tau : ndarray of shape (n_levels, m)
        Each level's scale per draw.
    has_common : bool
        Whether the column has a common coefficient, with prior ``N(mu0, s0**2)``.
    mu0, s0 : float
        That prior.
    eps_common : ndarray of shape (m,)
        Standard normals of the common coefficient.
    out_common : ndarray of shape (m,)
        Written: the common coefficient (untouched without one).
    n_total, lo : int
        Draws in all, and this chunk's first.
    out : ndarray of shape (n_total * n_nodes,)
        Every level's (n_total, n_nodes_t) block, one after the other: on entry, rows
        ``lo:lo + m`` of each block hold standard normals; they are replaced, in place, by each
        node's deviation from its parent's total (the normals are read once, where they lie).
    """
    n_levels = offsets.shape[0] - 1
    n_nodes = offsets[n_levels]
    first_cell = offsets[n_levels - 1]
    P = np.empty(n_nodes)
    h = np.empty(n_nodes)
    total = np.empty(n_nodes)
    F = np.empty(n_nodes)
    for d in range(s2.shape[0]):
        inv_s2 = 1.0 / s2[d]
        for i in range(first_cell, n_nodes):
            P[i] = ww[i - first_cell] * inv_s2
            h[i] = wy[i - first_cell] * inv_s2
        P_root = 0.0
        h_root = 0.0
        for t in range(n_levels - 1, -1, -1):
            lo_t, hi_t = offsets[t], offsets[t + 1]
            t2 = tau[t, d] * tau[t, d]
            for i in range(lo_t, hi_t):  # no dependence between nodes: vectorized
                F[i] = 1.0 / (1.0 + t2 * P[i])
            if t > 0:
                up = offsets[t - 1]
                for i in range(up, lo_t):
                    P[i] = 0.0
                    h[i] = 0.0
                for i in range(lo_t, hi_t):
                    p = up + parents[i]
                    P[p] += P[i] * F[i]
                    h[p] += h[i] * F[i]
            else:
                for i in range(lo_t, hi_t):
                    P_root += P[i] * F[i]
                    h_root += h[i] * F[i]
        g = 0.0
        if has_common:
            L = math.sqrt(1.0 + s0 * s0 * P_root)
            g = mu0 + s0 * (s0 * (h_root - P_root * mu0) / L + eps_common[d]) / L
            out_common[d] = g
        for t in range(n_levels):
            lo_t, hi_t = offsets[t], offsets[t + 1]
            row = n_total * lo_t + (lo + d) * (hi_t - lo_t) - lo_t
            sd = tau[t, d]
            t2 = sd * sd
            up = offsets[t - 1] if t > 0 else 0
            for i in range(lo_t, hi_t):
                gp = total[up + parents[i]] if t > 0 else g
                # sd (sd (h - P gp) / L + eps) / L with L**2 = 1 + sd**2 P = 1 / F
                b = t2 * (h[i] - P[i] * gp) * F[i] + sd * out[row + i] * math.sqrt(F[i])
                out[row + i] = b
                total[i] = gp + b
