"""Benchmark: skhier's vectorized R-hat / ESS / MCSE against ArviZ, in the same run.

Usage::

    python benchmarks/bench_diagnostics.py                  # 15,000 parameters x 4 x 1,000 draws
    python benchmarks/bench_diagnostics.py --params 2000    # quicker

Both compute the same five statistics per parameter (rank-normalized split R-hat, bulk and tail
ESS, MCSE of the mean, mean and sd) on the same draws: half the parameters i.i.d., half AR(1)
chains (phi = 0.6), as a well-mixed hierarchical posterior has. ArviZ is timed as a user calls
it (``az.summary(kind="diagnostics")`` on the InferenceData, and the four functions separately);
skhier as ``convergence_stats`` with every core and with one thread, through its compiled
kernel (the default from a few thousand parameters) and through its NumPy path. The largest
difference between the answers is printed too (they must agree to rounding).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np


def make_draws(n_params, chains, draws, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((chains, draws, n_params))
    half = n_params // 2
    phi = 0.6
    for t in range(1, draws):  # AR(1) in place for the second half
        x[:, t, half:] = phi * x[:, t - 1, half:] + np.sqrt(1 - phi**2) * x[:, t, half:]
    return x


def timed(func):
    t0 = time.perf_counter()
    out = func()
    return time.perf_counter() - t0, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", type=int, default=15_000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=1000)
    args = parser.parse_args()

    import arviz as az

    from skhier._parallel import thread_limit
    from skhier.diagnostics import convergence_stats

    x = make_draws(args.params, args.chains, args.draws)
    idata = az.from_dict(posterior={"theta": x})
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{args.params:,} parameters x {args.chains} chains x {args.draws:,} draws\n")

    import skhier.diagnostics.stats as stats

    # imports and first-call costs (loading the compiled kernel) out of the timing
    convergence_stats(x[:, :, :10])
    convergence_stats(make_draws(stats._COMPILED_MIN_PARAMS, args.chains, args.draws))
    t_all, mine = timed(lambda: convergence_stats(x))
    with thread_limit(1):
        t_one, _ = timed(lambda: convergence_stats(x))
    compiled_from = stats._COMPILED_MIN_PARAMS
    stats._COMPILED_MIN_PARAMS = 2**62  # the NumPy path, for comparison
    try:
        t_np_all, mine_np = timed(lambda: convergence_stats(x))
        with thread_limit(1):
            t_np_one, _ = timed(lambda: convergence_stats(x))
    finally:
        stats._COMPILED_MIN_PARAMS = compiled_from

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_summary, summary = timed(lambda: az.summary(idata, kind="diagnostics", round_to="none"))
        t_parts, ref = timed(
            lambda: {
                "r_hat": az.rhat(idata)["theta"].values,
                "ess_bulk": az.ess(idata, method="bulk")["theta"].values,
                "ess_tail": az.ess(idata, method="tail")["theta"].values,
                "mcse_mean": az.mcse(idata)["theta"].values,
            }
        )
    diff = max(
        float(np.max(np.abs(out[k] - ref[k]) / np.abs(ref[k])))
        for out in (mine, mine_np)
        for k in ref
    )
    rows = [
        ("ArviZ az.summary(kind='diagnostics')", t_summary),
        ("ArviZ rhat + ess bulk + ess tail + mcse", t_parts),
        ("skhier convergence_stats, every core", t_all),
        ("skhier convergence_stats, 1 thread", t_one),
        ("skhier NumPy path, every core", t_np_all),
        ("skhier NumPy path, 1 thread", t_np_one),
    ]
    width = max(len(r[0]) for r in rows)
    for name, t in rows:
        print(f"{name:<{width}}  {t:8.2f} s  {t_summary / t:6.1f}x vs az.summary")
    print(f"\nlargest relative difference to ArviZ: {diff:.1e}")
    del summary


if __name__ == "__main__":
    main()
