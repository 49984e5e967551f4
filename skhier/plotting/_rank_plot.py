"""Rank plot: per coordinate, the histogram of each chain's ranks among all draws (ArviZ)."""

from __future__ import annotations

import math

from skhier.plotting._axes import axes_grid


def rank_bins(n_draws):
    """Bins of the rank histograms: about 20 draws per bin, between 5 and 20 bins."""
    return int(min(20, max(5, n_draws // 20)))


def draw_rank(draws, ax, figsize):
    """Draw the rank plots of ``draws`` with :func:`arviz.plot_rank`; return the Figure.

    ArviZ draws it as it is (Vehtari et al., 2021): each chain's histogram of the ranks of its
    draws among all draws, stacked by chain, with the dashed line of the uniform. This function
    only lays out the panels (two columns, ``ax`` checked), chooses :func:`rank_bins` and titles
    each panel with its coordinate's label (``theta[a]``), as the trace and parallel plots do.

    Parameters
    ----------
    draws : skhier.plotting._posterior.Draws
        The coordinates to plot (one panel each).
    ax : array of matplotlib Axes or None
        As many Axes as panels (any shape), or None for a new figure.
    figsize : tuple of float or None
        Size of a new figure (sized for the panels if None).

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on; panels beyond the coordinates are hidden.
    """
    import arviz as az

    n_chains, n_draws, n_par = draws.shape
    n_cols = 1 if n_par == 1 else 2
    n_rows = math.ceil(n_par / n_cols)
    fig, axes = axes_grid(
        ax, n_rows, n_cols, figsize or (4.2 * n_cols, 0.55 * n_chains * n_rows + 1.2 * n_rows)
    )
    az.plot_rank(draws.posterior, bins=rank_bins(n_draws), ax=axes, show=False)
    flat_axes = axes.ravel()
    for a, label in zip(flat_axes, draws.labels, strict=False):
        a.set_title(label, fontsize="small")
        a.set_xlabel("rank of draw (all chains)", fontsize="small")
        a.set_ylabel("chain", fontsize="small")
    for a in flat_axes[n_par:]:
        a.set_visible(False)
    return fig
