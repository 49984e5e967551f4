"""Tests of skhier.plotting.diagnostics: plot_diagnostics' inputs and axes."""

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pytest

from skhier.plotting import plot_diagnostics
from tests.plotting.fits import tick_texts


def test_plot_diagnostics_given_axes(idata):
    fig, axes = plt.subplots(2, 2)
    assert plot_diagnostics(idata, kind="trace", ax=axes) is fig
    with pytest.raises(ValueError, match=r"ax must hold 2 matplotlib Axes"):
        plot_diagnostics(idata, kind="rank", ax=axes)


def test_plot_diagnostics_bad_input(idata):
    with pytest.raises(ValueError, match=r"kind='pairs'.*\('trace', 'rank', 'parallel'\)"):
        plot_diagnostics(idata, kind="pairs")
    with pytest.raises(ValueError, match=r"\['nope'\].*choose from"):
        plot_diagnostics(idata, ["mu", "nope"])
    with pytest.raises(ValueError, match="at least 2 coordinates"):
        plot_diagnostics(idata, "mu", kind="parallel")
    with pytest.raises(TypeError, match="InferenceData"):
        plot_diagnostics(np.zeros((2, 10)))
    vec = az.from_dict(posterior={"theta": np.zeros((2, 10, 40))})
    with pytest.raises(ValueError, match="no scalar"):
        plot_diagnostics(vec)
    with pytest.raises(ValueError, match="40 panels"):
        plot_diagnostics(vec, "theta")


def test_posterior_without_chain_dim_or_coords():
    from types import SimpleNamespace

    import xarray as xr

    rng = np.random.default_rng(7)
    post = xr.Dataset(
        {
            "a": (("draw",), rng.normal(size=120)),
            "v": (("draw", "k"), rng.normal(size=(120, 2))),
        }
    )
    idata = SimpleNamespace(posterior=post)  # any object with a posterior Dataset
    fig = plot_diagnostics(idata, ["a", "v"], kind="trace")
    assert [a.get_ylabel() for a in fig.axes[::2]] == ["a", "v[0]", "v[1]"]
    np.testing.assert_array_equal(fig.axes[5].get_lines()[0].get_ydata(), post["v"][:, 1])
    fig = plot_diagnostics(idata, ["a", "v"], kind="rank")
    assert [a.get_title() for a in fig.axes if a.get_visible()] == ["a", "v[0]", "v[1]"]
    fig = plot_diagnostics(idata, ["a", "v"], kind="parallel")
    assert tick_texts(fig.axes[0].get_xticklabels()) == ["a", "v[0]", "v[1]"]
