"""Tests of skhier.plotting.probabilities: plot_rank_probabilities."""

import numpy as np
import pytest

from skhier.plotting import plot_rank_probabilities
from skhier.ranking import rank_probabilities
from tests.plotting.fits import EFFECTS, by_label, tick_texts


def test_plot_rank_probabilities(draws):
    P = rank_probabilities(draws)
    ax = plot_rank_probabilities(P)
    (im,) = ax.images
    assert im.get_array().shape == (8, 8)
    assert im.colorbar is not None
    assert tick_texts(ax.get_yticklabels()) == [str(i) for i in np.argsort(-EFFECTS)]
    (dots,) = by_label(ax, "expected rank")
    np.testing.assert_allclose(dots.get_xdata(), P.to_numpy() @ np.arange(1, 9))
    assert ax.get_xlabel() == "rank (1 = best)"


def test_plot_rank_probabilities_reorders_and_top(draws):
    P = rank_probabilities(draws, order=None)
    ax = plot_rank_probabilities(P, top=2, expected=False)
    assert tick_texts(ax.get_yticklabels()) == [str(i) for i in np.argsort(-EFFECTS)[:2]]
    shown = np.asarray(ax.images[0].get_array())
    reached = int(np.flatnonzero(P.loc[[3, 6]].to_numpy().any(axis=0))[-1]) + 1
    assert shown.shape == (2, max(2, reached))
    assert by_label(ax, "expected rank") == []


def test_plot_rank_probabilities_from_draws(draws):
    ax = plot_rank_probabilities(draws)
    np.testing.assert_allclose(ax.images[0].get_array(), rank_probabilities(draws).to_numpy())


def test_plot_rank_probabilities_bad_input(draws):
    P = rank_probabilities(draws)
    with pytest.raises(ValueError, match=r"top=-1"):
        plot_rank_probabilities(P, top=-1)
    with pytest.raises(ValueError, match="ranks 1..N"):
        plot_rank_probabilities(P.set_axis(list("abcdefgh"), axis=1))
    with pytest.raises(ValueError, match="ranks 1..N in order"):
        plot_rank_probabilities(P.set_axis(np.arange(2, 10), axis=1))
    with pytest.raises(ValueError, match="non-negative"):
        plot_rank_probabilities(-P)
    with pytest.raises(TypeError, match="rank-probability DataFrame"):
        plot_rank_probabilities(P.iloc[0])
