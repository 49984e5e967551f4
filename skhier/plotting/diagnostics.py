"""Trace, rank and parallel-coordinates plots of posterior draws (sampler health)."""

from __future__ import annotations

from skhier._validation import check_choice
from skhier.plotting._inputs import fitted, is_estimator
from skhier.plotting._parallel import draw_parallel
from skhier.plotting._posterior import select_draws
from skhier.plotting._rank_plot import draw_rank
from skhier.plotting._trace import draw_trace

__all__ = ["plot_diagnostics"]

#: Panels of ``plot_diagnostics(kind="trace" | "rank")`` at most (select ``var_names`` beyond).
MAX_PANELS = 30
#: The plots of :func:`plot_diagnostics`.
DIAGNOSTIC_KINDS = ("trace", "rank", "parallel")


def plot_diagnostics(idata, var_names=None, *, kind="trace", ax=None, figsize=None):
    """Trace, rank or parallel-coordinates plots of posterior draws, marking divergences.

    ArviZ draws the trace and rank plots (:func:`arviz.plot_trace`, :func:`arviz.plot_rank`,
    matplotlib backend); the divergent draws on the trace plots and the parallel-coordinates
    plot are drawn here, because ArviZ marks divergences only as black ticks along the axis and
    draws parallel coordinates one line per draw, without thinning.

    - ``kind="trace"``: per variable, the density (KDE) and the trace of each chain; divergent
      draws are red dots at their values on the trace and a red rug under the density.
    - ``kind="rank"``: :func:`arviz.plot_rank`, per variable the histogram of the ranks of each
      chain's draws among all draws (Vehtari et al., 2021); chains that mix well give flat
      histograms near the dashed line of the uniform.
    - ``kind="parallel"``: one line per draw across the variables (each scaled to [0, 1]), the
      divergent draws in red on top (at most 1,000 non-divergent draws are drawn, evenly
      thinned; every divergent one is): divergences that concentrate at one end of a coordinate
      (for example a small group scale, the funnel's neck) point at the problem.

    Parameters
    ----------
    idata : arviz.InferenceData or HierarchicalRanker
        Posterior (and ``sample_stats.diverging`` when available), or a fitted ranker (its
        ``idata_``).
    var_names : str or list of str, default=None
        Variables to plot; non-scalar variables contribute one coordinate (panel) per element.
        None plots the scalar parameters (the hyperparameters: population coefficients and
        scales), leaving out transformed ``*__`` variables.
    kind : {"trace", "rank", "parallel"}, default="trace"
        The plot.
    ax : matplotlib Axes or array of Axes, default=None
        For ``"parallel"`` one Axes; for ``"trace"`` ``n x 2`` Axes (``n`` rows of density and
        trace); for ``"rank"`` ``n`` Axes (``n`` the number of panels) laid out in two columns
        (``ceil(n / 2) x 2``, one column for a single panel). None makes a new figure.
    figsize : tuple of float, default=None
        Size of a new figure (sized for the panels if None).

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure drawn on (for every ``kind``; its ``axes`` are the panels).

    Raises
    ------
    TypeError
        If ``idata`` has no posterior.
    ValueError
        For an unknown ``kind`` or variable, no default variables, more than 30 panels for
        ``"trace"``/``"rank"``, fewer than 2 coordinates for ``"parallel"``, or ``ax`` of the
        wrong size.

    See Also
    --------
    skhier.diagnose : The numbers behind these pictures (R-hat, ESS, divergences, E-BFMI).

    References
    ----------
    Vehtari, A., Gelman, A., Simpson, D., Carpenter, B. and Bürkner, P.-C. (2021).
    Rank-normalization, folding, and localization: an improved R-hat for assessing convergence
    of MCMC. *Bayesian Analysis* 16(2), 667-718.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import arviz as az
    >>> import numpy as np
    >>> from skhier.plotting import plot_diagnostics
    >>> rng = np.random.default_rng(0)
    >>> idata = az.from_dict(
    ...     posterior={"mu": rng.normal(size=(2, 200)), "tau": rng.gamma(2.0, size=(2, 200)),
    ...                "theta": rng.normal(size=(2, 200, 3))},
    ...     sample_stats={"diverging": rng.random((2, 200)) < 0.02},
    ... )
    >>> fig = plot_diagnostics(idata)  # the scalar parameters: mu, tau
    >>> [a.get_ylabel() for a in fig.axes[::2]]
    ['mu', 'tau']
    >>> plt.close(fig)
    >>> fig = plot_diagnostics(idata, "theta", kind="rank")  # arviz.plot_rank, 2 chains
    >>> [a.get_title() for a in fig.axes if a.get_visible()]
    ['theta[0]', 'theta[1]', 'theta[2]']
    >>> plt.close(fig)
    >>> fig = plot_diagnostics(idata, ["tau", "theta"], kind="parallel")
    >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
    ['tau', 'theta[0]', 'theta[1]', 'theta[2]']
    >>> plt.close(fig)
    """
    if is_estimator(idata):
        idata = fitted(idata, "idata_")
    check_choice("kind", kind, DIAGNOSTIC_KINDS)
    draws = select_draws(idata, var_names)
    if kind != "parallel" and len(draws.labels) > MAX_PANELS:
        raise ValueError(
            f"kind={kind!r} would draw {len(draws.labels)} panels (more than {MAX_PANELS}); "
            "select fewer var_names, or use kind='parallel'."
        )
    draw = {"trace": draw_trace, "rank": draw_rank, "parallel": draw_parallel}[kind]
    return draw(draws, ax, figsize)
