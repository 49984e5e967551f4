"""Posterior predictions: the linear predictor, the Gaussian log density, predictive draws.

Functions of a posterior (Bambi's names), a :class:`skhier.plan.FitPlan` and validated rows,
processed a block of rows at a time so that memory stays at ``draws x block`` floats whatever
the number of rows. Groups not seen in fit get coefficients drawn from the hierarchy: they add
no mean and their scale's variance. ``predict``, ``score``, PSIS-LOO and the plots all read
the model's predictions through here.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from skhier._names import scale_name
from skhier._validation import check_data
from skhier.design import design_matrix

__all__ = [
    "BLOCK_ROWS",
    "model_frame",
    "prediction_rows",
    "response_values",
    "linear_predictor",
    "gaussian_log_density",
    "log_predictive_density",
    "predictive_draws",
]

#: Rows per block of the row-wise computations.
BLOCK_ROWS = 2048


def _check_gaussian(plan, what: str) -> None:
    if plan.family != "gaussian":
        raise NotImplementedError(
            f"{what} is implemented for family='gaussian'; this model has "
            f"family={plan.family!r}."
        )


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
        If there is no response, it has the wrong length, or it is not finite.

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
    return yv


def linear_predictor(
    posterior, plan, data: pd.DataFrame, *, block_rows: int = BLOCK_ROWS
) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """Yield draws of the linear predictor, a block of rows at a time.

    Parameters
    ----------
    posterior : xarray.Dataset
        The posterior (Bambi's names).
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
        The linear predictor per draw (chains flattened).
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
    parsed = plan.parsed
    columns = parsed.columns
    W = design_matrix(data, columns)
    n_draws = posterior.sizes["chain"] * posterior.sizes["draw"]
    common = {c: np.asarray(posterior[c]).reshape(-1) for c in columns if c in posterior.data_vars}
    terms = []
    for t in parsed.group_terms:
        factor = plan.design.factors[t.factor]
        keys = (
            data[list(t.factors)].astype(str).agg(":".join, axis=1)
            if len(t.factors) > 1
            else data[t.factors[0]].astype(str)
        )
        codes = pd.Index(np.asarray(factor.labels, dtype=object)).get_indexer(keys.to_numpy())
        values = np.asarray(posterior[t.name]).reshape(n_draws, -1)
        if scale_name(t.name) in posterior.data_vars:
            tau = np.asarray(posterior[scale_name(t.name)]).reshape(-1)
        else:
            tau = np.full(n_draws, float(plan.fixed_tau.get(t.name, 0.0)))
        terms.append((columns.index(t.column), codes, values, tau))
    for start in range(0, len(data), block_rows):
        sl = slice(start, min(start + block_rows, len(data)))
        eta = np.zeros((n_draws, sl.stop - sl.start))
        extra = np.zeros_like(eta)
        for k, c in enumerate(columns):
            if c in common:
                eta += common[c][:, None] * W[sl, k]
        for k, codes, values, tau in terms:
            cod = codes[sl]
            seen = cod >= 0
            contrib = np.zeros_like(eta)
            contrib[:, seen] = values[:, cod[seen]]
            eta += contrib * W[sl, k]
            if (~seen).any():
                extra[:, ~seen] += (tau[:, None] * W[sl, k][~seen]) ** 2
        yield sl, eta, extra


def gaussian_log_density(
    posterior, plan, data: pd.DataFrame, y: np.ndarray, *, block_rows: int = BLOCK_ROWS
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``log p(y_i | theta_s)`` of a Gaussian model, a block of rows at a time.

    Parameters
    ----------
    posterior : xarray.Dataset
        The posterior (Bambi's names).
    plan : FitPlan
        The fitted plan (Gaussian).
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
        The log density of each row given each draw.
    """
    _check_gaussian(plan, "the log density")
    sigma2 = np.asarray(posterior["sigma"], dtype=np.float64).reshape(-1) ** 2
    for sl, eta, extra in linear_predictor(posterior, plan, data, block_rows=block_rows):
        var = sigma2[:, None] + extra
        eta -= y[sl]
        eta *= eta
        eta /= var
        eta += np.log(2 * np.pi * var)
        eta *= -0.5
        yield sl, eta


def log_predictive_density(
    posterior, plan, data: pd.DataFrame, y: np.ndarray, *, block_rows: int = BLOCK_ROWS
) -> np.ndarray:
    """Log pointwise predictive density ``log mean_s p(y_i | theta_s)`` of every row.

    Computed a block of rows at a time (:func:`gaussian_log_density`), so memory stays at
    ``draws x block_rows`` values whatever the number of rows.

    Parameters
    ----------
    posterior : xarray.Dataset
        The posterior (Bambi's names).
    plan : FitPlan
        The fitted plan (Gaussian).
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
    >>> lpd = log_predictive_density(r.idata_.posterior, r.plan_, r.plan_.data,
    ...                              df["Ht"].to_numpy())
    >>> lpd.shape, bool(abs(lpd.mean() - r.score(df)) < 1e-12)
    ((40,), True)
    """
    from scipy.special import logsumexp

    log_s = np.log(posterior.sizes["chain"] * posterior.sizes["draw"])
    out = np.empty(len(data))
    for sl, ll in gaussian_log_density(posterior, plan, data, y, block_rows=block_rows):
        out[sl] = logsumexp(ll, axis=0) - log_s
    return out


def predictive_draws(
    posterior, plan, data: pd.DataFrame, rng, *, block_rows: int = BLOCK_ROWS
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield posterior predictive draws of the response, one per posterior draw.

    Parameters
    ----------
    posterior : xarray.Dataset
        The posterior (Bambi's names).
    plan : FitPlan
        The fitted plan (Gaussian).
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
        The linear predictor plus Gaussian noise of the draw's residual sd (and, for groups
        not seen in fit, of their scale).
    """
    _check_gaussian(plan, "predictive draws")
    sigma2 = np.asarray(posterior["sigma"], dtype=np.float64).reshape(-1) ** 2
    for sl, eta, extra in linear_predictor(posterior, plan, data, block_rows=block_rows):
        eta += np.sqrt(sigma2[:, None] + extra) * rng.standard_normal(eta.shape)
        yield sl, eta
