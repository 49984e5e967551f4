"""
Is a ranking by posterior mean driven by the variance?
======================================================

A forum question, end to end. A biologist fits ``Ht ~ Normal(beta[sgRNA] * H0, sigma)`` with
sgRNAs nested in genes, ranks the genes by the posterior mean of ``beta``, and asks how to show
that the ranking is not driven by the variance. The answer is the posterior *of the ranking
itself*: for every posterior draw, rank the genes; then ask how often gene ``i`` beats gene
``j`` (dominance), where each gene's rank falls (rank intervals, P(top k)), and which
statements hold for all genes at once (the joint rank band).

This example simulates a screen with known truth (30 genes x 4 sgRNAs x 50 samples), fits the
forum's hierarchical slope model and walks from the ranking by posterior mean to the posterior
of the ranking. It prints every number quoted in the user guide's page on the forum question
(``docs/forum_question.md``).

Run from the project root (about 35 s on two cores the first time, most of it compiling the
numba kernels, which are cached on disk; about 10 s after that)::

    python examples/plot_forum_question.py          # prints the numbers
    python examples/plot_forum_question.py --save   # and writes docs/figures/forum_*.png

Setting the environment variable ``SKHIER_FIGURES`` to a folder writes the figures there
instead. Without either, the figures are left open (sphinx-gallery collects them).
"""

# %%
# Settings
# --------

import os
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from skhier import (  # noqa: E402
    HierarchicalRanker,
    ScreenSimulator,
    diagnose,
    dominance,
    rank_posterior,
)
from skhier.plotting import (  # noqa: E402
    plot_diagnostics,
    plot_dominance,
    plot_rank_probabilities,
    plot_ranks,
)
from skhier.ranking import draw_ranks  # noqa: E402

FORMULA = "Ht ~ 0 + H0:(1|gene/sgRNA)"
TOP_K = 10
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
# A screen with known truth, and the fit
# --------------------------------------
# ``H0:(1|gene/sgRNA)`` is the forum's model: skhier fits it as
# ``Ht ~ 0 + H0 + (0 + H0|gene/sgRNA)`` and ranks each gene's *total* slope,
# ``beta_gene = beta_bar + b_gene``. ``true_slopes_`` holds what the model should recover.

sim = ScreenSimulator(n_genes=30, sgrnas_per_gene=4, n_samples=50, random_state=7)
df = sim.fit_transform()
truth = sim.true_slopes_["gene"]  # what the slope model estimates (see ScreenSimulator)
true_rank = truth.rank(ascending=False)
print(f"rows: {len(df):,}  genes: {df['gene'].nunique()}  sgRNAs: {df['sgRNA'].nunique()}")
ranker = HierarchicalRanker(formula=FORMULA, level="gene", top_k=TOP_K, random_state=0)
ranker.fit(df)
print(f"fitted formula: {ranker.formula_}   engine: {ranker.engine_}")
print(f"fit time: {ranker.diagnostics_.info['fit_seconds']:.1f} s")
print(ranker.diagnostics_.summary())

table = ranker.rank_
n_genes = len(table)

# %%
# In a notebook (and here), a fitted ranker shows the fit: formula, engine, the sampler's
# verdict and the top of the ranking with expected ranks, rank intervals and P(top 10).

ranker

# %%
# The biologist's ranking: by posterior mean
# ------------------------------------------
# Ten distinct numbers, ten distinct places: the list looks decisive.

by_mean = table.sort_values("mean", ascending=False)
view = by_mean[["mean", "sd", "hdi_low", "hdi_high"]].head(10).copy()
view.insert(0, "by_mean", np.arange(1, 11))
view["true_rank"] = true_rank.reindex(view.index).to_numpy()
print(view.round(3).to_string())

# %%
# Two genes whose means differ but whose posteriors overlap
# ---------------------------------------------------------
# Neighbours in that list whose means differ but whose posteriors overlap: the pair with the
# widest gap of means among adjacent pairs ordered with less than 75% probability, and the
# pair closest to a coin flip. The posterior of the *difference*, draw by draw, answers "is
# the first really above the second?" directly.

D = ranker.dominance_
names = by_mean.index[:12]
pairs = [(names[i], names[i + 1]) for i in range(len(names) - 1)]
gap = by_mean["mean"]
unsure = [p for p in pairs if D.loc[p[0], p[1]] < 0.75]
a, b = max(unsure, key=lambda p: gap[p[0]] - gap[p[1]])
coin = min(pairs, key=lambda p: abs(float(D.loc[p[0], p[1]]) - 0.5))
post = ranker.idata_.posterior
totals = post["H0"] + post["H0|gene"]  # total gene slope b + b_g, draw by draw
totals = totals.rename({"gene__factor_dim": "gene"})
for g1, g2 in ((a, b), coin):
    d1 = totals.sel(gene=g1).values.ravel()
    d2 = totals.sel(gene=g2).values.ravel()
    diff = d1 - d2
    lo, hi = np.quantile(diff, [0.05, 0.95])
    print(
        f"\npair: {g1} (mean {d1.mean():.3f}, sd {d1.std(ddof=1):.3f}) vs "
        f"{g2} (mean {d2.mean():.3f}, sd {d2.std(ddof=1):.3f})"
    )
    print(f"  difference of means {diff.mean():.3f}; 90% interval [{lo:.3f}, {hi:.3f}]")
    print(f"  P(beta_{g1} > beta_{g2}) = {(diff > 0).mean():.3f} (dominance_ {D.loc[g1, g2]:.3f})")
    print(
        f"  truth: {g1} {truth[g1]:.3f} (rank {true_rank[g1]:g}), "
        f"{g2} {truth[g2]:.3f} (rank {true_rank[g2]:g})"
    )
draws_a = totals.sel(gene=a).values.ravel()
draws_b = totals.sel(gene=b).values.ravel()
diff = draws_a - draws_b

fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.2), layout="constrained")
bins = np.linspace(min(draws_a.min(), draws_b.min()), max(draws_a.max(), draws_b.max()), 60)
left.hist(draws_a, bins=bins, alpha=0.55, density=True, color="C0", label=f"{a}")
left.hist(draws_b, bins=bins, alpha=0.55, density=True, color="C1", label=f"{b}")
for draws_g, color in ((draws_a, "C0"), (draws_b, "C1")):
    left.axvline(draws_g.mean(), color=color, lw=1.5)
left.set_xlabel("total gene slope beta")
left.set_yticks([])
left.set_title("posteriors (vertical lines: means)", fontsize="medium")
left.legend(fontsize="small")
right.hist(diff, bins=60, density=True, color="0.6")
right.axvline(0.0, color="black", lw=1)
right.set_xlabel(f"beta_{a} - beta_{b}")
right.set_yticks([])
right.set_title(f"difference: P(> 0) = {(diff > 0).mean():.2f}", fontsize="medium")
save(fig, "forum_pair.png")

# %%
# The posterior of every gene's slope, best first: the top five are well separated; from the
# sixth gene down, neighbouring intervals overlap almost completely.

ax = plot_ranks(table, interval="effect", truth=truth)
ax.set_title("posterior of each gene's slope (x: true slope)")
ax.set_xlabel("total gene slope beta")
save(ax.figure, "forum_effects.png")

# %%
# The dominance matrix: P(beta_i > beta_j) for every pair
# --------------------------------------------------------
# ``D[i, j]`` is the fraction of draws in which gene ``i`` beats gene ``j`` (ties count one
# half, so ``D + D.T = 1``). The matrix and the expected ranks are two views of the same
# draws: ``expected_rank_j = 0.5 + sum_i D[i, j]``.

print(D.iloc[:8, :8].round(3).to_string())
ax = plot_dominance(ranker)  # the same as plot_dominance(ranker.dominance_)
ax.set_title("dominance P(beta_row > beta_col), genes by expected rank")
save(ax.figure, "forum_dominance.png")
er_check = 0.5 + D.sum(axis=0)
err = float(np.abs(er_check.to_numpy() - table.loc[D.columns, "expected_rank"].to_numpy()).max())
print(f"\nexpected rank = 0.5 + column sum of D: max difference {err:.1e}")

# %%
# Rank intervals, P(top 10) and the joint band
# --------------------------------------------
# Ranking every draw gives each gene a posterior rank distribution: its expected rank, a 90%
# rank interval, and P(top 10). The joint rank band holds *every* gene's rank at once in at
# least 95% of the draws, so it licenses statements about sets: the genes whose band ends at
# rank 10 or better are jointly in the top 10; those whose band starts after rank 10 can be
# ruled out.

cols = ["mean", "expected_rank", "rank_low", "rank_high", "joint_rank_low", "joint_rank_high"]
cols += ["p_top_k", "sucra"]
view = table[cols].head(12).copy()
view["true_rank"] = true_rank.reindex(view.index).to_numpy()
print(view.round(3).to_string())
attrs = table.attrs
print(
    f"\nhdi_prob={attrs['hdi_prob']}, joint_prob={attrs['joint_prob']}, "
    f"joint coverage reached={attrs['joint_coverage']:.3f}, draws={attrs['n_draws']}"
)
width = table["rank_high"] - table["rank_low"]
jwidth = table["joint_rank_high"] - table["joint_rank_low"]
print(f"mean width of 90% rank intervals: {width.mean():.1f}; joint band: {jwidth.mean():.1f}")
low_half = width.iloc[6:]
print(f"90% rank interval width, genes ranked 7-30: {low_half.min():g} to {low_half.max():g}")

sure = table.index[table["joint_rank_high"] <= TOP_K].tolist()
possible = table.index[table["joint_rank_low"] <= TOP_K].tolist()
print(f"\njointly in the top {TOP_K} (joint_rank_high <= {TOP_K}): {sure}")
print(f"could be in the top {TOP_K} (joint_rank_low <= {TOP_K}): {possible}")
ranks = draw_ranks(totals.transpose("chain", "draw", "gene").values).reshape(-1, n_genes)
col = {g: i for i, g in enumerate(totals["gene"].values)}
in_top = ranks[:, [col[g] for g in sure]] <= TOP_K
print(f"check from the draws: P(all of them in the top {TOP_K}) = {in_top.all(axis=1).mean():.3f}")
outside = ranks[:, [col[g] for g in table.index if g not in possible]] <= TOP_K
print(
    f"P(none of the other {n_genes - len(possible)} genes in the top {TOP_K}) = "
    f"{(~outside.any(axis=1)).mean():.3f}"
)
top_mean = by_mean.index[:TOP_K].tolist()
p_set = (ranks[:, [col[g] for g in top_mean]] <= TOP_K).all(axis=1).mean()
print(f"top {TOP_K} by posterior mean: {top_mean}")
print(f"P(exactly this set is the top {TOP_K}) = {p_set:.3f}")
edge = table.iloc[TOP_K - 3 : TOP_K + 3][["p_top_k", "mcse_p_top_k"]]
print(f"\nP(top {TOP_K}) around the boundary:\n{edge.round(3).to_string()}")

# %%
# Dots: expected rank; dark bars: 90% rank interval; pale bars: the 95% joint band.

ax = plot_ranks(table, truth=truth)
ax.set_title("rank of each gene's slope (x: true rank)")
save(ax.figure, "forum_ranks.png")

# %%
# The full rank distributions: the top five are dark single cells (or a pair of cells shared
# by two genes); below them, every gene is smeared over many ranks.

ax = plot_rank_probabilities(ranker)  # or rank_probabilities(totals), then plot
ax.set_title("P(rank = r) for each gene")
save(ax.figure, "forum_rank_probabilities.png")

# %%
# Against the simulator's truth
# -----------------------------
# The ranking by posterior mean is not wrong; it is overconfident. The rank intervals, P(top
# k), the dominance matrix and the joint band say how much of it the data support, and they
# hold up against the truth.

tr = true_rank.reindex(table.index)
inside = ((tr >= table["rank_low"]) & (tr <= table["rank_high"])).sum()
inside_joint = ((tr >= table["joint_rank_low"]) & (tr <= table["joint_rank_high"])).sum()
print(f"true rank inside the 90% rank interval: {inside}/{n_genes}")
print(f"true rank inside the 95% joint band: {inside_joint}/{n_genes}")
rho = np.corrcoef(tr.to_numpy(), table["rank"].to_numpy())[0, 1]  # both are ranks
print(f"Spearman correlation of the true and the estimated ranking: {rho:.3f}")
true_top = true_rank.index[true_rank <= TOP_K].tolist()
print(f"true top {TOP_K}: {sorted(true_top)}")
print(f"  all in 'could be in the top {TOP_K}': {set(true_top) <= set(possible)}")
print(f"  'jointly in the top {TOP_K}' all truly top {TOP_K}: {set(sure) <= set(true_top)}")
hits = len(set(top_mean) & set(true_top))
print(f"  top {TOP_K} by posterior mean that truly are: {hits}/{TOP_K}")
mcse = table["mcse_p_top_k"].max()
print(f"max Monte Carlo s.e. of p_top_k: {mcse:.4f}")

# %%
# The same table from any posterior (functional API)
# --------------------------------------------------
# The ranking functions take any posterior (an InferenceData, a DataArray or a
# ``(chains, draws, N)`` array), so a PyMC trace of your own model needs no refit.

same = rank_posterior(totals, top_k=TOP_K)
print(same[["rank", "mean", "expected_rank", "p_top_k"]].head(3).round(3).to_string())
same_values = np.allclose(
    same.drop(columns="n_obs", errors="ignore"),
    table[same.columns.drop("n_obs", errors="ignore")],
)
print(f"identical to ranker.rank_: {same.index.equals(table.index) and same_values}")
D_own = dominance(totals)
print(f"identical to ranker.dominance_: {D_own.equals(D)}")

# %%
# Was the sampler healthy?
# ------------------------
# A ranking is only as good as the draws behind it. The checks on the four hyperparameters
# (``H0`` is the population slope, ``H0|gene_sigma`` and ``H0|gene:sgRNA_sigma`` the gene and
# sgRNA scales, ``sigma`` the residual sd):

hyper = ["H0", "H0|gene_sigma", "H0|gene:sgRNA_sigma", "sigma"]
diag = diagnose(ranker.idata_, var_names=hyper)
print(diag.summary())
n_div = int(ranker.idata_.sample_stats["diverging"].sum())
print(f"divergent transitions: {n_div}")

# %%
# Trace plots: the four chains overlap in every density, and the traces look like stationary
# noise.

fig = plot_diagnostics(ranker, hyper, kind="trace")
save(fig, "forum_trace.png")

# %%
# Rank plots: each chain's draws are spread evenly over the ranks of all draws (flat
# histograms near the dashed line), so the chains explore the same distribution.

fig = plot_diagnostics(ranker, hyper, kind="rank")
save(fig, "forum_rank_plot.png")

# %%
# Parallel coordinates: each posterior draw as a line across the parameters; divergent
# transitions would be drawn in red on top (this fit has none).

fig = plot_diagnostics(ranker, hyper + ["H0|gene"], kind="parallel")
save(fig, "forum_parallel.png")
print(f"total script time: {time.perf_counter() - t0:.1f} s")
