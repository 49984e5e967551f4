"""skhier: rank groups by effects from Bayesian hierarchical models, with the ranking's uncertainty.

The public names are imported lazily, so ``import skhier`` stays light: Bambi, PyMC and numba
load only when an estimator is fitted or a compiled kernel is first used.

Examples
--------
>>> import skhier
>>> sorted(skhier.__all__)[:3]
['ConvergenceError', 'ConvergenceWarning', 'Diagnostics']
"""

from __future__ import annotations

import importlib
import logging

__version__ = "0.1.0"

logging.getLogger("skhier").addHandler(logging.NullHandler())

_LAZY = {
    "HierarchicalRanker": "skhier.ranker",
    "ScreenSimulator": "skhier.simulate",
    "rank_posterior": "skhier.ranking",
    "dominance": "skhier.ranking",
    "rank_probabilities": "skhier.ranking",
    "diagnose": "skhier.diagnostics",
    "Diagnostics": "skhier.diagnostics",
    "ConvergenceWarning": "skhier.diagnostics",
    "ConvergenceError": "skhier.diagnostics",
    "check_diagnostics": "skhier.diagnostics",
    "SamplerConvergenceWarning": "skhier.diagnostics",
    "compare": "skhier.scoring",
    "ParetoKWarning": "skhier.scoring",
    "load": "skhier.ranker",
    "save": "skhier.ranker",
    "LOOSearchCV": "skhier.model_selection",
    "GroupLevelKFold": "skhier.model_selection",
    "WithinGroupKFold": "skhier.model_selection",
    "make_lpd_scorer": "skhier.model_selection",
    "lpd_scorer": "skhier.model_selection",
    "fit_many": "skhier.parallel",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    """Import public names on first access (PEP 562)."""
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'skhier' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
