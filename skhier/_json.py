"""Plain-Python values for JSON, from numpy and pandas ones."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["jsonable"]


def jsonable(value):
    """Convert numpy values (recursively) to plain Python for JSON.

    Parameters
    ----------
    value : object
        Scalars, arrays, dicts, lists, tuples and DataFrames (as dicts of lists), nested freely.

    Returns
    -------
    object
        Plain ``bool``, ``int``, ``float``, ``str``, ``list`` and ``dict`` values; non-finite
        floats become None and other objects their ``str``.

    Examples
    --------
    >>> import numpy as np
    >>> jsonable({"a": np.arange(2), "b": np.float64("nan"), "c": (np.int64(3), True)})
    {'a': [0, 1], 'b': None, 'c': [3, True]}
    """
    if value is None:
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, pd.DataFrame):
        return value.to_dict("list")
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value
    return str(value)
