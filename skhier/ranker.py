"""HierarchicalRanker: a scikit-learn estimator that ranks groups by a hierarchical model's effect.

The estimator is a thin shell. ``fit`` checks the parameters, makes the plan
(:func:`skhier.plan.make_plan`: formula terms, observed-level design, priors, ranked level,
engine), fits it through the chosen engine under the refit policy
(:func:`skhier.engine.fit_with_retries`), and attaches the results; the ranking
(:mod:`skhier.ranking`), the predictions (:mod:`skhier.predictive`) and the saved state
(:mod:`skhier.io`) are computed by their own modules from the plan and the posterior.
"""

from __future__ import annotations

import logging
import numbers
import os
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from skhier._names import COEF_LEVEL
from skhier._parallel import resolve_n_jobs, thread_limit
from skhier._progress import stage
from skhier._validation import check_choice, check_family_name, check_number, check_priors
from skhier.design import build_factor, groups_table
from skhier.diagnostics import ON_FAIL, ApproximationWarning
from skhier.effects import level_totals
from skhier.engine import RetryPolicy, SamplerSettings, engine_names, fit_with_retries, get_engine
from skhier.engine.samplers import check_sampler
from skhier.formula import parse_formula
from skhier.io import (
    FORMAT_VERSION,
    SavedState,
    params_from_json,
    params_to_json,
    read_state,
    write_state,
)
from skhier.plan import POOLING, make_plan
from skhier.predictive import (
    check_family,
    log_predictive_density,
    prediction_rows,
    predictive_draws,
    predictive_moments,
    response_values,
)

__all__ = ["HierarchicalRanker", "save", "load"]

logger = logging.getLogger("skhier")


PARAMETRIZATIONS = ("auto", "centered", "noncentered")
MISSING = ("raise", "drop")


class HierarchicalRanker(RegressorMixin, BaseEstimator):
    """Rank groups by an effect estimated in a Bayesian hierarchical model.

    Fits a Bambi formula model with PyMC's samplers and ranks the groups of a grouping factor
    (genes, sgRNAs, batches) by their *total* coefficient, with the uncertainty of the ranking:
    expected ranks, rank intervals, P(top-k), lfsr and the pairwise dominance matrix
    P(beta_i > beta_j). Gaussian models whose grouping factors are nested are fitted by an exact
    collapsed engine (group coefficients integrated out, NUTS on the scales only, coefficients
    drawn from their exact conditional); everything else by Bambi's own model.

    Parameters
    ----------
    formula : str or None, default=None
        A Bambi formula, e.g. ``"Ht ~ 0 + H0:(1|gene/sgRNA)"``. ``x:(1|g)`` (and nested
        ``x:(1|a/b)``) means group slopes drawn around a population slope and is fitted as
        ``x + (0 + x|g)``. None fits a Bayesian linear regression of ``y`` on every column of
        ``X`` and ranks the coefficients.
    level : str or None, default=None
        Grouping factor to rank (``"gene"`` or ``"sgRNA"``); None ranks the innermost factor of
        the ranked term.
    column : str or None, default=None
        Column whose group-varying coefficient is ranked; None picks the only varying slope
        (or the intercept when only intercepts vary).
    term : str or None, default=None
        Deprecated spelling of ``column`` (it names a column, not a term).
    family : str, default="gaussian"
        Bambi family of the response, one of Bambi's built-in families (the error for another
        name lists them). ``"negativebinomial"`` and ``"poisson"`` with nested factors use the
        Laplace count engine; other families Bambi's own model.
    priors : dict or None, default=None
        Priors by term name (``"H0"``, ``"H0|gene"``, ``"sigma"``), as ``bambi.Prior`` or
        :class:`skhier.priors.Prior`; a number fixes the parameter (``sigma`` and ``alpha``
        must then be positive, as must every numeric scale inside a prior). None uses Bambi's
        data-scaled defaults.
    pooling : {"partial", "complete", "none"}, default="partial"
        ``"partial"``: the hierarchy; ``"complete"``: one common coefficient; ``"none"``:
        independent coefficients per level with the common coefficient's prior. Compare them with
        :meth:`score` or LOO.
    ascending : bool, default=False
        False ranks the largest effect first; True the smallest (essential-gene screens).
    top_k : int, default=10
        ``k`` of the ``p_top_k`` column.
    hdi_prob : float, default=0.9
        Probability of the HDI and of the rank credible intervals.
    reference : float or "population", default=0.0
        Reference value of ``lfsr`` and ``p_gt_ref`` (a finite Python or NumPy number);
        ``"population"`` uses the population (common) coefficient draw by draw.
    sampler : {"nutpie", "pymc", "numpyro"}, default="nutpie"
        NUTS implementation.
    draws : int, default=1000
        Kept draws per chain.
    tune : int, default=1000
        Warm-up iterations per chain.
    chains : int, default=4
        Number of chains.
    target_accept : float or None, default=None
        Target acceptance rate of NUTS' step-size adaptation. None chooses by engine: 0.95 for
        the collapsed engine (NUTS moves only a few scales there, so smaller steps cost little,
        and with few groups a 0.8 target leaves occasional divergences where a group scale's
        posterior is wide), PyMC's 0.8 for the engines that sample every coefficient.
    parametrization : {"auto", "centered", "noncentered"}, default="auto"
        Parametrization of the group-specific coefficients when they are sampled. ``"auto"``
        chooses per term with the sufficient-statistics engine: centered where the data inform
        one group's coefficient more than its prior does, non-centered elsewhere; Bambi's model
        takes one choice for every term (``"auto"`` is its default, non-centered). The collapsed
        engine integrates the coefficients out, so it has none (``"marginalized"``). The choice
        is recorded in ``diagnostics_.info["parametrization"]``.
    engine : {"auto", "collapsed", "suffstat", "laplace", "bambi"}, default="auto"
        ``"auto"`` uses the collapsed engine when the model allows it (Gaussian, plain terms,
        nested factors), else the sufficient-statistics engine (Gaussian with crossed factors:
        every coefficient sampled, the likelihood from per-cell sums), else for negative
        binomial and Poisson counts with nested factors the Laplace count engine (each finest
        group's likelihood made Gaussian, the hierarchy exact, the approximation checked in
        ``approximation_``; ``engine="bambi"`` is the exact route), else Bambi's own model
        (see :mod:`skhier.engine`; engines registered there are accepted by name).
    on_fail : {"warn", "raise", "refit", "ignore"}, default="warn"
        What a failed convergence check does; ``"refit"`` refits with more warm-up and a higher
        target acceptance (and, for Bambi's model, the other parametrization), at most
        ``max_refits`` times, then warns.
    max_refits : int, default=2
        Refits allowed by ``on_fail="refit"``.
    missing : {"raise", "drop"}, default="raise"
        Rows with NaN/inf in a column the model reads: raise, or drop them (logged).
    random_state : int, RandomState instance or None, default=None
        Seed of the sampler and of the coefficient draws; an int (in ``[0, 2**32 - 1]``) makes
        fits reproducible.
    progressbar : bool, default=False
        Show the sampler's progress.
    n_jobs : int or None, default=None
        Cores for every step of the fit: chains run in parallel on at most this many, and the
        coefficient draws, diagnostics and ranking kernels use this many threads. None or -1
        uses every core (in a task on a Dask worker, the task's share: ``OMP_NUM_THREADS``,
        which Dask sets to 1), ``-k`` all but ``k - 1``.

    Attributes
    ----------
    idata_ : arviz.InferenceData
        Posterior (Bambi's variable names) and sample statistics.
    model_ : pymc.Model or bambi.Model
        The fitted model (the scales' model for the collapsed engine).
    formula_ : str
        The formula actually fitted.
    groups_ : dict of str to pandas.DataFrame
        For each grouping factor: its levels, their number of rows and their parent level.
    level_ : str
        The ranked level.
    column_ : str
        The ranked column (``"coefficient"`` when the coefficients are ranked).
    engine_ : str
        The engine that fitted the model (``"collapsed"``, ``"suffstat"``, ``"laplace"`` or
        ``"bambi"``).
    plan_ : skhier.plan.FitPlan
        What was fitted: terms after pooling, priors, rows, design, ranked level, engine and
        why the preferred engines were passed over.
    rank_ : pandas.DataFrame
        The ranking at ``level_`` (see :func:`skhier.rank_posterior` for the columns), best first.
    dominance_ : pandas.DataFrame
        ``P(beta_row > beta_col)`` at ``level_``, computed on first access.
    diagnostics_ : skhier.diagnostics.Diagnostics
        Sampler health, with ``passed`` and the messages to act on.
    approximation_ : skhier.engine.counts.Approximation or None
        For an approximate engine (the count engine ``"laplace"``), how good its posterior is
        (Pareto k per cell and ranked group); None for the exact engines.
    loo_ : arviz.ELPDData
        PSIS-LOO of the training rows (``elpd_loo``, ``se``, ``p_loo``, ``pareto_k`` per row),
        computed on first access, block by block (bounded memory).
    n_features_in_ : int
        Number of columns of ``X`` seen in fit.
    feature_names_in_ : ndarray of str
        Column names of ``X`` when it is a DataFrame.

    See Also
    --------
    skhier.rank_posterior : The ranking of any posterior.
    skhier.dominance : The dominance matrix of any posterior.
    skhier.ScreenSimulator : Data with known truth.

    Notes
    -----
    :meth:`score` is the mean log pointwise predictive density of the given rows (higher is
    better), not R^2; it compares models and pooling choices in cross-validation.

    Examples
    --------
    >>> from skhier import HierarchicalRanker, ScreenSimulator
    >>> df = ScreenSimulator(n_genes=3, sgrnas_per_gene=2, n_samples=20,
    ...                      random_state=0).fit_transform()
    >>> ranker = HierarchicalRanker(formula="Ht ~ 0 + H0:(1|gene/sgRNA)", level="gene",
    ...                             sampler="pymc", draws=200, tune=200, chains=2,
    ...                             n_jobs=1, random_state=0, on_fail="ignore").fit(df)
    >>> list(ranker.rank_.columns[:3])
    ['rank', 'mean', 'sd']
    >>> ranker.rank_.shape[0]
    3
    """

    def __init__(
        self,
        *,
        formula=None,
        level=None,
        column=None,
        term=None,
        family="gaussian",
        priors=None,
        pooling="partial",
        ascending=False,
        top_k=10,
        hdi_prob=0.9,
        reference=0.0,
        sampler="nutpie",
        draws=1000,
        tune=1000,
        chains=4,
        target_accept=None,
        parametrization="auto",
        engine="auto",
        on_fail="warn",
        max_refits=2,
        missing="raise",
        random_state=None,
        progressbar=False,
        n_jobs=None,
    ):
        self.formula = formula
        self.level = level
        self.column = column
        self.term = term
        self.family = family
        self.priors = priors
        self.pooling = pooling
        self.ascending = ascending
        self.top_k = top_k
        self.hdi_prob = hdi_prob
        self.reference = reference
        self.sampler = sampler
        self.draws = draws
        self.tune = tune
        self.chains = chains
        self.target_accept = target_accept
        self.parametrization = parametrization
        self.engine = engine
        self.on_fail = on_fail
        self.max_refits = max_refits
        self.missing = missing
        self.random_state = random_state
        self.progressbar = progressbar
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ validation
    def _check_params(self):
        """Check every parameter before any data is read; return the ranked column's name."""
        if self.formula is not None and not isinstance(self.formula, str):
            raise TypeError(f"formula must be a string or None, got {self.formula!r}.")
        check_choice("pooling", self.pooling, POOLING)
        check_choice("engine", self.engine, ("auto", *engine_names()))
        check_choice("parametrization", self.parametrization, PARAMETRIZATIONS)
        check_choice("on_fail", self.on_fail, ON_FAIL)
        check_choice("missing", self.missing, MISSING)
        check_family_name(self.family)
        if not isinstance(self.ascending, bool | np.bool_):
            raise TypeError(f"ascending must be True or False, got {self.ascending!r}.")
        check_number("draws", self.draws, integer=True, low=1)
        check_number("tune", self.tune, integer=True, low=0)
        check_number("chains", self.chains, integer=True, low=1)
        check_number("top_k", self.top_k, integer=True, low=1)
        check_number("max_refits", self.max_refits, integer=True, low=0)
        if self.target_accept is not None:
            check_number(
                "target_accept", self.target_accept, low=0, high=1, low_open=True, high_open=True
            )
        check_number("hdi_prob", self.hdi_prob, low=0, high=1, low_open=True, high_open=True)
        # a NumPy scalar (np.float64(0.5), np.int64(1)) is a numbers.Real like a Python one
        reference = self.reference
        if not (
            (isinstance(reference, str) and reference == "population")
            or (
                isinstance(reference, numbers.Real)
                and not isinstance(reference, bool | np.bool_)
                and np.isfinite(reference)
            )
        ):
            raise ValueError(
                f"reference={reference!r} is not valid; give a finite number or 'population'."
            )
        check_priors(self.priors)
        try:
            check_random_state(self.random_state)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"random_state={self.random_state!r} is not valid ({exc}); give an int in "
                "[0, 2**32 - 1], a numpy.random.RandomState or None."
            ) from None
        resolve_n_jobs(self.n_jobs)
        check_sampler(self.sampler)
        if self.term is not None:
            warnings.warn(
                "the parameter 'term' is deprecated and will be removed; use column="
                f"{self.term!r} (it names the ranked column).",
                FutureWarning,
                stacklevel=3,
            )
            if self.column is not None and self.column != self.term:
                raise ValueError(
                    f"column={self.column!r} and term={self.term!r} disagree; set column only."
                )
        return self.column if self.column is not None else self.term

    def _seed(self) -> int:
        if isinstance(self.random_state, numbers.Integral) and not isinstance(
            self.random_state, bool
        ):
            check_random_state(self.random_state)  # names a negative seed
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(0, 2**31 - 1))

    def _frame(self, X, y, *, reset: bool):
        """Turn (X, y) into the data frame the formula reads."""
        if self.formula is None:
            if reset:
                # A regression needs two rows at least (one row has no residual scale).
                X, y_arr = validate_data(
                    self, X, y, y_numeric=True, reset=True, ensure_min_samples=2
                )
            else:
                X = validate_data(self, X, reset=False)
                y_arr = None if y is None else np.asarray(y, dtype=np.float64).ravel()
            names = [f"x{i}" for i in range(X.shape[1])]
            data = pd.DataFrame(np.asarray(X, dtype=np.float64), columns=names)
            if y_arr is not None:
                data["y"] = y_arr
            return data
        if not isinstance(X, pd.DataFrame):
            raise TypeError(
                f"with formula={self.formula!r}, X must be a pandas DataFrame holding the "
                f"formula's columns, got {type(X).__name__}."
            )
        if reset:
            self.n_features_in_ = X.shape[1]
            self.feature_names_in_ = np.asarray(X.columns.astype(str), dtype=object)
        if y is not None:
            response = parse_formula(self.formula).response
            y = np.asarray(y)
            if y.ndim != 1 or len(y) != len(X):
                raise ValueError(
                    f"y must be one-dimensional with {len(X)} values (one per row of X), got "
                    f"shape {y.shape}."
                )
            X = X.assign(**{response: y})
        return X

    def _plan_params(self, column):
        params = self.get_params(deep=False)
        params["column"] = column
        return params

    def _settings(self, engine, cores: int) -> SamplerSettings:
        target_accept = self.target_accept
        if target_accept is None:
            target_accept = engine.default_target_accept
        return SamplerSettings(
            sampler=self.sampler,
            draws=self.draws,
            tune=self.tune,
            chains=self.chains,
            target_accept=target_accept,
            seed=self._seed(),
            progressbar=self.progressbar,
            cores=max(1, min(cores, self.chains)),
        )

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None):
        """Fit the model and rank the groups.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            The data. With a formula, a DataFrame holding the formula's columns (the response
            too, unless ``y`` is given). With ``formula=None``, numeric predictors.
        y : array-like of shape (n_samples,), default=None
            The response, stored under the formula's response name; None reads it from ``X``.

        Returns
        -------
        self : HierarchicalRanker
            The fitted estimator.

        Raises
        ------
        ValueError
            Before any sampling, naming the bad value and the fix: a parameter out of range or
            not among its choices (``family`` not a Bambi family, a negative ``random_state``,
            a non-positive fixed scale in ``priors``), a formula whose group-specific terms
            vanish or that has nothing to rank, a missing column, NaN/inf values (unless
            ``missing="drop"``), a constant response, or values beyond 1e150 in absolute value.
        TypeError
            Before any sampling, for a parameter of the wrong type, or ``X`` that is not a
            DataFrame while a formula is given.
        """
        t_start = time.perf_counter()
        column = self._check_params()
        data = self._frame(X, y, reset=True)
        with thread_limit(self.n_jobs) as cores:
            stage("building the model", "skhier: checking %d rows, building the model", len(data))
            plan = make_plan(self._plan_params(column), data)
            engine = get_engine(plan.engine)
            result, diagnostics = fit_with_retries(
                engine,
                plan,
                self._settings(engine, cores),
                RetryPolicy(self.on_fail, self.max_refits),
                parametrization=self.parametrization,
                info={"fallback_reason": plan.fallback_reason},
                stacklevel=2,
            )
            self._attach(plan, result.idata, diagnostics, result.model)
            self._set_approximation(result.approximation)
        self.diagnostics_.info["fit_seconds"] = time.perf_counter() - t_start
        return self

    def _set_approximation(self, approximation):
        """Record an approximate engine's check; warn when groups are outside its reach."""
        self._approximation = approximation
        if approximation is None:
            return
        summary = approximation.summary()
        self.diagnostics_.info["approximation"] = {
            which: {k: float(v) for k, v in row.items() if np.isfinite(v)}
            for which, row in summary.iterrows()
        }
        bad = approximation.share_bad("groups")
        if bad > 0:
            warnings.warn(
                f"engine {self.engine_!r} approximates each cell's likelihood by a Gaussian; for "
                f"{bad:.1%} of the groups at level {self.level_!r} the importance ratios between "
                "the exact and the approximate posterior have Pareto k > 0.7 (see "
                "approximation_.groups): rank them with care, or fit the exact model "
                "(engine='bambi') on a subset.",
                ApproximationWarning,
                stacklevel=3,
            )

    @property
    def approximation_(self):
        """How good an approximate engine's posterior is; None for the exact engines.

        For the count engine (``engine_ == "laplace"``), a
        :class:`skhier.engine.counts.Approximation`: Pareto k of the importance ratios between
        the exact and the approximate posterior, per cell and per ranked group, with the
        reweighted posterior means. Recomputed on first access after :meth:`load`.
        """
        check_is_fitted(self, "idata_")
        if self._approximation is None and getattr(self, "_approximation_pending", False):
            self._approximation_pending = False
            engine = get_engine(self.plan_.engine)
            self._approximation = engine.approximation(self.plan_, self.idata_)
        return self._approximation

    def _attach(self, plan, idata, diagnostics, model=None):
        """Set the fitted attributes from a plan and its posterior."""
        self.plan_ = plan
        self.idata_ = idata
        self.diagnostics_ = diagnostics
        self.formula_ = plan.formula
        self.column_ = plan.term
        self.engine_ = plan.engine
        self.level_ = plan.level
        self.groups_ = groups_table(plan.design)
        self._model = model  # None: built on first access of model_
        self._approximation = None
        self._cache = {}
        stage("ranking", "skhier: ranking the groups at level %r", plan.level)
        self.rank_ = self.rank_table()

    @property
    def term_(self):
        """Deprecated name of ``column_``."""
        warnings.warn(
            "term_ is deprecated and will be removed; use column_.", FutureWarning, stacklevel=2
        )
        return self.column_

    # ------------------------------------------------------------------ persistence
    def save(self, path, *, overwrite=False):
        """Save the fitted ranker to a folder of JSON and netCDF files (no pickle).

        Parameters
        ----------
        path : str or os.PathLike
            Folder to write (created). A folder of an earlier save is replaced.
        overwrite : bool, default=False
            Write into a non-empty folder that holds no saved ranker.

        Returns
        -------
        pathlib.Path
            The folder; :meth:`load` (or :func:`skhier.load`) reads it back.

        Raises
        ------
        FileExistsError
            If the folder holds other files and ``overwrite`` is False.

        See Also
        --------
        load : Load a saved ranker.
        skhier.io : The file layout.

        Examples
        --------
        >>> import tempfile
        >>> from skhier import HierarchicalRanker, ScreenSimulator
        >>> df = ScreenSimulator(n_genes=2, sgrnas_per_gene=2, n_samples=10,
        ...                      random_state=0).fit_transform()
        >>> r = HierarchicalRanker(formula="Ht ~ 0 + H0:(1|gene/sgRNA)", draws=50, tune=50,
        ...                        chains=2, random_state=0, on_fail="ignore").fit(df)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     again = HierarchicalRanker.load(r.save(tmp))
        >>> bool(again.rank_.equals(r.rank_)), again.formula_
        (True, 'Ht ~ 0 + H0 + (0 + H0|gene/sgRNA)')
        """
        import skhier

        check_is_fitted(self, "idata_")
        names = getattr(self, "feature_names_in_", None)
        meta = {
            "format_version": FORMAT_VERSION,
            "skhier_version": skhier.__version__,
            "class": type(self).__name__,
            "params": params_to_json(self.get_params(deep=False)),
            "fitted": {
                "formula_": self.formula_,
                "level_": self.level_,
                "column_": self.column_,
                "engine_": self.engine_,
                "n_features_in_": int(self.n_features_in_),
                "feature_names_in_": None if names is None else [str(c) for c in names],
                "diagnostics_info": self.diagnostics_.to_dict()["info"],
            },
        }
        data = self.plan_.data
        columns = [c for c in self.plan_.parsed.data_columns if c in data.columns]
        return write_state(path, SavedState(meta, self.idata_, data[columns]), overwrite=overwrite)

    @classmethod
    def load(cls, path):
        """Load a ranker saved by :meth:`save`, without sampling.

        The plan is rebuilt from the saved rows (validation, design, priors, engine choice), the
        saved posterior attached, and the ranking and diagnostics recomputed from it.

        Parameters
        ----------
        path : str or os.PathLike
            The folder written by :meth:`save`.

        Returns
        -------
        HierarchicalRanker
            A fitted ranker that predicts, scores and ranks as the saved one did.

        Raises
        ------
        FileNotFoundError
            If the folder or one of its files is missing.
        ValueError
            If a file is corrupt, the folder is not a saved ranker, it was saved in a newer
            format, or this skhier would fit it with another engine.

        Examples
        --------
        >>> import tempfile
        >>> from skhier import HierarchicalRanker, ScreenSimulator
        >>> df = ScreenSimulator(n_genes=2, sgrnas_per_gene=2, n_samples=10,
        ...                      random_state=0).fit_transform()
        >>> r = HierarchicalRanker(formula="Ht ~ 0 + H0:(1|gene/sgRNA)", draws=50, tune=50,
        ...                        chains=2, random_state=0, on_fail="ignore").fit(df)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     again = HierarchicalRanker.load(r.save(tmp))
        >>> again.engine_
        'collapsed'
        """
        from skhier.diagnostics import diagnose

        state = read_state(path, expected_class=cls.__name__)
        lacking = [k for k in ("params", "fitted") if not isinstance(state.meta.get(k), dict)]
        if lacking:
            raise ValueError(f"{os.path.join(path, 'skhier.json')} is corrupt: it lacks {lacking}.")
        ranker = cls(**params_from_json(state.meta["params"]))
        column = ranker._check_params()
        fitted = state.meta["fitted"]
        ranker.n_features_in_ = fitted["n_features_in_"]
        if fitted["feature_names_in_"] is not None:
            ranker.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
        with thread_limit(ranker.n_jobs):
            plan = make_plan(ranker._plan_params(column), state.data)
            if plan.engine != fitted["engine_"]:
                raise ValueError(
                    f"the saved ranker was fitted with engine {fitted['engine_']!r}, but this "
                    f"skhier chooses {plan.engine!r} for it; load it with the skhier version "
                    f"that saved it ({state.meta['skhier_version']})."
                )
            diagnostics = diagnose(state.idata, info=fitted["diagnostics_info"])
            ranker._attach(plan, state.idata, diagnostics)
            ranker._approximation = None
            ranker._approximation_pending = callable(
                getattr(get_engine(plan.engine), "approximation", None)
            )
        return ranker

    # ------------------------------------------------------------------ ranking
    def _totals(self, level=None):
        """Draws of the ranked total effect at a level, as a DataArray, and its factor."""
        import xarray as xr

        check_is_fitted(self, "idata_")
        post = self.idata_.posterior
        plan = self.plan_
        if plan.column is None:
            if level not in (None, COEF_LEVEL):
                raise ValueError(f"level={level!r} is not available; choose {COEF_LEVEL!r}.")
            names = list(plan.parsed.common)
            arr = np.stack([np.asarray(post[c]) for c in names], axis=-1)
            return xr.DataArray(
                arr, dims=("chain", "draw", COEF_LEVEL), coords={COEF_LEVEL: names}
            ), None
        design = plan.design
        if level is None:
            factor = design.factors.get(self.level_)
        else:
            factor = self._find_level(level)
        if factor is None:  # complete pooling: rank the levels of the partial model's factor
            factor = self._find_level(self.level_)
        return level_totals(post, plan.parsed, design, plan.column, factor), factor

    def _find_level(self, level):
        plan = self.plan_
        try:
            return plan.design.find_factor(level)
        except ValueError:
            if plan.pooling != "complete":
                raise
        cols = tuple(level.split(":"))
        if all(c in plan.data.columns for c in cols):
            return build_factor(plan.data, cols)
        raise ValueError(f"level {level!r} is not a grouping factor of the model.")

    def effect_draws(self, level=None):
        """Posterior draws of the ranked total effect of every group at a level.

        Parameters
        ----------
        level : str or None, default=None
            Grouping factor (``"gene"``, ``"sgRNA"``); None uses ``level_``.

        Returns
        -------
        xarray.DataArray
            Dims ``(chain, draw, <level>)``, labelled with the groups; what :meth:`rank_table`
            and :meth:`dominance` rank, and what :func:`skhier.rank_probabilities` accepts.

        Examples
        --------
        >>> from skhier import HierarchicalRanker, ScreenSimulator
        >>> df = ScreenSimulator(n_genes=3, sgrnas_per_gene=2, n_samples=10,
        ...                      random_state=0).fit_transform()
        >>> r = HierarchicalRanker(formula="Ht ~ 0 + H0:(1|gene/sgRNA)", level="gene",
        ...                        draws=100, tune=100, chains=2, random_state=0,
        ...                        on_fail="ignore").fit(df)
        >>> r.effect_draws().dims
        ('chain', 'draw', 'gene')
        """
        return self._totals(level)[0]

    def rank_table(self, level=None, **kwargs):
        """Rank the groups at a level, without refitting.

        Parameters
        ----------
        level : str or None, default=None
            Grouping factor (``"gene"``, ``"sgRNA"``); None uses ``level_``.
        **kwargs
            Overrides of ``top_k``, ``hdi_prob``, ``ascending``, ``reference`` and other
            options of :func:`skhier.ranking.rank_table`.

        Returns
        -------
        pandas.DataFrame
            One row per group, best first.
        """
        from skhier.ranking import rank_posterior

        totals, factor = self._totals(level)
        opts = {
            "ascending": bool(self.ascending),
            "top_k": min(self.top_k, totals.shape[-1]),
            "hdi_prob": self.hdi_prob,
        }
        reference = kwargs.pop("reference", self.reference)
        if isinstance(reference, str) and reference == "population":
            post = self.idata_.posterior
            if self.column_ not in post.data_vars:
                raise ValueError(
                    "reference='population' needs a common (population) coefficient on "
                    f"{self.column_!r}, which this model does not have."
                )
            reference = np.asarray(post[self.column_])
        elif isinstance(reference, np.generic):
            reference = reference.item()
        opts["reference"] = reference
        if factor is not None:
            opts["n_obs"] = np.asarray(factor.n_obs)
        opts.update(kwargs)
        return rank_posterior(totals, **opts)

    def dominance(self, level=None, *, top_k=None, **kwargs):
        """Compute the dominance matrix ``P(beta_row > beta_col)`` at a level, without refitting.

        Parameters
        ----------
        level : str or None, default=None
            Grouping factor; None uses ``level_``.
        top_k : int or None, default=None
            Return only the rows of the ``top_k`` best groups (all columns).
        **kwargs
            Options of :func:`skhier.dominance` (``counts``, ``dtype``, ``order``).

        Returns
        -------
        pandas.DataFrame
            Labelled matrix, rows and columns ordered by rank.
        """
        from skhier.ranking import dominance

        totals, _ = self._totals(level)
        return dominance(totals, top_k=top_k, ascending=bool(self.ascending), **kwargs)

    @property
    def model_(self):
        """The fitted model: a ``pymc.Model`` or, for Bambi's engine, a ``bambi.Model``.

        For the collapsed engine it is the PyMC model of the scales. When nutpie sampled the
        engine's compiled log density (the same density), the model is built on first access,
        importing PyMC only then.
        """
        check_is_fitted(self, "idata_")
        if getattr(self, "_model", None) is None:
            engine = get_engine(self.plan_.engine)
            self._model = engine.build(self.plan_, self.diagnostics_.info.get("parametrization"))
        return self._model

    @property
    def dominance_(self):
        """Dominance matrix at ``level_`` (computed once, on first access)."""
        check_is_fitted(self, "idata_")
        if "dominance" not in self._cache:
            self._cache["dominance"] = self.dominance()
        return self._cache["dominance"]

    @property
    def loo_(self):
        """PSIS-LOO of the training rows, with Pareto k per row (computed on first access).

        See :func:`skhier.scoring.loo`; the result is an :class:`arviz.ELPDData`, so
        :func:`skhier.compare` and :func:`arviz.compare` accept it.
        """
        check_is_fitted(self, "idata_")
        if "loo" not in self._cache:
            from skhier.scoring import loo

            self._cache["loo"] = loo(self)
        return self._cache["loo"]

    # ------------------------------------------------------------------ prediction
    def _prediction_rows(self, X):
        check_is_fitted(self, "idata_")
        check_family(self.plan_, "predict/score")
        return prediction_rows(self.plan_, self._frame(X, None, reset=False))

    def predict(self, X, return_std=False):
        """Posterior predictive mean of the response (and its standard deviation).

        Groups not seen in fit get coefficients drawn from the hierarchy: they add no mean to
        the linear predictor and their scale's variance. For the count families (log link)
        the mean is that of the counts, ``E[exp(eta)]``.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            New data with the formula's predictor and grouping columns (and its offset
            column, if any).
        return_std : bool, default=False
            Also return the posterior predictive standard deviation.

        Returns
        -------
        y_mean : ndarray of shape (n_samples,)
            Posterior predictive mean of the response.
        y_std : ndarray of shape (n_samples,)
            Posterior predictive standard deviation (with ``return_std=True``).

        Raises
        ------
        NotImplementedError
            For a family other than Gaussian, Poisson and negative binomial.

        Examples
        --------
        >>> from skhier import HierarchicalRanker, ScreenSimulator
        >>> df = ScreenSimulator(n_genes=2, sgrnas_per_gene=2, n_samples=10,
        ...                      random_state=0).fit_transform()
        >>> r = HierarchicalRanker(formula="Ht ~ 0 + H0:(1|gene/sgRNA)", draws=100, tune=100,
        ...                        chains=2, n_jobs=1, random_state=0, on_fail="ignore").fit(df)
        >>> mean, std = r.predict(df, return_std=True)
        >>> mean.shape, bool((std > 0).all())
        ((40,), True)
        """
        data = self._prediction_rows(X)
        mean, var = predictive_moments(self.idata_, self.plan_, data)
        return (mean, np.sqrt(var)) if return_std else mean

    def predict_quantiles(self, X, quantiles=(0.05, 0.95), *, random_state=None):
        """Quantiles of the posterior predictive distribution of the response.

        One predictive draw per posterior draw (see
        :func:`skhier.predictive.predictive_draws`): for the Gaussian, the linear predictor
        plus noise of the draw's residual sd; for the count families, a Poisson or negative
        binomial count; groups not seen in fit get a coefficient drawn from the hierarchy.
        Rows are processed in blocks, so memory stays bounded.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            New data with the formula's predictor and grouping columns.
        quantiles : float or sequence of float, default=(0.05, 0.95)
            Probabilities in (0, 1); the default gives a 90% predictive interval.
        random_state : int, numpy.random.Generator or None, default=None
            Seed of the predictive noise.

        Returns
        -------
        ndarray of shape (n_samples, n_quantiles)
            The quantiles, one column per probability (1-D for a single float).

        Examples
        --------
        >>> from skhier import HierarchicalRanker, ScreenSimulator
        >>> df = ScreenSimulator(n_genes=2, sgrnas_per_gene=2, n_samples=10,
        ...                      random_state=0).fit_transform()
        >>> r = HierarchicalRanker(formula="Ht ~ 0 + H0:(1|gene/sgRNA)", sampler="pymc",
        ...                        draws=100, tune=100, chains=2, n_jobs=1, random_state=0,
        ...                        on_fail="ignore").fit(df)
        >>> q = r.predict_quantiles(df, (0.05, 0.5, 0.95), random_state=0)
        >>> q.shape, bool((q[:, 0] <= q[:, 1]).all() and (q[:, 1] <= q[:, 2]).all())
        ((40, 3), True)
        """
        scalar = np.ndim(quantiles) == 0
        probs = np.atleast_1d(np.asarray(quantiles, dtype=np.float64))
        if probs.ndim != 1 or not ((probs > 0) & (probs < 1)).all():
            raise ValueError(f"quantiles must be probabilities in (0, 1), got {quantiles!r}.")
        data = self._prediction_rows(X)
        rng = np.random.default_rng(random_state)
        out = np.empty((len(data), len(probs)))
        for sl, draws in predictive_draws(self.idata_, self.plan_, data, rng):
            out[sl] = np.quantile(draws, probs, axis=0).T
        return out[:, 0] if scalar else out

    def sample_posterior_predictive(self, X=None, *, random_state=None):
        """Draw replicated responses from the posterior predictive distribution.

        One predictive draw per posterior draw, from the model's family (see
        :func:`skhier.predictive.predictive_draws`: for the Gaussian, the linear predictor plus
        noise of the draw's residual sd; for the count families, a Poisson or negative binomial
        count); groups not seen in fit get a coefficient drawn from the hierarchy. With
        ``X=None`` the draws replicate the training rows, which is what a posterior predictive
        check compares with the observed response (:func:`skhier.plotting.plot_ppc`).

        Parameters
        ----------
        X : pandas.DataFrame, array-like of shape (n_samples, n_features) or None, default=None
            Rows with the formula's predictor and grouping columns (the response is not
            needed); None uses the training rows (``plan_.data``: after ``missing="drop"``, the
            rows that were fitted).
        random_state : int, numpy.random.Generator or None, default=None
            Seed of the predictive noise; an int gives the same draws on every call.

        Returns
        -------
        xarray.DataArray
            Dims ``("chain", "draw", "row")``, named after the response; ``row`` is labelled
            with the index of ``X`` (of the training rows for ``X=None``), ``chain`` and
            ``draw`` as in ``idata_.posterior``. It holds ``chains * draws * n_samples``
            floats: pass a subset of the rows for a large screen.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the ranker is not fitted.
        ValueError
            If ``X`` lacks a column of the formula or holds NaN or infinite values there.
        NotImplementedError
            If predictive draws are not implemented for the model's family.

        See Also
        --------
        predict_quantiles : Quantiles of the same distribution, in bounded memory.
        skhier.plotting.plot_ppc : Posterior predictive check of a fitted ranker.

        Examples
        --------
        >>> from skhier import HierarchicalRanker, ScreenSimulator
        >>> df = ScreenSimulator(n_genes=2, sgrnas_per_gene=2, n_samples=10,
        ...                      random_state=0).fit_transform()
        >>> r = HierarchicalRanker(formula="Ht ~ 0 + H0:(1|gene/sgRNA)", draws=100, tune=100,
        ...                        chains=2, n_jobs=1, random_state=0, on_fail="ignore").fit(df)
        >>> yrep = r.sample_posterior_predictive(random_state=0)
        >>> yrep.name, yrep.dims, yrep.shape
        ('Ht', ('chain', 'draw', 'row'), (2, 100, 40))
        >>> new = df.iloc[:3].assign(gene="NEW", sgRNA="NEW_sg1")  # a gene not seen in fit
        >>> r.sample_posterior_predictive(new, random_state=0).sizes["row"]
        3
        """
        import xarray as xr

        if X is None:
            check_is_fitted(self, "idata_")
            data = self.plan_.data
        else:
            data = self._prediction_rows(X)
        post = self.idata_.posterior
        n_chains, n_draws = post.sizes["chain"], post.sizes["draw"]
        rng = np.random.default_rng(random_state)
        out = None
        for sl, draws in predictive_draws(self.idata_, self.plan_, data, rng):
            if out is None:  # in the dtype of the family's draws
                out = np.empty((n_chains * n_draws, len(data)), dtype=draws.dtype)
            out[:, sl] = draws
        if out is None:  # no rows
            out = np.empty((n_chains * n_draws, 0))
        return xr.DataArray(
            out.reshape(n_chains, n_draws, len(data)),
            dims=("chain", "draw", "row"),
            coords={
                "chain": post["chain"].to_numpy(),
                "draw": post["draw"].to_numpy(),
                "row": data.index.to_numpy(),
            },
            name=self.plan_.parsed.response,
        )

    def score(self, X, y=None, sample_weight=None):
        """Mean log pointwise predictive density of the rows (higher is better).

        ``mean_i log( mean_s p(y_i | theta_s) )`` over the posterior draws ``s``: the quantity
        that PSIS-LOO estimates for unseen data, here computed on the given rows. It is not R^2.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            Data; with a formula, a DataFrame holding the response unless ``y`` is given.
        y : array-like of shape (n_samples,), default=None
            Response; None reads it from ``X``.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows' log densities.

        Returns
        -------
        float
            Mean log pointwise predictive density.
        """
        data = self._prediction_rows(X)
        yv = response_values(self.plan_, data, y, purpose="score")
        lppd = log_predictive_density(self.idata_, self.plan_, data, yv)
        return float(np.average(lppd, weights=sample_weight))

    def __getstate__(self):
        # PyMC models do not pickle with the standard pickler (a functools.partial inside
        # PyTensor); cloudpickle, which PyMC itself uses, does.
        state = super().__getstate__()
        if state.get("_model") is not None:
            import cloudpickle

            state = dict(state)
            state["_model"] = _CloudPickled(cloudpickle.dumps(state["_model"]))
        return state

    def __setstate__(self, state):
        model = state.get("_model")
        if isinstance(model, _CloudPickled):
            import cloudpickle

            state = dict(state)
            state["_model"] = cloudpickle.loads(model.payload)
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = self.random_state is None
        # score is the mean log pointwise predictive density, not R^2: it has no fixed scale, so
        # scikit-learn's "score > 0.5" sanity check does not apply to it.
        tags.regressor_tags.poor_score = True
        if self.formula is not None:
            # With a formula, X is a DataFrame of named columns (numeric and grouping labels).
            tags.input_tags.string = True
            tags.input_tags.categorical = True
        return tags

    # ------------------------------------------------------------------ display
    # repr() stays scikit-learn's parameter repr (what clone, get_params, Pipeline and
    # GridSearchCV print, and what the tests of the estimator API compare); the fit is
    # described by summary() as text and by the notebook display as HTML.
    def summary(self, n=10):
        """Describe the fit: model, engine, sampler verdict, the top groups and what to do next.

        Parameters
        ----------
        n : int, default=10
            Rows of the rank table to show (the best ``n`` groups of ``rank_``).

        Returns
        -------
        str
            The formula fitted, the model and data, the engine and sampler, the sampler checks
            (with the actions to take when one failed), the top ``n`` groups with their
            expected rank, rank interval and P(top-k), and the attributes and plots to look at
            next. A notebook shows the same as HTML.

        See Also
        --------
        skhier.diagnostics.Diagnostics.summary : The sampler checks in full.

        Examples
        --------
        >>> from skhier import HierarchicalRanker, ScreenSimulator
        >>> df = ScreenSimulator(n_genes=3, sgrnas_per_gene=2, n_samples=10,
        ...                      random_state=0).fit_transform()
        >>> r = HierarchicalRanker(formula="Ht ~ 0 + H0:(1|gene/sgRNA)", level="gene",
        ...                        draws=100, tune=100, chains=2, random_state=0,
        ...                        on_fail="ignore").fit(df)
        >>> print(r.summary(n=3).splitlines()[1])
          formula  Ht ~ 0 + H0 + (0 + H0|gene/sgRNA)   (given: Ht ~ 0 + H0:(1|gene/sgRNA))
        """
        from skhier._repr import ranker_summary

        check_is_fitted(self, "idata_")
        check_number("n", n, integer=True, low=0)
        return ranker_summary(self, int(n))

    def _html_repr(self):
        # scikit-learn's ReprHTMLMixin builds both _repr_html_ and _repr_mimebundle_ (when its
        # display option is "diagram") from this hook. Unfitted: scikit-learn's diagram as is.
        # Fitted: that diagram (the parameters), then the fit summary.
        estimator_html = super()._html_repr()
        if not hasattr(self, "idata_"):
            return estimator_html
        from skhier._repr import ranker_html

        return ranker_html(self, estimator_html)

    def _get_fitted_attr_html(self, doc_link=""):
        # scikit-learn >= 1.8 lists the fitted attributes in its diagram by evaluating every
        # property, which would compute dominance_ (N x N), loo_ and model_ only to show them.
        try:
            from sklearn.utils._repr_html.fitted_attributes import AttrsDict
        except ImportError:  # another scikit-learn layout: its own listing
            return super()._get_fitted_attr_html(doc_link)
        from skhier._repr import fitted_attributes

        return AttrsDict(
            fitted_attrs=fitted_attributes(self), estimator_class=type(self), doc_link=doc_link
        )


class _CloudPickled:
    """Bytes of an object pickled with cloudpickle, inside a standard pickle."""

    def __init__(self, payload: bytes):
        self.payload = payload


def save(ranker, path, *, overwrite=False):
    """Save a fitted ranker (see :meth:`HierarchicalRanker.save`).

    Parameters
    ----------
    ranker : HierarchicalRanker
        A fitted ranker.
    path : str or os.PathLike
        Folder to write.
    overwrite : bool, default=False
        Write into a non-empty folder that holds no saved ranker.

    Returns
    -------
    pathlib.Path
        The folder.

    Examples
    --------
    >>> import tempfile
    >>> from skhier import HierarchicalRanker, ScreenSimulator, load, save
    >>> df = ScreenSimulator(n_genes=2, sgrnas_per_gene=2, n_samples=10,
    ...                      random_state=0).fit_transform()
    >>> r = HierarchicalRanker(formula="Ht ~ 0 + H0:(1|gene/sgRNA)", draws=50, tune=50,
    ...                        chains=2, random_state=0, on_fail="ignore").fit(df)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     again = load(save(r, tmp))
    >>> bool(again.rank_.equals(r.rank_))
    True
    """
    return ranker.save(path, overwrite=overwrite)


def load(path):
    """Load a ranker saved by :func:`save` (see :meth:`HierarchicalRanker.load`).

    Parameters
    ----------
    path : str or os.PathLike
        The folder.

    Returns
    -------
    HierarchicalRanker
        The fitted ranker, rebuilt without sampling.

    Examples
    --------
    >>> import tempfile
    >>> from skhier import HierarchicalRanker, ScreenSimulator, load
    >>> df = ScreenSimulator(n_genes=2, sgrnas_per_gene=2, n_samples=10,
    ...                      random_state=0).fit_transform()
    >>> r = HierarchicalRanker(formula="Ht ~ 0 + H0:(1|gene/sgRNA)", draws=50, tune=50,
    ...                        chains=2, random_state=0, on_fail="ignore").fit(df)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     again = load(r.save(tmp))
    >>> again.level_
    'gene:sgRNA'
    """
    return HierarchicalRanker.load(path)
