"""The verdict of the sampler checks: :class:`Diagnostics`, its text and its JSON form."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from skhier._json import jsonable
from skhier.diagnostics.stats import STAT_COLUMNS

#: Default thresholds (Vehtari et al. 2021; Betancourt 2016).
RHAT_MAX = 1.01
MIN_ESS_PER_CHAIN = 100
MIN_EBFMI = 0.3
#: Default maximum tree depth of PyMC NUTS, nutpie and numpyro.
DEFAULT_MAX_TREEDEPTH = 10
CHECK_COLUMNS = ("check", "value", "threshold", "passed", "status", "severity", "detail")

# --------------------------------------------------------------------------------------------
# Verdict
# --------------------------------------------------------------------------------------------


def _fmt(value, digits: int = 3, grouped_from: float = 100) -> str:
    """Format a number: n/a if missing, thousands separators and no decimals from grouped_from."""
    if value is None:
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    value = float(value)
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if abs(value) >= grouped_from:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _worst(table: pd.DataFrame, column: str, bad: np.ndarray, largest: bool, unit: str = ""):
    sub = table.loc[bad, column]
    sub = sub.sort_values(ascending=not largest, na_position="first")
    digits = 4 if column == "r_hat" else 3
    names = [f"{idx} ({_fmt(val, digits)})" for idx, val in sub.head(3).items()]
    text = ", ".join(names)
    extra = len(sub) - len(names)
    if extra > 0:
        text += f" and {extra:,} more {unit or 'parameters'}"
    return text


def _param_hint(info: dict, verb: str = "use") -> str:
    """Suggest the non-centered parametrization for the centered levels, if known."""
    par = info.get("parametrization")
    if isinstance(par, dict):
        centered = [str(k) for k, v in par.items() if str(v) == "centered"]
        if centered:
            which = ", ".join(f"'{c}'" for c in centered)
            word = "level" if len(centered) == 1 else "levels"
            return f"{verb} parametrization='noncentered' for {word} {which}"
        if par and all(str(v) in ("noncentered", "non-centered") for v in par.values()):
            return "reparametrize the model (all levels are already non-centered)"
        return "reparametrize the model"
    if isinstance(par, str) and par == "centered":
        return f"{verb} parametrization='noncentered'"
    if isinstance(par, str) and par in ("noncentered", "non-centered"):
        return "reparametrize the model (the hierarchy is already non-centered)"
    return "reparametrize the hierarchy (non-centered)"


def _now(info: dict, key: str) -> str:
    value = info.get(key)
    return f" (now {key}={value})" if value is not None else ""


@dataclass(repr=False, eq=False)
class Diagnostics:
    """Sampler health of a posterior: statistics, checks, verdict and what to do.

    Built by :func:`diagnose`; :func:`check_diagnostics` turns it into a warning or an error.

    Parameters
    ----------
    passed : bool
        True when every error-level check passed (R-hat, bulk and tail ESS, divergences,
        E-BFMI). Tree-depth saturation only warns.
    rhat_max : float
        Largest rank-normalized split R-hat over the checked parameters (NaN if unavailable).
    ess_bulk_min, ess_tail_min : float
        Smallest bulk and tail ESS (total over chains).
    ess_bulk_min_per_chain, ess_tail_min_per_chain : float
        The same divided by the number of chains.
    n_chains, n_draws : int
        Chains and post-warm-up draws per chain.
    n_parameters : int
        Scalar parameter elements checked.
    n_divergent : int or None
        Divergent transitions after warm-up; None when the sampler does not record them.
    divergent_per_chain : ndarray of int or None
        Divergences per chain.
    n_treedepth_hits : int or None
        Transitions that hit the maximum tree depth.
    max_treedepth : int or None
        The tree-depth limit used for ``n_treedepth_hits``: the ``max_treedepth`` given to
        :func:`diagnose`, else the depth of the saturated transitions, else 10 when only a depth
        statistic exists (numpyro); None when the sampler's own flag shows no hit.
    ebfmi : ndarray of float or None
        E-BFMI per chain; None without an ``energy`` statistic.
    table : DataFrame
        One row per scalar parameter element (index like ``H0|gene[G01]``) with columns
        ``variable, mean, sd, mcse_mean, ess_bulk, ess_tail, r_hat``.
    checks : DataFrame
        One row per check with columns ``check, value, threshold, passed, status, severity,
        detail``; ``status`` is ``"ok"``, ``"fail"``, ``"warn"`` or ``"n/a"``.
    messages : list of str
        The actions a user should take, one per failed check.
    thresholds : dict
        The thresholds used (``rhat_max``, ``min_ess_per_chain``, ``min_ebfmi``,
        ``allow_divergences``, ``max_treedepth``).
    info : dict
        Context filled by the estimator (``engine``, ``sampler``, ``target_accept``, ``tune``,
        ``draws``, ``parametrization`` per level, ``attempts`` of refits, ranking MCSE, ...).
        The messages use it to be specific; call :meth:`update_info` to change it.

    See Also
    --------
    diagnose : Compute a Diagnostics from an InferenceData.
    check_diagnostics : Warn or raise on a failed verdict.

    Examples
    --------
    >>> import numpy as np, arviz as az
    >>> from skhier.diagnostics import diagnose
    >>> rng = np.random.default_rng(1)
    >>> idata = az.from_dict(
    ...     posterior={"mu": rng.normal(size=(2, 400))},
    ...     sample_stats={"diverging": np.eye(2, 400, dtype=bool)},
    ... )
    >>> diag = diagnose(idata, info={"target_accept": 0.8})
    >>> diag.passed, diag.n_divergent, diag.divergent_per_chain.tolist()
    (False, 2, [1, 1])
    >>> print(diag.messages[0].split(": ")[0])
    2 divergent transitions after warm-up (chain 0
    >>> diag.messages[0].split("): ")[1]
    'increase target_accept (now 0.8) or reparametrize the hierarchy (non-centered)'
    """

    passed: bool
    rhat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    ess_bulk_min_per_chain: float
    ess_tail_min_per_chain: float
    n_chains: int
    n_draws: int
    n_parameters: int
    n_divergent: int | None
    divergent_per_chain: np.ndarray | None
    n_treedepth_hits: int | None
    max_treedepth: int | None
    ebfmi: np.ndarray | None
    table: pd.DataFrame
    checks: pd.DataFrame
    messages: list[str] = field(default_factory=list)
    thresholds: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    # -- derived -----------------------------------------------------------------------------
    @property
    def failed_checks(self) -> list[str]:
        """Names of the checks that failed or warned.

        Returns
        -------
        names : list of str
            In check order; error-level failures and warnings alike.

        Examples
        --------
        >>> import numpy as np, arviz as az
        >>> from skhier.diagnostics import diagnose
        >>> idata = az.from_dict(posterior={"mu": np.random.default_rng(0).normal(size=(4, 300))})
        >>> diagnose(idata).failed_checks
        []
        """
        return [str(c) for c in self.checks.loc[~self.checks["passed"], "check"]]

    @property
    def has_warnings(self) -> bool:
        """Whether a warning-level check (tree depth) failed.

        Returns
        -------
        has_warnings : bool
            True when a check that does not affect :attr:`passed` failed.

        Examples
        --------
        >>> import numpy as np, arviz as az
        >>> from skhier.diagnostics import diagnose
        >>> idata = az.from_dict(
        ...     posterior={"mu": np.random.default_rng(0).normal(size=(4, 300))},
        ...     sample_stats={"tree_depth": np.full((4, 300), 10)},
        ... )
        >>> d = diagnose(idata)
        >>> d.passed, d.has_warnings
        (True, True)
        """
        warn = (self.checks["severity"] == "warning") & ~self.checks["passed"]
        return bool(warn.any())

    def update_info(self, **info) -> Diagnostics:
        """Add context (sampler settings, parametrization, attempts) and refresh the messages.

        Parameters
        ----------
        **info
            Items merged into :attr:`info`: e.g. ``target_accept=0.8``, ``tune=1000``,
            ``draws=1000``, ``parametrization={"gene": "centered"}``, ``engine="collapsed"``,
            ``sampler="nutpie"``, ``attempts=[...]``.

        Returns
        -------
        self : Diagnostics
            With :attr:`info` updated and :attr:`messages` rebuilt.

        Examples
        --------
        >>> import numpy as np, arviz as az
        >>> from skhier.diagnostics import diagnose
        >>> idata = az.from_dict(
        ...     posterior={"mu": np.random.default_rng(0).normal(size=(2, 300))},
        ...     sample_stats={"diverging": np.eye(2, 300, dtype=bool)},
        ... )
        >>> diag = diagnose(idata).update_info(parametrization={"gene": "centered"})
        >>> "parametrization='noncentered' for level 'gene'" in diag.messages[0]
        True
        """
        self.info.update(info)
        self.messages = _build_messages(self.checks, self.info, self.thresholds, self.n_chains)
        return self

    # -- text --------------------------------------------------------------------------------
    def summary(self) -> str:
        """Readable verdict: header, one line per check and the actions to take.

        Returns
        -------
        text : str
            What ``skhier demo`` prints after a fit.

        Examples
        --------
        >>> import numpy as np, arviz as az
        >>> from skhier.diagnostics import diagnose
        >>> idata = az.from_dict(posterior={"mu": np.random.default_rng(0).normal(size=(4, 300))})
        >>> print(diagnose(idata).summary().splitlines()[0])
        Sampler diagnostics: PASSED
        """
        n_fail = int((~self.checks["passed"] & (self.checks["severity"] == "error")).sum())
        n_warn = int((~self.checks["passed"] & (self.checks["severity"] == "warning")).sum())
        if self.passed:
            verdict = "PASSED" + (f" with {n_warn} warning{'s' * (n_warn > 1)}" if n_warn else "")
        else:
            verdict = f"FAILED ({n_fail} of {len(self.checks)} checks)"
        lines = [f"Sampler diagnostics: {verdict}", self._context()]
        rows = [("check", "value", "threshold", "status", "detail")]
        ops = {
            "r_hat": "<=",
            "ess_bulk": ">=",
            "ess_tail": ">=",
            "divergences": "<=",
            "ebfmi": ">=",
            "tree_depth": "<=",
            "finite": "<=",
        }
        for rec in self.checks.itertuples(index=False):
            threshold = f"{ops.get(rec.check, '')} {_fmt(rec.threshold)}".strip()
            value = _fmt(rec.value, 4 if rec.check == "r_hat" else 3)
            rows.append((rec.check, value, threshold, rec.status, rec.detail))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            cells = [r[i].ljust(widths[i]) for i in range(4)]
            lines.append("  " + "  ".join(cells) + ("  " + r[4] if r[4] else ""))
        if self.messages:
            lines.append("What to do:")
            lines.extend(f"  - {m}" for m in self.messages)
        return "\n".join(line.rstrip() for line in lines)

    def __repr__(self) -> str:
        # One line, so that lists, dicts and logs of verdicts stay readable; print() and
        # IPython's pretty printer show the full summary().
        from skhier._repr import diagnostics_repr

        return diagnostics_repr(self)

    def __str__(self) -> str:
        return self.summary()

    def _repr_pretty_(self, printer, cycle) -> None:
        # IPython's text display (a terminal, or text/plain beside the HTML in a notebook).
        printer.text("Diagnostics(...)" if cycle else self.summary())

    def _repr_html_(self) -> str:
        """Notebook display: the verdict, one row per check and the actions to take.

        Returns
        -------
        str
            A self-contained HTML ``<div>`` (scoped style, no script, labels escaped).
        """
        from skhier._repr import diagnostics_html

        return diagnostics_html(self)

    def _context(self) -> str:
        """Describe the size of the posterior and the estimator's context on one line."""
        context = (
            f"{self.n_chains:,} chain{'s' * (self.n_chains != 1)} x {self.n_draws:,} draws, "
            f"{self.n_parameters:,} parameter{'s' * (self.n_parameters != 1)} checked"
        )
        extras = []
        for key, value in self.info.items():
            if key == "attempts" and isinstance(value, (list, tuple)):
                extras.append(f"attempts={len(value)}")
            elif value == "":
                continue
            elif isinstance(value, (str, int, float, np.integer, np.floating)) and not isinstance(
                value, bool
            ):
                extras.append(f"{key}={_fmt(value) if not isinstance(value, str) else value}")
            elif isinstance(value, dict) and all(
                isinstance(v, (str, int, float)) for v in value.values()
            ):
                inner = ", ".join(f"{k}: {v}" for k, v in value.items())
                extras.append(f"{key}={{{inner}}}")
        if extras:
            context += " | " + ", ".join(extras)
        return context

    # -- serialization -----------------------------------------------------------------------
    def to_dict(self, include_table: bool = False) -> dict[str, Any]:
        """JSON-ready dictionary of the verdict.

        Parameters
        ----------
        include_table : bool, default=False
            Also include the per-parameter :attr:`table` (as ``{"index": [...], column:
            [...]}``); off by default because it has one row per parameter.

        Returns
        -------
        d : dict
            Plain Python values only (arrays as lists, non-finite floats as None), so
            ``json.dumps`` works; :meth:`from_dict` rebuilds a Diagnostics.

        Examples
        --------
        >>> import json
        >>> import numpy as np, arviz as az
        >>> from skhier.diagnostics import diagnose
        >>> idata = az.from_dict(posterior={"mu": np.random.default_rng(0).normal(size=(4, 300))})
        >>> d = diagnose(idata).to_dict()
        >>> d["passed"], d["n_chains"], len(json.dumps(d)) > 0
        (True, 4, True)
        """
        out: dict[str, Any] = {
            "passed": bool(self.passed),
            "rhat_max": jsonable(self.rhat_max),
            "ess_bulk_min": jsonable(self.ess_bulk_min),
            "ess_tail_min": jsonable(self.ess_tail_min),
            "ess_bulk_min_per_chain": jsonable(self.ess_bulk_min_per_chain),
            "ess_tail_min_per_chain": jsonable(self.ess_tail_min_per_chain),
            "n_chains": int(self.n_chains),
            "n_draws": int(self.n_draws),
            "n_parameters": int(self.n_parameters),
            "n_divergent": jsonable(self.n_divergent),
            "divergent_per_chain": jsonable(self.divergent_per_chain),
            "n_treedepth_hits": jsonable(self.n_treedepth_hits),
            "max_treedepth": jsonable(self.max_treedepth),
            "ebfmi": jsonable(self.ebfmi),
            "checks": [
                {k: jsonable(v) for k, v in rec.items()} for rec in self.checks.to_dict("records")
            ],
            "messages": list(self.messages),
            "thresholds": jsonable(self.thresholds),
            "info": jsonable(self.info),
        }
        if include_table:
            out["table"] = {"index": [str(i) for i in self.table.index]}
            for col in self.table.columns:
                out["table"][col] = jsonable(self.table[col].to_numpy())
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Diagnostics:
        """Rebuild a Diagnostics from :meth:`to_dict` output.

        Parameters
        ----------
        d : dict
            As returned by :meth:`to_dict` (possibly through JSON).

        Returns
        -------
        diag : Diagnostics
            With an empty :attr:`table` unless ``d`` has one.

        Examples
        --------
        >>> import numpy as np, arviz as az
        >>> from skhier.diagnostics import Diagnostics, diagnose
        >>> idata = az.from_dict(posterior={"mu": np.random.default_rng(0).normal(size=(4, 300))})
        >>> diag = diagnose(idata)
        >>> Diagnostics.from_dict(diag.to_dict()).passed
        True
        """

        def arr(v, dtype):
            return None if v is None else np.asarray(v, dtype=dtype)

        def num(v):
            return np.nan if v is None else float(v)

        if "table" in d:
            tab = dict(d["table"])
            index = tab.pop("index")
            table = pd.DataFrame(tab, index=pd.Index(index, name="parameter"))
            for col in STAT_COLUMNS:
                if col in table:
                    table[col] = table[col].astype(float)
        else:
            table = _empty_table()
        checks = pd.DataFrame(d.get("checks", []), columns=list(CHECK_COLUMNS))
        checks["value"] = checks["value"].map(num).astype(float)
        checks["threshold"] = checks["threshold"].map(num).astype(float)
        checks["passed"] = checks["passed"].astype(bool)
        return cls(
            passed=bool(d["passed"]),
            rhat_max=num(d.get("rhat_max")),
            ess_bulk_min=num(d.get("ess_bulk_min")),
            ess_tail_min=num(d.get("ess_tail_min")),
            ess_bulk_min_per_chain=num(d.get("ess_bulk_min_per_chain")),
            ess_tail_min_per_chain=num(d.get("ess_tail_min_per_chain")),
            n_chains=int(d["n_chains"]),
            n_draws=int(d["n_draws"]),
            n_parameters=int(d.get("n_parameters", len(table))),
            n_divergent=d.get("n_divergent"),
            divergent_per_chain=arr(d.get("divergent_per_chain"), int),
            n_treedepth_hits=d.get("n_treedepth_hits"),
            max_treedepth=d.get("max_treedepth"),
            ebfmi=arr([num(v) for v in d["ebfmi"]] if d.get("ebfmi") is not None else None, float),
            table=table,
            checks=checks,
            messages=list(d.get("messages", [])),
            thresholds=dict(d.get("thresholds", {})),
            info=dict(d.get("info", {})),
        )


CHECK_COLUMNS = ("check", "value", "threshold", "passed", "status", "severity", "detail")


def _empty_table() -> pd.DataFrame:
    table = pd.DataFrame(
        {"variable": pd.Series([], dtype=object)}
        | {c: pd.Series([], dtype=float) for c in STAT_COLUMNS}
    )
    table.index.name = "parameter"
    return table


def _build_messages(checks: pd.DataFrame, info: dict, thresholds: dict, n_chains: int) -> list:
    """One actionable sentence per failed check, using the estimator's context in ``info``."""
    msgs = []
    for rec in checks.itertuples(index=False):
        if rec.passed:
            continue
        where = rec.detail
        if rec.check == "finite":
            msgs.append(
                f"non-finite draws (NaN or inf) in {where}: check the model and data for "
                "overflow or invalid values"
            )
        elif rec.check == "r_hat":
            msgs.append(
                f"R-hat {_fmt(rec.value, 4)} > {_fmt(rec.threshold)} for {where}: the chains "
                "disagree; run more warm-up and draws or more chains"
                f"{_now(info, 'tune')}, or {_param_hint(info)}"
            )
        elif rec.check in ("ess_bulk", "ess_tail"):
            kind = "bulk" if rec.check == "ess_bulk" else "tail"
            per_chain = thresholds.get("min_ess_per_chain", MIN_ESS_PER_CHAIN)
            msgs.append(
                f"{kind} ESS {_fmt(rec.value)} < {_fmt(rec.threshold)} ({_fmt(per_chain)} per "
                f"chain x {n_chains} chains) for {where}: run more draws{_now(info, 'draws')} or "
                f"{_param_hint(info)}"
            )
        elif rec.check == "divergences":
            target = info.get("target_accept")
            if target is not None and float(target) >= 0.99:
                action = f"target_accept is already {target}: {_param_hint(info)}"
            else:
                now = f" (now {target})" if target is not None else ""
                action = f"increase target_accept{now} or {_param_hint(info)}"
            msgs.append(
                f"{_fmt(int(rec.value))} divergent transitions after warm-up ({where}; allowed: "
                f"{_fmt(int(rec.threshold))}): {action}"
            )
        elif rec.check == "ebfmi":
            msgs.append(
                f"E-BFMI < {_fmt(rec.threshold)} in {where}: the sampler explores the energy "
                "distribution poorly (heavy tails or a funnel); "
                f"{_param_hint(info)} or run a longer warm-up{_now(info, 'tune')}"
            )
        elif rec.check == "tree_depth":
            msgs.append(
                f"{where}: sampling is slow (not necessarily biased); {_param_hint(info)}, "
                "rescale the predictors, or raise max_treedepth"
            )
    return msgs
