"""Designed posteriors for the diagnostics tests: healthy, stuck, autocorrelated chains."""

import arviz as az
import numpy as np
from scipy.signal import lfilter

C, D = 4, 1000


def ar1(e, phi):
    """Stationary AR(1) chains along axis 1 (unit marginal variance) driven by noise ``e``."""
    out = np.empty_like(e)
    out[:, 0] = e[:, 0]
    out[:, 1:] = np.sqrt(1 - phi**2) * e[:, 1:]
    return lfilter([1.0], [1.0, -phi], out, axis=1)


def healthy_posterior(rng, chains=C, draws=D):
    return {
        "mu": rng.standard_normal((chains, draws)),
        "tau": np.abs(rng.standard_normal((chains, draws))) + 0.5,
        "theta": rng.standard_normal((chains, draws, 3)),
    }


def healthy_stats(rng, chains=C, draws=D, spelling="pymc"):
    energy = rng.standard_normal((chains, draws)) + 10.0
    div = np.zeros((chains, draws), dtype=bool)
    if spelling == "pymc":
        return {
            "diverging": div,
            "divergences": np.cumsum(np.ones((chains, draws), dtype=int), axis=1),  # ignored
            "tree_depth": np.full((chains, draws), 3),
            "reached_max_treedepth": np.zeros((chains, draws), dtype=bool),
            "energy": energy,
        }
    if spelling == "nutpie":
        return {
            "diverging": div,
            "depth": np.full((chains, draws), 3, dtype=np.uint64),
            "maxdepth_reached": np.zeros((chains, draws), dtype=bool),
            "energy": energy,
            "tuning": np.zeros((chains, draws), dtype=bool),
        }
    if spelling == "numpyro":
        return {
            "diverging": div,
            "tree_depth": np.full((chains, draws), 3),
            "n_steps": np.full((chains, draws), 7),
            "energy": energy,
        }
    raise ValueError(spelling)


def make_idata(posterior, sample_stats=None, **kwargs):
    return az.from_dict(posterior=posterior, sample_stats=sample_stats, **kwargs)

