"""
Complete, partial and no pooling of sgRNA slopes
================================================

Gelman and Hill's radon example asks how to estimate the radon level of every county when
some counties have hundreds of measured houses and others two: one pooled estimate for all
counties (*complete pooling*), a separate estimate for each (*no pooling*), or a hierarchy that
lets each county borrow strength from the others (*partial pooling*). A CRISPR screen asks the
same question about sgRNAs: each sgRNA's slope of ``Ht`` on ``H0`` is measured in a different
number of samples, and the sgRNAs of a gene resemble each other without being identical.

This example simulates such a screen (6 genes x 4 sgRNAs whose slopes truly differ within
genes, 3 to 30 samples per sgRNA), fits ``Ht ~ 0 + H0:(1|gene/sgRNA)`` with each of
``pooling="complete"``, ``"partial"`` and ``"none"``, compares the three by PSIS-LOO
(:func:`skhier.compare` and :class:`skhier.LOOSearchCV`), checks each against its data with a
posterior predictive check (:func:`skhier.plotting.plot_ppc`), and shows where partial pooling
moves each sgRNA's estimate, and why. The prose and the results are in ``docs/pooling.md``.

Run from the project root (about 15 s on two cores with the numba kernels cached on disk,
about 30 s the first time, when they compile)::

    python examples/plot_pooling.py          # prints the tables
    python examples/plot_pooling.py --save   # and writes docs/figures/pooling_*.png

Setting the environment variable ``SKHIER_FIGURES`` to a folder writes the figures there
instead. Without either, the figures are left open (sphinx-gallery collects them).
"""

# %%
# Settings
# --------
# The figures go to ``docs/figures/`` with ``--save`` (or to the folder named by
# ``SKHIER_FIGURES``), as ``examples/plot_forum_question.py`` writes its own.

import os
import sys
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from skhier import HierarchicalRanker, LOOSearchCV, ScreenSimulator, compare  # noqa: E402
from skhier.plotting import plot_ppc  # noqa: E402

FORMULA = "Ht ~ 0 + H0:(1|gene/sgRNA)"
POOLINGS = ("complete", "partial", "none")  # simplest first (LOOSearchCV's rule="one_se")
if "--save" in sys.argv[1:]:
    FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"
elif os.environ.get("SKHIER_FIGURES"):
    FIGURES = Path(os.environ["SKHIER_FIGURES"])
else:
    FIGURES = None
pd.set_option("display.width", 120)
pd.set_option("display.max_columns", 20)
t0 = time.perf_counter()


def save(fig, name):
    """Write a figure to FIGURES (and close it); without FIGURES leave it open."""
    if FIGURES is None:
        return
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURES / name, dpi=110)
    plt.close(fig)
    print(f"[saved {FIGURES / name}]")


# %%
# A screen whose sgRNAs truly differ
# ----------------------------------
# Every gene has four sgRNAs measured in 3, 5, 10 and 30 samples (in a different order in
# each gene). ``ScreenSimulator`` spreads the sgRNA effects around their gene's effect with
# standard deviation ``sgrna_sd``: at 0.3 the sgRNAs of a gene differ by about as much as one
# sgRNA's slope is uncertain from 5 samples, so neither "all sgRNAs of a gene are the same" nor
# "every sgRNA is on its own" is right. ``true_slopes_`` holds what the model estimates.

SAMPLES = (3, 5, 10, 30)
design = pd.DataFrame(
    [
        (f"G{g:02d}", f"G{g:02d}_sg{j + 1}", f"S{s + 1:02d}")
        for g in range(1, 7)
        for j in range(4)
        for s in range(SAMPLES[(j + g - 1) % 4])
    ],
    columns=["gene", "sgRNA", "sample"],
)
sim = ScreenSimulator(sgrna_sd=0.3, random_state=1)
df = sim.fit_transform(design)
truth = sim.true_slopes_["sgRNA"]
n_samples = df.groupby("sgRNA").size()
print(f"rows: {len(df)}  genes: {df['gene'].nunique()}  sgRNAs: {df['sgRNA'].nunique()}")
print(f"samples per sgRNA: {sorted(set(n_samples))}")

# %%
# Three fits
# ----------
# The same formula with each pooling. ``"complete"`` drops the group terms (one slope for every
# sgRNA), ``"none"`` keeps one slope per sgRNA, each with the population slope's wide prior and
# no hierarchy (``Ht ~ 0 + (0 + H0|gene:sgRNA)`` with a fixed scale), ``"partial"`` is the
# hierarchy: sgRNA slopes drawn around their gene's, genes around the population's, with both
# scales estimated.

settings = dict(draws=1000, tune=1000, chains=2, random_state=0, n_jobs=2)
fits = {
    p: HierarchicalRanker(formula=FORMULA, level="sgRNA", pooling=p, **settings).fit(df)
    for p in POOLINGS
}
for p, r in fits.items():
    ok = "passed" if r.diagnostics_.passed else "FAILED"
    print(f"{p:>8}: {r.formula_:<36} sampler checks {ok}")

# %%
# Which pooling predicts new samples best? PSIS-LOO
# -------------------------------------------------
# PSIS-LOO estimates each model's expected log predictive density of a left-out row
# (``elpd_loo``, higher is better) from one fit: more flexible models fit the rows they saw
# better, and LOO charges them for it (``p_loo`` is the effective number of parameters).
# :func:`skhier.compare` ranks fitted rankers; :class:`skhier.LOOSearchCV` is the same as a
# scikit-learn grid search, refitting exactly the rows whose Pareto k is too high for PSIS.

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # high Pareto k rows are counted in the tables below
    table = compare(fits)
print(table[["rank", "elpd_loo", "se", "p_loo", "elpd_diff", "dse", "weight"]].round(2))

search = LOOSearchCV(
    HierarchicalRanker(formula=FORMULA, level="sgRNA", **settings), {"pooling": list(POOLINGS)}
)
search.fit(df)
columns = ["param_pooling", "elpd_loo", "se", "p_loo", "elpd_diff", "dse", "weight"]
columns += ["n_k_bad", "n_k_very_bad", "n_refits", "rank_test_score"]
results = pd.DataFrame(search.cv_results_)[columns]
print(results.round(2).to_string(index=False))
print(f"chosen: {search.best_params_} (elpd_loo {search.best_score_:.2f})")

# %%
# Posterior predictive checks
# ---------------------------
# Data replicated from each fit against the data: the density of ``Ht`` (left) and each
# sgRNA's mean ``Ht`` with the 90% interval of its replicated means (right; red: observed
# means outside their intervals). Complete pooling predicts every sgRNA with one slope, so its
# replicated sgRNA means cannot follow the observed ones: the low sgRNAs fall below their
# intervals and the high ones above. Partial and no pooling both reproduce the sgRNA means;
# the posterior predictive check does not separate them (it reuses the data it was fitted
# to), PSIS-LOO does.

fig, axes = plt.subplots(3, 2, figsize=(12.0, 11.0), layout="constrained")
for row, (p, r) in zip(axes, fits.items(), strict=True):
    plot_ppc(r, ax=row, n_draws=40, random_state=0)
    row[0].set_title(f"pooling={p!r}: density of Ht", fontsize="medium")
    row[1].set_title(f"pooling={p!r}: {row[1].get_title()}", fontsize="medium")
save(fig, "pooling_ppc.png")

# The numbers behind the right-hand panels, from the replicated data themselves
# (``sample_posterior_predictive`` returns them as a (chain, draw, row) DataArray).
observed = df.groupby("sgRNA")["Ht"].mean()
for p, r in fits.items():
    yrep = r.sample_posterior_predictive(random_state=0)
    reps = pd.DataFrame(yrep.to_numpy().reshape(-1, len(df)).T, index=df["sgRNA"].to_numpy())
    reps = reps.groupby(level=0).mean()  # sgRNAs x draws: replicated sgRNA means
    low, high = reps.quantile(0.05, axis=1), reps.quantile(0.95, axis=1)
    outside = (observed < low) | (observed > high)
    print(
        f"{p:>8}: {int(outside.sum()):2d} of {len(observed)} sgRNA means outside their 90% "
        f"intervals ({int((observed < low).sum())} below, {int((observed > high).sum())} above)"
    )

# %%
# Where partial pooling moves each sgRNA
# --------------------------------------
# For every sgRNA, its slope (the total ``b + b_gene + b_sgRNA``) under no pooling and under
# partial pooling, and its true slope, all as deviations from its gene's partial-pooling mean.
# Given the scales, the partial-pooling estimate is a precision-weighted average of the
# sgRNA's own estimate and its gene's: it keeps the fraction ``tau^2 / (tau^2 + se^2)`` of the
# no-pooling deviation, where ``tau`` is the sgRNA scale (how much sgRNAs of a gene differ)
# and ``se`` the standard error of the sgRNA's own estimate. An sgRNA measured in 30 samples
# has a small ``se`` and keeps most of its deviation; one measured in 3 samples has a large
# ``se`` and is pulled most of the way to its gene.

none_table = fits["none"].rank_table(level="sgRNA")
partial_table = fits["partial"].rank_table(level="sgRNA")
gene_mean = fits["partial"].rank_table(level="gene")["mean"]
post = fits["partial"].idata_.posterior
tau = float(np.sqrt((post["H0|gene:sgRNA_sigma"] ** 2).mean()))
sgrnas = fits["partial"].groups_["sgRNA"]
shrink = pd.DataFrame(
    {
        "gene": sgrnas["parent"],
        "n": n_samples.reindex(sgrnas.index),
        "true": truth.reindex(sgrnas.index),
        "none": none_table["mean"].reindex(sgrnas.index),
        "se_none": none_table["sd"].reindex(sgrnas.index),
        "partial": partial_table["mean"].reindex(sgrnas.index),
    }
)
shrink["gene_mean"] = gene_mean.reindex(shrink["gene"]).to_numpy()
shrink["kept"] = tau**2 / (tau**2 + shrink["se_none"] ** 2)  # tau^2 / (tau^2 + se^2)
dev_none = shrink["none"] - shrink["gene_mean"]
dev_partial = shrink["partial"] - shrink["gene_mean"]
shrink["moved"] = 1 - dev_partial / dev_none  # the fraction of the deviation given up
print(f"sgRNA scale tau (posterior root mean square): {tau:.3f}")
print(shrink.sort_values(["gene", "n"]).round(3).to_string())
by_n = shrink.assign(
    abs_move=(shrink["partial"] - shrink["none"]).abs(), predicted=1 - shrink["kept"]
).groupby("n")
print("\nby samples per sgRNA: mean |partial - none|, fraction of the deviation given up")
print(
    by_n.agg(
        mean_abs_move=("abs_move", "mean"),
        moved_median=("moved", "median"),
        moved_predicted=("predicted", "mean"),
    ).round(3)
)

order = shrink.sort_values(["gene", "n"]).index
y = np.arange(len(order))[::-1]
s = shrink.loc[order]
fig, (left, right) = plt.subplots(
    1, 2, figsize=(12.0, 7.0), layout="constrained", gridspec_kw={"width_ratios": [3, 2]}
)
left.axvline(0.0, color="0.5", lw=1)
for yi, a, b in zip(y, s["none"] - s["gene_mean"], s["partial"] - s["gene_mean"], strict=True):
    left.annotate(
        "", xy=(b, yi), xytext=(a, yi), arrowprops=dict(arrowstyle="->", color="C0", lw=1.2)
    )
left.plot(s["none"] - s["gene_mean"], y, "o", mfc="white", mec="C0", label="no pooling")
left.plot(s["partial"] - s["gene_mean"], y, "o", color="C0", label="partial pooling")
left.plot(s["true"] - s["gene_mean"], y, "x", color="C1", mew=2, label="true slope")
left.set_yticks(y, [f"{g} (n={n})" for g, n in zip(order, s["n"], strict=True)])
for k in range(4, len(order), 4):  # genes
    left.axhline(y[k] + 0.5, color="0.85", lw=0.8)
left.set_xlabel("sgRNA slope minus its gene's partial-pooling mean")
left.set_title("arrows: from no pooling to partial pooling", fontsize="medium")
left.legend(fontsize="small", loc="lower right")

predicted = shrink["kept"] * dev_none
lim = 1.1 * float(np.abs(np.concatenate([dev_none, dev_partial])).max())
right.plot([-lim, lim], [-lim, lim], color="0.6", lw=1, label="partial = no pooling")
right.plot([-lim, lim], [0, 0], color="0.8", lw=1)
points = right.scatter(
    dev_none, dev_partial, c=np.log(shrink["n"]), cmap="viridis", s=30, label="partial pooling"
)
right.plot(dev_none, predicted, "+", color="C3", ms=7, label="tau^2 / (tau^2 + se^2) x no pooling")
right.set_xlim(-lim, lim)
right.set_ylim(-lim, lim)
right.set_aspect("equal")
right.set_xlabel("no pooling: deviation from gene mean")
right.set_ylabel("partial pooling: deviation from gene mean")
right.set_title("shrinkage toward the gene mean", fontsize="medium")
right.legend(fontsize="small", loc="upper left")
bar = fig.colorbar(points, ax=right, shrink=0.6, ticks=np.log(SAMPLES))
bar.ax.set_yticklabels([str(n) for n in SAMPLES])
bar.set_label("samples per sgRNA")
save(fig, "pooling_shrinkage.png")

# %%
# Against the truth
# -----------------
# The simulator knows every sgRNA's slope, so the three estimates can be scored directly (root
# mean square error of the posterior means over the 24 sgRNAs, and over the sgRNAs with 3 or
# 5 samples). Complete pooling is far off (it ignores the differences between genes, too);
# partial pooling is closer to the truth than no pooling, most of all for the sgRNAs measured
# in few samples, where no pooling takes the noise for signal.

estimates = {
    "complete": fits["complete"].rank_table(level="sgRNA")["mean"],
    "partial": partial_table["mean"],
    "none": none_table["mean"],
}
few = n_samples.index[n_samples <= 5]
rmse = pd.DataFrame(
    {
        p: {
            "all sgRNAs": float(np.sqrt(((e - truth.reindex(e.index)) ** 2).mean())),
            "3 or 5 samples": float(np.sqrt(((e[few] - truth[few]) ** 2).mean())),
        }
        for p, e in estimates.items()
    }
).T
print(rmse.round(3))
print(f"\ntotal script time: {time.perf_counter() - t0:.1f} s")
