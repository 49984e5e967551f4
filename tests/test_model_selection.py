"""LOOSearchCV, the group-aware splitters and the held-out density scorer."""

import logging
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp
from sklearn.base import clone
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import skhier
from skhier import HierarchicalRanker, ScreenSimulator
from skhier.model_selection import (
    GroupLevelKFold,
    LOOSearchCV,
    WithinGroupKFold,
    _refit_folds,
    lpd_scorer,
    make_lpd_scorer,
)
from skhier.scoring import ParetoKWarning, pointwise_log_likelihood
from tests.helpers import COUNT_FORMULA, FORUM, LOO_NUMERIC, count_frame, small_kwargs

POOLINGS = ["complete", "partial", "none"]


def ranker(**kw):
    return HierarchicalRanker(formula=FORUM, level="gene", **small_kwargs(**kw))


def lppd_by_hand(fitted, X):
    """Per-row log pointwise predictive density, from the pointwise log likelihood."""
    ll = pointwise_log_likelihood(fitted, X)
    ll = ll.reshape(-1, ll.shape[-1])
    return logsumexp(ll, axis=0) - np.log(ll.shape[0])


def double_response(df):
    return df.assign(Ht=2.0 * df["Ht"])


@pytest.fixture(scope="module")
def screen():
    """300 rows: 5 genes x 4 sgRNAs x 15 samples; sgRNAs of a gene truly differ (sgrna_sd)."""
    sim = ScreenSimulator(n_genes=5, sgrnas_per_gene=4, n_samples=15, random_state=0)
    return sim, sim.fit_transform()


@pytest.fixture(scope="module")
def search(screen):
    _, df = screen
    return LOOSearchCV(ranker(), {"pooling": POOLINGS}).fit(df)


@pytest.fixture(scope="module")
def tiny():
    """30 rows: 3 genes x 2 sgRNAs x 5 samples."""
    return ScreenSimulator(
        n_genes=3, sgrnas_per_gene=2, n_samples=5, random_state=1
    ).fit_transform()


# ---------------------------------------------------------------------------- the search
def test_pooling_search_prefers_a_hierarchy_over_complete_pooling(screen, search):
    sim, df = screen
    slopes = sim.true_slopes_["sgRNA"]
    genes = slopes.index.str.split("_").str[0]
    # known truth: sgRNAs of the same gene have different slopes (in 3 of the 5 genes; the
    # other two have effects near 0, where the slopes sit at the truncation bound)
    assert (slopes.groupby(genes).std() > 0.1).sum() == 3
    res = search.cv_results_
    complete, partial = POOLINGS.index("complete"), POOLINGS.index("partial")
    assert search.best_params_["pooling"] != "complete"
    assert search.best_params_ == res["params"][search.best_index_]
    # complete pooling loses to partial by more than 2 standard errors of the difference
    diff = res["elpd_loo"][partial] - res["elpd_loo"][complete]
    pointwise = [np.asarray(r["loo_i"]) for r in search.loo_results_]
    dse = np.sqrt(len(df) * np.var(pointwise[partial] - pointwise[complete]))
    assert diff > 2 * dse
    assert res["weight"][complete] < res["weight"][partial]
    assert res["rank_test_score"][complete] == 3


def test_cv_results_are_consistent(screen, search):
    _, df = screen
    res = search.cv_results_
    n, best = len(df), search.best_index_
    assert search.n_candidates_ == 3
    assert res["params"] == [{"pooling": p} for p in POOLINGS]
    assert isinstance(res["param_pooling"], np.ma.MaskedArray)
    assert res["param_pooling"].tolist() == POOLINGS
    for key in LOO_NUMERIC + ("fit_time", "score_time", "refit_time"):
        assert res[key].shape == (3,), key
    # "best": the highest elpd, its difference and dse 0, every other difference positive
    assert best == int(np.argmax(res["elpd_loo"]))
    assert res["elpd_diff"][best] == 0.0 and res["dse"][best] == 0.0
    np.testing.assert_allclose(res["elpd_diff"], res["elpd_loo"].max() - res["elpd_loo"])
    assert search.best_score_ == res["elpd_loo"][best]
    assert res["rank_test_score"][best] == 1
    assert res["weight"].sum() == pytest.approx(1.0)
    assert (res["weight"] >= 0).all()
    counts = sum(res[k] for k in ("n_k_good", "n_k_ok", "n_k_bad", "n_k_very_bad"))
    assert (counts == n).all()
    # the default threshold 0.7 refits exactly the rows counted above it
    assert (res["n_refit_rows"] == res["n_k_bad"] + res["n_k_very_bad"]).all()
    assert (res["n_refits"] == np.minimum(res["n_refit_rows"], 10)).all()
    # elpd_loo and se from the pointwise values; dse and stacking weights as arviz computes them
    for i, r in enumerate(search.loo_results_):
        loo_i = np.asarray(r["loo_i"])
        assert loo_i.shape == (n,)
        assert res["elpd_loo"][i] == pytest.approx(loo_i.sum())
        assert res["se"][i] == pytest.approx(np.sqrt(n * np.var(loo_i)))
    table = az.compare(
        {str(i): r for i, r in enumerate(search.loo_results_)}, ic="loo", method="stacking"
    )
    for i in range(3):
        assert res["dse"][i] == pytest.approx(table.loc[str(i), "dse"], rel=1e-10, abs=1e-12)
        assert res["weight"][i] == pytest.approx(table.loc[str(i), "weight"], abs=1e-8)
    # the chosen fit: PSIS-LOO values outside the refitted rows, its in-sample lppd in p_loo
    fitted = search.best_estimator_
    kept = np.setdiff1d(np.arange(n), search.refit_rows_[best])
    np.testing.assert_allclose(
        np.asarray(search.loo_results_[best]["loo_i"])[kept],
        np.asarray(fitted.loo_["loo_i"])[kept],
    )
    lppd = res["elpd_loo"][best] + res["p_loo"][best]
    assert lppd == pytest.approx(fitted.score(df) * n, rel=1e-10)


def test_delegates_to_the_chosen_fit(screen, search):
    _, df = screen
    fitted = search.best_estimator_
    assert fitted.pooling == search.best_params_["pooling"]
    np.testing.assert_array_equal(search.predict(df), fitted.predict(df))
    mean, std = search.predict(df, return_std=True)
    assert mean.shape == std.shape == (len(df),)
    assert search.score(df) == fitted.score(df)
    assert search.rank_.equals(fitted.rank_)
    assert search.dominance_.shape == (5, 5)
    assert search.n_features_in_ == df.shape[1]
    assert lpd_scorer(search, df) == pytest.approx(search.score(df), rel=1e-12)


def test_one_se_rule_and_refit_false(screen, search, caplog):
    _, df = screen
    with caplog.at_level(logging.INFO, logger="skhier"):
        one = LOOSearchCV(
            ranker(), {"pooling": POOLINGS}, rule="one_se", refit=False, verbose=1
        ).fit(df)
    logged = [m for m in caplog.messages if m.startswith("skhier: candidate")]
    assert len(logged) == 3 and logged[0].startswith("skhier: candidate 1/3 {'pooling'")
    res = one.cv_results_
    # the same fits (same seeds) give the same scores; only the choice differs
    for key in LOO_NUMERIC:
        np.testing.assert_allclose(res[key], search.cv_results_[key], err_msg=key)
    within = np.flatnonzero(res["elpd_diff"] <= res["dse"])
    assert one.best_index_ == within[0]
    assert one.best_params_["pooling"] != "complete"
    assert one.best_score_ == res["elpd_loo"][one.best_index_]
    assert not hasattr(one, "best_estimator_")
    with pytest.raises(AttributeError, match="refit=False"):
        one.predict(df)


def test_exact_loo_refits_of_the_highest_k_rows(tiny):
    est = ranker()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParetoKWarning)
        k = np.asarray(clone(est).fit(tiny).loo_["pareto_k"])
    threshold = float(np.sort(k)[-3])  # the two rows above it are refitted, one at a time
    high = np.flatnonzero(k > threshold)
    assert len(high) == 2
    s = LOOSearchCV(est, {"pooling": ["partial"]}, refit_k_threshold=threshold).fit(tiny)
    np.testing.assert_array_equal(s.refit_rows_[0], high)
    assert s.cv_results_["n_refit_rows"][0] == 2 and s.cv_results_["n_refits"][0] == 2
    loo_i = np.asarray(s.loo_results_[0]["loo_i"])
    for row in high:
        held_out = clone(est).fit(tiny.drop(index=tiny.index[row]))
        expected = lppd_by_hand(held_out, tiny.iloc[[row]])
        assert loo_i[row] == pytest.approx(expected[0], rel=1e-10)
    # the other rows keep the PSIS-LOO value of the fit on all rows
    full = s.best_estimator_.loo_
    others = np.setdiff1d(np.arange(len(tiny)), high)
    np.testing.assert_allclose(loo_i[others], np.asarray(full["loo_i"])[others])


def test_many_high_k_rows_are_refitted_in_a_bounded_number_of_folds(tiny):
    est = ranker()
    s = LOOSearchCV(
        est, {"pooling": ["partial"]}, refit_k_threshold=-np.inf, max_exact_refits=3
    ).fit(tiny)
    n = len(tiny)
    res = s.cv_results_
    assert res["n_refit_rows"][0] == n and res["n_refits"][0] == 3
    np.testing.assert_array_equal(s.refit_rows_[0], np.arange(n))
    loo_i = np.asarray(s.loo_results_[0]["loo_i"])
    assert res["elpd_loo"][0] == pytest.approx(loo_i.sum())
    folds = _refit_folds(np.arange(n), 3)
    for rows in folds:
        held_out = clone(est).fit(tiny.drop(index=tiny.index[rows]))
        np.testing.assert_allclose(loo_i[rows], lppd_by_hand(held_out, tiny.iloc[rows]))
        assert loo_i[rows].mean() == pytest.approx(held_out.score(tiny.iloc[rows]))
    # p_loo stays lppd (the fit on all rows) minus elpd
    lppd = s.best_estimator_.score(tiny) * n
    assert res["p_loo"][0] == pytest.approx(lppd - loo_i.sum())


def test_count_candidates_are_refitted_exactly():
    df = count_frame()
    est = HierarchicalRanker(
        formula=COUNT_FORMULA, family="negativebinomial", level="gene", **small_kwargs()
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the count engine's approximation check on 6 sgRNAs
        s = LOOSearchCV(
            est, {"pooling": ["partial"]}, refit_k_threshold=-np.inf, max_exact_refits=2
        ).fit(df)
        assert s.best_estimator_.engine_ == "laplace"
        loo_i = np.asarray(s.loo_results_[0]["loo_i"])
        assert s.cv_results_["n_refits"][0] == 2 and np.isfinite(loo_i).all()
        for rows in _refit_folds(np.arange(len(df)), 2):
            held_out = clone(est).fit(df.drop(index=df.index[rows]))
            np.testing.assert_allclose(loo_i[rows], lppd_by_hand(held_out, df.iloc[rows]))


def test_refit_folds_deal_rows_and_bound_the_refits():
    rows = np.array([9, 2, 7, 4, 5, 11, 0])
    for max_refits in (1, 3, 7, 20):
        folds = _refit_folds(rows, max_refits)
        assert len(folds) == min(len(rows), max_refits)
        np.testing.assert_array_equal(np.sort(np.concatenate(folds)), np.sort(rows))
    np.testing.assert_array_equal(_refit_folds(rows, 3)[0], [0, 5, 11])


def test_rows_dropped_by_the_ranker_are_matched_to_x(tiny):
    df = tiny.copy()
    df.index = [f"r{i}" for i in range(len(df))]
    df.loc[["r3", "r10"], "Ht"] = np.nan
    est = ranker(missing="drop")
    s = LOOSearchCV(
        est, {"pooling": ["partial"]}, refit_k_threshold=-np.inf, max_exact_refits=2
    ).fit(df)
    clean = df.dropna()
    assert s.cv_results_["n_refit_rows"][0] == len(clean)
    loo_i = np.asarray(s.loo_results_[0]["loo_i"])
    for rows in _refit_folds(np.arange(len(clean)), 2):
        held_out = clone(est).fit(clean.drop(index=clean.index[rows]))
        np.testing.assert_allclose(loo_i[rows], lppd_by_hand(held_out, clean.iloc[rows]))


def test_pipeline_and_transformed_rows(tiny):
    pipe = Pipeline(
        [
            ("double", FunctionTransformer(double_response, validate=False)),
            ("rank", ranker()),
        ]
    )
    s = LOOSearchCV(
        pipe,
        {"rank__pooling": ["complete", "partial"]},
        refit_k_threshold=-np.inf,
        max_exact_refits=2,
    ).fit(tiny)
    assert isinstance(s.best_estimator_, Pipeline)
    assert s.rank_.shape[0] == 3
    np.testing.assert_allclose(s.predict(tiny), s.best_estimator_.predict(tiny))
    # the held-out rows are scored as the Pipeline transforms them (the doubled response)
    for c, params in enumerate(s.cv_results_["params"]):
        loo_i = np.asarray(s.loo_results_[c]["loo_i"])
        for rows in _refit_folds(np.arange(len(tiny)), 2):
            held_out = clone(pipe).set_params(**params).fit(tiny.drop(index=tiny.index[rows]))
            expected = held_out.score(tiny.iloc[rows]) * len(rows)
            assert loo_i[rows].sum() == pytest.approx(expected, rel=1e-10)
            assert lpd_scorer(held_out, tiny.iloc[rows]) == pytest.approx(expected / len(rows))


def test_clone_and_params():
    s = LOOSearchCV(ranker(), {"pooling": POOLINGS}, rule="one_se", refit_k_threshold=0.5)
    c = clone(s)
    assert c.get_params(deep=False).keys() == s.get_params(deep=False).keys()
    assert (c.rule, c.refit_k_threshold, c.param_grid) == ("one_se", 0.5, s.param_grid)
    assert c.estimator is not s.estimator
    assert s.get_params()["estimator__pooling"] == "partial"
    c.set_params(estimator__draws=300, max_exact_refits=4)
    assert (c.estimator.draws, c.max_exact_refits) == (300, 4)
    assert s.estimator.draws == 200
    with pytest.raises(TypeError):
        LOOSearchCV(ranker(), {"pooling": POOLINGS}, "one_se")


def test_parallel_equals_sequential(tiny):
    grid = {"pooling": ["complete", "partial"]}
    kw = dict(refit_k_threshold=0.3, max_exact_refits=2)
    seq = LOOSearchCV(ranker(), grid, n_jobs=1, **kw).fit(tiny)
    par = LOOSearchCV(ranker(), grid, n_jobs=2, **kw).fit(tiny)
    assert seq.cv_results_["n_refits"].sum() > 0  # the refits ran in parallel too
    assert par.best_params_ == seq.best_params_
    for key in LOO_NUMERIC:
        np.testing.assert_allclose(
            par.cv_results_[key], seq.cv_results_[key], rtol=1e-12, err_msg=key
        )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"rule": "worst"}, ValueError, r"rule='worst' is not valid; choose one of \('best'"),
        ({"refit_k_threshold": "high"}, TypeError, "refit_k_threshold must be a number"),
        ({"max_exact_refits": 0}, ValueError, r"max_exact_refits=0 is out of range"),
        ({"param_grid": {"poolin": ["none"]}}, ValueError, "Invalid parameter 'poolin'"),
        ({"param_grid": {"pooling": ["full"]}}, ValueError, r"pooling='full' is not valid"),
        ({"estimator": LinearRegression()}, TypeError, "got LinearRegression"),
        (
            {"estimator": Pipeline([("lr", LinearRegression())])},
            TypeError,
            "Pipeline ending in LinearRegression",
        ),
    ],
)
def test_errors_come_before_any_fit(tiny, monkeypatch, kwargs, error, match):
    import skhier.model_selection as ms

    def no_fit(*args, **kw):
        raise AssertionError("fitted before the parameters were checked")

    monkeypatch.setattr(ms, "_fit_candidate", no_fit)
    params = {"estimator": ranker(), "param_grid": {"pooling": POOLINGS}, **kwargs}
    with pytest.raises(error, match=match):
        LOOSearchCV(**params).fit(tiny)


def test_rows_of_other_families_keep_psis_loo_with_a_warning():
    # the exact refits need the held-out density, implemented for skhier's FAMILIES only
    s = LOOSearchCV(ranker(family="bernoulli"), {"pooling": ["partial"]})
    first = [{"pareto_k": np.array([0.2, 0.9, np.nan]), "family": "bernoulli"}]
    with pytest.warns(ParetoKWarning, match=r"has 2 row\(s\) with Pareto k > 0.7.*keep their"):
        tasks = s._refit_tasks([({"pooling": "partial"}, None)], first)
    assert tasks == [] and len(first[0]["high"]) == 0


def test_empty_grid_is_an_error(tiny):
    with pytest.raises(ValueError, match="param_grid=\\[\\] has no candidates"):
        LOOSearchCV(ranker(), []).fit(tiny)


def test_public_names_are_lazy():
    for name in ("LOOSearchCV", "GroupLevelKFold", "WithinGroupKFold", "make_lpd_scorer"):
        assert getattr(skhier, name) is getattr(skhier.model_selection, name)
        assert name in skhier.__all__


# ---------------------------------------------------------------------------- splitters
def _frame(sizes):
    """Rows per group of two nested columns: gene and sgRNA (``sizes[gene][sgRNA]``)."""
    rows = [
        (f"g{g}", f"s{j}", v)
        for g, per in enumerate(sizes)
        for j, m in enumerate(per)
        for v in range(m)
    ]
    return pd.DataFrame(rows, columns=["gene", "sgRNA", "x"])


def test_group_level_kfold_never_splits_a_group(screen):
    _, df = screen
    cv = GroupLevelKFold(level="gene", n_splits=3)
    assert cv.get_n_splits() == 3
    tested = np.zeros(len(df), dtype=int)
    for train, test in cv.split(df):
        assert not set(df["gene"].iloc[train]) & set(df["gene"].iloc[test])
        tested[test] += 1
    assert (tested == 1).all()
    # nested levels joined by ':' (sgRNA labels repeat across genes here)
    X = _frame([[3, 2], [2, 2], [4, 1]])
    sizes = []
    for train, test in GroupLevelKFold(level="gene:sgRNA", n_splits=2).split(X):
        keys = lambda idx: set(zip(X["gene"].iloc[idx], X["sgRNA"].iloc[idx], strict=True))  # noqa: E731
        assert not keys(train) & keys(test)
        sizes.append(len(test))
    assert sorted(sizes) == [7, 7]  # balanced by rows: 4, 3 | 2, 2, 2, 1


def test_group_level_kfold_shuffle_is_seeded(screen):
    _, df = screen

    def tests(cv):
        return [tuple(sorted(set(df["gene"].iloc[t]))) for _, t in cv.split(df)]

    a = tests(GroupLevelKFold(level="gene", n_splits=5, shuffle=True, random_state=3))
    b = tests(GroupLevelKFold(level="gene", n_splits=5, shuffle=True, random_state=3))
    assert a == b and sorted(a) == [(g,) for g in sorted(df["gene"].unique())]
    others = {
        tuple(tests(GroupLevelKFold(level="gene", n_splits=5, shuffle=True, random_state=s)))
        for s in range(6)
    }
    assert len(others) > 1


def test_within_group_kfold_keeps_every_group_in_training(screen):
    _, df = screen
    n_splits = 4
    tested = np.zeros(len(df), dtype=int)
    sizes = df.groupby("sgRNA").size()
    for train, test in WithinGroupKFold(level="sgRNA", n_splits=n_splits).split(df):
        assert set(df["sgRNA"].iloc[train]) == set(df["sgRNA"])
        lost = df["sgRNA"].iloc[test].value_counts()
        assert (lost <= np.ceil(sizes[lost.index] / n_splits)).all()
        tested[test] += 1
    assert (tested == 1).all()
    # a group of one row stays in training; a group of two is tested on one row at a time
    X = _frame([[1, 2], [3]])
    cv = WithinGroupKFold(level="gene:sgRNA", n_splits=2, shuffle=True, random_state=0)
    seen = np.zeros(len(X), dtype=int)
    for train, test in cv.split(X):
        assert 0 in train
        keys = set(zip(X["gene"].iloc[train], X["sgRNA"].iloc[train], strict=True))
        assert keys == {("g0", "s0"), ("g0", "s1"), ("g1", "s0")}
        seen[test] += 1
    np.testing.assert_array_equal(seen, [0, 1, 1, 1, 1, 1])


def test_splitters_in_cross_val_score_and_grid_search(screen):
    _, df = screen
    est = ranker()
    cv = GroupLevelKFold(level="gene", n_splits=3)
    scores = cross_val_score(est, df, cv=cv)
    by_hand = [clone(est).fit(df.iloc[tr]).score(df.iloc[te]) for tr, te in cv.split(df)]
    np.testing.assert_allclose(scores, by_hand, rtol=1e-12)
    np.testing.assert_allclose(cross_val_score(est, df, cv=cv, scoring=lpd_scorer), scores)
    sums = cross_val_score(est, df, cv=cv, scoring=make_lpd_scorer(average=False))
    np.testing.assert_allclose(sums, scores * [len(te) for _, te in cv.split(df)])
    grid = GridSearchCV(
        est, {"pooling": ["complete", "partial"]}, cv=WithinGroupKFold(level="sgRNA", n_splits=2)
    ).fit(df)
    # new samples of known sgRNAs: the hierarchy predicts them better than one common slope
    assert grid.best_params_ == {"pooling": "partial"}
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()


@pytest.mark.parametrize("splitter", [GroupLevelKFold, WithinGroupKFold])
def test_splitter_errors(splitter, screen):
    _, df = screen
    name = splitter.__name__
    with pytest.raises(
        ValueError,
        match=rf"{name}: level='Gene' is not a column of X; choose "
        r"one of \['gene', 'sgRNA'",
    ):
        next(splitter(level="Gene").split(df))
    with pytest.raises(TypeError, match="X must be a pandas DataFrame, got ndarray"):
        next(splitter(level="gene").split(df[["H0", "Ht"]].to_numpy()))
    with pytest.raises(ValueError, match=r"n_splits=1 is out of range"):
        next(splitter(level="gene", n_splits=1).split(df))
    with pytest.raises(ValueError, match="random_state=0 has no effect with shuffle=False"):
        next(splitter(level="gene", random_state=0).split(df))
    bad = df.assign(gene=df["gene"].where(df.index != 7))
    with pytest.raises(ValueError, match=r"1 missing value\(s\) \(first at row 7\)"):
        next(splitter(level="gene").split(bad))


def test_splitter_n_splits_too_large(screen):
    _, df = screen
    with pytest.raises(
        ValueError,
        match=r"n_splits=6 is larger than the number of groups at "
        r"level 'gene' \(5\); choose n_splits between 2 and 5",
    ):
        next(GroupLevelKFold(level="gene", n_splits=6).split(df))
    X = _frame([[2, 1], [1]])
    with pytest.raises(ValueError, match=r"n_splits=3 is larger than the 2 row\(s\) that can"):
        next(WithinGroupKFold(level="gene:sgRNA", n_splits=3).split(X))
