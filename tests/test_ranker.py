"""HierarchicalRanker end to end, checked against the simulator's truth."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from skhier import HierarchicalRanker
from skhier.diagnostics import convergence_stats
from tests.helpers import FORUM, small_kwargs

RANK_COLUMNS = [
    "rank",
    "mean",
    "sd",
    "hdi_low",
    "hdi_high",
    "expected_rank",
    "rank_low",
    "rank_high",
    "p_top_k",
    "sucra",
    "lfsr",
    "p_gt_ref",
    "n_obs",
]


def test_fitted_attributes(forum_fit):
    r = forum_fit
    assert r.formula_ == "Ht ~ 0 + H0 + (0 + H0|gene/sgRNA)"
    assert r.engine_ == "collapsed"
    assert r.level_ == "gene" and r.column_ == "H0"
    assert set(RANK_COLUMNS) <= set(r.rank_.columns)
    assert r.rank_.shape[0] == 5
    assert r.rank_["rank"].tolist() == [1, 2, 3, 4, 5]
    assert (np.diff(r.rank_["expected_rank"]) >= 0).all()
    assert r.rank_["n_obs"].sum() == 1000
    assert {"H0", "H0|gene", "H0|gene:sgRNA", "H0|gene_sigma", "sigma"} <= set(
        r.idata_.posterior.data_vars
    )
    assert r.groups_["sgRNA"].shape[0] == 20
    assert set(r.groups_["sgRNA"]["parent"]) == set(r.groups_["gene"].index)
    assert r.n_features_in_ == 8
    assert "Ht" in r.feature_names_in_
    assert r.diagnostics_.passed, r.diagnostics_.messages


def test_recovers_true_sgrna_effects(forum_fit, forum_sim):
    sim, _ = forum_sim
    sg = forum_fit.rank_table(level="sgRNA")
    assert sg.shape[0] == 20
    truth = sim.true_effects_["sgRNA"].reindex(sg.index)
    rho = spearmanr(sg["mean"], truth).statistic
    assert rho >= 0.9
    slopes = sim.true_slopes_["sgRNA"].reindex(sg.index)
    assert spearmanr(sg["mean"], slopes).statistic >= 0.9
    # Interval coverage is checked over replicated screens in tests/test_calibration.py.


@pytest.mark.parametrize("level", ["gene", "sgRNA"])
def test_expected_rank_is_one_plus_dominance_column_sums(forum_fit, level):
    table = forum_fit.rank_table(level=level)
    D = forum_fit.dominance(level=level)
    D = np.array(D.loc[table.index, table.index], dtype=np.float64)
    off = ~np.eye(len(D), dtype=bool)
    np.testing.assert_allclose((D + D.T)[off], 1.0, atol=1e-6)
    np.fill_diagonal(D, 0.0)
    np.testing.assert_allclose(table["expected_rank"], 1 + D.sum(axis=0), atol=1e-5)


def test_dominance_attribute_is_labelled(forum_fit):
    D = forum_fit.dominance_
    assert list(D.index) == list(forum_fit.rank_.index)
    assert list(D.columns) == list(forum_fit.rank_.index)


def test_gene_total_is_common_plus_gene_deviation(forum_fit):
    post = forum_fit.idata_.posterior
    gene = forum_fit.rank_.index[0]
    label = forum_fit.groups_["gene"].loc[gene, "label"]
    total = post["H0"] + post["H0|gene"].sel({"gene__factor_dim": label})
    assert float(total.mean()) == pytest.approx(forum_fit.rank_.loc[gene, "mean"], rel=1e-9)


def test_seed_to_seed_stability_of_top_ranks(forum_sim, forum_fit):
    _, df = forum_sim
    other = HierarchicalRanker(formula=FORUM, level="gene", random_state=123).fit(df)
    a, b = forum_fit.rank_, other.rank_.loc[forum_fit.rank_.index]
    assert a.index[0] == other.rank_.index[0]
    assert np.abs(a["expected_rank"] - b["expected_rank"]).max() < 0.1
    assert np.abs(a["p_top_k"] - b["p_top_k"]).max() < 0.05


def test_same_seed_same_result(forum_sim):
    _, df = forum_sim
    kw = small_kwargs(random_state=5)
    a = HierarchicalRanker(formula=FORUM, **kw).fit(df).rank_
    b = HierarchicalRanker(formula=FORUM, **kw).fit(df).rank_
    pd.testing.assert_frame_equal(a, b)


def test_nutpie_same_seed_same_result(forum_sim):
    _, df = forum_sim
    kw = dict(draws=100, tune=100, chains=2, random_state=3, on_fail="ignore")
    a = HierarchicalRanker(formula=FORUM, **kw).fit(df).rank_
    b = HierarchicalRanker(formula=FORUM, **kw).fit(df).rank_
    pd.testing.assert_frame_equal(a, b)


def test_fit_X_y_equals_fit_frame(forum_sim):
    _, df = forum_sim
    kw = small_kwargs()
    a = HierarchicalRanker(formula=FORUM, **kw).fit(df).rank_
    b = HierarchicalRanker(formula=FORUM, **kw).fit(df.drop(columns="Ht"), df["Ht"]).rank_
    pd.testing.assert_frame_equal(a, b)


def test_input_not_mutated(forum_sim):
    _, df = forum_sim
    before = df.copy()
    HierarchicalRanker(formula=FORUM, **small_kwargs()).fit(df)
    pd.testing.assert_frame_equal(df, before)


def test_ascending_reverses_the_order(forum_fit):
    up = forum_fit.rank_table(ascending=True)
    assert list(up.index) == list(forum_fit.rank_.index[::-1])


def test_predict_and_unseen_groups(forum_fit, forum_sim):
    _, df = forum_sim
    mean, std = forum_fit.predict(df, return_std=True)
    assert mean.shape == (len(df),) and (std > 0).all()
    resid = df["Ht"].to_numpy() - mean
    assert abs(resid.mean()) < 0.1
    new = df.iloc[:5].assign(gene="NEW", sgRNA="NEW_sg1")
    m2, s2 = forum_fit.predict(new, return_std=True)
    assert (s2 > std[:5]).all()
    with pytest.raises(ValueError, match="'H0'.*missing"):
        forum_fit.predict(df.drop(columns="H0"))


def test_score_prefers_the_hierarchy_over_complete_pooling(forum_sim):
    _, df = forum_sim
    kw = small_kwargs()
    partial = HierarchicalRanker(formula=FORUM, **kw).fit(df)
    complete = HierarchicalRanker(formula=FORUM, pooling="complete", **kw).fit(df)
    assert np.isfinite(partial.score(df))
    assert partial.score(df) > complete.score(df)
    # complete pooling: one slope, every gene tied at the same expected rank
    ranks = complete.rank_table(level="gene")["expected_rank"]
    np.testing.assert_allclose(ranks, ranks.iloc[0])


def test_no_pooling_has_independent_slopes(forum_sim):
    _, df = forum_sim
    r = HierarchicalRanker(formula=FORUM, pooling="none", level="sgRNA", **small_kwargs()).fit(df)
    assert "H0" not in r.idata_.posterior.data_vars
    assert r.rank_.shape[0] == 20
    assert r.formula_ == "Ht ~ 0 + (0 + H0|gene:sgRNA)"


@pytest.mark.parametrize("sampler", ["pymc", "numpyro"])
def test_other_samplers(forum_sim, sampler):
    _, df = forum_sim
    r = HierarchicalRanker(formula=FORUM, **small_kwargs(sampler=sampler)).fit(df)
    assert r.rank_.shape[0] == 20
    assert r.diagnostics_.info["sampler"] == sampler


def test_formula_none_ranks_coefficients(rng):
    X = rng.normal(size=(200, 3))
    y = X @ np.array([2.0, -1.0, 0.5]) + 0.3 * rng.normal(size=200)
    r = HierarchicalRanker(**small_kwargs()).fit(X, y)
    assert list(r.rank_.index) == ["x0", "x2", "x1"]
    assert r.predict(X).shape == (200,)


def own_stats(ranker, labels):
    """MCSE and bulk ESS of the ranked effects of ``labels``, from the fit's own draws."""
    draws = ranker.effect_draws()
    draws = draws.sel({draws.dims[-1]: list(labels)})
    stats = convergence_stats(np.asarray(draws))
    return {k: stats[k] for k in ("mcse_mean", "ess_bulk")}


def kurtosis_of(ranker, labels):
    """Kurtosis (m4 / sd**4) of the posterior draws of every parameter named in ``labels``."""
    from skhier.diagnostics._read import labels as element_labels

    out = {}
    post = ranker.idata_.posterior
    for name, da in post.data_vars.items():
        x = np.asarray(da, dtype=np.float64).reshape(post.sizes["chain"] * post.sizes["draw"], -1)
        d = x - x.mean(axis=0)
        kurt = (d**4).mean(axis=0) / (d**2).mean(axis=0) ** 2
        out.update(zip(element_labels(name, da), kurt, strict=True))
    return pd.Series([out[k] for k in labels], index=labels)


def se_of_sd(sd, ess, kurt):
    """Standard error of a posterior sd from ``ess`` draws: sd * sqrt((kurtosis - 1) / (4 ess)).

    The delta method on the variance, whose standard error is sd**2 sqrt((kurtosis - 1) / ess);
    for Normal draws (kurtosis 3) it is the familiar sd / sqrt(2 ess). Heavy-tailed scales (a
    group sd from 4 groups) have a kurtosis far above 3, and so a larger error of their sd.
    """
    return sd * np.sqrt((kurt - 1.0) / (4.0 * ess))


@pytest.mark.slow
def test_bambi_engine_agrees_with_collapsed(forum_sim):
    """Same posterior from Bambi's own model and the collapsed engine, within Monte Carlo error.

    Every parameter (population slope, gene and sgRNA deviations, the two group scales and the
    residual sd): means differ by less than 5 combined MCSEs (each fit's own ESS), sds by less
    than 5 standard errors of an sd (each fit's own ESS and kurtosis, :func:`se_of_sd`) plus 5%.
    """
    from skhier import ScreenSimulator

    df = ScreenSimulator(n_genes=4, sgrnas_per_gene=3, n_samples=20, random_state=1).fit_transform()
    kw = dict(draws=1000, tune=1000, chains=2, random_state=0, on_fail="ignore", level="sgRNA")
    fast = HierarchicalRanker(formula=FORUM, **kw).fit(df)
    slow = HierarchicalRanker(formula=FORUM, engine="bambi", target_accept=0.95, **kw).fit(df)
    assert slow.engine_ == "bambi" and fast.engine_ == "collapsed"
    a, b = fast.diagnostics_.table, slow.diagnostics_.table
    common = a.index.intersection(b.index)
    # 1 + 4 + 12 coefficients and 3 scales, under the same names in both posteriors
    assert len(common) == 20, sorted(set(a.index) ^ set(b.index))
    a, b = a.loc[common], b.loc[common]
    mcse = np.sqrt(a["mcse_mean"] ** 2 + b["mcse_mean"] ** 2)
    assert (np.abs(a["mean"] - b["mean"]) < 5 * mcse).all(), (a["mean"] - b["mean"]) / mcse
    ka, kb = kurtosis_of(fast, common), kurtosis_of(slow, common)
    se_sd = np.hypot(se_of_sd(a["sd"], a["ess_bulk"], ka), se_of_sd(b["sd"], b["ess_bulk"], kb))
    z_sd = (a["sd"] - b["sd"]) / se_sd
    assert (np.abs(a["sd"] - b["sd"]) < 5 * se_sd + 0.05 * b["sd"]).all(), z_sd
    # and the ranking built on them
    ra, rb = fast.rank_, slow.rank_.loc[fast.rank_.index]
    se = np.sqrt(ra["mcse_expected_rank"] ** 2 + rb["mcse_expected_rank"] ** 2)
    assert (np.abs(ra["expected_rank"] - rb["expected_rank"]) < 5 * se + 0.05).all()
    # the table's means and sds of the sgRNA totals, against each fit's own MCSE and ESS of them
    sa, sb = own_stats(fast, ra.index), own_stats(slow, ra.index)
    se_mean = np.sqrt(sa["mcse_mean"] ** 2 + sb["mcse_mean"] ** 2)
    z = (ra["mean"] - rb["mean"]) / se_mean
    assert (np.abs(z) < 5).all(), z
    se_sd = np.sqrt(ra["sd"] ** 2 / (2 * sa["ess_bulk"]) + rb["sd"] ** 2 / (2 * sb["ess_bulk"]))
    assert (np.abs(ra["sd"] - rb["sd"]) < 5 * se_sd + 0.05 * rb["sd"]).all()


def test_predict_quantiles_cover_the_rows(forum_fit, forum_sim):
    _, df = forum_sim
    q = forum_fit.predict_quantiles(df, (0.05, 0.5, 0.95), random_state=0)
    assert q.shape == (len(df), 3) and (np.diff(q, axis=1) >= 0).all()
    np.testing.assert_allclose(q[:, 1], forum_fit.predict(df), atol=0.1)  # 5 MC errors
    inside = (q[:, 0] <= df["Ht"]) & (df["Ht"] <= q[:, 2])
    assert 0.85 <= inside.mean() <= 0.97  # nominal 0.90 (the noise is multiplicative)
    again = forum_fit.predict_quantiles(df, 0.5, random_state=0)
    assert again.shape == (len(df),)
    with pytest.raises(ValueError, match="quantiles must be probabilities"):
        forum_fit.predict_quantiles(df, (0.5, 1.2))


@pytest.mark.parametrize("reference", [np.float64(0.25), np.float32(0.25), np.int64(0)])
def test_reference_accepts_numpy_scalars(forum_sim, reference):
    _, df = forum_sim
    r = HierarchicalRanker(
        formula=FORUM, level="gene", reference=reference, **small_kwargs(draws=100, tune=100)
    ).fit(df)
    pd.testing.assert_frame_equal(r.rank_, r.rank_table(reference=reference.item()))


def test_fit_reports_its_stages(forum_sim):
    import logging

    from skhier._progress import STAGE_ATTR

    stages = []

    class Collect(logging.Handler):
        def emit(self, record):
            stages.append(getattr(record, STAGE_ATTR, None))

    log = logging.getLogger("skhier")
    handler, level = Collect(), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        HierarchicalRanker(formula=FORUM, **small_kwargs(draws=100, tune=100)).fit(forum_sim[1])
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    assert [s for s in stages if s] == [
        "building the model",
        "sampling",
        "drawing coefficients",
        "diagnostics",
        "ranking",
    ]
