"""Exact coefficient draws of a one-column tree, compiled (numba).

The same algebra as :func:`skhier.engine.tree.draw_coefficients` when every level has one
column (``y ~ 0 + x:(1|gene/sgRNA)``, a count screen's treatment effect), written as one loop
per draw over the nodes instead of NumPy passes over (draws, nodes) arrays: the upward pass keeps
each node's message ``(P, h)`` before its integration, ``P / (1 + tau**2 P)`` and
``h / (1 + tau**2 P)`` go to the parent; the downward pass draws each node's deviation given its
parent's total, ``b = tau (tau (h - P g) / L + eps) / L`` with ``L = sqrt(1 + tau**2 P)``.
The normals come from the caller (NumPy, in the NumPy path's order), so both paths give the same
draws.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["draw_one_column"]

_SIGNATURE = (
    "void(float64[::1], float64[::1], int64[::1], int64[::1], float64[::1], float64[:, ::1], "
    "boolean, float64, float64, float64[::1], float64[:, ::1], float64[::1], float64[:, ::1])"
)


@numba.njit(_SIGNATURE, cache=True, nogil=True)
def draw_one_column(ww, wy, offsets, parents, s2, tau, has_common, mu0, s0, eps_common, eps,
                    out_common, out):  # fmt: skip
    """Draw the common coefficient and every node's deviation for each draw of the scales.

    Parameters
    ----------
    ww, wy : ndarray of shape (n_cells,)
        The cells' ``sum w**2`` and ``sum w y`` (the finest level's nodes are the cells).
    offsets : ndarray of shape (n_levels + 1,)
        Where each level's nodes start in the node arrays, coarse to fine.
    parents : ndarray of shape (n_nodes,)
        Each node's parent, as a position within the previous level (ignored on the first).
    s2 : ndarray of shape (n_draws,)
        Residual variance per draw.
    tau : ndarray of shape (n_levels, n_draws)
        Each level's scale per draw.
    has_common : bool
        Whether the column has a common coefficient, with prior ``N(mu0, s0**2)``.
    mu0, s0 : float
        That prior.
    eps_common : ndarray of shape (n_draws,)
        Standard normals of the common coefficient.
    eps : ndarray of shape (n_draws, n_nodes)
        Standard normals of the nodes.
    out_common : ndarray of shape (n_draws,)
        Written: the common coefficient (untouched without one).
    out : ndarray of shape (n_draws, n_nodes)
        Written: every node's deviation from its parent's total.
    """
    n_levels = offsets.shape[0] - 1
    n_nodes = offsets[n_levels]
    first_cell = offsets[n_levels - 1]
    P = np.empty(n_nodes)
    h = np.empty(n_nodes)
    total = np.empty(n_nodes)
    for d in range(s2.shape[0]):
        inv_s2 = 1.0 / s2[d]
        for i in range(first_cell, n_nodes):
            P[i] = ww[i - first_cell] * inv_s2
            h[i] = wy[i - first_cell] * inv_s2
        P_root = 0.0
        h_root = 0.0
        for t in range(n_levels - 1, -1, -1):
            lo, hi = offsets[t], offsets[t + 1]
            t2 = tau[t, d] * tau[t, d]
            if t > 0:
                up = offsets[t - 1]
                for i in range(up, lo):
                    P[i] = 0.0
                    h[i] = 0.0
                for i in range(lo, hi):
                    f = 1.0 / (1.0 + t2 * P[i])
                    p = up + parents[i]
                    P[p] += P[i] * f
                    h[p] += h[i] * f
            else:
                for i in range(lo, hi):
                    f = 1.0 / (1.0 + t2 * P[i])
                    P_root += P[i] * f
                    h_root += h[i] * f
        g = 0.0
        if has_common:
            L = math.sqrt(1.0 + s0 * s0 * P_root)
            g = mu0 + s0 * (s0 * (h_root - P_root * mu0) / L + eps_common[d]) / L
            out_common[d] = g
        for t in range(n_levels):
            lo, hi = offsets[t], offsets[t + 1]
            sd = tau[t, d]
            up = offsets[t - 1] if t > 0 else 0
            for i in range(lo, hi):
                gp = total[up + parents[i]] if t > 0 else g
                L = math.sqrt(1.0 + sd * sd * P[i])
                b = sd * (sd * (h[i] - P[i] * gp) / L + eps[d, i]) / L
                out[d, i] = b
                total[i] = gp + b
