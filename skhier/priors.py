"""Default priors, the same as Bambi's, computed from the data without building Bambi's design.

Bambi 0.17 scales its default priors with the data (``bambi.priors.scaler.PriorScaler``); this
module computes the same numbers from the response and predictor columns, so the fast engine and
Bambi's own model share one prior:

- residual ``sigma ~ HalfStudentT(nu=4, sigma=sd(y))``;
- a common slope on ``x``: ``Normal(0, 2.5 * sd(y) / sd(x))``;
- the common intercept: ``Normal(mean(y), sqrt((2.5 sd(y))^2 + sum_x sigma_x^2 mean(x)^2))``;
- a group-specific slope on ``x``: ``Normal(0, sigma_g)`` with
  ``sigma_g ~ HalfNormal(2.5 sd(y)/sd(x))``;
  a group-specific intercept takes the common intercept's scale.

(``sd`` is the population standard deviation, as ``np.std``.) For the count families with a log
link (``negativebinomial``, ``poisson``) Bambi takes ``mean(y) = 0`` and ``sd(y) = 1`` in these
rules, has no ``sigma``, and gives the negative binomial's ``alpha`` a ``HalfCauchy(beta=1)``
prior. User priors, given as
``bambi.Prior`` objects or :class:`Prior`, replace the defaults by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from skhier.formula import INTERCEPT, ParsedFormula

__all__ = [
    "Prior",
    "SCALE_DISTRIBUTIONS",
    "DEFAULT_PRIOR_FAMILIES",
    "default_priors",
    "merge_priors",
    "to_pymc",
]

STD = 2.5

#: PyMC distributions with positive support, accepted as priors of scales.
SCALE_DISTRIBUTIONS = frozenset(
    {
        "HalfNormal",
        "HalfStudentT",
        "HalfCauchy",
        "Exponential",
        "Gamma",
        "InverseGamma",
        "LogNormal",
        "HalfFlat",
        "Uniform",
        "TruncatedNormal",
        "Weibull",
    }
)


@dataclass
class Prior:
    """A prior distribution by PyMC name and arguments (a light stand-in for ``bambi.Prior``).

    Parameters
    ----------
    name : str
        PyMC distribution name, e.g. ``"Normal"`` or ``"HalfNormal"``.
    args : dict
        Its arguments; an argument may itself be a :class:`Prior` (a hyperprior).

    Examples
    --------
    >>> Prior("Normal", {"mu": 0.0, "sigma": Prior("HalfNormal", {"sigma": 1.0})})
    Normal(mu=0.0, sigma=HalfNormal(sigma=1.0))
    """

    name: str
    args: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={_fmt(v)}" for k, v in self.args.items())
        return f"{self.name}({inner})"

    @classmethod
    def from_any(cls, prior) -> Prior:
        """Convert a ``bambi.Prior`` (or anything with ``name`` and ``args``) to a Prior.

        Parameters
        ----------
        prior : object
            A ``bambi.Prior``, a :class:`Prior`, or a number (a constant).

        Returns
        -------
        Prior or float
            The converted prior.

        Examples
        --------
        >>> Prior.from_any(Prior("HalfNormal", {"sigma": 2}))
        HalfNormal(sigma=2)
        """
        if isinstance(prior, Prior):
            return prior
        if isinstance(prior, int | float | np.floating | np.integer):
            return float(prior)
        name = getattr(prior, "name", None)
        args = getattr(prior, "args", None)
        if not isinstance(name, str) or not isinstance(args, dict):
            raise TypeError(
                f"a prior must be a bambi.Prior, a skhier.priors.Prior or a number, got {prior!r}."
            )
        return cls(name, {k: cls.from_any(v) if hasattr(v, "args") else v for k, v in args.items()})

    def to_bambi(self):
        """Return the equivalent ``bambi.Prior``.

        Returns
        -------
        bambi.Prior
            The same distribution for Bambi.
        """
        import bambi as bmb

        args = {k: (v.to_bambi() if isinstance(v, Prior) else v) for k, v in self.args.items()}
        return bmb.Prior(self.name, **args)


def to_pymc(name: str, prior):
    """Create a prior's PyMC random variable inside the current model (a number stays a number).

    Parameters
    ----------
    name : str
        Variable name.
    prior : Prior or float
        The prior, or a fixed value.

    Returns
    -------
    pytensor.tensor.TensorVariable or float
        The random variable, or the float.

    Raises
    ------
    ValueError
        If PyMC has no distribution of that name.

    Examples
    --------
    >>> import pymc as pm
    >>> with pm.Model() as m:
    ...     s = to_pymc("sigma", Prior("HalfNormal", {"sigma": 1.0}))
    >>> [v.name for v in m.free_RVs], to_pymc("tau", 2)
    (['sigma'], 2.0)
    """
    import pymc as pm

    if not isinstance(prior, Prior):
        return float(prior)
    dist = getattr(pm, prior.name, None)
    if dist is None:
        raise ValueError(f"prior {prior!r} for {name!r}: PyMC has no distribution {prior.name!r}.")
    return dist(name, **prior.args)


def _fmt(v) -> str:
    if isinstance(v, float | np.floating):
        return repr(float(f"{float(v):.4g}"))
    return repr(v)


def _sd(x: np.ndarray, name: str) -> float:
    s = float(np.std(x))
    if not np.isfinite(s) or s == 0:
        raise ValueError(
            f"column {name!r} is constant (sd = {s}); a slope on it cannot be scaled. Remove it "
            "from the formula or pass an explicit prior for it."
        )
    return s


#: Families whose default priors :func:`default_priors` computes, with their auxiliary
#: parameters' priors (Bambi 0.17's defaults).
DEFAULT_PRIOR_FAMILIES = {
    "gaussian": None,  # sigma scaled by the response, below
    "negativebinomial": {"alpha": ("HalfCauchy", {"beta": 1.0})},
    "poisson": {},
}


def default_priors(parsed: ParsedFormula, data, family: str = "gaussian") -> dict[str, Prior]:
    """Bambi's default priors, computed from the data.

    Parameters
    ----------
    parsed : ParsedFormula
        The formula's structure.
    data : pandas.DataFrame
        The data (response and predictor columns are read).
    family : {"gaussian", "negativebinomial", "poisson"}, default="gaussian"
        The model's family (its default link).

    Returns
    -------
    dict of str to Prior
        Keys: the family's auxiliary parameters (``sigma``, ``alpha``), each common column
        (``Intercept`` included) and each group term's name (``H0|gene``).

    Raises
    ------
    ValueError
        For a family whose defaults are not computed here.

    Examples
    --------
    >>> import pandas as pd
    >>> from skhier.formula import parse_formula
    >>> df = pd.DataFrame({"y": [0.0, 2.0], "x": [0.0, 1.0], "g": ["a", "b"]})
    >>> default_priors(parse_formula("y ~ 0 + x + (0 + x|g)"), df)["x|g"]
    Normal(mu=0.0, sigma=HalfNormal(sigma=5.0))
    >>> default_priors(parse_formula("y ~ x"), df, family="negativebinomial")["alpha"]
    HalfCauchy(beta=1.0)
    """
    if family not in DEFAULT_PRIOR_FAMILIES:
        raise ValueError(
            f"family={family!r} has no default priors computed by skhier; choose one of "
            f"{tuple(DEFAULT_PRIOR_FAMILIES)} (Bambi computes the others' defaults)."
        )
    aux = DEFAULT_PRIOR_FAMILIES[family]
    if aux is None:
        y = np.asarray(data[parsed.response], dtype=np.float64)
        sy = float(np.std(y))
        my = float(np.mean(y))
        priors: dict[str, Prior] = {"sigma": Prior("HalfStudentT", {"nu": 4.0, "sigma": sy})}
    else:  # log link: Bambi scales as for a response with mean 0 and sd 1
        sy, my = 1.0, 0.0
        priors = {name: Prior(dist, dict(args)) for name, (dist, args) in aux.items()}
    slope_sigma = {}
    for c in parsed.common:
        x = np.asarray(data[c], dtype=np.float64)
        slope_sigma[c] = STD * sy / _sd(x, c)
        priors[c] = Prior("Normal", {"mu": 0.0, "sigma": slope_sigma[c]})
    intercept_sigma = STD * sy
    if slope_sigma:
        means = np.array([np.mean(np.asarray(data[c], dtype=np.float64)) for c in slope_sigma])
        sig = np.array(list(slope_sigma.values()))
        intercept_sigma = float(np.sqrt(intercept_sigma**2 + np.dot(sig**2, means**2)))
    if parsed.intercept:
        priors[INTERCEPT] = Prior("Normal", {"mu": my, "sigma": intercept_sigma})
    for t in parsed.group_terms:
        if t.column == INTERCEPT:
            s = intercept_sigma
        else:
            s = STD * sy / _sd(np.asarray(data[t.column], dtype=np.float64), t.column)
        priors[t.name] = Prior("Normal", {"mu": 0.0, "sigma": Prior("HalfNormal", {"sigma": s})})
    return priors


def merge_priors(defaults: dict[str, Prior], user: dict | None) -> dict[str, Prior]:
    """Replace default priors by the user's, checking every name.

    Parameters
    ----------
    defaults : dict of str to Prior
        The defaults, by term name.
    user : dict or None
        User priors by term name (``bambi.Prior``, :class:`Prior` or a number).

    Returns
    -------
    dict of str to Prior
        The priors to use.

    Raises
    ------
    ValueError
        If a user prior names no term of the model.

    Examples
    --------
    >>> merge_priors({"sigma": Prior("HalfNormal", {"sigma": 1.0})},
    ...              {"sigma": Prior("Exponential", {"lam": 1.0})})
    {'sigma': Exponential(lam=1.0)}
    """
    out = dict(defaults)
    for name, prior in (user or {}).items():
        if name not in defaults:
            raise ValueError(
                f"priors has an entry for {name!r}, which is not a term of the model; "
                f"valid names are {sorted(defaults)}."
            )
        out[name] = Prior.from_any(prior)
    return out
