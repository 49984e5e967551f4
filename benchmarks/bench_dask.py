"""Benchmark: skhier's fits on a Dask cluster (joblib's Dask backend) against the same fits here.

Usage::

    python benchmarks/bench_dask.py                   # 5 genes x 4 sgRNAs x 20 samples
    python benchmarks/bench_dask.py --genes 200 --samples 50
    python benchmarks/bench_dask.py --no-cold         # skip the cluster with an empty numba cache

A LocalCluster of 2 worker processes (one thread each) is started, and on it:

1. The same fit (the README's model, fixed seed, ``n_jobs=1``) is run twice on one worker: the
   first fit in a new worker process loads skhier's numba kernels from their on-disk cache
   (``cache=True``), the second finds them in the process and compiles nothing. The counts of
   kernels loaded from disk and compiled come from numba's own dispatcher statistics. The
   baseline is the same fit in this process (its second fit, after a first one), in the same
   run. With ``--cold`` (the default; ``--no-cold`` skips it) a second cluster's workers get an
   empty ``NUMBA_CACHE_DIR``, as on a machine that never ran skhier: their first fit compiles.
2. A LOOSearchCV grid of 3 candidates (``pooling``) is run here with ``n_jobs=1`` and through
   the cluster (``joblib.parallel_config(backend="dask")``), best of ``--repeat``; the script
   prints whether their elpd (and every fit's posterior above) are equal.

Each process's imports (skhier, numba, nutpie, ArviZ) are timed apart from its fits. Times are
wall seconds; the machine is shared, so the load average is printed, and repeated runs vary
widely when other jobs run (on this project's 2-core VM, from 0.5x to 1.6x for the grid search).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import numpy as np

#: Modules a fit of the collapsed engine with nutpie imports (defining a numba kernel with
#: cache=True does not load it: that happens at its first call, in the fit).
IMPORTS = (
    "numba",
    "nutpie",
    "arviz",
    "skhier.ranker",
    "skhier.engine.collapsed",
    "skhier.engine.compiled",
    "skhier.engine._tree_numba",
    "skhier.engine._draw_numba",
    "skhier.ranking",
)


def numba_counts():
    """(kernels loaded from the disk cache, kernels compiled) so far in this process (skhier's)."""
    import sys

    from numba.core.dispatcher import Dispatcher

    loaded = compiled = 0
    seen = set()
    for name, module in list(sys.modules.items()):
        if not name.startswith("skhier"):
            continue
        for obj in list(vars(module).values()):
            if isinstance(obj, Dispatcher) and id(obj) not in seen:
                seen.add(id(obj))
                loaded += sum(obj.stats.cache_hits.values())
                compiled += sum(obj.stats.cache_misses.values())
    return loaded, compiled


def timed_fit(df, params):
    """Import what a fit uses, fit the estimator on ``df``; the seconds of each, numba's counts.

    Runs on a worker (sent by value from this script) or here. The imports (skhier's modules,
    numba, nutpie, ArviZ) are timed apart so that the fit's time shows the kernels' cost.
    """
    import importlib

    t0 = time.perf_counter()
    for name in IMPORTS:
        importlib.import_module(name)
    from skhier import HierarchicalRanker

    t1 = time.perf_counter()
    before = numba_counts()
    ranker = HierarchicalRanker(**params).fit(df)
    t2 = time.perf_counter()
    after = numba_counts()
    return {
        "pid": os.getpid(),
        "import": t1 - t0,
        "fit": t2 - t1,
        "loaded": after[0] - before[0],
        "compiled": after[1] - before[1],
        "h0": float(ranker.idata_.posterior["H0"].mean()),
    }


def best_time(func, repeat):
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = func()
        best = min(best, time.perf_counter() - t0)
    return best, out


def worker_fits(client, df, params, label):
    """First and second fit on one worker of ``client``; rows of the table."""
    worker = sorted(client.scheduler_info()["workers"])[0]
    rows = []
    for which in ("first", "second"):
        t0 = time.perf_counter()
        res = client.submit(timed_fit, df, params, workers=[worker], pure=False).result()
        res["wall"] = time.perf_counter() - t0
        rows.append((f"{label}: {which} fit on one worker", res))
    assert rows[0][1]["pid"] == rows[1][1]["pid"], "the two fits ran in different processes"
    return rows


def start_cluster(env=None):
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        env=env or {},
    )
    return cluster, Client(cluster)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--genes", type=int, default=5)
    parser.add_argument("--sgrnas", type=int, default=4)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--tune", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cold", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()

    import joblib

    from skhier import ScreenSimulator
    from skhier.model_selection import LOOSearchCV

    df = ScreenSimulator(
        n_genes=args.genes, sgrnas_per_gene=args.sgrnas, n_samples=args.samples, random_state=0
    ).fit_transform()
    params = dict(
        formula="Ht ~ 0 + H0:(1|gene/sgRNA)",
        level="gene",
        draws=args.draws,
        tune=args.tune,
        chains=2,
        n_jobs=1,
        random_state=0,
        on_fail="ignore",
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
        f"(shared VM: timings are noisy); load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"data: {len(df):,} rows ({args.genes} genes x {args.sgrnas} sgRNAs x {args.samples} "
        f"samples); 2 chains x {args.draws} draws ({args.tune} warm-up)\n"
    )

    rows = []
    # this process: the first fit imports skhier and loads its kernels; the second is the baseline
    rows.append(("this process: first fit", timed_fit(df, params)))
    rows.append(("this process: second fit (baseline)", timed_fit(df, params)))

    if args.cold:
        with tempfile.TemporaryDirectory(prefix="skhier-numba-") as cache:
            cluster, client = start_cluster({"NUMBA_CACHE_DIR": cache})
            try:
                rows += worker_fits(client, df, params, "empty numba cache")
            finally:
                client.close()
                cluster.close()

    t0 = time.perf_counter()
    cluster, client = start_cluster()
    t_start = time.perf_counter() - t0
    try:
        rows += worker_fits(client, df, params, "numba cache on disk")
        # warm the other worker too before the grid search
        client.run(timed_fit, df, params)

        grid = {"pooling": ["complete", "partial", "none"]}
        ranker = _ranker(params)
        t_local, local = best_time(lambda: LOOSearchCV(ranker, grid, n_jobs=1).fit(df), args.repeat)

        def remote_search():
            with joblib.parallel_config(backend="dask"):
                return LOOSearchCV(ranker, grid).fit(df)

        t_remote, remote = best_time(remote_search, args.repeat)
    finally:
        client.close()
        cluster.close()

    baseline = rows[1][1]["fit"]
    header = (
        f"{'fit':<44} {'import s':>8} {'fit s':>7} {'wall s':>7} {'loaded':>6} "
        f"{'compiled':>8} {'fit vs baseline':>15}"
    )
    print(header)
    print("-" * len(header))
    for name, r in rows:
        wall = f"{r['wall']:7.2f}" if "wall" in r else f"{'-':>7}"
        print(
            f"{name:<44} {r['import']:8.2f} {r['fit']:7.2f} {wall} {r['loaded']:6d} "
            f"{r['compiled']:8d} {r['fit'] / baseline:14.2f}x"
        )
    print(
        "\nimport s: importing what a fit uses, in that process; fit s: the fit; wall s: "
        "submit to result in this process;\nloaded / compiled: numba kernels loaded from the "
        f"disk cache / compiled during the fit. Starting the cluster took {t_start:.1f} s."
    )
    means = {r["h0"] for _, r in rows}
    print(f"same posterior (mean of H0) in every fit: {len(means) == 1}")
    same = np.array_equal(local.cv_results_["elpd_loo"], remote.cv_results_["elpd_loo"])
    print(
        f"\nLOOSearchCV, 3 candidates (best of {args.repeat}): here with n_jobs=1 {t_local:.2f} s, "
        f"through the cluster {t_remote:.2f} s ({t_local / t_remote:.2f}x); "
        f"same elpd_loo: {same}; best {remote.best_params_}"
    )
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")


def _ranker(params):
    from skhier import HierarchicalRanker

    return HierarchicalRanker(**params)


if __name__ == "__main__":
    main()
