"""Benchmark skhier's count-screen model against MAGeCK2 on the genome-wide HAP1 screen.

Every tool runs in its own subprocess in the same run (wall time and peak RSS of its own, read,
fit and output included), on ``skhier.datasets.load_hap1`` (71,090 sgRNAs, 18,056 genes; T0
against three T18 replicates). Each ranking is judged by how well it separates the core-essential
CEGv2 genes from the non-essential NEGv1 genes (ROC-AUC and PR-AUC of the depletion score) and by
the recall of CEGv2 at 5% FDR (skhier: genes with s-value <= 0.05 and a negative effect, i.e. a
false-sign-rate control; MAGeCK: its own FDR). Agreement with MAGeCK MLE's betas is Spearman's rho
over all genes. Ratios are against ``mageck2 test`` measured in the same run.

MAGeCK2 is optional (``pip install mageck2``; its ``RRA`` helper must be on PATH): without it
only skhier runs. ``--leukemia`` also fits the leukemia demo and compares with the shipped
MAGeCK MLE betas.

Usage::

    python benchmarks/bench_screens.py                  # skhier + mageck2 test
    python benchmarks/bench_screens.py --mle            # + mageck2 mle (1 permutation round)
    python benchmarks/bench_screens.py --leukemia       # + the leukemia demo vs shipped MLE
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

SAMPLES = ["HAP1_T0", "HAP1_T18A", "HAP1_T18B", "HAP1_T18C"]

SKHIER = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import warnings
warnings.simplefilter("ignore")
from skhier.screens import count_screen, write_summaries
screen = count_screen(sys.argv[1], control=sys.argv[2], treatment=sys.argv[3])
ranker = screen.ranker(random_state=0)
ranker.fit(screen.data)
paths = write_summaries(ranker, screen, sys.argv[4])
d = ranker.diagnostics_
a = ranker.approximation_
print(json.dumps({
    "seconds": time.perf_counter() - t0,
    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "passed": bool(d.passed),
    "checks": dict(zip(d.checks["check"], map(str, d.checks["value"]))),
    "timing": {k: v for k, v in d.info["attempts"][-1].items() if isinstance(v, float)},
    "approx": a.summary().to_dict(orient="index"),
    "gene_summary": paths["gene"],
}))
"""


def _child_peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def run(cmd, **kw):
    """Run a command; return (seconds, stdout)."""
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, **kw)
    return time.perf_counter() - t0, out.stdout


def peak_of(cmd, **kw):
    """Wall time and peak RSS of one command (GNU time when present)."""
    gnu = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    if gnu:
        with tempfile.NamedTemporaryFile("r", suffix=".txt") as f:
            seconds, out = run([gnu, "-f", "%M", "-o", f.name, *cmd], **kw)
            peak = int(f.read().strip().splitlines()[-1]) / 1024
        return seconds, peak, out
    seconds, out = run(cmd, **kw)
    return seconds, float("nan"), out


def scores(gene_scores, ref):
    """ROC-AUC and PR-AUC of CEGv2 (positive) against NEGv1 by a depletion score."""
    import numpy as np
    from sklearn.metrics import average_precision_score, roc_auc_score

    ess = [g for g in ref["essential"] if g in gene_scores.index]
    non = [g for g in ref["nonessential"] if g in gene_scores.index]
    y = np.r_[np.ones(len(ess)), np.zeros(len(non))]
    s = np.r_[gene_scores[ess].to_numpy(), gene_scores[non].to_numpy()]
    return roc_auc_score(y, s), average_precision_score(y, s)


def recall_at(called, ref):
    ess = set(ref["essential"])
    return len(ess & set(called)) / len(ess & set(ref["all"]))


def main():
    import pandas as pd
    from scipy.stats import spearmanr

    from skhier.datasets import load_hap1, load_reference_genes

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mle", action="store_true", help="also run mageck2 mle")
    parser.add_argument("--leukemia", action="store_true", help="also fit the leukemia demo")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="skhier-bench-")
    counts = os.path.join(work, "hap1.txt")
    table = load_hap1()
    table.to_csv(counts, sep="\t", index=False)
    ref = load_reference_genes()
    ref["all"] = list(table["gene"].unique())
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"HAP1: {len(table):,} sgRNAs, {table['gene'].nunique():,} genes")
    rows = {}

    sk_seconds, sk_peak, out = peak_of(
        [sys.executable, "-c", SKHIER, counts, SAMPLES[0], ",".join(SAMPLES[1:]),
         os.path.join(work, "skhier")]
    )
    res = json.loads(out.strip().splitlines()[-1])
    genes = pd.read_csv(res["gene_summary"], sep="\t", index_col="Gene")
    roc, pr = scores(-genes["treatment|beta"], ref)
    called = genes.index[(genes["treatment|fdr"] <= 0.05) & (genes["treatment|beta"] < 0)]
    rows["skhier"] = {"seconds": sk_seconds, "peak_mb": sk_peak, "roc_auc": roc, "pr_auc": pr,
                      "recall_5pct": recall_at(called, ref)}
    print("skhier fit steps (s):", {k: round(v, 1) for k, v in res["timing"].items()})
    print("skhier converged:", res["passed"], res["checks"])
    print("skhier approximation (share of groups / cells by Pareto k):")
    print(pd.DataFrame(res["approx"]).T.round(4).to_string())

    have_mageck = shutil.which("mageck2") and shutil.which("RRA")
    if have_mageck:
        prefix = os.path.join(work, "rra")
        sec, peak, _ = peak_of(["mageck2", "test", "-k", counts, "-t", ",".join(SAMPLES[1:]),
                                "-c", SAMPLES[0], "-n", prefix])
        rra = pd.read_csv(f"{prefix}.gene_summary.txt", sep="\t", index_col="id")
        roc, pr = scores(-rra["neg|rank"], ref)
        rows["mageck2 test"] = {"seconds": sec, "peak_mb": peak, "roc_auc": roc, "pr_auc": pr,
                                "recall_5pct": recall_at(rra.index[rra["neg|fdr"] <= 0.05], ref)}
        if args.mle:
            design = os.path.join(work, "design.txt")
            with open(design, "w") as f:
                f.write("Samples\tbaseline\tT18\n")
                for s in SAMPLES:
                    f.write(f"{s}\t1\t{int(s != SAMPLES[0])}\n")
            prefix = os.path.join(work, "mle")
            sec, peak, _ = peak_of(["mageck2", "mle", "-k", counts, "-d", design, "-n", prefix,
                                    "--threads", "2", "--permutation-round", "1",
                                    "--no-permutation-by-group"])
            mle = pd.read_csv(f"{prefix}.gene_summary.txt", sep="\t", index_col="Gene")
            roc, pr = scores(-mle["T18|beta"], ref)
            rows["mageck2 mle"] = {"seconds": sec, "peak_mb": peak, "roc_auc": roc, "pr_auc": pr,
                                   "recall_5pct": recall_at(mle.index[mle["T18|wald-fdr"] <= 0.05],
                                                            ref)}
            common = genes.index.intersection(mle.index)
            rho = spearmanr(genes.loc[common, "treatment|beta"], mle.loc[common, "T18|beta"])
            print(f"Spearman rho, skhier beta vs MAGeCK MLE beta: {rho.statistic:.3f}")
    else:
        print("mageck2 (with RRA on PATH) not found: pip install mageck2 to compare.")

    table_out = pd.DataFrame(rows).T
    if "mageck2 test" in rows:
        table_out["time_vs_mageck_test"] = table_out["seconds"] / rows["mageck2 test"]["seconds"]
    print(table_out.round(3).to_string())

    if args.leukemia:
        from skhier.datasets import load_mageck_leukemia, load_mageck_leukemia_results
        from skhier.screens import count_screen

        for cell in ("HL60", "KBM7"):
            screen = count_screen(load_mageck_leukemia(), control=f"{cell}.initial",
                                  treatment=f"{cell}.final")
            r = screen.ranker(random_state=0)
            t0 = time.perf_counter()
            r.fit(screen.data)
            sec = time.perf_counter() - t0
            mle = load_mageck_leukemia_results().set_index("gene")[f"{cell}_beta"]
            rho = spearmanr(r.rank_["mean"], mle.reindex(r.rank_.index)).statistic
            print(f"leukemia {cell}: fit {sec:.1f} s, Spearman vs MAGeCK MLE beta {rho:.3f}, "
                  f"converged {r.diagnostics_.passed}, approximation {r.approximation_!r}")


if __name__ == "__main__":
    main()
