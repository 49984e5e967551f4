"""The refit policy: fit, check the sampler's health, and refit with safer settings if asked.

``on_fail="refit"`` refits a failed fit at most ``max_refits`` times, each time with twice the
warm-up (500 iterations when there was none), a target acceptance halfway to 1 (at most 0.99)
and, for engines that sample the group coefficients, the other parametrization of every term.
Every attempt is recorded in ``diagnostics_.info["attempts"]``. After the last attempt,
``"warn"`` and ``"refit"`` warn about a failed check and ``"raise"`` raises.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from skhier._progress import stage
from skhier.engine.base import Engine, EngineFit, SamplerSettings

__all__ = ["RetryPolicy", "fit_with_retries", "safer_settings"]

logger = logging.getLogger("skhier")


@dataclass(frozen=True)
class RetryPolicy:
    """What a failed convergence check does.

    Parameters
    ----------
    on_fail : {"warn", "raise", "refit", "ignore"}, default="warn"
        Warn, raise, refit (then warn), or do nothing.
    max_refits : int, default=2
        Refits allowed by ``"refit"``.

    Examples
    --------
    >>> RetryPolicy("refit", 2).attempts, RetryPolicy("warn", 2).attempts
    (3, 1)
    """

    on_fail: str = "warn"
    max_refits: int = 2

    @property
    def attempts(self) -> int:
        """Number of fits at most."""
        return self.max_refits + 1 if self.on_fail == "refit" else 1


def safer_settings(settings: SamplerSettings) -> SamplerSettings:
    """Return the settings of the next attempt: more warm-up, higher target acceptance.

    Parameters
    ----------
    settings : SamplerSettings
        The failed attempt's settings.

    Returns
    -------
    SamplerSettings
        Twice the warm-up (500 when there was none), a target acceptance halfway to 1 (at most
        0.99), the next seed.

    Examples
    --------
    >>> s = safer_settings(SamplerSettings(tune=1000, target_accept=0.8, seed=0))
    >>> s.tune, round(s.target_accept, 2), s.seed
    (2000, 0.9, 1)
    """
    ta = settings.target_accept
    return settings.replace(
        tune=int(settings.tune * 2) if settings.tune else 500,
        target_accept=min(0.99, ta + (1 - ta) / 2),
        seed=None if settings.seed is None else settings.seed + 1,
    )


def _flipped(choice: dict) -> dict:
    return {k: "centered" if v == "noncentered" else "noncentered" for k, v in choice.items()}


def fit_with_retries(
    engine: Engine,
    plan,
    settings: SamplerSettings,
    policy: RetryPolicy,
    *,
    parametrization="auto",
    info: dict | None = None,
    stacklevel: int = 2,
):
    """Fit a plan with an engine under a refit policy.

    Parameters
    ----------
    engine : Engine
        The engine.
    plan : FitPlan
        The plan.
    settings : SamplerSettings
        The first attempt's settings.
    policy : RetryPolicy
        What a failed check does.
    parametrization : str or dict, default="auto"
        The first attempt's parametrization of the group terms.
    info : dict or None, default=None
        Context recorded in the diagnostics (engine, sampler, reasons).
    stacklevel : int, default=2
        Stack level of a convergence warning, counted from the caller of this function.

    Returns
    -------
    fit : EngineFit
        The last attempt.
    diagnostics : Diagnostics
        Its sampler health, with every attempt in ``info["attempts"]``.

    Raises
    ------
    ConvergenceError
        With ``on_fail="raise"``, when the fit fails a check.
    """
    from skhier.diagnostics import check_diagnostics, diagnose

    attempts = []
    for attempt in range(policy.attempts):
        t0 = time.perf_counter()
        fit: EngineFit = engine.fit(plan, settings, parametrization)
        fit.timing["total"] = time.perf_counter() - t0
        context = {
            **(info or {}),
            "engine": engine.name,
            "sampler": settings.sampler,
            "parametrization": fit.parametrization,
            "tune": settings.tune,
            "target_accept": settings.target_accept,
        }
        total = fit.timing["total"]
        stage("diagnostics", "skhier: fitted in %.1f s; diagnosing the posterior", total)
        diag = diagnose(fit.idata, info=context)
        attempts.append(
            {
                "tune": settings.tune,
                "target_accept": settings.target_accept,
                "parametrization": fit.parametrization,
                "passed": bool(diag.passed),
                **fit.timing,
            }
        )
        if diag.passed or attempt == policy.attempts - 1:
            break
        logger.info(
            "skhier: attempt %d failed its checks; refitting with more warm-up and a higher "
            "target acceptance.",
            attempt + 1,
        )
        settings = safer_settings(settings)
        if engine.switches_parametrization:
            parametrization = _flipped(fit.parametrization)
    diag.update_info(attempts=attempts)
    if policy.on_fail in ("warn", "refit"):
        check_diagnostics(diag, "warn", stacklevel=stacklevel + 2)
    elif policy.on_fail == "raise":
        check_diagnostics(diag, "raise")
    return fit, diag
