"""Plots of rankings, dominance, rank probabilities and sampler health (matplotlib).

Every function draws on the Axes it is given (``ax=``) or on a new figure, returns what it drew
on (the Axes, or the Figure for the multi-panel diagnostics) and never calls ``show()``.
matplotlib is imported inside the functions, so ``import skhier`` does not load it.

Each function accepts the object it plots (a rank table, a dominance frame, a rank-probability
frame, an InferenceData) or a fitted :class:`~skhier.HierarchicalRanker`, whose ``rank_``,
``dominance_``, rank probabilities or ``idata_`` are then used.

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> import matplotlib.pyplot as plt
>>> import numpy as np
>>> from skhier.ranking import rank_table
>>> from skhier.plotting import plot_ranks
>>> rng = np.random.default_rng(0)
>>> draws = rng.normal([0.0, 0.5, 1.0, 1.2, 2.0], 0.3, size=(2, 500, 5))
>>> table = rank_table(draws, labels=list("abcde"), top_k=2, index_name="gene")
>>> ax = plot_ranks(table)
>>> [label.get_text() for label in ax.get_yticklabels()]
['e', 'd', 'c', 'b', 'a']
>>> plt.close(ax.figure)
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd

__all__ = [
    "plot_diagnostics",
    "plot_dominance",
    "plot_rank_probabilities",
    "plot_ranks",
]

#: Groups are labelled on the axes up to this many; beyond, tick labels are left out.
MAX_TICK_LABELS = 50
#: Panels of ``plot_diagnostics(kind="trace" | "rank")`` at most (select ``var_names`` beyond).
MAX_PANELS = 30
#: Non-divergent draws drawn at most by ``plot_diagnostics(kind="parallel")`` (evenly thinned).
MAX_PARALLEL_LINES = 1000
#: Colour of divergent transitions in the diagnostics plots.
DIVERGENT_COLOR = "C3"
#: Colour of the true values in :func:`plot_ranks`.
TRUTH_COLOR = "C1"

INTERVALS = ("rank", "effect")
DIAGNOSTIC_KINDS = ("trace", "rank", "parallel")


# ============================================================================================
# Input helpers
# ============================================================================================
def _pyplot():
    import matplotlib.pyplot as plt

    return plt


def _is_estimator(obj) -> bool:
    """Duck-typed HierarchicalRanker (fitted or not): avoids importing the estimator module."""
    cls = type(obj)
    return hasattr(cls, "fit") and hasattr(cls, "rank_table") and hasattr(cls, "dominance")


def _fitted(estimator, attr):
    """Return a fitted attribute of an estimator, or raise NotFittedError."""
    if not hasattr(estimator, "idata_"):
        from sklearn.exceptions import NotFittedError

        raise NotFittedError(
            f"This {type(estimator).__name__} instance is not fitted yet; call fit before "
            "plotting it."
        )
    return getattr(estimator, attr)


def _check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r} is not valid; choose one of {tuple(choices)}.")


def _check_top(top, n):
    """Return the number of groups to show: ``top`` clipped to ``n`` (None shows all)."""
    if top is None:
        return n
    if isinstance(top, bool) or not isinstance(top, numbers.Integral) or top < 1:
        raise ValueError(f"top={top!r} is not valid; it must be None or a positive integer.")
    return min(int(top), n)


def _check_ax(ax):
    if ax is None:
        return
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None; got {type(ax).__name__}.")


def _new_ax(ax, figsize):
    _check_ax(ax)
    if ax is None:
        _, ax = _pyplot().subplots(figsize=figsize, layout="constrained")
    return ax


def _check_frame(obj, what):
    if not isinstance(obj, pd.DataFrame):
        raise TypeError(
            f"{what} must be a pandas DataFrame or a fitted HierarchicalRanker; got "
            f"{type(obj).__name__}."
        )
    if obj.shape[0] == 0 or obj.shape[1] == 0:
        raise ValueError(f"{what} is empty (shape {obj.shape}); there is nothing to plot.")


def _numeric_values(frame, what):
    try:
        values = frame.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must hold numbers: {err}") from None
    return values


def _group_name(index, default="group"):
    return str(index.name) if index.name is not None else default


def _label_axis(ax, axis, labels, positions):
    """Label the groups of an axis when there are few enough, else hide the ticks."""
    setter = ax.set_xticks if axis == "x" else ax.set_yticks
    if len(labels) <= MAX_TICK_LABELS:
        size = "small" if len(labels) <= 25 else "x-small"
        kwargs = {"rotation": 90} if axis == "x" else {}
        setter(positions, labels=[str(x) for x in labels], fontsize=size, **kwargs)
    else:
        setter([])


def _pct(value):
    return f"{100 * float(value):g}%"


# ============================================================================================
# plot_ranks
# ============================================================================================
def _best_first(table):
    """Rows in rank order (by ``rank``, else ``expected_rank``; stable)."""
    for column in ("rank", "expected_rank"):
        if column in table.columns:
            return table.sort_values(column, kind="stable")
    return table


def _true_values(truth, table, interval):
    """Truth on the plotted scale, aligned with ``table`` (true ranks for ``interval="rank"``)."""
    if isinstance(truth, dict):
        truth = pd.Series(truth)
    if not isinstance(truth, pd.Series):
        raise TypeError(
            f"truth must be a pandas Series (or dict) indexed by group label; got "
            f"{type(truth).__name__}."
        )
    missing = table.index.difference(truth.index)
    if len(missing):
        raise ValueError(
            f"truth has no value for {len(missing)} group(s) of the table, e.g. "
            f"{missing[:5].tolist()}; index it by the table's labels."
        )
    values = pd.to_numeric(truth.reindex(table.index), errors="coerce")
    if not np.isfinite(values.to_numpy(dtype=np.float64)).all():
        bad = values.index[~np.isfinite(values.to_numpy(dtype=np.float64))][:5].tolist()
        raise ValueError(f"truth must hold finite numbers; not for {bad}.")
    if interval == "rank":
        ascending = bool(table.attrs.get("ascending", False))
        values = values.rank(ascending=ascending, method="average")
    return values.to_numpy(dtype=np.float64)


def _legend_rank(label):
    """Legend order: point estimate, marginal interval, joint band, truth."""
    if label in ("expected rank", "posterior mean"):
        return 0
    if "joint" in label:
        return 2
    if label.startswith("true"):
        return 3
    return 1


def plot_ranks(table, *, ax=None, interval="rank", top=None, truth=None, joint=True):
    """Caterpillar plot of a ranking: each group's rank (or effect) with its credible interval.

    Groups run down the y axis best first. With ``interval="rank"`` each group shows its
    expected rank (dot), its marginal rank interval (dark bar) and, behind it, the simultaneous
    (joint) rank band (wide pale bar): the band holds the ranks of *all* groups at once with the
    table's ``joint_prob``. With ``interval="effect"`` it shows the posterior mean with its HDI.

    Parameters
    ----------
    table : pandas.DataFrame or HierarchicalRanker
        A rank table (:func:`skhier.rank_posterior`, :func:`skhier.ranking.rank_table`) with
        ``expected_rank, rank_low, rank_high`` (``interval="rank"``) or ``mean, hdi_low,
        hdi_high`` (``interval="effect"``), or a fitted ranker (its ``rank_`` is plotted).
    ax : matplotlib.axes.Axes, default=None
        Axes to draw on; a new figure sized for the number of groups if None.
    interval : {"rank", "effect"}, default="rank"
        Plot ranks with rank intervals, or effects with their HDI.
    top : int, default=None
        Show only the ``top`` best groups (all if None or larger than the table).
    truth : pandas.Series or dict, default=None
        True effects indexed by group label (for example
        ``ScreenSimulator.true_slopes_["gene"]``), marked with crosses. With ``interval="rank"``
        they are turned into true ranks among the table's groups (in the table's direction,
        ``table.attrs["ascending"]``), so pass the truth of *all* its groups.
    joint : bool, default=True
        Draw the joint rank band (``joint_rank_low``, ``joint_rank_high``) when the table has it
        (``interval="rank"`` only).

    Returns
    -------
    ax : matplotlib.axes.Axes
        The Axes drawn on. Its ``containers`` hold one error bar per shown group for the
        marginal interval (and one for the joint band).

    Raises
    ------
    TypeError
        If ``table`` is not a DataFrame or ranker, or ``truth`` is not a Series/dict.
    ValueError
        For an unknown ``interval``, a bad ``top``, missing columns, an empty table, or a truth
        lacking some group.

    See Also
    --------
    plot_rank_probabilities : The full rank distribution of each group.
    plot_dominance : Pairwise P(group i better than group j).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> import pandas as pd
    >>> from skhier.ranking import rank_table
    >>> from skhier.plotting import plot_ranks
    >>> effects = np.array([0.2, 1.0, 0.9, 2.0, 0.0, 0.5])
    >>> draws = effects + 0.3 * np.random.default_rng(0).standard_normal((4, 250, 6))
    >>> table = rank_table(draws, labels=list("abcdef"), top_k=2)
    >>> truth = pd.Series(effects, index=list("abcdef"))
    >>> ax = plot_ranks(table, top=3, truth=truth)
    >>> [label.get_text() for label in ax.get_yticklabels()]
    ['d', 'b', 'c']
    >>> ax.get_xlabel()
    'rank (1 = best)'
    >>> plt.close(ax.figure)
    >>> ax = plot_ranks(table, interval="effect")
    >>> len(ax.containers[0].lines[2][0].get_segments())  # one HDI bar per group
    6
    >>> plt.close(ax.figure)
    """
    if _is_estimator(table):
        table = _fitted(table, "rank_")
    _check_frame(table, "table")
    _check_choice("interval", interval, INTERVALS)
    if interval == "rank":
        needed = ["expected_rank", "rank_low", "rank_high"]
    else:
        needed = ["mean", "hdi_low", "hdi_high"]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(
            f"table lacks the column(s) {missing} needed for interval={interval!r}; pass a rank "
            "table from skhier.rank_posterior or skhier.ranking.rank_table."
        )
    table = _best_first(table)
    true_all = None if truth is None else _true_values(truth, table, interval)
    n = _check_top(top, len(table))
    shown = table.iloc[:n]
    center, low, high = (shown[c].to_numpy(dtype=np.float64) for c in needed)
    y = np.arange(n)
    attrs = table.attrs
    ax = _new_ax(ax, (6.4, min(14.0, max(2.6, 0.24 * n + 1.3))))

    if interval == "rank":
        has_joint = joint and {"joint_rank_low", "joint_rank_high"} <= set(shown.columns)
        if has_joint:
            jl = shown["joint_rank_low"].to_numpy(dtype=np.float64)
            jh = shown["joint_rank_high"].to_numpy(dtype=np.float64)
            prob = attrs.get("joint_prob")
            what = f"{_pct(prob)} joint band" if prob is not None else "joint band"
            ax.errorbar(
                (jl + jh) / 2,
                y,
                xerr=(jh - jl) / 2,
                fmt="none",
                ecolor="#9ecae1",
                elinewidth=7 if n <= 60 else 3,
                alpha=0.8,
                zorder=1,
                label=f"{what} (all groups at once)",
            )
        interval_name, center_name = "rank interval", "expected rank"
        ax.set_xlabel("rank (1 = best)")
        legend_loc = "upper right"
    else:
        interval_name, center_name = "HDI", "posterior mean"
        ax.set_xlabel("effect")
        legend_loc = "upper right" if attrs.get("ascending", False) else "upper left"
    prob = attrs.get("hdi_prob")
    ax.errorbar(
        (low + high) / 2,
        y,
        xerr=(high - low) / 2,
        fmt="none",
        ecolor="#08519c",
        elinewidth=1.8,
        zorder=2,
        label=f"{_pct(prob)} {interval_name}" if prob is not None else interval_name,
    )
    ax.plot(center, y, "o", color="#08306b", ms=4, zorder=3, label=center_name)
    if interval == "rank":
        ax.set_xlim(left=0.5)
    if true_all is not None:
        ax.plot(
            true_all[:n],
            y,
            "x",
            color=TRUTH_COLOR,
            ms=6,
            mew=1.8,
            zorder=4,
            label="true rank" if interval == "rank" else "true effect",
        )
    if interval == "rank":  # the whole rank scale in view, and nothing beyond it
        right = float(np.max(high))
        if has_joint:
            right = max(right, float(np.max(jh)))
        if true_all is not None:
            right = max(right, float(np.max(true_all[:n])))
        ax.set_xlim(0.5, right + 0.5)
    ax.set_ylim(n - 0.5, -0.5)
    _label_axis(ax, "y", shown.index.tolist(), y)
    name = _group_name(table.index)
    ax.set_ylabel(name if n <= MAX_TICK_LABELS else f"{name} ({n}, best first)")
    ax.grid(axis="x", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    pairs = sorted(zip(handles, labels, strict=True), key=lambda hl: _legend_rank(hl[1]))
    ax.legend(
        [h for h, _ in pairs],
        [lab for _, lab in pairs],
        loc="best" if n <= 60 else legend_loc,  # "best" costs time with many artists
        fontsize="small",
        framealpha=0.9,
    )
    return ax


# ============================================================================================
# plot_dominance
# ============================================================================================
def _square_from_condensed(series):
    labels = series.attrs.get("labels")
    if labels is None:
        raise ValueError(
            "a condensed dominance Series needs attrs['labels'] (as returned by "
            "skhier.dominance(..., condensed=True))."
        )
    n = len(labels)
    values = series.to_numpy(dtype=np.float64)
    if len(values) != n * (n - 1) // 2:
        raise ValueError(
            f"a condensed dominance Series for {n} labels needs {n * (n - 1) // 2} values; got "
            f"{len(values)}."
        )
    D = np.full((n, n), 0.5)
    iu = np.triu_indices(n, 1)
    D[iu] = values
    D[(iu[1], iu[0])] = 1.0 - values
    frame = pd.DataFrame(D, index=labels, columns=labels)
    frame.attrs.update(series.attrs)
    frame.attrs.pop("labels", None)
    return frame


def _dominance_frame(D):
    """Validate a dominance frame and return ``(values, row labels, column labels, attrs)``.

    Rows and columns are put in rank order (best first).
    """
    if isinstance(D, pd.Series):
        if D.attrs.get("counts"):
            raise ValueError("a condensed Series of counts cannot be plotted; pass probabilities.")
        D = _square_from_condensed(D)
    _check_frame(D, "D")
    values = _numeric_values(D, "D")
    rows, cols = D.index, D.columns
    square = len(rows) == len(cols) and rows.equals(cols)
    if D.attrs.get("counts"):
        if not square:
            raise ValueError(
                "counts=True dominance frames can be plotted only in the square form; pass "
                "probabilities (counts=False)."
            )
        S = D.attrs.get("n_draws")
        if not S:
            raise ValueError("a counts frame needs attrs['n_draws'] to become probabilities.")
        values = (values + (S - values - values.T) / 2.0) / S
        np.fill_diagonal(values, 0.5)
    finite = values[np.isfinite(values)]
    if finite.size and (finite.min() < -1e-6 or finite.max() > 1 + 1e-6):
        raise ValueError(
            f"D must hold probabilities in [0, 1]; got values in [{finite.min():g}, "
            f"{finite.max():g}]."
        )
    if square:
        if D.attrs.get("order") != "rank":
            filled = np.where(np.isfinite(values), values, 0.5)
            order = np.argsort(-filled.sum(axis=1), kind="stable")
            values = values[np.ix_(order, order)]
            rows = cols = rows[order]
    else:  # rows of the top groups against all columns: the row groups' columns first
        in_rows = cols.isin(rows)
        if in_rows.sum() == len(rows):
            first = cols.get_indexer(rows)
            rest = np.flatnonzero(~in_rows)
            order = np.concatenate([first, rest])
            values = values[:, order]
            cols = cols[order]
    return values, rows, cols, D.attrs


def plot_dominance(D, *, ax=None, top=None, cmap="RdBu_r", annotate=False):
    """Heat map of a dominance matrix ``D[i, j] = P(group i better than group j)``.

    Rows and columns are ordered by rank, best first (top left), so a clear ranking shows as a
    red upper triangle over a blue lower one; a block of pale cells near the diagonal is a set of
    groups the data cannot order.

    Parameters
    ----------
    D : pandas.DataFrame, pandas.Series or HierarchicalRanker
        Output of :func:`skhier.dominance` (square, or the ``top_k`` rows; probabilities or
        counts; a condensed Series), or a fitted ranker (its ``dominance_`` is plotted). A
        square frame not in rank order is reordered by its row sums.
    ax : matplotlib.axes.Axes, default=None
        Axes to draw on; a new figure if None.
    top : int, default=None
        Show only the ``top`` best groups (rows and columns).
    cmap : str or matplotlib.colors.Colormap, default="RdBu_r"
        Colour map over ``[0, 1]`` (a diverging map centred on 0.5 reads best).
    annotate : bool, default=False
        Write each probability in its cell (readable up to about 15 groups).

    Returns
    -------
    ax : matplotlib.axes.Axes
        The Axes drawn on; the image is ``ax.images[0]`` and its colorbar
        ``ax.images[0].colorbar``. Groups are labelled when at most 50 are shown.

    Raises
    ------
    TypeError
        If ``D`` is not a DataFrame, Series or ranker.
    ValueError
        For a bad ``top``, an empty or non-numeric frame, or values outside ``[0, 1]``.

    See Also
    --------
    skhier.dominance : Computes ``D`` exactly in bounded memory.
    plot_ranks : Expected ranks and rank intervals.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> from skhier import dominance
    >>> from skhier.plotting import plot_dominance
    >>> draws = np.random.default_rng(0).normal([0.0, 1.0, 1.1, 3.0], 0.5, size=(1000, 4))
    >>> D = dominance(draws)
    >>> ax = plot_dominance(D, annotate=True)
    >>> [label.get_text() for label in ax.get_yticklabels()]
    ['3', '2', '1', '0']
    >>> ax.images[0].colorbar is not None
    True
    >>> plt.close(ax.figure)
    """
    if _is_estimator(D):
        D = _fitted(D, "dominance_")
    if not isinstance(D, pd.DataFrame | pd.Series):
        raise TypeError(
            "D must be a dominance DataFrame (or condensed Series) or a fitted "
            f"HierarchicalRanker; got {type(D).__name__}."
        )
    values, rows, cols, attrs = _dominance_frame(D)
    k_rows = _check_top(top, len(rows))
    k_cols = _check_top(top, len(cols))
    values = values[:k_rows, :k_cols]
    rows, cols = rows[:k_rows], cols[:k_cols]
    side = min(11.0, max(3.6, 0.22 * max(k_rows, k_cols) + 2.2))
    ax = _new_ax(ax, (side + 1.3, side * max(0.35, k_rows / k_cols)))
    im = ax.imshow(
        values,
        cmap=cmap,
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
        aspect="equal",
    )
    _label_axis(ax, "x", cols.tolist(), np.arange(k_cols))
    _label_axis(ax, "y", rows.tolist(), np.arange(k_rows))
    if annotate:
        for i in range(k_rows):
            for j in range(k_cols):
                v = values[i, j]
                if np.isfinite(v):
                    ax.text(
                        j,
                        i,
                        f"{v:.2f}",
                        ha="center",
                        va="center",
                        fontsize="x-small",
                        color="white" if abs(v - 0.5) > 0.3 else "black",
                    )
    name = _group_name(rows)
    ax.set_xlabel(f"{name} j (column)")
    ax.set_ylabel(f"{name} i (row)")
    better = "<" if attrs.get("ascending", False) else ">"
    ax.figure.colorbar(
        im, ax=ax, label=f"P(beta_i {better} beta_j)", shrink=0.8 if k_rows > 3 else 1.0
    )
    return ax


# ============================================================================================
# plot_rank_probabilities
# ============================================================================================
def _estimator_rank_probabilities(estimator):
    method = getattr(estimator, "rank_probabilities", None)
    if callable(method):
        return method()
    from skhier.ranking import rank_probabilities

    totals, _ = estimator._totals()
    return rank_probabilities(totals, ascending=bool(estimator.ascending))


def plot_rank_probabilities(P, *, ax=None, top=None, cmap="Blues", expected=True):
    """Heat map of the rank distribution of each group: ``P[i, r] = P(rank_i = r)``.

    Rows are groups (best first), columns ranks. A sharply ranked group is one dark cell; a
    group the data cannot place is a long pale smear. A dot marks each group's expected rank.

    Parameters
    ----------
    P : pandas.DataFrame, HierarchicalRanker, arviz.InferenceData, xarray.DataArray or array-like
        Output of :func:`skhier.rank_probabilities` (rows groups, columns the ranks
        ``1..N``), a fitted ranker (its ranked level) or posterior draws of the effects (passed
        to :func:`skhier.rank_probabilities` with its defaults). Rows are put in order of
        expected rank.
    ax : matplotlib.axes.Axes, default=None
        Axes to draw on; a new figure if None.
    top : int, default=None
        Show only the ``top`` best groups; the rank axis then stops at the worst rank any of
        them reaches (at least ``top``).
    cmap : str or matplotlib.colors.Colormap, default="Blues"
        Sequential colour map (0 is its lightest colour). The colour scale is the square root
        of the probability (up to the largest shown), so that ranks a group reaches with small
        probability stay visible; the colorbar is labelled with the probabilities.
    expected : bool, default=True
        Mark each group's expected rank ``sum_r r * P[i, r]``.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The Axes drawn on; the image is ``ax.images[0]`` (with its colorbar). The x axis is the
        rank, the y axis the groups; groups are labelled when at most 50 are shown.

    Raises
    ------
    TypeError
        If ``P`` is of an unsupported type.
    ValueError
        For a bad ``top``, an empty or non-numeric frame, negative probabilities or non-integer
        rank columns.

    See Also
    --------
    skhier.rank_probabilities : Computes ``P``.
    plot_ranks : Summaries of the same distributions.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> from skhier import rank_probabilities
    >>> from skhier.plotting import plot_rank_probabilities
    >>> draws = np.random.default_rng(0).normal([0.0, 2.0, 2.1, 4.0], 0.3, size=(1000, 4))
    >>> P = rank_probabilities(draws)
    >>> ax = plot_rank_probabilities(P, top=2)
    >>> [label.get_text() for label in ax.get_yticklabels()]
    ['3', '2']
    >>> ax.images[0].get_array().shape  # 2 groups x ranks 1..3 (the worst either reaches)
    (2, 3)
    >>> plt.close(ax.figure)
    """
    if _is_estimator(P):
        _fitted(P, "idata_")
        P = _estimator_rank_probabilities(P)
    elif not isinstance(P, pd.DataFrame):
        if isinstance(P, pd.Series | str | bytes | dict) or P is None:
            raise TypeError(
                "P must be a rank-probability DataFrame, a fitted HierarchicalRanker or posterior "
                f"draws; got {type(P).__name__}."
            )
        from skhier.ranking import rank_probabilities

        P = rank_probabilities(P)
    _check_frame(P, "P")
    values = _numeric_values(P, "P")
    if not np.isfinite(values).all() or values.min() < -1e-9:
        raise ValueError("P must hold finite, non-negative probabilities.")
    try:
        ranks = np.asarray(P.columns, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"P's columns must be the ranks 1..N; got {P.columns[:5].tolist()}."
        ) from None
    if not np.array_equal(ranks, np.arange(1, len(ranks) + 1)):
        raise ValueError(f"P's columns must be the ranks 1..N in order; got {ranks[:5].tolist()}.")
    mass = values.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        exp_rank = values @ ranks / mass
    order = np.argsort(np.where(np.isfinite(exp_rank), exp_rank, np.inf), kind="stable")
    values, exp_rank, labels = values[order], exp_rank[order], P.index[order]
    n = _check_top(top, len(labels))
    values, exp_rank, labels = values[:n], exp_rank[:n], labels[:n]
    reached = np.flatnonzero((values > 0).any(axis=0))
    m = max(n, int(reached[-1]) + 1 if len(reached) else n)
    m = min(m, values.shape[1])
    values = values[:, :m]
    width = min(12.0, max(4.0, 0.18 * m + 2.5))
    ax = _new_ax(ax, (width, min(14.0, max(2.6, 0.24 * n + 1.3))))
    from matplotlib.colors import PowerNorm

    im = ax.imshow(
        values,
        cmap=cmap,
        norm=PowerNorm(0.5, vmin=0.0, vmax=max(float(values.max()), 1e-12)),
        interpolation="nearest",
        aspect="auto",
        extent=(0.5, m + 0.5, n - 0.5, -0.5),
    )
    if expected:
        ax.plot(
            exp_rank,
            np.arange(n),
            "o",
            ms=3.5,
            mfc="white",
            mec="#d94801",
            mew=1.2,
            label="expected rank",
        )
        ax.legend(loc="upper right", fontsize="small", framealpha=0.9)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(m, 12)))
    _label_axis(ax, "y", labels.tolist(), np.arange(n))
    ax.set_xlabel("rank (1 = best)")
    name = _group_name(labels)
    ax.set_ylabel(name if n <= MAX_TICK_LABELS else f"{name} ({n}, best first)")
    ax.figure.colorbar(im, ax=ax, label="P(rank = r)")
    return ax


# ============================================================================================
# plot_diagnostics
# ============================================================================================
def _element_labels(da, name):
    """Labels ``name[coord, ...]`` for the elements of a variable's non-sample dimensions."""
    dims = [d for d in da.dims if d not in ("chain", "draw")]
    if not dims:
        return [name]
    coords = []
    for d in dims:
        if d in da.coords:
            coords.append([str(v) for v in np.asarray(da[d].values)])
        else:
            coords.append([str(i) for i in range(da.sizes[d])])
    grids = np.meshgrid(*[np.arange(len(c)) for c in coords], indexing="ij")
    flat = [g.ravel() for g in grids]
    return [
        f"{name}[{','.join(coords[k][flat[k][i]] for k in range(len(dims)))}]"
        for i in range(len(flat[0]))
    ]


def _diagnostic_series(idata, var_names):
    """Return ``(labels, values (chains, draws, P), diverging (chains, draws))``."""
    post = getattr(idata, "posterior", None)
    if post is None or not hasattr(post, "data_vars"):
        raise TypeError(
            "idata must be an arviz.InferenceData with a posterior group (or a fitted "
            f"HierarchicalRanker); got {type(idata).__name__}."
        )
    names = list(post.data_vars)
    if var_names is None:
        var_names = [
            v for v in names if set(post[v].dims) <= {"chain", "draw"} and not str(v).endswith("__")
        ]
        if not var_names:
            raise ValueError(
                "the posterior has no scalar (hyper)parameters to plot by default; pass "
                f"var_names, choosing from {names}."
            )
    else:
        if isinstance(var_names, str):
            var_names = [var_names]
        var_names = list(var_names)
        unknown = [v for v in var_names if v not in names]
        if unknown or not var_names:
            raise ValueError(
                f"var_names={unknown if unknown else var_names!r} not in the posterior; choose "
                f"from {names}."
            )
    labels, blocks = [], []
    for v in var_names:
        da = post[v]
        if "draw" not in da.dims:
            raise ValueError(f"variable {v!r} has no 'draw' dimension (dims {list(da.dims)}).")
        if "chain" not in da.dims:
            da = da.expand_dims("chain")
        other = [d for d in da.dims if d not in ("chain", "draw")]
        da = da.transpose("chain", "draw", *other)
        arr = np.asarray(da.values, dtype=np.float64)
        blocks.append(arr.reshape(arr.shape[0], arr.shape[1], -1))
        labels.extend(_element_labels(da, v))
    values = np.concatenate(blocks, axis=2)
    diverging = np.zeros(values.shape[:2], dtype=bool)
    stats = getattr(idata, "sample_stats", None)
    if stats is not None and hasattr(stats, "data_vars") and "diverging" in stats.data_vars:
        div = stats["diverging"]
        if "chain" not in div.dims:
            div = div.expand_dims("chain")
        div = np.asarray(div.transpose("chain", "draw").values, dtype=bool)
        if div.shape == diverging.shape:
            diverging = div
    return labels, values, diverging


def _axes_grid(ax, n_rows, n_cols, figsize):
    """Axes array of shape (n_rows, n_cols): new, or the user's (checked for size)."""
    if ax is None:
        fig, axes = _pyplot().subplots(
            n_rows, n_cols, figsize=figsize, layout="constrained", squeeze=False
        )
        return fig, axes
    from matplotlib.axes import Axes

    axes = np.asarray(ax, dtype=object)
    if axes.size != n_rows * n_cols or not all(isinstance(a, Axes) for a in axes.ravel()):
        raise ValueError(
            f"ax must hold {n_rows * n_cols} matplotlib Axes ({n_rows} x {n_cols}) for these "
            f"variables; got {axes.size} item(s)."
        )
    axes = axes.reshape(n_rows, n_cols)
    return axes[0, 0].figure, axes


def _trace(labels, values, diverging, ax, figsize):
    n_chains, n_draws, n_par = values.shape
    fig, axes = _axes_grid(ax, n_par, 2, figsize or (9.0, 1.7 * n_par + 0.6))
    draws = np.arange(n_draws)
    for p, label in enumerate(labels):
        dens, trace = axes[p]
        x = values[:, :, p]
        finite = x[np.isfinite(x)]
        edges = np.histogram_bin_edges(finite, bins=min(50, max(10, int(np.sqrt(n_draws)))))
        for c in range(n_chains):
            color = f"C{c % 10}"
            counts, _ = np.histogram(x[c], bins=edges, density=True)
            dens.stairs(counts, edges, color=color, lw=1.0, alpha=0.9)
            trace.plot(draws, x[c], color=color, lw=0.5, alpha=0.7, label=f"chain {c}")
        ci, di = np.nonzero(diverging)
        if len(ci):
            trace.plot(
                di,
                x[ci, di],
                "o",
                ms=3,
                color=DIVERGENT_COLOR,
                zorder=3,
                label=f"divergent ({len(ci)})",
            )
            dens.plot(
                x[ci, di],
                np.zeros(len(ci)),
                "|",
                ms=10,
                mew=1.2,
                color=DIVERGENT_COLOR,
                label="divergent",
            )
        dens.set_ylabel(label, fontsize="small")
        dens.set_yticks([])
        trace.set_xlim(0, max(n_draws - 1, 1))
    axes[-1, 0].set_xlabel("value")
    axes[-1, 1].set_xlabel("draw")
    axes[0, 0].set_title("posterior density by chain", fontsize="medium")
    axes[0, 1].set_title("trace", fontsize="medium")
    if n_chains <= 8 or diverging.any():
        axes[0, 1].legend(loc="upper right", fontsize="x-small", ncol=min(n_chains + 1, 5))
    return fig


def _rank_plot(labels, values, diverging, ax, figsize):
    n_chains, n_draws, n_par = values.shape
    n_cols = 1 if n_par == 1 else 2
    n_rows = math.ceil(n_par / n_cols)
    fig, axes = _axes_grid(
        ax, n_rows, n_cols, figsize or (4.2 * n_cols, 0.55 * n_chains * n_rows + 1.2 * n_rows)
    )
    n_bins = int(min(20, max(5, n_draws // 20)))
    total = n_chains * n_draws
    flat_axes = axes.ravel()
    for p, label in enumerate(labels):
        a = flat_axes[p]
        x = values[:, :, p].ravel()
        ranks = np.empty(total)
        ranks[np.argsort(x, kind="stable")] = np.arange(total)
        ranks = ranks.reshape(n_chains, n_draws)
        edges = np.linspace(0, total, n_bins + 1)
        counts = np.stack([np.histogram(ranks[c], bins=edges)[0] for c in range(n_chains)])
        scale = 0.85 / max(int(counts.max()), 1)
        uniform = n_draws / n_bins * scale
        for c in range(n_chains):
            a.bar(
                edges[:-1],
                counts[c] * scale,
                width=np.diff(edges),
                bottom=c,
                align="edge",
                color=f"C{c % 10}",
                edgecolor="white",
                lw=0.3,
            )
            a.axhline(c + uniform, color="black", ls="--", lw=0.7)
        a.set_yticks(np.arange(n_chains) + 0.4, labels=[str(c) for c in range(n_chains)])
        a.set_ylabel("chain", fontsize="small")
        a.set_ylim(0, n_chains)
        a.set_xlim(0, total)
        a.set_title(label, fontsize="small")
        a.set_xlabel("rank of draw (all chains)", fontsize="small")
    for a in flat_axes[n_par:]:
        a.set_visible(False)
    return fig


def _parallel(labels, values, diverging, ax, figsize):
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    n_chains, n_draws, n_par = values.shape
    if n_par < 2:
        raise ValueError(
            f"kind='parallel' needs at least 2 coordinates; got {labels}. Pass more var_names."
        )
    _check_ax(ax)
    if ax is None:
        fig, ax = _pyplot().subplots(
            figsize=figsize or (min(14.0, max(5.0, 0.45 * n_par + 2.5)), 4.2),
            layout="constrained",
        )
    fig = ax.figure
    x = values.reshape(-1, n_par)
    div = diverging.ravel()
    lo = np.nanmin(x, axis=0)
    span = np.nanmax(x, axis=0) - lo
    scaled = np.where(span > 0, (x - lo) / np.where(span > 0, span, 1.0), 0.5)
    pos = np.arange(n_par, dtype=np.float64)
    segs = np.stack([np.broadcast_to(pos, scaled.shape), scaled], axis=-1)
    keep = np.flatnonzero(~div)
    if len(keep) > MAX_PARALLEL_LINES:  # thin the healthy draws evenly; keep every divergent one
        keep = keep[np.linspace(0, len(keep) - 1, MAX_PARALLEL_LINES).round().astype(np.intp)]
    ok = LineCollection(
        segs[keep], colors="0.45", linewidths=0.5, alpha=0.2, zorder=1, label="non-divergent"
    )
    ax.add_collection(ok)
    bad = LineCollection(
        segs[div], colors=DIVERGENT_COLOR, linewidths=0.9, alpha=0.8, zorder=2, label="divergent"
    )
    ax.add_collection(bad)
    ax.set_xlim(-0.3, n_par - 0.7)
    ax.set_ylim(-0.04, 1.04)
    ax.set_xticks(
        pos,
        labels=labels,
        rotation=45 if n_par > 3 else 0,
        ha="right" if n_par > 3 else "center",
        fontsize="small",
    )
    ax.set_ylabel("value, scaled to [0, 1] per coordinate")
    n_ok = int((~div).sum())
    shown = f", {len(keep)} drawn" if len(keep) < n_ok else ""
    handles = [
        Line2D([], [], color="0.45", lw=1.0, label=f"non-divergent ({n_ok}{shown})"),
        Line2D([], [], color=DIVERGENT_COLOR, lw=1.5, label=f"divergent ({int(div.sum())})"),
    ]
    ax.legend(handles=handles, loc="upper right", fontsize="small", framealpha=0.9)
    ax.set_title("parallel coordinates of the draws", fontsize="medium")
    return fig


def plot_diagnostics(idata, var_names=None, *, kind="trace", ax=None, figsize=None):
    """Trace, rank or parallel-coordinates plots of posterior draws, marking divergences.

    Drawn with plain matplotlib (no ArviZ plotting backend needed).

    - ``kind="trace"``: per variable, the density of each chain (histogram) and the trace of
      each chain; divergent draws are red dots on the trace and a red rug under the density.
    - ``kind="rank"``: per variable, the histogram of the ranks of each chain's draws among all
      draws (Vehtari et al., 2021); chains that mix well give flat histograms near the dashed
      line of the uniform.
    - ``kind="parallel"``: one line per draw across the variables (each scaled to [0, 1]), the
      divergent draws in red on top (at most 1,000 non-divergent draws are drawn, evenly
      thinned; every divergent one is): divergences that concentrate at one end of a coordinate
      (for example a small group scale, the funnel's neck) point at the problem.

    Parameters
    ----------
    idata : arviz.InferenceData or HierarchicalRanker
        Posterior (and ``sample_stats.diverging`` when available), or a fitted ranker (its
        ``idata_``).
    var_names : str or list of str, default=None
        Variables to plot; non-scalar variables contribute one coordinate (panel) per element.
        None plots the scalar parameters (the hyperparameters: population coefficients and
        scales), leaving out transformed ``*__`` variables.
    kind : {"trace", "rank", "parallel"}, default="trace"
        The plot.
    ax : matplotlib Axes or array of Axes, default=None
        For ``"parallel"`` one Axes; for ``"trace"`` ``2 x n`` Axes (``n`` rows of density and
        trace); for ``"rank"`` ``n`` Axes (``n`` the number of panels). None makes a new figure.
    figsize : tuple of float, default=None
        Size of a new figure (sized for the panels if None).

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure drawn on (for every ``kind``; its ``axes`` are the panels).

    Raises
    ------
    TypeError
        If ``idata`` has no posterior.
    ValueError
        For an unknown ``kind`` or variable, no default variables, more than 30 panels for
        ``"trace"``/``"rank"``, fewer than 2 coordinates for ``"parallel"``, or ``ax`` of the
        wrong size.

    See Also
    --------
    skhier.diagnose : The numbers behind these pictures (R-hat, ESS, divergences, E-BFMI).

    References
    ----------
    Vehtari, A., Gelman, A., Simpson, D., Carpenter, B. and Bürkner, P.-C. (2021).
    Rank-normalization, folding, and localization: an improved R-hat for assessing convergence
    of MCMC. *Bayesian Analysis* 16(2), 667-718.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import arviz as az
    >>> import numpy as np
    >>> from skhier.plotting import plot_diagnostics
    >>> rng = np.random.default_rng(0)
    >>> idata = az.from_dict(
    ...     posterior={"mu": rng.normal(size=(2, 200)), "tau": rng.gamma(2.0, size=(2, 200)),
    ...                "theta": rng.normal(size=(2, 200, 3))},
    ...     sample_stats={"diverging": rng.random((2, 200)) < 0.02},
    ... )
    >>> fig = plot_diagnostics(idata)  # the scalar parameters: mu, tau
    >>> [a.get_ylabel() for a in fig.axes[::2]]
    ['mu', 'tau']
    >>> plt.close(fig)
    >>> fig = plot_diagnostics(idata, ["tau", "theta"], kind="parallel")
    >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
    ['tau', 'theta[0]', 'theta[1]', 'theta[2]']
    >>> plt.close(fig)
    """
    if _is_estimator(idata):
        idata = _fitted(idata, "idata_")
    _check_choice("kind", kind, DIAGNOSTIC_KINDS)
    labels, values, diverging = _diagnostic_series(idata, var_names)
    if kind != "parallel" and len(labels) > MAX_PANELS:
        raise ValueError(
            f"kind={kind!r} would draw {len(labels)} panels (more than {MAX_PANELS}); select "
            "fewer var_names, or use kind='parallel'."
        )
    draw = {"trace": _trace, "rank": _rank_plot, "parallel": _parallel}[kind]
    return draw(labels, values, diverging, ax, figsize)
