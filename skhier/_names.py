"""Names shared by every module: posterior dimensions, joined factors, the coefficient level.

The posterior uses Bambi's names whatever engine fitted it: a common coefficient per column
(``H0``, ``Intercept``), ``H0|gene`` for group-specific coefficients with dimension
``gene__factor_dim``, ``H0|gene_sigma`` for their scales. A factor that joins several columns
(an interaction or a nested level) is named ``gene:sgRNA``; Bambi itself needs a plain column
name for it, which is ``gene__sgRNA`` (:func:`joined_column`), and :func:`rename_joined` maps
the names of a posterior between the two spellings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = [
    "COEF_LEVEL",
    "dim_name",
    "factor_name",
    "joined_column",
    "rename_joined",
    "scale_name",
]

#: The level name of the ranking when the model has no grouping factor (coefficients ranked).
COEF_LEVEL = "coefficient"

_FACTOR_SEP = ":"
_COLUMN_SEP = "__"


def dim_name(factor: str) -> str:
    """Return Bambi's dimension name for a factor's levels.

    Parameters
    ----------
    factor : str
        Factor name (``"gene"``, ``"gene:sgRNA"``).

    Returns
    -------
    str
        ``{factor}__factor_dim``.

    Examples
    --------
    >>> dim_name("gene")
    'gene__factor_dim'
    """
    return f"{factor}__factor_dim"


def scale_name(term: str) -> str:
    """Return the posterior name of a group term's scale.

    Parameters
    ----------
    term : str
        Group term name (``"H0|gene"``).

    Returns
    -------
    str
        ``{term}_sigma``.

    Examples
    --------
    >>> scale_name("H0|gene")
    'H0|gene_sigma'
    """
    return f"{term}_sigma"


def factor_name(columns: Iterable[str]) -> str:
    """Return the name of the factor that joins ``columns`` (``"gene:sgRNA"``).

    Parameters
    ----------
    columns : iterable of str
        The grouping columns, coarse to fine.

    Returns
    -------
    str
        The columns joined by ``":"``.

    Examples
    --------
    >>> factor_name(("gene", "sgRNA"))
    'gene:sgRNA'
    """
    return _FACTOR_SEP.join(columns)


def joined_column(columns: Iterable[str]) -> str:
    """Return the plain column name Bambi uses for a joined factor (``"gene__sgRNA"``).

    Parameters
    ----------
    columns : iterable of str
        The grouping columns, coarse to fine.

    Returns
    -------
    str
        The columns joined by ``"__"``.

    Examples
    --------
    >>> joined_column(("gene", "sgRNA"))
    'gene__sgRNA'
    """
    return _COLUMN_SEP.join(columns)


def rename_joined(dataset, renames: Mapping[str, str], *, to_bambi: bool = False):
    """Rename a posterior's variables and dimensions between the two spellings of joined factors.

    Parameters
    ----------
    dataset : xarray.Dataset
        The posterior (not modified).
    renames : mapping of str to str
        Joined column name to factor name (``{"gene__sgRNA": "gene:sgRNA"}``).
    to_bambi : bool, default=False
        False renames Bambi's spelling to skhier's (``gene__sgRNA`` to ``gene:sgRNA``); True
        the other way.

    Returns
    -------
    xarray.Dataset
        The renamed dataset (the input itself when nothing is renamed).

    Examples
    --------
    >>> import numpy as np
    >>> import xarray as xr
    >>> ds = xr.Dataset({"1|g__s": (("chain", "g__s__factor_dim"), np.zeros((1, 2)))})
    >>> list(rename_joined(ds, {"g__s": "g:s"}).data_vars)
    ['1|g:s']
    """
    pairs = [(f, j) if to_bambi else (j, f) for j, f in renames.items()]
    mapping = {}
    for name in [*dataset.data_vars, *dataset.dims]:
        new = name
        for old, replacement in pairs:
            new = new.replace(old, replacement)
        if new != name:
            mapping[name] = new
    return dataset.rename(mapping) if mapping else dataset
