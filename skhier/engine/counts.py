"""The Laplace count engine: each cell's count likelihood made Gaussian, the hierarchy exact.

Count models (negative binomial, Poisson; log link) whose grouping factors are nested: a
pooled screen's ``count ~ 1 + offset(log_size) + (1|gene:sgRNA) + treated:(1|gene/sgRNA)``.
Every row's linear predictor is ``offset + W . theta_c``, where ``theta_c`` (one value per
column) is the total coefficient of the row's cell (its finest group: an sgRNA). So the
likelihood of a cell depends on ``theta_c`` alone, and the engine:

1. estimates the negative binomial ``alpha`` once (unless the user fixed it), by maximizing the
   Laplace approximation of the marginal likelihood with a weak prior on each cell
   (``sum_c l_c(mode) - log det(H_c + D) / 2``, the Cox-Reid adjusted profile likelihood);
2. replaces each cell's log likelihood by its second-order Taylor expansion at an expansion
   point near where the posterior puts the cell (the cell's mode under a prior fitted to the
   spread of all cells' estimates): a Gaussian pseudo-observation of ``theta_c`` with
   precision ``H_c``;
3. feeds those pseudo-observations to the exact collapsed hierarchy of
   :mod:`skhier.engine.collapsed` (``sigma = 1``): NUTS on the group scales only, every
   coefficient drawn from its exact conditional;
4. measures the approximation on the draws: for each cell the log ratio of its exact likelihood
   to the Gaussian one, and Pareto k of those importance ratios per cell and per ranked group
   (:class:`Approximation`). ``k < 0.5``: the approximate posterior is as good as exact there;
   ``0.5-0.7``: importance reweighting corrects it (the reweighted posterior means are
   reported); above 0.7: fit the exact model (``engine="bambi"``).

The dispersion is a plug-in estimate: with thousands of cells its posterior is narrow, and
the ranking's uncertainty comes from the cells' effects, which are integrated over.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from skhier._names import COEF_LEVEL, dim_name
from skhier._progress import stage
from skhier.engine.base import EngineFit, SamplerSettings, normal_priors_why_not, register
from skhier.formula import INTERCEPT

__all__ = [
    "COUNT_FAMILIES",
    "LaplaceEngine",
    "Approximation",
    "CellData",
    "CellExpansion",
    "CellReduction",
    "cell_data",
    "cell_only_columns",
    "reduce_statistics",
    "check_approximation",
    "estimate_alpha",
    "expand_cells",
    "pseudo_statistics",
]

logger = logging.getLogger("skhier")

#: Families the engine fits, by Bambi name, with their kernel codes.
COUNT_FAMILIES = {"poisson": 0, "negativebinomial": 1}

#: Warm-up and draws per chain of the pilot run that places the expansions.
PILOT_TUNE = 200
PILOT_DRAWS = 100
#: Float type of the stored cell-level (sgRNA) draws: float32 halves the posterior's memory on a
#: genome-wide screen (71,090 sgRNAs x 2,000 draws: 0.57 GB per term instead of 1.14 GB), and its
#: seven significant digits are far below the Monte Carlo error of any summary.
CELL_DTYPE = np.float32
#: Name of the expansion points in ``constant_data``.
EXPANSION_POINT = "laplace_expansion_point"

#: Pareto k above which the importance ratios cannot correct the approximation.
K_BAD = 0.7
#: Pareto k below which the approximation is as good as exact.
K_GOOD = 0.5
#: Draws used to measure the approximation (thinned evenly from all draws), at most, and the
#: most cell-draw pairs (bounds the check's memory on a genome-wide screen).
MAX_CHECK_DRAWS = 1000
MAX_CHECK_VALUES = 30_000_000


@dataclass(frozen=True)
class CellData:
    """A count model's rows sorted by cell.

    Parameters
    ----------
    y, offset : ndarray of shape (n_rows,)
        Counts and offsets, sorted by cell.
    W : ndarray of shape (n_rows, q)
        Predictor columns, sorted by cell.
    ptr : ndarray of shape (n_cells + 1,)
        The rows of cell ``c`` are ``ptr[c]:ptr[c + 1]``.
    family : int
        Kernel code of the family.

    Examples
    --------
    >>> import numpy as np
    >>> cd = CellData(np.ones(3), np.zeros(3), np.ones((3, 1)), np.array([0, 2, 3]), 0)
    >>> cd.n_cells, cd.q
    (2, 1)
    """

    y: np.ndarray
    offset: np.ndarray
    W: np.ndarray
    ptr: np.ndarray
    family: int

    @property
    def n_cells(self) -> int:
        """Number of cells."""
        return len(self.ptr) - 1

    @property
    def q(self) -> int:
        """Number of coefficient columns."""
        return self.W.shape[1]


def cell_data(plan) -> CellData:
    """Sort a count plan's rows by cell.

    Parameters
    ----------
    plan : FitPlan
        A plan of a count family with nested factors.

    Returns
    -------
    CellData
        The rows by cell.
    """
    design = plan.design
    cells = design.cells
    order = np.argsort(cells, kind="stable")
    counts = np.bincount(cells, minlength=design.n_cells)
    ptr = np.zeros(design.n_cells + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    off = plan.parsed.offset
    offset = (
        np.zeros(design.n_rows) if off is None else np.asarray(plan.data[off], dtype=np.float64)
    )
    return CellData(
        y=np.ascontiguousarray(design.y[order], dtype=np.float64),
        offset=np.ascontiguousarray(offset[order]),
        W=np.ascontiguousarray(design.W[order], dtype=np.float64),
        ptr=ptr,
        family=COUNT_FAMILIES[plan.family],
    )


@dataclass(frozen=True)
class CellExpansion:
    """Each cell's log likelihood expanded to second order at a point.

    Parameters
    ----------
    theta : ndarray of shape (n_cells, q)
        Expansion points.
    g : ndarray of shape (n_cells, q)
        Gradients of the log likelihood there.
    H : ndarray of shape (n_cells, q, q)
        Minus its Hessians there.
    ll : ndarray of shape (n_cells,)
        Log likelihoods there.
    alpha : float
        Negative binomial ``alpha`` (nan for Poisson).
    n_unconverged : int
        Cells whose Newton iterations did not converge.
    """

    theta: np.ndarray
    g: np.ndarray
    H: np.ndarray
    ll: np.ndarray
    alpha: float
    n_unconverged: int = 0


def _modes(cd: CellData, alpha, m, d, theta0, max_iter=50, tol=1e-8):
    from skhier.engine._counts_numba import cell_modes

    return cell_modes(
        cd.y, cd.offset, cd.W, cd.ptr, cd.family, float(alpha), m, d, theta0, max_iter, tol
    )


def _start(cd: CellData, columns) -> np.ndarray:
    """Start the intercept at each cell's log mean rate and the slopes at 0."""
    theta = np.zeros((cd.n_cells, cd.q))
    if INTERCEPT in columns:
        k = columns.index(INTERCEPT)
        sums = np.add.reduceat(cd.y, cd.ptr[:-1]) if len(cd.y) else np.zeros(cd.n_cells)
        rate = np.add.reduceat(np.exp(cd.offset), cd.ptr[:-1])
        theta[:, k] = np.log((sums + 0.5) / rate)
    return theta


def _weak_prior(cd: CellData, theta0):
    """Return a weak prior around the start (sd 10 on every column): all-zero cells stay finite."""
    return theta0.copy(), np.full((cd.n_cells, cd.q), 0.01)


def estimate_alpha(cd: CellData, columns, *, bounds=(1e-2, 1e5), xtol=1e-3) -> float:
    """Estimate the negative binomial ``alpha`` by the Laplace (Cox-Reid) marginal likelihood.

    Maximizes ``sum_c l_c(alpha, mode_c) - log det(H_c + D) / 2`` over ``log alpha`` by
    golden-section search, with each cell's coefficients at their mode under a weak prior
    ``D`` (sd 10). The log-determinant term corrects the profile likelihood's bias towards
    too little overdispersion (each cell's coefficients are estimated from few samples).

    Parameters
    ----------
    cd : CellData
        The rows by cell.
    columns : sequence of str
        The coefficient columns (to start the intercept at each cell's mean).
    bounds : tuple of float, default=(0.01, 1e5)
        Search interval of ``alpha``.
    xtol : float, default=1e-3
        Precision on ``log alpha``.

    Returns
    -------
    float
        The estimate.
    """
    theta = _start(cd, columns)
    m, d = _weak_prior(cd, theta)
    cache = {}

    def objective(log_a):
        nonlocal theta
        if log_a not in cache:
            th, _, _, ll, logdet, _ = _modes(cd, math.exp(log_a), m, d, theta, max_iter=30)
            theta = th
            cache[log_a] = float(ll.sum() - 0.5 * logdet.sum())
        return cache[log_a]

    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = objective(a), objective(b)
    while hi - lo > xtol:
        if fa >= fb:  # the maximum lies in [lo, b]
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = objective(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = objective(b)
    best = 0.5 * (lo + hi)
    if min(best - math.log(bounds[0]), math.log(bounds[1]) - best) < 10 * xtol:
        logger.info(
            "skhier: the negative binomial alpha is at its search bound %g.", math.exp(best)
        )
    return math.exp(best)


def _robust_prior(theta, keep):
    """Per column: the median and a robust spread (MAD, at least 0.1) of the cells' estimates."""
    vals = theta[keep] if keep.any() else theta
    med = np.median(vals, axis=0)
    mad = 1.4826 * np.median(np.abs(vals - med), axis=0)
    return med, np.maximum(mad, 0.1)


def expand_cells(cd: CellData, columns, alpha) -> CellExpansion:
    """Expand every cell's log likelihood at a point close to its posterior.

    Two passes: each cell's mode under a weak prior (sd 10), then its mode under a Normal
    prior per column with the median and robust spread of the first pass's modes (what a
    hierarchy over the cells implies, roughly). Cells with plenty of counts land at their
    maximum likelihood; cells with few or zero counts are pulled towards the others, where
    the hierarchy will put them, instead of towards minus infinity.

    Parameters
    ----------
    cd : CellData
        The rows by cell.
    columns : sequence of str
        The coefficient columns.
    alpha : float
        Negative binomial ``alpha`` (ignored for Poisson).

    Returns
    -------
    CellExpansion
        The expansion of every cell.
    """
    theta0 = _start(cd, columns)
    m, d = _weak_prior(cd, theta0)
    first, *_, iters = _modes(cd, alpha, m, d, theta0)
    counts = np.diff(cd.ptr)
    med, spread = _robust_prior(first, (iters <= 50) & (counts > 0))
    m2 = np.broadcast_to(med, first.shape).copy()
    if INTERCEPT in columns:  # abundances differ by cell: keep each cell's own intercept
        k = columns.index(INTERCEPT)
        m2[:, k] = first[:, k]
    d2 = np.broadcast_to(1.0 / spread**2, first.shape).copy()
    if INTERCEPT in columns:
        d2[:, columns.index(INTERCEPT)] = 0.01
    theta, g, H, ll, _, iters = _modes(cd, alpha, m2, d2, first)
    return CellExpansion(theta, g, H, ll, float(alpha), int((iters > 50).sum()))


def pseudo_statistics(expansion: CellExpansion) -> dict:
    """Gaussian cell statistics (``sigma = 1``) equal to the cells' quadratic log likelihoods.

    The expansion ``ll + g'(t - t*) - (t - t*)'H(t - t*)/2`` equals, up to nothing,
    ``-(yy - 2 t'Wy + t'WW t)/2`` with ``WW = H``, ``Wy = H t* + g`` and
    ``yy = -2 ll + 2 g't* + t*'H t*`` (and ``n = 0``: no Gaussian normalizer).

    Parameters
    ----------
    expansion : CellExpansion
        The cells' expansions.

    Returns
    -------
    dict
        ``n``, ``WW``, ``Wy``, ``yy`` as :func:`skhier.design.cell_statistics` returns them.

    Examples
    --------
    >>> import numpy as np
    >>> e = CellExpansion(np.array([[1.0]]), np.array([[0.5]]), np.array([[[2.0]]]),
    ...                   np.array([-3.0]), np.nan)
    >>> s = pseudo_statistics(e)
    >>> float(s["Wy"][0, 0]), float(s["yy"][0])
    (2.5, 9.0)
    """
    t, g, H = expansion.theta, expansion.g, expansion.H
    Ht = np.einsum("cij,cj->ci", H, t)
    return {
        "n": np.zeros(len(t), dtype=np.int64),
        "WW": np.ascontiguousarray(H),
        "Wy": Ht + g,
        "yy": -2.0 * expansion.ll
        + 2.0 * np.einsum("ci,ci->c", g, t)
        + np.einsum("ci,ci->c", t, Ht),
    }


# ---------------------------------------------------------------------- cell-only columns
@dataclass(frozen=True)
class CellReduction:
    """Coefficients that only the cells have, with fixed prior scales, integrated out per cell.

    A column whose only coefficient is the cell's own group term with a fixed scale
    (``(1|gene:sgRNA)`` with prior ``Normal(0, 10)``: each sgRNA's abundance) is independent
    across cells given the other coefficients, so each cell's Gaussian likelihood is
    integrated over it exactly (a Schur complement), and the hierarchy sees only the other
    columns. Its draws come afterwards from its exact conditional given the others.

    Parameters
    ----------
    keep, drop : ndarray of int
        Column indices kept in the hierarchy and integrated out per cell.
    terms : tuple of str
        The integrated-out group terms, in ``drop`` order.
    cov : ndarray of shape (n_cells, r, r)
        Conditional covariance of the integrated coefficients given the kept ones.
    gain : ndarray of shape (n_cells, r, k)
        ``P_RR^-1 P_RK``: how the conditional mean moves with the kept coefficients.
    shift : ndarray of shape (n_cells, r)
        ``P_RR^-1 h_R``: the conditional mean when the kept coefficients are 0.
    """

    keep: np.ndarray
    drop: np.ndarray
    terms: tuple
    cov: np.ndarray
    gain: np.ndarray
    shift: np.ndarray

    def conditional_draws(self, kept, rng, cells=slice(None)):
        """Draw the integrated coefficients given draws of the kept ones.

        Parameters
        ----------
        kept : ndarray of shape (n_draws, n, k)
            Draws of the kept coefficients of ``n`` cells.
        rng : numpy.random.Generator
            Random numbers.
        cells : slice, default=slice(None)
            Which cells ``kept`` holds.

        Returns
        -------
        ndarray of shape (n_draws, n, r)
            The draws.
        """
        gain, cov = self.gain[cells], self.cov[cells]
        z = rng.standard_normal((kept.shape[0], kept.shape[1], cov.shape[1]))
        if gain.shape[1:] == (1, 1):  # one integrated and one kept column: plain arithmetic
            z *= np.sqrt(cov[:, 0, 0])[None, :, None]
            z += self.shift[cells][None]
            z -= gain[:, 0, 0][None, :, None] * kept
            return z
        mean = self.shift[cells][None] - np.einsum("crk,sck->scr", gain, kept)
        return mean + np.einsum("crk,sck->scr", np.linalg.cholesky(cov), z)


def cell_only_columns(plan) -> list[int]:
    """Columns whose only coefficients are the cells' own group terms with a fixed scale.

    Parameters
    ----------
    plan : FitPlan
        A plan with nested factors.

    Returns
    -------
    list of int
        Their indices in ``plan.design.columns`` (empty when integrating them would leave the
        cells without a coefficient in the hierarchy).

    Examples
    --------
    >>> import pandas as pd
    >>> from skhier.plan import make_plan
    >>> from skhier.priors import Prior
    >>> df = pd.DataFrame({"y": [1, 2, 3, 4, 5, 6, 7, 8], "t": [0.0, 1] * 4,
    ...                    "g": list("aaaabbbb"), "s": list("aabbccdd")})
    >>> plan = make_plan({"formula": "y ~ 0 + (1|g:s) + t:(1|g/s)", "family": "poisson",
    ...                   "priors": {"1|g:s": Prior("Normal", {"mu": 0, "sigma": 10.0})}}, df)
    >>> [plan.design.columns[k] for k in cell_only_columns(plan)]
    ['Intercept']
    """
    design, parsed = plan.design, plan.parsed
    finest = design.chain[-1]
    drop = []
    for k, col in enumerate(design.columns):
        if col in parsed.common or (col == INTERCEPT and parsed.intercept):
            continue
        terms = [t for t in parsed.group_terms if t.column == col]
        if terms and all(t.factor == finest and t.name in plan.fixed_tau for t in terms):
            drop.append(k)
    kept_at_finest = [
        t
        for t in parsed.group_terms
        if t.factor == finest and design.columns.index(t.column) not in drop
    ]
    return drop if kept_at_finest else []


def reduce_statistics(stats: dict, drop, tau) -> tuple[dict, tuple]:
    """Integrate columns out of Gaussian cell statistics (``sigma = 1``), each with prior N(0, tau).

    Parameters
    ----------
    stats : dict
        ``n``, ``WW``, ``Wy``, ``yy`` per cell (from :func:`pseudo_statistics`).
    drop : sequence of int
        Columns to integrate out.
    tau : sequence of float
        Their prior standard deviations.

    Returns
    -------
    stats : dict
        The statistics of the kept columns (same log marginal for every value of them).
    conditional : tuple
        ``(cov, gain, shift)`` of :class:`CellReduction`.

    Examples
    --------
    >>> import numpy as np
    >>> st = {"n": np.zeros(1), "WW": np.array([[[4.0, 1.0], [1.0, 2.0]]]),
    ...       "Wy": np.array([[2.0, 1.0]]), "yy": np.array([3.0])}
    >>> red, (cov, gain, shift) = reduce_statistics(st, [0], [1e6])
    >>> round(float(red["WW"][0, 0, 0]), 6)  # 2 - 1 * 1 / 4
    1.75
    """
    WW, Wy = stats["WW"], stats["Wy"]
    q = WW.shape[1]
    drop = list(drop)
    keep = [k for k in range(q) if k not in drop]
    tau = np.asarray(tau, dtype=np.float64)
    P_rr = WW[:, drop][:, :, drop] + np.diag(1.0 / tau**2)[None]
    P_rk = WW[:, drop][:, :, keep]
    P_kk = WW[:, keep][:, :, keep]
    h_r, h_k = Wy[:, drop], Wy[:, keep]
    cov = np.linalg.inv(P_rr)
    gain = cov @ P_rk
    shift = np.einsum("crs,cs->cr", cov, h_r)
    _, logdet = np.linalg.slogdet(P_rr)
    reduced = {
        "n": stats["n"],
        "WW": np.ascontiguousarray(P_kk - np.einsum("crk,crl->ckl", P_rk, gain)),
        "Wy": np.ascontiguousarray(h_k - np.einsum("crk,cr->ck", P_rk, shift)),
        # c' = c + h_r' P_rr^-1 h_r / 2 - log det(P_rr) / 2 - sum log tau, and yy = -2 c
        "yy": stats["yy"] - np.einsum("cr,cr->c", h_r, shift) + logdet + 2 * np.log(tau).sum(),
    }
    return reduced, (cov, gain, shift)


# ---------------------------------------------------------------------- approximation check
@dataclass
class Approximation:
    """How well the Gaussian approximation of the cells' likelihoods holds on the posterior.

    Parameters
    ----------
    cells : pandas.DataFrame
        One row per cell: ``pareto_k`` of its importance ratios (exact over approximate
        likelihood) on the posterior draws.
    groups : pandas.DataFrame
        One row per group of the ranked level: ``pareto_k`` of the sum of its cells' log
        ratios, the posterior mean of the ranked effect, the importance-reweighted mean
        (where ``k <= 0.7``) and their difference in posterior standard deviations.
    alpha : float
        The negative binomial ``alpha`` used (nan for Poisson).
    alpha_fixed : bool
        Whether the user fixed it (else it was estimated).
    n_draws : int
        Draws the check used.
    seconds : float
        Time the check took.

    Examples
    --------
    >>> import pandas as pd
    >>> a = Approximation(pd.DataFrame({"pareto_k": [0.1, 0.8]}),
    ...                   pd.DataFrame({"pareto_k": [0.2], "shift_sd": [0.01]}), 20.0, False, 100)
    >>> a.share_bad("cells"), a.passed
    (0.5, True)
    """

    cells: pd.DataFrame
    groups: pd.DataFrame
    alpha: float
    alpha_fixed: bool
    n_draws: int
    seconds: float = 0.0
    info: dict = field(default_factory=dict)

    def share_bad(self, which: str = "groups") -> float:
        """Share of cells or groups with Pareto k above 0.7.

        Parameters
        ----------
        which : {"groups", "cells"}, default="groups"
            Which table.

        Returns
        -------
        float
            The share.
        """
        k = getattr(self, which)["pareto_k"].to_numpy()
        return float(np.mean(k > K_BAD)) if len(k) else 0.0

    @property
    def passed(self) -> bool:
        """Whether every ranked group's ratios can be trusted (k <= 0.7)."""
        return self.share_bad("groups") == 0.0

    def summary(self) -> pd.DataFrame:
        """One row per table: count, share with k <= 0.5, 0.5-0.7 and > 0.7, max k.

        Returns
        -------
        pandas.DataFrame
            The summary.
        """
        rows = {}
        for which in ("groups", "cells"):
            k = getattr(self, which)["pareto_k"].to_numpy()
            rows[which] = {
                "n": len(k),
                "k<=0.5": float(np.mean(k <= K_GOOD)) if len(k) else np.nan,
                "0.5<k<=0.7": float(np.mean((k > K_GOOD) & (k <= K_BAD))) if len(k) else np.nan,
                "k>0.7": float(np.mean(k > K_BAD)) if len(k) else np.nan,
                "max_k": float(np.max(k)) if len(k) else np.nan,
            }
        out = pd.DataFrame(rows).T
        if "shift_sd" in self.groups:
            out.loc["groups", "max_shift_sd"] = float(self.groups["shift_sd"].abs().max())
        return out

    def __repr__(self) -> str:
        return (
            f"Approximation(alpha={self.alpha:.4g}{' fixed' if self.alpha_fixed else ''}, "
            f"groups k>0.7: {self.share_bad('groups'):.2%}, cells k>0.7: "
            f"{self.share_bad('cells'):.2%}, draws={self.n_draws})"
        )


def _cell_nodes(plan):
    """For each factor of the chain, the node of every cell."""
    design = plan.design
    cells = design.cells
    first = np.full(design.n_cells, -1, dtype=np.int64)
    first[cells[::-1]] = np.arange(len(cells))[::-1]
    return {f: design.factors[f].codes[first] for f in design.chain}


def _thin(n_total: int, n_max: int) -> np.ndarray:
    if n_total <= n_max:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, n_max).round().astype(np.int64))


def _cell_draws(plan, posterior, columns, nodes, take, cells=slice(None)):
    """Draws of the cells' total coefficients on ``columns``, shape (draws, cells, q).

    Only the draws ``take`` (flat indices over chains and draws) and the cells ``cells`` are
    gathered, so a block of cells costs memory in proportion to its size.
    """
    n_total = posterior.sizes["chain"] * posterior.sizes["draw"]
    idx = np.arange(plan.design.n_cells)[cells]
    out = np.zeros((len(take), len(idx), len(columns)))
    for k, col in enumerate(columns):
        if col in posterior.data_vars:
            out[:, :, k] += np.asarray(posterior[col]).reshape(-1)[take][:, None]
    for t in plan.parsed.group_terms:
        if t.column not in columns:
            continue
        vals = np.asarray(posterior[t.name]).reshape(n_total, -1)
        out[:, :, columns.index(t.column)] += vals[np.ix_(take, nodes[t.factor][idx])]
    return out


def _cell_blocks(n_cells: int, n_draws: int, budget: int = 2_000_000):
    """Slices of cells whose draws fit in ``budget`` values at a time."""
    step = max(1, budget // max(n_draws, 1))
    return [slice(a, min(a + step, n_cells)) for a in range(0, n_cells, step)]


def check_approximation(plan, posterior, cd: CellData, expansion: CellExpansion, alpha_fixed):
    """Pareto k of the exact-over-approximate likelihood ratios, per cell and ranked group.

    Parameters
    ----------
    plan : FitPlan
        The plan.
    posterior : xarray.Dataset
        The approximate posterior (Bambi's names).
    cd : CellData
        The rows by cell.
    expansion : CellExpansion
        The cells' expansions.
    alpha_fixed : bool
        Whether ``alpha`` was fixed by the user.

    Returns
    -------
    Approximation
        The check.
    """
    from skhier.diagnostics._psis import psis_smooth
    from skhier.effects import level_totals
    from skhier.engine._counts_numba import cell_log_weights

    t0 = time.perf_counter()
    columns = list(plan.design.columns)
    nodes = _cell_nodes(plan)
    n_total = posterior.sizes["chain"] * posterior.sizes["draw"]
    n_max = max(200, min(MAX_CHECK_DRAWS, MAX_CHECK_VALUES // max(cd.n_cells, 1)))
    take = _thin(n_total, n_max)
    e = expansion
    lw = np.empty((cd.n_cells, len(take)))
    for block in _cell_blocks(cd.n_cells, len(take)):
        draws = _cell_draws(plan, posterior, columns, nodes, take, block)
        ptr = cd.ptr[block.start : block.stop + 1]
        lw[block] = cell_log_weights(
            cd.y,
            cd.offset,
            cd.W,
            ptr,
            cd.family,
            e.alpha,
            e.theta[block],
            e.g[block],
            e.H[block],
            draws,
        )
    _, k_cells = psis_smooth(lw)
    cells = pd.DataFrame(
        {"pareto_k": k_cells},
        index=pd.Index(plan.design.factors[plan.design.chain[-1]].labels, name="cell"),
    )
    # ranked groups: the sum of their cells' log ratios
    level = plan.level
    if level == COEF_LEVEL or level not in nodes:
        group_of_cell = np.zeros(cd.n_cells, dtype=np.int64)
        labels = ["all"]
    else:
        group_of_cell = nodes[level]
        labels = plan.design.factors[level].labels
    n_groups = len(labels)
    from scipy import sparse

    member = sparse.csr_matrix(
        (np.ones(cd.n_cells), (group_of_cell, np.arange(cd.n_cells))), shape=(n_groups, cd.n_cells)
    )
    glw = np.asarray(member @ lw)
    del lw
    smoothed, k_groups = psis_smooth(glw)
    groups = pd.DataFrame({"pareto_k": k_groups}, index=pd.Index(labels, name=level))
    if level != COEF_LEVEL and plan.column is not None:
        totals = level_totals(
            posterior, plan.parsed, plan.design, plan.column, plan.design.factors[level]
        )
        eff = np.asarray(totals).reshape(-1, n_groups)[take]  # (draws, groups)
        mean = eff.mean(axis=0)
        sd = eff.std(axis=0)
        w = np.exp(smoothed)
        rew = np.einsum("gs,sg->g", w, eff)
        rew = np.where(k_groups <= K_BAD, rew, np.nan)
        groups["mean"] = mean
        groups["reweighted_mean"] = rew
        groups["shift_sd"] = (rew - mean) / np.where(sd > 0, sd, np.nan)
    return Approximation(
        cells=cells,
        groups=groups,
        alpha=e.alpha,
        alpha_fixed=alpha_fixed,
        n_draws=len(take),
        seconds=time.perf_counter() - t0,
        info={"unconverged_cells": e.n_unconverged},
    )


# ---------------------------------------------------------------------- the engine
def _alpha_setting(plan):
    """Return the user's fixed alpha, or None when it is to be estimated."""
    if plan.family != "negativebinomial":
        return None
    prior = plan.priors.get("alpha")
    return float(prior) if isinstance(prior, int | float) else None


def _reduced_plan(plan, keep, dropped_terms):
    """Return the plan of the hierarchy after integrating columns out per cell."""
    design, parsed = plan.design, plan.parsed
    terms = tuple(t for t in parsed.group_terms if t.name not in dropped_terms)
    new_parsed = replace(parsed, group_terms=terms)
    new_design = replace(
        design,
        parsed=new_parsed,
        columns=tuple(design.columns[k] for k in keep),
        W=np.ascontiguousarray(design.W[:, keep]),
    )
    return replace(plan, parsed=new_parsed, design=new_design)


def _attach_reduced(plan, tree_plan, reduction, idata, seed):
    """Draw the integrated-out coefficients given the kept ones; add them to the posterior."""
    import xarray as xr

    post = idata.posterior
    n_chains, n_draws = post.sizes["chain"], post.sizes["draw"]
    n_total = n_chains * n_draws
    kept_cols = list(tree_plan.design.columns)
    nodes = _cell_nodes(plan)
    n_cells = plan.design.n_cells
    out = np.empty((len(reduction.terms), n_total, n_cells), dtype=CELL_DTYPE)
    rng = np.random.default_rng(None if seed is None else [seed, 11])
    take = np.arange(n_total)
    for block in _cell_blocks(n_cells, n_total, budget=8_000_000):
        kept = _cell_draws(tree_plan, post, kept_cols, nodes, take, block)
        out[:, :, block] = np.moveaxis(reduction.conditional_draws(kept, rng, block), 2, 0)
    finest = plan.design.chain[-1]
    dim = dim_name(finest)
    labels = np.asarray(plan.design.factors[finest].labels, dtype=object)
    new = {
        term: xr.Variable(("chain", "draw", dim), out[r].reshape(n_chains, n_draws, n_cells))
        for r, term in enumerate(reduction.terms)
    }
    idata.posterior = post.assign_coords({dim: labels}).assign(new)


def _cell_means(plan, posterior) -> np.ndarray:
    """Posterior mean of every cell's total coefficients, shape (cells, q)."""
    columns = list(plan.design.columns)
    nodes = _cell_nodes(plan)
    n_total = posterior.sizes["chain"] * posterior.sizes["draw"]
    take = np.arange(n_total)
    out = np.empty((plan.design.n_cells, len(columns)))
    for block in _cell_blocks(plan.design.n_cells, n_total):
        out[block] = _cell_draws(plan, posterior, columns, nodes, take, block).mean(axis=0)
    return out


def expand_at(cd: CellData, theta, alpha) -> CellExpansion:
    """Expand every cell's log likelihood at given points.

    Parameters
    ----------
    cd : CellData
        The rows by cell.
    theta : ndarray of shape (n_cells, q)
        The expansion points.
    alpha : float
        Negative binomial ``alpha`` (ignored for Poisson).

    Returns
    -------
    CellExpansion
        The expansions.
    """
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    zero = np.zeros_like(theta)
    th, g, H, ll, _, _ = _modes(cd, alpha, theta, zero, theta, max_iter=0)
    return CellExpansion(th, g, H, ll, float(alpha))


def _store_expansion(plan, idata, expansion):
    """Keep the expansion points (and alpha) in ``constant_data``."""
    import xarray as xr

    finest = plan.design.chain[-1]
    dim = dim_name(finest)
    data = {
        EXPANSION_POINT: xr.DataArray(
            expansion.theta,
            dims=(dim, "expansion_column"),
            coords={
                dim: np.asarray(plan.design.factors[finest].labels, dtype=object),
                "expansion_column": list(plan.design.columns),
            },
        )
    }
    if plan.family == "negativebinomial":
        data["alpha"] = xr.DataArray(expansion.alpha)
    idata.add_groups(constant_data=xr.Dataset(data))


class LaplaceEngine:
    """Count models with nested factors: Gaussian cell likelihoods, the hierarchy exact.

    Examples
    --------
    >>> import pandas as pd
    >>> from skhier.plan import make_plan
    >>> df = pd.DataFrame({"y": [1, 2, 3, 4], "g": list("aabb")})
    >>> LaplaceEngine().why_not(make_plan({"formula": "y ~ (1|g)"}, df))
    "family 'gaussian' is not a count family ('poisson', 'negativebinomial')"
    """

    name = "laplace"
    # NUTS moves only the group scales here, whose posterior is smooth: on HAP1, 0.8 gives the
    # same diagnostics as 0.95 (no divergences, R-hat 1.008, bulk ESS 1,150) in a quarter of the
    # sampling time (12 s against 46 s, 2.7 leapfrog steps per draw)
    default_target_accept = 0.8
    switches_parametrization = False

    def why_not(self, plan) -> str | None:
        """Say why the plan is not a count model with nested factors (None when it is).

        Parameters
        ----------
        plan : FitPlan
            The plan.

        Returns
        -------
        str or None
            The reason.
        """
        if plan.family not in COUNT_FAMILIES:
            return f"family {plan.family!r} is not a count family {tuple(COUNT_FAMILIES)}"
        if plan.parsed.unsupported:
            return "; ".join(plan.parsed.unsupported)
        reason = normal_priors_why_not(plan)
        if reason:
            return reason
        alpha = plan.priors.get("alpha")
        if alpha is not None and not isinstance(alpha, int | float):
            if alpha.name != "HalfCauchy" or alpha.args != {"beta": 1.0}:
                return (
                    f"the prior of 'alpha' is {alpha!r}; this engine estimates alpha (or takes "
                    "a fixed number) and does not sample it"
                )
        if not plan.parsed.group_terms:
            return "the formula has no group-specific term"
        if plan.design.chain is None:
            return plan.design.reason
        return None

    def _alpha(self, plan, cd, columns):
        fixed = _alpha_setting(plan)
        if plan.family == "poisson":
            return math.nan
        return fixed if fixed is not None else estimate_alpha(cd, columns)

    def _prepare(self, plan):
        """Sort the rows by cell, estimate ``alpha`` and expand the cells (no sampling)."""
        cd = cell_data(plan)
        columns = list(plan.design.columns)
        alpha = self._alpha(plan, cd, columns)
        return cd, expand_cells(cd, columns, alpha)

    def _hierarchy(self, plan, expansion):
        """Build the hierarchy's plan and tree on the cells' Gaussian likelihoods."""
        from skhier.engine.collapsed import build_tree

        columns = list(plan.design.columns)
        stats = pseudo_statistics(expansion)
        priors = {k: v for k, v in plan.priors.items() if k != "alpha"}
        tree_plan = replace(plan, priors={**priors, "sigma": 1.0})
        reduction = None
        drop = cell_only_columns(plan)
        if drop:
            terms = [
                next(t for t in plan.parsed.group_terms if t.column == columns[k]) for k in drop
            ]
            stats, (cov, gain, shift) = reduce_statistics(
                stats, drop, [plan.fixed_tau[t.name] for t in terms]
            )
            keep = [k for k in range(len(columns)) if k not in drop]
            reduction = CellReduction(
                np.asarray(keep),
                np.asarray(drop),
                tuple(t.name for t in terms),
                cov,
                gain,
                shift,
            )
            tree_plan = _reduced_plan(tree_plan, keep, {t.name for t in terms})
        return tree_plan, build_tree(tree_plan, stats=stats), reduction

    def _posterior(self, plan, expansion, settings, *, final=False):
        """Sample the scales and draw every coefficient, on one expansion of the cells.

        ``final`` marks the fit's own run (not the pilot): its coefficient draws are a stage
        of the fit's progress.
        """
        from skhier.engine.collapsed import attach_coefficients, sample_scales

        tree_plan, tree, reduction = self._hierarchy(plan, expansion)
        t0 = time.perf_counter()
        model, idata, density = sample_scales(tree_plan, tree, settings)
        t1 = time.perf_counter()
        if final:
            stage("drawing coefficients", "laplace: drawing the coefficients given the scales")
        idata = attach_coefficients(tree_plan, tree, idata, settings.seed, cell_dtype=CELL_DTYPE)
        if reduction is not None:
            _attach_reduced(plan, tree_plan, reduction, idata, settings.seed)
        timing = {
            "sampling": t1 - t0,
            "coefficient_draws": time.perf_counter() - t1,
            "log_density": density,
        }
        return model, idata, timing

    def build(self, plan, parametrization=None):
        """Build the PyMC model of the scales, given the cells' first Gaussian likelihoods.

        Parameters
        ----------
        plan : FitPlan
            The plan.
        parametrization : ignored
            The coefficients are integrated out.

        Returns
        -------
        pymc.Model
            The model.
        """
        from skhier.engine.collapsed import build_collapsed_model

        tree_plan, tree, _ = self._hierarchy(plan, self._prepare(plan)[1])
        return build_collapsed_model(tree_plan, tree)

    def fit(self, plan, settings: SamplerSettings, parametrization=None) -> EngineFit:
        """Estimate alpha, expand the cells, refine the expansions, sample, check.

        The first expansion (each cell's mode under a rough prior) is refined once: a short
        pilot run (``PILOT_TUNE`` warm-up and ``PILOT_DRAWS`` draws per chain) gives each
        cell's posterior mean, where the cells are expanded again for the fit itself (on
        HAP1 this halves the share of genes whose Pareto k exceeds 0.7).

        Parameters
        ----------
        plan : FitPlan
            The plan.
        settings : SamplerSettings
            How to sample.
        parametrization : ignored
            The coefficients are integrated out.

        Returns
        -------
        EngineFit
            ``timing`` holds ``laplace`` (dispersion and expansions), ``pilot``,
            ``sampling``, ``coefficient_draws`` and ``approximation_check``;
            ``approximation`` the check. The expansion points and ``alpha`` are stored in
            ``idata.constant_data`` (so a loaded fit's check can be recomputed).
        """
        from skhier.engine.collapsed import MARGINALIZED

        t0 = time.perf_counter()
        logger.info(
            "laplace: %d cells; estimating alpha and expanding the cells", plan.design.n_cells
        )
        cd, expansion = self._prepare(plan)
        t1 = time.perf_counter()
        logger.info(
            "laplace: alpha %.3g (%.1f s); pilot run placing the expansions",
            expansion.alpha,
            t1 - t0,
        )
        pilot = settings.replace(
            tune=min(settings.tune, PILOT_TUNE), draws=PILOT_DRAWS, progressbar=False
        )
        _, pilot_idata, _ = self._posterior(plan, expansion, pilot)
        means = _cell_means(plan, pilot_idata.posterior)
        del pilot_idata
        expansion = expand_at(cd, means, expansion.alpha)
        t2 = time.perf_counter()
        stage("sampling", "laplace: pilot done (%.1f s); sampling the scales", t2 - t1)
        model, idata, timing = self._posterior(plan, expansion, settings, final=True)
        _store_expansion(plan, idata, expansion)
        logger.info(
            "laplace: sampled (%.1f s), coefficients drawn (%.1f s); checking the approximation",
            timing["sampling"],
            timing["coefficient_draws"],
        )
        approx = check_approximation(
            plan, idata.posterior, cd, expansion, _alpha_setting(plan) is not None
        )
        timing = {
            "laplace": t1 - t0,
            "pilot": t2 - t1,
            **timing,
            "approximation_check": approx.seconds,
            "alpha": expansion.alpha,
        }
        choice = dict.fromkeys((t.name for t in plan.parsed.group_terms), MARGINALIZED)
        return EngineFit(model, idata, timing, choice, approximation=approx)

    def approximation(self, plan, idata):
        """Recompute the approximation check of a fitted posterior (after loading).

        Parameters
        ----------
        plan : FitPlan
            The plan.
        idata : arviz.InferenceData
            The fit's posterior and ``constant_data`` (expansion points, ``alpha``).

        Returns
        -------
        Approximation
            The check.
        """
        cd = cell_data(plan)
        const = idata.constant_data
        alpha = float(const["alpha"]) if "alpha" in const else math.nan
        expansion = expand_at(cd, np.asarray(const[EXPANSION_POINT]), alpha)
        return check_approximation(
            plan, idata.posterior, cd, expansion, _alpha_setting(plan) is not None
        )


register(LaplaceEngine())
