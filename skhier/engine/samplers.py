"""Sampler dispatch: nutpie (default), PyMC's own NUTS and numpyro, with one set of settings."""

from __future__ import annotations

import importlib.util

from skhier._validation import check_choice
from skhier.engine.base import SamplerSettings

__all__ = ["SAMPLERS", "check_sampler", "sample_pymc_model", "sample_nutpie"]


SAMPLERS = ("nutpie", "pymc", "numpyro")

_REQUIRES = {"nutpie": ("nutpie",), "pymc": ("pymc",), "numpyro": ("numpyro", "jax")}
_HINT = {
    "nutpie": "pip install nutpie",
    "pymc": "pip install pymc",
    "numpyro": "pip install 'skhier[numpyro]' (numpyro and jax)",
}


def check_sampler(sampler: str) -> None:
    """Check that a sampler name is valid and its package is installed.

    Parameters
    ----------
    sampler : str
        One of ``"nutpie"``, ``"pymc"`` or ``"numpyro"``.

    Raises
    ------
    ValueError
        If the name is not a known sampler.
    ImportError
        If the sampler's package is not installed, with the install command.

    Examples
    --------
    >>> check_sampler("pymc")
    >>> check_sampler("stan")
    Traceback (most recent call last):
    ...
    ValueError: sampler='stan' is not valid; choose one of ('nutpie', 'pymc', 'numpyro').
    """
    check_choice("sampler", sampler, SAMPLERS)
    missing = [p for p in _REQUIRES[sampler] if importlib.util.find_spec(p) is None]
    if missing:
        raise ImportError(
            f"sampler={sampler!r} needs {', '.join(missing)}, which is not installed: "
            f"{_HINT[sampler]}."
        )


def sample_pymc_model(model, settings: SamplerSettings):
    """Sample a PyMC model with NUTS from nutpie, PyMC or numpyro.

    Parameters
    ----------
    model : pymc.Model
        The model.
    settings : SamplerSettings
        Sampler, draws, warm-up, chains, target acceptance, seed, progress bar, cores.

    Returns
    -------
    arviz.InferenceData
        Posterior and sample statistics (warm-up dropped).

    Examples
    --------
    >>> import pymc as pm
    >>> with pm.Model() as m:
    ...     _ = pm.Normal("x")
    >>> s = SamplerSettings(sampler="pymc", draws=50, tune=50, chains=1, seed=0)
    >>> sample_pymc_model(m, s).posterior["x"].shape
    (1, 50)
    """
    import pymc as pm

    check_sampler(settings.sampler)
    if settings.sampler == "nutpie":
        import nutpie

        return sample_nutpie(nutpie.compile_pymc_model(model), settings)
    with model:
        idata = pm.sample(
            draws=settings.draws,
            tune=settings.tune,
            chains=settings.chains,
            cores=settings.cores,
            random_seed=settings.seed,
            target_accept=settings.target_accept,
            nuts_sampler=settings.sampler,
            progressbar=settings.progressbar,
            compute_convergence_checks=False,
        )
    return idata


def sample_nutpie(compiled, settings: SamplerSettings):
    """Sample a compiled nutpie model (of a PyMC model or of a Python log density).

    Parameters
    ----------
    compiled : nutpie.CompiledModel
        The model.
    settings : SamplerSettings
        As for :func:`sample_pymc_model` (``sampler`` is not read).

    Returns
    -------
    arviz.InferenceData
        Posterior and sample statistics (warm-up dropped).
    """
    import nutpie

    return nutpie.sample(
        compiled,
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        cores=settings.cores,
        seed=settings.seed,
        save_warmup=False,
        progress_bar=settings.progressbar,
        target_accept=settings.target_accept,
    )
