"""Saved rankers as plain state: a folder of JSON and netCDF files, no pickle.

A saved ranker is a folder of three files:

- ``skhier.json``: the skhier version, the estimator's parameters (priors as name and
  arguments), the fitted names (``formula_``, ``level_``, ``term_``, ``engine_``, features) and
  the sampler context recorded in ``diagnostics_.info``;
- ``posterior.nc``: the InferenceData (posterior and sample statistics), netCDF;
- ``data.nc``: the training rows' model columns, netCDF.

This module reads and writes that state and knows nothing of the estimator:
:meth:`skhier.HierarchicalRanker.load` re-runs the cheap, deterministic steps of ``fit``
(validation, design, priors, engine choice) on the saved rows, attaches the saved posterior
instead of sampling, and recomputes the ranking and the diagnostics from it, so the loaded
ranker predicts, scores and ranks exactly as the saved one did.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from skhier._json import jsonable

__all__ = [
    "SavedState",
    "write_state",
    "read_state",
    "check_save_folder",
    "params_to_json",
    "params_from_json",
]

logger = logging.getLogger("skhier")

FORMAT_VERSION = 1
_JSON = "skhier.json"
_POSTERIOR = "posterior.nc"
_DATA = "data.nc"


def _prior_to_json(prior):
    from skhier.priors import Prior

    p = Prior.from_any(prior)
    if isinstance(p, float):
        return p
    return {
        "name": p.name,
        "args": {k: _prior_to_json(v) if hasattr(v, "args") else jsonable(v) for k, v in
                 p.args.items()},
    }


def _prior_from_json(d):
    from skhier.priors import Prior

    if not isinstance(d, dict):
        return float(d)
    return Prior(
        d["name"], {k: _prior_from_json(v) if isinstance(v, dict) else v for k, v in
                    d["args"].items()}
    )


def params_to_json(params: dict) -> dict:
    """Turn an estimator's parameters into JSON-serializable values (priors as plain dicts).

    Parameters
    ----------
    params : dict
        ``get_params(deep=False)``.

    Returns
    -------
    dict
        The parameters; a random state that is not an int or None is saved as None (logged).

    Examples
    --------
    >>> from skhier.priors import Prior
    >>> params_to_json({"priors": {"sigma": Prior("HalfNormal", {"sigma": 1.0})}})
    {'priors': {'sigma': {'name': 'HalfNormal', 'args': {'sigma': 1.0}}}}
    """
    out = {}
    for key, value in params.items():
        if key == "priors" and value is not None:
            out[key] = {name: _prior_to_json(p) for name, p in value.items()}
        elif key == "random_state" and not (value is None or isinstance(value, int | np.integer)):
            logger.warning(
                "skhier: random_state=%r cannot be saved as JSON; it is saved as None.", value
            )
            out[key] = None
        else:
            out[key] = jsonable(value)
    return out


def params_from_json(d: dict) -> dict:
    """Invert :func:`params_to_json`.

    Parameters
    ----------
    d : dict
        Saved parameters.

    Returns
    -------
    dict
        The parameters, priors as :class:`skhier.priors.Prior`.

    Examples
    --------
    >>> params_from_json({"priors": {"sigma": {"name": "HalfNormal", "args": {"sigma": 1.0}}}})
    {'priors': {'sigma': HalfNormal(sigma=1.0)}}
    """
    out = dict(d)
    if out.get("priors") is not None:
        out["priors"] = {name: _prior_from_json(p) for name, p in out["priors"].items()}
    return out


def _frame_to_dataset(frame: pd.DataFrame):
    import xarray as xr

    data = {}
    for col in frame.columns:
        values = frame[col].to_numpy()
        if values.dtype.kind not in "biuf":
            values = np.asarray(frame[col].astype(str), dtype=object).astype(str)
        data[str(col)] = ("row", values)
    return xr.Dataset(data, attrs={"columns": json.dumps([str(c) for c in frame.columns])})


def _dataset_to_frame(ds) -> pd.DataFrame:
    columns = json.loads(ds.attrs["columns"])
    return pd.DataFrame({c: np.asarray(ds[c].values) for c in columns})


@dataclass
class SavedState:
    """What a saved ranker's folder holds.

    Parameters
    ----------
    meta : dict
        ``format_version``, ``skhier_version``, ``class``, ``params`` (the estimator's
        parameters, priors as plain dicts) and ``fitted`` (the fitted names and the sampler
        context).
    idata : arviz.InferenceData
        The posterior and sample statistics.
    data : pandas.DataFrame
        The training rows' model columns.

    Examples
    --------
    >>> import pandas as pd
    >>> SavedState({"params": {}}, None, pd.DataFrame()).meta
    {'params': {}}
    """

    meta: dict
    idata: object
    data: pd.DataFrame


def write_state(path, state: SavedState, *, overwrite: bool = False) -> Path:
    """Write a state to a folder (JSON and netCDF, no pickle).

    Parameters
    ----------
    path : str or os.PathLike
        Folder to write; created if missing. A folder of an earlier save is replaced.
    state : SavedState
        What to write (``meta`` must be JSON-serializable; see :func:`params_to_json`).
    overwrite : bool, default=False
        Write into a non-empty folder that is not a saved ranker.

    Returns
    -------
    pathlib.Path
        The folder.

    Raises
    ------
    FileExistsError
        If the folder holds other files and ``overwrite`` is False.

    Examples
    --------
    >>> import tempfile
    >>> import arviz as az, numpy as np, pandas as pd
    >>> idata = az.from_dict(posterior={"x": np.zeros((1, 3))})
    >>> state = SavedState({"format_version": FORMAT_VERSION, "class": "X"}, idata,
    ...                    pd.DataFrame({"y": [1.0, 2.0]}))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     back = read_state(write_state(tmp, state), expected_class="X")
    >>> back.data["y"].tolist()
    [1.0, 2.0]
    """
    folder = check_save_folder(path, overwrite=overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / _JSON).write_text(json.dumps(state.meta, indent=2))
    state.idata.to_netcdf(str(folder / _POSTERIOR), engine="h5netcdf")
    _frame_to_dataset(state.data).to_netcdf(str(folder / _DATA), engine="h5netcdf")
    return folder


def check_save_folder(path, *, overwrite: bool = False) -> Path:
    """Check that a ranker can be saved into a folder, before anything is written.

    A missing folder, an empty one and the folder of an earlier save are fine; a non-empty
    folder that holds no saved ranker is refused unless ``overwrite`` is True.

    Parameters
    ----------
    path : str or os.PathLike
        The folder.
    overwrite : bool, default=False
        Accept a non-empty folder that is not a saved ranker.

    Returns
    -------
    pathlib.Path
        The folder.

    Raises
    ------
    FileExistsError
        If ``path`` is a file, or a non-empty folder without a saved ranker (and ``overwrite``
        is False), naming some of its files.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = (Path(tmp) / "notes.txt").write_text("mine")
    ...     check_save_folder(tmp)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileExistsError: ... is not empty and holds no saved ranker (notes.txt); save into a new ...
    """
    folder = Path(os.fspath(path))
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} exists and is not a folder; give a folder to save into.")
    if folder.is_dir() and not overwrite and not (folder / _JSON).is_file():
        others = sorted(p.name for p in folder.iterdir())
        if others:
            raise FileExistsError(
                f"{folder} is not empty and holds no saved ranker ({', '.join(others[:5])}"
                f"{', ...' if len(others) > 5 else ''}); save into a new or empty folder, or "
                "pass overwrite=True."
            )
    return folder


def read_state(path, *, expected_class: str = "HierarchicalRanker") -> SavedState:
    """Read a state written by :func:`write_state`.

    Parameters
    ----------
    path : str or os.PathLike
        The folder.
    expected_class : str, default="HierarchicalRanker"
        The class the state must describe.

    Returns
    -------
    SavedState
        The state.

    Raises
    ------
    FileNotFoundError
        If the folder or one of its files is missing.
    ValueError
        If a file is corrupt (naming it), the state describes another class, or it was
        written in a format this skhier does not know (newer, or no skhier format).

    Warns
    -----
    UserWarning
        If a newer skhier wrote it (in a format this one reads).
    """
    import arviz as az
    import xarray as xr

    import skhier

    folder = Path(os.fspath(path))
    for name in (_JSON, _POSTERIOR, _DATA):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder / name} does not exist: {folder} is not a ranker saved by skhier.save "
                f"(which writes {_JSON}, {_POSTERIOR} and {_DATA})."
            )
    try:
        meta = json.loads((folder / _JSON).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{folder / _JSON} is corrupt (not JSON: {exc}).") from None
    if not isinstance(meta, dict) or meta.get("class") != expected_class:
        raise ValueError(f"{folder / _JSON} does not describe a {expected_class}.")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(
            f"{folder / _JSON} has format_version={version!r}, which is not a format skhier "
            f"writes (this skhier {skhier.__version__} reads formats 1 to {FORMAT_VERSION}); "
            "the file is corrupt or was not written by skhier.save."
        )
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{folder} was saved in format {meta['format_version']} by skhier "
            f"{meta.get('skhier_version')}, newer than this skhier {skhier.__version__} reads "
            f"(format {FORMAT_VERSION}); upgrade skhier."
        )
    saved_version = str(meta.get("skhier_version", "0"))
    if _version_tuple(saved_version) > _version_tuple(skhier.__version__):
        warnings.warn(
            f"{folder} was saved by skhier {saved_version}, newer than this skhier "
            f"{skhier.__version__}; it is read as format {FORMAT_VERSION}.",
            UserWarning,
            stacklevel=3,
        )
    try:
        with xr.open_dataset(folder / _DATA, engine="h5netcdf") as ds:
            data = _dataset_to_frame(ds.load())
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{folder / _DATA} is corrupt ({exc}).") from None
    try:
        idata = az.from_netcdf(str(folder / _POSTERIOR), engine="h5netcdf")
        idata.load()
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{folder / _POSTERIOR} is corrupt ({exc}).") from None
    return SavedState(meta, idata, data)


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)
