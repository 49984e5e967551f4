"""Fixtures of the plotting tests: the Agg backend, no show(), figures closed after each test."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from skhier.ranking import rank_table  # noqa: E402
from tests.plotting.fits import EFFECTS, LABELS, make_draws, make_idata  # noqa: E402


@pytest.fixture(autouse=True)
def _no_show_and_close(monkeypatch):
    def show(*args, **kwargs):
        raise AssertionError("plotting functions must never call show()")

    monkeypatch.setattr(plt, "show", show)
    before = set(plt.get_fignums())
    yield
    for num in set(plt.get_fignums()) - before:
        plt.close(num)


@pytest.fixture(scope="module")
def draws():
    return make_draws()


@pytest.fixture(scope="module")
def table(draws):
    return rank_table(draws, labels=LABELS, top_k=3, index_name="gene")


@pytest.fixture(scope="module")
def truth():
    return pd.Series(EFFECTS, index=LABELS)


@pytest.fixture(scope="module")
def idata():
    return make_idata()
