"""Tests of skhier.plotting: fast (synthetic draws, no sampling), Agg backend."""

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import arviz as az  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

from skhier.plotting import (  # noqa: E402
    DIVERGENT_COLOR,
    MAX_PARALLEL_LINES,
    plot_diagnostics,
    plot_dominance,
    plot_rank_probabilities,
    plot_ranks,
)
from skhier.ranking import dominance, rank_probabilities, rank_table  # noqa: E402

EFFECTS = np.array([0.2, 1.0, 0.9, 2.0, 0.0, 0.5, 1.5, -0.3])
LABELS = [f"g{i}" for i in range(len(EFFECTS))]
ORDER = [LABELS[i] for i in np.argsort(-EFFECTS)]  # best first (largest effect)


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
    rng = np.random.default_rng(0)
    return EFFECTS + 0.15 * rng.standard_normal((2, 400, len(EFFECTS)))


@pytest.fixture(scope="module")
def table(draws):
    return rank_table(draws, labels=LABELS, top_k=3, index_name="gene")


@pytest.fixture(scope="module")
def truth():
    return pd.Series(EFFECTS, index=LABELS)


def tick_texts(labels):
    return [t.get_text() for t in labels]


def errorbars(ax):
    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


def n_bars(container):
    return len(container.lines[2][0].get_segments())


def by_label(ax, label):
    return [line for line in ax.get_lines() if line.get_label() == label]


# ============================================================================================
# plot_ranks
# ============================================================================================
def test_plot_ranks_rank_interval(table):
    ax = plot_ranks(table)
    assert isinstance(ax, Axes)
    assert tick_texts(ax.get_yticklabels()) == ORDER
    bars = errorbars(ax)
    assert len(bars) == 2  # joint band + marginal interval
    assert [n_bars(c) for c in bars] == [len(table)] * 2
    labels = [c.get_label() for c in bars]
    assert any("joint" in lab for lab in labels)
    points = by_label(ax, "expected rank")[0]
    np.testing.assert_allclose(points.get_xdata(), table["expected_rank"])
    np.testing.assert_allclose(points.get_ydata(), np.arange(len(table)))
    assert ax.get_xlabel() == "rank (1 = best)"
    assert ax.get_ylabel() == "gene"
    bottom, top = ax.get_ylim()
    assert bottom > top  # best group on top
    assert ax.get_legend() is not None


def test_plot_ranks_intervals_span_rank_interval(table):
    ax = plot_ranks(table, joint=False)
    (bars,) = errorbars(ax)
    segs = bars.lines[2][0].get_segments()
    lows = [min(s[:, 0]) for s in segs]
    highs = [max(s[:, 0]) for s in segs]
    np.testing.assert_allclose(lows, table["rank_low"])
    np.testing.assert_allclose(highs, table["rank_high"])


def test_plot_ranks_without_joint_columns(table):
    ax = plot_ranks(table.drop(columns=["joint_rank_low", "joint_rank_high"]))
    assert len(errorbars(ax)) == 1


def test_plot_ranks_top(table):
    ax = plot_ranks(table, top=3)
    assert tick_texts(ax.get_yticklabels()) == ORDER[:3]
    assert all(n_bars(c) == 3 for c in errorbars(ax))
    ax2 = plot_ranks(table, top=100)  # clipped to the table
    assert len(ax2.get_yticklabels()) == len(table)


def test_plot_ranks_effect_interval(table):
    ax = plot_ranks(table, interval="effect")
    (bars,) = errorbars(ax)
    assert n_bars(bars) == len(table)
    segs = bars.lines[2][0].get_segments()
    np.testing.assert_allclose([min(s[:, 0]) for s in segs], table["hdi_low"])
    means = by_label(ax, "posterior mean")[0]
    np.testing.assert_allclose(means.get_xdata(), table["mean"])
    assert ax.get_xlabel() == "effect"


def test_plot_ranks_orders_best_first(table):
    shuffled = table.sample(frac=1.0, random_state=1)
    shuffled.attrs = table.attrs
    ax = plot_ranks(shuffled)
    assert tick_texts(ax.get_yticklabels()) == ORDER


def test_plot_ranks_truth_as_ranks(table, truth):
    ax = plot_ranks(table, truth=truth, top=4)
    (marks,) = by_label(ax, "true rank")
    true_rank = truth.rank(ascending=False)
    np.testing.assert_allclose(marks.get_xdata(), true_rank[ORDER[:4]])
    assert to_rgba(marks.get_color()) != to_rgba(by_label(ax, "expected rank")[0].get_color())
    ax = plot_ranks(table, truth=truth.to_dict(), interval="effect")
    (marks,) = by_label(ax, "true effect")
    np.testing.assert_allclose(marks.get_xdata(), truth[ORDER])


def test_plot_ranks_truth_ascending(draws, truth):
    table = rank_table(draws, labels=LABELS, ascending=True, top_k=2)
    ax = plot_ranks(table, truth=truth)
    (marks,) = by_label(ax, "true rank")
    assert tick_texts(ax.get_yticklabels())[0] == "g7"  # smallest effect ranks 1
    assert marks.get_xdata()[0] == 1.0


def test_plot_ranks_uses_given_ax(table):
    fig, ax = plt.subplots()
    assert plot_ranks(table, ax=ax) is ax
    assert len(plt.get_fignums()) >= 1 and fig.axes == [ax]


def test_plot_ranks_many_groups_no_tick_labels():
    rng = np.random.default_rng(1)
    big = rank_table(rng.normal(np.arange(60.0), 1.0, size=(200, 60)), top_k=5)
    ax = plot_ranks(big)
    assert ax.get_yticks().size == 0
    assert n_bars(errorbars(ax)[-1]) == 60


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"interval": "bogus"}, r"interval='bogus'.*\('rank', 'effect'\)"),
        ({"top": 0}, r"top=0"),
        ({"top": -2}, r"top=-2"),
        ({"top": 2.5}, r"top=2.5"),
        ({"top": True}, r"top=True"),
    ],
)
def test_plot_ranks_bad_arguments(table, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_ranks(table, **kwargs)


def test_plot_ranks_bad_tables(table, truth):
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['rank_low'\]"):
        plot_ranks(table.drop(columns="rank_low"))
    with pytest.raises(ValueError, match=r"\['hdi_high'\].*interval='effect'"):
        plot_ranks(table.drop(columns="hdi_high"), interval="effect")
    with pytest.raises(ValueError, match="empty"):
        plot_ranks(table.iloc[:0])
    with pytest.raises(TypeError, match="DataFrame"):
        plot_ranks(table.to_numpy())
    with pytest.raises(ValueError, match=r"truth has no value for 1 group.*'g0'"):
        plot_ranks(table, truth=truth.drop("g0"))
    with pytest.raises(TypeError, match="truth must be a pandas Series"):
        plot_ranks(table, truth=EFFECTS)
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        plot_ranks(table, ax="left")


# ============================================================================================
# plot_dominance
# ============================================================================================
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


# ============================================================================================
# plot_rank_probabilities
# ============================================================================================
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


# ============================================================================================
# plot_diagnostics
# ============================================================================================
N_DIV = 7


@pytest.fixture(scope="module")
def idata():
    rng = np.random.default_rng(3)
    diverging = np.zeros((3, 300), dtype=bool)
    diverging.flat[rng.choice(900, N_DIV, replace=False)] = True
    return az.from_dict(
        posterior={
            "mu": rng.normal(size=(3, 300)),
            "tau": rng.gamma(2.0, size=(3, 300)),
            "tau_log__": rng.normal(size=(3, 300)),
            "theta": rng.normal(size=(3, 300, 4)),
        },
        sample_stats={"diverging": diverging},
        coords={"school": list("abcd")},
        dims={"theta": ["school"]},
    )


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


def test_plot_diagnostics_rank(idata):
    fig = plot_diagnostics(idata, ["mu", "tau", "theta"], kind="rank")
    visible = [a for a in fig.axes if a.get_visible()]
    assert len(visible) == 6
    assert [a.get_title() for a in visible][:2] == ["mu", "tau"]
    assert len(visible[0].patches) == 3 * 15  # 3 chains x 15 bins (300 draws // 20)
    heights = np.array([p.get_height() for p in visible[0].patches])
    assert heights.max() == pytest.approx(0.85)


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


def test_plot_diagnostics_without_sample_stats():
    idata = az.from_dict(posterior={"a": np.zeros((2, 50)) + np.arange(50)})
    fig = plot_diagnostics(idata, kind="trace")
    labels = [line.get_label() for line in fig.axes[1].get_lines()]
    assert not any(lab.startswith("divergent") for lab in labels)


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


# ============================================================================================
# Estimators, laziness
# ============================================================================================
class FakeRanker:
    """Duck-typed fitted HierarchicalRanker (no sampling)."""

    ascending = False

    def __init__(self, draws, idata):
        import xarray as xr

        self._draws = xr.DataArray(draws, dims=("chain", "draw", "gene"), coords={"gene": LABELS})
        self.idata_ = idata
        self.rank_ = rank_table(draws, labels=LABELS, top_k=3, index_name="gene")
        self.dominance_ = dominance(self._draws)

    def fit(self, X, y=None):
        return self

    def rank_table(self, level=None):
        return self.rank_

    def dominance(self, level=None):
        return self.dominance_

    def _totals(self, level=None):
        return self._draws, None


def test_plots_accept_fitted_ranker(draws, idata):
    fake = FakeRanker(draws, idata)
    assert tick_texts(plot_ranks(fake).get_yticklabels()) == ORDER
    assert tick_texts(plot_dominance(fake).get_yticklabels()) == ORDER
    ax = plot_rank_probabilities(fake)
    assert tick_texts(ax.get_yticklabels()) == ORDER
    assert len(plot_diagnostics(fake).axes) == 4


def test_plots_reject_unfitted_ranker():
    from skhier import HierarchicalRanker

    ranker = HierarchicalRanker()
    for plot in (plot_ranks, plot_dominance, plot_rank_probabilities, plot_diagnostics):
        with pytest.raises(NotFittedError, match="not fitted"):
            plot(ranker)


def test_import_is_lazy():
    code = (
        "import sys, skhier, skhier.plotting; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'; print('ok')"
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
    fig = plot_diagnostics(forum_fit)
    assert len(fig.axes) == 2 * 4  # H0, sigma and the two group scales
    fig = plot_diagnostics(forum_fit, kind="parallel")
    assert len(fig.axes) == 1
