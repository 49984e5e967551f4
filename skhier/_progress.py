"""The stages of a fit, reported as log records that a progress display can follow.

The library never prints. Each stage of a fit is announced by one INFO record of the
``skhier`` logger whose attribute ``skhier_stage`` names the stage (one of :data:`STAGES`);
a display is a :class:`logging.Handler` that reads it (the command line's progress bar,
:mod:`skhier.cli`). Without such a handler the records are ordinary log messages.

Examples
--------
>>> import logging
>>> seen = []
>>> class Collect(logging.Handler):
...     def emit(self, record):
...         seen.append(getattr(record, STAGE_ATTR, None))
>>> log = logging.getLogger("skhier")
>>> handler, level = Collect(), log.level
>>> log.addHandler(handler); log.setLevel(logging.INFO)
>>> stage("sampling", "skhier: sampling the scales")
>>> log.removeHandler(handler); log.setLevel(level)
>>> seen
['sampling']
"""

from __future__ import annotations

import logging

__all__ = ["STAGES", "STAGE_ATTR", "stage"]

logger = logging.getLogger("skhier")

#: The stages of a fit, in order (an engine without a stage skips it).
STAGES = (
    "reading data",
    "building the model",
    "sampling",
    "drawing coefficients",
    "diagnostics",
    "ranking",
)

#: Attribute of a log record that names its stage.
STAGE_ATTR = "skhier_stage"


def stage(name: str, message: str, *args) -> None:
    """Log the start of a stage of the fit (an INFO record of the ``skhier`` logger).

    Parameters
    ----------
    name : str
        One of :data:`STAGES`.
    message : str
        The log message (``%``-style, formatted with ``args`` only when shown).
    *args
        Its arguments.

    Raises
    ------
    ValueError
        If ``name`` is not a stage.

    Examples
    --------
    >>> stage("ranking", "skhier: ranking the groups at level %r", "gene")
    >>> stage("plotting", "skhier: plotting")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: stage 'plotting' is not one of ('reading data', 'building the model', ...).
    """
    if name not in STAGES:
        raise ValueError(f"stage {name!r} is not one of {STAGES}.")
    logger.info(message, *args, extra={STAGE_ATTR: name})
