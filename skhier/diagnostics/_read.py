"""Reading posteriors and sampler statistics from InferenceData (any sampler's names)."""

from __future__ import annotations

import itertools
import re

import numpy as np

from skhier._validation import check_choice

DIVERGING_NAMES = ("diverging",)
TREEDEPTH_FLAG_NAMES = ("reached_max_treedepth", "maxdepth_reached")
TREEDEPTH_NAMES = ("tree_depth", "depth", "treedepth")
ENERGY_NAMES = ("energy",)


def posterior(idata):
    if hasattr(idata, "data_vars") and not hasattr(idata, "groups"):
        return idata  # an xarray Dataset of draws
    post = getattr(idata, "posterior", None)
    if post is None:
        raise ValueError(
            "diagnose needs an InferenceData with a 'posterior' group (or an xarray Dataset "
            f"with 'chain' and 'draw' dimensions); got {type(idata).__name__}."
        )
    return post


def sample_stats(idata):
    if not hasattr(idata, "groups"):
        return None
    # Only the post-warm-up group: nutpie's and PyMC's ``warmup_sample_stats`` are ignored.
    if "sample_stats" not in idata.groups():
        return None
    return idata.sample_stats


def select_vars(names: list[str], var_names, filter_vars) -> list[str]:
    # PyMC's unconstrained copies (``tau_log__``, stored by nutpie) duplicate their variable
    default = [n for n in names if not n.endswith("__")] or list(names)
    if var_names is None:
        return default
    if isinstance(var_names, str):
        var_names = [var_names]
    var_names = list(var_names)
    check_choice("filter_vars", filter_vars, (None, "like", "regex"))
    include = [v for v in var_names if not v.startswith("~")]
    exclude = [v[1:] for v in var_names if v.startswith("~")]

    def matches(pattern: str) -> list[str]:
        if filter_vars is None:
            return [pattern] if pattern in names else []
        if filter_vars == "like":
            return [n for n in names if pattern in n]
        return [n for n in names if re.search(pattern, n)]

    missing = [v for v in include + exclude if not matches(v)]
    if missing and filter_vars is None:
        raise KeyError(
            f"var_names {missing} not found in the posterior; available variables: {names}."
        )
    if include:
        keep = {n for v in include for n in matches(v)}
    else:
        keep = set(default)
    drop = {n for v in exclude for n in matches(v)}
    selected = [n for n in names if n in keep and n not in drop]
    if not selected:
        raise ValueError(
            f"var_names={var_names!r} (filter_vars={filter_vars!r}) selects no variable; "
            f"available variables: {names}."
        )
    return selected


def labels(name: str, da) -> list[str]:
    dims = [d for d in da.dims if d not in ("chain", "draw")]
    if not dims:
        return [name]
    coords = []
    for dim in dims:
        if dim in da.coords:
            coords.append([str(v) for v in np.asarray(da.coords[dim].values).tolist()])
        else:
            coords.append([str(i) for i in range(da.sizes[dim])])
    return [f"{name}[{', '.join(combo)}]" for combo in itertools.product(*coords)]


def stat_array(ss, names):
    """First present statistic among ``names`` as a (chains, draws) array, or (None, None)."""
    if ss is None:
        return None, None
    for name in names:
        if name in ss.data_vars:
            da = ss[name]
            if "chain" in da.dims and "draw" in da.dims:
                da = da.transpose("chain", "draw", ...)
            arr = np.asarray(da.values)
            if arr.ndim == 1:
                arr = arr[None, :]
            return name, arr
    return None, None


def reduce_extra(arr: np.ndarray, how) -> np.ndarray:
    if arr.ndim > 2:
        return how(arr.reshape(arr.shape[0], arr.shape[1], -1), axis=2)
    return arr

