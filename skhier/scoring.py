"""Predictive scoring: pointwise log likelihood, PSIS-LOO with Pareto k, model comparison.

For the Gaussian, Poisson and negative binomial families (every engine) the pointwise log
likelihood is computed here from the posterior, a block of rows at a time, and PSIS-LOO is
accumulated block by block (Pareto smoothing by skhier's compiled kernel, on its thread pool):
memory stays bounded by ``draws x chunk_rows`` whatever the number of rows (Bambi's route
builds the whole ``draws x rows`` log likelihood, 763 MB at 50,000 rows and 2,000 draws, and
out of reach at 650,000 rows). Other families (Bambi's engine only) go through Bambi's own
``compute_log_likelihood``, which holds every row's draws at once: their memory grows with
``draws x rows``.

The result is an :class:`arviz.ELPDData`, the object :func:`arviz.loo` returns, so
:func:`arviz.compare` and ArviZ's plots accept it.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
from sklearn.utils.validation import check_is_fitted

from skhier._names import rename_joined
from skhier.predictive import (
    FAMILIES,
    log_density,
    log_predictive_density,
    model_frame,
    prediction_rows,
    response_values,
)

__all__ = [
    "ParetoKWarning",
    "pointwise_log_likelihood",
    "pointwise_lppd",
    "loo",
    "elpd_data",
    "compare",
]

logger = logging.getLogger("skhier")


class ParetoKWarning(UserWarning):
    """PSIS-LOO is unreliable for some rows (Pareto k above the threshold).

    Examples
    --------
    >>> import warnings
    >>> from skhier.scoring import ParetoKWarning
    >>> issubclass(ParetoKWarning, UserWarning)
    True
    """


def _scoring_data(ranker, X, y, purpose="scoring"):
    """Return the rows to score (the training rows when X is None) and their response."""
    check_is_fitted(ranker, "idata_")
    plan = ranker.plan_
    data = plan.data if X is None else prediction_rows(plan, model_frame(plan, X))
    return data, response_values(plan, data, y, purpose=purpose)


def pointwise_log_likelihood(ranker, X=None, y=None, *, chunk_rows=2048):
    """Draws of the log likelihood of every row, shape (chains, draws, rows).

    Meant for moderate sizes (it holds ``draws x rows`` floats); :func:`loo` works block by
    block instead.

    Parameters
    ----------
    ranker : HierarchicalRanker
        A fitted ranker (Gaussian, Poisson or negative binomial family).
    X : pandas.DataFrame or None, default=None
        Rows to evaluate; None uses the training rows.
    y : array-like or None, default=None
        Their response; None reads it from ``X``.
    chunk_rows : int, default=2048
        Rows evaluated at once.

    Returns
    -------
    ndarray of shape (chains, draws, rows)
        ``log p(y_i | theta_s)``.

    Examples
    --------
    >>> from skhier import HierarchicalRanker, ScreenSimulator
    >>> from skhier.scoring import pointwise_log_likelihood
    >>> df = ScreenSimulator(n_genes=2, sgrnas_per_gene=2, n_samples=10,
    ...                      random_state=0).fit_transform()
    >>> r = HierarchicalRanker(formula="Ht ~ 0 + H0:(1|gene/sgRNA)", sampler="pymc",
    ...                        draws=50, tune=50, chains=2, n_jobs=1, random_state=0,
    ...                        on_fail="ignore").fit(df)
    >>> pointwise_log_likelihood(r).shape
    (2, 50, 40)
    """
    data, yv = _scoring_data(ranker, X, y)
    post = ranker.idata_.posterior
    n_chains, n_draws = post.sizes["chain"], post.sizes["draw"]
    out = np.empty((n_chains * n_draws, len(data)))
    for sl, ll in log_density(ranker.idata_, ranker.plan_, data, yv, block_rows=chunk_rows):
        out[:, sl] = ll
    return out.reshape(n_chains, n_draws, len(data))


def pointwise_lppd(ranker, X=None, y=None, *, chunk_rows=2048):
    """Log pointwise predictive density ``log mean_s p(y_i | theta_s)`` of every row.

    What :meth:`skhier.HierarchicalRanker.score` averages, row by row, computed a block of
    rows at a time (memory ``draws x chunk_rows``).

    Parameters
    ----------
    ranker : HierarchicalRanker
        A fitted ranker (Gaussian, Poisson or negative binomial family).
    X : pandas.DataFrame or None, default=None
        Rows to evaluate; None uses the training rows.
    y : array-like or None, default=None
        Their response; None reads it from ``X``.
    chunk_rows : int, default=2048
        Rows evaluated at once.

    Returns
    -------
    ndarray of shape (n_rows,)
        The log predictive density of each row.

    Examples
    --------
    >>> from skhier import HierarchicalRanker, ScreenSimulator
    >>> from skhier.scoring import pointwise_lppd
    >>> df = ScreenSimulator(n_genes=2, sgrnas_per_gene=2, n_samples=10,
    ...                      random_state=0).fit_transform()
    >>> r = HierarchicalRanker(formula="Ht ~ 0 + H0:(1|gene/sgRNA)", draws=100, tune=100,
    ...                        chains=2, n_jobs=1, random_state=0, on_fail="ignore").fit(df)
    >>> bool(abs(pointwise_lppd(r, df).mean() - r.score(df)) < 1e-12)
    True
    """
    data, yv = _scoring_data(ranker, X, y, purpose="the log predictive density")
    return log_predictive_density(
        ranker.idata_, ranker.plan_, data, yv, block_rows=chunk_rows
    )


def _relative_ess(posterior) -> float:
    """Mean relative efficiency over every posterior variable, as :func:`arviz.loo` uses."""
    from skhier.diagnostics.stats import ess_mean

    n_chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
    if n_chains == 1:
        return 1.0
    ess = []
    for name in posterior.data_vars:
        x = np.asarray(posterior[name], dtype=np.float64).reshape(n_chains * n_draws, -1)
        ess.append(ess_mean(np.ascontiguousarray(x.T), n_chains, n_draws))
    return float(np.mean(np.concatenate(ess)) / (n_chains * n_draws))


def elpd_data(loo_i, lppd_i, pareto_k, n_samples, *, obs_dim="row", coords=None, warn=True):
    """Assemble pointwise PSIS-LOO values into an ELPDData, as :func:`arviz.loo` does.

    Parameters
    ----------
    loo_i : ndarray of shape (n_rows,)
        Expected log predictive density of each left-out row.
    lppd_i : ndarray of shape (n_rows,)
        In-sample log pointwise predictive density of each row (only their sum enters, in
        ``p_loo = sum(lppd_i) - elpd_loo``).
    pareto_k : ndarray of shape (n_rows,)
        Pareto k of each row's importance weights.
    n_samples : int
        Posterior draws the values came from (sets ``good_k``).
    obs_dim : str, default="row"
        Name of the rows' dimension.
    coords : dict or None, default=None
        Coordinates of that dimension; None numbers the rows from 0.
    warn : bool, default=True
        Warn (:class:`ParetoKWarning`) when some rows have k above ``good_k``.

    Returns
    -------
    arviz.ELPDData
        ``elpd_loo``, ``se``, ``p_loo``, ``n_samples``, ``n_data_points``, ``warning``,
        ``loo_i``, ``pareto_k``, ``scale`` (``"log"``) and ``good_k``.

    Examples
    --------
    >>> import numpy as np
    >>> res = elpd_data(np.array([-1.0, -2.0]), np.array([-0.9, -1.8]), np.array([0.1, 0.2]),
    ...                 400)
    >>> float(res["elpd_loo"]), round(float(res["p_loo"]), 6), bool(res["warning"])
    (-3.0, 0.3, False)
    """
    import xarray as xr
    from arviz.stats.stats_utils import ELPDData

    n = len(loo_i)
    if coords is None:
        coords = {obs_dim: np.arange(n)}
    good_k = min(1 - 1 / np.log10(n_samples), 0.7)
    high = bool(np.any(pareto_k > good_k))
    if high and warn:
        bad = int(np.sum(pareto_k > good_k))
        warnings.warn(
            f"PSIS-LOO is unreliable for {bad} of {n} rows: Pareto k > {good_k:.2f} (max "
            f"{float(np.max(pareto_k)):.2f}). Those rows are influential; compare models by "
            "K-fold cross-validation instead (cross_val_score with a group-aware splitter).",
            ParetoKWarning,
            stacklevel=3,
        )
    loo_da = xr.DataArray(loo_i, dims=(obs_dim,), coords=coords, name="loo_i")
    k_da = xr.DataArray(pareto_k, dims=(obs_dim,), coords=coords, name="pareto_k")
    elpd = float(np.sum(loo_i))
    se = float(np.sqrt(n * np.var(loo_i)))
    p_loo = float(np.sum(lppd_i) - elpd)
    return ELPDData(
        data=[elpd, se, p_loo, n_samples, n, high, loo_da, k_da, "log", good_k],
        index=[
            "elpd_loo",
            "se",
            "p_loo",
            "n_samples",
            "n_data_points",
            "warning",
            "loo_i",
            "pareto_k",
            "scale",
            "good_k",
        ],
    )


def loo(ranker, *, chunk_rows=2048, reff=None):
    """PSIS-LOO of a fitted ranker: expected log predictive density of each left-out row.

    Parameters
    ----------
    ranker : HierarchicalRanker
        A fitted ranker.
    chunk_rows : int, default=2048
        Rows smoothed at once (bounds the memory to ``draws x chunk_rows`` floats).
    reff : float or None, default=None
        Relative efficiency of the draws; None computes it as :func:`arviz.loo` does.

    Returns
    -------
    arviz.ELPDData
        ``elpd_loo``, ``se``, ``p_loo``, pointwise ``loo_i`` and ``pareto_k`` (one per row),
        ``good_k`` and ``warning``; accepted by :func:`arviz.compare`.

    Warns
    -----
    ParetoKWarning
        When some rows have Pareto k above ``good_k``.

    Examples
    --------
    >>> from skhier import HierarchicalRanker, ScreenSimulator
    >>> from skhier.scoring import ParetoKWarning, loo
    >>> df = ScreenSimulator(n_genes=2, sgrnas_per_gene=2, n_samples=10,
    ...                      random_state=0).fit_transform()
    >>> r = HierarchicalRanker(formula="Ht ~ 0 + H0:(1|gene/sgRNA)", sampler="pymc",
    ...                        draws=100, tune=100, chains=2, n_jobs=1, random_state=0,
    ...                        on_fail="ignore").fit(df)
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:  # ParetoKWarning if k is high
    ...     warnings.simplefilter("always")
    ...     res = loo(r)
    >>> int(res["n_data_points"]), res["pareto_k"].shape
    (40, (40,))
    >>> bool(res["warning"]) == any(w.category is ParetoKWarning for w in caught)
    True
    """
    from skhier.diagnostics._psis import psis_loo

    check_is_fitted(ranker, "idata_")
    post = ranker.idata_.posterior
    n_samples = post.sizes["chain"] * post.sizes["draw"]
    if reff is None:
        reff = _relative_ess(post)
    n, blocks = _training_blocks(ranker, chunk_rows)
    loo_i = np.empty(n)
    lppd_i = np.empty(n)
    k = np.empty(n)
    for sl, ll in blocks:
        # (rows, draws): no copy, the blocks are laid out so
        loo_i[sl], lppd_i[sl], k[sl] = psis_loo(np.ascontiguousarray(ll.T), reff)
    logger.info("skhier: PSIS-LOO over %d rows x %d draws (reff %.2f).", n, n_samples, reff)
    return elpd_data(loo_i, lppd_i, k, n_samples)


def _training_blocks(ranker, chunk_rows):
    """Return the number of training rows and a generator of their log likelihood blocks."""
    if ranker.plan_.family in FAMILIES:
        data, yv = _scoring_data(ranker, None, None, purpose="PSIS-LOO")
        blocks = log_density(ranker.idata_, ranker.plan_, data, yv, block_rows=chunk_rows)
        return len(data), blocks
    # Other families (Bambi's engine): Bambi's model computes it, every row's draws at once.
    model = ranker.model_
    idata = ranker.idata_.copy()
    renames = getattr(model, "skhier_renames", {})
    if renames:  # back to Bambi's own names of joined factors
        idata.posterior = rename_joined(idata.posterior, renames, to_bambi=True)
    idata = model.compute_log_likelihood(idata, inplace=False)
    ll_group = idata.log_likelihood
    name = next(iter(ll_group.data_vars))
    ll = np.asarray(ll_group[name], dtype=np.float64)
    ll = ll.reshape(ll.shape[0] * ll.shape[1], -1)

    def blocks():
        for start in range(0, ll.shape[1], chunk_rows):
            sl = slice(start, min(start + chunk_rows, ll.shape[1]))
            yield sl, ll[:, sl]

    return ll.shape[1], blocks()


def compare(rankers, *, method="stacking", **kwargs):
    """Rank fitted rankers by their PSIS-LOO expected log predictive density.

    Parameters
    ----------
    rankers : dict of str to HierarchicalRanker, or list of HierarchicalRanker
        Fitted rankers on the same rows; a list is named by each ranker's ``pooling`` (or its
        position when those repeat).
    method : {"stacking", "BB-pseudo-BMA", "pseudo-BMA"}, default="stacking"
        Model weights, as in :func:`arviz.compare`.
    **kwargs
        Passed to :func:`arviz.compare`.

    Returns
    -------
    pandas.DataFrame
        One row per ranker, best first: ``rank, elpd_loo, p_loo, elpd_diff, weight, se, dse,
        warning, scale``.

    Raises
    ------
    ValueError
        If fewer than two rankers are given, or they were fitted on different numbers of rows.

    Examples
    --------
    >>> from skhier import HierarchicalRanker, ScreenSimulator, compare
    >>> df = ScreenSimulator(n_genes=3, sgrnas_per_gene=2, n_samples=10,
    ...                      random_state=0).fit_transform()
    >>> kw = dict(formula="Ht ~ 0 + H0:(1|gene/sgRNA)", sampler="pymc", draws=100, tune=100,
    ...           chains=2, n_jobs=1, random_state=0, on_fail="ignore")
    >>> fits = [HierarchicalRanker(pooling=p, **kw).fit(df) for p in ("partial", "complete")]
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # Pareto k warnings of small fits
    ...     table = compare(fits)
    >>> sorted(table.index), list(table.columns[:3])
    (['complete', 'partial'], ['rank', 'elpd_loo', 'p_loo'])
    """
    import arviz as az

    if isinstance(rankers, dict):
        named = dict(rankers)
    else:
        rankers = list(rankers)
        names = [getattr(r, "pooling", str(i)) for i, r in enumerate(rankers)]
        if len(set(names)) < len(names):
            names = [f"{n}_{i}" for i, n in enumerate(names)]
        named = dict(zip(names, rankers, strict=True))
    if len(named) < 2:
        raise ValueError(f"compare needs at least two fitted rankers, got {len(named)}.")
    results = {name: r.loo_ for name, r in named.items()}
    sizes = {name: int(res["n_data_points"]) for name, res in results.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(
            f"the rankers were fitted on different numbers of rows ({sizes}); LOO compares "
            "models of the same data."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Pareto k was warned about per ranker
        return az.compare(results, ic="loo", method=method, **kwargs)
