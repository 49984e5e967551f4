"""Shared test helpers: the forum formula, cheap sampler settings, plans with exact priors,
a small count screen."""

import numpy as np
import pandas as pd

FORUM = "Ht ~ 0 + H0:(1|gene/sgRNA)"

#: The numeric columns of ``LOOSearchCV.cv_results_`` (besides the times).
LOO_NUMERIC = (
    "elpd_loo",
    "se",
    "p_loo",
    "n_k_good",
    "n_k_ok",
    "n_k_bad",
    "n_k_very_bad",
    "n_refit_rows",
    "n_refits",
    "elpd_diff",
    "dse",
    "weight",
    "rank_test_score",
)


def small_kwargs(**kw):
    """Cheap sampler settings for tests that fit many times.

    nutpie samples the collapsed engine's own compiled density (numba kernels cached on disk), so
    a small fit costs a fraction of a second; PyMC's sampler would compile a C module per model.
    """
    base = dict(
        sampler="nutpie", draws=200, tune=200, chains=2, n_jobs=1, random_state=0, on_fail="ignore"
    )
    base.update(kw)
    return base


def plan_with_priors(df, formula, priors, pooling="partial"):
    """A fit plan of ``df`` with exactly the given priors (for tests of the engines' algebra).

    With ``pooling`` other than ``"partial"``, the last group term's column and factor are pooled.
    """
    from dataclasses import replace

    from skhier.design import build_design
    from skhier.formula import parse_formula
    from skhier.plan import apply_pooling, make_plan

    parsed = parse_formula(formula)
    column = factor = None
    if pooling != "partial":
        column, factor = parsed.group_terms[-1].column, parsed.group_terms[-1].factor
    fitted, fixed = apply_pooling(parsed, priors, pooling, column, factor)
    plan = make_plan({"formula": formula}, df)
    return replace(
        plan, parsed=fitted, priors=priors, fixed_tau=fixed, design=build_design(plan.data, fitted)
    )


def count_frame(n_sgrnas=6, replicates=3, seed=0):
    """Long count rows: each sgRNA (in 2 genes) at T0 and after selection, in replicates."""
    rng = np.random.default_rng(seed)
    genes = np.repeat(["g0", "g1"], n_sgrnas // 2)
    rows = []
    for j in range(n_sgrnas):
        base = rng.normal(5.0, 0.5)
        slope = -1.0 if genes[j] == "g0" else 0.2
        for t in (0.0, 1.0):
            for _ in range(replicates):
                size = rng.normal(0.0, 0.1)
                mu = np.exp(base + slope * t + size)
                rows.append((genes[j], f"s{j}", t, size, rng.negative_binomial(20, 20 / (20 + mu))))
    return pd.DataFrame(rows, columns=["gene", "sgRNA", "treatment", "log_size", "count"])


COUNT_FORMULA = "count ~ 0 + offset(log_size) + (1|gene:sgRNA) + treatment:(1|gene/sgRNA)"
