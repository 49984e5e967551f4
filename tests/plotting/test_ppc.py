"""plot_ppc: what the posterior predictive check draws, and the checks of its arguments."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.exceptions import NotFittedError

from skhier import HierarchicalRanker, ScreenSimulator
from skhier.plotting import PPC_KINDS, plot_ppc
from skhier.plotting.ppc import _densities
from tests.helpers import FORUM, small_kwargs
from tests.plotting.fits import tick_texts

OUTSIDE = "observed, outside the interval"


@pytest.fixture(scope="module")
def screen():
    """4 genes x 3 sgRNAs whose slopes differ within genes, 12 samples each."""
    sim = ScreenSimulator(n_genes=4, sgrnas_per_gene=3, n_samples=12, sgrna_sd=0.3, random_state=0)
    return sim.fit_transform()


@pytest.fixture(scope="module")
def fits(screen):
    return {
        p: HierarchicalRanker(formula=FORUM, pooling=p, **small_kwargs(draws=300)).fit(screen)
        for p in ("partial", "complete")
    }


def outside_line(ax):
    lines = [line for line in ax.get_lines() if line.get_label().startswith(OUTSIDE)]
    assert len(lines) == 1
    return lines[0]


def expected_outside(ranker, data, columns, random_state):
    """Groups whose observed mean is outside the 90% interval of the replicated means."""
    draws = ranker.sample_posterior_predictive(data, random_state=random_state)
    keys = data[list(columns)].astype(str).agg(":".join, axis=1).to_numpy()
    reps = pd.DataFrame(draws.to_numpy().reshape(-1, len(data)).T, index=keys)
    reps = reps.groupby(level=0).mean()
    observed = pd.Series(data["Ht"].to_numpy(), index=keys).groupby(level=0).mean()
    low, high = np.quantile(reps.to_numpy(), [0.05, 0.95], axis=1)
    return observed[(observed.to_numpy() < low) | (observed.to_numpy() > high)]


def test_both_panels(fits, screen):
    fig = plot_ppc(fits["partial"], n_draws=30, random_state=0)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    density, means = fig.axes
    labels = [line.get_label() for line in density.get_lines()]
    assert len(labels) == 30 + 2  # the replicates, their mean, the observed density
    assert labels[-2:] == ["predictive mean", "observed"]
    assert (density.get_xlabel(), density.get_ylabel()) == ("Ht", "density")
    assert means.get_xlabel() == "gene:sgRNA (by observed mean)"
    assert means.get_ylabel() == "mean of Ht"
    order = screen.groupby("sgRNA")["Ht"].mean().sort_values(kind="stable").index.tolist()
    assert tick_texts(means.get_xticklabels()) == order  # sgRNAs by observed mean
    observed = [line for line in means.get_lines() if line.get_label() == "observed"][0]
    n_out = len(outside_line(means).get_xdata())
    assert len(observed.get_xdata()) + n_out == 12


def test_observed_density_is_a_density(fits, screen):
    ax = plot_ppc(fits["partial"], kind="density", n_draws=5, random_state=0)
    observed = ax.get_lines()[-1]
    x, y = observed.get_xdata(), observed.get_ydata()
    assert observed.get_color() == "black"
    assert x.min() <= screen["Ht"].min() and x.max() >= screen["Ht"].max()
    assert np.trapezoid(y, x) == pytest.approx(1.0, abs=0.02)
    assert len(ax.get_lines()) == 5 + 2


@pytest.mark.parametrize("pooling", ["partial", "complete"])
def test_highlighted_groups_are_those_outside(fits, screen, pooling):
    ranker = fits[pooling]
    ax = plot_ppc(ranker, kind="group_means", random_state=4)
    expected = expected_outside(ranker, screen, ("gene", "sgRNA"), random_state=4)
    line = outside_line(ax)
    assert len(line.get_xdata()) == len(expected)
    assert line.get_label() == f"{OUTSIDE} ({len(expected)})"
    assert ax.get_title().startswith(f"group means: {len(expected)} of 12 outside")
    shown = {tick_texts(ax.get_xticklabels())[int(i)] for i in line.get_xdata()}
    assert shown == {key.split(":")[1] for key in expected.index}
    if pooling == "complete":  # one slope cannot follow sgRNAs that differ: some highlighted
        assert len(expected) >= 1


def test_group_levels(fits, screen):
    ax = plot_ppc(fits["partial"], group="gene", kind="group_means", random_state=0)
    assert ax.get_xlabel() == "gene (by observed mean)"
    assert sorted(tick_texts(ax.get_xticklabels())) == ["G01", "G02", "G03", "G04"]
    expected = expected_outside(fits["partial"], screen, ("gene",), random_state=0)
    assert len(outside_line(ax).get_xdata()) == len(expected)
    ax = plot_ppc(fits["partial"], group="sgRNA", kind="group_means", random_state=0)
    assert ax.get_xlabel() == "gene:sgRNA (by observed mean)"  # the factor of its column
    ax = plot_ppc(fits["partial"], group="sample", kind="group_means", random_state=0)
    assert len(ax.get_xticklabels()) == 12  # any column of the rows


def test_complete_pooling_groups_by_the_level_columns(fits):
    # the complete-pooling model has no grouping factor; its level's columns are in the data
    ax = plot_ppc(fits["complete"], kind="group_means", random_state=0)
    assert ax.get_xlabel() == "gene:sgRNA (by observed mean)"
    assert len(ax.get_xticklabels()) == 12


def test_rows_given_as_X(fits, screen):
    one_gene = screen[screen["gene"] == "G02"]
    fig = plot_ppc(fits["partial"], one_gene, n_draws=3, random_state=0)
    assert len(fig.axes[1].get_xticklabels()) == 3
    with pytest.raises(ValueError, match="observed response: X must hold the column 'Ht'"):
        plot_ppc(fits["partial"], screen.drop(columns="Ht"))
    with pytest.raises(ValueError, match="plot_ppc needs a finite response"):
        plot_ppc(fits["partial"], screen.assign(Ht=np.nan))
    with pytest.raises(TypeError, match="DataFrame"):
        plot_ppc(fits["partial"], screen.to_numpy())


def test_draws_on_given_axes(fits):
    fig, (a, b) = plt.subplots(1, 2)
    assert plot_ppc(fits["partial"], ax=[a, b], n_draws=2, random_state=0) is fig
    assert len(a.get_lines()) == 4 and b.get_xlabel().startswith("gene:sgRNA")
    _, c = plt.subplots()
    assert plot_ppc(fits["partial"], kind="density", ax=c, n_draws=2) is c
    assert plot_ppc(fits["partial"], kind="group_means", ax=c) is c
    with pytest.raises(ValueError, match="2 matplotlib Axes"):
        plot_ppc(fits["partial"], ax=c)
    with pytest.raises(TypeError, match="Axes or None"):
        plot_ppc(fits["partial"], kind="density", ax="left")


def test_kind_and_group_are_validated(fits):
    assert PPC_KINDS == ("density", "group_means", "both")
    with pytest.raises(ValueError, match=r"kind='hist' is not valid; choose one of \('density'"):
        plot_ppc(fits["partial"], kind="hist")
    with pytest.raises(ValueError, match=r"group='batch' is not a grouping factor.*'gene'"):
        plot_ppc(fits["partial"], group="batch")
    with pytest.raises(ValueError, match=r"'gene:sgRNA', 'sgRNA'"):
        plot_ppc(fits["partial"], group="batch", kind="density")  # checked when given
    with pytest.raises(TypeError, match="group must be a string"):
        plot_ppc(fits["partial"], group=3)
    with pytest.raises(ValueError, match="n_draws=0 is out of range"):
        plot_ppc(fits["partial"], n_draws=0)
    with pytest.raises(TypeError, match="n_draws must be an integer"):
        plot_ppc(fits["partial"], n_draws=2.5)
    assert not plt.get_fignums()  # nothing drawn before the arguments were checked


def test_rejects_other_objects():
    with pytest.raises(TypeError, match="fitted HierarchicalRanker"):
        plot_ppc(pd.DataFrame({"Ht": [1.0]}))
    with pytest.raises(NotFittedError, match="not fitted"):
        plot_ppc(HierarchicalRanker(formula=FORUM))


def test_model_without_groups(rng):
    X = rng.normal(size=(50, 2))
    y = X @ np.array([1.0, -1.0]) + 0.3 * rng.normal(size=50)
    r = HierarchicalRanker(**small_kwargs(draws=100)).fit(X, y)
    ax = plot_ppc(r, kind="density", n_draws=4, random_state=0)
    assert ax.get_xlabel() == "y"
    with pytest.raises(ValueError, match="the ranked level 'coefficient' is not a grouping"):
        plot_ppc(r)


def test_integer_data_get_step_histograms():
    values = np.array([[0, 1, 1, 2, 5], [1, 1, 2, 3, 3]], dtype=np.float64)
    x, dens, style = _densities(values, (0.0, 5.0), discrete=True)
    assert style == "steps-post"
    np.testing.assert_array_equal(x, np.arange(-0.5, 6.0))  # one bin per integer
    np.testing.assert_allclose(dens[:, :-1].sum(axis=1), 1.0)
    np.testing.assert_allclose(dens[0, :-1], [0.2, 0.4, 0.2, 0.0, 0.0, 0.2])
