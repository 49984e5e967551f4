"""The engine contract: sampler settings, what an engine returns, and the registry that chooses one.

An engine turns a :class:`skhier.plan.FitPlan` into a posterior. It declares what it needs
(:meth:`Engine.why_not` says why a plan is outside its reach, or None), builds its model
(:meth:`Engine.build`) and fits it (:meth:`Engine.fit`). Engines register themselves in
:data:`REGISTRY` in the order they are preferred; :func:`choose_engine` takes the first that
accepts the plan and records why each one before it did not. Nothing outside an engine's own
module branches on engine names.

Every engine returns its posterior under Bambi's names (see :mod:`skhier._names`), so the
ranking, the diagnostics and the predictions read any engine's output the same way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from skhier.formula import INTERCEPT
from skhier.priors import SCALE_DISTRIBUTIONS, Prior

if TYPE_CHECKING:
    from skhier.plan import FitPlan

__all__ = [
    "SamplerSettings",
    "EngineFit",
    "Engine",
    "REGISTRY",
    "register",
    "get_engine",
    "engine_names",
    "choose_engine",
    "gaussian_suffstat_why_not",
    "normal_priors_why_not",
]


@dataclass(frozen=True)
class SamplerSettings:
    """How to run NUTS: the one place for the sampler's settings.

    Parameters
    ----------
    sampler : {"nutpie", "pymc", "numpyro"}, default="nutpie"
        NUTS implementation.
    draws : int, default=1000
        Kept draws per chain.
    tune : int, default=1000
        Warm-up iterations per chain.
    chains : int, default=4
        Number of chains.
    target_accept : float, default=0.8
        Target acceptance rate of the step-size adaptation.
    seed : int or None, default=None
        Random seed of the sampler (and of an engine's own draws).
    progressbar : bool, default=False
        Show the sampler's progress.
    cores : int, default=1
        Chains run in parallel.

    Examples
    --------
    >>> s = SamplerSettings(draws=200, chains=2)
    >>> s.replace(tune=500).tune, s.tune
    (500, 1000)
    """

    sampler: str = "nutpie"
    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    target_accept: float = 0.8
    seed: int | None = None
    progressbar: bool = False
    cores: int = 1

    def replace(self, **changes) -> SamplerSettings:
        """Return a copy with some settings changed.

        Parameters
        ----------
        **changes
            New values by field name.

        Returns
        -------
        SamplerSettings
            The new settings.
        """
        return dataclasses.replace(self, **changes)


@dataclass
class EngineFit:
    """What an engine's fit returns.

    Parameters
    ----------
    model : object or None
        The fitted model (``pymc.Model`` or ``bambi.Model``), or None when the engine sampled
        without one (it is then built on demand by :meth:`Engine.build`).
    idata : arviz.InferenceData
        Posterior under Bambi's names, and the sampler's statistics.
    timing : dict
        Seconds per step (``"sampling"``, ...) and other facts of the run.
    parametrization : dict of str to str
        Per group term: ``"centered"``, ``"noncentered"`` or ``"marginalized"``.
    approximation : object or None, default=None
        How good an approximate engine's posterior is (for the count engine a
        :class:`skhier.engine.counts.Approximation`); None for the exact engines.

    Examples
    --------
    >>> EngineFit(None, None, {"sampling": 1.0}, {"1|g": "centered"}).parametrization
    {'1|g': 'centered'}
    """

    model: Any
    idata: Any
    timing: dict = field(default_factory=dict)
    parametrization: dict = field(default_factory=dict)
    approximation: Any = None


@runtime_checkable
class Engine(Protocol):
    """What every engine provides.

    Attributes
    ----------
    name : str
        The registry name, the value of the estimator's ``engine`` parameter.
    default_target_accept : float
        NUTS' target acceptance when the user leaves it to the engine.
    switches_parametrization : bool
        Whether a refit may try the other parametrization of the group terms.
    """

    name: str
    default_target_accept: float
    switches_parametrization: bool

    def why_not(self, plan: FitPlan) -> str | None:
        """Say why this engine cannot fit the plan, or None when it can."""

    def build(self, plan: FitPlan, parametrization=None):
        """Build the engine's model of the plan without sampling it."""

    def fit(self, plan: FitPlan, settings: SamplerSettings, parametrization=None) -> EngineFit:
        """Fit the plan."""


#: Engines by name, in the order :func:`choose_engine` tries them.
REGISTRY: dict[str, Engine] = {}


def register(engine: Engine) -> Engine:
    """Add an engine to the registry (after those already there; the built-in engines first).

    Parameters
    ----------
    engine : Engine
        The engine.

    Returns
    -------
    Engine
        The same engine.

    Raises
    ------
    TypeError
        If it does not provide the engine protocol.
    """
    if not isinstance(engine, Engine):
        raise TypeError(f"{engine!r} does not provide the engine protocol (skhier.engine.Engine).")
    REGISTRY[engine.name] = engine
    return engine


#: The built-in engines by module, in the order they are preferred; engines registered by
#: users come after them, in the order registered.
BUILTIN_ENGINES = {
    "collapsed": "skhier.engine.collapsed",
    "suffstat": "skhier.engine.suffstat",
    "laplace": "skhier.engine.counts",
    "bambi": "skhier.engine.bambi_model",
}


def _load_engines() -> list[str]:
    """Import the built-in engines (they register on import) and return every name in order."""
    import importlib

    for module in BUILTIN_ENGINES.values():
        importlib.import_module(module)  # loads no PyMC, Bambi or numba
    builtin = [n for n in BUILTIN_ENGINES if n in REGISTRY]
    return builtin + [n for n in REGISTRY if n not in BUILTIN_ENGINES]


def engine_names() -> tuple[str, ...]:
    """Return the registered engines' names, in the order they are preferred.

    Returns
    -------
    tuple of str
        Engine names.

    Examples
    --------
    >>> engine_names()
    ('collapsed', 'suffstat', 'laplace', 'bambi')
    """
    return tuple(_load_engines())


def get_engine(name: str) -> Engine:
    """Return a registered engine by name.

    Parameters
    ----------
    name : str
        Engine name.

    Returns
    -------
    Engine
        The engine.

    Raises
    ------
    ValueError
        If no engine has that name, naming those that exist.

    Examples
    --------
    >>> get_engine("collapsed").default_target_accept
    0.95
    """
    names = _load_engines()
    if name not in REGISTRY:
        raise ValueError(f"engine={name!r} is not valid; choose one of {('auto', *names)}.")
    return REGISTRY[name]


def choose_engine(plan: FitPlan, requested: str = "auto") -> tuple[str, dict[str, str]]:
    """Choose the engine that fits a plan.

    Parameters
    ----------
    plan : FitPlan
        The plan (its ``engine`` field is not read).
    requested : str, default="auto"
        ``"auto"`` takes the first registered engine that accepts the plan; a name requires
        that engine.

    Returns
    -------
    name : str
        The engine.
    reasons : dict of str to str
        Why each engine preferred to it cannot fit the plan.

    Raises
    ------
    ValueError
        If the requested engine cannot fit the plan (with its reason), or none can.
    """
    names = _load_engines()
    if requested != "auto":
        reason = get_engine(requested).why_not(plan)
        if reason:
            raise ValueError(f"engine={requested!r} cannot fit this model: {reason}.")
        return requested, {}
    reasons: dict[str, str] = {}
    for name in names:
        reason = REGISTRY[name].why_not(plan)
        if not reason:
            return name, reasons
        reasons[name] = reason
    detail = "; ".join(f"{k}: {v}" for k, v in reasons.items())
    raise ValueError(f"no engine can fit this model ({detail}).")


def gaussian_suffstat_why_not(plan: FitPlan) -> str | None:
    """Say why a plan's likelihood is not a Gaussian of per-cell sums with Normal coefficients.

    What both Gaussian engines need: family Gaussian with identity link, terms that are plain
    columns, Normal priors on the coefficients (group terms: ``Normal(0, sigma)``) and positive
    distributions (or fixed numbers) on every scale.

    Parameters
    ----------
    plan : FitPlan
        The plan.

    Returns
    -------
    str or None
        The reason, or None when the plan qualifies.
    """
    if plan.family != "gaussian":
        return f"family {plan.family!r} is not Gaussian with identity link"
    parsed = plan.parsed
    if parsed.unsupported:
        return "; ".join(parsed.unsupported)
    if parsed.offset is not None:
        return f"the formula has an offset (offset({parsed.offset}))"
    reason = normal_priors_why_not(plan)
    if reason:
        return reason
    sigma = plan.priors.get("sigma")
    if isinstance(sigma, Prior) and sigma.name not in SCALE_DISTRIBUTIONS:
        return f"the prior of 'sigma' ({sigma.name}) is not a positive distribution"
    return None


def normal_priors_why_not(plan: FitPlan) -> str | None:
    """Say why a plan's coefficients do not have the Normal priors the collapsed hierarchy needs.

    Common terms need Normal priors; group terms ``Normal(0, sigma)`` with ``sigma`` a positive
    distribution or a fixed number.

    Parameters
    ----------
    plan : FitPlan
        The plan.

    Returns
    -------
    str or None
        The reason, or None when the priors qualify.

    Examples
    --------
    >>> import pandas as pd
    >>> from skhier.plan import make_plan
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4], "g": list("aabb")})
    >>> normal_priors_why_not(make_plan({"formula": "y ~ (1|g)"}, df)) is None
    True
    """
    parsed = plan.parsed
    for name in (*parsed.common, *([INTERCEPT] if parsed.intercept else [])):
        prior = plan.priors.get(name)
        if isinstance(prior, Prior) and prior.name != "Normal":
            return f"the prior of {name!r} is {prior.name}, not Normal"
    for t in parsed.group_terms:
        if t.name in plan.fixed_tau:
            continue
        prior = plan.priors.get(t.name)
        if isinstance(prior, Prior):
            sig = prior.args.get("sigma")
            if prior.name != "Normal" or prior.args.get("mu", 0.0) != 0:
                return f"the prior of {t.name!r} is not Normal(0, sigma)"
            if isinstance(sig, Prior) and sig.name not in SCALE_DISTRIBUTIONS:
                return f"the scale prior of {t.name!r} ({sig.name}) is not a positive distribution"
    return None
