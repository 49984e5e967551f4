"""
A real count screen: MAGeCK's leukemia demo
===========================================

A pooled CRISPR screen counts the reads of every sgRNA before and after selection. Here the
counts are MAGeCK's leukemia demo (10,000 sgRNAs in 1,000 genes, HL60 cells before and after
selection; bundled with skhier, :func:`skhier.datasets.load_mageck_leukemia`).
:func:`skhier.screens.count_screen` turns the count table into the long frame and the model

``count ~ 0 + offset(log_size) + (1|gene:sgRNA) + treatment:(1|gene/sgRNA)``

with a negative binomial likelihood: each sgRNA's abundance as a nuisance, and the log fold
change of the treated sample as a gene effect plus an sgRNA effect, both partially pooled.
skhier fits it with its Laplace count engine, ranks the genes by depletion (essential genes
first), checks its own approximation, and writes MAGeCK-layout tables. MAGeCK MLE's gene betas
for the same data ship too (:func:`skhier.datasets.load_mageck_leukemia_results`), so the two
can be compared.

The command line does the same in one step::

    skhier screen counts.txt --control HL60.initial --treatment HL60.final --out hl60

Run from the project root (about 20 s on two cores)::

    python examples/plot_count_screen.py
"""

# %%
# The count table and the screen
# ------------------------------
# One row per sgRNA, one column of read counts per sample. ``count_screen`` computes the
# samples' size factors (median ratio, as MAGeCK), drops sgRNAs without reads in the used
# samples, and builds the long frame (one row per sgRNA and sample) and the formula.

import time

import matplotlib.pyplot as plt
import numpy as np

from skhier.datasets import load_mageck_leukemia, load_mageck_leukemia_results
from skhier.plotting import plot_ranks
from skhier.screens import count_screen, gene_summary

t0 = time.perf_counter()
counts = load_mageck_leukemia()
print(counts.head())
screen = count_screen(counts, control="HL60.initial", treatment="HL60.final")
print(f"\nsgRNAs used: {len(screen.counts):,}; dropped without reads: {len(screen.dropped)}")
print("size factors:", screen.size_factors.round(3).to_dict())
print("formula:", screen.formula)
print(screen.data.head())

# %%
# The fit
# -------
# ``screen.ranker()`` is a :class:`skhier.HierarchicalRanker` of the screen's model that ranks
# the genes by their treatment effect, most depleted first (``direction="negative"``), with
# two chains of 1,000 draws. The count engine makes each sgRNA's likelihood Gaussian at its
# posterior mode (the dispersion estimated once), integrates each sgRNA's abundance out, and
# keeps the gene/sgRNA hierarchy exact.

ranker = screen.ranker(random_state=0, top_k=20)
ranker.fit(screen.data)
ranker

# %%
# How good is the approximation? Every fit checks it: Pareto k of the importance ratios
# between the exact and the approximate likelihood, per sgRNA and per gene. The fit warns
# (``ApproximationWarning``) when genes have ``k > 0.7``, here about one gene in a thousand;
# ``approximation_.groups`` has each gene's k and, where k allows, its reweighted mean.

approx = ranker.approximation_
print(approx)
print(approx.groups.sort_values("pareto_k", ascending=False).head().round(3))

# %%
# The ranking
# -----------
# The most depleted genes with their posterior log fold change, rank interval, P(top 20) and
# local false sign rate, and the same as a plot (the 30 best genes).

ax = plot_ranks(ranker, top=30)
ax.set_title("the 30 most depleted genes in HL60")
columns = ["mean", "sd", "expected_rank", "rank_low", "rank_high", "p_top_k", "lfsr"]
print(ranker.rank_[columns].head(12).round(3).to_string())

# %%
# Against MAGeCK MLE
# ------------------
# MAGeCK MLE's gene betas (natural-log fold changes) for the same HL60 samples, against
# skhier's posterior means: the same genes stand out, and skhier's estimates are pulled
# toward 0, the partial pooling of genes whose ten sgRNAs say little on their own.

mle = load_mageck_leukemia_results().set_index("gene")["HL60_beta"]
ours = ranker.rank_["mean"].reindex(mle.index)
rho = ours.rank().corr(mle.rank())
fig, ax = plt.subplots(figsize=(5.0, 4.6), layout="constrained")
ax.scatter(mle, ours, s=6, alpha=0.5)
lim = [min(mle.min(), ours.min()), max(mle.max(), ours.max())]
ax.plot(lim, lim, color="0.5", lw=1, label="equal")
ax.set_xlabel("MAGeCK MLE beta (HL60)")
ax.set_ylabel("skhier posterior mean")
ax.set_title(f"gene effects, Spearman {rho:.2f}", fontsize="medium")
ax.legend(loc="upper left", fontsize="small")
print(f"Spearman correlation of the gene effects: {rho:.3f} ({ours.notna().sum()} genes)")

# %%
# MAGeCK-layout output
# --------------------
# :func:`skhier.screens.gene_summary` lays the ranking out like MAGeCK MLE's
# ``gene_summary`` (``beta``, ``z``, p-values and FDRs, read by MAGeCKFlute and VISPR), with
# skhier's columns added; :func:`skhier.screens.write_summaries` writes it and the sgRNA
# table to files.

summary = gene_summary(ranker, screen)
print(summary.head().round(3).to_string(index=False))
print(f"\nessential at 5% FDR (s-value): {int((summary['treatment|fdr'] < 0.05).sum())} genes")
print(f"total script time: {time.perf_counter() - t0:.1f} s")
np.testing.assert_array_equal(summary["Gene"].head(3), ranker.rank_.index[:3])
