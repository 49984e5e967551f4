"""Tests of skhier.plotting as a whole: fitted rankers, lazy imports, a real fit."""

import subprocess
import sys

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from skhier.plotting import (
    plot_diagnostics,
    plot_dominance,
    plot_ppc,
    plot_rank_probabilities,
    plot_ranks,
)
from skhier.ranking import rank_probabilities
from tests.plotting.fits import ORDER, FakeRanker, tick_texts


def test_plots_accept_fitted_ranker(draws, idata):
    fake = FakeRanker(draws, idata)
    assert tick_texts(plot_ranks(fake).get_yticklabels()) == ORDER
    assert tick_texts(plot_dominance(fake).get_yticklabels()) == ORDER
    ax = plot_rank_probabilities(fake)
    assert tick_texts(ax.get_yticklabels()) == ORDER
    assert fake.effect_draws_calls == [None]  # the public draws of the ranked level
    assert len(plot_diagnostics(fake).axes) == 4


def test_plots_reject_unfitted_ranker():
    from skhier import HierarchicalRanker

    ranker = HierarchicalRanker()
    for plot in (plot_ranks, plot_dominance, plot_rank_probabilities, plot_diagnostics, plot_ppc):
        with pytest.raises(NotFittedError, match="not fitted"):
            plot(ranker)


def test_public_names():
    import skhier.plotting as plotting

    assert plotting.__all__ == [
        "plot_diagnostics",
        "plot_dominance",
        "plot_ppc",
        "plot_rank_probabilities",
        "plot_ranks",
    ]
    homes = {
        "plot_diagnostics": "skhier.plotting.diagnostics",
        "plot_dominance": "skhier.plotting.dominance",
        "plot_ppc": "skhier.plotting.ppc",
        "plot_rank_probabilities": "skhier.plotting.probabilities",
        "plot_ranks": "skhier.plotting.ranks",
    }
    assert {name: getattr(plotting, name).__module__ for name in plotting.__all__} == homes
    settings = {
        "DIAGNOSTIC_KINDS": ("trace", "rank", "parallel"),
        "DIVERGENT_COLOR": "C3",
        "INTERVALS": ("rank", "effect"),
        "MAX_PANELS": 30,
        "MAX_PARALLEL_LINES": 1000,
        "MAX_TICK_LABELS": 50,
        "PPC_KINDS": ("density", "group_means", "both"),
        "TRUTH_COLOR": "C1",
    }
    assert {name: getattr(plotting, name) for name in settings} == settings


def test_import_is_lazy():
    code = (
        "import sys, skhier, skhier.plotting; "
        "import skhier.plotting.diagnostics, skhier.plotting.ranks, skhier.plotting.ppc; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'; "
        "assert 'arviz' not in sys.modules, 'arviz imported'; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.slow
def test_plots_of_a_real_fit(forum_fit, forum_sim):
    sim, _ = forum_sim
    ax = plot_ranks(forum_fit, truth=sim.true_slopes_["gene"])
    assert tick_texts(ax.get_yticklabels()) == forum_fit.rank_.index.tolist()
    assert plot_dominance(forum_fit).images[0].get_array().shape == (5, 5)
    ax = plot_rank_probabilities(forum_fit)
    assert tick_texts(ax.get_yticklabels()) == forum_fit.rank_.index.tolist()
    P = rank_probabilities(forum_fit.effect_draws()).loc[forum_fit.rank_.index]
    np.testing.assert_allclose(ax.images[0].get_array(), P.to_numpy()[:, : P.shape[0]])
    fig = plot_diagnostics(forum_fit)
    assert len(fig.axes) == 2 * 4  # H0, sigma and the two group scales
    fig = plot_diagnostics(forum_fit, kind="parallel")
    assert len(fig.axes) == 1
    fig = plot_ppc(forum_fit, random_state=0)
    assert len(fig.axes) == 2 and len(fig.axes[0].get_lines()) == 50 + 2
    assert len(fig.axes[1].get_xticklabels()) == 5  # the ranked level: genes
