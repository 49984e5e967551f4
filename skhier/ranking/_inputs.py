"""Input checks, constants and the choice of backend shared by the ranking functions."""

from __future__ import annotations

import functools
import logging
import math
import numbers
import warnings

import numpy as np
import pandas as pd

from skhier._validation import check_choice

logger = logging.getLogger("skhier")


#: ``rank_table``/``draw_ranks`` use numpy below this many values (``N * S``); numba above.
NUMPY_MAX_VALUES = 400_000
#: ``dominance`` uses numpy below this many pair comparisons (``rows * N * S``); numba above.
NUMPY_MAX_COMPARISONS = 20_000_000
#: Memory for the int16 per-draw ranks of the dominance kernel; above it, draws are processed in
#: several passes that accumulate into the output.
RANK_BUFFER_BYTES = 128 * 2**20
#: Tile edge (groups) of the dominance kernels.
TILE = 64
#: Draws per inner chunk of the dominance kernel (its 16-bit counters are exact up to 65,535).
MAX_SUBCHUNK = 32_768

RANK_TABLE_COLUMNS = (
    "rank",
    "mean",
    "sd",
    "hdi_low",
    "hdi_high",
    "expected_rank",
    "rank_low",
    "rank_high",
    "joint_rank_low",
    "joint_rank_high",
    "p_top_k",
    "mcse_p_top_k",
    "mcse_expected_rank",
    "sucra",
    "sucra_low",
    "sucra_high",
    "lfsr",
    "svalue",
    "p_gt_ref",
)

BACKENDS = ("auto", "numba", "numpy")


def _load_kernels():
    """Import the compiled kernels (and numba) on first use."""
    from skhier.ranking import _kernels

    return _kernels


def _as_draws(draws, name="draws"):
    """Validate ``draws``; return a ``(chains, draws, N)`` numeric array (no copy if possible)."""
    arr = np.asarray(draws)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a numeric array; got dtype {arr.dtype}.")
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    elif arr.ndim != 3:
        raise ValueError(
            f"{name} must have shape (chains, draws, N) or (draws, N); got ndim={arr.ndim} "
            f"(shape {arr.shape})."
        )
    if arr.shape[2] < 1:
        raise ValueError(f"{name} must hold at least one group (N >= 1); got shape {arr.shape}.")
    if arr.shape[0] * arr.shape[1] < 1:
        raise ValueError(f"{name} must hold at least one draw; got shape {arr.shape}.")
    return arr


def _as_2d(arr):
    """``(chains, draws, N)`` -> C-contiguous float64 ``(S, N)`` (a view when already so)."""
    return np.ascontiguousarray(arr, dtype=np.float64).reshape(-1, arr.shape[2])


def _check_finite_numpy(x2, name="draws"):
    bad = ~np.isfinite(x2)
    if bad.any():
        _raise_nonfinite(int(bad.sum()), int(bad.any(axis=1).sum()), name)


def _raise_nonfinite(n_bad, n_rows, name="draws"):
    raise ValueError(
        f"{name} contain {n_bad} non-finite value(s) (NaN or inf) in {n_rows} draw(s); "
        "ranking needs finite draws (drop or impute them first)."
    )


def _check_labels(labels, n):
    if labels is None:
        return pd.RangeIndex(n)
    index = pd.Index(labels)
    if index.ndim != 1 or len(index) != n:
        raise ValueError(f"labels must have one entry per group: got {len(index)} for N={n}.")
    if index.has_duplicates:
        dup = index[index.duplicated()].unique().tolist()[:5]
        raise ValueError(f"labels must be unique; duplicated: {dup}.")
    return index


def _check_prob(value, name):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not (0.0 < float(value) < 1.0)
    ):
        raise ValueError(f"{name} must be a probability strictly between 0 and 1; got {value!r}.")
    return float(value)


def _check_top_k(top_k, n, name="top_k", allow_none=False):
    """Check a positive integer; values above ``n`` mean "all groups" and become ``n``."""
    if top_k is None and allow_none:
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1:
        raise ValueError(
            f"{name} must be a positive integer (at most N={n} matters; larger means all "
            f"groups); got {top_k!r}."
        )
    return min(int(top_k), n)


def _check_backend(backend):
    check_choice("backend", backend, BACKENDS)
    return backend


def accepts_engine(func):
    """Let ``func`` take the old keyword ``engine=`` for ``backend=``, with a FutureWarning.

    The ranking functions called their numpy / numba switch ``engine`` before 0.2, which is
    the estimator's word for the model engine.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if "engine" in kwargs:
            if "backend" in kwargs:
                raise TypeError(f"{func.__name__}() got both backend= and its old name engine=.")
            warnings.warn(
                f"{func.__name__}(engine=...) is deprecated and will be removed in 0.3; use "
                "backend= (the same values: 'auto', 'numba', 'numpy').",
                FutureWarning,
                stacklevel=2,
            )
            kwargs["backend"] = kwargs.pop("engine")
        return func(*args, **kwargs)

    return wrapper


def _check_reference(reference, n_chains, n_draws):
    """Return the reference as a float64 array of shape (S,)."""
    n_total = n_chains * n_draws
    if isinstance(reference, numbers.Real) and not isinstance(reference, bool):
        ref = float(reference)
        if not math.isfinite(ref):
            raise ValueError(f"reference must be finite; got {reference!r}.")
        return np.full(n_total, ref), ref
    ref = np.asarray(reference, dtype=np.float64)
    if ref.ndim == 0:
        return _check_reference(float(ref), n_chains, n_draws)
    if ref.shape not in {(n_chains, n_draws), (n_total,)} and not (
        n_chains == 1 and ref.shape == (n_draws,)
    ):
        raise ValueError(
            "reference must be a scalar or a per-draw array of shape (chains, draws) = "
            f"{(n_chains, n_draws)}; got shape {ref.shape}."
        )
    if not np.isfinite(ref).all():
        raise ValueError("reference contains non-finite values (NaN or inf).")
    return np.ascontiguousarray(ref.reshape(-1)), "per-draw"


def _check_n_obs(n_obs, labels):
    if n_obs is None:
        return None
    if isinstance(n_obs, pd.Series | dict):
        series = pd.Series(n_obs)
        missing = labels.difference(series.index)
        if len(missing):
            raise ValueError(f"n_obs has no entry for groups {missing[:5].tolist()}.")
        return series.reindex(labels).to_numpy()
    values = np.asarray(n_obs)
    if values.shape != (len(labels),):
        raise ValueError(
            f"n_obs must have one entry per group (length {len(labels)}); got shape {values.shape}."
        )
    return values


def _is_inference_data(data):
    return hasattr(data, "posterior") and hasattr(data, "groups")


def _extract(data, var_name=None, dim=None):
    """Return ``(array (chains, draws, N), labels or None, index_name or None)`` from any input."""
    if _is_inference_data(data):
        data = data.posterior
    if hasattr(data, "data_vars"):  # xarray.Dataset
        names = list(data.data_vars)
        if var_name is None:
            if len(names) != 1:
                raise ValueError(
                    f"var_name is required when the posterior holds several variables; "
                    f"choose one of {names}."
                )
            var_name = names[0]
        if var_name not in names:
            raise ValueError(f"unknown var_name {var_name!r}; choose one of {names}.")
        data = data[var_name]
    elif var_name is not None and not hasattr(data, "dims"):
        raise ValueError(
            f"var_name={var_name!r} applies only to InferenceData or Dataset inputs; got "
            f"{type(data).__name__}."
        )
    if hasattr(data, "dims") and hasattr(data, "transpose"):  # xarray.DataArray
        dims = list(data.dims)
        sample_dims = [d for d in ("chain", "draw") if d in dims]
        if "draw" not in dims:
            raise ValueError(
                f"a DataArray needs a 'draw' dimension (and 'chain'); got dims {dims}."
            )
        others = [d for d in dims if d not in sample_dims]
        if dim is None:
            if len(others) != 1:
                raise ValueError(
                    f"cannot tell which dimension indexes the groups among {others}; pass dim= "
                    "(and select or reduce the other dimensions first)."
                )
            dim = others[0]
        elif dim not in others:
            raise ValueError(f"unknown dim {dim!r}; choose one of {others}.")
        elif len(others) != 1:
            extra = [d for d in others if d != dim]
            raise ValueError(
                f"the variable has extra dimensions {extra} besides dim={dim!r}; select or reduce "
                "them first (for example with .sel or .mean)."
            )
        if "chain" not in dims:
            data = data.expand_dims("chain")
        arr = np.asarray(data.transpose("chain", "draw", dim).values)
        labels = data[dim].values if dim in data.coords else None
        return _as_draws(arr), labels, dim
    if dim is not None:
        raise ValueError(
            f"dim={dim!r} applies only to xarray or InferenceData inputs; got "
            f"{type(data).__name__}."
        )
    return _as_draws(data), None, None


def _numba_available():
    import importlib.util

    return importlib.util.find_spec("numba") is not None


def _choose(backend, size, limit):
    """Resolve ``backend="auto"``: numpy for small problems (or without numba), else numba."""
    if backend == "auto":
        if size <= limit:
            return "numpy"
        if not _numba_available():
            logger.warning("skhier: numba is not installed; using the (slow) numpy backend.")
            return "numpy"
        return "numba"
    return backend
