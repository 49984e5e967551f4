"""Trace plot: per coordinate, the density and the trace of each chain, divergences marked."""

from __future__ import annotations

import numpy as np

from skhier.plotting._axes import DIVERGENT_COLOR, axes_grid


def draw_trace(labels, values, diverging, ax, figsize):
    """Draw the trace plot of ``values`` (chains, draws, coordinates); return the Figure."""
    n_chains, n_draws, n_par = values.shape
    fig, axes = axes_grid(ax, n_par, 2, figsize or (9.0, 1.7 * n_par + 0.6))
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
