"""Rank plot: per coordinate, the histogram of each chain's ranks among all draws."""

from __future__ import annotations

import math

import numpy as np

from skhier.plotting._axes import axes_grid


def draw_rank(labels, values, ax, figsize):
    """Draw the rank plot of ``values`` (chains, draws, coordinates); return the Figure."""
    n_chains, n_draws, n_par = values.shape
    n_cols = 1 if n_par == 1 else 2
    n_rows = math.ceil(n_par / n_cols)
    fig, axes = axes_grid(
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
