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
  int32) per-draw scores, by register blocks over square tiles of the upper triangle (or of the
  top-k rows), with 16-bit wrapping counters (exact while a chunk has at most 65,535 draws).
  Each pair is computed once; ties cost a second, transposed pass only in draw chunks that
  contain ties. The blocking follows the CPU's vector registers (:data:`DOMINANCE_KERNEL`, one
  of :data:`DOMINANCE_KERNELS`): with AVX-512BW, 4x4 blocks of 512-bit vectors (16
  accumulators of the 32 zmm registers) counted by a compare into a mask register and a masked
  add; otherwise 2x4 blocks of 256-bit vectors (8 accumulators of AVX2's 16 ymm registers; 4x4
  spills there) counted by a compare and a subtraction. The tile edge keeps the rows of a tile
  pair in L2 (:func:`dominance_tile`). ``benchmarks/bench_dominance.py`` times both against a
  C reference kernel (``benchmarks/dominance_ref.c``) on the same input.
- :func:`value_stats`, :func:`rank_stats`, :func:`order_stats`, :func:`rank_histogram`:
  per-group summaries (mean, sd, HDI, sign counts; expected rank, P(rank <= k), order
  statistics of the ranks and the Besag simultaneous-band depths; rank probabilities).

Every kernel is a compiled ``nogil`` function over a range of work items, run by skhier's small
thread pool with dynamic scheduling on as many threads as ``n_jobs`` allows
(:func:`skhier._parallel.thread_limit`; every core by default).

Vector width and code generators
--------------------------------
On Intel CPUs with AVX-512 LLVM prefers 256-bit vectors (its cost model's ``prefer-256-bit``
tuning; Zen 4's has no such tuning). At 512 bits, ``count + (x > y)`` compiles to three
instructions per 32 comparisons (``vpcmpgtw`` into a mask register, ``vpmovm2w``, ``vpsubw``), no
faster than 256-bit code: that was the 512-bit trap of earlier kernels (1.2-1.4x slower than
256-bit code on a Zen 4 host). The "avx512" dominance kernel writes the increment as
``count + one if x > y else count`` with ``one`` passed at run time, which LLVM compiles to a
compare into a mask register and a masked add, two instructions, like hand-written intrinsics.

Each group of kernels is compiled through a private numba *dispatcher* whose code generator (a
subclass of numba's ``JITCPUCodegen``) adds LLVM target features to the host's, while sharing
numba's global typing and lowering registries (``BaseContext.subtarget``): other numba users in
the process are not affected (``NUMBA_CPU_FEATURES`` only works before numba compiles anything,
and PyMC/nutpie may have used numba already), it works whenever this module is imported, and
the on-disk cache keys include the feature string. The ranking and summary kernels get
``+prefer-256-bit``; the "avx512" dominance kernel ``-prefer-256-bit`` (512-bit vectors); the
"avx2" one ``-avx512f,+prefer-256-bit``, so that forcing it on an AVX-512 CPU gives the code and
the 16 registers of an AVX2-only CPU. ``SKHIER_NUMBA_VECTOR_WIDTH=native`` compiles the ranking
and summary kernels with numba's defaults instead (:data:`VECTOR_WIDTH` reports ``"256"`` or
``"native"``); ``SKHIER_DOMINANCE_KERNEL=avx2`` (or ``avx512``) forces a dominance kernel.

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

import functools
import logging
import os
import platform

import numba
import numpy as np

from skhier._parallel import n_threads as thread_count
from skhier._parallel import parallel_for

logger = logging.getLogger("skhier")

__all__ = [
    "DOMINANCE_KERNEL",
    "DOMINANCE_KERNELS",
    "VECTOR_WIDTH",
    "dominance_tile",
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


def _host_features() -> set[str]:
    """LLVM's features of the host CPU that are on (``{"avx2", "avx512bw", ...}``)."""
    try:
        import llvmlite.binding as ll

        return {name for name, on in ll.get_host_cpu_features().items() if on}
    except Exception:  # pragma: no cover - llvmlite without host feature detection
        return set()


def _make_jit(extra="+prefer-256-bit", name="skhier.exec256"):
    """Return a decorator factory compiling with the host's features plus ``extra``, or None.

    ``extra`` is a comma-separated list of LLVM target features (``"+prefer-256-bit"``,
    ``"-avx512f"``, ...). The decorated functions get a private numba dispatcher whose code
    generator adds them, sharing numba's typing and lowering registries (see the module
    docstring); None if numba's internals do not allow it.
    """
    try:
        from numba.core import codegen, dispatcher, registry

        try:
            from numba.core.utils import threadsafe_cached_property as cached_property
        except ImportError:  # pragma: no cover - older numba
            from functools import cached_property

        class _Codegen(codegen.JITCPUCodegen):
            def _customize_tm_features(self):
                features = super()._customize_tm_features()
                add = [f for f in extra.split(",") if f and f not in features.split(",")]
                return ",".join([features, *add] if features else add)

        class _Target(registry.CPUTarget):
            @cached_property
            def _toplevel_target_context(self):
                base = registry.cpu_target.target_context
                return base.subtarget(_internal_codegen=_Codegen(name))

            @cached_property
            def _toplevel_typing_context(self):
                return registry.cpu_target.typing_context

        target = _Target("cpu")

        class _Dispatcher(dispatcher.Dispatcher):
            targetdescr = target

        def jit(**options):
            cache = options.pop("cache", False)
            options.setdefault("nopython", True)

            def decorate(func):
                disp = _Dispatcher(func, targetoptions=options)
                if cache:
                    disp.enable_caching()
                return disp

            return decorate

        return jit
    except Exception as exc:  # pragma: no cover - depends on numba internals
        logger.warning(
            "skhier: could not set up numba code generation with features %s (%s); using "
            "numba's defaults, which may be slower.",
            extra,
            exc,
        )
        return None


def _default_jit():
    """Return ``(jit, label)`` for the kernels other than dominance: 256-bit vectors on x86."""
    mode = os.environ.get("SKHIER_NUMBA_VECTOR_WIDTH", "256").strip().lower()
    if mode in {"native", "default", "512", "0", ""} or not _is_x86():
        return numba.njit, "native"
    jit = _make_jit("+prefer-256-bit", "skhier.exec256")
    return (numba.njit, "native") if jit is None else (jit, "256")


_jit, VECTOR_WIDTH = _default_jit()

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
# Dominance: register blocks over tiles, the blocking chosen for the CPU's vector registers
# --------------------------------------------------------------------------------------------
#: The dominance kernels, by name: the register blocking and vector width of each.
DOMINANCE_KERNELS = {
    "avx512": "4x4 register blocks of 512-bit vectors with masked increments (AVX-512BW: 32 "
    "zmm registers)",
    "avx2": "2x4 register blocks of 256-bit vectors (AVX2: 16 ymm registers; also the kernel "
    "off x86)",
}


def _choose_dominance_kernel(features):
    """Name of the dominance kernel for a CPU with LLVM ``features`` (a set of names).

    ``SKHIER_DOMINANCE_KERNEL`` (``avx512``, ``avx2`` or ``auto``) overrides the choice.
    """
    forced = os.environ.get("SKHIER_DOMINANCE_KERNEL", "auto").strip().lower()
    if forced in DOMINANCE_KERNELS:
        return forced
    if forced not in {"", "auto"}:
        logger.warning(
            "skhier: SKHIER_DOMINANCE_KERNEL=%r is not one of %s or 'auto'; choosing by CPU.",
            forced,
            sorted(DOMINANCE_KERNELS),
        )
    return "avx512" if _is_x86() and "avx512bw" in features else "avx2"


#: The dominance kernel used by default on this CPU (a key of :data:`DOMINANCE_KERNELS`).
DOMINANCE_KERNEL = _choose_dominance_kernel(_host_features())

# Each kernel has its own code generator: 512-bit vectors for "avx512" (LLVM prefers 256 bits on
# Intel server CPUs), and for "avx2" 256-bit vectors without AVX-512, so that forcing it on an
# AVX-512 CPU gives the code (and the 16 registers) of an AVX2-only CPU.
_jit512 = (_make_jit("-prefer-256-bit", "skhier.dominance512") if _is_x86() else None) or numba.njit
_jit_avx2 = (
    _make_jit("-avx512f,+prefer-256-bit", "skhier.dominance256") if _is_x86() else None
) or numba.njit


@functools.lru_cache(maxsize=4)
def _l2_bytes(default=1 << 20):
    """Size of the L2 (or unified level-2) cache of CPU 0 from sysfs; ``default`` if unknown."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in sorted(os.listdir(base)):
            if not entry.startswith("index"):
                continue
            with open(os.path.join(base, entry, "level")) as fh:
                if fh.read().strip() != "2":
                    continue
            with open(os.path.join(base, entry, "type")) as fh:
                if fh.read().strip() == "Instruction":
                    continue
            with open(os.path.join(base, entry, "size")) as fh:
                text = fh.read().strip().upper()
            scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
            return int(text.rstrip("KM")) * scale
    except (OSError, ValueError):
        pass
    return default


def dominance_tile(row_bytes, l2_bytes=None):
    """Tile edge (groups) of the dominance kernels for rows of ``row_bytes`` bytes.

    Each register block streams its rows over all draws of a chunk, so the rows of a tile pair
    (``2 * edge`` rows) should stay in the L2 cache: the edge is the largest multiple of 8 from
    16 to 64 whose rows fill at most three quarters of it (64 at 4,000 int16 draws and 2 MiB of
    L2; 24 with 512 KiB).

    Parameters
    ----------
    row_bytes : int
        Bytes of one group's scores in a draw chunk.
    l2_bytes : int, optional
        L2 size; read from sysfs by default (1 MiB if unknown).

    Returns
    -------
    int
        The tile edge, a multiple of 8 (hence of every register block's rows and columns).

    Examples
    --------
    >>> dominance_tile(8000, l2_bytes=2 << 20), dominance_tile(8000, l2_bytes=512 << 10)
    (64, 24)
    """
    l2 = _l2_bytes() if l2_bytes is None else l2_bytes
    edge = int(0.75 * l2 // (2 * max(1, row_bytes))) // 8 * 8
    return max(16, min(64, edge))


@numba.njit(inline="always")
def _cmp(x, y, less):
    """``x > y`` (``less``: ``x < y``); ``less`` is a constant at every call, folded away."""
    return (y > x) if less else (x > y)


@numba.njit(inline="always")
def _block_2x4(Rs, a0i, a1i, b0i, b1i, b2i, b3i, sd, less):
    """Count ``#{s: R[a_k, s] > R[b_l, s]}`` (``less``: ``<``) mod 2**16, as 8 int16 (2x4).

    Adding the comparison to int16 counters vectorizes as a compare and a subtraction of its
    all-ones mask (``vpcmpgtw``/``vpsubw``): 8 accumulators, 2 row vectors and a column vector
    fit the 16 ymm registers of AVX2 (a 4x4 block spills there).
    """
    z = np.int16(0)
    c00 = c01 = c02 = c03 = z
    c10 = c11 = c12 = c13 = z
    for s in range(sd):
        x0 = Rs[a0i, s]
        x1 = Rs[a1i, s]
        y0 = Rs[b0i, s]
        y1 = Rs[b1i, s]
        y2 = Rs[b2i, s]
        y3 = Rs[b3i, s]
        c00 = np.int16(c00 + _cmp(x0, y0, less))
        c01 = np.int16(c01 + _cmp(x0, y1, less))
        c02 = np.int16(c02 + _cmp(x0, y2, less))
        c03 = np.int16(c03 + _cmp(x0, y3, less))
        c10 = np.int16(c10 + _cmp(x1, y0, less))
        c11 = np.int16(c11 + _cmp(x1, y1, less))
        c12 = np.int16(c12 + _cmp(x1, y2, less))
        c13 = np.int16(c13 + _cmp(x1, y3, less))
    return c00, c01, c02, c03, c10, c11, c12, c13


@numba.njit(inline="always")
def _block_4x4(Rs, a0i, a1i, a2i, a3i, b0i, b1i, b2i, b3i, sd, one):
    """Count ``#{s: R[a_k, s] > R[b_l, s]}`` mod 2**16, as 16 int16 (row-major 4x4).

    ``one`` is the int16 1, passed at run time: LLVM then vectorizes ``c + one if x > y else c``
    as a compare into a mask register and a masked add (``vpcmpgtw k``/``vpaddw {k}``), two
    instructions per 32 comparisons. With a constant 1 it folds the select into ``c + (x > y)``,
    which costs a third instruction at 512 bits (``vpmovm2w``). 16 accumulators, 4 row vectors,
    4 column vectors and ``one`` fit the 32 zmm registers.
    """
    z = np.int16(0)
    c00 = c01 = c02 = c03 = z
    c10 = c11 = c12 = c13 = z
    c20 = c21 = c22 = c23 = z
    c30 = c31 = c32 = c33 = z
    for s in range(sd):
        x0 = Rs[a0i, s]
        x1 = Rs[a1i, s]
        x2 = Rs[a2i, s]
        x3 = Rs[a3i, s]
        y0 = Rs[b0i, s]
        y1 = Rs[b1i, s]
        y2 = Rs[b2i, s]
        y3 = Rs[b3i, s]
        c00 = np.int16(c00 + one) if x0 > y0 else c00
        c01 = np.int16(c01 + one) if x0 > y1 else c01
        c02 = np.int16(c02 + one) if x0 > y2 else c02
        c03 = np.int16(c03 + one) if x0 > y3 else c03
        c10 = np.int16(c10 + one) if x1 > y0 else c10
        c11 = np.int16(c11 + one) if x1 > y1 else c11
        c12 = np.int16(c12 + one) if x1 > y2 else c12
        c13 = np.int16(c13 + one) if x1 > y3 else c13
        c20 = np.int16(c20 + one) if x2 > y0 else c20
        c21 = np.int16(c21 + one) if x2 > y1 else c21
        c22 = np.int16(c22 + one) if x2 > y2 else c22
        c23 = np.int16(c23 + one) if x2 > y3 else c23
        c30 = np.int16(c30 + one) if x3 > y0 else c30
        c31 = np.int16(c31 + one) if x3 > y1 else c31
        c32 = np.int16(c32 + one) if x3 > y2 else c32
        c33 = np.int16(c33 + one) if x3 > y3 else c33
    return (
        c00, c01, c02, c03, c10, c11, c12, c13,
        c20, c21, c22, c23, c30, c31, c32, c33,
    )  # fmt: skip


@numba.njit(inline="always")
def _span(vmin, vmax, idx, i, k):
    """Smallest ``vmin`` and largest ``vmax`` over the groups ``idx[i:i + k]``."""
    lo = vmin[idx[i]]
    hi = vmax[idx[i]]
    for q in range(1, k):
        lo = min(lo, vmin[idx[i + q]])
        hi = max(hi, vmax[idx[i + q]])
    return lo, hi


@numba.njit(inline="always")
def _fill_block(gt, lt, has_ties, ii, jj, nr, nc, above, m):
    """Fill the counts of a block whose rows are always better (``above``) or always worse."""
    for a in range(nr):
        for b in range(nc):
            gt[ii + a, jj + b] = m if above else 0
            if has_ties:
                lt[ii + a, jj + b] = 0 if above else m


@_jit_avx2(nogil=True, cache=True)
def _tile_counts_avx2(R, rows, cols, r0, r1, c0, c1, upper, has_ties, gt, lt, vmin, vmax, m):
    """Set gt (and lt) to the counts of output rows [r0, r1) x cols [c0, c1), by 2x4 blocks.

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
    for i in range(r0, r1, 2):
        a0 = rows[i]
        a1 = rows[i + 1]
        amin, amax = _span(vmin, vmax, rows, i, 2)
        jstart = c0 + (i - c0) // 4 * 4 if upper and i > c0 else c0
        ii = i - r0
        for j in range(jstart, c1, 4):
            b0 = cols[j]
            b1 = cols[j + 1]
            b2 = cols[j + 2]
            b3 = cols[j + 3]
            jj = j - c0
            bmin, bmax = _span(vmin, vmax, cols, j, 4)
            if amax < bmin or amin > bmax:  # rows always worse / always better: no comparing
                _fill_block(gt, lt, has_ties, ii, jj, 2, 4, amin > bmax, m)
                continue
            for sub in range(nsub):
                Rs = R[sub]
                c = _block_2x4(Rs, a0, a1, b0, b1, b2, b3, sd, False)
                for a in range(2):
                    for b in range(4):
                        gt[ii + a, jj + b] += np.int32(c[4 * a + b]) & 0xFFFF
                if has_ties:
                    c = _block_2x4(Rs, a0, a1, b0, b1, b2, b3, sd, True)
                    for a in range(2):
                        for b in range(4):
                            lt[ii + a, jj + b] += np.int32(c[4 * a + b]) & 0xFFFF


@_jit512(nogil=True, cache=True)
def _tile_counts_avx512(
    R, rows, cols, r0, r1, c0, c1, upper, has_ties, gt, lt, vmin, vmax, m, one
):  # fmt: skip
    """As :func:`_tile_counts_avx2`, by 4x4 blocks (``one``: the int16 1, see ``_block_4x4``)."""
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
        amin, amax = _span(vmin, vmax, rows, i, 4)
        jstart = i if upper and i > c0 else c0
        ii = i - r0
        for j in range(jstart, c1, 4):
            b0 = cols[j]
            b1 = cols[j + 1]
            b2 = cols[j + 2]
            b3 = cols[j + 3]
            jj = j - c0
            bmin, bmax = _span(vmin, vmax, cols, j, 4)
            if amax < bmin or amin > bmax:  # rows always worse / always better: no comparing
                _fill_block(gt, lt, has_ties, ii, jj, 4, 4, amin > bmax, m)
                continue
            for sub in range(nsub):
                Rs = R[sub]
                # One call site, so the block's loop is inlined and compiled once: with ties, a
                # second pass over the transposed block counts "<".
                for t in range(2 if has_ties else 1):
                    p0, p1, p2, p3 = (a0, a1, a2, a3) if t == 0 else (b0, b1, b2, b3)
                    q0, q1, q2, q3 = (b0, b1, b2, b3) if t == 0 else (a0, a1, a2, a3)
                    c = _block_4x4(Rs, p0, p1, p2, p3, q0, q1, q2, q3, sd, one)
                    if t == 0:
                        for a in range(4):
                            for b in range(4):
                                gt[ii + a, jj + b] += np.int32(c[4 * a + b]) & 0xFFFF
                    else:
                        for a in range(4):
                            for b in range(4):
                                lt[ii + a, jj + b] += np.int32(c[4 * b + a]) & 0xFFFF


@numba.njit(inline="always")
def _store_tile(
    out, gt, lt, rows, cols, i0, i1, j0, j1, n, layout, has_ties, kind, add, s_total, s_real
):  # fmt: skip
    """Write the counts of one tile to ``out`` (see :func:`dominance_tiles`)."""
    inv = 1.0 / (2.0 * s_total)
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


@_jit_avx2(nogil=True, cache=True)
def _dominance_range_avx2(
    lo, hi, tid, R, rows, cols, n_rows, n, tasks, T, layout, has_ties, out, kind, add, s_total,
    s_real, vmin, vmax, one,
):  # fmt: skip
    gt = np.empty((T, T), np.int32)
    lt = np.empty((T, T) if has_ties else (1, 1), np.int32)
    for p in range(lo, hi):
        bi = tasks[p, 0]
        bj = tasks[p, 1]
        i0 = bi * T
        i1 = min(i0 + T, n_rows)
        j0 = bj * T
        j1 = min(j0 + T, n)
        _tile_counts_avx2(
            R, rows, cols, i0, i1, j0, j1, layout != 2 and bi == bj, has_ties, gt, lt, vmin,
            vmax, s_real,
        )  # fmt: skip
        _store_tile(
            out, gt, lt, rows, cols, i0, i1, j0, j1, n, layout, has_ties, kind, add, s_total,
            s_real,
        )  # fmt: skip


@_jit512(nogil=True, cache=True)
def _dominance_range_avx512(
    lo, hi, tid, R, rows, cols, n_rows, n, tasks, T, layout, has_ties, out, kind, add, s_total,
    s_real, vmin, vmax, one,
):  # fmt: skip
    gt = np.empty((T, T), np.int32)
    lt = np.empty((T, T) if has_ties else (1, 1), np.int32)
    for p in range(lo, hi):
        bi = tasks[p, 0]
        bj = tasks[p, 1]
        i0 = bi * T
        i1 = min(i0 + T, n_rows)
        j0 = bj * T
        j1 = min(j0 + T, n)
        _tile_counts_avx512(
            R, rows, cols, i0, i1, j0, j1, layout != 2 and bi == bj, has_ties, gt, lt, vmin,
            vmax, s_real, one,
        )  # fmt: skip
        _store_tile(
            out, gt, lt, rows, cols, i0, i1, j0, j1, n, layout, has_ties, kind, add, s_total,
            s_real,
        )  # fmt: skip


_DOMINANCE_RANGES = {"avx2": _dominance_range_avx2, "avx512": _dominance_range_avx512}


def dominance_tiles(
    R, rows, cols, n_rows, n, tasks, T, layout, has_ties, out, kind, add, s_total, s_real, vmin,
    vmax, kernel=None,
):  # fmt: skip
    """Exact pairwise counts or probabilities over tiles, on all threads.

    Output row ``i`` and column ``j`` refer to groups ``rows[i]`` and ``cols[j]`` (both padded
    to a multiple of 4 plus 4 with the index of an all-zero row of ``R``). ``R`` holds per-draw
    scores (``rank_draws`` mode 0) as ``(n_chunks, N + 1, chunk)``, unused draws zero. ``tasks``
    lists the ``(row tile, column tile)`` pairs of edge ``T`` (a multiple of 4).

    ``layout``: 0 = square ``(n, n)`` over the tiles of the upper triangle, writing both
    triangles; 1 = condensed upper triangle (scipy order); 2 = rows ``(n_rows, n)``. ``out`` is
    flat. ``kind``: 0 = ``D = (S + gt - lt) / (2 S)`` (lower triangle from ``(S + lt - gt)``, the
    same float64 operations in every path); 1 = counts (``gt``; in the square layout ``lt``
    below the diagonal); 2 = ``s_real + gt - lt`` (accumulated over passes, see
    :func:`finalize_diff`). ``add`` adds instead of writing. Counters are 16-bit in the inner
    loop: chunks of at most 65,535 draws. The diagonal is not written. ``s_real`` is the number
    of real draws in ``R``; ``vmin``/``vmax`` (from :func:`row_stats`) let blocks of pairs whose
    scores never cross be filled without comparisons. ``kernel`` names one of
    :data:`DOMINANCE_KERNELS` (default :data:`DOMINANCE_KERNEL`); all give the same counts.
    """
    func = _DOMINANCE_RANGES[DOMINANCE_KERNEL if kernel is None else kernel]
    n_tasks = tasks.shape[0]
    # About 64 hand-outs per thread: the last one is short, so a thread that finishes early (or
    # loses its core to another process) waits little for the others.
    batch = max(1, n_tasks // (64 * thread_count()))
    parallel_for(
        func, n_tasks, R, rows, cols, n_rows, n, tasks, T, layout, has_ties, out, kind, add,
        s_total, s_real, vmin, vmax, np.int16(1), batch=batch,
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
