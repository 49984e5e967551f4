"""The draws the diagnostics plots show: variables, one coordinate per element, divergences."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Draws:
    """Posterior draws selected for a diagnostics plot.

    Attributes
    ----------
    labels : list of str
        One per coordinate: the variable's name, or ``name[coord,...]`` for an element.
    values : numpy.ndarray
        The draws, shape ``(chains, draws, len(labels))``, coordinates in label order.
    diverging : numpy.ndarray
        Boolean, shape ``(chains, draws)``: the divergent transitions (all False without
        ``sample_stats.diverging``).
    posterior : xarray.Dataset
        The selected variables, each with dims ``(chain, draw, ...)`` and ``chain``/``draw``
        numbered from 0, in ``var_names`` order: what ArviZ plots. Its elements come in the
        order of ``labels``.
    """

    labels: list
    values: np.ndarray
    diverging: np.ndarray
    posterior: object

    @property
    def shape(self):
        """``(chains, draws, coordinates)``."""
        return self.values.shape


def element_labels(da, name):
    """Labels ``name[coord, ...]`` for the elements of a variable's non-sample dimensions."""
    dims = [d for d in da.dims if d not in ("chain", "draw")]
    if not dims:
        return [name]
    coords = []
    for d in dims:
        if d in da.coords:
            coords.append([str(v) for v in np.asarray(da[d].values)])
        else:
            coords.append([str(i) for i in range(da.sizes[d])])
    grids = np.meshgrid(*[np.arange(len(c)) for c in coords], indexing="ij")
    flat = [g.ravel() for g in grids]
    return [
        f"{name}[{','.join(coords[k][flat[k][i]] for k in range(len(dims)))}]"
        for i in range(len(flat[0]))
    ]


def select_draws(idata, var_names):
    """Return the :class:`Draws` of ``var_names`` (None: the scalar parameters) in ``idata``."""
    import xarray as xr

    post = getattr(idata, "posterior", None)
    if post is None or not hasattr(post, "data_vars"):
        raise TypeError(
            "idata must be an arviz.InferenceData with a posterior group (or a fitted "
            f"HierarchicalRanker); got {type(idata).__name__}."
        )
    names = list(post.data_vars)
    if var_names is None:
        var_names = [
            v for v in names if set(post[v].dims) <= {"chain", "draw"} and not str(v).endswith("__")
        ]
        if not var_names:
            raise ValueError(
                "the posterior has no scalar (hyper)parameters to plot by default; pass "
                f"var_names, choosing from {names}."
            )
    else:
        if isinstance(var_names, str):
            var_names = [var_names]
        var_names = list(var_names)
        unknown = [v for v in var_names if v not in names]
        if unknown or not var_names:
            raise ValueError(
                f"var_names={unknown if unknown else var_names!r} not in the posterior; choose "
                f"from {names}."
            )
    labels, blocks, selected = [], [], {}
    for v in var_names:
        da = post[v]
        if "draw" not in da.dims:
            raise ValueError(f"variable {v!r} has no 'draw' dimension (dims {list(da.dims)}).")
        if "chain" not in da.dims:
            da = da.expand_dims("chain")
        other = [d for d in da.dims if d not in ("chain", "draw")]
        da = da.transpose("chain", "draw", *other)
        unnamed = {d: np.arange(da.sizes[d]) for d in other if d not in da.coords}
        selected[v] = da.drop_vars(["chain", "draw"], errors="ignore").assign_coords(unnamed)
        arr = np.asarray(da.values, dtype=np.float64)
        blocks.append(arr.reshape(arr.shape[0], arr.shape[1], -1))
        labels.extend(element_labels(da, v))
    values = np.concatenate(blocks, axis=2)
    diverging = np.zeros(values.shape[:2], dtype=bool)
    stats = getattr(idata, "sample_stats", None)
    if stats is not None and hasattr(stats, "data_vars") and "diverging" in stats.data_vars:
        div = stats["diverging"]
        if "chain" not in div.dims:
            div = div.expand_dims("chain")
        div = np.asarray(div.transpose("chain", "draw").values, dtype=bool)
        if div.shape == diverging.shape:
            diverging = div
    posterior = xr.Dataset(selected).assign_coords(
        chain=np.arange(values.shape[0]), draw=np.arange(values.shape[1])
    )
    return Draws(labels, values, diverging, posterior)
