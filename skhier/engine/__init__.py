"""Model builders and samplers: the only modules that import PyMC, Bambi, nutpie or numpyro.

- :mod:`skhier.engine.collapsed`: the exact collapsed Gaussian algebra (no PyMC at import).
- :mod:`skhier.engine.fit`: builds the collapsed PyMC model or Bambi's model and samples it.
- :mod:`skhier.engine.sampling`: sampler dispatch (nutpie, PyMC NUTS, numpyro).
"""
