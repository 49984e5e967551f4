"""Collapsed Gaussian algebra: group coefficients integrated out exactly along the tree of levels.

For a Gaussian likelihood with identity link, given the residual scale ``sigma`` and the group
scales ``tau``, every coefficient (common and group-specific) is jointly Gaussian. When the
grouping factors are nested (each factor's levels lie in one level of the previous factor), the
joint Gaussian can be integrated one level at a time, from the cells (the finest levels) up to
the root, in O(cells) work. NUTS then samples only the scales; afterwards the coefficients are drawn
from their exact conditional distribution given each draw of the scales (a downward pass). The
posterior is exactly that of the uncollapsed model.

Notation: ``W`` holds the ``q`` predictor columns; the coefficient vector of a cell is the sum of
the common coefficients and its ancestors' group coefficients. Information form is used
throughout: a message on a node's parent total ``g`` is ``c - g'Pg/2 + g'h``.

The algebra is written once, on plain arithmetic, and runs on PyTensor vectors (the model's
log density, one value per node) and on NumPy arrays (the exact draws, shape (draws, nodes)).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from skhier._parallel import n_threads as n_threads_now

__all__ = ["TreeLevel", "TreeModel", "log_marginal", "draw_coefficients"]


LOG2PI = float(np.log(2 * np.pi))
# Up to this many common columns, the root integral is written element-wise (smaller graphs);
# beyond, in matrix form (a graph of fixed size: the element-wise form grows as q**3).
_SCALAR_ROOT_MAX = 3


@dataclass
class TreeLevel:
    """One level of the tree: a grouping factor and its group-specific coefficients.

    Parameters
    ----------
    factor : str
        Factor name (``gene`` or ``gene:sgRNA``).
    n_nodes : int
        Number of levels of the factor.
    parent : ndarray of int64 or None
        Parent node of every node (None for the coarsest level).
    cols : list of int
        Columns of ``W`` with a coefficient at this level.
    terms : list of str
        Term name of each column (``H0|gene``).
    fixed_tau : list of float or None
        A fixed prior scale per column (no pooling), or None where the scale is sampled.

    Examples
    --------
    >>> TreeLevel("g", 3, None, [0], ["x|g"], [None]).n_nodes
    3
    """

    factor: str
    n_nodes: int
    parent: np.ndarray | None
    cols: list[int]
    terms: list[str]
    fixed_tau: list[float | None]


@dataclass
class TreeModel:
    """The collapsed model: columns, common prior and the levels from coarse to fine.

    Parameters
    ----------
    q : int
        Number of predictor columns.
    common_cols : list of int
        Columns with a common coefficient.
    mu0, s0 : ndarray
        Normal prior mean and sd of the common coefficients.
    levels : list of TreeLevel
        Coarse to fine; the finest level's nodes are the cells.
    stats : dict
        Per-cell sufficient statistics (``n``, ``WW``, ``Wy``, ``yy``).

    Examples
    --------
    >>> import numpy as np
    >>> t = TreeModel(1, [0], np.zeros(1), np.ones(1), [], {})
    >>> t.q
    1
    """

    q: int
    common_cols: list[int]
    mu0: np.ndarray
    s0: np.ndarray
    levels: list[TreeLevel]
    stats: dict
    columns: tuple[str, ...] = field(default_factory=tuple)


class _NumpyOps:
    """Arithmetic on arrays of shape (draws, nodes)."""

    log = staticmethod(np.log)
    sqrt = staticmethod(np.sqrt)

    def __init__(self):
        self._mats = {}

    @staticmethod
    def const(x):
        return x

    def segment_sum(self, x, parent, n_parent):
        import scipy.sparse as sp

        key = (id(parent), n_parent)
        if key not in self._mats:
            n = len(parent)
            self._mats[key] = sp.csr_matrix(
                (np.ones(n), (parent, np.arange(n))), shape=(n_parent, n)
            )
        x = np.atleast_2d(np.asarray(x))
        x = np.broadcast_to(x, (x.shape[0], len(parent)))
        return np.asarray(self._mats[key] @ x.T).T

    def total(self, x):
        return np.sum(x, axis=-1, keepdims=True)


def _in_model() -> bool:
    import pymc as pm

    try:
        pm.modelcontext(None)
    except TypeError:
        return False
    return True


class _TensorOps:
    """Arithmetic on PyTensor vectors (one value per node).

    Inside a PyMC model context, data (statistics, parent indices, level sizes) enter as named
    ``pm.Data`` shared variables, so the compiled log density depends on the model's structure,
    not on the data's values or sizes: PyTensor's compilation cache then serves every fit of the
    same structure (cross-validation folds, grid searches, refits).
    """

    def __init__(self):
        import pytensor.tensor as pt

        self.pt = pt
        self.log = pt.log
        self.sqrt = pt.sqrt
        self._shared = _in_model()
        self._count = 0
        self._index = {}

    def _data(self, x, dtype):
        x = np.asarray(x, dtype=dtype)
        if not self._shared:
            return self.pt.as_tensor_variable(x)
        import pymc as pm

        self._count += 1
        return pm.Data(f"_skhier_data_{self._count}", x)

    def const(self, x):
        return self._data(x, np.float64)

    def segment_sum(self, x, parent, n_parent):
        pt = self.pt
        key = id(parent)
        if key not in self._index:
            self._index[key] = (
                self._data(parent, np.int64),
                self._data(n_parent, np.int64),
                parent,
            )
        index, size, _ = self._index[key]
        x = pt.as_tensor_variable(x)
        if x.ndim == 0:
            x = pt.alloc(x, index.shape[0])
        return pt.inc_subtensor(pt.zeros((size,))[index], x)

    def total(self, x):
        return self.pt.sum(x)


def _chol(M, k, ops):
    """Cholesky factor of a k x k matrix given as nested lists of arrays."""
    L = [[None] * k for _ in range(k)]
    for i in range(k):
        for j in range(i + 1):
            s = M[i][j]
            for m in range(j):
                s = s - L[i][m] * L[j][m]
            L[i][j] = ops.sqrt(s) if i == j else s / L[j][j]
    return L


def _forward(L, b, k):
    """Solve L x = b for lower-triangular L."""
    x = [None] * k
    for i in range(k):
        s = b[i]
        for m in range(i):
            s = s - L[i][m] * x[m]
        x[i] = s / L[i][i]
    return x


def _backward(L, b, k):
    """Solve L' x = b for lower-triangular L."""
    x = [None] * k
    for i in reversed(range(k)):
        s = b[i]
        for m in range(i + 1, k):
            s = s - L[m][i] * x[m]
        x[i] = s / L[i][i]
    return x


def _integrate(P, h, c, cols, sd, ops):
    """Integrate coefficients ``b ~ N(0, diag(sd**2))`` on ``cols`` out of a message.

    Works in the scaled form ``I + S A P A' S`` (``S = diag(sd)``), whose eigenvalues are at least
    one, so a scale near zero loses no precision. Returns the message (P, h, c) on the parent total.
    """
    k = len(cols)
    q = len(h)
    L = _chol(_scaled(P, cols, sd), k, ops)
    w = _forward(L, [sd[a] * h[cols[a]] for a in range(k)], k)
    Z = [_forward(L, [sd[a] * P[cols[a]][j] for a in range(k)], k) for j in range(q)]  # Z[j][a]
    c = c + 0.5 * sum(wa * wa for wa in w)
    for a in range(k):
        c = c - ops.log(L[a][a])
    P_new = [[None] * q for _ in range(q)]
    for i in range(q):
        for j in range(i, q):
            v = P[i][j]
            for a in range(k):
                v = v - Z[i][a] * Z[j][a]
            P_new[i][j] = P_new[j][i] = v
    h_new = []
    for i in range(q):
        v = h[i]
        for a in range(k):
            v = v - Z[i][a] * w[a]
        h_new.append(v)
    return P_new, h_new, c


def _scaled(P, cols, sd):
    """``I + S A P A' S`` as nested lists."""
    k = len(cols)
    return [
        [sd[a] * sd[b] * P[cols[a]][cols[b]] + (1.0 if a == b else 0.0) for b in range(k)]
        for a in range(k)
    ]


def _draw(P, h, cols, sd, gamma, eps, ops):
    """Draw ``b`` given the parent total ``gamma`` from N(M^-1 A(h - P gamma), M^-1)."""
    k = len(cols)
    q = len(h)
    L = _chol(_scaled(P, cols, sd), k, ops)
    resid = [
        sd[a]
        * (h[cols[a]] - sum(P[cols[a]][j] * gamma[j] for j in range(q) if gamma[j] is not None))
        for a in range(k)
    ]
    w = _forward(L, resid, k)
    z = _backward(L, [w[a] + eps[a] for a in range(k)], k)
    return [sd[a] * z[a] for a in range(k)]


def _leaf_message(tree, sigma2, ops):
    st = tree.stats
    q = tree.q
    P = [[ops.const(st["WW"][:, i, j]) / sigma2 for j in range(q)] for i in range(q)]
    h = [ops.const(st["Wy"][:, i]) / sigma2 for i in range(q)]
    n, yy = ops.const(st["n"]), ops.const(st["yy"])
    c = -0.5 * (n * (LOG2PI + ops.log(sigma2)) + yy / sigma2)
    return P, h, c


def _aggregate(P, h, c, parent, n_parent, ops):
    q = len(h)
    P = [[ops.segment_sum(P[i][j], parent, n_parent) for j in range(q)] for i in range(q)]
    h = [ops.segment_sum(h[i], parent, n_parent) for i in range(q)]
    c = ops.segment_sum(c, parent, n_parent)
    return P, h, c


def _upward(tree, sigma2, taus, ops, store=None):
    """Integrate every group level out, finest first; return the root message."""
    P, h, c = _leaf_message(tree, sigma2, ops)
    n_levels = len(tree.levels)
    for t in reversed(range(n_levels)):
        level = tree.levels[t]
        if t < n_levels - 1:
            child = tree.levels[t + 1]
            P, h, c = _aggregate(P, h, c, child.parent, level.n_nodes, ops)
        if store is not None:
            store[t] = (P, h)
        P, h, c = _integrate(P, h, c, level.cols, taus[t], ops)
    q = tree.q
    P = [[ops.total(P[i][j]) for j in range(q)] for i in range(q)]
    h = [ops.total(h[i]) for i in range(q)]
    c = ops.total(c)
    return P, h, c


def _root_shift(tree, P, h, c):
    """Shift the root message to the prior mean of the common coefficients."""
    g0 = [0.0] * tree.q
    for a, col in enumerate(tree.common_cols):
        g0[col] = float(tree.mu0[a])
    if not any(g0):
        return h, c
    q = tree.q
    Pg = [sum(P[i][j] * g0[j] for j in range(q) if g0[j]) for i in range(q)]
    c = (
        c
        - 0.5 * sum(g0[i] * Pg[i] for i in range(q) if g0[i])
        + sum(g0[i] * h[i] for i in range(q) if g0[i])
    )
    h = [h[i] - Pg[i] for i in range(q)]
    return h, c


def log_marginal(tree: TreeModel, sigma, taus):
    """Log marginal likelihood of the data given the scales, as a PyTensor expression.

    Parameters
    ----------
    tree : TreeModel
        The collapsed model.
    sigma : TensorVariable
        Residual standard deviation.
    taus : list of list
        Per level, per column: the group scale (a TensorVariable, or a float when fixed).

    Returns
    -------
    TensorVariable
        Scalar log marginal likelihood, the coefficients integrated out.

    Examples
    --------
    >>> import numpy as np
    >>> from skhier.design import cell_statistics
    >>> stats = cell_statistics(np.ones((2, 1)), np.array([0.5, 1.5]), np.zeros(2, int), 1)
    >>> tree = TreeModel(1, [0], np.zeros(1), np.ones(1), [], stats)
    >>> round(float(log_marginal(tree, 1.0, []).eval()), 4)  # y ~ N(b, 1), b ~ N(0, 1)
    -2.9705
    """
    import pytensor.tensor as pt

    ops = _TensorOps()
    sigma2 = sigma * sigma
    if not tree.levels:
        # No group levels: the data's one message is already the root's, as a matrix.
        st = tree.stats
        Pm = ops.const(st["WW"].sum(axis=0)) / sigma2
        hv = ops.const(st["Wy"].sum(axis=0)) / sigma2
        n, yy = float(st["n"].sum()), ops.const(st["yy"].sum())
        c = -0.5 * (n * (LOG2PI + pt.log(sigma2)) + yy / sigma2)
        cols = list(tree.common_cols)
        if not cols:
            return c
        return _root_integral(tree, Pm[cols][:, cols], hv[cols], c)
    P, h, c = _upward(tree, sigma2, taus, ops)
    if tree.common_cols and len(tree.common_cols) <= _SCALAR_ROOT_MAX:
        # Few common columns: element-wise algebra gives PyTensor the smaller graph.
        h, c = _root_shift(tree, P, h, c)
        _, _, c = _integrate(P, h, c, tree.common_cols, [float(s) for s in tree.s0], ops)
    elif tree.common_cols:
        cols = tree.common_cols
        Pm = pt.stack([pt.stack([pt.as_tensor_variable(P[i][j]) for j in cols]) for i in cols])
        hv = pt.stack([pt.as_tensor_variable(h[i]) for i in cols])
        c = _root_integral(tree, Pm, hv, c)
    return c


def _root_integral(tree: TreeModel, Pm, hv, c):
    """Integrate the common coefficients out of the root message, in matrix form.

    The root message ``c - b'Pm b/2 + b'hv`` is a quadratic in the vector ``b`` of common
    coefficients; written with PyTensor's Cholesky and triangular solve, its graph has a fixed
    number of nodes whatever the number of common columns (the element-wise form of
    :func:`_integrate` grows as ``q**3``, and PyTensor's graph rewrites with it: 50 s for ten
    columns).
    """
    import pytensor.tensor as pt
    from pytensor.tensor.slinalg import cholesky, solve_triangular

    cols = tree.common_cols
    mu0 = pt.as_tensor_variable(np.asarray(tree.mu0, dtype=np.float64))
    s0 = pt.as_tensor_variable(np.asarray(tree.s0, dtype=np.float64))
    # Shift to the prior mean: b = mu0 + d, d ~ N(0, diag(s0**2)).
    Pmu = Pm @ mu0
    c = c - 0.5 * pt.dot(mu0, Pmu) + pt.dot(mu0, hv)
    hv = hv - Pmu
    # Scaled form I + S P S (eigenvalues >= 1), as in _integrate.
    A = pt.eye(len(cols)) + s0[:, None] * Pm * s0[None, :]
    L = cholesky(A, lower=True)
    w = solve_triangular(L, s0 * hv, lower=True)
    return c + 0.5 * pt.dot(w, w) - pt.sum(pt.log(pt.diag(L)))


def _one_column(tree: TreeModel) -> bool:
    """Whether every level has the tree's one column (the compiled draws apply)."""
    return tree.q == 1 and bool(tree.levels) and all(lv.cols == [0] for lv in tree.levels)


def draw_coefficients(
    tree: TreeModel, sigma, taus, rng, chunk: int = 256, n_threads=None, backend: str = "auto"
):
    """Draw every coefficient from its exact conditional given each draw of the scales.

    Parameters
    ----------
    tree : TreeModel
        The collapsed model.
    sigma : ndarray, shape (n_draws,)
        Residual scale draws.
    taus : list of list of ndarray or float
        Per level and column: scale draws, shape (n_draws,), or a fixed float.
    rng : numpy.random.Generator
        Random source.
    chunk : int, default=256
        Draws processed at once (bounds the memory).
    n_threads : int or None, default=None
        Threads working on chunks at once (None: :func:`skhier._parallel.n_threads`).
    backend : {"auto", "numba", "numpy"}, default="auto"
        ``"numba"`` runs a compiled loop over the nodes, for trees whose every level has the
        one column (``"auto"`` uses it there, NumPy elsewhere); both give the same draws.

    Returns
    -------
    common : ndarray, shape (n_draws, len(common_cols))
        Common coefficients.
    groups : list of ndarray
        Per level, shape (n_draws, n_nodes, len(cols)): group-specific coefficients.

    Examples
    --------
    >>> import numpy as np
    >>> from skhier.design import cell_statistics
    >>> stats = cell_statistics(np.ones((2, 1)), np.array([0.5, 1.5]), np.zeros(2, int), 1)
    >>> tree = TreeModel(1, [0], np.zeros(1), np.ones(1), [], stats)
    >>> common, _ = draw_coefficients(tree, np.ones(4000), [], np.random.default_rng(0))
    >>> round(float(common.mean()), 1)  # posterior mean 2/3
    0.7
    """
    if backend not in ("auto", "numba", "numpy"):
        raise ValueError(f"backend={backend!r} is not one of 'auto', 'numba', 'numpy'.")
    if backend == "numba" and not _one_column(tree):
        raise ValueError("backend='numba' needs one column on every level of the tree.")
    sigma = np.asarray(sigma, dtype=np.float64)
    n_draws = len(sigma)
    common = np.zeros((n_draws, len(tree.common_cols)))
    starts = list(range(0, n_draws, chunk))
    # One random stream per chunk: the draws do not depend on the number of threads.
    rngs = rng.spawn(len(starts))
    if backend != "numpy" and _one_column(tree):
        draw, groups = _one_column_drawer(tree, sigma, taus, rngs, starts, chunk, common)
        _run_chunks(draw, len(starts), n_threads)
        return common, groups
    groups = [np.zeros((n_draws, lv.n_nodes, len(lv.cols))) for lv in tree.levels]
    ops = _NumpyOps()
    for t in range(1, len(tree.levels)):  # build the sparse aggregation matrices once
        ops.segment_sum(
            np.zeros((1, tree.levels[t].n_nodes)), tree.levels[t].parent, tree.levels[t - 1].n_nodes
        )

    def work(i):
        start = starts[i]
        _draw_chunk(
            tree,
            sigma,
            taus,
            rngs[i],
            slice(start, min(start + chunk, n_draws)),
            ops,
            common,
            groups,
        )

    _run_chunks(work, len(starts), n_threads)
    return common, groups


def _run_chunks(work, n_chunks, n_threads):
    """Call ``work(i)`` for every chunk, on a pool of threads when there are several."""
    from concurrent.futures import ThreadPoolExecutor

    workers = max(1, min(n_threads or n_threads_now(), n_chunks))
    if workers == 1:
        for i in range(n_chunks):
            work(i)
    else:
        with ThreadPoolExecutor(workers) as pool:  # NumPy and the kernels release the GIL
            list(pool.map(work, range(n_chunks)))


def _one_column_drawer(tree, sigma, taus, rngs, starts, chunk, common):
    """Return ``work(i)`` (the compiled draws of chunk ``i``) and the arrays it fills.

    The arrays are each level's (n_draws, n_nodes, 1) draws, views of one buffer. Each chunk
    takes its normals from its own stream in the NumPy path's order (the common coefficient's,
    then each level's), so both paths give the same draws. They are drawn straight into the
    chunk's rows of the output and turned into coefficients in place.
    """
    from skhier.engine._draw_numba import draw_one_column

    n_draws = len(sigma)
    sizes = [lv.n_nodes for lv in tree.levels]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    parents = np.zeros(int(offsets[-1]), dtype=np.int64)
    for t, lv in enumerate(tree.levels):
        if lv.parent is not None and t > 0:
            parents[offsets[t] : offsets[t + 1]] = lv.parent
    tau = np.empty((len(sizes), n_draws))
    for t, level_taus in enumerate(taus):
        tau[t] = level_taus[0]  # a fixed float broadcasts
    ww = np.ascontiguousarray(tree.stats["WW"][:, 0, 0], dtype=np.float64)
    wy = np.ascontiguousarray(tree.stats["Wy"][:, 0], dtype=np.float64)
    has_common = bool(tree.common_cols)
    mu0 = float(tree.mu0[0]) if has_common else 0.0
    s0 = float(tree.s0[0]) if has_common else 1.0
    s2_all = sigma**2
    out = np.empty(n_draws * int(offsets[-1]))
    blocks = [
        out[n_draws * offsets[t] : n_draws * offsets[t + 1]].reshape(n_draws, sizes[t])
        for t in range(len(sizes))
    ]

    def work(i):
        lo = starts[i]
        hi = min(lo + chunk, n_draws)
        m = hi - lo
        rng = rngs[i]
        eps_common = rng.standard_normal(m) if has_common else np.zeros(m)
        for block in blocks:
            rng.standard_normal(out=block[lo:hi])
        out_common = np.zeros(m)
        draw_one_column(
            ww, wy, offsets, parents, np.ascontiguousarray(s2_all[lo:hi]),
            np.ascontiguousarray(tau[:, lo:hi]), has_common, mu0, s0, eps_common,
            out_common, n_draws, lo, out,
        )  # fmt: skip
        if has_common:
            common[lo:hi, 0] = out_common

    return work, [block[:, :, None] for block in blocks]


def _draw_chunk(tree, sigma, taus, rng, sl, ops, common, groups):
    """Upward then downward pass for the draws ``sl``, writing into ``common`` and ``groups``."""
    q = tree.q
    s2 = (sigma[sl] ** 2)[:, None]
    tau_chunk = [
        [t if isinstance(t, float) else np.asarray(t)[sl][:, None] for t in level_taus]
        for level_taus in taus
    ]
    store: dict = {}
    P, h, c = _upward(tree, s2, tau_chunk, ops, store=store)
    m = s2.shape[0]
    gamma = [None] * q
    if tree.common_cols:
        h, _ = _root_shift(tree, P, h, 0.0)
        k = len(tree.common_cols)
        eps = rng.standard_normal((k, m, 1))
        delta = _draw(P, h, tree.common_cols, [float(v) for v in tree.s0], [None] * q, eps, ops)
        for a, col in enumerate(tree.common_cols):
            beta = tree.mu0[a] + delta[a]
            common[sl, a] = beta[:, 0]
            gamma[col] = beta
    for t, level in enumerate(tree.levels):
        Pn, hn = store[t]
        if level.parent is not None:
            gamma = [None if g is None else g[:, level.parent] for g in gamma]
        eps = rng.standard_normal((len(level.cols), m, level.n_nodes))
        b = _draw(Pn, hn, level.cols, tau_chunk[t], gamma, eps, ops)
        gamma = [None if g is None else np.broadcast_to(g, (m, level.n_nodes)) for g in gamma]
        for a, col in enumerate(level.cols):
            groups[t][sl, :, a] = b[a]
            gamma[col] = b[a] if gamma[col] is None else gamma[col] + b[a]
