"""The compiled row kernels of the predictions, each against NumPy or SciPy."""

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from skhier._parallel import thread_limit
from skhier._predictive_numba import eta_rows, log_density_rows, logsumexp_rows


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threads", [1, 2])
def test_eta_rows_is_the_linear_predictor(dtype, threads):
    rng = np.random.default_rng(0)
    n, s, levels = 37, 11, 5
    W = rng.normal(size=(n, 3))
    offset = rng.normal(size=n)
    common = rng.normal(size=(2, s))
    common_cols = np.array([0, 2])
    term_cols = np.array([1, 2])
    V = rng.normal(size=(2 * levels, s)).astype(dtype)
    codes = np.vstack([rng.integers(-1, levels, n), rng.integers(levels, 2 * levels, n)])
    ref = offset[:, None] + W[:, [0]] * common[0] + W[:, [2]] * common[1]
    for t in range(2):
        seen = codes[t] >= 0
        ref[seen] += W[seen, term_cols[t], None] * V[codes[t, seen]].astype(np.float64)
    with thread_limit(threads):
        got = eta_rows(3, 30, offset, W, common, common_cols, term_cols, codes, V)
        np.testing.assert_allclose(got, ref[3:30], rtol=1e-12, atol=1e-12)
        # accumulate adds onto what is there
        acc = np.ones((27, s))
        eta_rows(
            3, 30, offset, W, common, common_cols, term_cols, codes, V, out=acc, accumulate=True
        )
        np.testing.assert_allclose(acc, ref[3:30] + 1, rtol=1e-12, atol=1e-12)


def test_log_density_rows_match_scipy():
    rng = np.random.default_rng(1)
    n, s = 9, 6
    eta = rng.normal(1.0, 1.5, size=(n, s))
    y = rng.poisson(3.0, size=n).astype(float)
    sigma2 = rng.uniform(0.2, 2.0, s)
    extra = rng.uniform(0.0, 0.5, size=(n, s))
    alpha = rng.uniform(0.5, 50.0, s)
    got = log_density_rows("gaussian", y, sigma2, eta.copy(), extra)
    ref = stats.norm.logpdf(y[:, None], eta, np.sqrt(sigma2 + extra))
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    got = log_density_rows("gaussian", y, sigma2, eta.copy())
    np.testing.assert_allclose(got, stats.norm.logpdf(y[:, None], eta, np.sqrt(sigma2)), rtol=1e-12)
    got = log_density_rows("poisson", y, np.ones(1), eta.copy())
    np.testing.assert_allclose(got, stats.poisson.logpmf(y[:, None], np.exp(eta)), rtol=1e-12)
    got = log_density_rows("negativebinomial", y, alpha, eta.copy())
    mu = np.exp(eta)
    ref = stats.nbinom.logpmf(y[:, None], alpha, alpha / (alpha + mu))
    np.testing.assert_allclose(got, ref, rtol=1e-10)
    # a mean far above alpha: log(alpha + mu) stays accurate
    big = np.full((1, 1), 40.0)
    got = log_density_rows("negativebinomial", np.array([3.0]), np.array([2.0]), big)
    ref = stats.nbinom.logpmf(3, 2.0, 2.0 / (2.0 + np.exp(40.0)))
    assert got[0, 0] == pytest.approx(ref, rel=1e-10)


def test_logsumexp_rows_matches_scipy_and_keeps_special_rows():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 30, size=(5, 400))
    x[1] = -np.inf
    x[2, 7] = np.nan
    x[3, :200] = -np.inf
    with thread_limit(2):
        got = logsumexp_rows(x)
    np.testing.assert_allclose(got[[0, 3, 4]], logsumexp(x[[0, 3, 4]], axis=1), rtol=1e-13)
    assert got[1] == -np.inf and np.isnan(got[2])
