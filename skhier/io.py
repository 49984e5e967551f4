"""Save and load fitted rankers without pickle.

A saved ranker is a folder of three files:

- ``skhier.json``: the skhier version, the estimator's parameters (priors as name and
  arguments), the fitted names (``formula_``, ``level_``, ``term_``, ``engine_``, features) and
  the sampler context recorded in ``diagnostics_.info``;
- ``posterior.nc``: the InferenceData (posterior and sample statistics), netCDF;
- ``data.nc``: the training rows' model columns, netCDF.

Loading re-runs the cheap, deterministic steps of ``fit`` (validation, design, priors, engine
choice), attaches the saved posterior instead of sampling, and recomputes the ranking and the
diagnostics from it: the loaded ranker predicts, scores and ranks exactly as the saved one did.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["save", "load"]

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
        "args": {k: _prior_to_json(v) if hasattr(v, "args") else _plain(v) for k, v in
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


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _params_to_json(params: dict) -> dict:
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
            out[key] = _plain(value)
    return out


def _params_from_json(d: dict) -> dict:
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


def save(ranker, path) -> Path:
    """Save a fitted ranker to a folder (JSON and netCDF, no pickle).

    Parameters
    ----------
    ranker : HierarchicalRanker
        A fitted ranker.
    path : str or os.PathLike
        Folder to write (created; files of an earlier save are replaced).

    Returns
    -------
    pathlib.Path
        The folder.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the ranker is not fitted.

    See Also
    --------
    load : Read it back.

    Examples
    --------
    >>> import tempfile
    >>> from skhier import HierarchicalRanker, ScreenSimulator, load
    >>> df = ScreenSimulator(n_genes=2, sgrnas_per_gene=2, n_samples=10,
    ...                      random_state=0).fit_transform()
    >>> r = HierarchicalRanker(formula="Ht ~ 0 + H0:(1|gene/sgRNA)", sampler="pymc",
    ...                        draws=50, tune=50, chains=2, n_jobs=1, random_state=0,
    ...                        on_fail="ignore").fit(df)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     again = load(r.save(tmp))
    >>> bool(again.rank_.equals(r.rank_))
    True
    """
    from sklearn.utils.validation import check_is_fitted

    import skhier

    check_is_fitted(ranker, "idata_")
    folder = Path(os.fspath(path))
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "format_version": FORMAT_VERSION,
        "skhier_version": skhier.__version__,
        "class": type(ranker).__name__,
        "params": _params_to_json(ranker.get_params(deep=False)),
        "fitted": {
            "formula_": ranker.formula_,
            "level_": ranker.level_,
            "term_": ranker.term_,
            "engine_": ranker.engine_,
            "n_features_in_": int(ranker.n_features_in_),
            "feature_names_in_": (
                None
                if getattr(ranker, "feature_names_in_", None) is None
                else [str(c) for c in ranker.feature_names_in_]
            ),
            "diagnostics_info": ranker.diagnostics_.to_dict()["info"],
        },
    }
    (folder / _JSON).write_text(json.dumps(meta, indent=2))
    ranker.idata_.to_netcdf(str(folder / _POSTERIOR), engine="h5netcdf")
    columns = [c for c in ranker._spec.parsed.data_columns if c in ranker._train.columns]
    _frame_to_dataset(ranker._train[columns]).to_netcdf(str(folder / _DATA), engine="h5netcdf")
    return folder


def load(path):
    """Load a ranker saved by :func:`save` (or ``HierarchicalRanker.save``).

    Parameters
    ----------
    path : str or os.PathLike
        The folder written by :func:`save`.

    Returns
    -------
    HierarchicalRanker
        A fitted ranker with the saved posterior; ``rank_``, ``diagnostics_`` and the model are
        rebuilt from it and the saved data, without sampling.

    Raises
    ------
    FileNotFoundError
        If the folder or one of its files is missing.
    ValueError
        If the files are not a saved skhier ranker, or of a newer format.

    Examples
    --------
    >>> import tempfile
    >>> from skhier import HierarchicalRanker, ScreenSimulator, load
    >>> df = ScreenSimulator(n_genes=2, sgrnas_per_gene=2, n_samples=10,
    ...                      random_state=0).fit_transform()
    >>> r = HierarchicalRanker(formula="Ht ~ 0 + H0:(1|gene/sgRNA)", sampler="pymc",
    ...                        draws=50, tune=50, chains=2, n_jobs=1, random_state=0,
    ...                        on_fail="ignore").fit(df)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     again = load(r.save(tmp))
    >>> again.formula_
    'Ht ~ 0 + H0 + (0 + H0|gene/sgRNA)'
    """
    import arviz as az
    import xarray as xr

    from skhier.diagnostics import diagnose
    from skhier.ranker import HierarchicalRanker

    folder = Path(os.fspath(path))
    for name in (_JSON, _POSTERIOR, _DATA):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder / name} does not exist: {folder} is not a ranker saved by skhier.save "
                f"(which writes {_JSON}, {_POSTERIOR} and {_DATA})."
            )
    meta = json.loads((folder / _JSON).read_text())
    if meta.get("class") != "HierarchicalRanker":
        raise ValueError(f"{folder / _JSON} does not describe a HierarchicalRanker.")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(
            f"{folder} was saved in format {meta['format_version']}, newer than this skhier "
            f"reads ({FORMAT_VERSION}); upgrade skhier."
        )
    ranker = HierarchicalRanker(**_params_from_json(meta["params"]))
    ranker._check_params()
    with xr.open_dataset(folder / _DATA, engine="h5netcdf") as ds:
        data = _dataset_to_frame(ds.load())
    idata = az.from_netcdf(str(folder / _POSTERIOR), engine="h5netcdf")
    idata.load()

    fitted = meta["fitted"]
    ranker.n_features_in_ = fitted["n_features_in_"]
    if fitted["feature_names_in_"] is not None:
        ranker.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
    prep = ranker._prepare(data)
    if prep.engine != fitted["engine_"]:
        raise ValueError(
            f"the saved ranker was fitted with engine {fitted['engine_']!r}, but this skhier "
            f"chooses {prep.engine!r} for it; load it with the skhier version that saved it "
            f"({meta['skhier_version']})."
        )
    info = fitted["diagnostics_info"]
    ranker.idata_ = idata
    ranker._model = None  # rebuilt on first access of model_
    ranker.diagnostics_ = diagnose(idata, info=info)
    ranker._finish(prep)
    return ranker
