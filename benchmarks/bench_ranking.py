"""Benchmark: ranking outputs (rank table, per-draw ranks, rank probabilities, top-k dominance).

Usage::

    python benchmarks/bench_ranking.py              # N=2,000 groups x 4 chains x 1,000 draws
    python benchmarks/bench_ranking.py --n 13000    # the sgRNA level

Each output is timed with the compiled backend (``backend="numba"``, kernels loaded from the cache
or compiled before timing) and with the numpy reference backend of the same function, in the same
run, on the same input; the table shows both and the ratio. Times are the best of ``--repeat``
calls (the machine is shared; the load average is printed). The target is a rank table at
N = 2,000 in well under a second.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from skhier import ranking as rk


def make_draws(n, chains, draws, seed=0):
    rng = np.random.default_rng(seed)
    x = np.empty((chains, draws, n))
    rng.standard_normal(out=x)
    x *= rng.uniform(0.2, 1.0, size=n)
    x += np.linspace(-2.0, 2.0, n)
    return x


def best_time(func, repeat):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--top-k", type=int, default=100)
    args = parser.parse_args()
    x = make_draws(args.n, args.chains, args.draws)
    S = args.chains * args.draws
    labels = [f"g{i}" for i in range(args.n)]
    ref = x.mean(axis=-1)  # a per-draw reference, like the population slope

    cases = {
        "rank_table": lambda e: rk.rank_table(
            x, labels, top_k=args.top_k, reference=ref, backend=e
        ),
        "draw_ranks": lambda e: rk.draw_ranks(x, backend=e),
        "rank_probabilities": lambda e: rk.rank_probabilities(x, backend=e),
        f"dominance top_k={args.top_k}": lambda e: rk.dominance(x, top_k=args.top_k, backend=e),
    }
    small = x[:, :40, :50]
    rk.rank_table(small, backend="numba")  # load or compile the kernels before timing
    rk.rank_probabilities(small, backend="numba")
    rk.dominance(small, top_k=5, backend="numba")

    print(f"ranking benchmark: N={args.n:,} groups x S={S:,} draws ({args.chains} chains)")
    load0 = os.getloadavg()[0]
    rows = []
    for name, case in cases.items():
        if name == "rank_probabilities" and args.n > 5000:
            continue  # an N x N float64 matrix: not meant for the sgRNA level
        fast = best_time(lambda c=case: c("numba"), args.repeat)
        base = best_time(lambda c=case: c("numpy"), 1 if args.n > 5000 else args.repeat)
        rows.append((name, fast, base))
        print(f"  ... {name}: {fast:.3f} s", flush=True)
    a = rk.rank_table(x, labels, top_k=args.top_k, reference=ref, backend="numba")
    b = rk.rank_table(x, labels, top_k=args.top_k, reference=ref, backend="numpy")
    diff = float(np.nanmax(np.abs(a.to_numpy(float) - b.to_numpy(float))))
    print()
    header = f"{'output':<24} {'skhier [s]':>11} {'numpy backend [s]':>17} {'speed-up':>9}"
    print(header)
    print("-" * len(header))
    for name, fast, base in rows:
        print(f"{name:<24} {fast:>11.3f} {base:>17.3f} {base / fast:>8.1f}x")
    print(f"\nmax |numba - numpy| over the rank table: {diff:.1e}")
    print(f"load average (1 min) before/after: {load0:.2f} / {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
