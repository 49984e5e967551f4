"""PSIS over rows: the numba kernel against ArviZ's psislw, row by row."""

import warnings

import arviz as az
import numpy as np
import pytest
from scipy.special import logsumexp

from skhier.diagnostics._psis import psis_loo, psis_smooth


@pytest.fixture(scope="module")
def log_weights():
    rng = np.random.default_rng(3)
    rows = [rng.normal(0, s, 500) for s in np.linspace(0.01, 3, 30)]
    rows += [rng.standard_t(1, 500) * 2 for _ in range(10)]
    lw = np.vstack(rows)
    lw[2, :50] = lw[2, 50]  # ties in the body
    return lw


def test_matches_arviz(log_weights):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref_smoothed, ref_k = az.psislw(log_weights.copy(), 1.0)
    smoothed, k = psis_smooth(log_weights)
    np.testing.assert_allclose(k, ref_k, atol=1e-10)
    np.testing.assert_allclose(smoothed, np.asarray(ref_smoothed), atol=1e-10)


def test_does_not_modify_input_and_normalizes(log_weights):
    before = log_weights.copy()
    smoothed, _ = psis_smooth(log_weights)
    np.testing.assert_array_equal(log_weights, before)
    np.testing.assert_allclose(np.exp(smoothed).sum(axis=1), 1.0)


def test_heavy_tails_have_large_k(log_weights):
    _, k = psis_smooth(log_weights)
    assert (k[:5] < 0.5).all()
    assert (k[-10:] > 0.7).all()


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((3, 1))])
def test_bad_shapes(bad):
    with pytest.raises(ValueError, match="must be 2-D|at least 2 draws"):
        psis_smooth(bad)


def test_rows_with_nan_get_no_estimate_and_others_are_unchanged(log_weights):
    lw = log_weights.copy()
    lw[4, 7] = np.nan
    lw[5] = -np.inf
    smoothed, k = psis_smooth(lw)
    assert np.isnan(k[[4, 5]]).all() and np.isnan(smoothed[[4, 5]]).all()
    ref_smoothed, ref_k = psis_smooth(log_weights)
    keep = np.setdiff1d(np.arange(len(lw)), [4, 5])
    np.testing.assert_array_equal(k[keep], ref_k[keep])
    np.testing.assert_array_equal(smoothed[keep], ref_smoothed[keep])


def test_threads_do_not_change_the_result(log_weights):
    from skhier._parallel import thread_limit

    with thread_limit(1):
        one = psis_smooth(log_weights)
    with thread_limit(2):
        two = psis_smooth(log_weights)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("r_eff", [1.0, 0.7])
def test_psis_loo_matches_arviz_loo(log_weights, r_eff):
    ll = -log_weights  # every kind of row: light and heavy tails, ties
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lw, ref_k = az.psislw(log_weights.copy(), r_eff)
    ref_loo = logsumexp(np.asarray(lw) + ll, axis=1)
    loo, lppd, k = psis_loo(ll, r_eff)
    np.testing.assert_allclose(k, ref_k, atol=1e-10)
    np.testing.assert_allclose(loo, ref_loo, rtol=1e-10, atol=1e-10)
    ref_lppd = logsumexp(ll, axis=1) - np.log(ll.shape[1])
    np.testing.assert_allclose(lppd, ref_lppd, rtol=1e-12, atol=1e-12)


def test_psis_loo_nan_rows_and_shape_errors():
    ll = np.random.default_rng(0).normal(size=(3, 200))
    ll[1, 5] = np.nan
    loo, lppd, k = psis_loo(ll)
    assert np.isnan([loo[1], lppd[1], k[1]]).all() and np.isfinite(loo[[0, 2]]).all()
    with pytest.raises(ValueError, match=r"2-D \(rows, draws >= 2\), got shape \(5,\)"):
        psis_loo(np.zeros(5))
