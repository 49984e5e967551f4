"""Tests of plot_diagnostics(kind="rank") (skhier.plotting._rank_plot, drawn by ArviZ)."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy.stats import rankdata

from skhier.plotting import plot_diagnostics
from skhier.plotting._rank_plot import rank_bins


def chain_rows(ax, n_chains, n_bins):
    """The bars of a rank panel as (bottoms, heights), each of shape (n_chains, n_bins)."""
    patches = ax.patches
    bottoms = np.array([p.get_y() for p in patches]).reshape(n_chains, n_bins)
    heights = np.array([p.get_height() for p in patches]).reshape(n_chains, n_bins)
    return bottoms, heights


def test_plot_diagnostics_rank(idata):
    fig = plot_diagnostics(idata, ["mu", "tau", "theta"], kind="rank")
    visible = [a for a in fig.axes if a.get_visible()]
    assert len(visible) == 6
    assert [a.get_title() for a in visible][:2] == ["mu", "tau"]
    assert [a.get_title() for a in visible][2:] == [f"theta[{s}]" for s in "abcd"]
    assert len(visible[0].patches) == 3 * 15  # 3 chains x 15 bins (300 draws // 20)
    # In place of the own plot's "tallest bar = 0.85 of a chain's row": each chain's bars sit on
    # one baseline, one row per chain, and no bar reaches into the next chain's row.
    bottoms, heights = chain_rows(visible[0], 3, 15)
    assert (bottoms == bottoms[:, :1]).all()
    gaps = np.diff(bottoms[:, 0])
    assert (gaps > 0).all()
    assert (heights[:-1].max(axis=1) < gaps).all()


@pytest.mark.parametrize(("var", "element"), [("mu", None), ("theta", 2)])
def test_rank_plot_heights_are_each_chains_rank_histogram(idata, var, element):
    fig = plot_diagnostics(idata, [var], kind="rank")
    ax = fig.axes[0] if element is None else fig.axes[element]
    x = np.asarray(idata.posterior[var])
    x = x if element is None else x[..., element]
    ranks = rankdata(x.ravel()).reshape(x.shape)
    counts = np.stack([np.histogram(r, bins=15, range=(0, x.size))[0] for r in ranks]).astype(
        np.float64
    )
    _, heights = chain_rows(ax, 3, 15)
    np.testing.assert_allclose(
        heights / heights.sum(axis=1, keepdims=True), counts / counts.sum(axis=1, keepdims=True)
    )
    (dashed,) = {line.get_linestyle() for line in ax.get_lines()}
    assert dashed == "--" and len(ax.get_lines()) == 3  # the uniform, once per chain


def test_rank_plot_one_panel_and_bins():
    import arviz as az

    idata = az.from_dict(posterior={"a": np.random.default_rng(5).normal(size=(2, 60))})
    fig = plot_diagnostics(idata, kind="rank")
    (ax,) = fig.axes
    assert len(ax.patches) == 2 * 5  # at least 5 bins
    assert [rank_bins(n) for n in (60, 300, 400, 4000)] == [5, 15, 20, 20]
    plt.close(fig)
