"""Input checks run before any sampling: each error names the bad value and the valid choices."""

from __future__ import annotations

import logging
import numbers

import numpy as np
import pandas as pd

from skhier.formula import INTERCEPT, ParsedFormula

__all__ = [
    "check_choice",
    "check_number",
    "check_data",
    "check_counts",
    "check_family_name",
    "check_priors",
    "bambi_families",
    "COUNT_RESPONSE_FAMILIES",
    "MAX_ABS_VALUE",
]

#: Families whose response is a count (a non-negative integer).
COUNT_RESPONSE_FAMILIES = ("poisson", "negativebinomial", "binomial", "zero_inflated_poisson",
                           "zero_inflated_negativebinomial", "hurdle_poisson",
                           "hurdle_negativebinomial")

#: Largest absolute value accepted in a numeric column: squares of larger values (1e300 and
#: up) overflow the log density's sums of squares.
MAX_ABS_VALUE = 1e150

#: Families fitted by skhier's own engines: accepted without importing Bambi.
_OWN_FAMILIES = ("gaussian", "negativebinomial", "poisson")

#: Distribution arguments that must be positive when they are numbers: scales and shapes.
_POSITIVE_ARGS = {"sigma", "tau", "lam", "nu"}
_POSITIVE_BY_DIST = {
    "HalfCauchy": {"beta"},
    "Cauchy": {"beta"},
    "Gamma": {"alpha", "beta"},
    "InverseGamma": {"alpha", "beta"},
    "Beta": {"alpha", "beta"},
    "Weibull": {"alpha", "beta"},
}

#: Auxiliary parameters of the families that a number fixes, and must then be positive.
_POSITIVE_FIXED = {"sigma": "the residual sd", "alpha": "the dispersion alpha"}

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
        For a missing column, NaN/inf values, values beyond :data:`MAX_ABS_VALUE` (the log
        density would overflow), a non-numeric predictor, a constant response, or a grouping
        factor with a single level.

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
    for c in numeric:
        vals = np.abs(np.asarray(data[c], dtype=np.float64))
        if len(vals) and vals.max() > MAX_ABS_VALUE:
            first = data.index[np.argmax(vals > MAX_ABS_VALUE)]
            raise ValueError(
                f"column {c!r} holds values as large as {vals.max():.3g} in absolute value "
                f"(first at row {first!r}); the model's log density overflows beyond "
                f"{MAX_ABS_VALUE:.0e}. Rescale the column (divide it by a power of ten, or take "
                "logs) and fit again."
            )
    if response and parsed.response in data.columns and len(data) > 0:
        y = np.asarray(data[parsed.response], dtype=np.float64)
        if (y == y[0]).all():
            raise ValueError(
                f"the response {parsed.response!r} is constant (every one of its {len(y)} rows "
                f"is {y[0]:g}): there is no variation to model and nothing to rank. Check that "
                "the formula names the right response column."
            )
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


def bambi_families() -> tuple[str, ...]:
    """Return the names of Bambi's built-in families, read from Bambi's own registry.

    Returns
    -------
    tuple of str
        Sorted family names (``bambi.defaults.families.BUILTIN_FAMILIES``; imports Bambi).

    Examples
    --------
    >>> "gaussian" in bambi_families() and "negativebinomial" in bambi_families()
    True
    """
    from bambi.defaults.families import BUILTIN_FAMILIES

    return tuple(sorted(BUILTIN_FAMILIES))


def check_family_name(family) -> None:
    """Raise unless ``family`` names one of Bambi's built-in families.

    The families skhier fits itself (``"gaussian"``, ``"negativebinomial"``, ``"poisson"``)
    are accepted without importing Bambi; any other name is looked up in Bambi's registry
    (:func:`bambi_families`).

    Parameters
    ----------
    family : object
        The family parameter.

    Raises
    ------
    TypeError
        If it is not a string.
    ValueError
        If Bambi has no family of that name, listing those it has.

    Examples
    --------
    >>> check_family_name("poisson")
    >>> check_family_name("gausian")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: family='gausian' is not a Bambi family (did you mean 'gaussian'?); choose one ...
    """
    if not isinstance(family, str):
        raise TypeError(f"family must be a Bambi family name (str), got {family!r}.")
    if family in _OWN_FAMILIES:
        return
    names = bambi_families()
    if family not in names:
        import difflib

        close = difflib.get_close_matches(family.lower(), names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"family={family!r} is not a Bambi family{hint}; choose one of {names}."
        )


def check_priors(priors) -> None:
    """Raise for a prior whose fixed scale is not a positive number.

    A number given as the prior of ``sigma`` (the residual sd) or ``alpha`` (the negative
    binomial's dispersion) fixes that parameter, so it must be positive; so must every numeric
    scale or shape inside a prior (``sigma``, ``tau``, ``lam``, ``nu``; ``alpha`` and ``beta``
    of the Gamma, Beta, Weibull and Cauchy families), at any depth.

    Parameters
    ----------
    priors : dict or None
        Priors by term name (``bambi.Prior``, :class:`skhier.priors.Prior` or numbers).

    Raises
    ------
    TypeError
        If ``priors`` is not a dict or None, or an entry is not a prior or a number.
    ValueError
        Naming the entry, the argument and its value.

    Examples
    --------
    >>> from skhier.priors import Prior
    >>> check_priors({"sigma": Prior("HalfNormal", {"sigma": 1.0}), "H0": 0.0})
    >>> check_priors({"sigma": -1.0})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: priors['sigma']=-1.0 fixes the residual sd, which must be positive; give a ...
    """
    from skhier.priors import Prior

    if priors is None:
        return
    if not isinstance(priors, dict):
        raise TypeError(f"priors must be a dict of term name to prior, got {priors!r}.")
    for name, given in priors.items():
        prior = Prior.from_any(given)
        if isinstance(prior, float):
            if name in _POSITIVE_FIXED and not (np.isfinite(prior) and prior > 0):
                raise ValueError(
                    f"priors[{name!r}]={given!r} fixes {_POSITIVE_FIXED[name]}, which must be "
                    f"positive; give a positive number, or a prior such as "
                    f"Prior('HalfNormal', {{'sigma': 1.0}}) to estimate it."
                )
            continue
        _check_prior_args(f"priors[{name!r}]", prior)


def _check_prior_args(where: str, prior) -> None:
    from skhier.priors import Prior

    positive = _POSITIVE_ARGS | _POSITIVE_BY_DIST.get(prior.name, set())
    for arg, value in prior.args.items():
        if isinstance(value, Prior):
            _check_prior_args(where, value)
        elif (
            arg in positive
            and isinstance(value, numbers.Real)
            and not isinstance(value, bool)
            and not (np.isfinite(value) and value > 0)
        ):
            raise ValueError(
                f"{where}: {prior!r} has {arg}={value!r}, which must be a positive number "
                f"(it is a scale or shape of {prior.name}); give {arg} > 0."
            )
