"""Tests of skhier.plotting.diagnostics: plot_diagnostics' inputs and axes."""

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pytest

from skhier.plotting import plot_diagnostics


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
