"""Benchmark skhier's collapsed engine against Bambi's own model on the same simulated screen.

Each configuration runs in a fresh subprocess (so compile time and peak memory are its own) and
reports wall time of ``fit`` (compilation included), R-hat max, min bulk and tail ESS (over every
parameter: scales, common slope, every gene and sgRNA coefficient), divergences, min-ESS per second
and peak RSS. Ratios are against Bambi + nutpie measured in the same run.

Usage::

    python benchmarks/bench_engine.py                 # 50,000 rows: skhier (nutpie) only
    python benchmarks/bench_engine.py --bambi         # + Bambi with nutpie, warm and cold (~4 min)
    python benchmarks/bench_engine.py --pymc          # + Bambi with PyMC's NUTS (~10 min)
    python benchmarks/bench_engine.py --full          # + the full design, 650,000 rows

Packages are imported before the clock starts (skhier, ArviZ, Bambi); nutpie is imported inside
``fit`` by skhier and by Bambi. "cold caches" runs use empty numba and PyTensor cache folders (a
first fit after installing: compilation included); the "x bambi" column compares warm with warm
and cold with cold.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from _machine import machine_line

FORMULA_SKHIER = "Ht ~ 0 + H0:(1|gene/sgRNA)"
FORMULA_BAMBI = "Ht ~ 0 + H0 + (0 + H0|gene) + (0 + H0|sgRNA)"


def layout(n_sgrnas: int, n_genes: int, n_samples: int):
    import numpy as np
    import pandas as pd

    per_gene = np.full(n_genes, n_sgrnas // n_genes)
    per_gene[: n_sgrnas - per_gene.sum()] += 1
    w = len(str(n_genes))
    genes = np.repeat([f"G{g:0{w}d}" for g in range(1, n_genes + 1)], per_gene)
    sgrnas = [
        f"{g}_sg{k}"
        for g, n in zip(np.unique(genes), per_gene, strict=True)
        for k in range(1, n + 1)
    ]
    samples = [f"S{s:02d}" for s in range(1, n_samples + 1)]
    return pd.DataFrame(
        {
            "gene": np.repeat(genes, n_samples),
            "sgRNA": np.repeat(sgrnas, n_samples),
            "sample": np.tile(samples, len(sgrnas)),
        }
    )


def run_one(config: dict) -> dict:
    import warnings

    import arviz as az
    import numpy as np

    from skhier import HierarchicalRanker, ScreenSimulator

    warnings.simplefilter("ignore")
    if config["engine"] != "skhier":
        import bambi as bmb  # imported before the clock starts, as ArviZ and skhier are
    design = layout(config["n_sgrnas"], config["n_genes"], config["n_samples"])
    df = ScreenSimulator(random_state=0).fit_transform(design)
    t0 = time.perf_counter()
    if config["engine"] == "skhier":
        ranker = HierarchicalRanker(
            formula=FORMULA_SKHIER,
            sampler=config["sampler"],
            chains=config["chains"],
            draws=1000,
            tune=1000,
            random_state=1,
            on_fail="ignore",
        )
        ranker.fit(df)
        idata = ranker.idata_
    else:
        model = bmb.Model(FORMULA_BAMBI, df)
        idata = model.fit(
            draws=1000,
            tune=1000,
            chains=config["chains"],
            inference_method=config["sampler"],
            random_seed=1,
            progressbar=False,
        )
    wall = time.perf_counter() - t0
    post = idata.posterior
    names = [v for v in post.data_vars if not v.endswith("_offset")]
    ess_b = az.ess(idata, var_names=names, method="bulk")
    ess_t = az.ess(idata, var_names=names, method="tail")
    rhat = az.rhat(idata, var_names=names)
    min_b = min(float(ess_b[v].min()) for v in names)
    min_t = min(float(ess_t[v].min()) for v in names)
    max_r = max(float(rhat[v].max()) for v in names)
    div = int(np.asarray(idata.sample_stats["diverging"]).sum())
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return {
        "wall_s": wall,
        "rhat_max": max_r,
        "ess_bulk_min": min_b,
        "ess_tail_min": min_t,
        "divergences": div,
        "ess_per_s": min_b / wall,
        "peak_gb": peak_gb,
        "rows": len(df),
    }


def spawn(config: dict) -> dict:
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        if config.get("cold"):  # empty numba and PyTensor caches: what a first fit meets
            env["NUMBA_CACHE_DIR"] = os.path.join(tmp, "numba")
            flags = env.get("PYTENSOR_FLAGS", "")
            env["PYTENSOR_FLAGS"] = f"{flags},compiledir={os.path.join(tmp, 'pytensor')}".strip(",")
        out = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(config)],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        return {"error": (out.stderr or out.stdout)[-500:]}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bambi", action="store_true", help="also time Bambi's model (nutpie)")
    parser.add_argument("--pymc", action="store_true", help="also Bambi's model with PyMC NUTS")
    parser.add_argument("--full", action="store_true", help="also fit the full 650,000-row design")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(json.loads(args.child))))
        return
    small = {"n_sgrnas": 1000, "n_genes": 200, "n_samples": 50}
    full = {"n_sgrnas": 13000, "n_genes": 2000, "n_samples": 50}
    configs = [
        (
            "skhier collapsed, nutpie",
            {**small, "engine": "skhier", "sampler": "nutpie", "chains": 2},
        ),
        (
            "skhier, first fit (cold caches)",
            {**small, "engine": "skhier", "sampler": "nutpie", "chains": 2, "cold": True},
        ),
    ]
    if args.bambi:
        configs += [
            (
                "bambi defaults, nutpie",
                {**small, "engine": "bambi", "sampler": "nutpie", "chains": 2},
            ),
            (
                "bambi, nutpie, cold caches",
                {**small, "engine": "bambi", "sampler": "nutpie", "chains": 2, "cold": True},
            ),
        ]
    if args.pymc:
        configs.append(
            (
                "bambi defaults, PyMC NUTS",
                {**small, "engine": "bambi", "sampler": "pymc", "chains": 2},
            )
        )
    if args.full:
        configs.append(
            (
                "skhier collapsed, nutpie, FULL",
                {**full, "engine": "skhier", "sampler": "nutpie", "chains": 4},
            )
        )
    results = []
    # fill the disk caches first, so that "warm" means warm even right after installing
    spawn({**small, "engine": "skhier", "sampler": "nutpie", "chains": 2})
    for name, config in configs:
        res = spawn(config)
        results.append((name, config, res))
        print(f"done: {name}", file=sys.stderr)
    base = next((r for n, _, r in results if n == "bambi defaults, nutpie" and "wall_s" in r), None)
    cold_base = next(
        (r for n, _, r in results if n == "bambi, nutpie, cold caches" and "wall_s" in r), None
    )
    header = (
        f"{'configuration':34s} {'rows':>8s} {'chains':>6s} {'wall s':>8s} {'R-hat':>6s} "
        f"{'bulk ESS':>9s} {'tail ESS':>9s} {'div':>4s} {'ESS/s':>8s} {'peak GB':>8s} "
        f"{'x bambi':>8s}"
    )
    print(machine_line())
    print(header)
    print("-" * len(header))
    for name, config, r in results:
        if "error" in r:
            print(f"{name:34s} ERROR {r['error']}")
            continue
        ref = cold_base if config.get("cold") else base
        ratio = f"{r['ess_per_s'] / ref['ess_per_s']:8.0f}" if ref else f"{'-':>8s}"
        print(
            f"{name:34s} {r['rows']:8d} {config['chains']:6d} {r['wall_s']:8.1f} "
            f"{r['rhat_max']:6.3f} {r['ess_bulk_min']:9.0f} {r['ess_tail_min']:9.0f} "
            f"{r['divergences']:4d} {r['ess_per_s']:8.1f} {r['peak_gb']:8.2f} {ratio}"
        )


if __name__ == "__main__":
    main()
