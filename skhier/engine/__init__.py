"""Engines: one contract, a registry, the samplers; the only modules that import PyMC and Bambi.

- :mod:`skhier.engine.base`: :class:`SamplerSettings`, the :class:`Engine` protocol,
  :class:`EngineFit` and the registry (:func:`choose_engine`, :func:`get_engine`).
- :mod:`skhier.engine.retry`: the refit policy.
- :mod:`skhier.engine.samplers`: sampler dispatch (nutpie, PyMC NUTS, numpyro).
- One module per engine, in the order they are preferred: :mod:`skhier.engine.collapsed`
  (Gaussian, nested factors: coefficients integrated out along :mod:`skhier.engine.tree`),
  :mod:`skhier.engine.suffstat` (Gaussian, crossed factors: per-cell likelihood),
  :mod:`skhier.engine.counts` (negative binomial and Poisson, nested factors: each cell's
  likelihood made Gaussian, the hierarchy exact through the collapsed tree),
  :mod:`skhier.engine.bambi_model` (Bambi's own model: everything else).

Importing this package loads none of PyMC, Bambi or numba; an engine imports them when it fits.
"""

from skhier.engine.base import (
    REGISTRY,
    Engine,
    EngineFit,
    SamplerSettings,
    choose_engine,
    engine_names,
    get_engine,
    register,
)
from skhier.engine.retry import RetryPolicy, fit_with_retries

__all__ = [
    "REGISTRY",
    "Engine",
    "EngineFit",
    "RetryPolicy",
    "SamplerSettings",
    "choose_engine",
    "engine_names",
    "fit_with_retries",
    "get_engine",
    "register",
]
