"""The compiled (numba) log density of the collapsed engine against the PyTensor graph and PyMC."""

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest

from skhier.engine._tree_numba import (
    density_kernel,
    log_density,
    log_density_q1,
    log_marginal_grad,
)
from skhier.engine.collapsed import build_collapsed_model, build_tree
from skhier.engine.compiled import compiled_inputs
from skhier.engine.tree import log_marginal
from skhier.formula import parse_formula
from skhier.priors import Prior
from tests.engine.test_tree import nested_frame
from tests.helpers import plan_with_priors

FORMULAS = [
    "y ~ 1 + x + (1|g) + (x|g:s)",  # two columns, two coefficients at the finest level
    "y ~ 0 + x:(1|g/s)",  # the forum's model: one column (the fast scalar kernel)
    "y ~ 1 + (1|g/s)",  # intercepts only: one column too
    "y ~ x + (x|g)",
    "y ~ 0 + x + (0 + x|g)",
    "y ~ 1 + x",  # no group level
    "y ~ 0 + x",
]

SCALE_PRIORS = [
    Prior("HalfNormal", {"sigma": 0.7}),
    Prior("Exponential", {"lam": 2.0}),
    Prior("Gamma", {"alpha": 2.0, "beta": 3.0}),
    Prior("LogNormal", {"mu": 0.1, "sigma": 0.8}),
    Prior("HalfCauchy", {"beta": 0.4}),
    Prior("InverseGamma", {"alpha": 3.0, "beta": 2.0}),
    Prior("Gamma", {"mu": 1.0, "sigma": 0.5}),
]


def make(formula, seed=0, pooling="partial"):
    df = nested_frame()
    p = parse_formula(formula)
    rng = np.random.default_rng(seed)
    priors = {"sigma": Prior("HalfStudentT", {"nu": 4.0, "sigma": 1.3})}
    for c in p.common + (("Intercept",) if p.intercept else ()):
        priors[c] = Prior("Normal", {"mu": float(rng.normal()), "sigma": float(rng.uniform(1, 2))})
    for i, t in enumerate(p.group_terms):
        priors[t.name] = Prior("Normal", {"mu": 0.0, "sigma": SCALE_PRIORS[(i + seed) % 7]})
    plan = plan_with_priors(df, formula, priors, pooling)
    return plan, build_tree(plan)


def graph_reference(tree, inputs):
    """log_marginal (PyTensor, checked against dense algebra) and its autodiff gradient."""
    th = pt.dvector("theta")
    names = inputs.names
    sigma = th[names.index("sigma")] if "sigma" in names else inputs.args[4]
    taus = []
    for level in tree.levels:
        row = []
        for term, fixed in zip(level.terms, level.fixed_tau, strict=True):
            row.append(th[names.index(f"{term}_sigma")] if fixed is None else float(fixed))
        taus.append(row)
    expr = log_marginal(tree, sigma, taus)
    # FAST_COMPILE: Python implementations, no C compilation (the data are tiny).
    return pytensor.function(
        [th], [expr, pt.grad(expr, th)], on_unused_input="ignore", mode="FAST_COMPILE"
    )


@pytest.mark.parametrize("formula", FORMULAS)
@pytest.mark.parametrize("scale", [1.0, 1e-5, 30.0])
def test_log_marginal_and_gradient_equal_the_graph(formula, scale):
    plan, tree = make(formula)
    inputs = compiled_inputs(plan, tree)
    rng = np.random.default_rng(1)
    theta = rng.uniform(0.3, 1.5, size=len(inputs.names))
    theta[1:] *= scale  # group scales near zero or large
    ref_value, ref_grad = graph_reference(tree, inputs)(theta)
    value, grad = log_marginal_grad(theta, *inputs.args[3:])
    assert value == pytest.approx(float(ref_value), rel=1e-10, abs=1e-9)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-7, atol=1e-7 * np.abs(ref_grad).max())


@pytest.mark.parametrize("formula", ["y ~ 0 + x:(1|g/s)", "y ~ 1 + x + (1|g) + (x|g:s)"])
def test_no_pooling_fixed_scales(formula):
    plan, tree = make(formula, pooling="none")
    inputs = compiled_inputs(plan, tree)
    # the ranked column's scale is fixed at its prior sd, not sampled
    assert not any(name.startswith("x|") for name in inputs.names)
    assert "sigma" in inputs.names
    theta = np.random.default_rng(0).uniform(0.5, 1.0, size=len(inputs.names))
    ref_value, ref_grad = graph_reference(tree, inputs)(theta)
    value, grad = log_marginal_grad(theta, *inputs.args[3:])
    assert value == pytest.approx(float(ref_value), rel=1e-10)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-8)


# Three group terms take priors (i + seed) % 7: seeds 0, 3 and 6 cover every supported family.
@pytest.mark.parametrize(
    ("formula", "seed"),
    [
        ("y ~ 1 + x + (1|g) + (x|g:s)", 0),
        ("y ~ 1 + x + (1|g) + (x|g:s)", 3),
        ("y ~ 1 + x + (1|g) + (x|g:s)", 6),
        ("y ~ 0 + x:(1|g/s)", 1),
        ("y ~ 0 + x:(1|g/s)", 5),
    ],
)
def test_log_density_equals_the_pymc_model(formula, seed):
    """Priors (every supported family), log transform and Jacobian, as PyMC writes them."""
    plan, tree = make(formula, seed=seed)
    inputs = compiled_inputs(plan, tree)
    model = build_collapsed_model(plan, tree)
    assert [v.name for v in model.value_vars] == [f"{n}_log__" for n in inputs.names]
    logp = model.compile_logp(jacobian=True, mode="FAST_COMPILE")
    dlogp = model.compile_dlogp(jacobian=True, mode="FAST_COMPILE")
    rng = np.random.default_rng(seed)
    for _ in range(3):
        u = rng.normal(scale=0.7, size=len(inputs.names))
        point = {f"{n}_log__": u[i] for i, n in enumerate(inputs.names)}
        value, grad = log_density(u, *inputs.args)
        # the kernel the sampler uses (the one-column kernel where it applies) is the same
        chosen = density_kernel(inputs.args)
        assert (chosen is log_density_q1) == (formula == "y ~ 0 + x:(1|g/s)")
        np.testing.assert_allclose(chosen(u, *inputs.args)[0], value, rtol=1e-12)
        np.testing.assert_allclose(chosen(u, *inputs.args)[1], grad, rtol=1e-12, atol=1e-12)
        # PyMC rounds some constants of its densities (log 2, log pi) to float32 (up to 1e-7),
        # and its rewritten graph sums in another order (1e-8 relative): the kernel itself
        # equals the graph to 1e-10 (test above); here the priors and the transform are checked.
        assert value == pytest.approx(float(logp(point)), abs=1e-6)
        np.testing.assert_allclose(grad, dlogp(point), rtol=1e-6, atol=1e-8)


def test_unknown_priors_fall_back_with_a_reason():
    plan, tree = make("y ~ 0 + x:(1|g/s)")
    plan.priors["x|g"] = Prior("Normal", {"mu": 0.0, "sigma": Prior("Uniform", {"lower": 0.0,
                                                                              "upper": 2.0})})
    assert "Uniform" in compiled_inputs(plan, tree)
    plan.priors["x|g"] = Prior(
        "Normal", {"mu": 0.0, "sigma": Prior("HalfNormal", {"sigma": Prior("HalfNormal", {})})}
    )
    assert "hyperpriors" in compiled_inputs(plan, tree)


def test_fit_uses_the_compiled_density_and_matches_the_graph(forum_sim, monkeypatch):
    """nutpie on the compiled density and nutpie on the PyMC graph: the same posterior."""
    import skhier.engine.compiled as compiled
    from skhier import HierarchicalRanker
    from tests.helpers import FORUM

    _, df = forum_sim
    kw = dict(formula=FORUM, level="sgRNA", random_state=2, on_fail="ignore", draws=1000)
    fast = HierarchicalRanker(**kw).fit(df)
    assert fast.diagnostics_.info["attempts"][0]["log_density"] == "compiled"
    monkeypatch.setattr(compiled, "compiled_inputs", lambda plan, tree: "forced by the test")
    graph = HierarchicalRanker(**kw).fit(df)
    assert graph.diagnostics_.info["attempts"][0]["log_density"] == "pytensor"
    a, b = fast.rank_, graph.rank_.loc[fast.rank_.index]
    se = np.sqrt(a["sd"] ** 2 / 2000 + b["sd"] ** 2 / 2000)
    assert (np.abs(a["mean"] - b["mean"]) < 5 * se).all()
    np.testing.assert_allclose(a["sd"], b["sd"], rtol=0.15)
    for name in ("sigma", "H0|gene_sigma", "H0|gene:sgRNA_sigma"):
        x, y = fast.idata_.posterior[name], graph.idata_.posterior[name]
        tol = 5 * float(np.sqrt(x.var() / 1000 + y.var() / 1000))
        assert abs(float(x.mean() - y.mean())) < tol, name
    assert isinstance(fast.model_, type(graph.model_))  # built on first access
    assert pd.api.types.is_float_dtype(a["mean"])


def call_c(kind, u, table):
    """Call a C entry point of the density the way nutpie does (ctypes)."""
    import ctypes

    from skhier.engine._tree_numba import c_function

    f = ctypes.CFUNCTYPE(
        ctypes.c_int64, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
        ctypes.c_void_p,
    )(c_function(kind).address)  # fmt: skip
    u = np.ascontiguousarray(u, dtype=np.float64)
    grad, value = np.full(len(u), np.nan), np.full(1, np.nan)
    code = f(len(u), u.ctypes.data, grad.ctypes.data, value.ctypes.data, table.ctypes.data)
    return code, value[0], grad


@pytest.mark.parametrize("formula", FORMULAS)
def test_c_entry_point_equals_the_kernel(formula):
    """The function nutpie calls reads the same arrays through its table and returns the same."""
    from skhier.engine._tree_numba import kernel_table

    plan, tree = make(formula, seed=2)
    inputs = compiled_inputs(plan, tree)
    table, keep = kernel_table(inputs.args)
    kernel = density_kernel(inputs.args)
    kind = "logp_q1" if kernel is log_density_q1 else "logp"
    rng = np.random.default_rng(3)
    for _ in range(3):
        u = rng.normal(scale=0.7, size=len(inputs.names))
        code, value, grad = call_c(kind, u, table)
        want_value, want_grad = kernel(u, *inputs.args)
        assert code == 0
        assert value == pytest.approx(want_value, rel=1e-13)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-12, atol=1e-12)
    # scales that overflow: a non-finite density is reported to nutpie, not returned as a number
    code, _, _ = call_c(kind, np.full(len(inputs.names), 800.0), table)
    assert code in (3, 4)


def test_cell_order_does_not_change_the_density():
    """Cells in any order give the same density (sorted by parent is only faster)."""
    plan, tree = make("y ~ 0 + x:(1|g/s)")
    inputs = compiled_inputs(plan, tree)
    args = list(inputs.args)
    rng = np.random.default_rng(4)
    u = rng.normal(scale=0.5, size=len(inputs.names))
    value, grad = log_density_q1(u, *args)
    n_fine = len(args[6])
    perm = rng.permutation(n_fine)
    lo, hi = args[11][-2], args[11][-1]  # the finest level's parents
    shuffled = list(args)
    for k in (5, 6, 7, 8):
        shuffled[k] = np.ascontiguousarray(args[k][perm])
    parents = args[10].copy()
    parents[lo:hi] = args[10][lo:hi][perm]
    shuffled[10] = parents
    v2, g2 = log_density_q1(u, *shuffled)
    assert v2 == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(g2, grad, rtol=1e-10)


def cells_reference(sigma, s, WW, Wy, n, yy, parent, n_parent):
    """The cells' pass of the one-column kernel in NumPy: parents' messages and the constant."""
    p, h = WW / sigma**2, Wy / sigma**2
    a = 1.0 / (1.0 + s * s * p)
    P = np.bincount(parent, p * a, n_parent)
    hh = np.bincount(parent, h * a, n_parent)
    c = 0.5 * s * s * np.sum(h * h * a) + 0.5 * np.sum(np.log(a))
    c -= 0.5 * np.sum(n * (np.log(2 * np.pi) + 2 * np.log(sigma)) + yy / sigma**2)
    return P, hh, c


@pytest.mark.parametrize("s", [0.7, 2000.0])
def test_cells_pass_against_numpy(s):
    """The cells' pass against NumPy, its derivatives by finite differences: parents scattered
    (runs of one cell), and with ``s = 2000`` factors 1 / (1 + s**2 P) near 1e-8 whose running
    product would underflow within 40 cells."""
    from skhier.engine._tree_numba import _cells_q1

    rng = np.random.default_rng(6)
    n_cells, n_parent = 3000, 40
    n = rng.integers(1, 60, n_cells).astype(float)
    WW = n * rng.uniform(0.5, 2.0, n_cells)
    Wy = WW * rng.normal(1.0, 0.3, n_cells)
    yy = Wy**2 / WW + n * rng.uniform(0.5, 1.5, n_cells)
    parent = rng.integers(0, n_parent, n_cells)  # unsorted: runs of one cell
    sigma = 1.3

    def run(sigma, s):
        dc = np.zeros(2)
        out = _cells_q1(sigma, 0, s, 1, WW[:, None, None], Wy[:, None], n, yy, parent,
                        n_parent, dc)  # fmt: skip
        return out, dc

    (P, h, dP, dh, c), dc = run(sigma, s)
    want_P, want_h, want_c = cells_reference(sigma, s, WW, Wy, n, yy, parent, n_parent)
    np.testing.assert_allclose(P, want_P, rtol=1e-12)
    np.testing.assert_allclose(h, want_h, rtol=1e-12)
    assert c == pytest.approx(want_c, rel=1e-12)
    for k, (ds, dt) in enumerate([(1e-5 * sigma, 0.0), (0.0, 1e-5 * s)]):
        up = cells_reference(sigma + ds, s + dt, WW, Wy, n, yy, parent, n_parent)
        down = cells_reference(sigma - ds, s - dt, WW, Wy, n, yy, parent, n_parent)
        step = 2 * (ds + dt)
        fd = [(u - d) / step for u, d in zip(up, down, strict=True)]
        # rounding of the differenced values: 100 ulps of their size over the step
        noise = [100 * np.finfo(float).eps * np.abs(u).max() / step for u in up]
        np.testing.assert_allclose(dP[k], fd[0], rtol=1e-6, atol=noise[0])
        np.testing.assert_allclose(dh[k], fd[1], rtol=1e-6, atol=noise[1])
        assert dc[k] == pytest.approx(fd[2], rel=1e-6, abs=noise[2])


@pytest.mark.parametrize("formula", ["y ~ 0 + x:(1|g/s)", "y ~ 1 + x + (1|g) + (x|g:s)"])
def test_nutpie_through_c_equals_nutpie_through_python(formula):
    """The same seed gives the same chains whether nutpie calls the C entry point or Python."""
    from skhier.engine import compiled
    from skhier.engine.base import SamplerSettings
    from skhier.engine.samplers import sample_nutpie

    plan, tree = make(formula)
    inputs = compiled_inputs(plan, tree)
    settings = SamplerSettings(sampler="nutpie", draws=100, tune=100, chains=2, seed=5)
    through_c = sample_nutpie(compiled._c_model(inputs), settings)
    through_py = sample_nutpie(compiled._pyfunc_model(inputs), settings)
    for name in inputs.names:
        np.testing.assert_allclose(
            through_c.posterior[name].values, through_py.posterior[name].values, rtol=1e-9
        )
    np.testing.assert_array_equal(
        through_c.sample_stats["n_steps"].values, through_py.sample_stats["n_steps"].values
    )


def test_sample_compiled_falls_back_to_python_calls(monkeypatch):
    """A nutpie without the C interface samples the same kernel through Python calls."""
    from skhier.engine import compiled
    from skhier.engine.base import SamplerSettings

    plan, tree = make("y ~ 0 + x:(1|g/s)")
    inputs = compiled_inputs(plan, tree)
    settings = SamplerSettings(sampler="nutpie", draws=50, tune=50, chains=1, seed=5)
    used = []
    real = compiled._pyfunc_model
    monkeypatch.setattr(compiled, "_c_model", lambda inputs: None)
    monkeypatch.setattr(compiled, "_pyfunc_model", lambda i: used.append(1) or real(i))
    idata = compiled.sample_compiled(inputs, settings)
    assert used == [1]
    assert idata.posterior["sigma"].shape == (1, 50)
