"""Choosing models the Bayesian way inside scikit-learn.

:class:`LOOSearchCV` searches a grid of parameters by PSIS-LOO: each candidate is fitted once
on all rows and scored by its expected log predictive density of left-out rows, with the rows
whose Pareto k is too large for importance sampling refitted exactly. The splitters answer two
different cross-validation questions: :class:`GroupLevelKFold` leaves out whole groups (how well
are *new* groups predicted?), :class:`WithinGroupKFold` leaves out rows within every group (how
well are new measurements of *known* groups predicted?). :func:`make_lpd_scorer` is the held-out
log predictive density as a ``scoring=`` callable.
"""

from __future__ import annotations

import logging
import numbers
import time
import warnings
from copy import deepcopy

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.model_selection import BaseCrossValidator, ParameterGrid
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing, check_random_state, get_tags
from sklearn.utils.validation import check_is_fitted

from skhier._validation import check_choice, check_number
from skhier.predictive import FAMILIES

__all__ = [
    "LOOSearchCV",
    "GroupLevelKFold",
    "WithinGroupKFold",
    "make_lpd_scorer",
    "lpd_scorer",
]

logger = logging.getLogger("skhier")

RULES = ("best", "one_se")
#: Upper edges of the Pareto k bins counted in ``cv_results_`` (the last bin is (1, inf)).
K_BINS = {"n_k_good": 0.5, "n_k_ok": 0.7, "n_k_bad": 1.0, "n_k_very_bad": np.inf}


# ---------------------------------------------------------------------------- helpers
def _final_ranker(estimator):
    """Return the HierarchicalRanker at the end of ``estimator`` (itself or a Pipeline's last)."""
    from skhier.ranker import HierarchicalRanker

    last = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    if not isinstance(last, HierarchicalRanker):
        raise TypeError(
            "estimator must be a HierarchicalRanker or a Pipeline whose last step is one, got "
            f"{type(estimator).__name__}"
            + (f" ending in {type(last).__name__}" if last is not estimator else "")
            + "."
        )
    return last


def _final_input(fitted, X):
    """Return ``X`` as the final step of a fitted estimator sees it."""
    if isinstance(fitted, Pipeline) and len(fitted.steps) > 1:
        return fitted[:-1].transform(X)
    return X


def _lppd_rows(fitted, X, y=None):
    """Log pointwise predictive density of each row: ``log mean_s p(y_i | theta_s)``.

    What :meth:`skhier.HierarchicalRanker.score` averages (:func:`skhier.scoring.pointwise_lppd`).
    ``fitted`` is a fitted ranker, a fitted Pipeline ending in one, or a fitted search holding
    one as ``best_estimator_``.
    """
    from skhier.scoring import pointwise_lppd

    if not isinstance(fitted, Pipeline) and hasattr(fitted, "best_estimator_"):
        fitted = fitted.best_estimator_
    return pointwise_lppd(_final_ranker(fitted), _final_input(fitted, X), y)


def _subset_params(params, n_rows, rows):
    """Fit parameters of the given rows: row-aligned array-likes are indexed, others kept."""
    out = {}
    for key, value in params.items():
        if hasattr(value, "__len__") and not isinstance(value, str | bytes | dict):
            if len(value) == n_rows:
                out[key] = _safe_indexing(value, rows)
                continue
        out[key] = value
    return out


def _k_counts(k):
    """Rows per Pareto k bin; NaN counts as above 1 (no estimate means no reliable weights)."""
    k = np.where(np.isnan(k), np.inf, k)
    lower = -np.inf
    counts = {}
    for name, upper in K_BINS.items():
        counts[name] = int(np.sum((k > lower) & (k <= upper)))
        lower = upper
    return counts


def _refit_folds(rows, max_refits):
    """Split the rows to refit into at most ``max_refits`` folds (one row each when they fit).

    Rows are dealt in their order: row ``i`` of the sorted rows goes to fold ``i % K``.
    """
    rows = np.sort(np.asarray(rows, dtype=np.intp))
    n_folds = min(len(rows), max_refits)
    return [rows[j::n_folds] for j in range(n_folds)]


def _fit_candidate(estimator, X, y, fit_params, keep):
    """Fit one candidate on all rows and compute its PSIS-LOO (worker of LOOSearchCV.fit)."""
    from skhier.scoring import ParetoKWarning

    t0 = time.perf_counter()
    estimator.fit(X, y, **fit_params)
    t1 = time.perf_counter()
    ranker = _final_ranker(estimator)
    with warnings.catch_warnings():
        # The search refits the rows with a high Pareto k (or warns itself when it cannot).
        warnings.filterwarnings("ignore", category=ParetoKWarning)
        res = ranker.loo_
    loo_i = np.asarray(res["loo_i"], dtype=np.float64)
    data = ranker.plan_.data
    n_rows = len(X)
    if len(data) == n_rows:
        positions = np.arange(n_rows)
    else:  # missing="drop" removed rows: find the scored ones among the fitted rows
        index = _final_input(estimator, X).index
        if not index.is_unique:
            raise ValueError(
                f"the ranker dropped {n_rows - len(data)} row(s) with missing values, and X "
                "has a non-unique index, so the scored rows cannot be matched to the rows of "
                "X; reset the index or drop the rows before the search."
            )
        positions = index.get_indexer(data.index)
    return {
        "loo_i": loo_i,
        "pareto_k": np.asarray(res["pareto_k"], dtype=np.float64),
        "lppd": float(res["elpd_loo"] + res["p_loo"]),
        "n_samples": int(res["n_samples"]),
        "good_k": float(res["good_k"]),
        "positions": positions,
        "family": ranker.plan_.family,
        "fit_time": t1 - t0,
        "score_time": time.perf_counter() - t1,
        "estimator": estimator if keep else None,
    }


def _refit_fold(estimator, X, y, fit_params, test):
    """Fit a candidate without the rows ``test``; return their held-out lppd and the time."""
    t0 = time.perf_counter()
    n_rows = len(X)
    train = np.setdiff1d(np.arange(n_rows), test)
    y_train = None if y is None else _safe_indexing(y, train)
    estimator.fit(_safe_indexing(X, train), y_train, **_subset_params(fit_params, n_rows, train))
    y_test = None if y is None else _safe_indexing(y, test)
    lppd = _lppd_rows(estimator, _safe_indexing(X, test), y_test)
    return lppd, time.perf_counter() - t0


def _elpd_data(loo_i, lppd, pareto_k, n_samples, good_k, replaced):
    """ELPDData of pointwise elpd values; ``warning`` for high k rows that were not replaced."""
    from skhier.scoring import elpd_data

    n = len(loo_i)
    lppd_i = np.full(n, lppd / n)  # only its sum enters (p_loo = lppd - elpd_loo)
    res = elpd_data(loo_i, lppd_i, pareto_k, n_samples, warn=False)
    keep = ~replaced
    res["warning"] = bool(np.any(~(pareto_k[keep] <= good_k)))
    return res


# ---------------------------------------------------------------------------- search
class LOOSearchCV(MetaEstimatorMixin, BaseEstimator):
    """Search a grid of parameters by PSIS-LOO, with exact refits where PSIS fails.

    Each candidate (a clone of ``estimator`` with one combination of ``param_grid``) is fitted
    once on all rows and scored by its PSIS-LOO expected log predictive density ``elpd_loo``
    (:func:`skhier.scoring.loo`, the ranker's ``loo_``): no cross-validation fits, yet the
    score estimates how well left-out rows are predicted. Rows whose Pareto k exceeds
    ``refit_k_threshold`` are those PSIS cannot estimate reliably; their contributions are
    replaced by the exact log predictive density of a fit without them.

    Parameters
    ----------
    estimator : HierarchicalRanker or Pipeline
        The model; a Pipeline's last step must be a :class:`skhier.HierarchicalRanker` (its
        ``loo_`` scores the candidate, on the rows as the Pipeline transformed them).
    param_grid : dict or list of dict
        Parameter names (``"pooling"``, or ``"rank__pooling"`` in a Pipeline) to lists of
        values, as for :class:`sklearn.model_selection.GridSearchCV`. The candidates are in
        the order of :class:`sklearn.model_selection.ParameterGrid`: names sorted, values in
        the given order, the last name varying fastest.
    rule : {"best", "one_se"}, default="best"
        How the candidate is chosen. ``"best"``: the highest ``elpd_loo`` (the first in grid
        order on a tie). ``"one_se"``: the *first candidate in grid order* whose ``elpd_loo`` is
        within one standard error of the difference (``dse``) of the highest; list the values
        from the simplest model to the most complex (e.g. ``pooling=["complete", "partial",
        "none"]``) so that the first is the simplest.
    refit_k_threshold : float, default=0.7
        Rows with Pareto k above this are refitted exactly. ``-inf`` refits every row (exact
        LOO or K-fold), ``inf`` none. Rows whose k could not be estimated (NaN) count as above.
    max_exact_refits : int, default=10
        Refits allowed per candidate. With at most this many rows above the threshold, each is
        left out alone (exact LOO, one refit per row); with more, they are dealt into this many
        folds (the ``i``-th row by position goes to fold ``i % max_exact_refits``), each fold
        left out in one refit, and each row gets the density of its fold's fit (K-fold, a
        little pessimistic since each fit has fewer rows).
    n_jobs : int or None, default=None
        Candidates fitted in parallel by joblib, and then the refits of every candidate in
        parallel. None means 1 unless in a :func:`joblib.parallel_config` context (a Dask
        backend works there), -1 every core. The ranker's own ``n_jobs`` sets its threads:
        give it 1 when the search runs several candidates at once.
    refit : bool, default=True
        Keep the chosen candidate's fit (on all rows) as ``best_estimator_`` for
        :meth:`predict`, :meth:`score` and ``rank_``. Candidates are already fitted on all
        rows, so nothing is refitted; every candidate's fit is held until the choice is made.
        False keeps none (the workers return only the scores).
    verbose : int, default=0
        0 logs the progress at DEBUG level of the ``"skhier"`` logger, more at INFO level.

    Attributes
    ----------
    cv_results_ : dict of str to ndarray
        One entry per candidate, in grid order: ``params``, ``param_<name>`` (masked arrays),
        ``elpd_loo``, ``se``, ``p_loo`` (after the exact refits), the number of rows with
        Pareto k in (-inf, 0.5], (0.5, 0.7], (0.7, 1] and (1, inf) (``n_k_good``, ``n_k_ok``,
        ``n_k_bad``, ``n_k_very_bad``, from the fit on all rows), ``n_refit_rows`` and
        ``n_refits``, ``elpd_diff`` and ``dse`` (the difference to the highest ``elpd_loo`` and
        its standard error, ``sqrt(n var(elpd_i^top - elpd_i))`` from the pointwise values as
        :func:`arviz.compare` computes it), stacking ``weight`` (:func:`arviz.compare`),
        ``rank_test_score`` (1 is the highest ``elpd_loo``), ``fit_time``, ``score_time`` (the
        PSIS-LOO) and ``refit_time`` (every exact refit), in seconds.
    best_index_ : int
        Index of the chosen candidate in ``cv_results_``.
    best_params_ : dict
        Its parameters.
    best_score_ : float
        Its ``elpd_loo``.
    best_estimator_ : HierarchicalRanker or Pipeline
        Its fit on all rows (with ``refit=True``).
    loo_results_ : list of arviz.ELPDData
        Each candidate's PSIS-LOO after the exact refits (``loo_i`` replaced on the refitted
        rows, ``pareto_k`` of the fit on all rows), accepted by :func:`arviz.compare`.
    refit_rows_ : list of ndarray of int
        Each candidate's refitted rows (positions in the scored rows).
    n_candidates_ : int
        Number of candidates.
    n_features_in_ : int
        Number of columns of ``X`` seen by ``best_estimator_``.

    See Also
    --------
    skhier.compare : PSIS-LOO comparison of fitted rankers, without refits.
    GroupLevelKFold : Cross-validation leaving out whole groups.
    WithinGroupKFold : Cross-validation leaving out rows of every group.

    Notes
    -----
    PSIS-LOO answers "how well are new rows of the *known* groups predicted", as
    :class:`WithinGroupKFold` does, at the cost of one fit per candidate (plus the refits). For
    new groups, cross-validate with :class:`GroupLevelKFold` instead. A refitted row keeps its
    Pareto k in the counts; its contribution to ``elpd_loo`` is then exact (up to Monte Carlo
    error). Rows with k between ``good_k`` (0.62 for 400 draws) and the threshold keep their
    PSIS-LOO values; ``loo_results_[i]["warning"]`` says whether a candidate has such rows.
    Exact refits need the held-out density, implemented for the Gaussian, Poisson and negative
    binomial families (:data:`skhier.predictive.FAMILIES`); a candidate of another family
    (Bambi's engine) keeps the PSIS-LOO values of its high k rows, with a
    :class:`skhier.scoring.ParetoKWarning`.

    Examples
    --------
    >>> from skhier import HierarchicalRanker, ScreenSimulator
    >>> from skhier.model_selection import LOOSearchCV
    >>> df = ScreenSimulator(n_genes=4, sgrnas_per_gene=3, n_samples=10,
    ...                      random_state=0).fit_transform()
    >>> ranker = HierarchicalRanker(formula="Ht ~ 0 + H0:(1|gene/sgRNA)", level="gene",
    ...                             draws=200, tune=200, chains=2, n_jobs=1,
    ...                             random_state=0, on_fail="ignore")
    >>> search = LOOSearchCV(ranker, {"pooling": ["complete", "partial"]}).fit(df)
    >>> search.best_params_
    {'pooling': 'partial'}
    >>> bool(search.cv_results_["elpd_diff"][search.best_index_] == 0.0)
    True
    >>> search.rank_.shape[0]
    4
    """

    def __init__(
        self,
        estimator,
        param_grid,
        *,
        rule="best",
        refit_k_threshold=0.7,
        max_exact_refits=10,
        n_jobs=None,
        refit=True,
        verbose=0,
    ):
        self.estimator = estimator
        self.param_grid = param_grid
        self.rule = rule
        self.refit_k_threshold = refit_k_threshold
        self.max_exact_refits = max_exact_refits
        self.n_jobs = n_jobs
        self.refit = refit
        self.verbose = verbose

    # ------------------------------------------------------------------ validation
    def _check_params(self):
        """Check every parameter and build the candidates, before any fitting."""
        check_choice("rule", self.rule, RULES)
        t = self.refit_k_threshold
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or np.isnan(t):
            raise TypeError(
                f"refit_k_threshold must be a number (-inf refits every row, inf none), got {t!r}."
            )
        check_number("max_exact_refits", self.max_exact_refits, integer=True, low=1)
        check_number("verbose", self.verbose, integer=True, low=0)
        if not isinstance(self.refit, bool | np.bool_):
            raise TypeError(f"refit must be True or False, got {self.refit!r}.")
        if self.n_jobs is not None:
            check_number("n_jobs", self.n_jobs, integer=True)
            if self.n_jobs == 0:
                raise ValueError("n_jobs=0 is not valid; give a positive number, -1 or None.")
        _final_ranker(self.estimator)
        candidates = []
        for params in ParameterGrid(self.param_grid):
            est = clone(self.estimator).set_params(**params)  # names the valid parameters
            _final_ranker(est)._check_params()  # every value checked before any fit
            candidates.append((params, est))
        if not candidates:
            raise ValueError(
                f"param_grid={self.param_grid!r} has no candidates; give a dict of parameter "
                "names to lists of values, or a non-empty list of such dicts."
            )
        return candidates

    def _log(self, msg, *args):
        logger.log(logging.INFO if self.verbose else logging.DEBUG, msg, *args)

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, **fit_params):
        """Fit every candidate on all rows, score it by PSIS-LOO with exact refits, choose.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            The data, as for the estimator's ``fit``.
        y : array-like of shape (n_samples,), default=None
            The response; None reads it from ``X`` (formula models).
        **fit_params
            Passed to the estimator's ``fit`` (row-aligned arrays are subset for the refits).

        Returns
        -------
        self : LOOSearchCV
            The fitted search.
        """
        candidates = self._check_params()
        n_rows = len(X)
        keep = bool(self.refit)
        parallel = Parallel(n_jobs=self.n_jobs)
        self._log("skhier: LOOSearchCV fits %d candidate(s) on %d rows.", len(candidates), n_rows)
        first = parallel(
            delayed(_fit_candidate)(est, X, y, fit_params, keep) for _, est in candidates
        )
        self._check_rows(candidates, first)
        tasks = self._refit_tasks(candidates, first)
        if tasks:
            self._log("skhier: LOOSearchCV refits %d fold(s) exactly.", len(tasks))
        done = parallel(
            delayed(_refit_fold)(
                clone(candidates[c][1]), X, y, fit_params, first[c]["positions"][rows]
            )
            for c, rows in tasks
        )
        self._set_results(candidates, first, tasks, done)
        if keep:
            self.best_estimator_ = first[self.best_index_]["estimator"]
        return self

    def _check_rows(self, candidates, first):
        sizes = {i: len(f["loo_i"]) for i, f in enumerate(first)}
        if len(set(sizes.values())) > 1:
            shown = {str(candidates[i][0]): n for i, n in sizes.items()}
            raise ValueError(
                f"the candidates scored different numbers of rows ({shown}): PSIS-LOO compares "
                "models of the same rows; drop rows with missing values before the search."
            )

    def _refit_tasks(self, candidates, first):
        """Return (candidate, scored rows) of every exact refit, warning where none is possible."""
        from skhier.scoring import ParetoKWarning

        tasks = []
        for c, f in enumerate(first):
            high = np.flatnonzero(~(f["pareto_k"] <= self.refit_k_threshold))
            f["high"] = high
            if not len(high):
                continue
            if f["family"] not in FAMILIES:
                warnings.warn(
                    f"candidate {candidates[c][0]} (family={f['family']!r}) has {len(high)} "
                    f"row(s) with Pareto k > {self.refit_k_threshold}, but exact refits need the "
                    f"held-out density, implemented for the families {FAMILIES} only: those "
                    "rows keep their PSIS-LOO values.",
                    ParetoKWarning,
                    stacklevel=3,
                )
                f["high"] = high[:0]
                continue
            tasks.extend((c, rows) for rows in _refit_folds(high, self.max_exact_refits))
        return tasks

    def _set_results(self, candidates, first, tasks, done):
        n_cand = len(candidates)
        pointwise = np.vstack([f["loo_i"] for f in first])
        refit_time = np.zeros(n_cand)
        n_refits = np.zeros(n_cand, dtype=np.intp)
        for (c, rows), (lppd, seconds) in zip(tasks, done, strict=True):
            pointwise[c, rows] = lppd
            refit_time[c] += seconds
            n_refits[c] += 1
        n = pointwise.shape[1]
        results = []
        for c, f in enumerate(first):
            replaced = np.zeros(n, dtype=bool)
            replaced[f["high"]] = True
            res = _elpd_data(
                pointwise[c], f["lppd"], f["pareto_k"], f["n_samples"], f["good_k"], replaced
            )
            results.append(res)
            self._log(
                "skhier: candidate %d/%d %s: elpd_loo %.2f (se %.2f), %d row(s) refitted in %d "
                "fit(s).",
                c + 1,
                n_cand,
                candidates[c][0],
                res["elpd_loo"],
                res["se"],
                len(f["high"]),
                n_refits[c],
            )
        elpd = pointwise.sum(axis=1)
        top = int(np.argmax(elpd))
        # Differences to the highest elpd_loo and their standard errors, from the pointwise
        # values (arviz.compare's dse).
        elpd_diff = elpd[top] - elpd
        dse = np.sqrt(n * np.var(pointwise[top] - pointwise, axis=1))
        if self.rule == "best":
            best = top
        else:  # the first candidate in grid order within one dse of the highest
            best = int(np.flatnonzero(elpd_diff <= dse)[0])
        table = {
            "elpd_loo": elpd,
            "elpd_diff": elpd_diff,
            "dse": dse,
            "n_refits": n_refits,
            "refit_time": refit_time,
        }
        self.cv_results_ = _cv_results(candidates, first, results, table)
        self.loo_results_ = results
        self.refit_rows_ = [f["high"] for f in first]
        self.n_candidates_ = n_cand
        self.best_index_ = best
        self.best_params_ = candidates[best][0]
        self.best_score_ = float(elpd[best])

    # ------------------------------------------------------------------ delegation
    def _best(self):
        check_is_fitted(self, "best_index_")
        if not hasattr(self, "best_estimator_"):
            raise AttributeError(
                "this LOOSearchCV was fitted with refit=False, so it kept no best_estimator_; "
                "set refit=True to predict, score or rank with the chosen candidate."
            )
        return self.best_estimator_

    def predict(self, X, **predict_params):
        """Predict with the chosen candidate (``best_estimator_.predict``).

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            New data.
        **predict_params
            Passed on, e.g. ``return_std=True``.

        Returns
        -------
        ndarray of shape (n_samples,) or tuple of ndarray
            What the estimator's ``predict`` returns.
        """
        return self._best().predict(X, **predict_params)

    def score(self, X, y=None):
        """Mean log pointwise predictive density of the rows under the chosen candidate.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            Data.
        y : array-like of shape (n_samples,), default=None
            Response; None reads it from ``X``.

        Returns
        -------
        float
            ``best_estimator_.score(X, y)`` (higher is better).
        """
        return self._best().score(X, y)

    @property
    def rank_(self):
        """The chosen candidate's ranking (its ranker's ``rank_``)."""
        return _final_ranker(self._best()).rank_

    @property
    def dominance_(self):
        """The chosen candidate's dominance matrix (its ranker's ``dominance_``)."""
        return _final_ranker(self._best()).dominance_

    @property
    def n_features_in_(self):
        """Number of columns of ``X`` seen by the chosen candidate."""
        return self._best().n_features_in_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        sub = get_tags(self.estimator)
        tags.estimator_type = sub.estimator_type
        tags.regressor_tags = deepcopy(sub.regressor_tags)
        tags.input_tags = deepcopy(sub.input_tags)
        tags.non_deterministic = sub.non_deterministic
        return tags


def _cv_results(candidates, first, results, table):
    """Assemble ``cv_results_``: one entry per candidate, in grid order."""
    from scipy.stats import rankdata

    n_cand = len(candidates)
    params = [p for p, _ in candidates]
    out = {"params": params}
    for name in sorted({name for p in params for name in p}):
        col = np.ma.MaskedArray(np.empty(n_cand, dtype=object), mask=True)
        for i, p in enumerate(params):
            if name in p:
                col[i] = p[name]
        out[f"param_{name}"] = col
    out["elpd_loo"] = table["elpd_loo"]
    out["se"] = np.array([float(r["se"]) for r in results])
    out["p_loo"] = np.array([float(r["p_loo"]) for r in results])
    counts = [_k_counts(f["pareto_k"]) for f in first]
    for key in K_BINS:
        out[key] = np.array([c[key] for c in counts], dtype=np.intp)
    out["n_refit_rows"] = np.array([len(f["high"]) for f in first], dtype=np.intp)
    out["n_refits"] = table["n_refits"]
    out["elpd_diff"] = table["elpd_diff"]
    out["dse"] = table["dse"]
    out["weight"] = _stacking_weights(results)
    out["rank_test_score"] = rankdata(-table["elpd_loo"], method="min").astype(np.int32)
    out["fit_time"] = np.array([f["fit_time"] for f in first])
    out["score_time"] = np.array([f["score_time"] for f in first])
    out["refit_time"] = table["refit_time"]
    return out


def _stacking_weights(results):
    """Stacking weights of the candidates' pointwise elpd (:func:`arviz.compare`)."""
    import arviz as az

    if len(results) == 1:
        return np.ones(1)
    named = {str(i): r for i, r in enumerate(results)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # high k is handled by the search
        table = az.compare(named, ic="loo", method="stacking")
    return np.array([float(table.loc[str(i), "weight"]) for i in range(len(results))])


# ---------------------------------------------------------------------------- splitters
def _level_codes(X, level, who):
    """Integer codes of the groups at ``level`` (a column of X, or columns joined by ':')."""
    if not isinstance(level, str):
        raise TypeError(f"{who}: level must be a column name (str), got {level!r}.")
    if not isinstance(X, pd.DataFrame):
        raise TypeError(
            f"{who} reads the groups from the column {level!r} of X, so X must be a pandas "
            f"DataFrame, got {type(X).__name__}."
        )
    parts = level.split(":")
    if level in X.columns:
        labels = X[level]
    elif len(parts) > 1 and all(p in X.columns for p in parts):
        labels = X[parts].astype(str).agg(":".join, axis=1).where(X[parts].notna().all(axis=1))
    else:
        raise ValueError(
            f"{who}: level={level!r} is not a column of X; choose one of "
            f"{[str(c) for c in X.columns]} (or nested columns joined by ':', e.g. "
            "'gene:sgRNA')."
        )
    missing = labels.isna().to_numpy()
    if missing.any():
        raise ValueError(
            f"{who}: the column {level!r} has {int(missing.sum())} missing value(s) (first at "
            f"row {X.index[np.argmax(missing)]!r}); every row needs a group."
        )
    codes, uniques = pd.factorize(labels, sort=True)
    return codes, len(uniques)


class _LevelSplitter(BaseCrossValidator):
    """Shared parameters and checks of the splitters that read a grouping column from X."""

    def __init__(self, *, level, n_splits=5, shuffle=False, random_state=None):
        self.level = level
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state

    def _check(self):
        who = type(self).__name__
        check_number("n_splits", self.n_splits, integer=True, low=2)
        if not isinstance(self.shuffle, bool | np.bool_):
            raise TypeError(f"{who}: shuffle must be True or False, got {self.shuffle!r}.")
        if not self.shuffle and self.random_state is not None:
            raise ValueError(
                f"{who}: random_state={self.random_state!r} has no effect with shuffle=False; "
                "set shuffle=True or leave random_state=None."
            )
        return who

    def get_n_splits(self, X=None, y=None, groups=None):
        """Return the number of splits.

        Parameters
        ----------
        X, y, groups : object
            Ignored, present for API compatibility.

        Returns
        -------
        int
            ``n_splits``.
        """
        self._check()
        return int(self.n_splits)


class GroupLevelKFold(_LevelSplitter):
    """K-fold over whole groups of a level: predicting *new* groups.

    Every group at ``level`` (every gene, say) is in the test set of exactly one split and
    never straddles train and test: the test rows of a split belong to groups the model did not
    see, so they are predicted from the hierarchy alone (the population effect and the group
    scale). Use it to ask whether the model generalizes to genes not in the screen. Folds are
    balanced by rows: groups are taken largest first (ties in label order, or at random with
    ``shuffle=True``) and each goes to the fold with the fewest rows so far.

    Parameters
    ----------
    level : str
        Column of ``X`` holding the groups (``"gene"``), or nested columns joined by ``":"``
        (``"gene:sgRNA"``).
    n_splits : int, default=5
        Number of folds (at least 2, at most the number of groups).
    shuffle : bool, default=False
        Take groups of equal size in random order instead of label order.
    random_state : int, RandomState instance or None, default=None
        Seed of the shuffle (only with ``shuffle=True``).

    See Also
    --------
    WithinGroupKFold : Leave out rows of every group instead (new measurements of known
        groups).
    sklearn.model_selection.GroupKFold : The same idea with the groups passed as ``groups``.

    Notes
    -----
    The groups come from ``X``'s column, so ``split``'s ``groups`` argument is ignored and
    ``cross_val_score(ranker, df, cv=GroupLevelKFold(level="gene"))`` needs no ``groups=``.

    Examples
    --------
    >>> import pandas as pd
    >>> from skhier.model_selection import GroupLevelKFold
    >>> X = pd.DataFrame({"gene": list("aabbccdd"), "x": range(8)})
    >>> for train, test in GroupLevelKFold(level="gene", n_splits=2).split(X):
    ...     print(sorted(set(X["gene"].iloc[test])))
    ['a', 'c']
    ['b', 'd']
    """

    def _iter_test_indices(self, X=None, y=None, groups=None):
        who = self._check()
        codes, n_groups = _level_codes(X, self.level, who)
        if self.n_splits > n_groups:
            raise ValueError(
                f"{who}: n_splits={self.n_splits} is larger than the number of groups at level "
                f"{self.level!r} ({n_groups}); choose n_splits between 2 and {n_groups}."
            )
        sizes = np.bincount(codes, minlength=n_groups)
        order = np.arange(n_groups)
        if self.shuffle:
            order = check_random_state(self.random_state).permutation(n_groups)
        order = order[np.argsort(-sizes[order], kind="stable")]
        fold_of_group = np.empty(n_groups, dtype=np.intp)
        load = np.zeros(self.n_splits, dtype=np.int64)
        for g in order:
            f = int(np.argmin(load))
            fold_of_group[g] = f
            load[f] += sizes[g]
        fold = fold_of_group[codes]
        for f in range(self.n_splits):
            yield np.flatnonzero(fold == f)


class WithinGroupKFold(_LevelSplitter):
    """K-fold over the rows within every group: predicting new rows of *known* groups.

    The rows of each group at ``level`` (each sgRNA's samples, say) are dealt over the folds,
    so every group is tested on some of its rows while it keeps the others in training: with
    ``m >= 2`` rows a group never loses more than ``ceil(m / n_splits)`` of them to a test
    set. Use it to ask how well the model predicts replicate measurements of the sgRNAs it was
    fitted on (the question PSIS-LOO answers too). Groups with a single row cannot be tested
    without leaving them out entirely, so their row always stays in training (logged).

    Rows are dealt round-robin: the rows of the first group (by label) go to folds 0, 1, 2,
    ..., the next group continues where it stopped, so folds differ in size by at most one
    row.

    Parameters
    ----------
    level : str
        Column of ``X`` holding the groups (``"sgRNA"``), or nested columns joined by ``":"``.
    n_splits : int, default=5
        Number of folds (at least 2).
    shuffle : bool, default=False
        Deal each group's rows in random order (and start at a random fold) instead of row
        order.
    random_state : int, RandomState instance or None, default=None
        Seed of the shuffle (only with ``shuffle=True``).

    See Also
    --------
    GroupLevelKFold : Leave out whole groups instead (new groups).
    LOOSearchCV : Model choice by PSIS-LOO, the same question without refits.

    Notes
    -----
    The groups come from ``X``'s column, so ``split``'s ``groups`` argument is ignored.

    Examples
    --------
    >>> import pandas as pd
    >>> from skhier.model_selection import WithinGroupKFold
    >>> X = pd.DataFrame({"sgRNA": list("aaabbb"), "x": range(6)})
    >>> for train, test in WithinGroupKFold(level="sgRNA", n_splits=3).split(X):
    ...     print(test.tolist(), sorted(set(X["sgRNA"].iloc[train])))
    [0, 3] ['a', 'b']
    [1, 4] ['a', 'b']
    [2, 5] ['a', 'b']
    """

    def _iter_test_indices(self, X=None, y=None, groups=None):
        who = self._check()
        codes, n_groups = _level_codes(X, self.level, who)
        rng = check_random_state(self.random_state) if self.shuffle else None
        order = np.argsort(codes, kind="stable")
        sizes = np.bincount(codes, minlength=n_groups)
        starts = np.concatenate([[0], np.cumsum(sizes)])
        fold = np.full(len(codes), -1, dtype=np.intp)
        dealt = int(rng.randint(self.n_splits)) if self.shuffle else 0
        for g in range(n_groups):
            rows = order[starts[g] : starts[g + 1]]
            if len(rows) < 2:
                continue
            if self.shuffle:
                rows = rng.permutation(rows)
            fold[rows] = (dealt + np.arange(len(rows))) % self.n_splits
            dealt += len(rows)
        singletons = int(np.sum(sizes == 1))
        if singletons:
            logger.info(
                "skhier: %s keeps the rows of %d group(s) with a single row at level %r in "
                "training in every split.",
                who,
                singletons,
                self.level,
            )
        n_test = int(np.sum(fold >= 0))
        if n_test < self.n_splits:
            raise ValueError(
                f"{who}: n_splits={self.n_splits} is larger than the {n_test} row(s) that can "
                f"be tested (rows of groups with at least 2 rows at level {self.level!r}); "
                f"choose n_splits between 2 and {max(n_test, 2)}."
            )
        for f in range(self.n_splits):
            yield np.flatnonzero(fold == f)


# ---------------------------------------------------------------------------- scorer
class _LPDScorer:
    """Held-out log predictive density of a fitted ranker (see :func:`make_lpd_scorer`)."""

    def __init__(self, average):
        self.average = average

    def __call__(self, estimator, X, y=None):
        lppd = _lppd_rows(estimator, X, y)
        return float(lppd.mean() if self.average else lppd.sum())

    def __repr__(self):
        return f"make_lpd_scorer(average={self.average})"


def make_lpd_scorer(*, average=True):
    """Make a scorer of the held-out log predictive density, for ``scoring=``.

    The scorer returns ``sum_i log( mean_s p(y_i | theta_s) )`` over the test rows ``i`` and
    the posterior draws ``s`` of the fitted model, divided by the number of rows with
    ``average=True``. Higher is better. It is what
    :meth:`skhier.HierarchicalRanker.score` returns (the default scoring of
    ``cross_val_score`` and ``GridSearchCV`` for a ranker), spelled out for ``scoring=``; with
    ``average=False`` the sums over the folds of a K-fold add up to the K-fold ``elpd``, on the
    scale of :class:`LOOSearchCV`'s ``elpd_loo``.

    Parameters
    ----------
    average : bool, default=True
        Mean over the test rows (True) or their sum (False).

    Returns
    -------
    callable
        ``scorer(estimator, X, y=None) -> float`` for a fitted ranker, a Pipeline ending in
        one, or a fitted search holding one as ``best_estimator_``; Gaussian models.

    See Also
    --------
    lpd_scorer : ``make_lpd_scorer()``.

    Examples
    --------
    >>> from skhier.model_selection import make_lpd_scorer
    >>> make_lpd_scorer(average=False)
    make_lpd_scorer(average=False)
    """
    if not isinstance(average, bool | np.bool_):
        raise TypeError(f"average must be True or False, got {average!r}.")
    return _LPDScorer(bool(average))


#: Mean held-out log predictive density per row, as ``scoring=`` (``make_lpd_scorer()``).
lpd_scorer = make_lpd_scorer()
