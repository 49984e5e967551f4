"""Fit a model: the collapsed Gaussian engine when it applies, Bambi's own model otherwise.

Both engines return an InferenceData whose posterior uses Bambi's names: ``sigma``, a common
coefficient per column (``H0``, ``Intercept``), ``H0|gene`` with dim ``gene__factor_dim`` for
group-specific coefficients (``1|gene`` for varying intercepts) and ``H0|gene_sigma`` for their
scales. Interaction factors are named ``gene:sgRNA`` and hold only observed level combinations.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field

import numpy as np

from skhier.design import Design, cell_statistics
from skhier.engine.collapsed import TreeLevel, TreeModel, draw_coefficients, log_marginal
from skhier.engine.sampling import sample_pymc_model
from skhier.formula import INTERCEPT, GroupTerm, ParsedFormula
from skhier.priors import Prior

__all__ = [
    "ModelSpec",
    "collapsible",
    "build_collapsed_model",
    "build_bambi_model",
    "fit_collapsed",
    "fit_bambi",
    "dim_name",
]

logger = logging.getLogger("skhier")

_SCALE_DISTS = {
    "HalfNormal",
    "HalfStudentT",
    "HalfCauchy",
    "Exponential",
    "Gamma",
    "InverseGamma",
    "LogNormal",
    "HalfFlat",
    "Uniform",
    "TruncatedNormal",
    "Weibull",
}


def dim_name(factor: str) -> str:
    """Bambi's dim name for a factor's levels.

    Parameters
    ----------
    factor : str
        Factor name.

    Returns
    -------
    str
        ``{factor}__factor_dim``.

    Examples
    --------
    >>> dim_name("gene")
    'gene__factor_dim'
    """
    return f"{factor}__factor_dim"


@dataclass
class ModelSpec:
    """What is fitted: the formula's terms after pooling, their priors and fixed scales.

    Parameters
    ----------
    parsed : ParsedFormula
        The terms actually fitted.
    priors : dict of str to Prior
        Prior of every term.
    fixed_tau : dict of str to float
        Group terms whose scale is fixed (no pooling).
    family : str
        Bambi family name.

    Examples
    --------
    >>> from skhier.formula import parse_formula
    >>> ModelSpec(parse_formula("y ~ x"), {}, {}, "gaussian").family
    'gaussian'
    """

    parsed: ParsedFormula
    priors: dict
    fixed_tau: dict = field(default_factory=dict)
    family: str = "gaussian"


def collapsible(spec: ModelSpec, design: Design, *, require_chain: bool = True) -> str:
    """Say why the collapsed engine cannot fit this model (empty string when it can).

    Parameters
    ----------
    spec : ModelSpec
        The model.
    design : Design
        The data's design.
    require_chain : bool, default=True
        Require nested factors (the collapsed engine); False checks only what the
        sufficient-statistics engine needs (Gaussian, plain terms, Normal coefficient priors).

    Returns
    -------
    str
        The reason, for the log and for ``diagnostics_.info``.

    Examples
    --------
    >>> import pandas as pd
    >>> from skhier.design import build_design
    >>> from skhier.formula import parse_formula
    >>> df = pd.DataFrame({"y": [1.0, 2.0], "x": [0.5, 1.0]})
    >>> p = parse_formula("y ~ x")
    >>> collapsible(ModelSpec(p, {}, {}, "poisson"), build_design(df, p))
    "family 'poisson' is not Gaussian with identity link"
    """
    if spec.family != "gaussian":
        return f"family {spec.family!r} is not Gaussian with identity link"
    if spec.parsed.unsupported:
        return "; ".join(spec.parsed.unsupported)
    if design.chain is None and require_chain:
        return design.reason
    for name in (*spec.parsed.common, *(["Intercept"] if spec.parsed.intercept else [])):
        prior = spec.priors.get(name)
        if isinstance(prior, Prior) and prior.name != "Normal":
            return f"the prior of {name!r} is {prior.name}, not Normal"
    for t in spec.parsed.group_terms:
        if t.name in spec.fixed_tau:
            continue
        prior = spec.priors.get(t.name)
        if isinstance(prior, Prior):
            sig = prior.args.get("sigma")
            mu = prior.args.get("mu", 0.0)
            if prior.name != "Normal" or mu != 0:
                return f"the prior of {t.name!r} is not Normal(0, sigma)"
            if isinstance(sig, Prior) and sig.name not in _SCALE_DISTS:
                return f"the scale prior of {t.name!r} ({sig.name}) is not a positive distribution"
    sigma = spec.priors.get("sigma")
    if isinstance(sigma, Prior) and sigma.name not in _SCALE_DISTS:
        return f"the prior of 'sigma' ({sigma.name}) is not a positive distribution"
    return ""


def build_tree(spec: ModelSpec, design: Design) -> TreeModel:
    """Assemble the collapsed model's tree from the design.

    Parameters
    ----------
    spec : ModelSpec
        The model (collapsible).
    design : Design
        The data's design.

    Returns
    -------
    TreeModel
        Levels from coarse to fine with per-cell statistics.
    """
    cols = list(design.columns)
    common = [
        c for c in cols if c in spec.parsed.common or (c == INTERCEPT and spec.parsed.intercept)
    ]
    mu0 = np.array([float(spec.priors[c].args.get("mu", 0.0)) for c in common])
    s0 = np.array([float(spec.priors[c].args["sigma"]) for c in common])
    levels = []
    for f in design.chain:
        terms = [t for t in spec.parsed.group_terms if t.factor == f]
        levels.append(
            TreeLevel(
                factor=f,
                n_nodes=design.factors[f].n_levels,
                parent=design.parents.get(f),
                cols=[cols.index(t.column) for t in terms],
                terms=[t.name for t in terms],
                fixed_tau=[spec.fixed_tau.get(t.name) for t in terms],
            )
        )
    stats = cell_statistics(design.W, design.y, design.cells, design.n_cells)
    return TreeModel(
        len(cols), [cols.index(c) for c in common], mu0, s0, levels, stats, tuple(cols)
    )


def _pymc_dist(name: str, prior):
    import pymc as pm

    if not isinstance(prior, Prior):
        return float(prior)
    dist = getattr(pm, prior.name, None)
    if dist is None:
        raise ValueError(f"prior {prior!r} for {name!r}: PyMC has no distribution {prior.name!r}.")
    return dist(name, **prior.args)


def build_collapsed_model(spec: ModelSpec, tree: TreeModel):
    """Build the PyMC model of the scales with the coefficients integrated out.

    Parameters
    ----------
    spec : ModelSpec
        The model.
    tree : TreeModel
        Its tree.

    Returns
    -------
    pymc.Model
        Free variables: ``sigma`` and each sampled group scale ``{term}_sigma``.
    """
    import pymc as pm

    with pm.Model() as model:
        sigma = _pymc_dist("sigma", spec.priors["sigma"])
        taus = []
        for level in tree.levels:
            level_taus = []
            for term, fixed in zip(level.terms, level.fixed_tau, strict=True):
                if fixed is not None:
                    level_taus.append(float(fixed))
                else:
                    level_taus.append(_pymc_dist(f"{term}_sigma", spec.priors[term].args["sigma"]))
            taus.append(level_taus)
        pm.Potential("collapsed_loglik", log_marginal(tree, sigma, taus))
    return model


def fit_collapsed(
    spec, design, *, sampler, draws, tune, chains, target_accept, seed, progressbar, cores
):
    """Fit with the collapsed engine: NUTS on the scales, exact draws of the coefficients.

    Parameters
    ----------
    spec : ModelSpec
        The model.
    design : Design
        The data's design.
    sampler, draws, tune, chains, target_accept, seed, progressbar, cores
        As for :func:`skhier.engine.sampling.sample_pymc_model`.

    Returns
    -------
    model : pymc.Model or None
        The scales' model; None when nutpie sampled the compiled log density instead (the
        same density; build the model with :func:`build_collapsed_model` when needed).
    idata : arviz.InferenceData
        Posterior of every parameter under Bambi's names.
    timing : dict
        Seconds spent sampling and drawing the coefficients, and which log density was
        sampled (``"compiled"``: skhier's cached numba kernel; ``"pytensor"``: the PyMC graph).
    """
    import xarray as xr

    tree = build_tree(spec, design)
    t0 = time.perf_counter()
    settings = dict(
        draws=draws,
        tune=tune,
        chains=chains,
        target_accept=target_accept,
        seed=seed,
        progressbar=progressbar,
        cores=cores,
    )
    model = None
    inputs = None
    if sampler == "nutpie":
        from skhier.engine.compiled import compiled_inputs

        inputs = compiled_inputs(spec, tree)
        if isinstance(inputs, str):
            logger.info("skhier: nutpie samples the PyMC graph (compiled per model): %s", inputs)
    density = "compiled" if inputs is not None and not isinstance(inputs, str) else "pytensor"
    if density == "compiled" and inputs.names:
        from skhier.engine.compiled import sample_compiled

        idata = sample_compiled(inputs, **settings)
    elif density == "pytensor" and (model := build_collapsed_model(spec, tree)).free_RVs:
        idata = sample_pymc_model(model, sampler=sampler, **settings)
    else:  # every scale fixed: the posterior is Gaussian, no MCMC needed
        import arviz as az

        idata = az.from_dict(posterior={"_": np.zeros((chains, draws))})
        del idata.posterior["_"]
    t1 = time.perf_counter()
    post = idata.posterior
    n_chains, n_draws = post.sizes["chain"], post.sizes["draw"]

    def flat(name):
        return np.asarray(post[name]).reshape(-1)

    fixed_sigma = spec.priors["sigma"]
    sigma = flat("sigma") if "sigma" in post else np.full(n_chains * n_draws, float(fixed_sigma))
    taus = [
        [
            float(f) if f is not None else flat(f"{term}_sigma")
            for term, f in zip(level.terms, level.fixed_tau, strict=True)
        ]
        for level in tree.levels
    ]
    rng = np.random.default_rng(None if seed is None else [seed, 7])
    common, groups = draw_coefficients(tree, sigma, taus, rng)
    new = {}
    for a, col in enumerate(tree.common_cols):
        name = tree.columns[col]
        new[name] = (("chain", "draw"), common[:, a].reshape(n_chains, n_draws))
    coords = {}
    for t, level in enumerate(tree.levels):
        dim = dim_name(level.factor)
        coords[dim] = np.asarray(design.factors[level.factor].labels, dtype=object)
        for a, term in enumerate(level.terms):
            new[term] = (
                ("chain", "draw", dim),
                groups[t][:, :, a].reshape(n_chains, n_draws, level.n_nodes),
            )
    idata.posterior = post.assign_coords(coords).assign(
        {k: xr.Variable(d, v) for k, (d, v) in new.items()}
    )
    t2 = time.perf_counter()
    timing = {"sampling": t1 - t0, "coefficient_draws": t2 - t1, "log_density": density}
    return model, idata, timing


_GROUP_TOKEN = re.compile(r"\(([^()|]+)\|([^()]+)\)")


def bambi_formula(formula: str, data):
    """Rewrite group factors so that Bambi indexes only observed level combinations.

    ``(x|a/b)`` becomes ``(x|a) + (x|a__b)`` and ``(x|a:b)`` becomes ``(x|a__b)``, where the new
    column ``a__b`` joins the labels as ``"a:b"``.

    Parameters
    ----------
    formula : str
        The formula to fit.
    data : pandas.DataFrame
        The data (not modified).

    Returns
    -------
    formula : str
        The rewritten formula.
    data : pandas.DataFrame
        A copy with the joined columns added (the input itself when nothing is joined).
    renames : dict
        Joined column name to factor name (``a__b`` to ``a:b``).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"g": ["a"], "s": ["x"]})
    >>> f, d, r = bambi_formula("y ~ 0 + x + (0 + x|g/s)", df)
    >>> f, d["g__s"].tolist(), r
    ('y ~ 0 + x + (0 + x|g) + (0 + x|g__s)', ['a:x'], {'g__s': 'g:s'})
    """
    renames = {}
    new_cols = {}

    def joined(cols):
        name = "__".join(cols)
        if name not in new_cols:
            values = data[cols[0]].astype(str)
            for c in cols[1:]:
                values = values + ":" + data[c].astype(str)
            new_cols[name] = values
            renames[name] = ":".join(cols)
        return name

    def repl(m):
        expr, factor = m.group(1).strip(), m.group(2).strip()
        if "/" in factor:
            parts = [p.strip() for p in factor.split("/")]
            out = []
            for k in range(1, len(parts) + 1):
                f = parts[0] if k == 1 else joined(parts[:k])
                out.append(f"({expr}|{f})")
            return " + ".join(out)
        if ":" in factor:
            return f"({expr}|{joined([p.strip() for p in factor.split(':')])})"
        return m.group(0)

    out = _GROUP_TOKEN.sub(repl, formula)
    if new_cols:
        data = data.assign(**new_cols)
    return out, data, renames


def build_bambi_model(spec, data, *, noncentered=True, user_priors=None):
    """Build Bambi's model of the formula, with factors indexing observed levels only.

    Parameters
    ----------
    spec : ModelSpec
        The model.
    data : pandas.DataFrame
        The data (not modified).
    noncentered : bool, default=True
        Bambi's parametrization of group-specific terms.
    user_priors : dict or None
        Priors the user set (Bambi computes the same defaults itself).

    Returns
    -------
    model : bambi.Model
        The model.
    renames : dict
        Joined column name to factor name (see :func:`bambi_formula`).
    """
    import bambi as bmb

    formula, bdata, renames = bambi_formula(spec.parsed.formula, data)

    def bambi_name(name):
        for joined, factor in renames.items():
            name = name.replace(factor, joined)
        return name

    priors = {}
    for name, prior in (user_priors or {}).items():
        priors[bambi_name(name)] = prior.to_bambi() if isinstance(prior, Prior) else prior
    for name, value in spec.fixed_tau.items():
        priors[bambi_name(name)] = bmb.Prior("Normal", mu=0.0, sigma=float(value))
    model = bmb.Model(
        formula, bdata, family=spec.family, priors=priors or None, noncentered=noncentered
    )
    model.skhier_renames = renames  # to map skhier's names back to Bambi's
    return model, renames


def fit_bambi(
    spec,
    data,
    *,
    sampler,
    draws,
    tune,
    chains,
    target_accept,
    seed,
    progressbar,
    cores,
    noncentered=True,
    user_priors=None,
):
    """Fit Bambi's own PyMC model (the fallback for what the collapsed engine cannot do).

    Parameters
    ----------
    spec : ModelSpec
        The model.
    data : pandas.DataFrame
        The data (not modified).
    sampler, draws, tune, chains, target_accept, seed, progressbar, cores
        Sampler settings.
    noncentered : bool, default=True
        Bambi's parametrization of group-specific terms.
    user_priors : dict or None
        Priors the user set (Bambi computes the same defaults itself).

    Returns
    -------
    model : bambi.Model
        The model.
    idata : arviz.InferenceData
        Posterior under Bambi's names (joined factors renamed ``a:b``).
    timing : dict
        Seconds spent sampling.
    """
    model, renames = build_bambi_model(spec, data, noncentered=noncentered,
                                       user_priors=user_priors)
    t0 = time.perf_counter()
    kwargs = {"random_seed": seed, "cores": cores} if sampler != "nutpie" else {"random_seed": seed}
    idata = model.fit(
        draws=draws,
        tune=tune,
        chains=chains,
        target_accept=target_accept,
        inference_method=sampler,
        progressbar=progressbar,
        **kwargs,
    )
    timing = {"sampling": time.perf_counter() - t0}
    if renames:
        idata.posterior = _rename_joined(idata.posterior, renames)
    return model, idata, timing


def _rename_joined(post, renames):
    mapping = {}
    for name in list(post.data_vars) + list(post.dims):
        new = name
        for joined, factor in renames.items():
            new = new.replace(joined, factor)
        if new != name:
            mapping[name] = new
    return post.rename(mapping)


def pooled_spec(
    parsed: ParsedFormula, priors: dict, pooling: str, column: str, factor: str | None, family: str
) -> ModelSpec:
    """Apply a pooling choice to the formula's terms.

    Parameters
    ----------
    parsed : ParsedFormula
        The formula's terms.
    priors : dict
        Priors of the partial-pooling model.
    pooling : {"partial", "complete", "none"}
        ``partial``: the hierarchy as written; ``complete``: one common coefficient (group terms
        on ``column`` dropped); ``none``: independent coefficients per level of ``factor``, each
        with the common coefficient's prior (no common term, no other levels on ``column``).
    column : str
        The ranked column.
    factor : str or None
        The ranked factor.
    family : str
        Bambi family.

    Returns
    -------
    ModelSpec
        The model to fit.

    Examples
    --------
    >>> from skhier.formula import parse_formula
    >>> p = parse_formula("y ~ 0 + x:(1|g/s)")
    >>> from skhier.priors import Prior
    >>> pri = {"x": Prior("Normal", {"mu": 0.0, "sigma": 2.0})}
    >>> spec = pooled_spec(p, pri, "none", "x", "g:s", "gaussian")
    >>> spec.parsed.formula, spec.fixed_tau
    ('y ~ 0 + (0 + x|g:s)', {'x|g:s': 2.0})
    """
    if pooling == "partial":
        return ModelSpec(parsed, priors, {}, family)
    groups = [t for t in parsed.group_terms if t.column != column]
    common = list(parsed.common)
    intercept = parsed.intercept
    fixed = {}
    if pooling == "complete":
        if column == INTERCEPT:
            intercept = True
        elif column not in common:
            common.append(column)
    else:  # none
        if column == INTERCEPT:
            intercept = False
        elif column in common:
            common.remove(column)
        term = GroupTerm(column, tuple(factor.split(":")))
        groups.append(term)
        prior = priors.get(column, priors.get(INTERCEPT))
        fixed[term.name] = float(prior.args["sigma"])
    new = ParsedFormula(
        formula=_formula_text(parsed.response, intercept, common, groups),
        response=parsed.response,
        intercept=intercept,
        common=tuple(common),
        group_terms=tuple(groups),
        unsupported=parsed.unsupported,
    )
    return ModelSpec(new, priors, fixed, family)


def _formula_text(response, intercept, common, groups) -> str:
    parts = ["1" if intercept else "0", *common]
    for t in groups:
        expr = "1" if t.column == INTERCEPT else f"0 + {t.column}"
        parts.append(f"({expr}|{t.factor})")
    return f"{response} ~ " + " + ".join(parts)
