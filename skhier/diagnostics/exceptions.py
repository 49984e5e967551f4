"""Warnings and errors of the sampler checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sklearn.exceptions import ConvergenceWarning as _SklearnConvergenceWarning

if TYPE_CHECKING:
    from skhier.diagnostics.verdict import Diagnostics


class ConvergenceWarning(_SklearnConvergenceWarning):
    """Base warning for convergence problems in skhier.

    A subclass of :class:`sklearn.exceptions.ConvergenceWarning`, so filters on scikit-learn's
    warning also catch skhier's.

    See Also
    --------
    SamplerConvergenceWarning : The warning skhier issues when a fit fails its checks.

    Examples
    --------
    >>> import sklearn.exceptions
    >>> from skhier.diagnostics import ConvergenceWarning
    >>> issubclass(ConvergenceWarning, sklearn.exceptions.ConvergenceWarning)
    True
    """


class SamplerConvergenceWarning(ConvergenceWarning):
    """Warning issued when a posterior fails the sampler health checks.

    See Also
    --------
    check_diagnostics : Warn or raise according to a :class:`Diagnostics` verdict.

    Examples
    --------
    >>> import warnings
    >>> from skhier.diagnostics import SamplerConvergenceWarning
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warnings.warn("R-hat 1.05 > 1.01", SamplerConvergenceWarning)
    >>> caught[0].category.__name__
    'SamplerConvergenceWarning'
    """


class ApproximationWarning(UserWarning):
    """Warning issued when an approximate engine's posterior is not trustworthy for some groups.

    The count engine approximates each cell's likelihood by a Gaussian; where the importance
    ratios between the exact and the approximate posterior have Pareto k above 0.7, the
    approximation cannot be corrected by reweighting.

    Examples
    --------
    >>> import warnings
    >>> from skhier.diagnostics import ApproximationWarning
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warnings.warn("Pareto k > 0.7 for 1% of the genes", ApproximationWarning)
    >>> caught[0].category.__name__
    'ApproximationWarning'
    """


class ConvergenceError(RuntimeError):
    """Raised by :func:`check_diagnostics` with ``on_fail="raise"`` when a check fails.

    Parameters
    ----------
    message : str
        What failed and what to do about it.
    diagnostics : Diagnostics, default=None
        The failed verdict, kept as the ``diagnostics`` attribute.

    Examples
    --------
    >>> from skhier.diagnostics import ConvergenceError
    >>> err = ConvergenceError("3 divergent transitions")
    >>> isinstance(err, RuntimeError), err.diagnostics is None
    (True, True)
    """

    def __init__(self, message: str, diagnostics: Diagnostics | None = None):
        super().__init__(message)
        self.diagnostics = diagnostics

