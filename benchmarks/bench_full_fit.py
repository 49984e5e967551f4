"""Benchmark: the full design fit, and its two hot loops against their floors.

Usage::

    python benchmarks/bench_full_fit.py            # 2,000 genes x 7 sgRNAs x 50 samples
    python benchmarks/bench_full_fit.py --genes 200 --chains 2

Three parts, each in its own subprocess (fresh interpreter, warm disk caches), on the
simulator's screen ``Ht ~ 0 + H0:(1|gene/sgRNA)`` (700,000 rows at full size):

``fit``
    ``HierarchicalRanker(...).fit(df)`` with 4 chains x 1,000 draws (1,000 warm-up), wall time
    of everything ``fit`` does (checks, design, sampling the scales, the coefficient draws, the
    diagnostics of every parameter, the rank table), split at the library's stage records;
    the verdict's R-hat, ESS and divergences; peak RSS.
``gradient``
    The collapsed engine's log density and gradient (one call on the fit's cell statistics)
    against ``benchmarks/gradient_ref.c``, a plain C loop over the cells doing the same
    arithmetic (compiled here with ``gcc -O3 -march=native``; its value and gradient are
    checked against the kernel's). Then nutpie samples the kernel as ``fit`` does (through its C
    entry point) and through a Python call per gradient; the per-gradient cost inside the
    sampler is the sampling wall time x the threads that sample at once / the number of
    gradients (leapfrog steps, warm-up included).
``draws``
    The exact coefficient draws of ``fit`` (every gene and sgRNA coefficient and the common
    slope for each of the 4,000 draws of the scales) against drawing the same number of
    standard normals with NumPy into a new array on the same number of threads.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
from _machine import build_c, load, machine_line

HERE = os.path.dirname(os.path.abspath(__file__))
FORMULA = "Ht ~ 0 + H0:(1|gene/sgRNA)"


def screen(genes, per_gene, samples):
    """The simulated screen: ``genes`` x ``per_gene`` sgRNAs x ``samples`` rows each."""
    import pandas as pd

    from skhier import ScreenSimulator

    sg = [f"G{g:04d}_sg{k}" for g in range(genes) for k in range(per_gene)]
    design = pd.DataFrame(
        {
            "gene": np.repeat([f"G{g:04d}" for g in range(genes)], per_gene * samples),
            "sgRNA": np.repeat(sg, samples),
            "sample": np.tile([f"S{i:02d}" for i in range(samples)], len(sg)),
        }
    )
    return ScreenSimulator(random_state=0).fit_transform(design)


def ranker(chains):
    from skhier import HierarchicalRanker

    return HierarchicalRanker(
        formula=FORMULA, chains=chains, draws=1000, tune=1000, random_state=1, on_fail="ignore"
    )


class Stages:
    """A logging handler that timestamps the library's stage records."""

    def __init__(self):
        import logging

        from skhier._progress import STAGE_ATTR

        self.marks = []

        class Handler(logging.Handler):
            def emit(handler, record):  # noqa: N805
                name = getattr(record, STAGE_ATTR, None)
                if name is not None:
                    self.marks.append((name, time.perf_counter()))

        log = logging.getLogger("skhier")
        log.addHandler(Handler())
        log.setLevel(logging.INFO)

    def split(self, t0, t1):
        marks = [("checks, design", t0), *self.marks, ("end", t1)]
        out = {}
        for (name, a), (_, b) in zip(marks, marks[1:], strict=False):
            out[name] = out.get(name, 0.0) + b - a
        return out


def part_fit(args):
    df = screen(args.genes, args.per_gene, args.samples)
    stages = Stages()
    r = ranker(args.chains)
    t0 = time.perf_counter()
    r.fit(df)
    t1 = time.perf_counter()
    d = r.diagnostics_
    checks = dict(zip(d.checks["check"], d.checks["value"], strict=True))
    return {
        "rows": len(df),
        "wall": t1 - t0,
        "stages": stages.split(t0, t1),
        "rhat": checks.get("r_hat"),
        "ess_bulk": checks.get("ess_bulk"),
        "ess_tail": checks.get("ess_tail"),
        "divergences": checks.get("divergences"),
        "passed": bool(d.passed),
        "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }


def collapsed_inputs(args):
    from skhier.engine.collapsed import build_tree
    from skhier.engine.compiled import compiled_inputs
    from skhier.plan import make_plan

    df = screen(args.genes, args.per_gene, args.samples)
    plan = make_plan({"formula": FORMULA}, df)
    tree = build_tree(plan)
    return tree, compiled_inputs(plan, tree)


def best_per_call(call, n, repeat=5):
    call()
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(n):
            call()
        best = min(best, (time.perf_counter() - t) / n)
    return best


def part_gradient(args):
    import nutpie

    from skhier.engine import _tree_numba, compiled

    tree, inputs = collapsed_inputs(args)
    a = inputs.args
    assert inputs.names == ["sigma", "H0|gene_sigma", "H0|gene:sgRNA_sigma"], inputs.names
    kernel = _tree_numba.density_kernel(a)
    u = np.log(inputs.init) + np.array([0.1, -0.2, 0.3])
    theta = np.exp(u)
    ww = np.ascontiguousarray(a[5][:, 0, 0])
    wy = np.ascontiguousarray(a[6][:, 0])
    n_cells, n_genes = len(ww), int(a[9][0])
    parent = np.ascontiguousarray(a[10][a[11][1] : a[11][2]])
    mu0, s0 = float(a[17][0]), float(a[18][0])
    with tempfile.TemporaryDirectory() as tmp:
        path, why = build_c(os.path.join(HERE, "gradient_ref.c"), os.path.join(tmp, "g.so"))
        if path is None:
            ref = None
            print(why, file=sys.stderr)
        else:
            lib = ctypes.CDLL(path)
            lib.gradref.restype = ctypes.c_double
            lib.gradref.argtypes = [ctypes.c_int64, *[ctypes.c_void_p] * 5, ctypes.c_int64,
                                    ctypes.c_void_p, ctypes.c_double, ctypes.c_double,
                                    ctypes.c_void_p, ctypes.c_void_p]  # fmt: skip
            scratch = np.empty(8 * n_genes)
            grad = np.empty(3)
            ptrs = [x.ctypes.data for x in (ww, wy, a[7], a[8], parent)]

            def ref_call():
                return lib.gradref(n_cells, *ptrs, n_genes, theta.ctypes.data, mu0, s0,
                                   scratch.ctypes.data, grad.ctypes.data)  # fmt: skip

            value = ref_call()
            mine, mine_grad = _tree_numba.log_marginal_grad(theta, *a[3:])
            err = max(abs(value - mine) / abs(mine), *(abs(grad - mine_grad) / abs(mine_grad)))
            assert err < 1e-9, f"the C reference differs from the kernel: {err:.2e}"
            ref = best_per_call(ref_call, 300)
    per_call = best_per_call(lambda: kernel(u, *a), 300)
    threads = min(args.chains, os.cpu_count())
    out = {"cells": n_cells, "genes": n_genes, "threads": threads, "kernel_us": per_call * 1e6,
           "ref_us": None if ref is None else ref * 1e6}  # fmt: skip
    for route, make in (("c", compiled._c_model), ("python", compiled._pyfunc_model)):
        model = make(inputs)
        t = time.perf_counter()
        idata = nutpie.sample(
            model, draws=1000, tune=1000, chains=args.chains, cores=threads, seed=1,
            save_warmup=True, progress_bar=False, target_accept=0.95,
        )  # fmt: skip
        wall = time.perf_counter() - t
        steps = sum(int(idata[g]["n_steps"].sum()) for g in ("warmup_sample_stats",
                                                             "sample_stats"))  # fmt: skip
        out[route] = {"sampling_s": wall, "gradients": steps,
                      "per_gradient_us": wall * threads / steps * 1e6}  # fmt: skip
    return out


def part_draws(args):
    from concurrent.futures import ThreadPoolExecutor

    from skhier._parallel import n_threads
    from skhier.engine.tree import draw_coefficients

    tree, _ = collapsed_inputs(args)
    rng = np.random.default_rng(0)
    S = args.chains * 1000
    sigma = rng.uniform(0.9, 1.1, S)
    taus = [[rng.uniform(0.2, 0.4, S)], [rng.uniform(0.05, 0.1, S)]]
    draw_coefficients(tree, sigma[:8], [[t[0][:8]] for t in taus], rng)  # compile / load
    n = S * (1 + sum(lv.n_nodes for lv in tree.levels))
    threads = n_threads()

    def ours():
        draw_coefficients(tree, sigma, taus, np.random.default_rng(1))

    chunks = np.array_split(np.arange(n), 16 * threads)
    streams = np.random.default_rng(2).spawn(len(chunks))

    def normals():  # a new array, as the draws are
        out = np.empty(n)

        def one(i):
            streams[i].standard_normal(out=out[chunks[i][0] : chunks[i][-1] + 1])

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(len(chunks))))

    return {
        "numbers": n,
        "threads": threads,
        "draws_s": best_per_call(ours, 1, 3),
        "normals_s": best_per_call(normals, 1, 3),
    }


PARTS = {"fit": part_fit, "gradient": part_gradient, "draws": part_draws}


def spawn(part, args):
    cmd = [sys.executable, os.path.abspath(__file__), "--part", part]
    for key in ("genes", "per_gene", "samples", "chains"):
        cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        raise SystemExit(f"part {part} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--per-gene", type=int, default=7)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--part", choices=sorted(PARTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        import warnings

        warnings.simplefilter("ignore")
        print(json.dumps(PARTS[args.part](args)))
        return
    print(machine_line())
    spawn("draws", args)  # warm the disk caches of every kernel a part uses
    res = {part: spawn(part, args) for part in PARTS}
    f = res["fit"]
    print(
        f"\nfit: {f['rows']:,} rows, {args.chains} chains x 1,000 draws: {f['wall']:.1f} s "
        f"(R-hat {f['rhat']:.3f}, bulk ESS {f['ess_bulk']:,.0f}, tail ESS {f['ess_tail']:,.0f}, "
        f"{f['divergences']} divergences, passed={f['passed']}; peak {f['peak_gb']:.2f} GB)"
    )
    for name, sec in f["stages"].items():
        print(f"    {name:22s} {sec:6.2f} s")
    g = res["gradient"]
    print(f"\ngradient: {g['cells']:,} cells, {g['genes']:,} genes, 3 scales")
    rows = [("C reference loop (gradient_ref.c)", g["ref_us"])]
    rows += [("skhier kernel, one call from Python", g["kernel_us"])]
    print(
        f"    sampling {args.chains} chains on {g['threads']} threads: "
        f"{g['c']['sampling_s']:.2f} s through the C entry point (what fit uses), "
        f"{g['python']['sampling_s']:.2f} s through Python calls"
    )
    for route, how in (("c", "C entry point"), ("python", "Python call")):
        r = g[route]
        rows += [(f"inside nutpie, {how} ({r['gradients']:,} gradients)", r["per_gradient_us"])]
    for name, us in rows:
        ratio = "" if g["ref_us"] is None or us is None else f"{us / g['ref_us']:6.2f}x C"
        print(f"    {name:52s} {'-' if us is None else f'{us:8.1f}'} us  {ratio}")
    d = res["draws"]
    print(
        f"\ncoefficient draws: {d['numbers']:,} numbers on {d['threads']} threads: "
        f"{d['draws_s']:.2f} s; NumPy standard normals, same count and threads: "
        f"{d['normals_s']:.2f} s; ratio {d['draws_s'] / d['normals_s']:.2f}x"
    )
    print(f"\nload average after: {load():.2f}")


if __name__ == "__main__":
    main()
