"""Heat map of the rank distribution of each group, ``P(rank_i = r)``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from skhier.plotting._axes import MAX_TICK_LABELS, label_axis, new_ax
from skhier.plotting._inputs import (
    check_frame,
    check_top,
    fitted,
    group_name,
    is_estimator,
    numeric_values,
)

__all__ = ["plot_rank_probabilities"]


def _estimator_rank_probabilities(estimator):
    """Rank probabilities at a fitted ranker's ranked level (from its ``effect_draws()``)."""
    from skhier.ranking import rank_probabilities

    return rank_probabilities(estimator.effect_draws(), ascending=bool(estimator.ascending))


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
    if is_estimator(P):
        fitted(P, "idata_")
        P = _estimator_rank_probabilities(P)
    elif not isinstance(P, pd.DataFrame):
        if isinstance(P, pd.Series | str | bytes | dict) or P is None:
            raise TypeError(
                "P must be a rank-probability DataFrame, a fitted HierarchicalRanker or posterior "
                f"draws; got {type(P).__name__}."
            )
        from skhier.ranking import rank_probabilities

        P = rank_probabilities(P)
    check_frame(P, "P")
    values = numeric_values(P, "P")
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
    n = check_top(top, len(labels))
    values, exp_rank, labels = values[:n], exp_rank[:n], labels[:n]
    reached = np.flatnonzero((values > 0).any(axis=0))
    m = max(n, int(reached[-1]) + 1 if len(reached) else n)
    m = min(m, values.shape[1])
    values = values[:, :m]
    width = min(12.0, max(4.0, 0.18 * m + 2.5))
    ax = new_ax(ax, (width, min(14.0, max(2.6, 0.24 * n + 1.3))))
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
    label_axis(ax, "y", labels.tolist(), np.arange(n))
    ax.set_xlabel("rank (1 = best)")
    name = group_name(labels)
    ax.set_ylabel(name if n <= MAX_TICK_LABELS else f"{name} ({n}, best first)")
    ax.figure.colorbar(im, ax=ax, label="P(rank = r)")
    return ax
