"""Bambi's own model: the engine for everything the Gaussian engines cannot fit.

Other families, terms that are not plain columns and non-Normal priors on coefficients are
fitted by the model Bambi builds from the formula. Its factors index only the observed level
combinations: ``(x|a/b)`` is rewritten as ``(x|a) + (x|a__b)`` with a joined column ``a__b``
(formulae's own ``a/b`` creates a level for every cross combination), and the posterior is
renamed back to skhier's spelling ``a:b`` (:func:`skhier._names.rename_joined`).
"""

from __future__ import annotations

import re
import time

import numpy as np

from skhier._names import factor_name, joined_column, rename_joined
from skhier._progress import stage
from skhier.engine.base import EngineFit, SamplerSettings, register
from skhier.priors import Prior

__all__ = ["BambiEngine", "bambi_formula", "build_bambi_model", "bambi_priors"]


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
        name = joined_column(cols)
        if name not in new_cols:
            values = data[cols[0]].astype(str)
            for c in cols[1:]:
                values = values + ":" + data[c].astype(str)
            new_cols[name] = values
            renames[name] = factor_name(cols)
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


def bambi_priors(plan) -> dict | None:
    """Return the priors to hand Bambi: the user's own (Bambi computes the same defaults).

    Parameters
    ----------
    plan : FitPlan
        The plan.

    Returns
    -------
    dict or None
        Priors by term name, or None when the user set none.
    """
    if not plan.user_priors:
        return None
    return {k: plan.priors.get(k, v) for k, v in plan.user_priors.items()}


def _noncentered(parametrization) -> bool:
    """Bambi takes one parametrization for every term: non-centered unless all are centered."""
    if isinstance(parametrization, dict):
        return any(v != "centered" for v in parametrization.values())
    return parametrization != "centered"


def _fixed_intercepts(plan) -> list[str]:
    """Group intercepts with a fixed scale that Bambi gets as a common categorical term.

    Bambi refuses a prior without hyperpriors on a group term; ``(1|f)`` with a fixed
    ``Normal(0, s)`` prior is the same model as a common term ``f`` (one coefficient per level,
    each ``Normal(0, s)``) when that term is coded with every level: the formula has no intercept
    and no other categorical common term. A count screen's sgRNA abundance is such a term.
    """
    if plan.parsed.intercept:
        return []
    data = plan.data
    if any(c in data and not np.issubdtype(data[c].dtype, np.number) for c in plan.parsed.common):
        return []
    out = [
        t.name
        for t in plan.parsed.group_terms
        if t.column == "Intercept" and t.name in plan.fixed_tau
    ]
    return out[:1]  # only the first categorical term is coded with every level


def _common_name(term: str) -> str:
    """Return the common term fitted for group intercept ``term`` (``1|g__s`` as ``g__s``)."""
    return term.split("|", 1)[1]


def build_bambi_model(plan, parametrization="auto"):
    """Build Bambi's model of a plan, with factors indexing observed levels only.

    Parameters
    ----------
    plan : FitPlan
        The plan.
    parametrization : {"auto", "centered", "noncentered"} or dict, default="auto"
        Bambi takes one parametrization for every term: non-centered unless every term is
        centered.

    Returns
    -------
    model : bambi.Model
        The model.
    renames : dict
        Joined column name to factor name (see :func:`bambi_formula`).
    """
    import bambi as bmb

    formula, bdata, renames = bambi_formula(plan.parsed.formula, plan.data)

    def bambi_name(name):
        for joined, factor in renames.items():
            name = name.replace(factor, joined)
        return name

    as_common = _fixed_intercepts(plan)
    for name in as_common:
        formula = formula.replace(f"({bambi_name(name)})", _common_name(bambi_name(name)))
    priors = {}
    for name, prior in (bambi_priors(plan) or {}).items():
        if name not in as_common:
            priors[bambi_name(name)] = prior.to_bambi() if isinstance(prior, Prior) else prior
    for name, value in plan.fixed_tau.items():
        key = _common_name(bambi_name(name)) if name in as_common else bambi_name(name)
        priors[key] = bmb.Prior("Normal", mu=0.0, sigma=float(value))
    model = bmb.Model(
        formula,
        bdata,
        family=plan.family,
        priors=priors or None,
        noncentered=_noncentered(parametrization),
    )
    model.skhier_common = [bambi_name(n) for n in as_common]
    return model, renames


class BambiEngine:
    """Bambi's own PyMC model of the formula (every family, every term Bambi knows).

    Examples
    --------
    >>> BambiEngine().why_not(None) is None
    True
    """

    name = "bambi"
    default_target_accept = 0.8
    switches_parametrization = True

    def why_not(self, plan) -> str | None:
        """Bambi's model takes every plan.

        Parameters
        ----------
        plan : FitPlan
            The plan.

        Returns
        -------
        None
            Always.
        """
        return None

    def build(self, plan, parametrization="auto"):
        """Build Bambi's model (see :func:`build_bambi_model`).

        Parameters
        ----------
        plan : FitPlan
            The plan.
        parametrization : str or dict, default="auto"
            Bambi's parametrization of the group terms.

        Returns
        -------
        bambi.Model
            The model; ``skhier_renames`` maps its joined column names to factor names.
        """
        model, renames = build_bambi_model(plan, parametrization)
        model.skhier_renames = renames
        return model

    def fit(self, plan, settings: SamplerSettings, parametrization="auto") -> EngineFit:
        """Fit Bambi's model with the chosen sampler.

        Parameters
        ----------
        plan : FitPlan
            The plan.
        settings : SamplerSettings
            How to sample.
        parametrization : str or dict, default="auto"
            Bambi's parametrization of the group terms.

        Returns
        -------
        EngineFit
            Posterior under skhier's names (joined factors renamed ``a:b``).
        """
        model = self.build(plan, parametrization)
        stage("sampling", "skhier: sampling Bambi's model")
        t0 = time.perf_counter()
        kwargs = {"random_seed": settings.seed}
        if settings.sampler != "nutpie":
            kwargs["cores"] = settings.cores
        idata = model.fit(
            draws=settings.draws,
            tune=settings.tune,
            chains=settings.chains,
            target_accept=settings.target_accept,
            inference_method=settings.sampler,
            progressbar=settings.progressbar,
            **kwargs,
        )
        timing = {"sampling": time.perf_counter() - t0}
        idata.posterior = _rename_common(idata.posterior, model.skhier_common)
        if model.skhier_renames:
            idata.posterior = rename_joined(idata.posterior, model.skhier_renames)
        kind = "noncentered" if _noncentered(parametrization) else "centered"
        choice = dict.fromkeys((t.name for t in plan.parsed.group_terms), kind)
        return EngineFit(model, idata, timing, choice)


def _rename_common(posterior, terms):
    """Name the common categorical terms of :func:`_fixed_intercepts` as their group terms."""
    for term in terms:  # Bambi's spelling: "1|gene__sgRNA", fitted as the common "gene__sgRNA"
        column = _common_name(term)
        if column not in posterior.data_vars:
            continue
        old_dim, dim = f"{column}_dim", f"{column}__factor_dim"
        values = posterior[column].rename({old_dim: dim})
        if dim in posterior.dims:  # the factor's other terms: their order of the levels
            values = values.reindex({dim: posterior[dim].values})
        posterior = posterior.drop_vars([column, old_dim]).assign({term: values})
    return posterior


register(BambiEngine())
