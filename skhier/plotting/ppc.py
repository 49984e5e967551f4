"""Posterior predictive check of a fitted ranker: replicated data against the observed data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from skhier._validation import check_choice, check_number
from skhier.plotting._axes import check_ax, label_axis, new_ax, pyplot
from skhier.plotting._inputs import fitted, is_estimator

__all__ = ["plot_ppc"]

#: The panels of :func:`plot_ppc`.
PPC_KINDS = ("density", "group_means", "both")
#: Probability of the intervals of the replicated group means in :func:`plot_ppc`.
PPC_INTERVAL = 0.9
#: Colour of the replicated data, and of the observed group means outside their intervals.
REPLICATE_COLOR = "C0"
OUTSIDE_COLOR = "C3"
#: Bins of the step histograms of integer data (counts) at most.
MAX_BINS = 100


def _check_axes(ax, kind):
    """Check ``ax`` before anything is computed: one Axes, or two for ``kind="both"``."""
    if kind != "both":
        check_ax(ax)
        return
    if ax is None:
        return
    from matplotlib.axes import Axes

    axes = np.asarray(ax, dtype=object).ravel()
    if axes.size != 2 or not all(isinstance(a, Axes) for a in axes):
        raise ValueError(
            "ax must hold 2 matplotlib Axes (density, group means) for kind='both', or be None; "
            f"got {axes.size} item(s)."
        )


def _rows(ranker, X):
    """Return the rows to check (the training rows for None) and their observed response."""
    from skhier.predictive import response_values

    plan = ranker.plan_
    if X is None:
        data = plan.data
    elif isinstance(X, pd.DataFrame):
        data = X
    else:
        raise TypeError(
            "X must be None (the training rows) or a pandas DataFrame holding the model's "
            f"columns and the observed response {plan.parsed.response!r}; got "
            f"{type(X).__name__}."
        )
    response = plan.parsed.response
    if response not in data.columns:
        raise ValueError(
            f"plot_ppc compares replicates with the observed response: X must hold the column "
            f"{response!r}; it has the columns {list(map(str, data.columns))}."
        )
    return data, response_values(plan, data, purpose="plot_ppc")


def _group_columns(ranker, data, group):
    """Resolve ``group`` to (name, data columns): a grouping factor of the model or column(s).

    ``None`` is the ranked level ``ranker.level_``; a joined name (``"gene:sgRNA"``) groups by
    every one of its columns; a factor's innermost column (``"sgRNA"``) means the factor.
    """
    design = ranker.plan_.design
    name = ranker.level_ if group is None else group
    if not isinstance(name, str):
        raise TypeError(
            f"group must be a string (a grouping factor or data column) or None; got {group!r}."
        )
    factor = next((f for f in design.factors.values() if name in (f.name, f.short_name)), None)
    if factor is not None and all(c in data.columns for c in factor.columns):
        return factor.name, tuple(factor.columns)
    columns = tuple(name.split(":"))
    if all(c in data.columns for c in columns):
        return name, columns
    factors = sorted({*design.factors, *(f.short_name for f in design.factors.values())})
    labels = [
        str(c)
        for c in data.columns
        if not pd.api.types.is_numeric_dtype(data[c]) or pd.api.types.is_bool_dtype(data[c])
    ]
    choices = list(dict.fromkeys([*factors, *labels]))
    what = f"group={group!r}" if group is not None else f"the ranked level {name!r}"
    raise ValueError(
        f"{what} is not a grouping factor of the model or a column of the data; choose from "
        f"{choices} (or columns of the data joined by ':')."
    )


def _densities(values, lims, discrete):
    """Density curves of the rows of ``values`` on one grid: (x, densities, drawstyle)."""
    lo, hi = lims
    if discrete:
        width = max(1, int(np.ceil((hi - lo + 1) / MAX_BINS)))
        edges = np.arange(lo - 0.5, hi + width + 0.5, width)
        dens = np.array([np.histogram(v, bins=edges, density=True)[0] for v in values])
        return edges, np.concatenate([dens, dens[:, -1:]], axis=1), "steps-post"
    from arviz import kde

    curves = [kde(v, custom_lims=(lo, hi)) for v in values]
    return curves[0][0], np.array([d for _, d in curves]), "default"


def _draw_density(ax, y, yrep, response):
    """Panel (a): the observed density against the replicates' and their mean."""
    values = np.concatenate([y, yrep.ravel()])
    lo, hi = float(values.min()), float(values.max())
    discrete = bool(np.all(values == np.round(values)))
    if not discrete:
        pad = 0.05 * (hi - lo) if hi > lo else 1.0
        lo, hi = lo - pad, hi + pad
    x, dens, style = _densities(np.vstack([y[None, :], yrep]), (lo, hi), discrete)
    for k, d in enumerate(dens[1:]):
        ax.plot(
            x,
            d,
            color=REPLICATE_COLOR,
            alpha=0.2,
            lw=0.8,
            drawstyle=style,
            label=f"replicated ({len(yrep)} draws)" if k == 0 else "_replicated",
        )
    ax.plot(
        x,
        dens[1:].mean(axis=0),
        color="C1",
        ls="--",
        lw=1.5,
        drawstyle=style,
        label="predictive mean",
    )
    ax.plot(x, dens[0], color="black", lw=2.0, drawstyle=style, label="observed", zorder=3)
    ax.set_xlabel(response)
    ax.set_ylabel("density")
    ax.set_title("observed and replicated data", fontsize="medium")
    ax.legend(fontsize="small")


def _group_summaries(codes, n_groups, y, yrep):
    """Observed group means and the quantiles (low, median, high) of the replicated ones."""
    from scipy import sparse

    counts = np.bincount(codes, minlength=n_groups).astype(np.float64)
    observed = np.bincount(codes, weights=y, minlength=n_groups) / counts
    rows = np.arange(len(codes))
    average = sparse.csr_matrix((1.0 / counts[codes], (rows, codes)), shape=(len(codes), n_groups))
    replicated = np.asarray(average.T @ yrep.T).T  # (draws, groups)
    tail = (1.0 - PPC_INTERVAL) / 2
    low, median, high = np.quantile(replicated, [tail, 0.5, 1.0 - tail], axis=0)
    return observed, low, median, high


def _draw_group_means(ax, name, labels, observed, low, median, high, response):
    """Panel (b): observed group means against the intervals of the replicated ones."""
    order = np.argsort(observed, kind="stable")
    observed, low, median, high = observed[order], low[order], median[order], high[order]
    x = np.arange(len(order))
    outside = (observed < low) | (observed > high)
    pct = f"{100 * PPC_INTERVAL:g}%"
    ax.errorbar(
        x,
        median,
        yerr=np.vstack([median - low, high - median]),
        fmt="o",
        ms=3,
        color=REPLICATE_COLOR,
        alpha=0.6,
        elinewidth=2.5,
        label=f"replicated: median and {pct} interval",
    )
    ax.plot(x[~outside], observed[~outside], "_", color="black", ms=9, mew=2, label="observed")
    ax.plot(
        x[outside],
        observed[outside],
        "o",
        color=OUTSIDE_COLOR,
        ms=6,
        label=f"observed, outside the interval ({int(outside.sum())})",
    )
    label_axis(ax, "x", [labels[i] for i in order], x)
    ax.set_xlabel(f"{name} (by observed mean)")
    ax.set_ylabel(f"mean of {response}")
    ax.set_title(
        f"group means: {int(outside.sum())} of {len(x)} outside their {pct} intervals",
        fontsize="medium",
    )
    ax.legend(fontsize="small")


def plot_ppc(ranker, X=None, *, group=None, n_draws=50, kind="both", ax=None, random_state=None):
    """Posterior predictive check: data replicated from the fit against the observed data.

    Replicated responses are drawn from the posterior predictive distribution
    (:meth:`~skhier.HierarchicalRanker.sample_posterior_predictive`, one per posterior draw) and
    compared with the observed response in two panels:

    - ``"density"``: the observed response's density (black) against the densities of
      ``n_draws`` replicated data sets (light lines) and their mean (dashed). A model whose
      replicates miss the observed shape (too narrow, wrong skew, missing modes) misfits it.
      Densities are Gaussian KDEs (:func:`arviz.kde`), or step histograms for integer data.
    - ``"group_means"``: for every group of ``group``, the observed mean of the response
      against the median and 90% interval of its replicated means over all the draws, groups
      sorted by observed mean. Groups whose observed mean falls outside its interval are
      highlighted: a few (about 10%) are expected by chance; many, or a pattern (the lowest
      observed means below their intervals, the highest above), mean that the model pools
      those groups too much. Complete pooling shows that pattern when the groups truly differ.

    Parameters
    ----------
    ranker : HierarchicalRanker
        A fitted ranker.
    X : pandas.DataFrame or None, default=None
        Rows to check, with the model's columns and the observed response; None uses the
        training rows.
    group : str or None, default=None
        Grouping factor of the group means: a factor of the model (``"gene"``, ``"sgRNA"``,
        ``"gene:sgRNA"``) or column(s) of the rows, joined by ``":"`` for their combinations.
        None uses the ranked level ``ranker.level_`` (for a complete-pooling model, the
        columns of the level it would rank).
    n_draws : int, default=50
        Replicated data sets drawn in the density panel (evenly spaced among the posterior
        draws; at most the number of draws). The group means use every draw.
    kind : {"density", "group_means", "both"}, default="both"
        The panel(s) to draw.
    ax : matplotlib.axes.Axes or sequence of two Axes, default=None
        Axes to draw on: one for ``"density"`` and ``"group_means"``, two (density, group
        means) for ``"both"``; a new figure if None.
    random_state : int, numpy.random.Generator or None, default=None
        Seed of the predictive draws.

    Returns
    -------
    ax_or_fig : matplotlib.axes.Axes or matplotlib.figure.Figure
        The Axes drawn on, or the Figure for ``kind="both"`` (its first two ``axes`` are the
        panels). In the density panel the lines are the ``n_draws`` replicates, the predictive
        mean and the observed density (labelled ``"observed"``); in the group-means panel the
        highlighted groups are the line labelled ``"observed, outside the interval (k)"``.

    Raises
    ------
    TypeError
        If ``ranker`` is not a ranker, ``X`` is not a DataFrame, ``group`` is not a string or
        ``ax`` is not an Axes.
    ValueError
        For an unknown ``kind`` or ``group`` (naming the valid choices), a bad ``n_draws``, the
        wrong number of Axes, or rows without a finite observed response.
    sklearn.exceptions.NotFittedError
        If the ranker is not fitted.

    See Also
    --------
    skhier.HierarchicalRanker.sample_posterior_predictive : The replicated data.
    skhier.compare : PSIS-LOO comparison of fitted rankers.

    Notes
    -----
    The replicated data are held in memory (``chains * draws`` values per row); for a large
    screen pass a subset of the rows as ``X``. The check uses the data twice (to fit and to
    check), so it is conservative: it reveals misfit, it does not rank models; PSIS-LOO
    (:func:`skhier.compare`, :class:`skhier.LOOSearchCV`) does.

    References
    ----------
    Gelman, A., Carlin, J. B., Stern, H. S., Dunson, D. B., Vehtari, A. and Rubin, D. B. (2013).
    *Bayesian Data Analysis*, 3rd edition, chapter 6. CRC Press.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from skhier import HierarchicalRanker, ScreenSimulator
    >>> from skhier.plotting import plot_ppc
    >>> df = ScreenSimulator(n_genes=3, sgrnas_per_gene=2, n_samples=10,
    ...                      random_state=0).fit_transform()
    >>> r = HierarchicalRanker(formula="Ht ~ 0 + H0:(1|gene/sgRNA)", draws=100, tune=100,
    ...                        chains=2, n_jobs=1, random_state=0, on_fail="ignore").fit(df)
    >>> fig = plot_ppc(r, n_draws=20, random_state=0)
    >>> density, means = fig.axes[:2]
    >>> len(density.get_lines())  # 20 replicates, their mean, the observed density
    22
    >>> density.get_xlabel(), means.get_xlabel(), means.get_ylabel()
    ('Ht', 'gene:sgRNA (by observed mean)', 'mean of Ht')
    >>> plt.close(fig)
    >>> ax = plot_ppc(r, group="gene", kind="group_means", random_state=0)
    >>> len(ax.get_xticklabels())  # one per gene
    3
    >>> plt.close(ax.figure)
    """
    if not is_estimator(ranker) or not hasattr(ranker, "sample_posterior_predictive"):
        raise TypeError(f"ranker must be a fitted HierarchicalRanker; got {type(ranker).__name__}.")
    fitted(ranker, "idata_")
    check_choice("kind", kind, PPC_KINDS)
    check_number("n_draws", n_draws, integer=True, low=1)
    _check_axes(ax, kind)
    data, y = _rows(ranker, X)
    response = str(ranker.plan_.parsed.response)
    if kind != "density" or group is not None:
        name, columns = _group_columns(ranker, data, group)
    draws = ranker.sample_posterior_predictive(X, random_state=random_state)
    yrep = np.asarray(draws, dtype=np.float64).reshape(-1, len(data))

    if kind == "both":
        if ax is None:
            fig, axes = pyplot().subplots(1, 2, figsize=(12.0, 4.2), layout="constrained")
        else:
            axes = np.asarray(ax, dtype=object).ravel()
            fig = axes[0].figure
        density_ax, means_ax = axes
    elif kind == "density":
        density_ax, means_ax = new_ax(ax, (6.0, 4.0)), None
    else:
        density_ax, means_ax = None, ax

    if density_ax is not None:
        n = min(int(n_draws), yrep.shape[0])
        shown = np.unique(np.round(np.linspace(0, yrep.shape[0] - 1, n)).astype(np.intp))
        _draw_density(density_ax, y, yrep[shown], response)
    if kind != "density":
        from skhier.design import build_factor

        factor = build_factor(data, columns)
        summaries = _group_summaries(factor.codes, factor.n_levels, y, yrep)
        if means_ax is None:
            width = min(14.0, max(5.0, 0.22 * factor.n_levels + 2.5))
            means_ax = new_ax(None, (width, 4.0))
        labels = [str(v) for v in factor.display]
        _draw_group_means(means_ax, name, labels, *summaries, response)
    if kind == "both":
        return fig
    return density_ax if kind == "density" else means_ax
