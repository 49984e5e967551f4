"""Sampler dispatch: nutpie (default), PyMC's own NUTS and numpyro, all on a PyMC model."""

from __future__ import annotations

import importlib.util
import logging
import os

__all__ = ["SAMPLERS", "check_sampler", "sample_pymc_model"]

logger = logging.getLogger("skhier")

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
    ValueError: sampler='stan' is not supported; choose one of ('nutpie', 'pymc', 'numpyro').
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler={sampler!r} is not supported; choose one of {SAMPLERS}.")
    missing = [p for p in _REQUIRES[sampler] if importlib.util.find_spec(p) is None]
    if missing:
        raise ImportError(
            f"sampler={sampler!r} needs {', '.join(missing)}, which is not installed: "
            f"{_HINT[sampler]}."
        )


def default_cores(chains: int, n_jobs: int | None) -> int:
    """Return the number of processes or threads for the chains.

    Parameters
    ----------
    chains : int
        Number of chains.
    n_jobs : int or None
        User's request; None uses every core, -1 too.

    Returns
    -------
    int
        Cores to use, at most ``chains``.

    Examples
    --------
    >>> default_cores(4, 1)
    1
    """
    n = os.cpu_count() or 1
    if n_jobs is None or n_jobs == -1:
        cores = n
    elif n_jobs < 0:
        cores = max(1, n + 1 + n_jobs)
    else:
        cores = n_jobs
    return max(1, min(cores, chains))


def sample_pymc_model(
    model,
    *,
    sampler: str = "nutpie",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    target_accept: float = 0.8,
    seed: int | None = None,
    progressbar: bool = False,
    cores: int = 1,
):
    """Sample a PyMC model with NUTS from nutpie, PyMC or numpyro.

    Parameters
    ----------
    model : pymc.Model
        The model.
    sampler : {"nutpie", "pymc", "numpyro"}, default="nutpie"
        NUTS implementation.
    draws, tune, chains : int
        Kept draws and warm-up iterations per chain, and number of chains.
    target_accept : float, default=0.8
        Target acceptance rate of the step-size adaptation.
    seed : int or None
        Random seed.
    progressbar : bool, default=False
        Show the sampler's progress bar.
    cores : int, default=1
        Chains run in parallel.

    Returns
    -------
    arviz.InferenceData
        Posterior and sample statistics (warm-up dropped).

    Examples
    --------
    >>> import pymc as pm
    >>> with pm.Model() as m:
    ...     _ = pm.Normal("x")
    >>> idata = sample_pymc_model(m, sampler="pymc", draws=50, tune=50, chains=1, seed=0)
    >>> idata.posterior["x"].shape
    (1, 50)
    """
    import pymc as pm

    check_sampler(sampler)
    if sampler == "nutpie":
        import nutpie

        return _sample_nutpie(
            nutpie.compile_pymc_model(model),
            draws=draws,
            tune=tune,
            chains=chains,
            target_accept=target_accept,
            seed=seed,
            progressbar=progressbar,
            cores=cores,
        )
    with model:
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            random_seed=seed,
            target_accept=target_accept,
            nuts_sampler=sampler,
            progressbar=progressbar,
            compute_convergence_checks=False,
        )
    return idata


def _sample_nutpie(compiled, *, draws, tune, chains, target_accept, seed, progressbar, cores):
    """Sample a compiled nutpie model (of a PyMC model or of a Python log density).

    Parameters
    ----------
    compiled : nutpie.CompiledModel
        The model.
    draws, tune, chains, target_accept, seed, progressbar, cores
        As for :func:`sample_pymc_model`.

    Returns
    -------
    arviz.InferenceData
        Posterior and sample statistics (warm-up dropped).
    """
    import nutpie

    return nutpie.sample(
        compiled,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores,
        seed=seed,
        save_warmup=False,
        progress_bar=progressbar,
        target_accept=target_accept,
    )
