"""HierarchicalRanker: a scikit-learn estimator that ranks groups by a hierarchical model's effect.

The estimator is a thin shell: it validates its parameters and the data, then calls, in order,
:mod:`skhier.formula` (terms), :mod:`skhier.design` (observed-level indices, cell statistics),
:mod:`skhier.engine` (model and sampler), :mod:`skhier.effects` (total group effects),
:mod:`skhier.ranking` (rank table, dominance) and :mod:`skhier.diagnostics` (sampler health).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from skhier._validation import check_choice, check_data, check_number
from skhier.design import build_design, design_matrix
from skhier.effects import level_totals, ranked_column, ranked_factors
from skhier.formula import parse_formula

__all__ = ["HierarchicalRanker"]

logger = logging.getLogger("skhier")

POOLING = ("partial", "complete", "none")
ENGINES = ("auto", "collapsed", "suffstat", "bambi")
PARAMETRIZATIONS = ("auto", "centered", "noncentered")
ON_FAIL = ("warn", "raise", "refit", "ignore")
MISSING = ("raise", "drop")
COEF_LEVEL = "coefficient"
# target_accept=None: the collapsed engine's NUTS moves a few scales only (cheap steps).
DEFAULT_TARGET_ACCEPT = {"collapsed": 0.95, "suffstat": 0.8, "bambi": 0.8}


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
    term : str or None, default=None
        Column whose group-varying coefficient is ranked; None picks the only varying slope
        (or the intercept when only intercepts vary).
    family : str, default="gaussian"
        Bambi family of the response. Families other than Gaussian use Bambi's own model.
    priors : dict or None, default=None
        Priors by term name (``"H0"``, ``"H0|gene"``, ``"sigma"``), as ``bambi.Prior`` or
        :class:`skhier.priors.Prior`. None uses Bambi's data-scaled defaults.
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
        Reference value of ``lfsr`` and ``p_gt_ref``; ``"population"`` uses the population
        (common) coefficient draw by draw.
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
    engine : {"auto", "collapsed", "suffstat", "bambi"}, default="auto"
        ``"auto"`` uses the collapsed engine when the model allows it (Gaussian, plain terms,
        nested factors), else the sufficient-statistics engine (Gaussian with crossed factors:
        every coefficient sampled, the likelihood from per-cell sums), else Bambi's own model.
    on_fail : {"warn", "raise", "refit", "ignore"}, default="warn"
        What a failed convergence check does; ``"refit"`` refits with more warm-up and a higher
        target acceptance (and, for Bambi's model, the other parametrization), at most
        ``max_refits`` times, then warns.
    max_refits : int, default=2
        Refits allowed by ``on_fail="refit"``.
    missing : {"raise", "drop"}, default="raise"
        Rows with NaN/inf in a column the model reads: raise, or drop them (logged).
    random_state : int, RandomState instance or None, default=None
        Seed of the sampler and of the coefficient draws; an int makes fits reproducible.
    progressbar : bool, default=False
        Show the sampler's progress.
    n_jobs : int or None, default=None
        Chains run in parallel; None or -1 uses every core.

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
    term_ : str
        The ranked column.
    engine_ : str
        ``"collapsed"`` or ``"bambi"``.
    rank_ : pandas.DataFrame
        The ranking at ``level_`` (see :func:`skhier.rank_posterior` for the columns), best first.
    dominance_ : pandas.DataFrame
        ``P(beta_row > beta_col)`` at ``level_``, computed on first access.
    diagnostics_ : skhier.diagnostics.Diagnostics
        Sampler health, with ``passed`` and the messages to act on.
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
        from skhier.engine.sampling import check_sampler

        if self.formula is not None and not isinstance(self.formula, str):
            raise TypeError(f"formula must be a string or None, got {self.formula!r}.")
        check_choice("pooling", self.pooling, POOLING)
        check_choice("engine", self.engine, ENGINES)
        check_choice("parametrization", self.parametrization, PARAMETRIZATIONS)
        check_choice("on_fail", self.on_fail, ON_FAIL)
        check_choice("missing", self.missing, MISSING)
        if not isinstance(self.family, str):
            raise TypeError(f"family must be a Bambi family name (str), got {self.family!r}.")
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
        if not (self.reference == "population" or isinstance(self.reference, int | float)):
            raise ValueError(
                f"reference={self.reference!r} is not valid; give a number or 'population'."
            )
        if self.priors is not None and not isinstance(self.priors, dict):
            raise TypeError(f"priors must be a dict of term name to prior, got {self.priors!r}.")
        check_sampler(self.sampler)

    def _seed(self) -> int:
        if isinstance(self.random_state, int | np.integer) and not isinstance(
            self.random_state, bool
        ):
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
        """
        t_start = time.perf_counter()
        self._check_params()
        data = self._frame(X, y, reset=True)
        prep = self._prepare(data)
        self._sample(prep)
        self._finish(prep)
        self.diagnostics_.info["fit_seconds"] = time.perf_counter() - t_start
        return self

    def _prepare(self, data):
        """Validate the data and build everything the engines need, without sampling."""
        from types import SimpleNamespace

        from skhier.engine.fit import collapsible, pooled_spec
        from skhier.priors import default_priors, merge_priors

        formula = self.formula
        if formula is None:
            formula = "y ~ " + " + ".join(c for c in data.columns if c != "y")
        parsed = parse_formula(formula)
        data = check_data(data, parsed, missing=self.missing)
        design = build_design(data, parsed)

        if parsed.group_terms:
            column = ranked_column(parsed, self.term)
            factors = ranked_factors(parsed, column)
            level = self._resolve_level(design, factors)
        else:
            column, level = None, COEF_LEVEL
            if self.level not in (None, COEF_LEVEL):
                raise ValueError(
                    f"level={self.level!r} is not a grouping factor: the formula {formula!r} "
                    f"has none; the coefficients are ranked (level={COEF_LEVEL!r})."
                )
            if self.pooling != "partial":
                raise ValueError(
                    f"pooling={self.pooling!r} needs a group-specific term in the formula; "
                    f"{formula!r} has none."
                )

        base_priors = default_priors(parsed, data) if self.family == "gaussian" else {}
        spec = pooled_spec(parsed, base_priors, self.pooling, column, level, self.family)
        if self.pooling != "partial":
            parsed = spec.parsed
            design = build_design(data, parsed)
        if self.family == "gaussian":
            spec.priors = merge_priors(default_priors(parsed, data), self.priors)
        elif self.priors:
            from skhier.priors import Prior

            spec.priors = {k: Prior.from_any(v) for k, v in self.priors.items()}

        reason = collapsible(spec, design)
        engine = self._choose_engine(spec, design, reason)
        return SimpleNamespace(
            data=data, spec=spec, design=design, column=column, level=level, engine=engine,
            reason=reason,
        )

    def _finish(self, prep):
        """Set the fitted attributes that follow from the posterior."""
        self.formula_ = prep.spec.parsed.formula
        self.term_ = prep.column if prep.column is not None else COEF_LEVEL
        self.engine_ = prep.engine
        self._spec = prep.spec
        self._design = prep.design
        self._train = prep.data
        self.groups_ = self._groups_table(prep.design)
        self.level_ = prep.level
        self._cache = {}
        self.rank_ = self.rank_table()

    def _choose_engine(self, spec, design, reason):
        from skhier.engine.fit import collapsible

        if self.engine == "collapsed":
            if reason:
                raise ValueError(f"engine='collapsed' cannot fit this model: {reason}.")
            return "collapsed"
        flat_reason = collapsible(spec, design, require_chain=False)
        if self.engine == "suffstat":
            if flat_reason:
                raise ValueError(f"engine='suffstat' cannot fit this model: {flat_reason}.")
            return "suffstat"
        if self.engine == "bambi":
            return "bambi"
        if not reason:
            return "collapsed"
        if not flat_reason:
            logger.info("skhier: factors are not nested (%s); sampling every coefficient from "
                        "per-cell statistics (engine='suffstat').", reason)
            return "suffstat"
        logger.info("skhier: using Bambi's model instead of the collapsed engine: %s", reason)
        return "bambi"

    def _resolve_level(self, design, factors):
        chain = [f for f in (design.chain or []) if f in factors] or factors
        by_size = sorted(chain, key=lambda f: design.factors[f].n_levels)
        if self.level is None:
            return by_size[-1]
        try:
            f = design.find_factor(self.level)
        except ValueError:
            f = None
        if f is None or f.name not in factors:
            choices = sorted({*factors, *(design.factors[x].short_name for x in factors)})
            raise ValueError(
                f"level={self.level!r} is not a grouping factor of the ranked term; choose from "
                f"{choices}."
            )
        return f.name

    def _sample(self, prep):
        from skhier.diagnostics import check_diagnostics, diagnose
        from skhier.engine.fit import fit_bambi, fit_collapsed
        from skhier.engine.sampling import default_cores
        from skhier.engine.suffstat import fit_suffstat

        spec, design, data, engine, reason = (
            prep.spec, prep.design, prep.data, prep.engine, prep.reason
        )
        seed = self._seed()
        tune, target_accept = self.tune, self.target_accept
        if target_accept is None:
            target_accept = DEFAULT_TARGET_ACCEPT[engine]
        parametrization = self.parametrization
        attempts = []
        cores = default_cores(self.chains, self.n_jobs)
        n_attempts = self.max_refits + 1 if self.on_fail == "refit" else 1
        for attempt in range(n_attempts):
            kwargs = dict(sampler=self.sampler, draws=self.draws, tune=tune, chains=self.chains,
                          target_accept=target_accept, seed=seed + attempt,
                          progressbar=self.progressbar, cores=cores)
            t0 = time.perf_counter()
            terms = [t.name for t in spec.parsed.group_terms]
            if engine == "collapsed":
                model, idata, timing = fit_collapsed(spec, design, **kwargs)
                choice = dict.fromkeys(terms, "marginalized")
            elif engine == "suffstat":
                model, idata, timing, choice = fit_suffstat(
                    spec, design, parametrization=parametrization, **kwargs
                )
            else:
                noncentered = _bambi_noncentered(parametrization)
                model, idata, timing = fit_bambi(spec, data, noncentered=noncentered,
                                                 user_priors=self._bambi_priors(spec), **kwargs)
                choice = dict.fromkeys(terms, "noncentered" if noncentered else "centered")
            timing["total"] = time.perf_counter() - t0
            info = {"engine": engine, "fallback_reason": reason, "sampler": self.sampler,
                    "parametrization": choice, "tune": tune, "target_accept": target_accept}
            diag = diagnose(idata, info=info)
            attempts.append({"tune": tune, "target_accept": target_accept,
                             "parametrization": choice, "passed": bool(diag.passed), **timing})
            if diag.passed or attempt == n_attempts - 1:
                break
            logger.info("skhier: attempt %d failed its checks; refitting with more warm-up and "
                        "a higher target acceptance.", attempt + 1)
            tune = int(tune * 2) if tune else 500
            target_accept = min(0.99, target_accept + (1 - target_accept) / 2)
            if engine != "collapsed":  # try the other parametrization of every term
                parametrization = {
                    k: "centered" if v == "noncentered" else "noncentered"
                    for k, v in choice.items()
                }
        self._model = model  # None: built on first access of model_ (see model_)
        self.idata_ = idata
        diag.update_info(attempts=attempts)
        self.diagnostics_ = diag
        if self.on_fail in ("warn", "refit"):
            check_diagnostics(diag, "warn", stacklevel=4)
        elif self.on_fail == "raise":
            check_diagnostics(diag, "raise")

    def _bambi_priors(self, spec):
        """Priors to hand Bambi: the user's (Bambi computes the same defaults itself)."""
        if not self.priors:
            return None
        if spec.family != "gaussian":
            return spec.priors
        return {k: spec.priors[k] for k in self.priors}

    def _build_model(self, prep, parametrization):
        """Rebuild the engine's model without sampling (for :func:`skhier.load`)."""
        from skhier.engine.fit import build_bambi_model, build_collapsed_model, build_tree
        from skhier.engine.suffstat import build_suffstat_model

        if prep.engine == "collapsed":
            return build_collapsed_model(prep.spec, build_tree(prep.spec, prep.design))
        if prep.engine == "suffstat":
            return build_suffstat_model(prep.spec, prep.design, parametrization)
        model, _ = build_bambi_model(
            prep.spec,
            prep.data,
            noncentered=_bambi_noncentered(parametrization),
            user_priors=self._bambi_priors(prep.spec),
        )
        return model

    @staticmethod
    def _groups_table(design):
        out = {}
        for name, f in design.factors.items():
            frame = pd.DataFrame(
                {"label": np.asarray(f.labels, dtype=object), "n_obs": f.n_obs},
                index=pd.Index(np.asarray(f.display, dtype=object), name=f.short_name),
            )
            if design.chain and name in design.parents:
                parent = design.chain[design.chain.index(name) - 1]
                pf = design.factors[parent]
                frame["parent"] = np.asarray(pf.display, dtype=object)[design.parents[name]]
            out[name] = frame
            if f.short_name not in out:
                out[f.short_name] = frame
        return out

    # ------------------------------------------------------------------ ranking
    def _totals(self, level=None):
        """Draws of the ranked total effect at a level, as a DataArray."""
        import xarray as xr

        check_is_fitted(self, "idata_")
        post = self.idata_.posterior
        if self.term_ == COEF_LEVEL:
            if level not in (None, COEF_LEVEL):
                raise ValueError(f"level={level!r} is not available; choose {COEF_LEVEL!r}.")
            names = [c for c in self._spec.parsed.common]
            arr = np.stack([np.asarray(post[c]) for c in names], axis=-1)
            return xr.DataArray(
                arr, dims=("chain", "draw", COEF_LEVEL), coords={COEF_LEVEL: names}
            ), None
        design = self._design
        if level is None:
            factor = design.factors[self.level_] if self.level_ in design.factors else None
        else:
            factor = self._find_level(level)
        if factor is None:  # complete pooling: rank the levels of the partial model's factor
            factor = self._find_level(self.level_)
        return level_totals(post, self._spec.parsed, design, self.term_, factor), factor

    def _find_level(self, level):
        from skhier.design import build_factor

        design = self._design
        try:
            return design.find_factor(level)
        except ValueError:
            if self.pooling != "complete":
                raise
        cols = tuple(level.split(":"))
        if all(c in self._train.columns for c in cols):
            return build_factor(self._train, cols)
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
        if reference == "population":
            post = self.idata_.posterior
            if self.term_ not in post.data_vars:
                raise ValueError(
                    "reference='population' needs a common (population) coefficient on "
                    f"{self.term_!r}, which this model does not have."
                )
            reference = np.asarray(post[self.term_])
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
            from types import SimpleNamespace

            prep = SimpleNamespace(
                spec=self._spec, design=self._design, data=self._train, engine=self.engine_
            )
            self._model = self._build_model(prep, self.diagnostics_.info.get("parametrization"))
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
    def _linear_predictor(self, data, rng, chunk=2048):
        """Yield (rows slice, draws of the linear predictor, extra variance of unseen levels)."""
        post = self.idata_.posterior
        spec = self._spec
        columns = spec.parsed.columns
        W = design_matrix(data, columns)
        n_draws = post.sizes["chain"] * post.sizes["draw"]
        common = {c: np.asarray(post[c]).reshape(-1) for c in columns if c in post.data_vars}
        terms = []
        for t in spec.parsed.group_terms:
            f = self._design.factors[t.factor]
            keys = (
                data[list(t.factors)].astype(str).agg(":".join, axis=1)
                if len(t.factors) > 1
                else data[t.factors[0]].astype(str)
            )
            codes = pd.Index(np.asarray(f.labels, dtype=object)).get_indexer(keys.to_numpy())
            values = np.asarray(post[t.name]).reshape(n_draws, -1)
            scale_name = f"{t.name}_sigma"
            if scale_name in post.data_vars:
                tau = np.asarray(post[scale_name]).reshape(-1)
            else:
                tau = np.full(n_draws, float(spec.fixed_tau.get(t.name, 0.0)))
            terms.append((columns.index(t.column), codes, values, tau))
        for start in range(0, len(data), chunk):
            sl = slice(start, min(start + chunk, len(data)))
            eta = np.zeros((n_draws, sl.stop - sl.start))
            extra = np.zeros_like(eta)
            for k, c in enumerate(columns):
                if c in common:
                    eta += common[c][:, None] * W[sl, k]
            for k, codes, values, tau in terms:
                cod = codes[sl]
                seen = cod >= 0
                contrib = np.zeros_like(eta)
                contrib[:, seen] = values[:, cod[seen]]
                eta += contrib * W[sl, k]
                if (~seen).any():
                    extra[:, ~seen] += (tau[:, None] * W[sl, k][~seen]) ** 2
            yield sl, eta, extra

    def _predict_data(self, X):
        check_is_fitted(self, "idata_")
        if self.family != "gaussian":
            raise NotImplementedError(
                f"predict/score are implemented for family='gaussian'; this model has "
                f"family={self.family!r}."
            )
        data = self._frame(X, None, reset=False)
        parsed = self._spec.parsed
        check_data(data, parsed, missing="raise", response=False)
        return data

    def predict(self, X, return_std=False):
        """Posterior mean of the response (and its predictive standard deviation).

        Groups not seen in fit get coefficients drawn from the hierarchy: they add no mean and
        their scale's variance.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            New data with the formula's predictor and grouping columns.
        return_std : bool, default=False
            Also return the posterior predictive standard deviation.

        Returns
        -------
        y_mean : ndarray of shape (n_samples,)
            Posterior mean of the response.
        y_std : ndarray of shape (n_samples,)
            Posterior predictive standard deviation (with ``return_std=True``).
        """
        data = self._predict_data(X)
        post = self.idata_.posterior
        sigma2 = np.asarray(post["sigma"]).reshape(-1) ** 2 if "sigma" in post else None
        mean = np.empty(len(data))
        std = np.empty(len(data))
        for sl, eta, extra in self._linear_predictor(data, None):
            mean[sl] = eta.mean(axis=0)
            if return_std:
                var = eta.var(axis=0) + (extra + sigma2[:, None]).mean(axis=0)
                std[sl] = np.sqrt(var)
        return (mean, std) if return_std else mean

    def predict_quantiles(self, X, quantiles=(0.05, 0.95), *, random_state=None):
        """Quantiles of the posterior predictive distribution of the response.

        One predictive draw per posterior draw: the linear predictor plus Gaussian noise of the
        draw's residual sd (and, for groups not seen in fit, a coefficient drawn from the
        hierarchy). Rows are processed in blocks, so memory stays bounded.

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
        data = self._predict_data(X)
        rng = np.random.default_rng(random_state)
        sigma = np.asarray(self.idata_.posterior["sigma"], dtype=np.float64).reshape(-1)
        out = np.empty((len(data), len(probs)))
        for sl, eta, extra in self._linear_predictor(data, None):
            sd = np.sqrt(sigma[:, None] ** 2 + extra)
            eta += sd * rng.standard_normal(eta.shape)
            out[sl] = np.quantile(eta, probs, axis=0).T
        return out[:, 0] if scalar else out

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
        from scipy.special import logsumexp

        from skhier.scoring import _log_density_blocks, _response_values

        data = self._predict_data(X)
        yv = _response_values(self, data, y, purpose="score")
        n_draws = self.idata_.posterior.sizes["chain"] * self.idata_.posterior.sizes["draw"]
        lppd = np.empty(len(data))
        for sl, ll in _log_density_blocks(self, data, yv):
            lppd[sl] = logsumexp(ll, axis=0) - np.log(n_draws)
        return float(np.average(lppd, weights=sample_weight))

    def save(self, path):
        """Save the fitted ranker to a folder of JSON and netCDF files (no pickle).

        Parameters
        ----------
        path : str or os.PathLike
            Folder to write.

        Returns
        -------
        pathlib.Path
            The folder; :func:`skhier.load` reads it back.

        See Also
        --------
        skhier.load : Load a saved ranker.
        skhier.io.save : The function behind this method (the file layout).
        """
        from skhier.io import save

        return save(self, path)

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


def _bambi_noncentered(parametrization) -> bool:
    """Bambi takes one parametrization for every term: non-centered unless all are centered."""
    if isinstance(parametrization, dict):
        return any(v != "centered" for v in parametrization.values())
    return parametrization != "centered"


class _CloudPickled:
    """Bytes of an object pickled with cloudpickle, inside a standard pickle."""

    def __init__(self, payload: bytes):
        self.payload = payload
