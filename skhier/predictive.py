"""Posterior predictions: the linear predictor, log densities, moments and predictive draws.

Functions of a fit (its InferenceData, or just the posterior with Bambi's names), a
:class:`skhier.plan.FitPlan` and validated rows, processed a block of rows at a time so that
memory stays at ``draws x block`` floats whatever the number of rows. Groups not seen in fit
get coefficients drawn from the hierarchy: they add no mean and their scale's variance.
``predict``, ``score``, PSIS-LOO and the plots all read the model's predictions through here.

The families computed here (:data:`FAMILIES`) are the Gaussian (identity link, residual sd
``sigma``) and the two count families with a log link: Poisson and negative binomial with
PyMC's ``alpha`` (``var = mu + mu**2 / alpha``), sampled or, for the count engine, estimated
once and kept in the fit's ``constant_data``. An ``offset(column)`` term is added to the
linear predictor.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from skhier._names import scale_name
from skhier._predictive_numba import eta_rows, log_density_rows, logsumexp_rows
from skhier._validation import COUNT_RESPONSE_FAMILIES, check_counts, check_data
from skhier.design import design_matrix

__all__ = [
    "BLOCK_ROWS",
    "FAMILIES",
    "check_family",
    "response_parameters",
    "model_frame",
    "prediction_rows",
    "response_values",
    "linear_predictor",
    "log_density",
    "log_predictive_density",
    "predictive_moments",
    "predictive_draws",
]

#: Rows per block of the row-wise computations.
BLOCK_ROWS = 2048

#: Families whose predictions, log densities and predictive draws skhier computes.
FAMILIES = ("gaussian", "negativebinomial", "poisson")

#: Seed of the coefficients drawn for groups not seen in fit, where a count family's log
#: density needs one per posterior draw (a fixed seed keeps ``score`` deterministic).
_UNSEEN_SEED = 20241206


def check_family(plan, what: str) -> None:
    """Raise NotImplementedError unless the plan's family is one of :data:`FAMILIES`.

    Parameters
    ----------
    plan : FitPlan
        The fitted plan.
    what : str
        What needs the family (for the message).

    Raises
    ------
    NotImplementedError
        Naming the family and the supported ones.

    Examples
    --------
    >>> import pandas as pd
    >>> from skhier.plan import make_plan
    >>> df = pd.DataFrame({"y": [1, 0, 1, 1], "x": [1.0, 2, 1, 2]})
    >>> check_family(make_plan({"formula": "y ~ x", "family": "bernoulli"}, df), "predict")
    Traceback (most recent call last):
    ...
    NotImplementedError: predict is implemented for the families ('gaussian', \
'negativebinomial', 'poisson'); this model has family='bernoulli'.
    """
    if plan.family not in FAMILIES:
        raise NotImplementedError(
            f"{what} is implemented for the families {FAMILIES}; this model has "
            f"family={plan.family!r}."
        )


def _posterior_and_constants(fit):
    """Split an InferenceData into its posterior and constant data (None for a Dataset)."""
    if hasattr(fit, "posterior"):
        return fit.posterior, getattr(fit, "constant_data", None)
    return fit, None


def response_parameters(fit, plan) -> dict:
    """Return the draws of the family's own parameters, flattened over chains.

    Parameters
    ----------
    fit : arviz.InferenceData or xarray.Dataset
        The fit, or its posterior alone (then a negative binomial ``alpha`` must be a
        posterior variable).
    plan : FitPlan
        The fitted plan.

    Returns
    -------
    dict of str to ndarray of shape (n_draws,)
        ``{"sigma": ...}`` for the Gaussian, ``{"alpha": ...}`` for the negative binomial,
        ``{}`` for Poisson.

    Raises
    ------
    NotImplementedError
        For a family outside :data:`FAMILIES`.
    ValueError
        If the fit does not hold the parameter.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> from skhier.plan import make_plan
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4], "x": [1.0, 2, 1, 2]})
    >>> post = xr.Dataset({"sigma": (("chain", "draw"), np.full((2, 3), 0.5))})
    >>> response_parameters(post, make_plan({"formula": "y ~ x"}, df))["sigma"].shape
    (6,)
    """
    check_family(plan, "the predictive distribution")
    posterior, constants = _posterior_and_constants(fit)
    n_draws = posterior.sizes["chain"] * posterior.sizes["draw"]
    name = {"gaussian": "sigma", "negativebinomial": "alpha"}.get(plan.family)
    if name is None:
        return {}
    if name in posterior.data_vars:
        value = np.asarray(posterior[name], dtype=np.float64).reshape(-1)
    elif constants is not None and name in constants.data_vars:
        value = np.full(n_draws, float(constants[name]))
    else:
        raise ValueError(
            f"family={plan.family!r} needs {name!r}, which is neither in the posterior nor in "
            "the fit's constant_data; pass the whole InferenceData (ranker.idata_)."
        )
    return {name: value}


def model_frame(plan, X) -> pd.DataFrame:
    """Return rows as the data frame the model reads.

    Parameters
    ----------
    plan : FitPlan
        The fitted plan.
    X : pandas.DataFrame or array-like
        A frame with the model's columns; for a model fitted without a formula (columns
        ``x0``, ``x1``, ...), also a 2-D array with one column per predictor.

    Returns
    -------
    pandas.DataFrame
        The rows (the input itself when it is a frame).

    Raises
    ------
    TypeError
        If an array is given for a model with a formula.
    ValueError
        If an array has the wrong number of columns.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from skhier.plan import make_plan
    >>> plan = make_plan({}, pd.DataFrame({"x0": [1.0, 2, 3], "y": [1.0, 3, 2]}))
    >>> model_frame(plan, np.array([[4.0]])).columns.tolist()
    ['x0']
    """
    if isinstance(X, pd.DataFrame):
        return X
    names = list(plan.parsed.common)
    if plan.parsed.group_terms or any(not (n.startswith("x") and n[1:].isdigit()) for n in names):
        raise TypeError(
            f"X must be a pandas DataFrame with the columns of {plan.formula!r}, got "
            f"{type(X).__name__}."
        )
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(names):
        raise ValueError(
            f"X must be 2-D with {len(names)} column(s) ({names}), got shape {arr.shape}."
        )
    return pd.DataFrame(arr, columns=names)


def prediction_rows(plan, data: pd.DataFrame) -> pd.DataFrame:
    """Check rows for prediction: every predictor and grouping column present and finite.

    Parameters
    ----------
    plan : FitPlan
        The fitted plan.
    data : pandas.DataFrame
        New rows (the response is not required).

    Returns
    -------
    pandas.DataFrame
        The rows.

    Raises
    ------
    ValueError
        For a missing column or NaN/inf values, naming them.
    """
    return check_data(data, plan.parsed, missing="raise", response=False)


def response_values(plan, data: pd.DataFrame, y=None, *, purpose: str = "scoring") -> np.ndarray:
    """Return the rows' response: ``y`` if given, else the formula's response column.

    Parameters
    ----------
    plan : FitPlan
        The fitted plan.
    data : pandas.DataFrame
        The rows.
    y : array-like or None, default=None
        The response, or None to read it from ``data``.
    purpose : str, default="scoring"
        What needs it, for the error message.

    Returns
    -------
    ndarray of shape (n_rows,)
        The response as floats.

    Raises
    ------
    ValueError
        If there is no response, it has the wrong length, or it is not finite (for a count
        family: not a non-negative integer).

    Examples
    --------
    >>> import pandas as pd
    >>> from skhier.plan import make_plan
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4], "g": list("aabb")})
    >>> response_values(make_plan({"formula": "y ~ (1|g)"}, df), df).tolist()
    [1.0, 2.0, 3.0, 4.0]
    """
    response = plan.parsed.response
    if y is not None:
        yv = np.asarray(y, dtype=np.float64).ravel()
    elif response in data.columns:
        yv = np.asarray(data[response], dtype=np.float64)
    else:
        raise ValueError(
            f"{purpose} needs the response: pass y or include column {response!r} in X."
        )
    if len(yv) != len(data):
        raise ValueError(f"y has {len(yv)} values but X has {len(data)} rows.")
    bad = ~np.isfinite(yv)
    if bad.any():
        rows = np.flatnonzero(bad)
        shown = ", ".join(str(data.index[i]) for i in rows[:5])
        raise ValueError(
            f"{purpose} needs a finite response, but {len(rows)} row(s) have NaN or infinite "
            f"{response!r} (rows {shown}{', ...' if len(rows) > 5 else ''}); drop them first."
        )
    if plan.family in COUNT_RESPONSE_FAMILIES:
        check_counts(pd.DataFrame({response: yv}, index=data.index), response, plan.family)
    return yv


def linear_predictor(
    posterior, plan, data: pd.DataFrame, *, block_rows: int = BLOCK_ROWS
) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """Yield draws of the linear predictor, a block of rows at a time.

    Parameters
    ----------
    posterior : xarray.Dataset or arviz.InferenceData
        The posterior (Bambi's names), or the fit holding it.
    plan : FitPlan
        The fitted plan.
    data : pandas.DataFrame
        Validated rows (see :func:`prediction_rows`).
    block_rows : int, default=2048
        Rows per block.

    Yields
    ------
    rows : slice
        The block's rows.
    eta : ndarray of shape (n_draws, block rows)
        The linear predictor per draw (chains flattened), the offset included.
    extra : ndarray of shape (n_draws, block rows)
        Extra variance of levels not seen in fit (their scale squared times the predictor).

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> from skhier.plan import make_plan
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4], "x": [1.0, 2, 1, 2]})
    >>> post = xr.Dataset({"Intercept": (("chain", "draw"), np.ones((1, 3))),
    ...                    "x": (("chain", "draw"), np.full((1, 3), 2.0))})
    >>> sl, eta, extra = next(linear_predictor(post, make_plan({"formula": "y ~ x"}, df), df))
    >>> eta[0].tolist()
    [3.0, 5.0, 3.0, 5.0]
    """
    predictor = _Predictor(posterior, plan, data)
    for start in range(0, len(data), block_rows):
        sl = slice(start, min(start + block_rows, len(data)))
        eta, extra = predictor.block(sl)
        yield sl, eta.T, (np.broadcast_to(0.0, eta.T.shape) if extra is None else extra.T)


class _Predictor:
    """The linear predictor's inputs for a set of rows, laid out for the compiled kernel.

    Group coefficients are gathered into one (levels, draws) array per storage precision (the
    engines keep the finest level's draws in float32), so that a row's draws are contiguous.
    """

    def __init__(self, posterior, plan, data):
        posterior, _ = _posterior_and_constants(posterior)
        parsed = plan.parsed
        columns = parsed.columns
        self.n_draws = posterior.sizes["chain"] * posterior.sizes["draw"]
        self.W = design_matrix(data, columns)
        self.offset = (
            np.zeros(len(data))
            if parsed.offset is None
            else np.asarray(data[parsed.offset], dtype=np.float64)
        )
        present = [k for k, c in enumerate(columns) if c in posterior.data_vars]
        self.common_cols = np.asarray(present, dtype=np.int64)
        self.common = np.empty((len(present), self.n_draws))
        for j, k in enumerate(present):
            self.common[j] = np.asarray(posterior[columns[k]], dtype=np.float64).reshape(-1)
        terms = parsed.group_terms
        values = [np.asarray(posterior[t.name]).reshape(self.n_draws, -1) for t in terms]
        single = [v.dtype == np.float32 for v in values]
        self.term_cols = np.asarray([columns.index(t.column) for t in terms], dtype=np.int64)
        self.codes = np.empty((len(terms), len(data)), dtype=np.int64)
        self.V = {}
        for precision, dtype in ((False, np.float64), (True, np.float32)):
            sizes = [v.shape[1] for v, p in zip(values, single, strict=True) if p == precision]
            n_levels = sum(sizes)
            self.V[precision] = np.empty((n_levels, self.n_draws), dtype=dtype)
        start = dict.fromkeys((False, True), 0)
        self.tau = []
        for j, (t, v, p) in enumerate(zip(terms, values, single, strict=True)):
            self.V[p][start[p] : start[p] + v.shape[1]] = v.T
            codes = _level_codes(plan.design.factors[t.factor], data, t.factors)
            self.codes[j] = np.where(codes >= 0, codes + start[p], -1)
            start[p] += v.shape[1]
            if scale_name(t.name) in posterior.data_vars:
                tau = np.asarray(posterior[scale_name(t.name)], dtype=np.float64).reshape(-1)
            else:
                tau = np.full(self.n_draws, float(plan.fixed_tau.get(t.name, 0.0)))
            self.tau.append(tau)
        self.single = np.asarray(single, dtype=bool)

    def block(self, sl):
        """Return the rows' linear predictor and unseen-group variance (None if none), (rows, S)."""
        eta = np.empty((sl.stop - sl.start, self.n_draws))
        for precision in (False, True):
            mask = self.single == precision
            if precision and not mask.any():
                continue
            # the float64 pass writes the offset and common terms; the float32 pass adds to it
            eta_rows(
                sl.start,
                sl.stop,
                self.offset if not precision else np.zeros(len(self.offset)),
                self.W,
                self.common if not precision else self.common[:0],
                self.common_cols if not precision else self.common_cols[:0],
                self.term_cols[mask],
                self.codes[mask],
                self.V[precision],
                out=eta,
                accumulate=precision,
            )
        extra = None
        unseen = self.codes[:, sl] < 0
        if unseen.any():
            extra = np.zeros_like(eta)
            for j in np.flatnonzero(unseen.any(axis=1)):
                rows = np.flatnonzero(unseen[j])
                w = self.W[sl.start + rows, self.term_cols[j]]
                extra[rows] += (w[:, None] * self.tau[j][None, :]) ** 2
        return eta, extra


def _level_codes(factor, data, columns):
    """Position of each row's level among ``factor``'s labels (-1 for a level not in fit)."""
    keys = data[columns[0]].astype(str)
    if len(columns) > 1:
        keys = keys.str.cat([data[c].astype(str) for c in columns[1:]], sep=":")
    return pd.Index(np.asarray(factor.labels, dtype=object)).get_indexer(keys.to_numpy(object))


def _unseen(eta, extra, rng):
    """Add a coefficient drawn from the hierarchy for the rows' unseen groups (log links)."""
    if extra.any():
        eta += np.sqrt(extra) * rng.standard_normal(eta.shape)
    return eta


def log_density(
    fit, plan, data: pd.DataFrame, y: np.ndarray, *, block_rows: int = BLOCK_ROWS
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``log p(y_i | theta_s)``, a block of rows at a time.

    Parameters
    ----------
    fit : arviz.InferenceData or xarray.Dataset
        The fit (a negative binomial fit by the count engine keeps ``alpha`` in its
        ``constant_data``), or its posterior alone.
    plan : FitPlan
        The fitted plan (a family of :data:`FAMILIES`).
    data : pandas.DataFrame
        Validated rows.
    y : ndarray of shape (n_rows,)
        Their response.
    block_rows : int, default=2048
        Rows per block.

    Yields
    ------
    rows : slice
        The block's rows.
    log_density : ndarray of shape (n_draws, block rows)
        The log density (or mass) of each row given each draw. For a count family, a row of
        a group not seen in fit gets one coefficient per draw from the hierarchy (fixed
        seed); the Gaussian integrates it out exactly.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> from scipy.stats import poisson
    >>> from skhier.plan import make_plan
    >>> df = pd.DataFrame({"n": [1, 4, 2, 7], "x": [0.0, 1, 0, 1]})
    >>> post = xr.Dataset({"Intercept": (("chain", "draw"), np.zeros((1, 2))),
    ...                    "x": (("chain", "draw"), np.full((1, 2), 1.5))})
    >>> plan = make_plan({"formula": "n ~ x", "family": "poisson"}, df)
    >>> sl, ll = next(log_density(post, plan, df, df["n"].to_numpy(float)))
    >>> bool(np.allclose(ll[0], poisson.logpmf(df["n"], np.exp(1.5 * df["x"]))))
    True
    """
    params = response_parameters(fit, plan)
    if plan.family == "gaussian":
        par = params["sigma"] ** 2
    else:
        par = params.get("alpha", np.ones(1))
    rng = np.random.default_rng(_UNSEEN_SEED)
    predictor = _Predictor(fit, plan, data)
    y = np.ascontiguousarray(y, dtype=np.float64)
    for start in range(0, len(data), block_rows):
        sl = slice(start, min(start + block_rows, len(data)))
        eta, extra = predictor.block(sl)
        if extra is not None and plan.family != "gaussian":
            eta += np.sqrt(extra) * rng.standard_normal(eta.shape)
            extra = None
        yield sl, log_density_rows(plan.family, y[sl], par, eta, extra).T


def log_predictive_density(
    fit, plan, data: pd.DataFrame, y: np.ndarray, *, block_rows: int = BLOCK_ROWS
) -> np.ndarray:
    """Log pointwise predictive density ``log mean_s p(y_i | theta_s)`` of every row.

    Computed a block of rows at a time (:func:`log_density`), so memory stays at
    ``draws x block_rows`` values whatever the number of rows.

    Parameters
    ----------
    fit : arviz.InferenceData or xarray.Dataset
        The fit, or its posterior (Bambi's names).
    plan : FitPlan
        The fitted plan (a family of :data:`FAMILIES`).
    data : pandas.DataFrame
        Validated rows.
    y : ndarray of shape (n_rows,)
        Their response.
    block_rows : int, default=2048
        Rows per block.

    Returns
    -------
    ndarray of shape (n_rows,)
        The log predictive density of each row.

    Examples
    --------
    >>> from skhier import HierarchicalRanker, ScreenSimulator
    >>> df = ScreenSimulator(n_genes=2, sgrnas_per_gene=2, n_samples=10,
    ...                      random_state=0).fit_transform()
    >>> r = HierarchicalRanker(formula="Ht ~ 0 + H0:(1|gene/sgRNA)", draws=100, tune=100,
    ...                        chains=2, n_jobs=1, random_state=0, on_fail="ignore").fit(df)
    >>> lpd = log_predictive_density(r.idata_, r.plan_, r.plan_.data, df["Ht"].to_numpy())
    >>> lpd.shape, bool(abs(lpd.mean() - r.score(df)) < 1e-12)
    ((40,), True)
    """
    posterior, _ = _posterior_and_constants(fit)
    log_s = np.log(posterior.sizes["chain"] * posterior.sizes["draw"])
    out = np.empty(len(data))
    for sl, ll in log_density(fit, plan, data, y, block_rows=block_rows):
        out[sl] = logsumexp_rows(ll.T) - log_s
    return out


def predictive_moments(
    fit, plan, data: pd.DataFrame, *, block_rows: int = BLOCK_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the posterior predictive distribution of every row.

    By the law of total variance over the draws: the mean of the draws' conditional means,
    and the mean of their conditional variances plus the variance of their means. A group
    not seen in fit adds its coefficient's variance (for a log link, through the lognormal
    moments).

    Parameters
    ----------
    fit : arviz.InferenceData or xarray.Dataset
        The fit, or its posterior (Bambi's names).
    plan : FitPlan
        The fitted plan (a family of :data:`FAMILIES`).
    data : pandas.DataFrame
        Validated rows.
    block_rows : int, default=2048
        Rows per block.

    Returns
    -------
    mean : ndarray of shape (n_rows,)
        Posterior predictive mean of the response.
    var : ndarray of shape (n_rows,)
        Posterior predictive variance of the response.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> from skhier.plan import make_plan
    >>> df = pd.DataFrame({"n": [1, 4], "x": [0.0, 1.0]})
    >>> post = xr.Dataset({"Intercept": (("chain", "draw"), np.zeros((1, 1))),
    ...                    "x": (("chain", "draw"), np.full((1, 1), np.log(3.0)))})
    >>> mean, var = predictive_moments(post, make_plan({"formula": "n ~ x",
    ...                                                 "family": "poisson"}, df), df)
    >>> np.round(mean, 6).tolist(), np.round(var, 6).tolist()
    ([1.0, 3.0], [1.0, 3.0])
    """
    params = response_parameters(fit, plan)
    mean = np.empty(len(data))
    var = np.empty(len(data))
    for sl, eta, extra in linear_predictor(fit, plan, data, block_rows=block_rows):
        if plan.family == "gaussian":
            m = eta
            v = params["sigma"][:, None] ** 2 + extra
        else:
            m = np.exp(eta + extra / 2)  # lognormal mean over an unseen group's coefficient
            v = m + m * m * np.expm1(extra)
            if "alpha" in params:
                v += m * m * np.exp(extra) / params["alpha"][:, None]
        mean[sl] = m.mean(axis=0)
        var[sl] = v.mean(axis=0) + m.var(axis=0)
    return mean, var


def predictive_draws(
    fit, plan, data: pd.DataFrame, rng, *, block_rows: int = BLOCK_ROWS
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield posterior predictive draws of the response, one per posterior draw.

    Parameters
    ----------
    fit : arviz.InferenceData or xarray.Dataset
        The fit, or its posterior (Bambi's names).
    plan : FitPlan
        The fitted plan (a family of :data:`FAMILIES`).
    data : pandas.DataFrame
        Validated rows.
    rng : numpy.random.Generator
        Source of the predictive noise.
    block_rows : int, default=2048
        Rows per block.

    Yields
    ------
    rows : slice
        The block's rows.
    draws : ndarray of shape (n_draws, block rows)
        Gaussian: the linear predictor plus noise of the draw's residual sd (and, for groups
        not seen in fit, of their scale). Count families: Poisson or negative binomial
        (gamma-Poisson) counts of mean ``exp(eta)``, as floats.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> from skhier.plan import make_plan
    >>> df = pd.DataFrame({"n": [1, 4], "x": [0.0, 1.0]})
    >>> post = xr.Dataset({"Intercept": (("chain", "draw"), np.zeros((1, 4000))),
    ...                    "x": (("chain", "draw"), np.full((1, 4000), np.log(3.0)))})
    >>> plan = make_plan({"formula": "n ~ x", "family": "poisson"}, df)
    >>> sl, draws = next(predictive_draws(post, plan, df, np.random.default_rng(0)))
    >>> draws.shape, np.round(draws.mean(axis=0), 1).tolist()
    ((4000, 2), [1.0, 3.0])
    """
    params = response_parameters(fit, plan)
    for sl, eta, extra in linear_predictor(fit, plan, data, block_rows=block_rows):
        if plan.family == "gaussian":
            eta += np.sqrt(params["sigma"][:, None] ** 2 + extra) * rng.standard_normal(eta.shape)
            yield sl, eta
            continue
        mu = np.exp(_unseen(eta, extra, rng))
        if "alpha" in params:
            a = np.broadcast_to(params["alpha"][:, None], mu.shape)
            mu = rng.gamma(a, mu / a)
        yield sl, rng.poisson(mu).astype(np.float64)
