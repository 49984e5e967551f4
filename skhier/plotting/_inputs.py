"""Checks of what the plots are given: a fitted ranker, frames, ``top``."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd


def is_estimator(obj) -> bool:
    """Duck-typed HierarchicalRanker (fitted or not): avoids importing the estimator module."""
    cls = type(obj)
    return hasattr(cls, "fit") and hasattr(cls, "rank_table") and hasattr(cls, "dominance")


def fitted(estimator, attr):
    """Return a fitted attribute of an estimator, or raise NotFittedError."""
    if not hasattr(estimator, "idata_"):
        from sklearn.exceptions import NotFittedError

        raise NotFittedError(
            f"This {type(estimator).__name__} instance is not fitted yet; call fit before "
            "plotting it."
        )
    return getattr(estimator, attr)


def check_top(top, n):
    """Return the number of groups to show: ``top`` clipped to ``n`` (None shows all)."""
    if top is None:
        return n
    if isinstance(top, bool) or not isinstance(top, numbers.Integral) or top < 1:
        raise ValueError(f"top={top!r} is not valid; it must be None or a positive integer.")
    return min(int(top), n)


def check_frame(obj, what):
    """Raise unless ``obj`` is a non-empty DataFrame (``what`` names it in the message)."""
    if not isinstance(obj, pd.DataFrame):
        raise TypeError(
            f"{what} must be a pandas DataFrame or a fitted HierarchicalRanker; got "
            f"{type(obj).__name__}."
        )
    if obj.shape[0] == 0 or obj.shape[1] == 0:
        raise ValueError(f"{what} is empty (shape {obj.shape}); there is nothing to plot.")


def numeric_values(frame, what):
    """Return the frame's values as float64, or raise ValueError naming ``what``."""
    try:
        values = frame.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must hold numbers: {err}") from None
    return values


def group_name(index, default="group"):
    """Return the name of the groups of an index (its ``name``, else ``default``)."""
    return str(index.name) if index.name is not None else default
