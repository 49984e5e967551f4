"""The sampler checks: read a posterior, compute its statistics, judge them, act on it."""

from __future__ import annotations

import logging
import time
import warnings

import numpy as np
import pandas as pd

from skhier._validation import check_choice
from skhier.diagnostics import _read
from skhier.diagnostics.exceptions import ConvergenceError, SamplerConvergenceWarning
from skhier.diagnostics.stats import STAT_COLUMNS, _stats_matrix, bfmi
from skhier.diagnostics.verdict import (
    CHECK_COLUMNS,
    DEFAULT_MAX_TREEDEPTH,
    MIN_EBFMI,
    MIN_ESS_PER_CHAIN,
    RHAT_MAX,
    Diagnostics,
    _build_messages,
    _empty_table,
    _fmt,
    _worst,
)

logger = logging.getLogger("skhier")

#: What a fit does when a check fails.
ON_FAIL = ("warn", "raise", "refit", "ignore")


def diagnose(
    idata,
    var_names=None,
    *,
    filter_vars: str | None = None,
    rhat_max: float = RHAT_MAX,
    min_ess_per_chain: float = MIN_ESS_PER_CHAIN,
    min_ebfmi: float = MIN_EBFMI,
    max_treedepth: int | None = None,
    allow_divergences: int = 0,
    info: dict | None = None,
    n_jobs: int | None = None,
) -> Diagnostics:
    """Check the health of a posterior sample: R-hat, ESS, divergences, E-BFMI, tree depth.

    Parameters
    ----------
    idata : arviz.InferenceData or xarray.Dataset
        A posterior with ``chain`` and ``draw`` dimensions; sampler statistics are read from the
        ``sample_stats`` group (never from ``warmup_sample_stats``). A Dataset is treated as the
        posterior alone.
    var_names : str or list of str, default=None
        Variables to check (default: all posterior variables except PyMC's unconstrained copies
        whose names end in ``__``, such as ``tau_log__``). Names starting with ``~`` are
        excluded, as in ArviZ.
    filter_vars : {None, "like", "regex"}, default=None
        How ``var_names`` match: exact names, substrings or regular expressions (``re.search``),
        as in ArviZ.
    rhat_max : float, default=1.01
        Largest acceptable rank-normalized split R-hat.
    min_ess_per_chain : float, default=100
        Smallest acceptable bulk and tail ESS *per chain*: the total ESS of every parameter must
        be at least ``min_ess_per_chain * n_chains`` (400 for 4 chains).
    min_ebfmi : float, default=0.3
        Smallest acceptable E-BFMI in every chain.
    max_treedepth : int, default=None
        Tree-depth limit the sampler used. None reads the saturation flag the sampler records
        (PyMC's ``reached_max_treedepth``, nutpie's ``maxdepth_reached``) or, with only a depth
        statistic (numpyro's ``tree_depth``), counts depths >= 10, the samplers' default.
    allow_divergences : int, default=0
        Largest acceptable number of divergent transitions after warm-up.
    info : dict, default=None
        Context for the messages (see :attr:`Diagnostics.info`).
    n_jobs : int, default=None
        Threads computing the per-parameter statistics (None: 1; -1: all cores).

    Returns
    -------
    diag : Diagnostics
        Statistics, per-parameter table, checks, verdict and messages.

    Raises
    ------
    ValueError
        If there is no posterior or ``var_names`` selects nothing.
    KeyError
        If a name in ``var_names`` (``filter_vars=None``) is not a posterior variable.

    See Also
    --------
    check_diagnostics : Warn or raise on a failed verdict.
    convergence_stats : The per-parameter statistics on a plain array.

    Notes
    -----
    Thresholds (Vehtari et al. 2021, stricter than older advice): R-hat <= 1.01; bulk and tail
    ESS >= 100 per chain (ESS_total >= 100 x chains); no divergences; E-BFMI >= 0.3 per chain;
    no tree-depth saturation (a warning only: it costs time, not validity).

    Sampler statistics by sampler:

    ======================  ============  ===================================  =========
    sampler                 divergences   tree depth                           energy
    ======================  ============  ===================================  =========
    PyMC NUTS               diverging     reached_max_treedepth, tree_depth    energy
    nutpie                  diverging     maxdepth_reached, depth              energy
    numpyro (through PyMC)  diverging     tree_depth (>= max_treedepth)        energy
    ======================  ============  ===================================  =========

    PyMC's cumulative ``divergences`` counter is not used. A missing statistic is reported as
    not available and does not fail the verdict. Parameters whose draws are all equal (constants)
    are not counted against R-hat; non-finite draws fail a ``finite`` check.

    Examples
    --------
    >>> import numpy as np, arviz as az
    >>> from skhier.diagnostics import diagnose
    >>> rng = np.random.default_rng(0)
    >>> mu = rng.normal(size=(4, 500))
    >>> mu[3] += 5.0  # one chain stuck elsewhere
    >>> diag = diagnose(az.from_dict(posterior={"mu": mu}))
    >>> diag.passed, diag.failed_checks
    (False, ['r_hat', 'ess_bulk', 'ess_tail'])
    >>> diag.messages[0].startswith("R-hat")
    True
    """
    t0 = time.perf_counter()
    post = _read.posterior(idata)
    for dim in ("chain", "draw"):
        if dim not in post.dims:
            raise ValueError(f"The posterior has no '{dim}' dimension; dims: {dict(post.sizes)}.")
    n_chains = int(post.sizes["chain"])
    n_draws = int(post.sizes["draw"])
    if n_chains == 0 or n_draws == 0:
        raise ValueError(f"The posterior is empty: {n_chains} chains x {n_draws} draws.")
    names = [str(n) for n in post.data_vars]
    selected = _read.select_vars(names, var_names, filter_vars)

    labels: list[str] = []
    variables: list[str] = []
    columns: dict[str, list[np.ndarray]] = {c: [] for c in STAT_COLUMNS}
    constant_parts = []
    nonfinite_parts = []
    for name in selected:
        da = post[name]
        if "chain" not in da.dims or "draw" not in da.dims:
            continue
        da = da.transpose("chain", "draw", ...)
        values = np.asarray(da.values)
        if values.dtype == bool or np.issubdtype(values.dtype, np.integer):
            values = values.astype(np.float64)
        if not np.issubdtype(values.dtype, np.number):
            continue
        flat = values.reshape(n_chains, n_draws, -1)
        stats = _stats_matrix(flat, n_jobs)
        for c in STAT_COLUMNS:
            columns[c].append(stats[c])
        lab = _read.labels(name, da)
        labels.extend(lab)
        variables.extend([name] * len(lab))
        nonfinite_parts.append(~stats["finite"])
        constant_parts.append(stats["finite"] & (stats["ptp"] == 0))
    if labels:
        table = pd.DataFrame(
            {"variable": variables} | {c: np.concatenate(columns[c]) for c in STAT_COLUMNS},
            index=pd.Index(labels, name="parameter"),
        )
        nonfinite = np.concatenate(nonfinite_parts)
        constant = np.concatenate(constant_parts)
    else:
        table = _empty_table()
        nonfinite = np.zeros(0, dtype=bool)
        constant = np.zeros(0, dtype=bool)

    thresholds = {
        "rhat_max": float(rhat_max),
        "min_ess_per_chain": float(min_ess_per_chain),
        "min_ebfmi": float(min_ebfmi),
        "allow_divergences": int(allow_divergences),
        "max_treedepth": max_treedepth,
    }
    checks = []

    def add(check, value, threshold, passed, status, severity, detail=""):
        checks.append((check, value, threshold, bool(passed), status, severity, detail))

    n_par = len(table)
    random_rows = ~constant & ~nonfinite
    # finite draws (only listed when violated)
    if nonfinite.any():
        bad = nonfinite
        names_bad = list(table.index[bad][:3])
        more = int(bad.sum()) - len(names_bad)
        detail = ", ".join(names_bad) + (f" and {more:,} more parameters" if more > 0 else "")
        add("finite", float(bad.sum()), 0.0, False, "fail", "error", detail)

    # R-hat
    rhat = table["r_hat"].to_numpy(dtype=float)
    if n_chains < 2 or n_draws < 4 or not random_rows.any():
        reason = (
            "needs >= 2 chains"
            if n_chains < 2
            else ("needs >= 4 draws" if n_draws < 4 else "no random parameter")
        )
        add("r_hat", np.nan, rhat_max, True, "n/a", "error", f"not available: {reason}")
        rhat_obs = np.nan
    else:
        r = np.where(random_rows, rhat, -np.inf)
        r = np.where(random_rows & np.isnan(rhat), np.inf, r)
        rhat_obs = float(r.max())
        bad = random_rows & ~(rhat <= rhat_max)
        ok = not bad.any()
        detail = (
            f"worst: {table.index[int(np.argmax(r))]}"
            if ok
            else _worst(table, "r_hat", bad, largest=True)
        )
        add("r_hat", rhat_obs, rhat_max, ok, "ok" if ok else "fail", "error", detail)

    # ESS (bulk and tail): total >= min_ess_per_chain * n_chains
    ess_min = {}
    ess_threshold = float(min_ess_per_chain) * n_chains
    for kind in ("ess_bulk", "ess_tail"):
        vals = table[kind].to_numpy(dtype=float)
        rows = ~nonfinite
        if n_draws < 4 or not rows.any():
            reason = "needs >= 4 draws" if n_draws < 4 else "no parameter with finite draws"
            add(kind, np.nan, ess_threshold, True, "n/a", "error", f"not available: {reason}")
            ess_min[kind] = np.nan
            continue
        v = np.where(rows, vals, np.inf)
        v = np.where(rows & np.isnan(vals), -np.inf, v)
        ess_min[kind] = float(v.min())
        bad = rows & ~(vals >= ess_threshold)
        ok = not bad.any()
        per = f"{_fmt(min_ess_per_chain)}/chain x {n_chains}"
        detail = (
            f"{per}; worst: {table.index[int(np.argmin(v))]}"
            if ok
            else _worst(table, kind, bad, largest=False)
        )
        add(kind, ess_min[kind], ess_threshold, ok, "ok" if ok else "fail", "error", detail)

    ss = _read.sample_stats(idata)

    # divergences
    _, div = _read.stat_array(ss, _read.DIVERGING_NAMES)
    if div is None:
        n_div, div_chain = None, None
        add("divergences", np.nan, allow_divergences, True, "n/a", "error", "not recorded")
    else:
        div = _read.reduce_extra(div.astype(bool), np.any)
        div_chain = div.sum(axis=1).astype(int)
        n_div = int(div_chain.sum())
        ok = n_div <= allow_divergences
        per_chain = ", ".join(f"chain {i}: {k}" for i, k in enumerate(div_chain) if k)
        add(
            "divergences",
            float(n_div),
            float(allow_divergences),
            ok,
            "ok" if ok else "fail",
            "error",
            per_chain,
        )

    # E-BFMI
    _, energy = _read.stat_array(ss, _read.ENERGY_NAMES)
    if energy is None or energy.ndim != 2:
        ebfmi = None
        add("ebfmi", np.nan, min_ebfmi, True, "n/a", "error", "no energy statistic")
    else:
        ebfmi = bfmi(energy)
        low = ~(ebfmi >= min_ebfmi)
        ok = not low.any()
        if ok:
            detail = f"min over {len(ebfmi)} chain{'s' * (len(ebfmi) != 1)}"
        else:
            detail = ", ".join(f"chain {i} ({_fmt(ebfmi[i], 2)})" for i in np.flatnonzero(low))
        value = float(np.nanmin(ebfmi)) if np.isfinite(ebfmi).any() else np.nan
        add("ebfmi", value, min_ebfmi, ok, "ok" if ok else "fail", "error", detail)

    # tree depth (warning only)
    _, flag = _read.stat_array(ss, _read.TREEDEPTH_FLAG_NAMES)
    _, depth = _read.stat_array(ss, _read.TREEDEPTH_NAMES)
    if depth is not None:
        depth = _read.reduce_extra(depth, np.max)
    if flag is not None:
        flag = _read.reduce_extra(flag.astype(bool), np.any)
    limit = max_treedepth
    if max_treedepth is not None and depth is not None:
        hits = depth >= max_treedepth
    elif flag is not None:
        hits = flag
        if limit is None and depth is not None and hits.any():
            limit = int(depth[hits].max())
    elif depth is not None:
        limit = DEFAULT_MAX_TREEDEPTH
        hits = depth >= limit
    else:
        hits = None
    if hits is None:
        n_hits = None
        add("tree_depth", np.nan, 0.0, True, "n/a", "warning", "not recorded")
    else:
        n_hits = int(hits.sum())
        total = int(hits.size)
        ok = n_hits == 0
        lim = f"maximum tree depth {limit}" if limit is not None else "maximum tree depth"
        if ok:
            deepest = f"deepest tree {int(depth.max())}" if depth is not None else ""
            detail = ", ".join(x for x in (deepest, f"limit {limit}" if limit else "") if x)
        else:
            share = 100.0 * n_hits / total
            detail = f"{n_hits:,} of {total:,} transitions ({share:.1f}%) hit the {lim}"
        add("tree_depth", float(n_hits), 0.0, ok, "ok" if ok else "warn", "warning", detail)

    checks_df = pd.DataFrame(checks, columns=list(CHECK_COLUMNS))
    checks_df["value"] = checks_df["value"].astype(float)
    checks_df["threshold"] = checks_df["threshold"].astype(float)
    checks_df["passed"] = checks_df["passed"].astype(bool)
    passed = bool(checks_df.loc[checks_df["severity"] == "error", "passed"].all())
    info = dict(info or {})
    messages = _build_messages(checks_df, info, thresholds, n_chains)
    diag = Diagnostics(
        passed=passed,
        rhat_max=rhat_obs,
        ess_bulk_min=ess_min["ess_bulk"],
        ess_tail_min=ess_min["ess_tail"],
        ess_bulk_min_per_chain=ess_min["ess_bulk"] / n_chains,
        ess_tail_min_per_chain=ess_min["ess_tail"] / n_chains,
        n_chains=n_chains,
        n_draws=n_draws,
        n_parameters=n_par,
        n_divergent=n_div,
        divergent_per_chain=div_chain,
        n_treedepth_hits=n_hits,
        max_treedepth=limit,
        ebfmi=ebfmi,
        table=table,
        checks=checks_df,
        messages=messages,
        thresholds=thresholds,
        info=info,
    )
    logger.debug(
        "diagnose: %d parameters x %d chains x %d draws in %.2f s (passed=%s)",
        n_par,
        n_chains,
        n_draws,
        time.perf_counter() - t0,
        passed,
    )
    return diag


def check_diagnostics(diag: Diagnostics, on_fail: str = "warn", *, stacklevel: int = 2) -> None:
    """Act on a verdict: warn, raise or stay silent when a check fails.

    Parameters
    ----------
    diag : Diagnostics
        As returned by :func:`diagnose`.
    on_fail : {"warn", "raise", "refit", "ignore"}, default="warn"
        ``"warn"`` issues a :class:`SamplerConvergenceWarning` listing what to do; ``"raise"``
        raises :class:`ConvergenceError`; ``"ignore"`` does nothing. ``"refit"`` is the
        estimator's business (it refits and then judges the last attempt) and acts like
        ``"warn"`` here. A tree-depth warning alone never raises, it warns (except with
        ``"ignore"``).
    stacklevel : int, default=2
        Passed to :func:`warnings.warn`; 2 points at the caller of this function.

    Raises
    ------
    ConvergenceError
        With ``on_fail="raise"`` when :attr:`Diagnostics.passed` is False.
    ValueError
        If ``on_fail`` is not one of the choices.
    TypeError
        If ``diag`` is not a :class:`Diagnostics`.

    See Also
    --------
    diagnose : Build the verdict.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np, arviz as az
    >>> from skhier.diagnostics import check_diagnostics, diagnose, SamplerConvergenceWarning
    >>> mu = np.random.default_rng(0).normal(size=(4, 500))
    >>> mu[0] += 3.0
    >>> diag = diagnose(az.from_dict(posterior={"mu": mu}))
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     check_diagnostics(diag, on_fail="warn")
    >>> caught[0].category is SamplerConvergenceWarning
    True
    >>> check_diagnostics(diag, on_fail="ignore")  # silent
    """
    check_choice("on_fail", on_fail, ON_FAIL)
    if not isinstance(diag, Diagnostics):
        raise TypeError(
            f"check_diagnostics expects a Diagnostics (from skhier.diagnose); got "
            f"{type(diag).__name__}."
        )
    if on_fail == "ignore":
        logger.info("Sampler diagnostics (ignored): passed=%s", diag.passed)
        return
    if not diag.passed:
        failed = [
            str(c)
            for c in diag.checks.loc[
                ~diag.checks["passed"] & (diag.checks["severity"] == "error"), "check"
            ]
        ]
        text = f"Sampler diagnostics failed ({', '.join(failed)}). " + " | ".join(diag.messages)
        if on_fail == "raise":
            raise ConvergenceError(text, diagnostics=diag)
        warnings.warn(text, SamplerConvergenceWarning, stacklevel=stacklevel)
    elif diag.has_warnings:
        text = "Sampler diagnostics passed with warnings. " + " | ".join(diag.messages)
        warnings.warn(text, SamplerConvergenceWarning, stacklevel=stacklevel)
    else:
        logger.info("Sampler diagnostics passed.")
