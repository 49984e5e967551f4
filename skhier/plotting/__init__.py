"""Plots of rankings, dominance, rank probabilities and sampler health (matplotlib).

Every function draws on the Axes it is given (``ax=``) or on a new figure, returns what it drew
on (the Axes, or the Figure for the multi-panel diagnostics) and never calls ``show()``.
matplotlib (and ArviZ, which imports it) is imported inside the functions, so
``import skhier`` and ``import skhier.plotting`` do not load it.

Each function accepts the object it plots (a rank table, a dominance frame, a rank-probability
frame, an InferenceData) or a fitted :class:`~skhier.HierarchicalRanker`, whose ``rank_``,
``dominance_``, rank probabilities or ``idata_`` are then used.

One module per plot, each re-exported here:

- :mod:`skhier.plotting.ranks`: :func:`plot_ranks`, the caterpillar plot of a ranking;
- :mod:`skhier.plotting.dominance`: :func:`plot_dominance`, the pairwise dominance heat map;
- :mod:`skhier.plotting.probabilities`: :func:`plot_rank_probabilities`, each group's rank
  distribution;
- :mod:`skhier.plotting.diagnostics`: :func:`plot_diagnostics`, trace, rank and
  parallel-coordinates plots of the draws (ArviZ draws the first two);
- :mod:`skhier.plotting.ppc`: :func:`plot_ppc`, the posterior predictive check of a fitted
  ranker (replicated against observed densities and group means).

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

# The settings below are importable from skhier.plotting as before (explicit re-exports).
from skhier.plotting._axes import DIVERGENT_COLOR as DIVERGENT_COLOR
from skhier.plotting._axes import MAX_TICK_LABELS as MAX_TICK_LABELS
from skhier.plotting._parallel import MAX_PARALLEL_LINES as MAX_PARALLEL_LINES
from skhier.plotting.diagnostics import DIAGNOSTIC_KINDS as DIAGNOSTIC_KINDS
from skhier.plotting.diagnostics import MAX_PANELS as MAX_PANELS
from skhier.plotting.diagnostics import plot_diagnostics
from skhier.plotting.dominance import plot_dominance
from skhier.plotting.ppc import PPC_KINDS as PPC_KINDS
from skhier.plotting.ppc import plot_ppc
from skhier.plotting.probabilities import plot_rank_probabilities
from skhier.plotting.ranks import INTERVALS as INTERVALS
from skhier.plotting.ranks import TRUTH_COLOR as TRUTH_COLOR
from skhier.plotting.ranks import plot_ranks

__all__ = [
    "plot_diagnostics",
    "plot_dominance",
    "plot_ppc",
    "plot_rank_probabilities",
    "plot_ranks",
]
