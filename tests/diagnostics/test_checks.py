"""Tests for skhier.diagnostics.checks and .verdict: checks on designed pathologies."""

import json
import warnings

import arviz as az
import numpy as np
import pytest
import sklearn.exceptions

from skhier.diagnostics import (
    ConvergenceError,
    ConvergenceWarning,
    Diagnostics,
    SamplerConvergenceWarning,
    check_diagnostics,
    diagnose,
)
from tests.diagnostics.posteriors import C, D, ar1, healthy_posterior, healthy_stats, make_idata


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


def status(diag, check):
    return diag.checks.set_index("check").loc[check, "status"]


# ------------------------------------------------------------------------------------------
# verdicts
# ------------------------------------------------------------------------------------------


def test_healthy_chains_pass(rng):
    diag = diagnose(make_idata(healthy_posterior(rng), healthy_stats(rng)))
    assert diag.passed
    assert diag.failed_checks == []
    assert diag.messages == []
    assert not diag.has_warnings
    assert list(diag.checks["check"]) == [
        "r_hat",
        "ess_bulk",
        "ess_tail",
        "divergences",
        "ebfmi",
        "tree_depth",
    ]
    assert set(diag.checks["status"]) == {"ok"}
    assert diag.n_chains == C and diag.n_draws == D and diag.n_parameters == 5
    assert diag.rhat_max < 1.01
    assert diag.ess_bulk_min > 400 and diag.ess_tail_min > 400
    assert diag.ess_bulk_min_per_chain == pytest.approx(diag.ess_bulk_min / C)
    assert diag.ess_tail_min_per_chain == pytest.approx(diag.ess_tail_min / C)
    assert diag.n_divergent == 0 and diag.divergent_per_chain.tolist() == [0] * C
    assert diag.n_treedepth_hits == 0
    assert diag.ebfmi.shape == (C,) and (diag.ebfmi > 1.5).all()  # iid energy: ~2
    assert list(diag.table.columns) == [
        "variable",
        "mean",
        "sd",
        "mcse_mean",
        "ess_bulk",
        "ess_tail",
        "r_hat",
    ]
    assert list(diag.table.index) == ["mu", "tau", "theta[0]", "theta[1]", "theta[2]"]
    assert diag.table.index.name == "parameter"
    assert diag.table.loc["theta[2]", "variable"] == "theta"
    assert diag.thresholds["rhat_max"] == 1.01
    assert diag.thresholds["min_ess_per_chain"] == 100
    # no warning on a healthy fit (pytest turns warnings into errors)
    check_diagnostics(diag, on_fail="raise")


def test_stuck_chain_fails_rhat_naming_parameter(rng):
    post = healthy_posterior(rng)
    post["tau"][2] += 3.0  # chain 2 stuck in another mode
    idata = make_idata(post, healthy_stats(rng))
    # ESS drops too when chains disagree; a relaxed ESS threshold isolates R-hat
    diag = diagnose(idata, min_ess_per_chain=1)
    assert not diag.passed
    assert diag.failed_checks == ["r_hat"]
    assert diag.rhat_max > 1.5
    assert diag.table["r_hat"].idxmax() == "tau"
    (msg,) = diag.messages
    assert msg.startswith("R-hat ")
    assert "> 1.01 for tau" in msg and "mu" not in msg
    # default thresholds: R-hat and bulk ESS, still naming tau only
    diag = diagnose(idata)
    assert diag.failed_checks[:2] == ["r_hat", "ess_bulk"]
    assert all("tau" in m and "theta" not in m for m in diag.messages)


def test_autocorrelated_chains_fail_ess_naming_parameter(rng):
    post = healthy_posterior(rng, draws=2000)
    post["slow"] = ar1(rng.standard_normal((C, 2000)), 0.98)
    idata = make_idata(post, healthy_stats(rng, draws=2000))
    # strong autocorrelation inflates R-hat a little too; a relaxed R-hat isolates ESS
    diag = diagnose(idata, rhat_max=1.1)
    assert not diag.passed
    assert diag.failed_checks == ["ess_bulk", "ess_tail"]
    assert diag.table["ess_bulk"].idxmin() == "slow"
    assert diag.ess_bulk_min < 400
    bulk, tail = diag.messages
    assert bulk.startswith("bulk ESS ") and tail.startswith("tail ESS ")
    for msg in (bulk, tail):
        assert "< 400 (100 per chain x 4 chains) for slow" in msg
        assert "mu" not in msg
    row = diag.checks.set_index("check").loc["ess_bulk"]
    assert row["threshold"] == 400 and not row["passed"]


def test_divergences_fail_with_chain_counts_and_actions(rng):
    stats = healthy_stats(rng)
    stats["diverging"][1, [5, 50, 500]] = True
    info = {"target_accept": 0.8, "parametrization": {"gene": "centered", "sgRNA": "noncentered"}}
    diag = diagnose(make_idata(healthy_posterior(rng), stats), info=info)
    assert not diag.passed
    assert diag.failed_checks == ["divergences"]
    assert diag.n_divergent == 3
    assert diag.divergent_per_chain.tolist() == [0, 3, 0, 0]
    (msg,) = diag.messages
    assert msg.startswith("3 divergent transitions")
    assert "chain 1: 3" in msg and "allowed: 0" in msg
    assert "increase target_accept (now 0.8)" in msg
    assert "parametrization='noncentered' for level 'gene'" in msg
    # tolerated up to allow_divergences
    assert diagnose(make_idata(healthy_posterior(rng), stats), allow_divergences=3).passed


def test_treedepth_hits_warn_but_pass(rng):
    stats = healthy_stats(rng)
    stats["reached_max_treedepth"][0, :40] = True
    stats["tree_depth"][0, :40] = 10
    diag = diagnose(make_idata(healthy_posterior(rng), stats))
    assert diag.passed  # saturation costs time, not validity
    assert diag.has_warnings
    assert diag.failed_checks == ["tree_depth"]
    assert status(diag, "tree_depth") == "warn"
    assert diag.n_treedepth_hits == 40
    assert diag.max_treedepth == 10
    (msg,) = diag.messages
    assert "40 of 4,000 transitions (1.0%) hit the maximum tree depth 10" in msg
    assert "max_treedepth" in msg
    # warns even with on_fail="raise" (never raises for a warning-level check)
    with pytest.warns(SamplerConvergenceWarning, match="tree depth"):
        check_diagnostics(diag, on_fail="raise")
    check_diagnostics(diag, on_fail="ignore")


def test_low_ebfmi_fails_naming_chain(rng):
    stats = healthy_stats(rng)
    stats["energy"][2] = 10.0 + ar1(rng.standard_normal((1, D)), 0.97)[0]
    diag = diagnose(make_idata(healthy_posterior(rng), stats), info={"tune": 1000})
    assert not diag.passed
    assert diag.failed_checks == ["ebfmi"]
    assert diag.ebfmi[2] < 0.3 and (np.delete(diag.ebfmi, 2) > 0.3).all()
    np.testing.assert_allclose(diag.ebfmi, az.bfmi(make_idata(healthy_posterior(rng), stats)))
    (msg,) = diag.messages
    assert msg.startswith("E-BFMI < 0.3 in chain 2 (")
    assert "chain 0" not in msg
    assert "(now tune=1000)" in msg


def test_nonfinite_draws_fail_finite_check(rng):
    post = healthy_posterior(rng)
    post["theta"][1, 7, 2] = np.nan
    diag = diagnose(make_idata(post, healthy_stats(rng)))
    assert not diag.passed
    assert diag.failed_checks == ["finite"]
    assert "theta[2]" in diag.messages[0]
    assert np.isnan(diag.table.loc["theta[2]", "r_hat"])
    assert diag.table.drop("theta[2]")["r_hat"].notna().all()


def test_constant_parameter_is_not_a_failure(rng):
    post = healthy_posterior(rng)
    post["fixed"] = np.full((C, D), 2.5)
    diag = diagnose(make_idata(post, healthy_stats(rng)))
    assert diag.passed
    assert np.isnan(diag.table.loc["fixed", "r_hat"])
    assert diag.table.loc["fixed", "ess_bulk"] == C * D


# ------------------------------------------------------------------------------------------
# sample statistics: spellings, warm-up, missing
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["pymc", "nutpie", "numpyro"])
def test_sample_stat_spellings_parse(rng, spelling):
    stats = healthy_stats(rng, spelling=spelling)
    stats["diverging"][3, :2] = True
    depth_name = {"pymc": "tree_depth", "nutpie": "depth", "numpyro": "tree_depth"}[spelling]
    stats[depth_name][0, :5] = 10
    flag = {"pymc": "reached_max_treedepth", "nutpie": "maxdepth_reached"}.get(spelling)
    if flag:
        stats[flag][0, :5] = True
    diag = diagnose(make_idata(healthy_posterior(rng), stats))
    assert diag.n_divergent == 2
    assert diag.divergent_per_chain.tolist() == [0, 0, 0, 2]
    assert diag.n_treedepth_hits == 5
    assert diag.max_treedepth == 10
    assert diag.ebfmi.shape == (C,)
    assert diag.failed_checks == ["divergences", "tree_depth"]


def test_numpyro_depth_uses_given_limit(rng):
    stats = healthy_stats(rng, spelling="numpyro")
    stats["tree_depth"][1, :7] = 6
    diag = diagnose(make_idata(healthy_posterior(rng), stats), max_treedepth=6)
    assert diag.n_treedepth_hits == 7 and diag.max_treedepth == 6
    assert diagnose(make_idata(healthy_posterior(rng), stats)).n_treedepth_hits == 0


def test_warmup_sample_stats_are_ignored(rng):
    post = healthy_posterior(rng)
    warm = healthy_stats(rng, spelling="nutpie")
    warm["diverging"][:] = True
    warm["maxdepth_reached"][:] = True
    warm["energy"] = np.cumsum(rng.standard_normal((C, D)), axis=1)  # terrible E-BFMI
    idata = make_idata(
        post,
        healthy_stats(rng, spelling="nutpie"),
        warmup_posterior=post,
        warmup_sample_stats=warm,
        save_warmup=True,
    )
    assert "warmup_sample_stats" in idata.groups()
    diag = diagnose(idata)
    assert diag.passed and not diag.has_warnings
    assert diag.n_divergent == 0 and diag.n_treedepth_hits == 0


def test_missing_sample_stats_are_not_available(rng):
    post = healthy_posterior(rng)
    diag = diagnose(make_idata(post))  # e.g. ADVI draws: no sample_stats at all
    assert diag.passed
    assert diag.n_divergent is None and diag.divergent_per_chain is None
    assert diag.ebfmi is None and diag.n_treedepth_hits is None and diag.max_treedepth is None
    for check in ("divergences", "ebfmi", "tree_depth"):
        assert status(diag, check) == "n/a"
    # a sampler without energy or tree depth (e.g. a Metropolis fallback)
    diag = diagnose(make_idata(post, {"diverging": np.zeros((C, D), dtype=bool)}))
    assert diag.passed and diag.n_divergent == 0 and diag.ebfmi is None
    assert status(diag, "ebfmi") == "n/a" and status(diag, "divergences") == "ok"
    assert "n/a" in diag.summary()


def test_single_chain_rhat_not_available(rng):
    diag = diagnose(make_idata(healthy_posterior(rng, chains=1)))
    assert diag.passed
    assert status(diag, "r_hat") == "n/a"
    assert "2 chains" in diag.checks.set_index("check").loc["r_hat", "detail"]
    assert np.isnan(diag.rhat_max)


def test_inputs_are_not_mutated(rng):
    post = healthy_posterior(rng)
    post["fixed"] = np.zeros((C, D))
    post["fixed"][1] = -0.0
    stats = healthy_stats(rng)
    idata = make_idata(post, stats)
    before = {k: v.values.copy() for k, v in idata.posterior.items()}
    before_stats = {k: v.values.copy() for k, v in idata.sample_stats.items()}
    info = {"target_accept": 0.8}
    diagnose(idata, info=info).update_info(tune=500)
    for k, v in before.items():
        np.testing.assert_array_equal(idata.posterior[k].values, v)
        assert np.signbit(idata.posterior["fixed"].values[1]).all()
    for k, v in before_stats.items():
        np.testing.assert_array_equal(idata.sample_stats[k].values, v)
    assert info == {"target_accept": 0.8}


def test_dataset_input(rng):
    idata = make_idata(healthy_posterior(rng), healthy_stats(rng))
    diag = diagnose(idata.posterior)
    assert diag.passed and diag.n_divergent is None and diag.n_parameters == 5


def test_bad_input():
    with pytest.raises(ValueError, match="posterior"):
        diagnose(np.zeros((4, 100)))


# ------------------------------------------------------------------------------------------
# variable selection and labels
# ------------------------------------------------------------------------------------------


def test_var_names_and_filter_vars(rng):
    post = healthy_posterior(rng)
    post["H0|gene_sigma"] = np.abs(rng.standard_normal((C, D)))
    post["tau_log__"] = np.log(post["tau"])  # nutpie stores PyMC's unconstrained copies
    idata = make_idata(post)
    assert "tau_log__" not in diagnose(idata).table["variable"].unique()
    assert diagnose(idata, "tau_log__").table.index.tolist() == ["tau_log__"]
    assert diagnose(idata, "mu").n_parameters == 1
    assert list(diagnose(idata, ["mu", "theta"]).table["variable"].unique()) == ["mu", "theta"]
    assert diagnose(idata, ["~theta"]).n_parameters == 3
    assert list(diagnose(idata, "gene", filter_vars="like").table.index) == ["H0|gene_sigma"]
    assert diagnose(idata, "^t", filter_vars="regex").n_parameters == 5  # with tau_log__
    assert diagnose(idata, "^th", filter_vars="regex").n_parameters == 3
    with pytest.raises(KeyError, match="nope.*available variables"):
        diagnose(idata, ["mu", "nope"])
    with pytest.raises(ValueError, match="selects no variable"):
        diagnose(idata, "zzz", filter_vars="like")
    with pytest.raises(ValueError, match="filter_vars='fuzzy'"):
        diagnose(idata, "mu", filter_vars="fuzzy")


def test_labels_use_coordinates(rng):
    idata = az.from_dict(
        posterior={"H0|gene": rng.standard_normal((2, 50, 2, 3))},
        coords={"gene": ["G01", "G02"], "rep": ["a", "b", "c"]},
        dims={"H0|gene": ["gene", "rep"]},
    )
    diag = diagnose(idata)
    assert diag.table.index[0] == "H0|gene[G01, a]"
    assert diag.table.index[-1] == "H0|gene[G02, c]"


# ------------------------------------------------------------------------------------------
# check_diagnostics
# ------------------------------------------------------------------------------------------


@pytest.fixture
def failed(rng):
    stats = healthy_stats(rng)
    stats["diverging"][0, 0] = True
    return diagnose(make_idata(healthy_posterior(rng), stats))


def test_warning_classes():
    assert issubclass(SamplerConvergenceWarning, ConvergenceWarning)
    assert issubclass(ConvergenceWarning, sklearn.exceptions.ConvergenceWarning)
    assert issubclass(ConvergenceError, RuntimeError)


def test_check_diagnostics_warns(failed):
    with pytest.warns(SamplerConvergenceWarning, match="1 divergent transition") as record:
        check_diagnostics(failed)
    assert record[0].filename == __file__  # stacklevel points at the caller
    with pytest.warns(sklearn.exceptions.ConvergenceWarning):
        check_diagnostics(failed, on_fail="refit")  # the estimator's last attempt: warn


def test_check_diagnostics_raises(failed):
    with pytest.raises(ConvergenceError, match="divergences") as excinfo:
        check_diagnostics(failed, on_fail="raise")
    assert excinfo.value.diagnostics is failed


def test_check_diagnostics_ignore(failed):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_diagnostics(failed, on_fail="ignore")


@pytest.mark.parametrize("bad", ["panic", None, 1])
def test_check_diagnostics_rejects_bad_on_fail(failed, bad):
    with pytest.raises(ValueError) as excinfo:
        check_diagnostics(failed, on_fail=bad)
    text = str(excinfo.value)
    assert repr(bad) in text
    for choice in ("'warn'", "'raise'", "'refit'", "'ignore'"):
        assert choice in text


def test_check_diagnostics_rejects_non_diagnostics():
    with pytest.raises(TypeError, match="Diagnostics"):
        check_diagnostics({"passed": False})


# ------------------------------------------------------------------------------------------
# text and serialization
# ------------------------------------------------------------------------------------------


def test_summary_and_repr(failed):
    failed.update_info(engine="collapsed", sampler="nutpie", attempts=[{}, {}])
    text = failed.summary()
    assert text.splitlines()[0] == "Sampler diagnostics: FAILED (1 of 6 checks)"
    assert "4 chains x 1,000 draws, 5 parameters checked" in text
    assert "engine=collapsed" in text and "sampler=nutpie" in text and "attempts=2" in text
    for check in ("r_hat", "ess_bulk", "ess_tail", "divergences", "ebfmi", "tree_depth"):
        assert check in text
    assert "What to do:" in text and failed.messages[0] in text
    assert str(failed) == text
    # repr is one line (lists and logs of verdicts stay readable); print() shows the summary
    short = repr(failed)
    assert "\n" not in short and short.startswith("<Diagnostics FAILED (divergences)")
    assert "4 chains x 1,000 draws, 5 parameters" in short and "1 divergence" in short


def test_update_info_refreshes_messages(failed):
    assert "reparametrize the hierarchy" in failed.messages[0]
    failed.update_info(target_accept=0.95, parametrization={"gene": "centered"})
    assert "(now 0.95)" in failed.messages[0]
    assert "parametrization='noncentered' for level 'gene'" in failed.messages[0]
    failed.update_info(target_accept=0.99, parametrization={"gene": "noncentered"})
    assert "target_accept is already 0.99" in failed.messages[0]
    assert "already non-centered" in failed.messages[0]
    failed.update_info(parametrization={"gene": "marginalized"})  # the collapsed engine
    assert failed.messages[0].endswith("reparametrize the model")


def test_to_dict_is_json_and_round_trips(failed):
    failed.update_info(sampler="nutpie")
    d = failed.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert "table" not in d
    back = Diagnostics.from_dict(json.loads(text))
    assert back.passed == failed.passed
    assert back.messages == failed.messages
    assert back.n_divergent == 1 and back.divergent_per_chain.tolist() == [1, 0, 0, 0]
    np.testing.assert_allclose(back.ebfmi, failed.ebfmi)
    assert back.checks["check"].tolist() == failed.checks["check"].tolist()
    assert back.info == {"sampler": "nutpie"}
    full = Diagnostics.from_dict(json.loads(json.dumps(failed.to_dict(include_table=True))))
    np.testing.assert_allclose(full.table["ess_bulk"], failed.table["ess_bulk"])
    assert list(full.table.index) == list(failed.table.index)
    assert back.summary().splitlines()[0] == failed.summary().splitlines()[0]


# ------------------------------------------------------------------------------------------
# vectorized statistics vs ArviZ
# ------------------------------------------------------------------------------------------



def test_diagnose_table_matches_arviz_summary(rng):
    post = {"a": ar1(rng.standard_normal((4, 400)), 0.7), "b": rng.standard_normal((4, 400, 2))}
    idata = az.from_dict(posterior=post)
    table = diagnose(idata).table
    ref = az.summary(idata, kind="diagnostics", round_to="none")
    for col in ("mcse_mean", "ess_bulk", "ess_tail", "r_hat"):
        np.testing.assert_allclose(table[col].to_numpy(), ref[col].to_numpy(), rtol=1e-9)
    assert list(table.index) == list(ref.index)

