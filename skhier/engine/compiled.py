"""nutpie on the collapsed engine's compiled log density (no per-model compilation).

:func:`compiled_inputs` turns a collapsed model (its tree and the priors of its scales) into the
arrays of :func:`skhier.engine._tree_numba.log_density`; :func:`sample_compiled` samples
it with nutpie's NUTS, which calls the kernel's C entry point from its own threads (as for a
PyMC model compiled with numba; without that interface, through
:func:`nutpie.compiled_pyfunc.from_pyfunc`, one Python call per gradient). The posterior is
the same as that of the PyMC model :func:`skhier.engine.collapsed.build_collapsed_model` builds
(the tests compare the log densities point by point); what changes is that nothing is compiled
per model.
Priors the compiled density does not know make :func:`compiled_inputs` return the reason, and
the PyMC model is sampled instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skhier._names import scale_name
from skhier.engine.base import SamplerSettings
from skhier.engine.samplers import sample_nutpie
from skhier.priors import Prior

__all__ = ["CompiledInputs", "compiled_inputs", "sample_compiled"]


_CODES = {
    "HalfNormal": 0,
    "HalfStudentT": 1,
    "HalfCauchy": 2,
    "Exponential": 3,
    "Gamma": 4,
    "InverseGamma": 5,
    "LogNormal": 6,
}


@dataclass
class CompiledInputs:
    """Everything the compiled log density needs, and the names of the sampled scales.

    Parameters
    ----------
    names : list of str
        Sampled scales, in the order of the density's argument (``sigma``, ``H0|gene_sigma``).
    init : ndarray
        A central value of each scale's prior (the starting points are jittered around it).
    args : tuple
        The arrays after ``u`` in :func:`skhier.engine._tree_numba.log_density`.

    Examples
    --------
    >>> CompiledInputs(["sigma"], np.ones(1), ()).names
    ['sigma']
    """

    names: list
    init: np.ndarray
    args: tuple


def _number(value):
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return None
    return float(value)


def _prior_params(prior):
    """(code, a, b, central value) of a scale prior, or a reason string."""
    if not isinstance(prior, Prior):
        return f"prior {prior!r} is not a distribution"
    args = {k: _number(v) for k, v in prior.args.items()}
    if any(v is None for v in args.values()):
        return f"the {prior.name} prior has non-numeric arguments (hyperpriors)"
    name = prior.name
    try:
        if name == "HalfNormal":
            s = args["sigma"] if "sigma" in args else args["tau"] ** -0.5
            return _CODES[name], s, 0.0, s
        if name == "HalfStudentT":
            s = args["sigma"] if "sigma" in args else args["lam"] ** -0.5
            return _CODES[name], args.get("nu", 1.0), s, s
        if name == "HalfCauchy":
            return _CODES[name], args["beta"], 0.0, args["beta"]
        if name == "Exponential":
            lam = args["lam"] if "lam" in args else 1.0 / args["scale"]
            return _CODES[name], lam, 0.0, 1.0 / lam
        if name in ("Gamma", "InverseGamma"):
            if "alpha" in args:
                a, b = args["alpha"], args["beta"]
            elif name == "Gamma":  # PyMC's mean / sd parametrization
                a, b = (args["mu"] / args["sigma"]) ** 2, args["mu"] / args["sigma"] ** 2
            else:
                a = (args["mu"] / args["sigma"]) ** 2 + 2
                b = args["mu"] * (a - 1)
            center = a / b if name == "Gamma" else b / (a + 1)
            return _CODES[name], a, b, center
        if name == "LogNormal":
            s = args["sigma"] if "sigma" in args else args["tau"] ** -0.5
            return _CODES[name], args.get("mu", 0.0), s, float(np.exp(args.get("mu", 0.0)))
    except KeyError as exc:
        return f"the {name} prior lacks argument {exc}"
    return f"the compiled density has no {name} prior"


def compiled_inputs(plan, tree):
    """Arrays of the compiled density for a collapsed model, or the reason it cannot be used.

    Parameters
    ----------
    plan : FitPlan
        The plan (its priors: ``sigma`` and each group term's ``sigma`` argument).
    tree : TreeModel
        Its tree (:func:`skhier.engine.collapsed.build_tree`).

    Returns
    -------
    CompiledInputs or str
        The inputs, or why the PyMC model must be sampled instead.

    Examples
    --------
    >>> import pandas as pd
    >>> from skhier.engine.collapsed import build_tree
    >>> from skhier.plan import make_plan
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 3.5, 4.0], "x": [1.0, 2.0, 3.0, 4.0],
    ...                    "g": ["a", "a", "b", "b"]})
    >>> plan = make_plan({"formula": "y ~ x + (1|g)"}, df)
    >>> compiled_inputs(plan, build_tree(plan)).names
    ['sigma', '1|g_sigma']
    """
    import importlib.util

    if importlib.util.find_spec("nutpie.compiled_pyfunc") is None:  # nutpie < 0.16
        return "this nutpie has no nutpie.compiled_pyfunc"
    names, codes, a_par, b_par, init = [], [], [], [], []

    def add(name, prior):
        got = _prior_params(prior)
        if isinstance(got, str):
            return f"{name}: {got}"
        names.append(name)
        codes.append(got[0])
        a_par.append(got[1])
        b_par.append(got[2])
        init.append(got[3])
        return ""

    sigma_prior = plan.priors["sigma"]
    sigma_fixed = _number(sigma_prior)
    sigma_index = -1
    if sigma_fixed is None:
        sigma_index = 0
        reason = add("sigma", sigma_prior)
        if reason:
            return reason
        sigma_fixed = 0.0
    level_cols, col_offsets, scale_index, scale_fixed = [], [0], [], []
    parents, parent_offsets = [], [0, 0]
    for t, level in enumerate(tree.levels):
        if t > 0:
            parents.extend(np.asarray(level.parent, dtype=np.int64).tolist())
            parent_offsets.append(len(parents))
        for col, term, fixed in zip(level.cols, level.terms, level.fixed_tau, strict=True):
            level_cols.append(col)
            if fixed is not None:
                scale_index.append(-1)
                scale_fixed.append(float(fixed))
            else:
                reason = add(scale_name(term), plan.priors[term].args["sigma"])
                if reason:
                    return reason
                scale_index.append(len(names) - 1)
                scale_fixed.append(0.0)
        col_offsets.append(len(level_cols))
    st = tree.stats
    i64 = np.int64
    args = (
        np.asarray(codes, dtype=i64),
        np.asarray(a_par, dtype=np.float64),
        np.asarray(b_par, dtype=np.float64),
        sigma_index,
        float(sigma_fixed),
        np.ascontiguousarray(st["WW"], dtype=np.float64),
        np.ascontiguousarray(st["Wy"], dtype=np.float64),
        np.asarray(st["n"], dtype=np.float64),
        np.asarray(st["yy"], dtype=np.float64),
        np.asarray([lv.n_nodes for lv in tree.levels], dtype=i64),
        np.asarray(parents, dtype=i64),
        np.asarray(parent_offsets, dtype=i64),
        np.asarray(level_cols, dtype=i64),
        np.asarray(col_offsets, dtype=i64),
        np.asarray(scale_index, dtype=i64),
        np.asarray(scale_fixed, dtype=np.float64),
        np.asarray(tree.common_cols, dtype=i64),
        np.asarray(tree.mu0, dtype=np.float64),
        np.asarray(tree.s0, dtype=np.float64),
    )
    return CompiledInputs(names, np.asarray(init, dtype=np.float64), args)


def sample_compiled(inputs: CompiledInputs, settings: SamplerSettings):
    """Sample the scales with nutpie on the compiled density.

    nutpie calls the density's C entry point (:func:`skhier.engine._tree_numba.c_function`)
    directly from its threads, as it does for PyMC models compiled with numba: no Python and
    no GIL per gradient. A nutpie without that interface samples the same kernel through
    :func:`nutpie.compiled_pyfunc.from_pyfunc` (a Python call per gradient).

    Parameters
    ----------
    inputs : CompiledInputs
        From :func:`compiled_inputs`.
    settings : SamplerSettings
        How to sample (``sampler`` is not read: this is nutpie).

    Returns
    -------
    arviz.InferenceData
        Posterior of the scales (under their names) and nutpie's sample statistics.
    """
    model = _c_model(inputs)
    if model is None:
        model = _pyfunc_model(inputs)
    return sample_nutpie(model, settings)


def _initial_point(inputs):
    center = np.log(inputs.init)

    def initial_point(point_seed):
        # PyMC's default for nutpie: the prior's central value, jittered by U(-1, 1) on the log
        # scale.
        return center + np.random.default_rng(point_seed).uniform(-1.0, 1.0, size=len(center))

    return initial_point


def _c_model(inputs):
    """Nutpie's model of the density's C entry point, or None if this nutpie has none."""
    try:
        from nutpie import _lib
        from nutpie.sample import CompiledModel
    except ImportError:  # pragma: no cover - nutpie reorganised
        return None
    if not all(hasattr(_lib, n) for n in ("LogpFunc", "ExpandFunc", "PyMcModel", "PySampler")):
        return None  # pragma: no cover
    from skhier.engine import _tree_numba

    q1 = _tree_numba.density_kernel(inputs.args) is _tree_numba.log_density_q1
    kind = "logp_q1" if q1 else "logp"
    table, keep = _tree_numba.kernel_table(inputs.args)
    names = list(inputs.names)
    m = len(names)
    logp = _tree_numba.c_function(kind)
    expand = _tree_numba.c_function("expand")
    initial_point = _initial_point(inputs)

    class _KernelModel(CompiledModel):
        dims: dict = {}

        n_dim = m
        shapes = {name: () for name in names}
        coords: dict = {}

        def __init__(self):
            self._keep = (table, keep, logp, expand)  # what the C side reads, kept alive

        def _make_model(self, init_mean):
            logp_fn = _lib.LogpFunc(logp.address, table.ctypes.data, self)
            expand_fn = _lib.ExpandFunc(m, m, expand.address, table.ctypes.data, self)
            variables = _lib.PyVariable.new_variables(names, ["float64"] * m, [()] * m, {}, {})
            return _lib.PyMcModel(logp_fn, expand_fn, variables, m, {}, {}, initial_point, None)

        def _make_sampler(self, settings, init_mean, cores, progress_type, store):
            model = self._make_model(init_mean)
            return _lib.PySampler.from_pymc(settings, cores, model, progress_type, store)

    return _KernelModel()


def _pyfunc_model(inputs):
    """Nutpie's model of the density as a Python function (one Python call per gradient)."""
    from nutpie.compiled_pyfunc import from_pyfunc

    from skhier.engine._tree_numba import density_kernel

    args = inputs.args
    log_density = density_kernel(args)
    names = list(inputs.names)
    m = len(names)

    def make_logp():
        def logp(x, **_):
            return log_density(x, *args)

        return logp

    def make_expand(seed1, seed2, chain):
        def expand(x, **_):
            return {name: np.exp(x[i : i + 1]).reshape(()) for i, name in enumerate(names)}

        return expand

    return from_pyfunc(
        m,
        make_logp,
        make_expand,
        [np.dtype("float64")] * m,
        [()] * m,
        names,
        make_initial_point_fn=_initial_point(inputs),
    )
