"""Trace plot: per coordinate, the density and the trace of each chain (ArviZ), divergences marked.

ArviZ draws the densities and traces; the divergent draws are drawn here, on top.
"""

from __future__ import annotations

import numpy as np

from skhier.plotting._axes import DIVERGENT_COLOR, axes_grid, pyplot


def chain_colors(n_chains):
    """Colours of the chains: matplotlib's colour cycle without the colour of divergences."""
    from matplotlib.colors import to_rgba

    cycle = pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    palette = [c for c in cycle if to_rgba(c) != to_rgba(DIVERGENT_COLOR)] or cycle
    return [palette[c % len(palette)] for c in range(n_chains)]


def mark_divergences(dens, trace, x, diverging):
    """Mark a coordinate's divergent draws: dots at their values on the trace, a density rug.

    ``x`` and ``diverging`` have shape (chains, draws).
    """
    ci, di = np.nonzero(diverging)
    if not len(ci):
        return
    trace.plot(
        di, x[ci, di], "o", ms=3, color=DIVERGENT_COLOR, zorder=3, label=f"divergent ({len(ci)})"
    )
    dens.plot(
        x[ci, di],
        np.zeros(len(ci)),
        "|",
        ms=10,
        mew=1.2,
        color=DIVERGENT_COLOR,
        zorder=3,
        label="divergent",
    )


def draw_trace(draws, ax, figsize):
    """Draw trace plots with :func:`arviz.plot_trace`, divergent draws marked; return the Figure.

    ArviZ draws, per coordinate, the density (KDE) of each chain and the trace of each chain.
    Its own divergence markers are left out: they are black ticks along the bottom of the
    panels (a colour it does not let one choose) that show *which* draws diverged but not
    *where*. Here each divergent draw is a red dot at its value on the trace, and a red rug
    under the density, so that divergences gathered at one end of a parameter (a small group
    scale: the funnel's neck) stand out. The chains are coloured without that red, and the
    trace lines labelled ``chain <c>`` for the legend.

    Parameters
    ----------
    draws : skhier.plotting._posterior.Draws
        The coordinates to plot (one row of two panels each) and their divergences.
    ax : array of matplotlib Axes or None
        ``n x 2`` Axes (density, trace) for ``n`` coordinates, or None for a new figure.
    figsize : tuple of float or None
        Size of a new figure (sized for the rows if None).

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on.
    """
    import arviz as az

    n_chains, n_draws, n_par = draws.shape
    fig, axes = axes_grid(ax, n_par, 2, figsize or (9.0, 1.7 * n_par + 0.6))
    az.plot_trace(
        draws.posterior,
        compact=False,
        divergences=None,
        chain_prop={"color": chain_colors(n_chains)},
        axes=axes,
        show=False,
    )
    for p, label in enumerate(draws.labels):
        dens, trace = axes[p]
        chains = [line for line in trace.get_lines() if len(line.get_xdata()) == n_draws]
        for c, line in enumerate(chains[:n_chains]):
            line.set_label(f"chain {c}")
        mark_divergences(dens, trace, draws.values[:, :, p], draws.diverging)
        dens.set_title("")
        trace.set_title("")
        dens.set_ylabel(label, fontsize="small")
        dens.set_yticks([])
        trace.set_xlim(0, max(n_draws - 1, 1))
    axes[-1, 0].set_xlabel("value")
    axes[-1, 1].set_xlabel("draw")
    axes[0, 0].set_title("posterior density by chain", fontsize="medium")
    axes[0, 1].set_title("trace", fontsize="medium")
    if n_chains <= 8 or draws.diverging.any():
        axes[0, 1].legend(loc="upper right", fontsize="x-small", ncol=min(n_chains + 1, 5))
    return fig
