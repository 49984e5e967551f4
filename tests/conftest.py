import os

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

from tests.helpers import FORUM


@pytest.fixture(scope="session")
def forum_sim():
    from skhier import ScreenSimulator

    sim = ScreenSimulator(n_genes=5, sgrnas_per_gene=4, n_samples=50, random_state=0)
    df = sim.fit_transform()
    return sim, df


@pytest.fixture(scope="session")
def forum_fit(forum_sim):
    """The README's demo fit: nutpie, 4 chains x 1000 draws."""
    from skhier import HierarchicalRanker

    sim, df = forum_sim
    ranker = HierarchicalRanker(formula=FORUM, level="gene", random_state=0)
    ranker.fit(df)
    return ranker



@pytest.fixture
def rng():
    return np.random.default_rng(0)
