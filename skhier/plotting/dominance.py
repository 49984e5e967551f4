"""Heat map of a dominance matrix ``P(group i better than group j)``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from skhier.plotting._axes import label_axis, new_ax
from skhier.plotting._inputs import (
    check_frame,
    check_top,
    fitted,
    group_name,
    is_estimator,
    numeric_values,
)

__all__ = ["plot_dominance"]


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
    check_frame(D, "D")
    values = numeric_values(D, "D")
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
    if is_estimator(D):
        D = fitted(D, "dominance_")
    if not isinstance(D, pd.DataFrame | pd.Series):
        raise TypeError(
            "D must be a dominance DataFrame (or condensed Series) or a fitted "
            f"HierarchicalRanker; got {type(D).__name__}."
        )
    values, rows, cols, attrs = _dominance_frame(D)
    k_rows = check_top(top, len(rows))
    k_cols = check_top(top, len(cols))
    values = values[:k_rows, :k_cols]
    rows, cols = rows[:k_rows], cols[:k_cols]
    side = min(11.0, max(3.6, 0.22 * max(k_rows, k_cols) + 2.2))
    ax = new_ax(ax, (side + 1.3, side * max(0.35, k_rows / k_cols)))
    im = ax.imshow(
        values,
        cmap=cmap,
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
        aspect="equal",
    )
    label_axis(ax, "x", cols.tolist(), np.arange(k_cols))
    label_axis(ax, "y", rows.tolist(), np.arange(k_rows))
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
    name = group_name(rows)
    ax.set_xlabel(f"{name} j (column)")
    ax.set_ylabel(f"{name} i (row)")
    better = "<" if attrs.get("ascending", False) else ">"
    ax.figure.colorbar(
        im, ax=ax, label=f"P(beta_i {better} beta_j)", shrink=0.8 if k_rows > 3 else 1.0
    )
    return ax
