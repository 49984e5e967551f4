"""Benchmark: exact dominance matrix P(beta_i > beta_j), skhier's kernel vs the best chunked numpy.

Usage::

    python benchmarks/bench_dominance.py                 # N=13,000 groups x 4 chains x 1,000 draws
    python benchmarks/bench_dominance.py --n 2000        # a smaller case
    python benchmarks/bench_dominance.py --quick         # numpy on a sample of rows, extrapolated

Every method runs in its own subprocess (fresh interpreter, same seeded input), so its peak RSS
(``VmHWM``, reset through ``/proc/self/clear_refs`` just before the call when the kernel allows
it) is its own. The table reports wall time, peak RSS of the process (input and interpreter
included), the RSS added by the call, and the speed-up over numpy measured in the same run. The
machine is shared: the load average before and after is printed, and ``--repeat`` keeps the best
of several calls.

Methods
-------
numpy           the best chunked numpy version found (see ``numpy_dominance``): 16-row blocks of
                the upper triangle, 64-draw blocks summed in uint8, two threads; writes the same
                float32 matrix. With ``--quick`` it runs ``--numpy-rows`` row blocks spread over
                the triangle and the time is extrapolated by the number of comparisons (stated in
                the output).
skhier          ``skhier.dominance(draws)``: float32, rows/columns by expected rank.
skhier-counts   ``counts=True``: exact uint16 counts, input order.
skhier-top100   ``top_k=100``: the rows of the 100 best groups against all columns.
skhier-native   as ``skhier`` but compiled with numba's default (512-bit) vector width, to show
                the AVX-512 trap (``SKHIER_NUMBA_VECTOR_WIDTH=native``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------------------------
# helpers (worker side)
# --------------------------------------------------------------------------------------------
def status(field):
    with open("/proc/self/status") as fh:
        return int(re.search(rf"{field}:\s+(\d+)", fh.read()).group(1)) * 1024


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def make_draws(n, chains, draws, seed=0):
    """Posterior-like draws: spread-out group effects plus noise, generated in place (float64)."""
    rng = np.random.default_rng(seed)
    x = np.empty((chains, draws, n))
    rng.standard_normal(out=x)
    x *= rng.uniform(0.2, 1.0, size=n)
    x += np.linspace(-2.0, 2.0, n)
    return x


def numpy_blocks(n, block=16):
    """Row blocks ``(i0, i1)`` of the upper triangle and their cost (compared pairs per draw)."""
    starts = np.arange(0, n, block)
    return [(int(i0), int(min(i0 + block, n))) for i0 in starts]


def numpy_dominance(x2, blocks, n_threads=2, out=None, draw_block=64):
    """Best chunked numpy found here (an earlier search measured 61 s for its best).

    A block of 16 rows against the columns from its first row on (the upper triangle), 64 draws
    at a time: ``(64, 16, N - i0)`` booleans summed over draws in uint8 (exact up to 255), then
    accumulated in int32; blocks shared by ``n_threads`` threads (numpy releases the GIL). On
    this machine the best of the variants tried (rows one at a time, 255-draw blocks, transposed
    layout) at about 4.4 G comparisons/s per thread.
    """
    S, N = x2.shape
    inv = 1.0 / S

    def one_block(i0, i1):
        counts = np.zeros((i1 - i0, N - i0), dtype=np.int32)
        for s0 in range(0, S, draw_block):
            s1 = min(S, s0 + draw_block)
            cmp = x2[s0:s1, i0:i1, None] > x2[s0:s1, None, i0:]
            counts += cmp.sum(axis=0, dtype=np.uint8)
        if out is not None:
            for r in range(i1 - i0):
                i = i0 + r
                d = counts[r, r + 1 :] * inv
                out[i, i + 1 :] = d
                out[i + 1 :, i] = 1.0 - d

    def run(part):
        for i0, i1 in part:
            one_block(i0, i1)

    parts = [blocks[t::n_threads] for t in range(n_threads)]
    with ThreadPoolExecutor(n_threads) as pool:
        list(pool.map(run, parts))
    if out is not None:
        np.fill_diagonal(out, 0.5)
    return out


def worker(args):
    method = args.worker
    x = make_draws(args.n, args.chains, args.draws)
    S, N = args.chains * args.draws, args.n
    import pandas  # noqa: F401  (the skhier methods return DataFrames; count it in the base)

    info = {"method": method}
    if method.startswith("skhier"):
        import skhier
        from skhier.ranking import _kernels

        info["vector_width"] = _kernels.VECTOR_WIDTH
        small = x[:, :64, :300]
        skhier.dominance(small)  # compile or load the cached kernels before timing
        skhier.dominance(small, counts=True, order=None)
        skhier.dominance(small, top_k=10)
        kwargs = {
            "skhier": {},
            "skhier-native": {},
            "skhier-counts": {"counts": True, "order": None},
            "skhier-top100": {"top_k": 100},
        }[method]
        best = np.inf
        for _ in range(args.repeat):
            result = None
            rss0 = status("VmRSS")
            info["peak_reset"] = reset_peak()
            t0 = time.perf_counter()
            result = skhier.dominance(x, **kwargs)
            best = min(best, time.perf_counter() - t0)
            info["peak"] = status("VmHWM")
            info["extra"] = info["peak"] - rss0
            info["shape"] = list(result.shape)
            info["dtype"] = str(result.to_numpy().dtype)
            del result
        info["time"] = best
    else:  # numpy
        x2 = x.reshape(S, N)
        blocks = numpy_blocks(N)
        total = sum((i1 - i0) * (N - i0) for i0, i1 in blocks)
        if args.quick:
            pick = np.unique(np.linspace(0, len(blocks) - 1, args.numpy_rows).round().astype(int))
            blocks = [blocks[i] for i in pick]
        done = sum((i1 - i0) * (N - i0) for i0, i1 in blocks)
        rss0 = status("VmRSS")
        info["peak_reset"] = reset_peak()
        t0 = time.perf_counter()
        out = None if args.quick else np.empty((N, N), dtype=np.float32)
        numpy_dominance(x2, blocks, n_threads=args.threads, out=out)
        elapsed = time.perf_counter() - t0
        info["peak"] = status("VmHWM")
        info["extra"] = info["peak"] - rss0
        info["time"] = elapsed * total / done
        info["measured_time"] = elapsed
        info["fraction"] = done / total
    print("RESULT " + json.dumps(info))


def check_small(n=400, chains=2, draws=150):
    """Exactness check in the parent: skhier equals the numpy baseline (no ties here)."""
    import skhier

    x = make_draws(n, chains, draws, seed=1)
    ref = numpy_dominance(x.reshape(-1, n), numpy_blocks(n), out=np.empty((n, n), np.float64))
    got = skhier.dominance(x, order=None, dtype=np.float64).to_numpy()
    return float(np.abs(got - ref).max())


def load():
    return os.getloadavg()[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=13_000, help="number of groups")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=1000, help="draws per chain")
    parser.add_argument("--quick", action="store_true", help="numpy on a sample of rows")
    parser.add_argument(
        "--numpy-rows", type=int, default=24, help="--quick: number of 16-row blocks timed"
    )
    parser.add_argument("--threads", type=int, default=2, help="numpy threads")
    parser.add_argument("--repeat", type=int, default=1, help="best of this many calls")
    parser.add_argument(
        "--methods",
        default="numpy,skhier,skhier-counts,skhier-top100,skhier-native",
        help="comma-separated subset of the methods",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    S = args.chains * args.draws
    gb = 1e9
    print(
        f"dominance benchmark: N={args.n:,} groups x S={S:,} draws ({args.chains} chains), "
        f"float64 input {args.n * S * 8 / gb:.3f} GB, "
        f"{args.n * (args.n - 1) / 2 * S / 1e9:.0f} G pair comparisons"
    )
    print(f"max |skhier - numpy| on a 400 x 300 check: {check_small():.1e}")
    load0 = load()
    results = {}
    for method in args.methods.split(","):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", method]
        for key in ("n", "chains", "draws", "numpy_rows", "threads", "repeat"):
            cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
        if args.quick:
            cmd.append("--quick")
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env["SKHIER_NUMBA_VECTOR_WIDTH"] = "native" if method == "skhier-native" else "256"
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not line:
            print(f"{method}: failed\n{proc.stderr[-2000:]}")
            continue
        results[method] = json.loads(line[0][7:])
        print(f"  ... {method} done in {results[method]['time']:.2f} s", flush=True)
    base = results.get("numpy", {}).get("time")
    print()
    header = (
        f"{'method':<15} {'time [s]':>9} {'peak RSS [GB]':>14} {'added [GB]':>11} {'vs numpy':>9}"
    )
    print(header)
    print("-" * len(header))
    for method, r in results.items():
        ratio = f"{base / r['time']:.1f}x" if base else "-"
        note = ""
        if method == "numpy" and args.quick:
            note = (
                f"  (extrapolated from {r['fraction']:.1%} of the comparisons, "
                f"measured {r['measured_time']:.2f} s)"
            )
        elif "vector_width" in r:
            width = "256-bit" if r["vector_width"] == "256" else "numba-default 512-bit"
            note = f"  ({r['dtype']} {tuple(r['shape'])}, {width} code)"
        if not r.get("peak_reset", True):
            note += " (peak not reset: includes data generation)"
        print(
            f"{method:<15} {r['time']:>9.2f} {r['peak'] / gb:>14.3f} {r['extra'] / gb:>11.3f} "
            f"{ratio:>9}{note}"
        )
    print(
        f"\nload average (1 min) before/after: {load0:.2f} / {load():.2f} on {os.cpu_count()} CPUs"
    )
    if "skhier" in results and "skhier-native" in results:
        print(
            "256-bit over native (512-bit) code: "
            f"{results['skhier-native']['time'] / results['skhier']['time']:.2f}x faster"
        )


if __name__ == "__main__":
    main()
