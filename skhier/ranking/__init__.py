"""Rank groups by posterior effects and say how sure the ranking is.

Everything here is a pure function of posterior draws: an array of shape ``(chains, draws, N)``
(or ``(draws, N)`` for one chain) of the effects of ``N`` groups, or an ArviZ ``InferenceData`` /
xarray ``DataArray`` holding them. Nothing here imports PyMC or Bambi; numba (for the compiled
kernels in ``skhier.ranking._kernels``) and ArviZ/xarray are imported only when needed.

Conventions
-----------
- **Direction.** With ``ascending=False`` (the default) the largest effect is best and has rank 1;
  ``ascending=True`` makes the smallest effect best (essential-gene screens).
- **Per-draw ranks** are average ranks: in each draw,
  ``rank_i = 1 + #{j better than i} + #{j != i tied with i} / 2``. Hence the expected rank and the
  dominance matrix agree exactly: ``expected_rank_i = 1 + sum_{j != i} D[j, i]``
  (``= 0.5 + D[:, i].sum()`` with the default diagonal of 0.5).
- **Dominance** ``D[i, j] = P(i better than j)``, that is ``P(beta_i > beta_j)`` for
  ``ascending=False`` (``P(beta_i < beta_j)`` for ``ascending=True``), ties counting one half, so
  ``D + D.T == 1``. The diagonal is 0.5 by default (a group ties with itself), which makes
  ``D + D.T == 1`` hold everywhere; pass ``diagonal=np.nan`` to blank it.

Modules
-------
- :mod:`skhier.ranking.draws`: per-draw ranks;
- :mod:`skhier.ranking.table`: the rank table, from an array or any posterior;
- :mod:`skhier.ranking.pairwise`: the dominance matrix, whole or for the top-k rows;
- :mod:`skhier.ranking.probabilities`: rank probabilities;
- ``skhier.ranking._kernels``: the compiled kernels behind ``backend="numba"``.

The Monte Carlo standard errors in the rank table come from :func:`skhier.diagnostics.mcse_mean`,
the same ESS the sampler checks use.

Examples
--------
>>> import numpy as np
>>> from skhier.ranking import rank_table
>>> rng = np.random.default_rng(0)
>>> draws = rng.normal([0.0, 1.0, 3.0], 0.5, size=(2, 500, 3))  # 2 chains, 500 draws, 3 groups
>>> table = rank_table(draws, labels=["a", "b", "c"], top_k=1)
>>> table.index.tolist()
['c', 'b', 'a']
>>> table["rank"].tolist()
[1, 2, 3]
"""

from skhier.ranking._inputs import BACKENDS, RANK_TABLE_COLUMNS
from skhier.ranking.draws import draw_ranks
from skhier.ranking.pairwise import dominance
from skhier.ranking.probabilities import rank_probabilities
from skhier.ranking.table import rank_posterior, rank_table

__all__ = [
    "BACKENDS",
    "RANK_TABLE_COLUMNS",
    "dominance",
    "draw_ranks",
    "rank_posterior",
    "rank_probabilities",
    "rank_table",
]
