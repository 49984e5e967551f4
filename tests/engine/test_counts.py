"""The Laplace count engine: kernels against SciPy, the per-cell reduction, recovery of truth."""

import math

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import minimize

from skhier import ScreenSimulator
from skhier.engine._counts_numba import cell_log_weights, cell_modes, row_terms
from skhier.engine.counts import (
    CellExpansion,
    estimate_alpha,
    pseudo_statistics,
    reduce_statistics,
)
from skhier.screens import count_screen


@pytest.mark.parametrize("family", [0, 1])
@pytest.mark.parametrize(("y", "eta"), [(0.0, 1.0), (7.0, 2.0), (120.0, 4.5), (3.0, -2.0)])
def test_row_terms_match_scipy(family, y, eta):
    alpha = 4.0
    mu = math.exp(eta)
    ll, d1, d2 = row_terms(family, alpha, y, eta)
    if family == 0:
        ref = stats.poisson.logpmf(y, mu)
    else:  # PyMC's NB(mu, alpha): scipy's n = alpha, p = alpha / (alpha + mu)
        ref = stats.nbinom.logpmf(y, alpha, alpha / (alpha + mu))
    assert ll == pytest.approx(ref, rel=1e-10)
    h = 1e-5
    num1 = (row_terms(family, alpha, y, eta + h)[0] - row_terms(family, alpha, y, eta - h)[0]) / (
        2 * h
    )
    num2 = (row_terms(family, alpha, y, eta + h)[1] - row_terms(family, alpha, y, eta - h)[1]) / (
        2 * h
    )
    assert d1 == pytest.approx(num1, rel=1e-6, abs=1e-8)
    assert d2 == pytest.approx(-num2, rel=1e-6, abs=1e-8)


@pytest.fixture(scope="module")
def cells():
    rng = np.random.default_rng(0)
    n_cells, per = 20, 6
    ptr = np.arange(0, n_cells * per + 1, per, dtype=np.int64)
    W = np.column_stack([np.ones(n_cells * per), np.tile([0.0, 0, 1, 1, 1, 1], n_cells)])
    theta = np.column_stack([rng.normal(4, 1, n_cells), rng.normal(-0.5, 0.5, n_cells)])
    eta = np.einsum("ij,ij->i", W, np.repeat(theta, per, axis=0))
    y = rng.negative_binomial(5.0, 5.0 / (5.0 + np.exp(eta))).astype(np.float64)
    y[:per] = 0.0  # a cell with no reads: the prior keeps it finite
    return y, np.zeros_like(y), W, ptr


def _cell_objective(y, W, alpha, m, d):
    def f(t):
        eta = W @ t
        mu = np.exp(eta)
        ll = stats.nbinom.logpmf(y, alpha, alpha / (alpha + mu)).sum()
        return -(ll - 0.5 * np.sum(d * (t - m) ** 2))

    return f


def test_cell_modes_match_scipy_optimizer(cells):
    y, off, W, ptr = cells
    n_cells = len(ptr) - 1
    m = np.zeros((n_cells, 2))
    d = np.full((n_cells, 2), 0.01)
    theta, g, H, ll, logdet, iters = cell_modes(y, off, W, ptr, 1, 5.0, m, d, m.copy(), 50, 1e-10)
    assert (iters <= 50).all()
    for c in range(n_cells):
        sl = slice(ptr[c], ptr[c + 1])
        f = _cell_objective(y[sl], W[sl], 5.0, m[c], d[c])
        ref = minimize(f, np.array([3.0, 0.0]), method="BFGS", options={"gtol": 1e-9})
        np.testing.assert_allclose(theta[c], ref.x, atol=1e-4)
        # H is minus the Hessian of the log likelihood: check it by differences of g
        assert np.all(np.linalg.eigvalsh(H[c]) >= 0)
    assert np.isfinite(ll).all() and np.isfinite(logdet).all()


def test_log_weights_vanish_at_the_expansion_point(cells):
    y, off, W, ptr = cells
    n_cells = len(ptr) - 1
    m = np.zeros((n_cells, 2))
    theta, g, H, ll, _, _ = cell_modes(
        y, off, W, ptr, 1, 5.0, m, np.full_like(m, 0.01), m, 50, 1e-10
    )
    near = theta[None] + np.array([0.0, 1e-4, 0.3])[:, None, None]
    lw = cell_log_weights(y, off, W, ptr, 1, 5.0, theta, g, H, near)
    assert lw.shape == (n_cells, 3)
    np.testing.assert_allclose(lw[:, 0], 0.0, atol=1e-9)
    assert np.abs(lw[:, 1]).max() < 1e-8  # third-order error only
    assert np.abs(lw[:, 2]).max() > 1e-6


@pytest.mark.parametrize("family", [0, 1])
def test_log_weights_match_scipy(cells, family):
    # exact log pmf (scipy, every constant included) minus the expansion, draw by draw
    y, off, W, ptr = cells
    n_cells = len(ptr) - 1
    alpha = 5.0
    m = np.zeros((n_cells, 2))
    theta, g, H, ll, _, _ = cell_modes(
        y, off, W, ptr, family, alpha, m, np.full_like(m, 0.01), m, 50, 1e-10
    )
    draws = theta[None] + np.random.default_rng(4).normal(0, 0.2, size=(7, n_cells, 2))
    lw = cell_log_weights(y, off, W, ptr, family, alpha, theta, g, H, draws)
    for c in range(n_cells):
        sl = slice(ptr[c], ptr[c + 1])
        for s in range(draws.shape[0]):
            mu = np.exp(off[sl] + W[sl] @ draws[s, c])
            if family == 0:
                exact = stats.poisson.logpmf(y[sl], mu).sum()
            else:
                exact = stats.nbinom.logpmf(y[sl], alpha, alpha / (alpha + mu)).sum()
            dev = draws[s, c] - theta[c]
            quad = ll[c] + g[c] @ dev - 0.5 * dev @ H[c] @ dev
            np.testing.assert_allclose(lw[c, s], exact - quad, rtol=1e-9, atol=1e-8)


def test_pseudo_statistics_reproduce_the_quadratic():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(3, 2, 2))
    H = np.einsum("cij,ckj->cik", A, A) + np.eye(2)
    e = CellExpansion(rng.normal(size=(3, 2)), rng.normal(size=(3, 2)), H, rng.normal(size=3), 1.0)
    s = pseudo_statistics(e)
    t = rng.normal(size=(3, 2))
    dev = t - e.theta
    quad = e.ll + np.einsum("ci,ci->c", e.g, dev) - 0.5 * np.einsum("ci,cij,cj->c", dev, H, dev)
    gauss = -0.5 * (
        s["yy"] - 2 * np.einsum("ci,ci->c", t, s["Wy"]) + np.einsum("ci,cij,cj->c", t, s["WW"], t)
    )
    np.testing.assert_allclose(gauss, quad, atol=1e-10)


def test_reduce_statistics_integrates_exactly():
    """The reduced log marginal equals the 2-D integral over the dropped coefficient."""
    WW = np.array([[[3.0, 0.8], [0.8, 1.5]]])
    Wy = np.array([[1.2, -0.4]])
    yy = np.array([2.0])
    tau = 2.0
    red, (cov, gain, shift) = reduce_statistics(
        {"n": np.zeros(1), "WW": WW, "Wy": Wy, "yy": yy}, [0], [tau]
    )
    a = np.linspace(-12, 12, 20001)
    for b in (-1.0, 0.3, 2.0):
        t = np.column_stack([a, np.full_like(a, b)])
        log_f = -0.5 * (yy[0] - 2 * t @ Wy[0] + np.einsum("ni,ij,nj->n", t, WW[0], t))
        log_prior = stats.norm.logpdf(a, 0, tau)
        integral = np.log(np.trapezoid(np.exp(log_f + log_prior), a))
        reduced = -0.5 * (red["yy"][0] - 2 * b * red["Wy"][0, 0] + b * b * red["WW"][0, 0, 0])
        assert reduced == pytest.approx(integral, abs=1e-8)
        # the conditional of the dropped coefficient: mean and variance
        w = np.exp(log_f + log_prior - (log_f + log_prior).max())
        mean = np.trapezoid(a * w, a) / np.trapezoid(w, a)
        assert shift[0, 0] - gain[0, 0, 0] * b == pytest.approx(mean, abs=1e-8)


def test_alpha_estimate_recovers_the_dispersion():
    rng = np.random.default_rng(2)
    n_cells, per, alpha = 2000, 4, 8.0
    ptr = np.arange(0, n_cells * per + 1, per, dtype=np.int64)
    W = np.column_stack([np.ones(n_cells * per), np.tile([0.0, 1, 1, 1], n_cells)])
    theta = np.column_stack([rng.normal(5, 1, n_cells), rng.normal(0, 0.5, n_cells)])
    mu = np.exp(np.einsum("ij,ij->i", W, np.repeat(theta, per, axis=0)))
    y = rng.negative_binomial(alpha, alpha / (alpha + mu)).astype(np.float64)
    from skhier.engine.counts import CellData

    est = estimate_alpha(CellData(y, np.zeros_like(y), W, ptr, 1), ["Intercept", "t"])
    assert est == pytest.approx(alpha, rel=0.15)


def simulated_screen(sim):
    """The simulator's counts as a count table and the screen built on it (no size factors)."""
    df = sim.fit_transform()
    wide = df.pivot_table(index=["sgRNA", "gene"], columns="sample", values=["initial", "final"])
    wide.columns = [f"{a}_{b}" for a, b in wide.columns]
    wide = wide.reset_index()[["sgRNA", "gene", *sorted(c for c in wide.columns if "_" in c)]]
    control = [c for c in wide.columns if c.startswith("initial")]
    treatment = [c for c in wide.columns if c.startswith("final")]
    # the simulator sequences every sample alike: no size factors (a median ratio would shift
    # every effect by one constant, moving the intervals off the truth but not the ranking)
    return count_screen(wide, control=control, treatment=treatment, normalization="none")


@pytest.fixture(scope="module")
def simulated_fit():
    sim = ScreenSimulator(
        n_genes=150, sgrnas_per_gene=4, n_samples=3, mode="counts", hit_fraction=0.3, random_state=5
    )
    screen = simulated_screen(sim)
    ranker = screen.ranker(random_state=0, n_jobs=1)
    ranker.fit(screen.data)
    return sim, ranker


def test_engine_is_laplace_and_converges(simulated_fit):
    _, ranker = simulated_fit
    assert ranker.engine_ == "laplace"
    assert ranker.diagnostics_.passed
    assert ranker.approximation_ is not None
    assert ranker.approximation_.share_bad("groups") < 0.05


def test_recovers_gene_ranking_and_covers_truth(simulated_fit):
    sim, ranker = simulated_fit
    table = ranker.rank_
    truth = sim.true_slopes_["gene"].reindex(table.index)
    rho = stats.spearmanr(table["mean"], truth).statistic
    assert rho > 0.6
    # 90% intervals of the gene effects cover the truth about 90% of the time
    covered = ((truth >= table["hdi_low"]) & (truth <= table["hdi_high"])).mean()
    se = math.sqrt(0.9 * 0.1 / len(table))
    assert abs(covered - 0.9) < 4 * se + 0.03
    # hits (true effect < 0) are found: lfsr below 5% is rarely wrong in sign
    called = table["lfsr"] < 0.05
    if called.any():
        wrong = (np.sign(table.loc[called, "mean"]) != np.sign(truth[called])).mean()
        assert wrong <= 0.1


@pytest.mark.slow
def test_laplace_engine_agrees_with_pymc_nuts():
    """The count engine's posterior is that of NUTS on Bambi's own model, within Monte Carlo error.

    The same negative binomial model (size-factor offset, each sgRNA's abundance with a fixed
    Normal(0, 10) prior, treatment effects of genes and of sgRNAs within genes, ``alpha`` fixed at
    the simulator's) on a small screen at a real screen's depth. Every parameter both posteriors
    hold (the abundances, the gene and sgRNA effects, the two scales): means differ by less than
    5 combined MCSEs, sds by less than 5 standard errors of an sd plus 5%; the gene ranking's
    expected ranks likewise. The approximation's own check agrees: no Pareto k above 0.7.
    """
    sim = ScreenSimulator(
        n_genes=6, sgrnas_per_gene=3, n_samples=2, mode="counts", hit_fraction=0.5,
        dispersion=0.05, random_state=3,
    )  # fmt: skip
    screen = simulated_screen(sim)
    priors = {**screen.priors, "alpha": 1.0 / sim.dispersion}
    kw = dict(draws=1000, tune=1000, chains=2, random_state=0, on_fail="ignore", n_jobs=1)
    fast = screen.ranker(priors=priors, **kw).fit(screen.data)
    exact = screen.ranker(priors=priors, engine="bambi", target_accept=0.95, **kw).fit(screen.data)
    assert fast.engine_ == "laplace" and exact.engine_ == "bambi"
    assert fast.approximation_.share_bad("cells") == 0.0
    a, b = fast.diagnostics_.table, exact.diagnostics_.table
    common = a.index.intersection(b.index)
    # every parameter of the engine's posterior (18 abundances, the common treatment effect,
    # 6 + 18 gene and sgRNA effects, 2 scales) is in the exact one
    assert len(common) == len(a) == 45, sorted(set(a.index) ^ set(b.index))
    a, b = a.loc[common], b.loc[common]
    mcse = np.sqrt(a["mcse_mean"] ** 2 + b["mcse_mean"] ** 2)
    assert (np.abs(a["mean"] - b["mean"]) < 5 * mcse).all(), ((a["mean"] - b["mean"]) / mcse)
    se_sd = np.sqrt(a["sd"] ** 2 / (2 * a["ess_bulk"]) + b["sd"] ** 2 / (2 * b["ess_bulk"]))
    assert (np.abs(a["sd"] - b["sd"]) < 5 * se_sd + 0.05 * b["sd"]).all()
    ra, rb = fast.rank_, exact.rank_.loc[fast.rank_.index]
    se = np.sqrt(ra["mcse_expected_rank"] ** 2 + rb["mcse_expected_rank"] ** 2)
    assert (np.abs(ra["expected_rank"] - rb["expected_rank"]) < 5 * se + 0.05).all()


def test_lfsr_is_calibrated(simulated_fit):
    """Among the genes, the sign is wrong about as often as the lfsr says.

    Under calibration each gene's sign error (the posterior mean's sign against the true
    effect's) is a Bernoulli(lfsr) draw: their total is the lfsr's total within a few of its
    standard deviations, and so it is within the genes called at lfsr < 0.2.
    """
    sim, ranker = simulated_fit
    table = ranker.rank_
    truth = sim.true_slopes_["gene"].reindex(table.index).to_numpy()
    lfsr = table["lfsr"].to_numpy()
    called_sign = np.sign(table["mean"].to_numpy())
    wrong = (called_sign != np.sign(truth)).astype(float)
    for keep in (np.ones(len(lfsr), dtype=bool), lfsr < 0.2):
        expected, sd = lfsr[keep].sum(), math.sqrt((lfsr[keep] * (1 - lfsr[keep])).sum())
        assert abs(wrong[keep].sum() - expected) < 4 * sd + 2, (wrong[keep].sum(), expected, sd)
    # and the errors are where the lfsr is high: genes called at lfsr < 0.05 are rarely wrong
    called = lfsr < 0.05
    assert called.sum() >= 20
    assert wrong[called].mean() <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / called.sum())
