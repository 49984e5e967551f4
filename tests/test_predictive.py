"""Predictive densities, moments and draws of every family skhier computes itself.

The log densities are checked against SciPy's distributions on hand-built posteriors; the
moments against Monte Carlo over the predictive draws (tolerances from the draws' own
standard errors); the count engine's fits against ArviZ's LOO on the same log likelihood.
"""

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from skhier import HierarchicalRanker
from skhier.plan import make_plan
from skhier.predictive import (
    FAMILIES,
    log_density,
    log_predictive_density,
    predictive_draws,
    predictive_moments,
    response_parameters,
    response_values,
)
from skhier.scoring import ParetoKWarning, loo, pointwise_log_likelihood
from tests.helpers import COUNT_FORMULA, FORUM, count_frame, small_kwargs

N_DRAWS = 4000


def draws_of(values, names):
    """A posterior with one (chain, draw) variable per name, from (draws,) arrays."""
    pairs = zip(names, values, strict=True)
    return xr.Dataset({n: (("chain", "draw"), np.asarray(v)[None, :]) for n, v in pairs})


def hand_posterior(s=5):
    """A hand-built posterior of ``n ~ offset(o) + x + (1|g)`` with ``s`` draws, and its rows."""
    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {
            "n": [3, 0, 12, 7, 1, 30],
            "x": [0.0, 1.0, 0.5, 1.5, 0.0, 1.0],
            "o": [0.1, -0.2, 0.0, 0.3, 0.0, 0.5],
            "g": ["a", "a", "b", "b", "a", "b"],
        }
    )
    post = draws_of(
        [rng.normal(1, 0.2, s), rng.normal(0.5, 0.1, s), np.abs(rng.normal(0.3, 0.05, s))],
        ["Intercept", "x", "1|g_sigma"],
    )
    post["1|g"] = (("chain", "draw", "g__factor_dim"), rng.normal(0, 0.3, (1, s, 2)))
    post = post.assign_coords(g__factor_dim=["a", "b"])
    return df, post


@pytest.fixture(scope="module")
def count_post():
    return hand_posterior()


@pytest.mark.parametrize("family", ["poisson", "negativebinomial"])
def test_count_log_density_is_scipy_pmf(count_post, family):
    df, post = count_post
    plan = make_plan({"formula": "n ~ offset(o) + x + (1|g)", "family": family}, df)
    fit = az.InferenceData(posterior=post, constant_data=xr.Dataset({"alpha": 7.5}))
    y = response_values(plan, df)
    (sl, ll), *rest = list(log_density(fit, plan, df, y))
    assert not rest and ll.shape == (5, len(df))
    g = np.where(df["g"] == "a", 0, 1)
    eta = (
        post["Intercept"].values[0][:, None]
        + post["x"].values[0][:, None] * df["x"].to_numpy()
        + df["o"].to_numpy()
        + post["1|g"].values[0][:, g]
    )
    mu = np.exp(eta)
    if family == "poisson":
        ref = stats.poisson.logpmf(y, mu)
    else:
        ref = stats.nbinom.logpmf(y, 7.5, 7.5 / (7.5 + mu))
    np.testing.assert_allclose(ll, ref, rtol=1e-12)
    # The same log density, computed one row at a time, is the same.
    blocks = np.hstack([b for _, b in log_density(fit, plan, df, y, block_rows=1)])
    np.testing.assert_allclose(blocks, ll, rtol=1e-14)


def test_negative_binomial_needs_alpha(count_post):
    df, post = count_post
    plan = make_plan({"formula": "n ~ x", "family": "negativebinomial"}, df)
    with pytest.raises(ValueError, match="needs 'alpha'.*constant_data"):
        response_parameters(post, plan)
    sampled = post.assign(alpha=(("chain", "draw"), np.full((1, 5), 3.0)))
    assert response_parameters(sampled, plan)["alpha"].tolist() == [3.0] * 5


def test_families_outside_the_list_are_refused_by_name():
    df = pd.DataFrame({"y": [1, 0, 1, 1], "x": [1.0, 2, 1, 2]})
    plan = make_plan({"formula": "y ~ x", "family": "bernoulli"}, df)
    assert "bernoulli" not in FAMILIES
    with pytest.raises(NotImplementedError, match=r"families \('gaussian'.*family='bernoulli'"):
        response_parameters(xr.Dataset(), plan)


@pytest.mark.parametrize("bad", [2.5, -1.0])
def test_count_response_must_be_counts(count_post, bad):
    df, _ = count_post
    plan = make_plan({"formula": "n ~ x", "family": "poisson"}, df)
    y = df["n"].to_numpy(float)
    y[3] = bad
    with pytest.raises(ValueError, match=rf"needs counts.*row 3 \({bad:g}\)"):
        response_values(plan, df, y)


def unseen_rows(df):
    out = df.copy()
    out["g"] = ["a", "zz", "b", "zz", "a", "b"]  # "zz" was not in fit
    return out


@pytest.mark.parametrize("family", ["gaussian", "poisson", "negativebinomial"])
def test_moments_match_the_predictive_draws(family):
    df, post = hand_posterior(N_DRAWS)
    rng = np.random.default_rng(2)
    if family == "gaussian":
        post = post.assign(sigma=(("chain", "draw"), rng.uniform(0.5, 1.0, (1, N_DRAWS))))
    fit = az.InferenceData(posterior=post, constant_data=xr.Dataset({"alpha": 4.0}))
    plan = make_plan({"formula": "n ~ offset(o) + x + (1|g)", "family": family}, df)
    rows = unseen_rows(df)  # rows 1 and 3: a group not seen in fit, drawn from the hierarchy
    mean, var = predictive_moments(fit, plan, rows)
    reps = np.vstack(
        [
            np.vstack([d for _, d in predictive_draws(fit, plan, rows, np.random.default_rng(s))])
            for s in range(10)
        ]
    )  # 40,000 predictive draws per row
    n = reps.shape[0]
    se_mean = np.sqrt(var / n)
    assert np.all(np.abs(reps.mean(axis=0) - mean) < 5 * se_mean)
    # The variance's standard error from the draws' fourth central moment.
    m4 = ((reps - reps.mean(axis=0)) ** 4).mean(axis=0)
    se_var = np.sqrt((m4 - reps.var(axis=0) ** 2) / n)
    assert np.all(np.abs(reps.var(axis=0) - var) < 5 * se_var)


def test_predictive_draws_are_counts_for_count_families(count_post):
    df, post = count_post
    plan = make_plan({"formula": "n ~ x + (1|g)", "family": "poisson"}, df)
    draws = np.vstack([d for _, d in predictive_draws(post, plan, df, np.random.default_rng(0))])
    assert draws.shape == (5, len(df))
    assert np.all(draws >= 0) and np.all(draws == np.round(draws))


@pytest.fixture(scope="module")
def count_fit():
    df = count_frame()
    r = HierarchicalRanker(
        formula=COUNT_FORMULA,
        family="negativebinomial",
        level="gene",
        draws=300,
        tune=300,
        chains=2,
        n_jobs=1,
        random_state=0,
        on_fail="ignore",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the approximation's check on 6 sgRNAs
        r.fit(df)
    return df, r


def test_count_engine_fit_scores_and_predicts(count_fit):
    df, r = count_fit
    assert r.engine_ == "laplace"
    ll = pointwise_log_likelihood(r)
    post = r.idata_.posterior
    alpha = float(r.idata_.constant_data["alpha"])
    c, d, i = 1, 17, 8
    sg = df["gene"].iloc[i] + ":" + df["sgRNA"].iloc[i]
    eta = (
        df["log_size"].iloc[i]
        + post["1|gene:sgRNA"].sel({"gene:sgRNA__factor_dim": sg}).values[c, d]
        + df["treatment"].iloc[i]
        * (
            post["treatment"].values[c, d]
            + post["treatment|gene"].sel({"gene__factor_dim": df["gene"].iloc[i]}).values[c, d]
            + post["treatment|gene:sgRNA"].sel({"gene:sgRNA__factor_dim": sg}).values[c, d]
        )
    )
    mu = np.exp(eta)
    ref = stats.nbinom.logpmf(df["count"].iloc[i], alpha, alpha / (alpha + mu))
    assert ll[c, d, i] == pytest.approx(ref, rel=1e-5)  # float32 coefficient draws
    lppd = log_predictive_density(r.idata_, r.plan_, r.plan_.data, df["count"].to_numpy(float))
    assert r.score(df) == pytest.approx(lppd.mean(), rel=1e-12)
    mean, std = r.predict(df, return_std=True)
    assert mean.shape == (len(df),) and np.all(std > np.sqrt(mean))  # overdispersed
    # Counts were drawn around exp(eta) (log sd 0.5 between sgRNAs, noise cv about 0.25):
    # the predictions follow them, and about 95% fall within two predictive sds.
    assert stats.spearmanr(mean, df["count"]).statistic > 0.8
    assert np.mean(np.abs(df["count"] - mean) < 2 * std) > 0.85


def test_count_engine_loo_equals_arviz(count_fit):
    _, r = count_fit
    ll = pointwise_log_likelihood(r)
    idata = r.idata_.copy()
    idata.add_groups(
        log_likelihood=xr.Dataset(
            {"count": (("chain", "draw", "row"), ll)},
            coords={"chain": idata.posterior.chain, "draw": idata.posterior.draw},
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref = az.loo(idata, pointwise=True)
        mine = loo(r, chunk_rows=5)
    for key in ("elpd_loo", "se", "p_loo"):
        assert mine[key] == pytest.approx(ref[key], rel=1e-9), key
    np.testing.assert_allclose(mine["pareto_k"].values, ref["pareto_k"].values, rtol=1e-9)


def test_loo_warns_through_the_attribute_for_counts(count_fit):
    _, r = count_fit
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = r.loo_
    assert int(res["n_data_points"]) == len(r.plan_.data)
    high = int((res["pareto_k"].values > res["good_k"]).sum())
    assert (high > 0) == any(w.category is ParetoKWarning for w in caught)


def test_gaussian_predict_std_is_total_variance(forum_sim):
    _, df = forum_sim
    r = HierarchicalRanker(formula=FORUM, **small_kwargs()).fit(df)
    post = r.idata_.posterior
    mean, std = r.predict(df, return_std=True)
    sigma2 = (post["sigma"].values.reshape(-1) ** 2).mean()
    assert np.all(std**2 >= sigma2) and np.all(std**2 < sigma2 * 1.5)


def test_bambi_engine_log_likelihood_equals_bambis():
    """A negative binomial fit by Bambi's engine: the row-wise log likelihood is Bambi's own."""
    from skhier._names import rename_joined

    df = count_frame()
    r = HierarchicalRanker(
        formula="count ~ offset(log_size) + treatment + (1|gene:sgRNA)",
        family="negativebinomial",
        engine="bambi",
        sampler="pymc",
        draws=100,
        tune=100,
        chains=2,
        n_jobs=1,
        random_state=0,
        on_fail="ignore",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 100 draws: the sampler's own warnings
        r.fit(df)
    assert r.engine_ == "bambi" and "alpha" in r.idata_.posterior
    model = r.model_
    idata = r.idata_.copy()
    idata.posterior = rename_joined(idata.posterior, model.skhier_renames, to_bambi=True)
    ref = model.compute_log_likelihood(idata, inplace=False).log_likelihood["count"].values
    np.testing.assert_allclose(pointwise_log_likelihood(r), ref, rtol=1e-10)
