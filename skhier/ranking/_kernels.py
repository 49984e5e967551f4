"""Compiled (numba) kernels behind :mod:`skhier.ranking`.

This module imports numba at import time, so :mod:`skhier.ranking` imports it lazily, only when a
compiled path is first needed; ``import skhier`` never loads numba.

Kernels
-------
- :func:`rank_draws`: per-draw ranks of ``N`` groups for every draw by an LSD radix sort on the
  order-preserving integer image of the float64 bits (3 passes of 11 bits on the high 32 bits,
  then an insertion-sort fix-up of the rare runs that agree on them). Ties are detected exactly.
  The ranks are written group-major, ``out[chunk, group, draw]``, the layout the dominance
  kernels stream.
- :func:`dominance_tiles`: exact pairwise counts ``#{s : r_i(s) > r_j(s)}`` over the int16 (or
  int32) per-draw scores, by 4x4 register blocks over 64x64 tiles of the upper triangle (or of
  the top-k rows), with 16-bit wrapping counters (exact while a chunk has at most 65,535 draws).
  Each pair is computed once; ties cost a second, transposed pass only in draw chunks that
  contain ties.
- :func:`value_stats`, :func:`rank_stats`, :func:`order_stats`, :func:`rank_histogram`:
  per-group summaries (mean, sd, HDI, sign counts; expected rank, P(rank <= k), order
  statistics of the ranks and the Besag simultaneous-band depths; rank probabilities).

Every kernel is a compiled ``nogil`` function over a range of work items, run by skhier's small
thread pool with dynamic scheduling on as many threads as ``n_jobs`` allows
(:func:`skhier._parallel.thread_limit`; every core by default).

The 512-bit trap
----------------
On CPUs with AVX-512 (this project's Zen 4 host included), LLVM's default cost model vectorizes
the compare-and-count loop with 512-bit registers and mask-register compares, which is slower
than 256-bit code here: 1.4x on one core with the data in cache, 1.2x end to end at N = 13,000
(2.9x for an earlier kernel). The fix is the LLVM target feature
``prefer-256-bit``. Setting ``NUMBA_CPU_FEATURES`` only works before numba compiles anything in
the process, and PyMC/nutpie may have used numba already. So the kernels here are compiled
through a private numba *dispatcher* whose code generator (a subclass of numba's
``JITCPUCodegen``) adds ``+prefer-256-bit`` to the host features, while sharing numba's global
typing and lowering registries (``BaseContext.subtarget``): other numba users in the process are
not affected, it works whenever this module is imported, and the on-disk cache keys include the
feature string. Set the environment variable ``SKHIER_NUMBA_VECTOR_WIDTH=native`` to compile with
numba's defaults instead (``benchmarks/bench_dominance.py`` times both); :data:`VECTOR_WIDTH`
reports which variant is in use (``"256"`` or ``"native"``).

Examples
--------
>>> import numpy as np
>>> from skhier.ranking import _kernels
>>> x = np.array([[0.3, -1.0, 2.0], [0.1, 0.1, -3.0]])
>>> out = np.empty((1, 3, 2), dtype=np.int16)
>>> _ = _kernels.rank_draws(x, False, out, 0)
>>> out[0]  # number of groups strictly worse than each group, per draw
array([[1, 1],
       [0, 1],
       [2, 0]], dtype=int16)
"""

from __future__ import annotations

import logging
import os
import platform

import numba
import numpy as np

from skhier._parallel import n_threads as thread_count
from skhier._parallel import parallel_for

logger = logging.getLogger("skhier")

__all__ = [
    "VECTOR_WIDTH",
    "dominance_tiles",
    "finalize_diff",
    "finalize_square",
    "order_stats",
    "rank_draws",
    "rank_histogram",
    "rank_stats",
    "row_stats",
    "value_stats",
]

#: Number of consecutive draws ranked before being transposed into the group-major buffer.
DRAW_GROUP = 16


def _is_x86() -> bool:
    return platform.machine().lower() in {"x86_64", "amd64", "i386", "i686", "x86"}


def _make_jit():
    """Return ``(jit, label)``: a decorator factory compiling with 256-bit vectors, if possible."""
    mode = os.environ.get("SKHIER_NUMBA_VECTOR_WIDTH", "256").strip().lower()
    if mode in {"native", "default", "512", "0", ""} or not _is_x86():
        return numba.njit, "native"
    try:
        from numba.core import codegen, dispatcher, registry

        try:
            from numba.core.utils import threadsafe_cached_property as cached_property
        except ImportError:  # pragma: no cover - older numba
            from functools import cached_property

        class _Codegen256(codegen.JITCPUCodegen):
            def _customize_tm_features(self):
                features = super()._customize_tm_features()
                if "prefer-256-bit" in features:
                    return features
                return f"{features},+prefer-256-bit" if features else "+prefer-256-bit"

        class _Target256(registry.CPUTarget):
            @cached_property
            def _toplevel_target_context(self):
                base = registry.cpu_target.target_context
                return base.subtarget(_internal_codegen=_Codegen256("skhier.exec256"))

            @cached_property
            def _toplevel_typing_context(self):
                return registry.cpu_target.typing_context

        target = _Target256("cpu")

        class _Dispatcher256(dispatcher.Dispatcher):
            targetdescr = target

        def jit256(**options):
            cache = options.pop("cache", False)
            options.setdefault("nopython", True)

            def decorate(func):
                disp = _Dispatcher256(func, targetoptions=options)
                if cache:
                    disp.enable_caching()
                return disp

            return decorate

        return jit256, "256"
    except Exception as exc:  # pragma: no cover - depends on numba internals
        logger.warning(
            "skhier: could not set up 256-bit numba code generation (%s); the dominance kernel "
            "uses numba's default vector width and may be slower on AVX-512 CPUs.",
            exc,
        )
        return numba.njit, "native"


_jit, VECTOR_WIDTH = _make_jit()

_SIGN = np.uint64(0x8000000000000000)
_EXP = np.uint64(0x7FF0000000000000)
_U32 = np.uint64(32)
_LOW = np.uint64(0xFFFFFFFF)
_M11 = np.uint64(2047)
_S11 = np.uint64(11)
_S22 = np.uint64(22)


# Parallelism: every kernel is a compiled ``nogil`` function over a range of work items (tiles,
# draw groups, groups), and :func:`skhier._parallel.parallel_for` runs ranges of items on a small
# thread pool with dynamic scheduling (a shared counter), as many threads as ``n_jobs`` allows
# (:func:`skhier._parallel.n_threads`; both cores here by default). This
# replaces ``prange``: numba compiles each ``parallel=True`` function by re-linking and
# re-optimizing everything it calls (2-5 s per kernel and output type; 46 s of CPU for a cold
# cache, against about 20 s now), its workqueue threading layer aborts the process when two user
# threads launch kernels at once, and static ``prange`` chunks cannot rebalance when another
# process takes a core.


# --------------------------------------------------------------------------------------------
# Per-draw ranks (radix sort of one row of float64 values)
# --------------------------------------------------------------------------------------------
@numba.njit(inline="always")
def _key(v, better_small):
    """Order-preserving uint64 image of float64 bits (``-0.0`` mapped to ``0.0``)."""
    if v == _SIGN:
        v = np.uint64(0)
    if v & _SIGN:
        v = ~v
    else:
        v = v | _SIGN
    if better_small:
        v = ~v
    return v


@_jit(nogil=True, cache=True)
def _sort_row(u, better_small, a, b, hist):
    """Sort one row (``u``: float64 bits) from worst to best.

    Returns ``(packed, n_nonfinite)``: ``packed[k]`` holds the high 32 bits of the k-th key above
    the group's index (low 32 bits), sorted by the full key. An LSD radix sort (3 passes of 11
    bits) orders the high halves; the rare runs that agree on them are finished by insertion
    sort on the full keys (``_key(u[i])``), so equal packed high halves and equal full keys are
    exactly the ties.
    """
    n = u.shape[0]
    for q in range(3):
        for d in range(2048):
            hist[q, d] = 0
    nbad = 0
    for k in range(n):
        v = u[k]
        if (v & _EXP) == _EXP:
            nbad += 1
        h = _key(v, better_small) >> _U32
        a[k] = (h << _U32) | np.uint64(k)
        hist[0, h & _M11] += 1
        hist[1, (h >> _S11) & _M11] += 1
        hist[2, h >> _S22] += 1
    src = a
    dst = b
    swapped = False
    for q in range(3):
        sh = np.uint64(32 + 11 * q)
        if hist[q, (a[0] >> sh) & _M11] == n:
            continue
        tot = 0
        for d in range(2048):
            c = hist[q, d]
            hist[q, d] = tot
            tot += c
        for k in range(n):
            x = src[k]
            d = (x >> sh) & _M11
            p = hist[q, d]
            hist[q, d] = p + 1
            dst[p] = x
        src, dst = dst, src
        swapped = not swapped
    srt = b if swapped else a
    start = 0
    for k in range(1, n + 1):
        if k == n or (srt[k] >> _U32) != (srt[start] >> _U32):
            if k - start > 1:  # insertion sort of the run on the full keys
                for r in range(start + 1, k):
                    item = srt[r]
                    key = _key(u[item & _LOW], better_small)
                    r2 = r - 1
                    while r2 >= start and _key(u[srt[r2] & _LOW], better_small) > key:
                        srt[r2 + 1] = srt[r2]
                        r2 -= 1
                    srt[r2 + 1] = item
            start = k
    return srt, nbad


@_jit(nogil=True, cache=True)
def _rank_range(lo, hi, tid, x, better_small, out, mode, tiecorr, ties, bad):
    S, N = x.shape
    sd = out.shape[2]
    G = DRAW_GROUP
    tc = tiecorr[tid]
    pa = np.empty(N, np.uint64)
    pb = np.empty(N, np.uint64)
    hist = np.empty((3, 2048), np.int32)
    buf = np.empty((G, N), out.dtype)
    for g in range(lo, hi):
        s0 = g * G
        s1 = min(s0 + G, S)
        for s in range(s0, s1):
            u = x[s].view(np.uint64)
            srt, nb = _sort_row(u, better_small, pa, pb, hist)
            bad[s] = nb
            row = buf[s - s0]
            start = 0
            nt = 0
            for k in range(1, N + 1):
                if (
                    k < N
                    and (srt[k] >> _U32) == (srt[k - 1] >> _U32)
                    and _key(u[srt[k] & _LOW], better_small)
                    == _key(u[srt[k - 1] & _LOW], better_small)
                ):
                    continue
                gsize = k - start
                if mode == 0:
                    val = start
                elif mode == 1:
                    val = 2 * N + 1 - k - start
                else:
                    val = N - k + 1
                if gsize == 1:
                    row[srt[start] & _LOW] = val
                else:
                    nt += gsize * (gsize - 1) // 2
                    for q in range(start, k):
                        item = srt[q] & _LOW
                        row[item] = val
                        tc[item] += gsize - 1
                start = k
            ties[s] = nt
        sub = s0 // sd
        off = s0 - sub * sd
        cnt = s1 - s0
        dst = out[sub]
        for i in range(N):
            d = dst[i]
            for q in range(cnt):
                d[off + q] = buf[q, i]


def rank_draws(x, better_small, out, mode):
    """Rank every draw of ``x`` (``(S, N)`` C-contiguous float64), on all threads.

    Parameters
    ----------
    x : ndarray of shape (S, N), float64, C-contiguous
    better_small : bool
        Whether smaller values are better (``ascending=True``).
    out : ndarray of shape (n_chunks, >= N, chunk), int16 or int32
        Receives, for draw ``s``, ``out[s // chunk, i, s % chunk]``: with ``mode=0`` the number
        of groups strictly worse than ``i``; with ``mode=1`` twice the average rank (1 = best,
        ties averaged); with ``mode=2`` the best position (1-based) of ``i``'s tie group.
        ``chunk`` must be a multiple of 16 unless there is one chunk.
    mode : int

    Returns
    -------
    tiecorr : ndarray of shape (N,), int64
        Sums over draws of the number of other groups tied with each group. With ``mode=0``,
        ``2 * out.sum(draws) + tiecorr`` is the sum over draws of ``2 * (#worse + #tied / 2)``.
    ties : ndarray of shape (S,), int64
        Number of tied pairs in each draw.
    bad : ndarray of shape (S,), int64
        Number of non-finite values in each draw.
    """
    S, N = x.shape
    n_threads = thread_count()
    tiecorr = np.zeros((n_threads, N), np.int64)
    ties = np.zeros(S, np.int64)
    bad = np.zeros(S, np.int64)
    n_groups = -(-S // DRAW_GROUP)
    parallel_for(
        _rank_range, n_groups, x, bool(better_small), out, mode, tiecorr, ties, bad,
        threads=n_threads,
    )  # fmt: skip
    return tiecorr.sum(axis=0), ties, bad


@_jit(nogil=True, cache=True)
def _row_stats_range(lo, hi, tid, R, m, sums, vmin, vmax):
    nsub = R.shape[0]
    sd = R.shape[2]
    for i in range(lo, hi):
        tot = 0
        mn = R[0, i, 0]
        mx = mn
        for sub in range(nsub):
            r = R[sub, i]
            acc = 0
            for s in range(min(sd, m - sub * sd)):
                v = r[s]
                acc += v
                mn = min(mn, v)
                mx = max(mx, v)
            tot += acc
        sums[i] = tot
        vmin[i] = mn
        vmax[i] = mx


def row_stats(R, n, m):
    """Per row ``i < n`` of ``R`` over its first ``m`` draws: sum (int64), minimum, maximum.

    The minima and maxima of the per-draw scores let the dominance kernel skip blocks of pairs
    whose ranks never cross (exactly: ``D`` is then 0 or 1).
    """
    sums = np.empty(n + 1, np.int64)
    vmin = np.zeros(n + 1, np.int64)  # the padding row (index n) is all zeros
    vmax = np.zeros(n + 1, np.int64)
    parallel_for(_row_stats_range, n, R, m, sums, vmin, vmax)
    return sums[:n], vmin, vmax


# --------------------------------------------------------------------------------------------
# Dominance: 4x4 register blocks over tiles
# --------------------------------------------------------------------------------------------
@numba.njit(inline="always")
def _block(Rs, a0i, a1i, a2i, a3i, b0i, b1i, b2i, b3i, sd):
    """Count ``#{s: R[a_k, s] > R[b_l, s]}`` modulo 2**16, as 16 int16 (row-major 4x4)."""
    a0 = Rs[a0i]
    a1 = Rs[a1i]
    a2 = Rs[a2i]
    a3 = Rs[a3i]
    b0 = Rs[b0i]
    b1 = Rs[b1i]
    b2 = Rs[b2i]
    b3 = Rs[b3i]
    z = np.int16(0)
    c00 = c01 = c02 = c03 = z
    c10 = c11 = c12 = c13 = z
    c20 = c21 = c22 = c23 = z
    c30 = c31 = c32 = c33 = z
    for s in range(sd):
        x0 = a0[s]
        x1 = a1[s]
        x2 = a2[s]
        x3 = a3[s]
        y0 = b0[s]
        y1 = b1[s]
        y2 = b2[s]
        y3 = b3[s]
        c00 = np.int16(c00 + (x0 > y0))
        c01 = np.int16(c01 + (x0 > y1))
        c02 = np.int16(c02 + (x0 > y2))
        c03 = np.int16(c03 + (x0 > y3))
        c10 = np.int16(c10 + (x1 > y0))
        c11 = np.int16(c11 + (x1 > y1))
        c12 = np.int16(c12 + (x1 > y2))
        c13 = np.int16(c13 + (x1 > y3))
        c20 = np.int16(c20 + (x2 > y0))
        c21 = np.int16(c21 + (x2 > y1))
        c22 = np.int16(c22 + (x2 > y2))
        c23 = np.int16(c23 + (x2 > y3))
        c30 = np.int16(c30 + (x3 > y0))
        c31 = np.int16(c31 + (x3 > y1))
        c32 = np.int16(c32 + (x3 > y2))
        c33 = np.int16(c33 + (x3 > y3))
    return (
        c00, c01, c02, c03, c10, c11, c12, c13,
        c20, c21, c22, c23, c30, c31, c32, c33,
    )  # fmt: skip


@_jit(nogil=True, cache=True)
def _tile_counts(R, rows, cols, r0, r1, c0, c1, upper, has_ties, gt, lt, vmin, vmax, m):
    """Set gt (and lt) to the counts of output rows [r0, r1) x cols [c0, c1).

    ``gt[i - r0, j - c0] = #{s: R[rows[i], s] > R[cols[j], s]}`` (``lt``: ``<``), summed over the
    draw chunks ``R[0], R[1], ...`` (``m`` real draws in all); with ``upper``, only blocks on or
    above the diagonal. Blocks whose rows' scores never meet their columns' scores (from the
    per-group ``vmin``/``vmax``) are filled without comparing: the counts are then 0 or ``m``.
    """
    nsub = R.shape[0]
    sd = R.shape[2]
    gt[:, :] = 0
    if has_ties:
        lt[:, :] = 0
    for i in range(r0, r1, 4):
        a0 = rows[i]
        a1 = rows[i + 1]
        a2 = rows[i + 2]
        a3 = rows[i + 3]
        amin = min(min(vmin[a0], vmin[a1]), min(vmin[a2], vmin[a3]))
        amax = max(max(vmax[a0], vmax[a1]), max(vmax[a2], vmax[a3]))
        jstart = i if upper and i > c0 else c0
        ii = i - r0
        for j in range(jstart, c1, 4):
            b0 = cols[j]
            b1 = cols[j + 1]
            b2 = cols[j + 2]
            b3 = cols[j + 3]
            jj = j - c0
            bmin = min(min(vmin[b0], vmin[b1]), min(vmin[b2], vmin[b3]))
            bmax = max(max(vmax[b0], vmax[b1]), max(vmax[b2], vmax[b3]))
            if amax < bmin or amin > bmax:  # rows always worse / always better: no comparing
                above = amin > bmax
                for a in range(4):
                    for b in range(4):
                        gt[ii + a, jj + b] = m if above else 0
                        if has_ties:
                            lt[ii + a, jj + b] = 0 if above else m
                continue
            for sub in range(nsub):
                Rs = R[sub]
                c = _block(Rs, a0, a1, a2, a3, b0, b1, b2, b3, sd)
                for a in range(4):
                    for b in range(4):
                        gt[ii + a, jj + b] += np.int32(c[4 * a + b]) & 0xFFFF
                if has_ties:
                    c = _block(Rs, b0, b1, b2, b3, a0, a1, a2, a3, sd)
                    for a in range(4):
                        for b in range(4):
                            lt[ii + a, jj + b] += np.int32(c[4 * b + a]) & 0xFFFF


@_jit(nogil=True, cache=True)
def _dominance_range(
    lo,
    hi,
    tid,
    R,
    rows,
    cols,
    n_rows,
    n,
    tasks,
    T,
    layout,
    has_ties,
    out,
    kind,
    add,
    s_total,
    s_real,
    vmin,
    vmax,
):  # noqa: E501
    inv = 1.0 / (2.0 * s_total)
    gt = np.empty((T, T), np.int32)
    lt = np.empty((T, T) if has_ties else (1, 1), np.int32)
    for p in range(lo, hi):
        bi = tasks[p, 0]
        bj = tasks[p, 1]
        i0 = bi * T
        i1 = min(i0 + T, n_rows)
        j0 = bj * T
        j1 = min(j0 + T, n)
        _tile_counts(
            R, rows, cols, i0, i1, j0, j1, layout != 2 and bi == bj, has_ties, gt, lt, vmin,
            vmax, s_real,
        )  # fmt: skip
        for i in range(i0, i1):
            if layout == 2:
                jlo = j0
                base = i * n
            elif layout == 1:
                jlo = max(j0, i + 1)
                base = i * n - (i * (i + 1)) // 2 - i - 1
            else:
                jlo = max(j0, i + 1)
                base = i * n
            for j in range(jlo, j1):
                g = gt[i - i0, j - j0]
                lo_ = lt[i - i0, j - j0] if has_ties else s_real - g
                if layout == 2 and rows[i] == cols[j]:
                    lo_ = g
                if kind == 0:
                    out[base + j] = (s_total + g - lo_) * inv
                elif kind == 1:
                    if add:
                        out[base + j] += g
                    else:
                        out[base + j] = g
                elif add:
                    out[base + j] += s_real + g - lo_
                else:
                    out[base + j] = s_real + g - lo_
        if layout == 0:  # lower triangle, row by row
            for j in range(j0, j1):
                base = j * n
                for i in range(i0, min(i1, j)):
                    g = gt[i - i0, j - j0]
                    lo_ = lt[i - i0, j - j0] if has_ties else s_real - g
                    if kind == 0:
                        out[base + i] = (s_total + lo_ - g) * inv
                    elif add:
                        out[base + i] += lo_
                    else:
                        out[base + i] = lo_


def dominance_tiles(
    R, rows, cols, n_rows, n, tasks, T, layout, has_ties, out, kind, add, s_total, s_real, vmin,
    vmax,
):  # fmt: skip
    """Exact pairwise counts or probabilities over tiles, on all threads.

    Output row ``i`` and column ``j`` refer to groups ``rows[i]`` and ``cols[j]`` (both padded
    to a multiple of 4 plus 4 with the index of an all-zero row of ``R``). ``R`` holds per-draw
    scores (``rank_draws`` mode 0) as ``(n_chunks, N + 1, chunk)``, unused draws zero. ``tasks``
    lists the ``(row tile, column tile)`` pairs of edge ``T``.

    ``layout``: 0 = square ``(n, n)`` over the tiles of the upper triangle, writing both
    triangles; 1 = condensed upper triangle (scipy order); 2 = rows ``(n_rows, n)``. ``out`` is
    flat. ``kind``: 0 = ``D = (S + gt - lt) / (2 S)`` (lower triangle from ``(S + lt - gt)``, the
    same float64 operations in every path); 1 = counts (``gt``; in the square layout ``lt``
    below the diagonal); 2 = ``s_real + gt - lt`` (accumulated over passes, see
    :func:`finalize_diff`). ``add`` adds instead of writing. Counters are 16-bit in the inner
    loop: chunks of at most 65,535 draws. The diagonal is not written. ``s_real`` is the number
    of real draws in ``R``; ``vmin``/``vmax`` (from :func:`row_stats`) let blocks of pairs whose
    scores never cross be filled without comparisons.
    """
    parallel_for(
        _dominance_range, tasks.shape[0], R, rows, cols, n_rows, n, tasks, T, layout, has_ties,
        out, kind, add, s_total, s_real, vmin, vmax,
    )  # fmt: skip


@_jit(nogil=True, cache=True)
def _finalize_square_range(lo, hi, tid, out, n, tasks, T, s_total):
    inv = 1.0 / (2.0 * s_total)
    for p in range(lo, hi):
        i0 = tasks[p, 0] * T
        j0 = tasks[p, 1] * T
        for i in range(i0, min(i0 + T, n)):
            for j in range(max(j0, i + 1), min(j0 + T, n)):
                g = np.float64(out[i * n + j])
                lo_ = np.float64(out[j * n + i])
                out[i * n + j] = (s_total + g - lo_) * inv
                out[j * n + i] = (s_total + lo_ - g) * inv


def finalize_square(out, n, tasks, T, s_total):
    """Turn accumulated counts (``gt`` above, ``lt`` below the diagonal) into D, in place."""
    parallel_for(_finalize_square_range, tasks.shape[0], out, n, tasks, T, s_total)


@_jit(nogil=True, cache=True)
def _finalize_diff_range(lo, hi, tid, flat, s_total):
    inv = 1.0 / (2.0 * s_total)
    for k in range(lo, hi):
        flat[k] = np.float64(flat[k]) * inv


def finalize_diff(flat, s_total):
    """Turn accumulated ``S + gt - lt`` into ``D = (S + gt - lt) / (2 S)``, in place."""
    parallel_for(_finalize_diff_range, flat.shape[0], flat, s_total)


# --------------------------------------------------------------------------------------------
# Per-group summaries
# --------------------------------------------------------------------------------------------
@_jit(nogil=True, cache=True)
def _value_range(lo, hi, tid, x, ref, inc, stats, counts):
    S, N = x.shape
    nint = S - inc
    buf = np.empty((8, S), np.float64)
    pa = np.empty(S, np.uint64)
    pb = np.empty(S, np.uint64)
    hist = np.empty((3, 2048), np.int32)
    for blk in range(lo, hi):
        g0 = blk * 8
        m = min(g0 + 8, N) - g0
        for s in range(S):
            for q in range(m):
                buf[q, s] = x[s, g0 + q]
        for q in range(m):
            col = buf[q]
            tot = 0.0
            nle = 0
            nge = 0
            ngt = 0
            for s in range(S):
                v = col[s]
                tot += v
                r = ref[s]
                if v <= r:
                    nle += 1
                if v >= r:
                    nge += 1
                if v > r:
                    ngt += 1
            mean = tot / S
            ss = 0.0
            for s in range(S):
                dv = col[s] - mean
                ss += dv * dv
            srt, _ = _sort_row(col.view(np.uint64), False, pa, pb, hist)
            best = np.inf
            at = 0
            for k in range(nint):
                wdt = col[srt[k + inc] & _LOW] - col[srt[k] & _LOW]
                if wdt < best:
                    best = wdt
                    at = k
            g = g0 + q
            stats[0, g] = mean
            stats[1, g] = np.sqrt(ss / (S - 1)) if S > 1 else np.nan
            stats[2, g] = col[srt[at] & _LOW]
            stats[3, g] = col[srt[at + inc] & _LOW]
            counts[0, g] = nle
            counts[1, g] = nge
            counts[2, g] = ngt


def value_stats(x, ref, hdi_prob, stats, counts):
    """Per group of ``x`` (S, N): mean, sd (ddof=1), HDI (ArviZ's rule), signs.

    ``stats`` (4, N) float64 receives mean, sd, hdi_low, hdi_high; ``counts`` (3, N) int64
    receives ``#{x <= ref}``, ``#{x >= ref}``, ``#{x > ref}`` with ``ref`` a per-draw (S,) array.
    Groups are gathered 8 at a time (one cache line of each draw) and sorted by radix.
    """
    S, N = x.shape
    inc = int(np.floor(hdi_prob * S))
    parallel_for(_value_range, -(-N // 8), x, ref, inc, stats, counts)


@_jit(nogil=True, cache=True)
def _rank_stats_range(lo, hi, tid, V, top2, sums, ntop, depth):
    N, S = V.shape
    dep = depth[tid]
    hist = np.zeros(2 * N + 3, np.int64)
    for i in range(lo, hi):
        row = V[i]
        vmin = row[0]
        vmax = row[0]
        tot = 0
        nt = 0
        for s in range(S):
            v = row[s]
            hist[v] += 1
            tot += v
            if v <= top2:
                nt += 1
            if v < vmin:
                vmin = v
            if v > vmax:
                vmax = v
        c = 0
        for v in range(vmin, vmax + 1):
            c += hist[v]
            hist[v] = c
        for s in range(S):
            v = row[s]
            fv = hist[v]
            fvm = hist[v - 1] if v > vmin else 0
            t = min(fv, S - fvm)
            if t < dep[s]:
                dep[s] = t
        for v in range(vmin, vmax + 1):
            hist[v] = 0
        sums[i] = tot
        ntop[i] = nt


def rank_stats(V, top2, sums, ntop):
    """Per group of doubled ranks ``V`` (N, S): sums, ``#{V <= top2}``; returns the depths.

    The returned ``depth[s]`` is the minimum over groups of ``min(F(v), S - F(v-))``, where
    ``F`` is the group's empirical CDF of ranks and ``v`` its rank in draw ``s``: draw ``s`` lies
    inside every ``[r_(k), r_(S+1-k)]`` interval iff ``depth[s] >= k``.
    """
    N, S = V.shape
    n_threads = thread_count()
    depth = np.full((n_threads, S), S + 1, np.int64)
    parallel_for(_rank_stats_range, N, V, top2, sums, ntop, depth, threads=n_threads)
    return depth.min(axis=0)


@_jit(nogil=True, cache=True)
def _order_stats_range(lo, hi, tid, V, ks, out):
    for i in range(lo, hi):
        _order_stats_row(V[i], ks, out, i)


@numba.njit(inline="always")
def _order_stats_row(row, ks, out, i):
    S = row.shape[0]
    vmin = row[0]
    vmax = row[0]
    for s in range(S):
        v = row[s]
        if v < vmin:
            vmin = v
        if v > vmax:
            vmax = v
    hist = np.zeros(vmax - vmin + 1, np.int64)
    for s in range(S):
        hist[row[s] - vmin] += 1
    for q in range(ks.shape[0]):
        target = ks[q]
        c = 0
        for h in range(hist.shape[0]):
            c += hist[h]
            if c >= target:
                out[q, i] = vmin + h
                break


def order_stats(V, ks, out):
    """``out[q, i]`` = the ``ks[q]``-th smallest (1-based) value of ``V[i]``."""
    parallel_for(_order_stats_range, V.shape[0], V, ks, out)


@_jit(nogil=True, cache=True)
def _rank_histogram_range(lo, hi, tid, V, A, use_ties, out, scale):
    for i in range(lo, hi):
        _rank_histogram_row(V[i], A[i] if use_ties else A[0], use_ties, out[i], scale)


@numba.njit(inline="always")
def _rank_histogram_row(row, arow, use_ties, dst, scale):
    for s in range(row.shape[0]):
        v = row[s]
        if use_ties:
            a = arow[s]
            b = v - a
            wgt = scale / (b - a + 1)
            for r in range(a, b + 1):
                dst[r - 1] += wgt
        else:
            dst[v // 2 - 1] += scale


def rank_histogram(V, A, use_ties, out, scale):
    """Rank probabilities: ``out[i, r - 1] += scale`` per draw with rank ``r``.

    With ties (``A`` of shape (N, S) holding the best position of each tie group), a tie group
    spanning positions ``a..b`` spreads its mass evenly over them (random tie-breaking).
    """
    parallel_for(_rank_histogram_range, V.shape[0], V, A, use_ties, out, scale)
