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


def test_trace_lines_are_the_draws_of_each_element(idata):
    fig = plot_diagnostics(idata, ["mu", "theta"], kind="trace")
    theta = np.asarray(idata.posterior["theta"])
    for p, x in enumerate([np.asarray(idata.posterior["mu"])] + [theta[..., k] for k in range(4)]):
        trace = fig.axes[2 * p + 1]
        chains = [line for line in trace.get_lines() if line.get_label().startswith("chain")]
        assert [line.get_label() for line in chains] == ["chain 0", "chain 1", "chain 2"]
        for c, line in enumerate(chains):
            np.testing.assert_array_equal(line.get_xdata(), np.arange(300))
            np.testing.assert_array_equal(line.get_ydata(), x[c])


def test_divergent_draws_marked_at_their_values(idata):
    fig = plot_diagnostics(idata, ["tau"], kind="trace")
    dens, trace = fig.axes
    ci, di = np.nonzero(np.asarray(idata.sample_stats["diverging"]))
    tau = np.asarray(idata.posterior["tau"])
    (dots,) = [line for line in trace.get_lines() if line.get_label().startswith("divergent")]
    assert dots.get_label() == f"divergent ({N_DIV})"
    np.testing.assert_array_equal(dots.get_xdata(), di)
    np.testing.assert_array_equal(dots.get_ydata(), tau[ci, di])
    (rug,) = [line for line in dens.get_lines() if line.get_label() == "divergent"]
    np.testing.assert_array_equal(rug.get_xdata(), tau[ci, di])
    assert to_rgba(rug.get_color()) == to_rgba(DIVERGENT_COLOR)
    # ArviZ's own black divergence ticks are left out
    assert not [
        line
        for line in trace.get_lines() + dens.get_lines()
        if line.get_marker() == "|" and to_rgba(line.get_color()) != to_rgba(DIVERGENT_COLOR)
    ]


def test_trace_draws_numbered_from_zero_and_chains_never_red():
    rng = np.random.default_rng(6)
    diverging = np.zeros((5, 80), dtype=bool)
    diverging[3, [10, 70]] = True
    idata = az.from_dict(
        posterior={"a": rng.normal(size=(5, 80))},
        sample_stats={"diverging": diverging},
        coords={"draw": np.arange(1000, 1080)},
    )
    fig = plot_diagnostics(idata, kind="trace")
    trace = fig.axes[1]
    chains = [line for line in trace.get_lines() if line.get_label().startswith("chain")]
    assert len(chains) == 5
    assert all(to_rgba(c.get_color()) != to_rgba(DIVERGENT_COLOR) for c in chains)
    assert len({to_rgba(c.get_color()) for c in chains}) == 5
    np.testing.assert_array_equal(chains[3].get_xdata(), np.arange(80))
    (dots,) = [line for line in trace.get_lines() if line.get_label().startswith("divergent")]
    np.testing.assert_array_equal(dots.get_xdata(), [10, 70])
    np.testing.assert_array_equal(dots.get_ydata(), np.asarray(idata.posterior["a"])[3, [10, 70]])
