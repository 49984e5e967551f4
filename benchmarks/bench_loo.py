"""PSIS-LOO of a whole screen in bounded memory: skhier's block-wise LOO against ``arviz.loo``.

Fits the forum's model (``Ht ~ 0 + H0:(1|gene/sgRNA)``, 4 chains x 1,000 draws = 4,000 draws) on
a simulated screen, saves it, then computes PSIS-LOO in fresh processes that load the saved fit:

- ``skhier``: ``ranker.loo_`` (the log likelihood a block of rows at a time, Pareto smoothing by
  skhier's compiled kernel on its thread pool);
- ``arviz``: the whole ``draws x rows`` pointwise log likelihood (skhier's
  ``pointwise_log_likelihood``) handed to ``arviz.loo``, the baseline, run only where it fits in
  memory.

Each process reports its wall time, its RSS after loading the fit and its peak RSS, so the
LOO's own memory is the difference. Usage::

    python benchmarks/bench_loo.py            # 50,000 rows (both) and the full screen (skhier)
    python benchmarks/bench_loo.py --small    # 50,000 rows only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

from bench_engine import FORMULA_SKHIER, layout

SIZES = {"50k": (1000, 154, 50), "full": (13000, 2000, 50)}  # sgRNAs, genes, samples per sgRNA


def rss_gb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024**2
    return float("nan")


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def child_fit(size: str, folder: str) -> dict:
    import warnings

    from skhier import HierarchicalRanker, ScreenSimulator

    warnings.simplefilter("ignore")
    n_sg, n_genes, n_samples = SIZES[size]
    df = ScreenSimulator(random_state=0).fit_transform(layout(n_sg, n_genes, n_samples))
    t0 = time.perf_counter()
    ranker = HierarchicalRanker(
        formula=FORMULA_SKHIER, chains=4, draws=1000, tune=1000, random_state=1, on_fail="ignore"
    ).fit(df)
    wall = time.perf_counter() - t0
    ranker.save(folder, overwrite=True)
    return {"rows": len(df), "fit_s": wall}


def child_loo(method: str, folder: str) -> dict:
    import warnings

    import skhier
    from skhier.scoring import pointwise_log_likelihood

    warnings.simplefilter("ignore")
    ranker = skhier.load(folder)
    after_load = rss_gb()
    t0 = time.perf_counter()
    if method == "skhier":
        res = ranker.loo_
    else:
        import arviz as az
        import xarray as xr

        ll = pointwise_log_likelihood(ranker)
        idata = ranker.idata_.copy()
        idata.add_groups(
            log_likelihood=xr.Dataset(
                {"Ht": (("chain", "draw", "row"), ll)},
                coords={"chain": idata.posterior.chain, "draw": idata.posterior.draw},
            )
        )
        del ll
        res = az.loo(idata, pointwise=True)
    wall = time.perf_counter() - t0
    return {
        "loo_s": wall,
        "rss_after_load_gb": after_load,
        "peak_gb": peak_gb(),
        "elpd_loo": float(res["elpd_loo"]),
        "se": float(res["se"]),
        "p_loo": float(res["p_loo"]),
        "k_max": float(res["pareto_k"].max()),
        "n_samples": int(res["n_samples"]),
    }


def spawn(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        return {"error": (out.stderr or out.stdout)[-800:]}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help="50,000 rows only")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        out = child_fit(*rest) if kind == "fit" else child_loo(kind, *rest)
        print(json.dumps(out))
        return

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    sizes = ["50k"] if args.small else ["50k", "full"]
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            folder = os.path.join(tmp, size)
            fit = spawn("fit", size, folder)
            if "error" in fit:
                print(size, "fit failed:", fit["error"])
                continue
            print(f"\n{size}: {fit['rows']:,} rows, fit {fit['fit_s']:.1f} s")
            methods = ["skhier", "arviz"] if size == "50k" else ["skhier"]
            results = {m: spawn(m, folder) for m in methods}
            print(
                f"{'method':8} {'LOO s':>8} {'RSS after load GB':>18} {'peak GB':>8} "
                f"{'LOO GB':>7} {'elpd_loo':>14} {'se':>8} {'p_loo':>8} {'k max':>6}"
            )
            for m, r in results.items():
                if "error" in r:
                    print(f"{m:8} failed: {r['error']}")
                    continue
                print(
                    f"{m:8} {r['loo_s']:8.1f} {r['rss_after_load_gb']:18.2f} {r['peak_gb']:8.2f} "
                    f"{r['peak_gb'] - r['rss_after_load_gb']:7.2f} {r['elpd_loo']:14.3f} "
                    f"{r['se']:8.2f} {r['p_loo']:8.2f} {r['k_max']:6.2f}"
                )
            if all("error" not in r for r in results.values()) and "arviz" in results:
                a, s = results["arviz"], results["skhier"]
                print(
                    f"skhier vs arviz.loo: {a['loo_s'] / s['loo_s']:.1f}x faster, LOO memory "
                    f"{s['peak_gb'] - s['rss_after_load_gb']:.2f} GB vs "
                    f"{a['peak_gb'] - a['rss_after_load_gb']:.2f} GB, elpd difference "
                    f"{abs(a['elpd_loo'] - s['elpd_loo']):.2e}"
                )
            if size == "full":
                n_ll = fit["rows"] * results["skhier"].get("n_samples", 4000) * 8 / 1024**3
                print(
                    f"arviz.loo not run at full size: the pointwise log likelihood alone is "
                    f"{n_ll:.1f} GB (float64), before ArviZ's copies."
                )


if __name__ == "__main__":
    main()
