"""Input checks run before any sampling: each error names the bad value and the valid choices."""

from __future__ import annotations

import logging
import numbers

import numpy as np
import pandas as pd

from skhier.formula import INTERCEPT, ParsedFormula

__all__ = ["check_choice", "check_number", "check_data", "check_counts", "COUNT_RESPONSE_FAMILIES"]

#: Families whose response is a count (a non-negative integer).
COUNT_RESPONSE_FAMILIES = ("poisson", "negativebinomial", "binomial", "zero_inflated_poisson",
                           "zero_inflated_negativebinomial", "hurdle_poisson",
                           "hurdle_negativebinomial")

logger = logging.getLogger("skhier")


def check_choice(name: str, value, choices) -> None:
    """Raise ValueError unless ``value`` is one of ``choices``.

    Parameters
    ----------
    name : str
        Parameter name.
    value : object
        Its value.
    choices : sequence of str or None
        Valid values (None may be one of them).

    Examples
    --------
    >>> check_choice("pooling", "partial", ("partial", "none"))
    >>> check_choice("pooling", "full", ("partial", "none"))
    Traceback (most recent call last):
    ...
    ValueError: pooling='full' is not valid; choose one of ('partial', 'none').
    """
    if not (isinstance(value, str) or value is None) or value not in tuple(choices):
        raise ValueError(f"{name}={value!r} is not valid; choose one of {tuple(choices)}.")


def check_number(
    name,
    value,
    *,
    integer=False,
    low=None,
    high=None,
    low_open=False,
    high_open=False,
    allow_none=False,
) -> None:
    """Raise unless ``value`` is a number in the given range.

    Parameters
    ----------
    name : str
        Parameter name.
    value : object
        Its value.
    integer : bool, default=False
        Require an integer.
    low, high : float or None
        Bounds.
    low_open, high_open : bool, default=False
        Exclude the bound.
    allow_none : bool, default=False
        Accept None.

    Examples
    --------
    >>> check_number("draws", 10, integer=True, low=1)
    >>> check_number("hdi_prob", 1.5, low=0, high=1, low_open=True, high_open=True)
    Traceback (most recent call last):
    ...
    ValueError: hdi_prob=1.5 is out of range: it must be in (0, 1).
    """
    if value is None and allow_none:
        return
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        what = "an integer" if integer else "a number"
        raise TypeError(f"{name} must be {what}, got {value!r}.")
    bad = (
        (low is not None and (value < low or (low_open and value == low)))
        or (high is not None and (value > high or (high_open and value == high)))
        or not np.isfinite(value)
    )
    if bad:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        rng = f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
        raise ValueError(f"{name}={value!r} is out of range: it must be in {rng}.")


def check_data(
    data: pd.DataFrame, parsed: ParsedFormula, *, missing: str = "raise", response: bool = True
) -> pd.DataFrame:
    """Check the columns a formula reads; return the rows to use.

    Parameters
    ----------
    data : pandas.DataFrame
        The data (not modified).
    parsed : ParsedFormula
        The formula's terms.
    missing : {"raise", "drop"}, default="raise"
        What to do with rows where a column the model reads is NaN or infinite.
    response : bool, default=True
        Whether the response column is required.

    Returns
    -------
    pandas.DataFrame
        ``data`` itself, or a filtered copy when ``missing="drop"`` removed rows.

    Raises
    ------
    ValueError
        For a missing column, NaN/inf values, a non-numeric predictor, or a grouping factor
        with a single level.

    Examples
    --------
    >>> import pandas as pd
    >>> from skhier.formula import parse_formula
    >>> check_data(pd.DataFrame({"y": [1.0]}), parse_formula("y ~ x"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: column 'x' used by the formula 'y ~ x' is missing from the data; ...
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}.")
    needed = [c for c in parsed.data_columns if response or c != parsed.response]
    if parsed.unsupported:
        needed = [c for c in needed if c in data.columns or c == parsed.response]
    for c in needed:
        if c not in data.columns:
            raise ValueError(
                f"column {c!r} used by the formula {parsed.formula!r} is missing from the data; "
                f"the data has columns {list(map(str, data.columns))}."
            )
    numeric = [
        c
        for c in (parsed.response, *([parsed.offset] if parsed.offset else []), *parsed.columns)
        if c != INTERCEPT and c in needed
    ]
    if parsed.unsupported:
        numeric = [c for c in numeric if c in parsed.common or c == parsed.response]
    bad_rows = np.zeros(len(data), dtype=bool)
    for c in numeric:
        col = data[c]
        if not (pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)):
            raise ValueError(
                f"column {c!r} must be numeric (it is a predictor or the response), but it has "
                f"dtype {col.dtype}; encode it as numbers or use it as a grouping factor."
            )
        vals = np.asarray(col, dtype=np.float64)
        bad = ~np.isfinite(vals)
        if bad.any():
            if missing == "raise":
                raise ValueError(
                    f"column {c!r} has {int(bad.sum())} NaN or infinite value(s) (first at row "
                    f"{data.index[np.argmax(bad)]!r}); clean them or set missing='drop'."
                )
            bad_rows |= bad
    for t in parsed.group_terms:
        for f in t.factors:
            if f not in needed:
                continue
            na = data[f].isna().to_numpy()
            if na.any():
                if missing == "raise":
                    raise ValueError(
                        f"grouping column {f!r} has {int(na.sum())} missing value(s); clean "
                        "them or set missing='drop'."
                    )
                bad_rows |= na
    if bad_rows.any():
        logger.info(
            "skhier: missing='drop' dropped %d of %d rows with NaN/inf in a column the model "
            "reads.",
            int(bad_rows.sum()),
            len(data),
        )
        data = data.loc[~bad_rows]
        if len(data) == 0:
            raise ValueError("no rows left after dropping rows with missing values.")
    if response:
        for t in parsed.group_terms:
            for f in t.factors:
                n = data[f].nunique()
                if n < 2:
                    raise ValueError(
                        f"grouping column {f!r} has {n} level(s); the term ({t.name}) needs at "
                        "least 2 levels to estimate a group-level scale. Drop the term or use "
                        "pooling='complete'."
                    )
    return data


def check_counts(data: pd.DataFrame, column: str, family: str) -> None:
    """Raise unless a count family's response holds non-negative integers.

    Parameters
    ----------
    data : pandas.DataFrame
        The rows (already checked for NaN).
    column : str
        The response column.
    family : str
        The family (for the message).

    Raises
    ------
    ValueError
        Naming the first offending rows and their values.

    Examples
    --------
    >>> import pandas as pd
    >>> check_counts(pd.DataFrame({"n": [0, 3, 2.5]}), "n", "poisson")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: family='poisson' needs counts (non-negative integers) in 'n', ...row 2 (2.5).
    """
    vals = np.asarray(data[column], dtype=np.float64)
    bad = (vals < 0) | (vals != np.round(vals))
    if bad.any():
        where = np.flatnonzero(bad)[:5]
        shown = ", ".join(f"row {data.index[i]!r} ({vals[i]:g})" for i in where)
        raise ValueError(
            f"family={family!r} needs counts (non-negative integers) in {column!r}, but "
            f"{int(bad.sum())} row(s) are not: {shown}."
        )
