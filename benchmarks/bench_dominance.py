"""Benchmark: exact dominance matrix P(beta_i > beta_j): skhier against a C reference and numpy.

Usage::

    python benchmarks/bench_dominance.py                 # N=13,000 groups x 4 chains x 1,000 draws
    python benchmarks/bench_dominance.py --n 2000        # a smaller case
    python benchmarks/bench_dominance.py --quick         # numpy on a sample of rows, extrapolated
    python benchmarks/bench_dominance.py --methods ref,skhier-kernel --repeat 5

Every method runs in its own subprocess (fresh interpreter, same seeded input), so its peak RSS
(``VmHWM``, reset through ``/proc/self/clear_refs`` just before the call when the kernel allows
it) is its own. The methods run in ``--repeat`` interleaved rounds (every method once per round,
numpy in the first round only) and the table keeps each method's best round, so a burst of load
from other jobs on this shared machine hits all of them alike. The CPU (model, AVX2/AVX-512BW,
cores, L2) and the load average of every round are printed; a round whose load exceeds the
number of cores is marked, and so is the table if every round was loaded. Besides the wall
time, the table gives G comparisons per CPU-second of the process's threads, which a loaded
machine disturbs much less.

Kernel comparison
-----------------
``ref`` is ``benchmarks/dominance_ref.c``, compiled here at run time (``gcc -O3 -march=native``)
into a shared library loaded with ctypes: intrinsics, 4x4 register blocks of 512-bit masked adds
with AVX-512BW, 2x4 blocks of 256-bit compares/subtractions with AVX2 only, pthreads over tiles on
every core. ``ref-avx2`` is the same source built with ``-mno-avx512f`` (the AVX2 path, 16
registers). Both are skipped, with a message, without gcc or AVX2. The kernel methods all count
the same thing on the same input: the int16 per-draw scores of skhier's ``rank_draws`` (rows of
64-byte lines, as skhier lays them out), every pair once, exact uint16 counts of the square
matrix, no block skipping (skhier's end-to-end call skips blocks of groups whose draws never
cross; the reference does not, so the kernels are compared without it). The parent checks that
the reference's counts equal skhier's on small cases (with and without ties) and compares a hash
of every kernel's full-size output.

Methods
-------
ref                 C reference kernel, ``-march=native`` (AVX-512BW here, else AVX2).
skhier-kernel       skhier's dominance kernel chosen for this CPU (``DOMINANCE_KERNEL``), same
                    input and output as ``ref``.
ref-avx2            C reference, AVX2 path (``-mno-avx512f``).
skhier-kernel-avx2  skhier's ``avx2`` kernel (2x4 blocks, 256-bit, compiled without AVX-512).
skhier              ``skhier.dominance(draws)``: float32, rows/columns by expected rank.
skhier-counts       ``counts=True``: exact uint16 counts, input order.
skhier-top100       ``top_k=100``: the rows of the 100 best groups against all columns.
numpy               the best chunked numpy version found (see ``numpy_dominance``): 16-row blocks
                    of the upper triangle, 64-draw blocks summed in uint8, two threads; writes the
                    same float32 matrix. With ``--quick`` it runs ``--numpy-rows`` row blocks
                    spread over the triangle and the time is extrapolated by the number of
                    comparisons (stated in the output).
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from _machine import build_c, cpu_info, load

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dominance_ref.c")
REF_BUILDS = {"ref": [], "ref-avx2": ["-mno-avx512f"]}
KERNEL_METHODS = {"ref", "ref-avx2", "skhier-kernel", "skhier-kernel-avx2"}
DEFAULT_METHODS = (
    "ref,skhier-kernel,ref-avx2,skhier-kernel-avx2,skhier,skhier-counts,skhier-top100,numpy"
)


# --------------------------------------------------------------------------------------------
# the C reference
# --------------------------------------------------------------------------------------------
def build_ref(flags, out_dir):
    """Compile ``dominance_ref.c`` with ``flags``; return ``(path, None)`` or ``(None, why)``."""
    tag = "native" if not flags else "avx2"
    return build_c(REF_SOURCE, os.path.join(out_dir, f"dominance_ref_{tag}.so"), flags)


def load_ref(path):
    lib = ctypes.CDLL(path)
    lib.domref_counts.argtypes = [
        ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
        ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int64,
    ]  # fmt: skip
    lib.domref_counts.restype = ctypes.c_int
    for name in ("domref_isa", "domref_mr", "domref_nr"):
        getattr(lib, name).restype = ctypes.c_int
    return lib


def ref_label(lib):
    isa = "AVX-512BW" if lib.domref_isa() == 512 else "AVX2"
    return f"{isa}, {lib.domref_mr()}x{lib.domref_nr()} blocks"


def ref_counts(lib, R, n, s_real, has_ties, out, threads, tile):
    """The reference's square uint16 counts of ``R[0]`` (``(n + 1, sd)`` int16) into ``out``."""
    Rs = R[0]
    sd = Rs.shape[1]
    rc = lib.domref_counts(
        Rs.ctypes.data, sd, n, sd, s_real, int(has_ties), out.ctypes.data, threads, tile
    )
    if rc:
        raise RuntimeError("the reference kernel could not start its threads")


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


def kernel_scores(x2):
    """skhier's int16 per-draw scores of ``x2`` (S, N) laid out as its kernel reads them.

    ``(1, N + 1, sd)``: one chunk of ``sd`` draws (``S`` rounded up to 64 bytes, zero padding),
    row ``N`` all zero, 64-byte aligned; and whether any draw has ties.
    """
    from skhier.ranking import _kernels as K
    from skhier.ranking.pairwise import _aligned_empty

    S, N = x2.shape
    sd = -(-S // 32) * 32
    R = _aligned_empty((1, N + 1, sd), np.int16)
    R[0, :, S:] = 0
    R[0, N] = 0
    _, ties, _ = K.rank_draws(np.ascontiguousarray(x2), False, R, 0)
    return R, bool(ties.any())


def skhier_counts(R, n, s_real, has_ties, out, kernel, tile):
    """skhier's kernel: the same square uint16 counts as ``ref_counts``, no block skipping."""
    from skhier.ranking import _kernels as K
    from skhier.ranking.pairwise import _pad4, _tile_tasks

    cols = _pad4(np.arange(n), n)
    tasks = _tile_tasks(n, n, tile, upper=True)
    vmin = np.zeros(n + 1, np.int64)  # bounds that always meet: every block is compared
    vmax = np.full(n + 1, n, np.int64)
    K.dominance_tiles(
        R, cols, cols, n, n, tasks, tile, 0, has_ties, out.reshape(-1), 1, False, s_real, s_real,
        vmin, vmax, kernel=kernel,
    )  # fmt: skip


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


def timed(info, call):
    """Run ``call()`` with the peak RSS reset; record wall and CPU time, peak and added RSS."""
    rss0 = status("VmRSS")
    info["peak_reset"] = reset_peak()
    t0 = time.perf_counter()
    c0 = time.process_time()
    result = call()
    info["time"] = time.perf_counter() - t0
    info["cpu"] = time.process_time() - c0
    info["peak"] = status("VmHWM")
    info["extra"] = info["peak"] - rss0
    return result


def worker_kernel(args, info):
    method = args.worker
    S, N = args.chains * args.draws, args.n
    x = make_draws(N, args.chains, args.draws)
    R, has_ties = kernel_scores(x.reshape(S, N))
    del x
    from skhier.ranking import _kernels as K

    threads = len(os.sched_getaffinity(0))
    tile = args.tile or K.dominance_tile(R.shape[2] * R.itemsize)
    info.update(tile=tile, threads=threads)
    small = np.zeros((40, 40), np.uint16)
    if method.startswith("ref"):
        lib = load_ref(args.ref_lib)
        info["label"] = ref_label(lib)

        def call(out, n=N):
            ref_counts(lib, R, n, S, has_ties, out, threads, tile)

    else:
        kernel = "avx2" if method.endswith("avx2") else K.DOMINANCE_KERNEL
        info["label"] = f"{kernel}: {K.DOMINANCE_KERNELS[kernel].split(' (')[0]}"

        def call(out, n=N):
            skhier_counts(R, n, S, has_ties, out, kernel, tile)

    call(small, n=40)  # compile, or load from numba's cache, before timing
    out = np.empty((N, N), np.uint16)
    out.fill(0)  # touch the pages before timing: both kernels write into mapped memory
    timed(info, lambda: call(out))
    info["hash"] = hashlib.blake2b(out.data, digest_size=8).hexdigest()
    info["shape"] = [N, N]
    info["dtype"] = "uint16"


def worker(args):
    method = args.worker
    info = {"method": method}
    S, N = args.chains * args.draws, args.n
    import pandas  # noqa: F401  (the skhier methods return DataFrames; count it in the base)

    if method in KERNEL_METHODS:
        worker_kernel(args, info)
    elif method.startswith("skhier"):
        import skhier
        from skhier.ranking import _kernels

        x = make_draws(N, args.chains, args.draws)
        info["label"] = f"{_kernels.DOMINANCE_KERNEL} kernel"
        small = x[:, :64, :300]
        skhier.dominance(small)  # compile or load the cached kernels before timing
        skhier.dominance(small, counts=True, order=None)
        skhier.dominance(small, top_k=10)
        kwargs = {
            "skhier": {},
            "skhier-counts": {"counts": True, "order": None},
            "skhier-top100": {"top_k": 100},
        }[method]
        result = timed(info, lambda: skhier.dominance(x, **kwargs))
        info["shape"] = list(result.shape)
        info["dtype"] = str(result.to_numpy().dtype)
        del result
    else:  # numpy
        x = make_draws(N, args.chains, args.draws)
        x2 = x.reshape(S, N)
        blocks = numpy_blocks(N)
        total = sum((i1 - i0) * (N - i0) for i0, i1 in blocks)
        if args.quick:
            pick = np.unique(np.linspace(0, len(blocks) - 1, args.numpy_rows).round().astype(int))
            blocks = [blocks[i] for i in pick]
        done = sum((i1 - i0) * (N - i0) for i0, i1 in blocks)

        def call():
            out = None if args.quick else np.empty((N, N), dtype=np.float32)
            numpy_dominance(x2, blocks, n_threads=args.threads, out=out)

        timed(info, call)
        info["measured_time"] = info["time"]
        info["time"] *= total / done
        info["cpu"] *= total / done
        info["fraction"] = done / total
    print("RESULT " + json.dumps(info))


# --------------------------------------------------------------------------------------------
# parent
# --------------------------------------------------------------------------------------------
def check_small(n=400, chains=2, draws=150):
    """Exactness check in the parent: skhier equals the numpy baseline (no ties here)."""
    import skhier

    x = make_draws(n, chains, draws, seed=1)
    ref = numpy_dominance(x.reshape(-1, n), numpy_blocks(n), out=np.empty((n, n), np.float64))
    got = skhier.dominance(x, order=None, dtype=np.float64).to_numpy()
    return float(np.abs(got - ref).max())


def check_ref(libs):
    """Every reference build and every skhier kernel give the brute-force counts on small cases.

    Returns a list of failure descriptions (empty when everything agrees).
    """
    from skhier.ranking import _kernels as K

    failures = []
    rng = np.random.default_rng(2)
    for S, N, decimals in [(257, 130, None), (83, 301, 1), (1000, 67, None), (33, 29, 0)]:
        x = rng.normal(np.linspace(-1.0, 1.0, N), 1.0, size=(S, N))
        if decimals is not None:  # ties
            x = np.round(x, decimals)
        R, has_ties = kernel_scores(x)
        expected = (x[:, :, None] > x[:, None, :]).sum(axis=0).astype(np.uint16)
        np.fill_diagonal(expected, 0)
        runs = [(f"skhier {k}", None, k) for k in K.DOMINANCE_KERNELS]
        runs += [(name, lib, None) for name, lib in libs.items()]
        for name, lib, kernel in runs:
            out = np.zeros((N, N), np.uint16)
            if lib is None:
                skhier_counts(R, N, S, has_ties, out, kernel, 24)
            else:
                ref_counts(lib, R, N, S, has_ties, out, 2, 24)
            if not np.array_equal(out, expected):
                failures.append(f"{name} on S={S}, N={N}, ties={has_ties}")
    return failures


def run_method(method, args, lib_paths):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", method]
    for key in ("n", "chains", "draws", "numpy_rows", "threads", "tile"):
        cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    if args.quick:
        cmd.append("--quick")
    if method in lib_paths:
        cmd += ["--ref-lib", lib_paths[method]]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("SKHIER_DOMINANCE_KERNEL", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not line:
        print(f"{method}: failed\n{proc.stderr[-2000:]}")
        return None
    return json.loads(line[0][7:])


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
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds (best kept)")
    parser.add_argument(
        "--tile", type=int, default=0, help="kernel methods: tile edge (0: skhier's rule)"
    )
    parser.add_argument("--methods", default=DEFAULT_METHODS, help="comma-separated methods")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--ref-lib", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    S = args.chains * args.draws
    gb = 1e9
    n_cmp = args.n * (args.n - 1) / 2 * S
    model, isa, cores = cpu_info()
    from skhier.ranking import _kernels as K

    print(
        f"dominance benchmark: N={args.n:,} groups x S={S:,} draws ({args.chains} chains), "
        f"float64 input {args.n * S * 8 / gb:.3f} GB, {n_cmp / 1e9:.0f} G pair comparisons"
    )
    print(
        f"CPU: {model}; {' '.join(isa) or 'no AVX2'}; {cores} cores; L2 "
        f"{K._l2_bytes() >> 10} KiB; skhier's dominance kernel here: {K.DOMINANCE_KERNEL} "
        f"({K.DOMINANCE_KERNELS[K.DOMINANCE_KERNEL]})"
    )
    methods = args.methods.split(",")
    lib_paths, libs = {}, {}
    build_dir = tempfile.mkdtemp(prefix="skhier-domref-")
    try:
        for name, flags in REF_BUILDS.items():
            if name not in methods:
                continue
            path, why = build_ref(flags, build_dir)
            if path is None:
                print(f"{name}: skipped ({why})")
                methods.remove(name)
                continue
            lib_paths[name] = path
            libs[name] = load_ref(path)
            flags = " ".join(["-O3", "-march=native", *flags])
            print(f"{name}: built with gcc {flags} ({ref_label(libs[name])})")
        failures = check_ref(libs)
        print(
            "exact counts on small cases (with and without ties), every reference build and "
            f"every skhier kernel: {'FAILED: ' + '; '.join(failures) if failures else 'equal'}"
        )
        print(f"max |skhier - numpy| on a 400 x 300 check: {check_small():.1e}")
        rounds, loads = [], []
        load0 = load()
        for rnd in range(args.repeat):
            loads.append(load())
            print(f"round {rnd + 1}/{args.repeat} (load {loads[-1]:.2f})", flush=True)
            rounds.append({})
            for method in methods:
                if method == "numpy" and rnd > 0:
                    continue
                r = run_method(method, args, lib_paths)
                if r is None:
                    continue
                print(f"  ... {method} {r['time']:.2f} s ({r['cpu']:.2f} s CPU)", flush=True)
                rounds[-1][method] = r
        load1 = load()
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    report(rounds, args, n_cmp, cores, loads, load0, load1)


def report(rounds, args, n_cmp, cores, loads, load0, load1):
    """Print the tables: each method's best round, and the kernels' paired ratios."""
    gb = 1e9
    results = {}  # the best round of each method, with its least CPU time over the rounds
    for rnd in rounds:
        for m, r in rnd.items():
            if m not in results or r["time"] < results[m]["time"]:
                results[m] = dict(r, cpu_best=results.get(m, r).get("cpu_best", r["cpu"]))
            results[m]["cpu_best"] = min(results[m]["cpu_best"], r["cpu"])
    kernels = [m for m in results if m in KERNEL_METHODS]
    if kernels:
        some = results[kernels[0]]
        print(
            f"\nKernels: the same int16 scores, exact uint16 counts of every pair, no block "
            f"skipping, {some['threads']} threads, tiles of {some['tile']} groups "
            f"(best of {len(rounds)} rounds)"
        )
        header = (
            f"{'method':<19} {'time [s]':>9} {'G cmp/s':>8} {'G cmp/CPU-s':>12} "
            f"{'peak RSS [GB]':>14} {'time / ref':>11} {'CPU / ref':>10} {'paired':>7}  kernel"
        )
        print(header)
        print("-" * (len(header) + 30))
        for m in kernels:
            r = results[m]
            rm = "ref-avx2" if m.endswith("avx2") else "ref"
            ref = results.get(rm)
            ratio = cpu_ratio = paired = "-"
            if ref and m != rm:
                ratio = f"{r['time'] / ref['time']:.2f}x"
                cpu_ratio = f"{r['cpu_best'] / ref['cpu_best']:.2f}x"
                pairs = [x[m]["time"] / x[rm]["time"] for x in rounds if m in x and rm in x]
                paired = f"{float(np.median(pairs)):.2f}x"
            elif m == rm:
                ratio = cpu_ratio = paired = "1"
            print(
                f"{m:<19} {r['time']:>9.2f} {n_cmp / r['time'] / 1e9:>8.1f} "
                f"{n_cmp / r['cpu_best'] / 1e9:>12.1f} {r['peak'] / gb:>14.3f} {ratio:>11} "
                f"{cpu_ratio:>10} {paired:>7}  {r['label']}"
            )
        print(
            "time / ref: best wall times; CPU / ref: least CPU times of the process's threads; "
            "paired: median over the rounds of the time ratio of two runs made one after the "
            "other"
        )
        hashes = {results[m]["hash"] for m in kernels}
        print(
            "full-size outputs: "
            + ("identical (same hash)" if len(hashes) == 1 else f"DIFFER: {hashes}")
        )
    others = [m for m in results if m not in KERNEL_METHODS]
    if others:
        base = results.get("numpy", {}).get("time")
        print("\nEnd to end (skhier ranks the draws, skips blocks that never cross, converts)")
        header = (
            f"{'method':<15} {'time [s]':>9} {'peak RSS [GB]':>14} {'added [GB]':>11} "
            f"{'vs numpy':>9}"
        )
        print(header)
        print("-" * len(header))
        for method in others:
            r = results[method]
            ratio = f"{base / r['time']:.1f}x" if base else "-"
            note = ""
            if method == "numpy" and args.quick:
                note = (
                    f"  (extrapolated from {r['fraction']:.1%} of the comparisons, "
                    f"measured {r['measured_time']:.2f} s)"
                )
            elif "shape" in r:
                note = f"  ({r['dtype']} {tuple(r['shape'])}, {r['label']})"
            if not r.get("peak_reset", True):
                note += " (peak not reset: includes data generation)"
            print(
                f"{method:<15} {r['time']:>9.2f} {r['peak'] / gb:>14.3f} {r['extra'] / gb:>11.3f}"
                f" {ratio:>9}{note}"
            )
    busy = [x for x in loads if x > cores]
    print(
        f"\nload average (1 min) before/after: {load0:.2f} / {load1:.2f}; at each round: "
        + ", ".join(f"{x:.2f}" for x in loads)
        + f" on {cores} cores"
    )
    if busy:
        print(
            f"warning: {len(busy)} of {len(loads)} rounds started with a load above {cores}: "
            "other jobs took CPU time, so the wall times (and G cmp/s) are low and noisy; "
            "the ratios of interleaved best rounds and the G cmp/CPU-s are the steadier figures"
        )


if __name__ == "__main__":
    main()
