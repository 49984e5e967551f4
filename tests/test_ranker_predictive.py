"""HierarchicalRanker.sample_posterior_predictive: shapes, seeds, agreement with predict."""

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from skhier import HierarchicalRanker, ScreenSimulator
from tests.helpers import FORUM, small_kwargs

N_DRAWS = 2 * 1000  # chains x draws of the fit below


@pytest.fixture(scope="module")
def screen():
    return ScreenSimulator(
        n_genes=4, sgrnas_per_gene=3, n_samples=15, random_state=2
    ).fit_transform()


@pytest.fixture(scope="module")
def fit(screen):
    """The forum's model, 2 chains x 1000 draws: 2000 predictive draws per row."""
    return HierarchicalRanker(formula=FORUM, **small_kwargs(draws=1000, tune=300)).fit(screen)


def with_new_gene(df):
    """The first rows of ``df`` again, as rows of a gene and sgRNA not seen in fit."""
    new = df.iloc[:6].assign(gene="NEW", sgRNA="NEW_sg1")
    new.index = [f"new{i}" for i in range(len(new))]
    return new


def test_shapes_and_coordinates(fit, screen):
    draws = fit.sample_posterior_predictive(random_state=0)
    post = fit.idata_.posterior
    assert draws.dims == ("chain", "draw", "row")
    assert draws.shape == (2, 1000, len(screen))
    assert draws.name == "Ht"
    np.testing.assert_array_equal(draws["chain"], post["chain"])
    np.testing.assert_array_equal(draws["draw"], post["draw"])
    np.testing.assert_array_equal(draws["row"], fit.plan_.data.index)
    assert np.isfinite(draws).all()

    X = screen.iloc[::7].drop(columns="Ht")  # no response needed; the index is kept
    X.index = [f"r{i}" for i in range(len(X))]
    some = fit.sample_posterior_predictive(X, random_state=0)
    assert some.shape == (2, 1000, len(X))
    assert some["row"].to_numpy().tolist() == X.index.tolist()


def test_none_is_the_training_rows(fit, screen):
    a = fit.sample_posterior_predictive(random_state=3)
    b = fit.sample_posterior_predictive(screen, random_state=3)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())


def test_same_seed_same_draws_other_seed_other_draws(fit):
    a = fit.sample_posterior_predictive(random_state=1)
    b = fit.sample_posterior_predictive(random_state=1)
    c = fit.sample_posterior_predictive(random_state=2)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
    assert not np.allclose(a.to_numpy(), c.to_numpy())
    g = fit.sample_posterior_predictive(random_state=np.random.default_rng(1))
    np.testing.assert_array_equal(a.to_numpy(), g.to_numpy())  # an int seeds a Generator


def check_moments(draws, mean, std):
    """The draws' mean and sd per row against predict's, within 5 Monte Carlo errors.

    The mean of n draws is off by at most sd / sqrt(n) (one standard error); the sd of n draws
    by sd * sqrt((kurtosis - 1) / (4 n)) (the delta method on the variance, kurtosis estimated
    from the draws themselves: the predictive distribution is a mixture, not a Normal).
    """
    x = draws.to_numpy().reshape(-1, draws.sizes["row"])
    n = x.shape[0]
    d = x - x.mean(axis=0)
    kurt = (d**4).mean(axis=0) / (d**2).mean(axis=0) ** 2
    z_mean = (x.mean(axis=0) - mean) / (std / np.sqrt(n))
    z_sd = (x.std(axis=0) - std) / (std * np.sqrt((kurt - 1) / (4 * n)))
    assert np.abs(z_mean).max() < 5, z_mean
    assert np.abs(z_sd).max() < 5, z_sd


def test_moments_agree_with_predict(fit, screen):
    X = pd.concat([screen.iloc[::4], with_new_gene(screen)])
    draws = fit.sample_posterior_predictive(X, random_state=0)
    assert draws.sizes["draw"] * draws.sizes["chain"] == N_DRAWS
    mean, std = fit.predict(X, return_std=True)
    check_moments(draws, mean, std)


def test_unseen_groups_get_rows(fit, screen):
    new = with_new_gene(screen)
    draws = fit.sample_posterior_predictive(new, random_state=0)
    assert draws.shape == (2, 1000, len(new)) and np.isfinite(draws).all()
    seen = fit.sample_posterior_predictive(screen.iloc[:6], random_state=0)
    # a new gene's slope is drawn from the hierarchy: wider than the known sgRNA's
    assert (draws.std(("chain", "draw")).to_numpy() > seen.std(("chain", "draw")).to_numpy()).all()


def test_bad_X_fails_before_drawing(fit, screen, monkeypatch):
    import skhier.ranker

    def fail(*args, **kwargs):
        raise AssertionError("predictive draws were started")

    monkeypatch.setattr(skhier.ranker, "predictive_draws", fail)
    with pytest.raises(ValueError, match="'H0'.*missing"):
        fit.sample_posterior_predictive(screen.drop(columns="H0"))
    with pytest.raises(ValueError, match="NaN"):
        fit.sample_posterior_predictive(screen.assign(H0=np.nan))
    with pytest.raises(TypeError, match="DataFrame"):
        fit.sample_posterior_predictive(screen[["H0"]].to_numpy())
    with pytest.raises(NotFittedError):
        HierarchicalRanker(formula=FORUM).sample_posterior_predictive()


def test_training_rows_after_dropping_missing(screen):
    df = screen.copy()
    df.loc[[3, 10], "H0"] = np.nan
    r = HierarchicalRanker(formula=FORUM, missing="drop", **small_kwargs(draws=100)).fit(df)
    draws = r.sample_posterior_predictive(random_state=0)
    assert draws.sizes["row"] == len(df) - 2
    assert not {3, 10} & set(draws["row"].to_numpy().tolist())


def test_without_formula(rng):
    X = rng.normal(size=(60, 2))
    y = X @ np.array([1.0, -0.5]) + 0.2 * rng.normal(size=60)
    r = HierarchicalRanker(**small_kwargs(draws=100)).fit(X, y)
    draws = r.sample_posterior_predictive(random_state=0)
    assert draws.name == "y" and draws.shape == (2, 100, 60)
    new = r.sample_posterior_predictive(X[:5], random_state=0)
    assert new["row"].to_numpy().tolist() == [0, 1, 2, 3, 4]


def test_count_family():
    """Not Gaussian: whatever family predictive_draws supports, here Poisson counts."""
    sim = ScreenSimulator(n_genes=3, sgrnas_per_gene=2, n_samples=3, mode="counts", random_state=0)
    wide = sim.fit_transform()
    df = wide.melt(
        id_vars=["gene", "sgRNA", "sample"],
        value_vars=["initial", "final"],
        var_name="time",
        value_name="count",
    )
    df["treatment"] = (df["time"] == "final").astype(float)
    formula = "count ~ 0 + (1|gene:sgRNA) + treatment:(1|gene/sgRNA)"
    r = HierarchicalRanker(formula=formula, family="poisson", **small_kwargs(draws=500)).fit(df)
    draws = r.sample_posterior_predictive(random_state=0)
    assert draws.name == "count" and draws.shape == (2, 500, len(df))
    x = draws.to_numpy()
    assert (x >= 0).all() and np.array_equal(x, np.round(x))
    mean, std = r.predict(df, return_std=True)
    check_moments(draws, mean, std)
