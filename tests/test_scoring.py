"""PSIS-LOO and model comparison, checked against ArviZ on the same log likelihood."""

import warnings

import arviz as az
import numpy as np
import pytest
import xarray as xr

from skhier import HierarchicalRanker, compare
from skhier.scoring import ParetoKWarning, loo, pointwise_log_likelihood
from tests.helpers import FORUM, small_kwargs


@pytest.fixture(scope="module")
def fits(forum_sim):
    _, df = forum_sim
    kw = small_kwargs(draws=500, tune=300)
    return {
        p: HierarchicalRanker(formula=FORUM, pooling=p, **kw).fit(df)
        for p in ("partial", "complete")
    }


def quiet_loo(ranker, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParetoKWarning)
        return loo(ranker, **kw)


def test_pointwise_log_likelihood_is_the_gaussian_density(fits, forum_sim):
    from scipy.stats import norm

    _, df = forum_sim
    r = fits["partial"]
    ll = pointwise_log_likelihood(r)
    post = r.idata_.posterior
    assert ll.shape == (2, 500, len(df))
    # One draw, one row, by hand: total slope of the row's sgRNA times H0.
    c, d, i = 1, 123, 77
    sg = df["gene"].iloc[i] + ":" + df["sgRNA"].iloc[i]
    slope = (
        post["H0"].values[c, d]
        + post["H0|gene"].sel({"gene__factor_dim": df["gene"].iloc[i]}).values[c, d]
        + post["H0|gene:sgRNA"].sel({"gene:sgRNA__factor_dim": sg}).values[c, d]
    )
    expected = norm.logpdf(df["Ht"].iloc[i], slope * df["H0"].iloc[i], post["sigma"].values[c, d])
    assert ll[c, d, i] == pytest.approx(expected, rel=1e-10)


def test_loo_equals_arviz_in_chunks(fits):
    r = fits["partial"]
    ll = pointwise_log_likelihood(r)
    idata = r.idata_.copy()
    idata.add_groups(
        log_likelihood=xr.Dataset(
            {"Ht": (("chain", "draw", "row"), ll)},
            coords={"chain": idata.posterior.chain, "draw": idata.posterior.draw},
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref = az.loo(idata, pointwise=True)
    mine = quiet_loo(r, chunk_rows=37)  # blocks that do not divide the rows
    for key in ("elpd_loo", "se", "p_loo", "good_k"):
        assert mine[key] == pytest.approx(ref[key], rel=1e-10), key
    np.testing.assert_allclose(mine["pareto_k"].values, ref["pareto_k"].values, rtol=1e-10)
    np.testing.assert_allclose(mine["loo_i"].values, ref["loo_i"].values, rtol=1e-10)
    assert bool(mine["warning"]) == bool(ref["warning"])


def test_in_sample_score_is_mean_lppd(fits, forum_sim):
    _, df = forum_sim
    r = fits["partial"]
    res = quiet_loo(r)
    lppd = res["elpd_loo"] + res["p_loo"]
    assert r.score(df) == pytest.approx(lppd / len(df), rel=1e-10)


def test_loo_attribute_is_cached_and_warns_on_high_k(fits):
    r = fits["partial"]
    r._cache.pop("loo", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = r.loo_
    assert r.loo_ is first
    high = bool((first["pareto_k"] > first["good_k"]).any())
    assert high == any(w.category is ParetoKWarning for w in caught)


def test_compare_prefers_the_hierarchy(fits):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParetoKWarning)
        table = compare(fits)
    assert table.index[0] == "partial"
    assert table.loc["partial", "elpd_loo"] > table.loc["complete", "elpd_loo"]
    assert table["weight"].sum() == pytest.approx(1.0)
    assert compare(list(fits.values())).index.tolist() == table.index.tolist()


def test_compare_needs_two_rankers_of_the_same_rows(fits, forum_sim):
    _, df = forum_sim
    with pytest.raises(ValueError, match="at least two"):
        compare({"partial": fits["partial"]})
    other = HierarchicalRanker(formula=FORUM, **small_kwargs()).fit(df.iloc[:500])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParetoKWarning)
        with pytest.raises(ValueError, match="different numbers of rows"):
            compare({"a": fits["partial"], "b": other})


NAN_ROWS = r"6 row\(s\) have NaN or infinite 'Ht' \(rows r4, r9, r30, r31, r50, \.\.\.\)"


@pytest.fixture
def nan_frame(forum_sim):
    _, df = forum_sim
    bad = df.copy()
    bad.index = [f"r{i}" for i in range(len(df))]
    bad.iloc[[4, 9, 30, 31, 50, 77], bad.columns.get_loc("Ht")] = np.nan
    return bad


def test_score_names_the_rows_of_a_nan_response(fits, nan_frame):
    r = fits["partial"]
    with pytest.raises(ValueError, match="score needs a finite response, but " + NAN_ROWS):
        r.score(nan_frame)
    with pytest.raises(ValueError, match="score needs a finite response, but " + NAN_ROWS):
        r.score(nan_frame.drop(columns="Ht"), nan_frame["Ht"])
    with pytest.raises(ValueError, match=NAN_ROWS):
        pointwise_log_likelihood(r, nan_frame)


def test_loo_names_the_rows_of_a_nan_response(fits, nan_frame):
    import copy

    # fit rejects a NaN response (or drops its rows), so only altered training data gets here
    r = copy.deepcopy(fits["partial"])
    r.plan_.data.loc[r.plan_.data.index[[3, 8]], "Ht"] = [np.nan, np.inf]
    r._cache.clear()
    msg = (
        r"PSIS-LOO needs a finite response, but "
        r"2 row\(s\) have NaN or infinite 'Ht' \(rows 3, 8\)"
    )
    with pytest.raises(ValueError, match=msg):
        _ = r.loo_
    with pytest.raises(ValueError, match=msg):
        loo(r)
    assert np.isfinite(quiet_loo(fits["partial"])["elpd_loo"])  # the original is untouched
    # missing="drop": the rows with a NaN response are neither fitted nor scored
    dropped = HierarchicalRanker(formula=FORUM, missing="drop", **small_kwargs()).fit(nan_frame)
    res = quiet_loo(dropped)
    assert int(res["n_data_points"]) == len(nan_frame) - 6
    assert np.isfinite(res["elpd_loo"]) and np.isfinite(np.asarray(res["loo_i"])).all()
