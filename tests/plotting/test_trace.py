"""Tests of plot_diagnostics(kind="trace") (skhier.plotting._trace)."""

import arviz as az
import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from skhier.plotting import DIVERGENT_COLOR, plot_diagnostics
from tests.plotting.fits import N_DIV


def test_plot_diagnostics_trace(idata):
    fig = plot_diagnostics(idata)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4  # (mu, tau) x (density, trace)
    assert [a.get_ylabel() for a in fig.axes[::2]] == ["mu", "tau"]
    trace = fig.axes[1]
    chains = [line for line in trace.get_lines() if line.get_label().startswith("chain")]
    assert len(chains) == 3
    (div,) = [line for line in trace.get_lines() if line.get_label().startswith("divergent")]
    assert len(div.get_xdata()) == N_DIV
    assert to_rgba(div.get_color()) == to_rgba(DIVERGENT_COLOR)
    assert all(to_rgba(c.get_color()) != to_rgba(DIVERGENT_COLOR) for c in chains)


def test_plot_diagnostics_vector_variable_elements(idata):
    fig = plot_diagnostics(idata, "theta", kind="trace")
    assert [a.get_ylabel() for a in fig.axes[::2]] == [f"theta[{s}]" for s in "abcd"]


def test_plot_diagnostics_without_sample_stats():
    idata = az.from_dict(posterior={"a": np.zeros((2, 50)) + np.arange(50)})
    fig = plot_diagnostics(idata, kind="trace")
    labels = [line.get_label() for line in fig.axes[1].get_lines()]
    assert not any(lab.startswith("divergent") for lab in labels)
