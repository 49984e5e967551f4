"""The collapsed engine against a dense Gaussian computation of the same model."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import multivariate_normal

from skhier.engine.collapsed import build_tree
from skhier.engine.tree import draw_coefficients, log_marginal
from skhier.formula import parse_formula
from skhier.priors import Prior
from tests.helpers import plan_with_priors


def nested_frame(seed=1):
    rng = np.random.default_rng(seed)
    rows = [(f"g{g}", f"g{g}s{s}") for g in range(3) for s in range(2 + g % 2) for _ in range(4)]
    df = pd.DataFrame(rows, columns=["g", "s"])
    df["x"] = rng.normal(size=len(df)) + 1
    df["y"] = rng.normal(size=len(df)) + df["x"]
    return df


FORMULAS = [
    "y ~ 1 + x + (1|g) + (x|g:s)",
    "y ~ 0 + x:(1|g/s)",
    "y ~ x + (x|g)",
    "y ~ 0 + x + x:(1|g/s)",
    "y ~ 1 + x",
]


def setup(formula):
    df = nested_frame()
    p = parse_formula(formula)
    priors = {"sigma": Prior("HalfNormal", {"sigma": 1.0})}
    rng = np.random.default_rng(3)
    for c in p.common + (("Intercept",) if p.intercept else ()):
        priors[c] = Prior("Normal", {"mu": float(rng.normal()), "sigma": float(rng.uniform(1, 2))})
    tau = {t.name: float(rng.uniform(0.2, 0.9)) for t in p.group_terms}
    for t in p.group_terms:
        priors[t.name] = Prior("Normal", {"mu": 0.0, "sigma": Prior("HalfNormal", {"sigma": 1.0})})
    plan = plan_with_priors(df, formula, priors)
    return df, p, plan.design, build_tree(plan), tau


def dense(d, tree, tau, sigma):
    """Prior covariance of y and the joint posterior of all coefficients, by dense algebra."""
    n = d.n_rows
    W = d.W
    blocks = [W[:, tree.common_cols]]
    prior_prec = [1 / tree.s0**2]
    prior_mean = [tree.mu0]
    for lv in tree.levels:
        f = d.factors[lv.factor]
        for col, name in zip(lv.cols, lv.terms, strict=True):
            Z = np.zeros((n, f.n_levels))
            Z[np.arange(n), f.codes] = W[:, col]
            blocks.append(Z)
            prior_prec.append(np.full(f.n_levels, 1 / tau[name] ** 2))
            prior_mean.append(np.zeros(f.n_levels))
    X = np.hstack(blocks)
    m0 = np.concatenate(prior_mean)
    S0 = np.diag(1 / np.concatenate(prior_prec))
    cov_y = sigma**2 * np.eye(n) + X @ S0 @ X.T
    Q = X.T @ X / sigma**2 + np.linalg.inv(S0)
    cov = np.linalg.inv(Q)
    mean = cov @ (X.T @ d.y / sigma**2 + np.linalg.solve(S0, m0))
    return X @ m0, cov_y, mean, cov


@pytest.mark.parametrize("formula", FORMULAS)
def test_log_marginal_equals_dense_gaussian(formula):
    df, p, d, tree, tau = setup(formula)
    sigma = 0.7
    taus = [[tau[n] for n in lv.terms] for lv in tree.levels]
    value = float(log_marginal(tree, np.float64(sigma), taus).eval())
    mean_y, cov_y, _, _ = dense(d, tree, tau, sigma)
    expected = multivariate_normal(mean_y, cov_y).logpdf(d.y)
    assert value == pytest.approx(expected, rel=1e-10, abs=1e-9)


@pytest.mark.parametrize("formula", FORMULAS[:4])
def test_coefficient_draws_follow_the_exact_conditional(formula):
    df, p, d, tree, tau = setup(formula)
    sigma, S = 0.7, 20_000
    taus = [[np.full(S, tau[n]) for n in lv.terms] for lv in tree.levels]
    common, groups = draw_coefficients(tree, np.full(S, sigma), taus, np.random.default_rng(0))
    draws = np.hstack(
        [common]
        + [groups[t][:, :, a] for t, lv in enumerate(tree.levels) for a in range(len(lv.cols))]
    )
    _, _, mean, cov = dense(d, tree, tau, sigma)
    sd = np.sqrt(np.diag(cov))
    # Monte Carlo error of a mean is sd / sqrt(S); allow 5 of them.
    np.testing.assert_array_less(np.abs(draws.mean(0) - mean), 5 * sd / np.sqrt(S))
    np.testing.assert_allclose(draws.std(0), sd, rtol=0.03)
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.02 * sd.max() ** 2)


@pytest.mark.parametrize("formula", ["y ~ 0 + x:(1|g/s)", "y ~ 0 + x + x:(1|g/s)"])
@pytest.mark.parametrize("fixed", [False, True])
def test_compiled_one_column_draws_equal_numpy(formula, fixed):
    """The compiled draws of a one-column tree are the NumPy path's, normal for normal."""
    _, _, _, tree, tau = setup(formula)
    S = 300  # two chunks of different sizes
    rng = np.random.default_rng(5)
    sigma = rng.uniform(0.5, 1.0, S)
    taus = [
        [tau[n] if fixed else rng.uniform(0.1, 1.0, S) for n in lv.terms] for lv in tree.levels
    ]
    a = draw_coefficients(tree, sigma, taus, np.random.default_rng(1), backend="numba")
    b = draw_coefficients(tree, sigma, taus, np.random.default_rng(1), backend="numpy")
    np.testing.assert_allclose(a[0], b[0], rtol=1e-10, atol=1e-12)
    for ga, gb in zip(a[1], b[1], strict=True):
        np.testing.assert_allclose(ga, gb, rtol=1e-10, atol=1e-12)


def test_draw_backend_is_checked():
    _, _, _, tree, _ = setup("y ~ 1 + x + (1|g) + (x|g:s)")
    taus = [[0.5] * len(lv.terms) for lv in tree.levels]
    with pytest.raises(ValueError, match="one column on every level"):
        draw_coefficients(tree, np.ones(4), taus, np.random.default_rng(0), backend="numba")
    with pytest.raises(ValueError, match="backend='cuda' is not one of"):
        draw_coefficients(tree, np.ones(4), taus, np.random.default_rng(0), backend="cuda")
