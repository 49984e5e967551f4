"""Shared inputs of the plotting tests: synthetic effects and draws, a fake fitted ranker, and
helpers reading back what a plot drew. Nothing here samples."""

import arviz as az
import numpy as np
from matplotlib.container import ErrorbarContainer

from skhier.ranking import dominance, rank_table

EFFECTS = np.array([0.2, 1.0, 0.9, 2.0, 0.0, 0.5, 1.5, -0.3])
LABELS = [f"g{i}" for i in range(len(EFFECTS))]
ORDER = [LABELS[i] for i in np.argsort(-EFFECTS)]  # best first (largest effect)
#: Divergent draws in :func:`make_idata`.
N_DIV = 7


def make_draws():
    """Draws (2 chains x 400 draws x 8 groups) of well separated effects."""
    rng = np.random.default_rng(0)
    return EFFECTS + 0.15 * rng.standard_normal((2, 400, len(EFFECTS)))


def make_idata():
    """A posterior of 3 chains x 300 draws with N_DIV divergences: mu, tau, tau_log__, theta[4]."""
    rng = np.random.default_rng(3)
    diverging = np.zeros((3, 300), dtype=bool)
    diverging.flat[rng.choice(900, N_DIV, replace=False)] = True
    return az.from_dict(
        posterior={
            "mu": rng.normal(size=(3, 300)),
            "tau": rng.gamma(2.0, size=(3, 300)),
            "tau_log__": rng.normal(size=(3, 300)),
            "theta": rng.normal(size=(3, 300, 4)),
        },
        sample_stats={"diverging": diverging},
        coords={"school": list("abcd")},
        dims={"theta": ["school"]},
    )


def tick_texts(labels):
    return [t.get_text() for t in labels]


def errorbars(ax):
    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


def n_bars(container):
    return len(container.lines[2][0].get_segments())


def by_label(ax, label):
    return [line for line in ax.get_lines() if line.get_label() == label]


class FakeRanker:
    """Duck-typed fitted HierarchicalRanker (no sampling).

    It has the ranker's public ``effect_draws`` (recording its calls) and no private ``_totals``,
    so a plot reaching for the ranker's internals fails.
    """

    ascending = False

    def __init__(self, draws, idata):
        import xarray as xr

        self._draws = xr.DataArray(draws, dims=("chain", "draw", "gene"), coords={"gene": LABELS})
        self.idata_ = idata
        self.rank_ = rank_table(draws, labels=LABELS, top_k=3, index_name="gene")
        self.dominance_ = dominance(self._draws)
        self.effect_draws_calls = []

    def fit(self, X, y=None):
        return self

    def rank_table(self, level=None):
        return self.rank_

    def dominance(self, level=None):
        return self.dominance_

    def effect_draws(self, level=None):
        self.effect_draws_calls.append(level)
        return self._draws
