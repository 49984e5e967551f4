"""The collapsed Gaussian engine: NUTS on the scales only, exact draws of every coefficient.

Gaussian models whose grouping factors are nested (each factor's levels lie in one level of the
previous one) have their coefficients integrated out along the tree of levels
(:mod:`skhier.engine.tree`) from per-cell sufficient statistics. NUTS samples the residual and
group scales; the coefficients are then drawn from their exact conditional given each draw.
With nutpie, the scales' log density and its gradient are one numba kernel compiled once and
cached on disk (:mod:`skhier.engine.compiled`); other samplers, and priors that kernel does not
know, sample the PyMC graph of the same density (:func:`build_collapsed_model`).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from skhier._names import dim_name, scale_name
from skhier._progress import stage
from skhier.design import cell_statistics
from skhier.engine.base import EngineFit, SamplerSettings, gaussian_suffstat_why_not, register
from skhier.engine.samplers import sample_pymc_model
from skhier.engine.tree import TreeLevel, TreeModel, draw_coefficients, log_marginal
from skhier.formula import INTERCEPT
from skhier.priors import to_pymc

__all__ = [
    "CollapsedEngine",
    "build_tree",
    "build_collapsed_model",
    "sample_scales",
    "attach_coefficients",
]

logger = logging.getLogger("skhier")

#: Term parametrization recorded for integrated-out coefficients.
MARGINALIZED = "marginalized"


def build_tree(plan, stats: dict | None = None) -> TreeModel:
    """Assemble the collapsed model's tree from a plan.

    Parameters
    ----------
    plan : FitPlan
        A plan the collapsed engine accepts (nested factors).
    stats : dict or None, default=None
        Per-cell statistics (``n``, ``WW``, ``Wy``, ``yy``); None computes the Gaussian
        sufficient statistics of the plan's rows. Another engine passes its own (the count
        engine: each cell's Gaussian approximation of its likelihood, with ``sigma = 1``).

    Returns
    -------
    TreeModel
        Levels from coarse to fine with per-cell statistics.

    Examples
    --------
    >>> import pandas as pd
    >>> from skhier.plan import make_plan
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4], "x": [1.0, 2, 1, 2], "g": list("aabb")})
    >>> [lv.factor for lv in build_tree(make_plan({"formula": "y ~ x + (1|g)"}, df)).levels]
    ['g']
    """
    design, parsed = plan.design, plan.parsed
    cols = list(design.columns)
    common = [c for c in cols if c in parsed.common or (c == INTERCEPT and parsed.intercept)]
    mu0 = np.array([float(plan.priors[c].args.get("mu", 0.0)) for c in common])
    s0 = np.array([float(plan.priors[c].args["sigma"]) for c in common])
    levels = []
    for f in design.chain:
        terms = [t for t in parsed.group_terms if t.factor == f]
        levels.append(
            TreeLevel(
                factor=f,
                n_nodes=design.factors[f].n_levels,
                parent=design.parents.get(f),
                cols=[cols.index(t.column) for t in terms],
                terms=[t.name for t in terms],
                fixed_tau=[plan.fixed_tau.get(t.name) for t in terms],
            )
        )
    if stats is None:
        stats = cell_statistics(design.W, design.y, design.cells, design.n_cells)
    return TreeModel(
        len(cols), [cols.index(c) for c in common], mu0, s0, levels, stats, tuple(cols)
    )


def build_collapsed_model(plan, tree: TreeModel | None = None):
    """Build the PyMC model of the scales with the coefficients integrated out.

    Parameters
    ----------
    plan : FitPlan
        The plan.
    tree : TreeModel or None, default=None
        Its tree; None builds it.

    Returns
    -------
    pymc.Model
        Free variables: ``sigma`` and each sampled group scale ``{term}_sigma``.
    """
    import pymc as pm

    tree = build_tree(plan) if tree is None else tree
    with pm.Model() as model:
        sigma = to_pymc("sigma", plan.priors["sigma"])
        taus = []
        for level in tree.levels:
            level_taus = []
            for term, fixed in zip(level.terms, level.fixed_tau, strict=True):
                if fixed is not None:
                    level_taus.append(float(fixed))
                else:
                    level_taus.append(to_pymc(scale_name(term), plan.priors[term].args["sigma"]))
            taus.append(level_taus)
        pm.Potential("collapsed_loglik", log_marginal(tree, sigma, taus))
    return model


def sample_scales(plan, tree, settings: SamplerSettings):
    """Sample the scales of a collapsed model.

    Parameters
    ----------
    plan : FitPlan
        The plan (its priors of ``sigma`` and of the group terms' scales).
    tree : TreeModel
        Its tree.
    settings : SamplerSettings
        How to sample.

    Returns
    -------
    model : pymc.Model or None
        The PyMC model sampled (None for the compiled density or when nothing is sampled).
    idata : arviz.InferenceData
        The scales' draws.
    density : {"compiled", "pytensor", "none"}
        Which log density was sampled.
    """
    inputs = None
    if settings.sampler == "nutpie":
        from skhier.engine.compiled import compiled_inputs

        inputs = compiled_inputs(plan, tree)
        if isinstance(inputs, str):
            logger.info("skhier: nutpie samples the PyMC graph (compiled per model): %s", inputs)
            inputs = None
    if inputs is not None and inputs.names:
        from skhier.engine.compiled import sample_compiled

        return None, sample_compiled(inputs, settings), "compiled"
    model = build_collapsed_model(plan, tree) if inputs is None else None
    if model is not None and model.free_RVs:
        return model, sample_pymc_model(model, settings), "pytensor"
    # Every scale fixed: the posterior is Gaussian, no MCMC needed.
    import arviz as az

    idata = az.from_dict(posterior={"_": np.zeros((settings.chains, settings.draws))})
    del idata.posterior["_"]
    return model, idata, "none"


def attach_coefficients(plan, tree, idata, seed, cell_dtype=None):
    """Draw every coefficient given each draw of the scales; add them to the posterior.

    Parameters
    ----------
    plan : FitPlan
        The plan (fixed ``sigma`` read from its priors when not sampled).
    tree : TreeModel
        Its tree.
    idata : arviz.InferenceData
        The scales' draws.
    seed : int or None
        Seed of the coefficient draws.
    cell_dtype : numpy dtype or None, default=None
        Float type in which the finest level's draws are stored (None keeps float64).

    Returns
    -------
    arviz.InferenceData
        The same object with every coefficient added to its posterior (Bambi's names).
    """
    import xarray as xr

    post = idata.posterior
    n_chains, n_draws = post.sizes["chain"], post.sizes["draw"]

    def flat(name):
        return np.asarray(post[name]).reshape(-1)

    fixed_sigma = plan.priors["sigma"]
    sigma = flat("sigma") if "sigma" in post else np.full(n_chains * n_draws, float(fixed_sigma))
    taus = [
        [
            float(f) if f is not None else flat(scale_name(term))
            for term, f in zip(level.terms, level.fixed_tau, strict=True)
        ]
        for level in tree.levels
    ]
    rng = np.random.default_rng(None if seed is None else [seed, 7])
    common, groups = draw_coefficients(tree, sigma, taus, rng)
    new = {}
    for a, col in enumerate(tree.common_cols):
        new[tree.columns[col]] = (("chain", "draw"), common[:, a].reshape(n_chains, n_draws))
    coords = {}
    for t, level in enumerate(tree.levels):
        dim = dim_name(level.factor)
        coords[dim] = np.asarray(plan.design.factors[level.factor].labels, dtype=object)
        finest = cell_dtype is not None and t == len(tree.levels) - 1
        for a, term in enumerate(level.terms):
            values = groups[t][:, :, a].reshape(n_chains, n_draws, level.n_nodes)
            new[term] = (("chain", "draw", dim), values.astype(cell_dtype) if finest else values)
    idata.posterior = post.assign_coords(coords).assign(
        {k: xr.Variable(d, v) for k, (d, v) in new.items()}
    )
    return idata


class CollapsedEngine:
    """Gaussian models with nested factors: coefficients integrated out, NUTS on the scales.

    Examples
    --------
    >>> import pandas as pd
    >>> from skhier.plan import make_plan
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4], "g": list("aabb"), "b": list("uvuv")})
    >>> CollapsedEngine().why_not(make_plan({"formula": "y ~ (1|g) + (1|b)"}, df))
    "factors 'g' and 'b' are crossed, not nested"
    """

    name = "collapsed"
    # NUTS moves a few scales only, so smaller steps cost little; with few groups a 0.8 target
    # leaves occasional divergences where a group scale's posterior is wide.
    default_target_accept = 0.95
    switches_parametrization = False

    def why_not(self, plan) -> str | None:
        """Say why the plan is not a Gaussian model with nested factors (None when it is).

        Parameters
        ----------
        plan : FitPlan
            The plan.

        Returns
        -------
        str or None
            The reason.
        """
        reason = gaussian_suffstat_why_not(plan)
        if reason:
            return reason
        if plan.design.chain is None:
            return plan.design.reason
        return None

    def build(self, plan, parametrization=None):
        """Build the PyMC model of the scales (see :func:`build_collapsed_model`).

        Parameters
        ----------
        plan : FitPlan
            The plan.
        parametrization : ignored
            The coefficients are integrated out.

        Returns
        -------
        pymc.Model
            The model.
        """
        return build_collapsed_model(plan)

    def fit(self, plan, settings: SamplerSettings, parametrization=None) -> EngineFit:
        """Sample the scales, then draw every coefficient from its exact conditional.

        Parameters
        ----------
        plan : FitPlan
            The plan.
        settings : SamplerSettings
            How to sample.
        parametrization : ignored
            The coefficients are integrated out.

        Returns
        -------
        EngineFit
            ``model`` is None when nutpie sampled the compiled density (the same density; the
            model is built on demand); ``timing`` holds ``sampling``, ``coefficient_draws``
            and ``log_density`` (``"compiled"``, ``"pytensor"`` or ``"none"``).
        """
        tree = build_tree(plan)
        stage("sampling", "skhier: sampling the scales (collapsed engine)")
        t0 = time.perf_counter()
        model, idata, density = sample_scales(plan, tree, settings)
        t1 = time.perf_counter()
        stage("drawing coefficients", "skhier: drawing the coefficients given the scales")
        idata = attach_coefficients(plan, tree, idata, settings.seed)
        timing = {
            "sampling": t1 - t0,
            "coefficient_draws": time.perf_counter() - t1,
            "log_density": density,
        }
        choice = dict.fromkeys((t.name for t in plan.parsed.group_terms), MARGINALIZED)
        return EngineFit(model, idata, timing, choice)


register(CollapsedEngine())
