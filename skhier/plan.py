"""The fit plan: everything decided before sampling, in one frozen object.

:func:`make_plan` turns the estimator's parameters and a data frame into a :class:`FitPlan`:
the formula's terms after pooling, the validated rows and their design (observed-level
factors, per-cell statistics), the priors, the ranked column and level, and the engine with
the reasons the engines preferred to it were passed over. Everything here is cheap and
deterministic (no sampling), so :meth:`skhier.HierarchicalRanker.load` rebuilds a saved
ranker's plan from its data.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import pandas as pd

from skhier._names import COEF_LEVEL, factor_name
from skhier._validation import COUNT_RESPONSE_FAMILIES, check_counts, check_data
from skhier.design import Design, build_design
from skhier.effects import ranked_column, ranked_factors
from skhier.formula import INTERCEPT, GroupTerm, ParsedFormula, parse_formula
from skhier.priors import DEFAULT_PRIOR_FAMILIES, Prior, default_priors, merge_priors

__all__ = ["FitPlan", "make_plan", "apply_pooling", "POOLING"]

logger = logging.getLogger("skhier")

POOLING = ("partial", "complete", "none")


@dataclass(frozen=True)
class FitPlan:
    """What is fitted, on which rows, ranked how, by which engine.

    Parameters
    ----------
    parsed : ParsedFormula
        The terms actually fitted (after pooling).
    priors : dict of str to Prior
        Prior of every term (Gaussian, negative binomial and Poisson: Bambi's defaults with the
        user's replacing them; other families: the user's only, Bambi computes the rest).
    user_priors : dict
        The priors the user set, by term name.
    fixed_tau : dict of str to float
        Group terms whose scale is fixed: by ``pooling="none"``, or by a prior
        ``Normal(mu=0, sigma=<number>)`` (the term's coefficients are then independent, with
        that prior, as Bambi reads such a prior).
    family : str
        Bambi family name.
    pooling : {"partial", "complete", "none"}
        The pooling choice that produced ``parsed``.
    data : pandas.DataFrame
        The validated rows.
    design : Design
        Their design.
    column : str or None
        The ranked column; None when the formula has no group term (coefficients ranked).
    level : str
        The ranked factor (``"gene:sgRNA"``), or ``"coefficient"``.
    engine : str or None
        The engine that fits the plan.
    reasons : dict of str to str
        Why each engine preferred to ``engine`` cannot fit the plan.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4], "x": [1.0, 2, 1, 2], "g": list("aabb")})
    >>> plan = make_plan({"formula": "y ~ x + (1|g)"}, df)
    >>> plan.formula, plan.engine, plan.column, plan.level
    ('y ~ x + (1|g)', 'collapsed', 'Intercept', 'g')
    """

    parsed: ParsedFormula
    priors: dict
    user_priors: dict
    fixed_tau: dict
    family: str
    pooling: str
    data: pd.DataFrame = field(repr=False)
    design: Design = field(repr=False)
    column: str | None
    level: str
    engine: str | None = None
    reasons: dict = field(default_factory=dict)

    @property
    def formula(self) -> str:
        """The formula actually fitted."""
        return self.parsed.formula

    @property
    def term(self) -> str:
        """The ranked column, or ``"coefficient"`` when the coefficients are ranked."""
        return self.column if self.column is not None else COEF_LEVEL

    @property
    def fallback_reason(self) -> str:
        """Why the preferred engines were passed over, one sentence (empty when none was)."""
        return "; ".join(dict.fromkeys(self.reasons.values()))


def make_plan(params: Mapping, data: pd.DataFrame) -> FitPlan:
    """Make the plan of a fit from the estimator's parameters and a data frame.

    Parameters
    ----------
    params : mapping
        The estimator's parameters (``get_params()``); missing keys take the estimator's
        defaults: ``formula`` (None: ``y`` on every other column), ``level``, ``column``,
        ``family``, ``priors``, ``pooling``, ``engine``, ``missing``.
    data : pandas.DataFrame
        The rows, with the response (not modified).

    Returns
    -------
    FitPlan
        The plan.

    Raises
    ------
    ValueError
        For data the formula cannot read, a formula with nothing to rank (only an intercept),
        a level that is not a grouping factor of the ranked term, a pooling choice the formula
        does not allow, priors naming no term, or an engine that cannot fit the model.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4], "x": [1.0, 2, 1, 2], "g": list("aabb")})
    >>> make_plan({"formula": "y ~ x + (0 + x|g)", "pooling": "none"}, df).formula
    'y ~ 1 + (0 + x|g)'
    """
    from skhier.engine import choose_engine

    formula = params.get("formula")
    family = params.get("family", "gaussian")
    pooling = params.get("pooling", "partial")
    if formula is None:
        formula = "y ~ " + " + ".join(c for c in data.columns if c != "y")
    parsed = parse_formula(formula)
    data = check_data(data, parsed, missing=params.get("missing", "raise"))
    if family in COUNT_RESPONSE_FAMILIES:
        check_counts(data, parsed.response, family)
    design = build_design(data, parsed)
    column, level = _ranked(parsed, design, params, formula, pooling)

    known = family in DEFAULT_PRIOR_FAMILIES
    base = default_priors(parsed, data, family) if known else {}
    fitted, fixed_tau = apply_pooling(parsed, base, pooling, column, level)
    if pooling != "partial":
        design = build_design(data, fitted)
    user = dict(params.get("priors") or {})
    if known:
        priors = merge_priors(default_priors(fitted, data, family), user)
    else:
        priors = {k: Prior.from_any(v) for k, v in user.items()}
    fixed_tau = {**_fixed_scales(fitted, priors), **fixed_tau}
    plan = FitPlan(
        parsed=fitted,
        priors=priors,
        user_priors=user,
        fixed_tau=fixed_tau,
        family=family,
        pooling=pooling,
        data=data,
        design=design,
        column=column,
        level=level,
    )
    engine, reasons = choose_engine(plan, params.get("engine", "auto"))
    if reasons:
        logger.info(
            "skhier: engine %r fits this model; %s",
            engine,
            "; ".join(f"not {k}: {v}" for k, v in reasons.items()),
        )
    return replace(plan, engine=engine, reasons=reasons)


def _fixed_scales(parsed: ParsedFormula, priors: dict) -> dict:
    """Group terms whose prior is ``Normal(0, sigma)`` with ``sigma`` a number: a fixed scale."""
    fixed = {}
    for t in parsed.group_terms:
        prior = priors.get(t.name)
        if not isinstance(prior, Prior) or prior.name != "Normal":
            continue
        sigma, mu = prior.args.get("sigma"), prior.args.get("mu", 0.0)
        number = isinstance(sigma, int | float) and not isinstance(sigma, bool)
        if number and mu == 0 and sigma > 0:
            fixed[t.name] = float(sigma)
    return fixed


def _ranked(parsed, design, params, formula, pooling):
    """Return the ranked column and level (factor name, or the coefficient level)."""
    requested = params.get("level")
    if not parsed.group_terms and not parsed.common:
        y = parsed.response
        dropped = (
            f" ({'; '.join(parsed.unsupported)}; only plain columns are ranked)"
            if parsed.unsupported
            else ""
        )
        raise ValueError(
            f"formula {formula!r} has nothing to rank: no group-specific term and no predictor "
            f"column{dropped}. Name the groups to rank, e.g. '{y} ~ 1 + (1|g)' ranks the levels "
            f"of column g by their intercept, '{y} ~ 0 + x:(1|g)' by their slope on x."
        )
    if not parsed.group_terms:
        if requested not in (None, COEF_LEVEL):
            raise ValueError(
                f"level={requested!r} is not a grouping factor: the formula {formula!r} has "
                f"none; the coefficients are ranked (level={COEF_LEVEL!r})."
            )
        if pooling != "partial":
            raise ValueError(
                f"pooling={pooling!r} needs a group-specific term in the formula; {formula!r} "
                "has none."
            )
        return None, COEF_LEVEL
    column = ranked_column(parsed, params.get("column"))
    factors = ranked_factors(parsed, column)
    chain = [f for f in (design.chain or []) if f in factors] or factors
    if requested is None:
        # the finest factor; among equally many levels, the later (inner) one
        return column, sorted(chain, key=lambda f: design.factors[f].n_levels)[-1]
    try:
        found = design.find_factor(requested)
    except ValueError:
        found = None
    if found is None or found.name not in factors:
        choices = sorted({*factors, *(design.factors[x].short_name for x in factors)})
        raise ValueError(
            f"level={requested!r} is not a grouping factor of the ranked term; choose from "
            f"{choices}."
        )
    return column, found.name


def apply_pooling(
    parsed: ParsedFormula, priors: dict, pooling: str, column: str | None, factor: str | None
) -> tuple[ParsedFormula, dict]:
    """Apply a pooling choice to the formula's terms.

    Parameters
    ----------
    parsed : ParsedFormula
        The formula's terms.
    priors : dict
        Priors of the partial-pooling model (``none`` reads the common coefficient's scale).
    pooling : {"partial", "complete", "none"}
        ``partial``: the hierarchy as written; ``complete``: one common coefficient (group terms
        on ``column`` dropped); ``none``: independent coefficients per level of ``factor``, each
        with the common coefficient's prior (no common term, no other levels on ``column``).
    column : str or None
        The ranked column.
    factor : str or None
        The ranked factor.

    Returns
    -------
    parsed : ParsedFormula
        The terms to fit.
    fixed_tau : dict of str to float
        Group terms with a fixed scale.

    Examples
    --------
    >>> from skhier.formula import parse_formula
    >>> p = parse_formula("y ~ 0 + x:(1|g/s)")
    >>> pri = {"x": Prior("Normal", {"mu": 0.0, "sigma": 2.0})}
    >>> fitted, fixed = apply_pooling(p, pri, "none", "x", "g:s")
    >>> fitted.formula, fixed
    ('y ~ 0 + (0 + x|g:s)', {'x|g:s': 2.0})
    """
    if pooling == "partial":
        return parsed, {}
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
        formula=_formula_text(parsed.response, intercept, common, groups, parsed.offset),
        response=parsed.response,
        intercept=intercept,
        common=tuple(common),
        group_terms=tuple(groups),
        unsupported=parsed.unsupported,
        offset=parsed.offset,
    )
    return new, fixed


def _formula_text(response, intercept, common, groups, offset=None) -> str:
    parts = ["1" if intercept else "0", *([f"offset({offset})"] if offset else []), *common]
    for t in groups:
        expr = "1" if t.column == INTERCEPT else f"0 + {t.column}"
        parts.append(f"({expr}|{factor_name(t.factors)})")
    return f"{response} ~ " + " + ".join(parts)
