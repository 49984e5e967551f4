"""Tests of skhier.plotting.dominance: plot_dominance on exact dominance frames."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes

from skhier.plotting import plot_dominance
from skhier.ranking import dominance
from tests.plotting.fits import EFFECTS, LABELS, ORDER, tick_texts


def test_plot_dominance(draws):
    D = dominance(draws)
    D.index = D.columns = pd.Index([LABELS[i] for i in D.index], name="gene")
    ax = plot_dominance(D)
    assert isinstance(ax, Axes)
    (im,) = ax.images
    assert im.get_array().shape == (8, 8)
    assert im.colorbar is not None
    assert im.get_clim() == (0.0, 1.0)
    assert tick_texts(ax.get_yticklabels()) == ORDER
    assert tick_texts(ax.get_xticklabels()) == ORDER
    assert "P(beta_i > beta_j)" in im.colorbar.ax.get_ylabel()
    np.testing.assert_allclose(im.get_array(), D.to_numpy())


def test_plot_dominance_reorders_unordered_input(draws):
    D = dominance(draws, order=None, dtype=np.float64)
    D.attrs.pop("order")
    ax = plot_dominance(D)
    assert tick_texts(ax.get_yticklabels()) == [str(i) for i in np.argsort(-EFFECTS)]
    values = np.asarray(ax.images[0].get_array())
    assert (values[np.triu_indices(8, 1)] > 0.5).all()


def test_plot_dominance_top_and_annotate(draws):
    D = dominance(draws)
    ax = plot_dominance(D, top=3, annotate=True)
    assert ax.images[0].get_array().shape == (3, 3)
    assert len(ax.get_yticklabels()) == 3
    assert len(ax.texts) == 9


def test_plot_dominance_counts_condensed_and_top_k(draws):
    D = dominance(draws, dtype=np.float64)
    ref = D.to_numpy()
    counts = dominance(draws, counts=True)
    np.testing.assert_allclose(plot_dominance(counts).images[0].get_array(), ref, atol=1e-12)
    condensed = dominance(draws, condensed=True, dtype=np.float64)
    np.testing.assert_allclose(plot_dominance(condensed).images[0].get_array(), ref, atol=1e-12)
    rows = dominance(draws, top_k=3, dtype=np.float64)
    im = plot_dominance(rows).images[0]
    assert im.get_array().shape == (3, 8)
    np.testing.assert_allclose(im.get_array(), ref[:3], atol=1e-12)


def test_plot_dominance_many_groups_no_tick_labels():
    draws = np.random.default_rng(2).normal(np.arange(55.0), 2.0, size=(100, 55))
    ax = plot_dominance(dominance(draws))
    assert ax.get_xticks().size == 0 and ax.get_yticks().size == 0
    assert ax.images[0].colorbar is not None


def test_plot_dominance_bad_input(draws):
    D = dominance(draws)
    with pytest.raises(ValueError, match=r"top=0"):
        plot_dominance(D, top=0)
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        plot_dominance(D * 3)
    with pytest.raises(TypeError, match="dominance DataFrame"):
        plot_dominance(D.to_numpy())
    with pytest.raises(ValueError, match="empty"):
        plot_dominance(D.iloc[:0, :0])
    with pytest.raises(ValueError, match="counts=True"):
        plot_dominance(dominance(draws, counts=True, top_k=2))
