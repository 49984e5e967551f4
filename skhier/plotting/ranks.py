"""Caterpillar plot of a ranking: ranks (or effects) with their credible intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd

from skhier._validation import check_choice
from skhier.plotting._axes import MAX_TICK_LABELS, label_axis, new_ax
from skhier.plotting._inputs import check_frame, check_top, fitted, group_name, is_estimator

__all__ = ["plot_ranks"]

#: Colour of the true values in :func:`plot_ranks`.
TRUTH_COLOR = "C1"
#: What :func:`plot_ranks` draws intervals of.
INTERVALS = ("rank", "effect")


def _pct(value):
    return f"{100 * float(value):g}%"


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
    if is_estimator(table):
        table = fitted(table, "rank_")
    check_frame(table, "table")
    check_choice("interval", interval, INTERVALS)
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
    n = check_top(top, len(table))
    shown = table.iloc[:n]
    center, low, high = (shown[c].to_numpy(dtype=np.float64) for c in needed)
    y = np.arange(n)
    attrs = table.attrs
    ax = new_ax(ax, (6.4, min(14.0, max(2.6, 0.24 * n + 1.3))))

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
    label_axis(ax, "y", shown.index.tolist(), y)
    name = group_name(table.index)
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
