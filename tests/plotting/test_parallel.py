"""Tests of plot_diagnostics(kind="parallel") (skhier.plotting._parallel)."""

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_rgba

from skhier.plotting import DIVERGENT_COLOR, MAX_PARALLEL_LINES, plot_diagnostics
from tests.plotting.fits import N_DIV, tick_texts


def test_plot_diagnostics_parallel(idata):
    from matplotlib.collections import LineCollection

    fig = plot_diagnostics(idata, ["mu", "tau", "theta"], kind="parallel")
    (ax,) = fig.axes
    assert tick_texts(ax.get_xticklabels()) == ["mu", "tau"] + [f"theta[{s}]" for s in "abcd"]
    ok, bad = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(ok.get_segments()) == 900 - N_DIV
    assert len(bad.get_segments()) == N_DIV
    assert tuple(bad.get_colors()[0][:3]) == to_rgba(DIVERGENT_COLOR)[:3]
    assert tuple(ok.get_colors()[0][:3]) != tuple(bad.get_colors()[0][:3])
    assert bad.get_zorder() > ok.get_zorder()
    ys = np.concatenate([s[:, 1] for s in ok.get_segments()])
    assert ys.min() >= 0.0 and ys.max() <= 1.0


def test_plot_diagnostics_parallel_thins_healthy_draws():
    rng = np.random.default_rng(4)
    diverging = np.zeros((2, 1500), dtype=bool)
    diverging[0, :5] = True
    idata = az.from_dict(
        posterior={"a": rng.normal(size=(2, 1500)), "b": rng.normal(size=(2, 1500))},
        sample_stats={"diverging": diverging},
    )
    _, ax = plt.subplots()
    fig = plot_diagnostics(idata, kind="parallel", ax=ax)
    assert fig is ax.figure
    ok, bad = ax.collections
    assert len(ok.get_segments()) == MAX_PARALLEL_LINES
    assert len(bad.get_segments()) == 5
