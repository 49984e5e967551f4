"""Tests of skhier.plotting.ranks: plot_ranks on synthetic rank tables."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba

from skhier.plotting import plot_ranks
from skhier.ranking import rank_table
from tests.plotting.fits import EFFECTS, LABELS, ORDER, by_label, errorbars, n_bars, tick_texts


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
