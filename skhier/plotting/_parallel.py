"""Parallel coordinates of the draws, the divergent ones on top."""

from __future__ import annotations

import numpy as np

from skhier.plotting._axes import DIVERGENT_COLOR, check_ax, pyplot

#: Non-divergent draws drawn at most by ``plot_diagnostics(kind="parallel")`` (evenly thinned).
MAX_PARALLEL_LINES = 1000


def draw_parallel(draws, ax, figsize):
    """Draw one line per draw across the coordinates, the divergent ones on top; return the Figure.

    Our own drawing rather than :func:`arviz.plot_parallel`, which draws every draw as a line
    of its own (about 2 s for 4 chains x 1,000 draws of 6 coordinates, against 0.1 s here) and
    raises without ``sample_stats``. Here each coordinate is scaled to [0, 1], the healthy draws
    are thinned evenly to at most :data:`MAX_PARALLEL_LINES` and drawn as one faint
    :class:`~matplotlib.collections.LineCollection`, every divergent draw as a second one in
    red above them, and the legend counts both; a posterior without divergence statistics
    draws only the first.

    Parameters
    ----------
    draws : skhier.plotting._posterior.Draws
        The coordinates (at least 2) and their divergences.
    ax : matplotlib.axes.Axes or None
        Axes to draw on; a new figure if None.
    figsize : tuple of float or None
        Size of a new figure (sized for the coordinates if None).

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on; ``ax.collections`` are the healthy then the divergent lines.
    """
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    labels, values, diverging = draws.labels, draws.values, draws.diverging
    n_chains, n_draws, n_par = values.shape
    if n_par < 2:
        raise ValueError(
            f"kind='parallel' needs at least 2 coordinates; got {labels}. Pass more var_names."
        )
    check_ax(ax)
    if ax is None:
        fig, ax = pyplot().subplots(
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
