"""Fitting many independent models at once: one screen per task, on every core or a cluster.

:func:`fit_many` fits estimator/data pairs in parallel through joblib, so the work goes wherever
joblib sends it: local processes, or the workers of a Dask cluster inside
``joblib.parallel_config(backend="dask")``. (The threads that one fit uses are
:mod:`skhier._parallel`'s business.)
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import Mapping, Sequence

import pandas as pd
from sklearn.base import clone
from sklearn.utils.parallel import Parallel, delayed

from skhier._validation import check_number

__all__ = ["fit_many"]

logger = logging.getLogger("skhier")


def _module_of(filename):
    """Name of the imported module defined in ``filename`` (what warning filters match)."""
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == filename:
            return name
    return None


def _fit_one(estimator, X, label):
    """Fit ``estimator`` on ``X`` (a joblib task); return it, the seconds and its warnings.

    The warnings are recorded under the caller's filters (``sklearn.utils.parallel`` carries
    them to the worker) and returned, so that the caller re-issues those of a remote worker.
    """
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        try:
            estimator.fit(X)
        except Exception as exc:
            exc.add_note(f"skhier.fit_many: raised while fitting the dataset {label!r}.")
            raise
    seconds = time.perf_counter() - t0
    modules = {}
    raised = []
    for w in caught:
        if w.filename not in modules:
            modules[w.filename] = _module_of(w.filename)
        raised.append((w.category, str(w.message), w.filename, w.lineno, modules[w.filename]))
    return estimator, seconds, raised


def _check_datasets(datasets):
    """Return (labels, frames, keyed) of ``datasets``: a list or dict of DataFrames."""
    if isinstance(datasets, pd.DataFrame):
        raise TypeError(
            "datasets must be a list or dict of DataFrames, got a single DataFrame; wrap it "
            "in a list ([df]) or fit the estimator directly."
        )
    if isinstance(datasets, Mapping):
        labels, frames, keyed = list(datasets.keys()), list(datasets.values()), True
    elif isinstance(datasets, Sequence) and not isinstance(datasets, str | bytes):
        labels, frames, keyed = list(range(len(datasets))), list(datasets), False
    else:
        raise TypeError(
            f"datasets must be a list or dict of pandas DataFrames, got {type(datasets).__name__}."
        )
    for label, frame in zip(labels, frames, strict=True):
        if not isinstance(frame, pd.DataFrame):
            where = f"datasets[{label!r}]"
            raise TypeError(
                f"{where} must be a pandas DataFrame (the rows of one screen), got "
                f"{type(frame).__name__}."
            )
    return labels, frames, keyed


def _check_estimators(estimators, labels, keyed):
    """Return one unfitted clone of an estimator per dataset, in the order of ``labels``."""

    def check_one(est, where):
        if not (hasattr(est, "fit") and hasattr(est, "get_params")):
            also = ", or a list or dict of them (one per dataset)" if where == "estimators" else ""
            raise TypeError(
                f"{where} must be a scikit-learn estimator (with fit and get_params){also}, "
                f"got {type(est).__name__}."
            )
        return est

    n = len(labels)
    if isinstance(estimators, Mapping):
        if not keyed:
            raise TypeError(
                "estimators is a dict but datasets is a list; give a list of estimators (one "
                "per dataset, in order), one estimator for all, or datasets as a dict with "
                "the same keys."
            )
        known = set(labels)
        missing = [k for k in labels if k not in estimators]
        extra = [k for k in estimators if k not in known]
        if missing or extra:
            raise ValueError(
                "estimators and datasets must have the same keys; "
                f"missing estimators for {missing}, no datasets for {extra}."
            )
        given = [check_one(estimators[k], f"estimators[{k!r}]") for k in labels]
    elif isinstance(estimators, Sequence) and not isinstance(estimators, str | bytes):
        if len(estimators) != n:
            raise ValueError(
                f"estimators has {len(estimators)} item(s) but datasets has {n}; give one "
                "estimator per dataset (in the same order), or a single estimator to clone "
                "for every dataset."
            )
        given = [check_one(est, f"estimators[{i}]") for i, est in enumerate(estimators)]
    else:
        given = [check_one(estimators, "estimators")] * n
    return [clone(est) for est in given]


def _reissue(raised, label):
    """Warn again, in this process, what a fit warned (naming its dataset)."""
    for category, text, filename, lineno, module in raised:
        try:
            warnings.warn_explicit(
                f"{text} (skhier.fit_many: dataset {label!r})",
                category,
                filename,
                lineno,
                module=module,
            )
        except TypeError:  # a warning class that cannot be built from its text alone
            warnings.warn_explicit(
                f"{category.__name__}: {text} (skhier.fit_many: dataset {label!r})",
                UserWarning,
                filename,
                lineno,
                module=module,
            )


def fit_many(estimators, datasets, *, n_jobs=None, verbose=0):
    """Fit estimators on many independent datasets in parallel, through joblib.

    Each dataset (one screen, say) is fitted by its own clone of an estimator, as one joblib
    task: on local processes with ``n_jobs``, or on the workers of a Dask cluster inside
    ``joblib.parallel_config(backend="dask")`` (every worker needs skhier installed).

    Parameters
    ----------
    estimators : estimator, list of estimators or dict of estimators
        One estimator, cloned for every dataset; or one per dataset: a list in the order of
        ``datasets`` (of a dict: its order), or a dict with the same keys as ``datasets``.
        Any scikit-learn estimator whose ``fit`` takes a DataFrame alone: a
        :class:`skhier.HierarchicalRanker` with a formula, a Pipeline ending in one, or a
        :class:`skhier.LOOSearchCV` of either. The given estimators are not modified: each is
        cloned.
    datasets : list of DataFrame or dict of DataFrame
        The data of each fit. A dict returns a dict with the same keys.
    n_jobs : int or None, default=None
        Fits run at once by joblib. None means 1 unless in a :func:`joblib.parallel_config`
        context (with ``backend="dask"``, every thread of the cluster), -1 every core. Give
        the estimators ``n_jobs=1`` when several fits run on one machine.
    verbose : int, default=0
        0 logs each finished fit at DEBUG level of the ``"skhier"`` logger, more at INFO
        level.

    Returns
    -------
    list or dict of estimators
        The fitted clones: a list in the order of ``datasets``, or a dict with its keys.

    Raises
    ------
    TypeError
        If ``datasets`` is not a list or dict of DataFrames, or an estimator is not a
        scikit-learn estimator.
    ValueError
        If the estimators do not match the datasets in number or keys.

    See Also
    --------
    skhier.LOOSearchCV : Choosing among models of one dataset, also through joblib.

    Notes
    -----
    A fit that raises stops the call with its error, noting the dataset. Warnings of a fit
    are issued again in the calling process with the dataset named (a fit on a remote worker
    would leave them in that worker's log); the caller's warning filters apply in the worker
    too. A fixed integer ``random_state`` gives the same fit wherever it runs.

    Examples
    --------
    >>> from skhier import HierarchicalRanker, ScreenSimulator, fit_many
    >>> screens = {f"screen{i}": ScreenSimulator(n_genes=4, sgrnas_per_gene=3, n_samples=10,
    ...                                          random_state=i).fit_transform()
    ...            for i in range(2)}
    >>> ranker = HierarchicalRanker(formula="Ht ~ 0 + H0:(1|gene/sgRNA)", level="gene",
    ...                             draws=200, tune=200, chains=2, n_jobs=1,
    ...                             random_state=0, on_fail="ignore")
    >>> fitted = fit_many(ranker, screens)
    >>> list(fitted)
    ['screen0', 'screen1']
    >>> fitted["screen1"].rank_.shape[0]
    4

    The same call on a Dask cluster (every worker needs skhier installed):

    >>> import joblib
    >>> from distributed import Client  # doctest: +SKIP
    >>> client = Client("tcp://scheduler-address:8786")  # doctest: +SKIP
    >>> with joblib.parallel_config(backend="dask"):  # doctest: +SKIP
    ...     fitted = fit_many(ranker, screens)
    """
    labels, frames, keyed = _check_datasets(datasets)
    if n_jobs is not None:
        check_number("n_jobs", n_jobs, integer=True)
        if n_jobs == 0:
            raise ValueError("n_jobs=0 is not valid; give a positive number, -1 or None.")
    check_number("verbose", verbose, integer=True, low=0)
    clones = _check_estimators(estimators, labels, keyed)
    level = logging.INFO if verbose else logging.DEBUG
    logger.log(level, "skhier: fit_many fits %d dataset(s).", len(frames))
    tasks = (
        delayed(_fit_one)(est, X, label)
        for est, X, label in zip(clones, frames, labels, strict=True)
    )
    fitted = []
    results = Parallel(n_jobs=n_jobs, return_as="generator")(tasks)
    for i, (est, seconds, raised) in enumerate(results):
        label = labels[i]
        _reissue(raised, label)
        logger.log(
            level,
            "skhier: fit_many fitted dataset %r (%d/%d) in %.2f s.",
            label,
            i + 1,
            len(frames),
            seconds,
        )
        fitted.append(est)
    return dict(zip(labels, fitted, strict=True)) if keyed else fitted
