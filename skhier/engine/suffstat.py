"""Sufficient-statistics engine: every coefficient sampled, the likelihood from per-cell sums.

For Gaussian models the collapsed engine cannot integrate (crossed factors such as
``(1|gene) + (1|batch)``), the likelihood still depends on the data only through per-cell sums
(a cell is an observed combination of levels of every factor), so the model never touches the
rows. Group coefficients are sampled explicitly, each level centered or non-centered:
``parametrization="auto"`` chooses per level from how informative the data are about one group's
coefficient (data-rich levels centered, data-poor levels non-centered).
"""

from __future__ import annotations

import time

import numpy as np

from skhier._names import dim_name, scale_name
from skhier._progress import stage
from skhier.design import Design, cell_statistics
from skhier.engine.base import EngineFit, SamplerSettings, gaussian_suffstat_why_not, register
from skhier.engine.samplers import sample_pymc_model
from skhier.formula import INTERCEPT
from skhier.priors import to_pymc

__all__ = ["SuffstatEngine", "cell_index", "choose_parametrization", "build_suffstat_model"]



def cell_index(design: Design):
    """Index the observed combinations of every factor's levels.

    Parameters
    ----------
    design : Design
        The data's design.

    Returns
    -------
    cells : ndarray of int64, shape (n_rows,)
        Cell of each row.
    n_cells : int
        Number of cells.
    codes : dict of str to ndarray
        For each factor, its level in each cell.

    Examples
    --------
    >>> import pandas as pd
    >>> from skhier.design import build_design
    >>> from skhier.formula import parse_formula
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4], "g": list("aabb"), "b": list("uvuu")})
    >>> cells, n, codes = cell_index(build_design(df, parse_formula("y ~ (1|g) + (1|b)")))
    >>> cells.tolist(), n, codes["g"].tolist(), codes["b"].tolist()
    ([0, 1, 2, 2], 3, [0, 0, 1], [0, 1, 0])
    """
    names = list(design.factors)
    if not names:
        return np.zeros(design.n_rows, dtype=np.int64), 1, {}
    stacked = np.stack([design.factors[n].codes for n in names], axis=1)
    uniq, cells = np.unique(stacked, axis=0, return_inverse=True)
    return (
        cells.reshape(-1).astype(np.int64),
        len(uniq),
        {n: uniq[:, k].astype(np.int64) for k, n in enumerate(names)},
    )


def choose_parametrization(plan, requested="auto") -> dict[str, str]:
    """Centered or non-centered, per group term.

    With ``requested="auto"``, a term is centered when the data inform one group's coefficient
    more than the spread between groups does: the median over groups of
    ``sum(w^2) * tau^2 / sigma^2`` exceeds 1, where ``sigma`` is the residual sd of a
    least-squares fit of the common terms and ``tau^2`` a moment estimate of the between-group
    variance (variance of the per-group least-squares coefficients of the residuals, less their
    mean sampling variance).

    Parameters
    ----------
    plan : FitPlan
        The plan.
    requested : {"auto", "centered", "noncentered"} or dict, default="auto"
        The user's choice, or an explicit choice per term name.

    Returns
    -------
    dict of str to str
        Term name to ``"centered"`` or ``"noncentered"``.
    """
    design, parsed = plan.design, plan.parsed
    terms = parsed.group_terms
    if isinstance(requested, dict):
        return {t.name: requested.get(t.name, "noncentered") for t in terms}
    if requested != "auto":
        return {t.name: requested for t in terms}
    cols = [
        design.columns.index(c)
        for c in design.columns
        if c in parsed.common or (c == INTERCEPT and parsed.intercept)
    ]
    resid = design.y
    if cols:
        coef, *_ = np.linalg.lstsq(design.W[:, cols], design.y, rcond=None)
        resid = design.y - design.W[:, cols] @ coef
    sigma2 = max(float(np.var(resid)), 1e-12)
    out = {}
    for t in terms:
        f = design.factors[t.factor]
        w = design.W[:, design.columns.index(t.column)]
        info = np.bincount(f.codes, weights=w * w, minlength=f.n_levels)
        ok = info > 0
        b_hat = np.bincount(f.codes, weights=w * resid, minlength=f.n_levels)[ok] / info[ok]
        sampling_var = sigma2 / info[ok]
        tau2 = max(float(np.var(b_hat) - np.mean(sampling_var)), 0.0) if ok.sum() > 1 else 0.0
        out[t.name] = "centered" if np.median(info[ok] / sigma2) * tau2 > 1 else "noncentered"
    return out


def build_suffstat_model(plan, choice):
    """Build the PyMC model of the sufficient-statistics engine (every coefficient sampled).

    Parameters
    ----------
    plan : FitPlan
        The plan (Gaussian, plain terms, Normal priors on coefficients).
    choice : dict of str to str
        ``"centered"`` or ``"noncentered"`` per group term (see
        :func:`choose_parametrization`).

    Returns
    -------
    pymc.Model
        The model; its likelihood is a sum over cells of the Gaussian log density written with
        the cell's sums.
    """
    import pymc as pm
    import pytensor.tensor as pt

    design, parsed = plan.design, plan.parsed
    cells, n_cells, cell_codes = cell_index(design)
    stats = cell_statistics(design.W, design.y, cells, n_cells)
    q = len(design.columns)
    coords = {
        dim_name(f): np.asarray(design.factors[f].labels, dtype=object) for f in design.factors
    }
    with pm.Model(coords=coords) as model:
        sigma = to_pymc("sigma", plan.priors["sigma"])
        gamma = [pt.zeros((n_cells,)) for _ in range(q)]
        for k, c in enumerate(design.columns):
            if c in parsed.common or (c == INTERCEPT and parsed.intercept):
                prior = plan.priors[c]
                beta = pm.Normal(c, mu=prior.args.get("mu", 0.0), sigma=prior.args["sigma"])
                gamma[k] = gamma[k] + beta
        for t in parsed.group_terms:
            dim = dim_name(t.factor)
            if t.name in plan.fixed_tau:
                tau = float(plan.fixed_tau[t.name])
            else:
                tau = to_pymc(scale_name(t.name), plan.priors[t.name].args["sigma"])
            if choice[t.name] == "centered":
                b = pm.Normal(t.name, mu=0.0, sigma=tau, dims=dim)
            else:
                offset = pm.Normal(f"{t.name}_offset", mu=0.0, sigma=1.0, dims=dim)
                b = pm.Deterministic(t.name, offset * tau, dims=dim)
            k = design.columns.index(t.column)
            gamma[k] = gamma[k] + b[cell_codes[t.factor]]
        WW = pm.Data("_skhier_WW", stats["WW"])
        Wy = pm.Data("_skhier_Wy", stats["Wy"])
        n = pm.Data("_skhier_n", stats["n"].astype(np.float64))
        yy = pm.Data("_skhier_yy", stats["yy"])
        g = pt.stack(gamma, axis=1)
        quad = (
            yy
            - 2 * pt.sum(g * Wy, axis=1)
            + pt.sum(g[:, :, None] * WW * g[:, None, :], axis=(1, 2))
        )
        pm.Potential(
            "cell_loglik", pt.sum(-0.5 * n * pt.log(2 * np.pi * sigma**2) - 0.5 * quad / sigma**2)
        )
    return model


class SuffstatEngine:
    """Gaussian models with crossed factors: every coefficient sampled, per-cell likelihood.

    Examples
    --------
    >>> import pandas as pd
    >>> from skhier.plan import make_plan
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4], "g": list("aabb"), "b": list("uvuv")})
    >>> SuffstatEngine().why_not(make_plan({"formula": "y ~ (1|g) + (1|b)"}, df)) is None
    True
    """

    name = "suffstat"
    default_target_accept = 0.8
    switches_parametrization = True

    def why_not(self, plan) -> str | None:
        """Say why the plan's likelihood is not a Gaussian of per-cell sums (None when it is).

        Parameters
        ----------
        plan : FitPlan
            The plan.

        Returns
        -------
        str or None
            The reason.
        """
        return gaussian_suffstat_why_not(plan)

    def build(self, plan, parametrization="auto"):
        """Build the PyMC model (see :func:`build_suffstat_model`).

        Parameters
        ----------
        plan : FitPlan
            The plan.
        parametrization : str or dict, default="auto"
            Per-term choice (see :func:`choose_parametrization`).

        Returns
        -------
        pymc.Model
            The model.
        """
        return build_suffstat_model(plan, choose_parametrization(plan, parametrization))

    def fit(self, plan, settings: SamplerSettings, parametrization="auto") -> EngineFit:
        """Sample every coefficient with NUTS.

        Parameters
        ----------
        plan : FitPlan
            The plan.
        settings : SamplerSettings
            How to sample.
        parametrization : str or dict, default="auto"
            Per-term choice (see :func:`choose_parametrization`).

        Returns
        -------
        EngineFit
            Posterior under Bambi's names (the non-centered offsets dropped).
        """
        choice = choose_parametrization(plan, parametrization)
        model = build_suffstat_model(plan, choice)
        stage("sampling", "skhier: sampling every coefficient (suffstat engine)")
        t0 = time.perf_counter()
        idata = sample_pymc_model(model, settings)
        drop = [v for v in idata.posterior.data_vars if v.endswith("_offset")]
        idata.posterior = idata.posterior.drop_vars(drop)
        return EngineFit(model, idata, {"sampling": time.perf_counter() - t0}, choice)


register(SuffstatEngine())
