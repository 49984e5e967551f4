"""Axes to draw on (new or the user's), group labels on an axis, and the shared colours.

matplotlib is imported inside the functions, so importing this module does not load it.
"""

from __future__ import annotations

import numpy as np

#: Groups are labelled on the axes up to this many; beyond, tick labels are left out.
MAX_TICK_LABELS = 50
#: Colour of divergent transitions in the diagnostics plots.
DIVERGENT_COLOR = "C3"


def pyplot():
    """Return ``matplotlib.pyplot`` (imported on first use)."""
    import matplotlib.pyplot as plt

    return plt


def check_ax(ax):
    """Raise TypeError unless ``ax`` is None or a matplotlib Axes."""
    if ax is None:
        return
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None; got {type(ax).__name__}.")


def new_ax(ax, figsize):
    """Return ``ax`` (checked), or the Axes of a new figure of size ``figsize``."""
    check_ax(ax)
    if ax is None:
        _, ax = pyplot().subplots(figsize=figsize, layout="constrained")
    return ax


def axes_grid(ax, n_rows, n_cols, figsize):
    """Return ``(figure, axes)``, axes of shape (n_rows, n_cols): new, or the user's (checked)."""
    if ax is None:
        fig, axes = pyplot().subplots(
            n_rows, n_cols, figsize=figsize, layout="constrained", squeeze=False
        )
        return fig, axes
    from matplotlib.axes import Axes

    axes = np.asarray(ax, dtype=object)
    if axes.size != n_rows * n_cols or not all(isinstance(a, Axes) for a in axes.ravel()):
        raise ValueError(
            f"ax must hold {n_rows * n_cols} matplotlib Axes ({n_rows} x {n_cols}) for these "
            f"variables; got {axes.size} item(s)."
        )
    axes = axes.reshape(n_rows, n_cols)
    return axes[0, 0].figure, axes


def label_axis(ax, axis, labels, positions):
    """Label the groups of an axis when there are few enough, else hide the ticks."""
    setter = ax.set_xticks if axis == "x" else ax.set_yticks
    if len(labels) <= MAX_TICK_LABELS:
        size = "small" if len(labels) <= 25 else "x-small"
        kwargs = {"rotation": 90} if axis == "x" else {}
        setter(positions, labels=[str(x) for x in labels], fontsize=size, **kwargs)
    else:
        setter([])
