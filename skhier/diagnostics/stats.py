"""Rank-normalized split R-hat, bulk and tail ESS and MCSE, vectorized over parameters.

The one implementation of these statistics in skhier: :func:`~skhier.diagnostics.diagnose`
uses it for the sampler checks and the rank table uses :func:`mcse_mean` for the Monte Carlo
errors of its summaries. The statistics follow Vehtari et al. (2021) exactly as ArviZ computes
them (``az.rhat``, ``az.ess(method="bulk" | "tail")``, ``az.mcse``), organised as in
arviz-stats: an algorithm on a 2-D block (parameters x draws), then batching over blocks of
parameters on threads, then the array front ends. Within a block, one packed-key sort gives the
ranks, autocovariances are computed directly for the first lags and by FFT only for the slowly
mixing parameters. Posteriors with at least ``_COMPILED_MIN_PARAMS`` parameters go through a
compiled kernel instead (:mod:`skhier.diagnostics._stats_numba`: one exact radix sort and one
pass per parameter, the same statistics to rounding); smaller ones never load numba.
``benchmarks/bench_diagnostics.py`` times both against ArviZ.

References
----------
Vehtari, A., Gelman, A., Simpson, D., Carpenter, B. and Bürkner, P.-C. (2021). Rank-normalization,
folding, and localization: an improved R-hat for assessing convergence of MCMC. Bayesian Analysis
16(2), 667-718.
"""

from __future__ import annotations

import math

import numpy as np

from skhier._parallel import parallel_for, thread_limit

__all__ = ["STAT_COLUMNS", "bfmi", "convergence_stats", "ess_mean", "mcse_mean"]

#: Columns of the per-parameter table.
STAT_COLUMNS = ("mean", "sd", "mcse_mean", "ess_bulk", "ess_tail", "r_hat")
# Elements per chunk of the vectorized statistics: ~16 MB float64 arrays, small enough to be
# reused by the allocator (no page faults per chunk) and to stay near the caches.
_CHUNK_ELEMENTS = 2**21
# Autocovariance lags computed directly (in stages) before falling back to an FFT.
_DIRECT_LAGS = (8, 32)
# Largest lag the compiled kernel computes directly before handing a parameter to the FFT path.
_MAX_DIRECT_LAG = 64
# Parameters from which the compiled kernel is used (below, the NumPy path avoids loading it).
_COMPILED_MIN_PARAMS = 2048


def _z_grid(n_total: int) -> np.ndarray:
    """Return the normal scores of the half-integer ranks ``k / 2`` (Blom offset 3/8)."""
    from scipy import special

    k = np.arange(2 * n_total + 1, dtype=float)
    with np.errstate(divide="ignore"):
        return special.ndtri((k / 2.0 - 0.375) / (n_total + 0.25))


def _order_key(values: np.ndarray) -> np.ndarray:
    """Return order-preserving unsigned 64-bit keys of finite float64 values (a new array).

    Non-negative values get their bits with the sign bit set; negative values the two's
    complement of their bits, so that ``-0.0`` and ``0.0`` share a key.
    """
    u = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    sign = u >> np.uint64(63)
    key = np.negative(sign)
    key |= np.uint64(1 << 63)
    key ^= u
    key += sign
    return key


def _orig_values(flat: np.ndarray, med: np.ndarray | None, rows, cols) -> np.ndarray:
    """Values ``flat[rows, cols]``, folded about ``med`` (``|x - med|``) when it is given."""
    v = flat[rows, cols]
    return v if med is None else np.abs(v - med[rows])


def _index_bits(n: int) -> int:
    """Low bits of a packed key that hold a column index below ``n`` (more than 20: no packing)."""
    return max(1, int(n - 1).bit_length())


def _sorted_ranks(
    key: np.ndarray | None, flat: np.ndarray, med: np.ndarray | None, kind: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort each row and find the tied neighbours, through one sort of packed 64-bit keys.

    Each value is an order-preserving integer key whose lowest bits hold its original column,
    so a plain SIMD ``np.sort`` (or a linear merge of pre-sorted runs with ``kind="stable"``)
    yields the order; about twice as fast as ``np.argsort``. Neighbours whose keys agree on the
    retained bits are checked against the exact values: equal ones are ties; rows with unequal
    ones (values differing only in the dropped bits) have the pair swapped into order, or, for
    longer runs (rare), are sorted again exactly.

    Parameters
    ----------
    key : ndarray of uint64, shape (p, N), or None
        Packed keys (consumed: sorted in place), in any arrangement of each row; None when
        ``N`` is too large to pack an index (see :func:`_index_bits`): exact sorts only.
    flat, med
        Original values and folding point (None: no folding), to check neighbours exactly.
    kind : str
        Sort kind (``"stable"`` merges pre-sorted runs in linear time).

    Returns
    -------
    order : ndarray of shape (p, N)
        Original column at each sorted position.
    tie_rows, tie_cols : ndarray
        Sorted positions ``(r, c)`` whose value equals the one at ``(r, c + 1)``, in row-major
        order.
    """
    p, n = flat.shape
    bits = _index_bits(n)
    if key is not None:
        low = np.uint64((1 << bits) - 1)
        key.sort(axis=1, kind=kind)
        high = key >> np.uint64(bits)
        clash = high[:, 1:] == high[:, :-1]
        del high
        key &= low
        order = key.view(np.int64)
        tie_r, tie_c = np.nonzero(clash)
        del clash
        bad = tie_r
        if tie_r.size:
            va = _orig_values(flat, med, tie_r, order[tie_r, tie_c])
            vb = _orig_values(flat, med, tie_r, order[tie_r, tie_c + 1])
            # a clash of two keys (a lone pair) is put in order by a swap; longer runs of
            # clashing keys with unequal values send their row to the exact sort
            flat_pos = tie_r * n + tie_c
            adjacent = np.diff(flat_pos) == 1
            lone = np.ones(tie_r.size, dtype=bool)
            lone[1:] &= ~adjacent
            lone[:-1] &= ~adjacent
            swap = lone & (va > vb)
            if swap.any():
                rs, cs = tie_r[swap], tie_c[swap]
                first = order[rs, cs]
                order[rs, cs] = order[rs, cs + 1]
                order[rs, cs + 1] = first
            bad = np.unique(tie_r[~lone & (va != vb)])
            equal = va == vb
            tie_r, tie_c = tie_r[equal], tie_c[equal]
    else:  # too many draws to pack an index: exact argsort everywhere
        order = np.empty((p, n), dtype=np.int64)
        tie_r = tie_c = np.zeros(0, dtype=np.intp)
        bad = np.arange(p)
    if bad.size:
        vals = flat[bad] if med is None else np.abs(flat[bad] - med[bad, None])
        exact = np.argsort(vals, axis=1, kind="stable")
        order[bad] = exact
        sv = np.take_along_axis(vals, exact, axis=1)
        rb, cb = np.nonzero(sv[:, 1:] == sv[:, :-1])
        keep = ~np.isin(tie_r, bad)
        tie_r = np.concatenate([tie_r[keep], bad[rb]])
        tie_c = np.concatenate([tie_c[keep], cb])
        o = np.lexsort((tie_c, tie_r))
        tie_r, tie_c = tie_r[o], tie_c[o]
    return order, tie_r, tie_c


def _normal_scores(
    order: np.ndarray, tie_r: np.ndarray, tie_c: np.ndarray, grid: np.ndarray
) -> np.ndarray:
    """Scatter the normal scores of the (tie-averaged) ranks back to the original columns."""
    p, n = order.shape
    z = np.empty((p, n))
    z[np.arange(p)[:, None], order] = grid[2 * np.arange(1, n + 1)]
    if tie_r.size:
        flat_pos = tie_r * n + tie_c
        start = np.ones(flat_pos.size, dtype=bool)
        start[1:] = np.diff(flat_pos) != 1
        first = np.flatnonzero(start)
        last = np.append(first[1:] - 1, flat_pos.size - 1)
        run_r = tie_r[first]
        c0 = tie_c[first]
        c1 = tie_c[last] + 1  # last sorted position of the tied run (inclusive)
        lengths = c1 - c0 + 1
        rows = np.repeat(run_r, lengths)
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        cols = np.repeat(c0, lengths) + offsets
        # twice the average 1-based rank of positions c0..c1 is c0 + c1 + 2
        z[rows, order[rows, cols]] = np.repeat(grid[c0 + c1 + 2], lengths)
    return z


def _rhat_split(y: np.ndarray) -> np.ndarray:
    """Classic R-hat of already split chains of normal scores ``y`` (p, chains, draws)."""
    n = y.shape[2]
    # one pass for sums and sums of squares: fine for normal scores (bounded, centred)
    sums = y.sum(axis=2)
    chain_mean = sums / n
    chain_var = (np.einsum("pmt,pmt->pm", y, y) - sums * chain_mean) / (n - 1)
    between = n * chain_mean.var(axis=1, ddof=1)
    within = chain_var.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n - 1) / n)


def _geyer_ess(rh: np.ndarray, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Geyer's initial monotone sequence estimator, vectorized (as ArviZ's ``_ess``).

    Parameters
    ----------
    rh : ndarray of shape (p, n_lags)
        Combined autocorrelations ``1 - (W - mean acov_t) / var_plus`` with ``rh[:, 0] = 1``.
    n : int
        Draws per (split) chain.
    size : int
        Total number of draws.

    Returns
    -------
    ess : ndarray of shape (p,)
    done : ndarray of bool, shape (p,)
        False where the truncation lag lies beyond ``n_lags`` (more lags are needed).
    """
    p, n_lags = rh.shape
    npairs = n_lags // 2
    pair = rh[:, 0 : 2 * npairs : 2] + rh[:, 1 : 2 * npairs : 2]
    k = np.arange(npairs)
    cont = (2 * k + 1 < n - 3)[None, :] & (pair > 0)
    stop = ~cont
    done = stop.any(axis=1)
    j = np.argmax(stop, axis=1)
    j = np.where(done, j, 0)
    rows = np.arange(p)
    cummin = np.minimum.accumulate(pair, axis=1)
    head = np.concatenate([np.zeros((p, 1)), np.cumsum(cummin, axis=1)], axis=1)[rows, j]
    even = rh[rows, 2 * j]
    last = np.where((even > 0) | (pair[rows, j] >= 0), even, 0.0)
    last = np.where(j == 0, 1.0, last)
    tau = -1.0 + 2.0 * head + last
    tau = np.maximum(tau, 1.0 / np.log10(size))
    return size / tau, done


def _ess_split(y: np.ndarray, spread: np.ndarray | None = None) -> np.ndarray:
    """ESS of already split chains ``y`` (p, chains, draws), as ArviZ's ``_ess``.

    Autocovariances are computed directly for the first lags, which is enough for parameters
    that mix well; the rest get all lags from one FFT. ``spread`` (max - min of each row) may
    be passed when already known.
    """
    p, m, n = y.shape
    size = m * n
    out = np.full(p, np.nan)
    if n < 2:
        return out
    if spread is None:
        spread = y.max(axis=(1, 2)) - y.min(axis=(1, 2))
    const = spread < np.finfo(float).resolution
    out[const] = size
    live = np.flatnonzero(~const)
    if live.size == 0:
        return out
    y = y[live] if live.size < p else y
    chain_mean = y.mean(axis=2)
    yc = y - chain_mean[:, :, None]
    mean_var_raw = np.einsum("pmt,pmt->p", yc, yc) / (n * m)
    mean_var = mean_var_raw * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if m > 1:
        var_plus = var_plus + chain_mean.var(axis=1, ddof=1)
    ess = np.full(live.size, np.nan)
    todo = np.arange(live.size)
    acov = mean_var_raw[:, None]
    for n_lags in (*(L for L in _DIRECT_LAGS if L < n), None):
        if n_lags is None:  # all lags at once by FFT for the slowly mixing rest
            from scipy import fft

            nfft = fft.next_fast_len(2 * n, real=True)
            spec = fft.rfft(yc[todo], n=nfft, axis=2)
            spec = spec.real**2 + spec.imag**2
            acov = fft.irfft(spec, n=nfft, axis=2)[:, :, :n].mean(axis=1) / n
        else:
            sub = yc[todo] if todo.size < live.size else yc
            extra = np.empty((todo.size, n_lags - acov.shape[1]))
            for i, lag in enumerate(range(acov.shape[1], n_lags)):
                extra[:, i] = np.einsum("pmt,pmt->p", sub[:, :, : n - lag], sub[:, :, lag:])
            acov = np.concatenate([acov, extra / (n * m)], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            rh = 1.0 - (mean_var[todo, None] - acov) / var_plus[todo, None]
        rh[:, 0] = 1.0
        est, done = _geyer_ess(rh, n, size)
        if n_lags is None:
            done[:] = True
        ess[todo[done]] = est[done]
        todo = todo[~done]
        acov = acov[~done]
        if todo.size == 0:
            break
    ess[~np.isfinite(var_plus) | ~(var_plus > 0)] = np.nan
    out[live] = ess
    return out


def _split(x: np.ndarray) -> np.ndarray:
    """Split each chain of ``x`` (p, chains, draws) in two halves (middle draw dropped if odd)."""
    p, c, d = x.shape
    half = d // 2
    if d % 2 == 0:
        return x.reshape(p, 2 * c, half)
    return np.concatenate([x[:, :, :half], x[:, :, d - half :]], axis=2).reshape(p, 2 * c, half)


def _quantile_position(nn: int, prob: float) -> tuple[int, float]:
    """Position ``k`` and weight ``g`` of quantile ``prob`` of ``nn`` sorted values.

    The quantile is ``(1 - g) * sorted[k - 1] + g * sorted[k]``: scipy's
    ``mquantiles(alphap=1, betap=1)`` (R type 7, as ArviZ), operation for operation.
    """
    aleph = nn * prob + (1.0 + prob * (1.0 - 1.0 - 1.0))
    k = int(math.floor(min(max(aleph, 1), nn - 1)))
    g = min(max(aleph - k, 0.0), 1.0)
    return k, g


def _stats_block_compiled(
    x: np.ndarray, flat: np.ndarray, m: int, grid: np.ndarray, res: dict
) -> dict[str, np.ndarray]:
    """Compute the statistics of :func:`_stats_block` with the compiled kernel (a pass per row).

    Rows whose ESS needs more than ``_MAX_DIRECT_LAG`` autocovariance lags are computed again
    by the NumPy path (every lag by FFT).
    """
    from skhier.diagnostics._stats_numba import rank_stats_rows

    p, c, d = x.shape
    nn = c * d
    spots = [_quantile_position(nn, prob) for prob in (0.05, 0.95)]
    q_at = np.array([k for k, _ in spots], dtype=np.int64)
    q_weight = np.array([g for _, g in spots])
    q = np.empty((p, 2))
    find_q = d % 2 == 0  # the split chains hold every draw: the quantiles come from their order
    if not find_q:
        sorted_full = np.sort(x.reshape(p, nn), axis=1)
        for i, (k, g) in enumerate(spots):
            q[:, i] = (1.0 - g) * sorted_full[:, k - 1] + g * sorted_full[:, k]
    out = np.empty((p, 5))
    done = np.empty(p, dtype=bool)
    rank_stats_rows(flat, grid, q, q_at, q_weight, find_q, m, _MAX_DIRECT_LAG, out, done)
    res["ess_bulk"], res["ess_tail"] = out[:, 0], out[:, 1]
    res["r_hat"] = out[:, 2] if c >= 2 else np.full(p, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        res["mcse_mean"] = res["sd"] / np.sqrt(out[:, 3])
    res["ptp"] = out[:, 4] if find_q else sorted_full[:, -1] - sorted_full[:, 0]
    if not done.all():
        slow = np.flatnonzero(~done)
        rest = _stats_block(np.ascontiguousarray(x[slow]), grid, compiled=False)
        for name in ("ess_bulk", "ess_tail", "r_hat", "mcse_mean"):
            res[name][slow] = rest[name]
    return res


def _stats_block(
    x: np.ndarray, grid: np.ndarray | None = None, compiled: bool = False
) -> dict[str, np.ndarray]:
    """All statistics for a block ``x`` of shape (p, chains, draws) of finite values.

    ``compiled`` sends everything after the mean and sd (sorts included) to the numba kernel
    (:func:`_stats_block_compiled`); the results agree with the NumPy path to rounding.
    """
    p, c, d = x.shape
    full = x.reshape(p, c * d)
    res = {"mean": full.mean(axis=1), "sd": full.std(axis=1, ddof=1)}
    if d < 4:
        for name in ("mcse_mean", "ess_bulk", "ess_tail", "r_hat"):
            res[name] = np.full(p, np.nan)
        res["ptp"] = np.ptp(full, axis=1)
        return res
    xs = _split(x)
    m, n = xs.shape[1], xs.shape[2]
    flat = xs.reshape(p, m * n)
    size = m * n
    if grid is None:
        grid = _z_grid(size)
    if compiled:
        return _stats_block_compiled(x, np.ascontiguousarray(flat), m, grid, res)
    rows = np.arange(p)[:, None]

    # bulk: rank-normalized split chains
    bits = _index_bits(size)
    packed = bits <= 20
    low = np.uint64((1 << bits) - 1) if packed else None
    key = None
    if packed:
        key = _order_key(flat)
        key &= ~low
        key |= np.arange(size, dtype=np.uint64)
    order, tie_r, tie_c = _sorted_ranks(key, flat, None, "quicksort")
    sorted_vals = flat[rows, order]
    spread = sorted_vals[:, -1] - sorted_vals[:, 0]
    z = _normal_scores(order, tie_r, tie_c, grid).reshape(p, m, n)
    rhat_bulk = _rhat_split(z)
    res["ess_bulk"] = _ess_split(z, np.where(spread > 0, np.inf, 0.0))
    del z, tie_r, tie_c

    # tail R-hat: rank-normalized |x - median|, sorted by merging two pre-sorted runs
    half = size // 2
    if size % 2:
        med = sorted_vals[:, half]
        k_low = half + 1
    else:
        med = (sorted_vals[:, half - 1] + sorted_vals[:, half]) / 2.0
        k_low = half
    folded = np.concatenate(
        [med[:, None] - sorted_vals[:, k_low - 1 :: -1], sorted_vals[:, k_low:] - med[:, None]],
        axis=1,
    )
    f_key = None
    if packed:  # non-negative floats: their bits are already order-preserving keys
        f_key = folded.view(np.uint64)
        f_key &= ~low & np.uint64((1 << 63) - 1)  # and the sign bit: -0.0 - 0.0 is -0.0
        f_key[:, :k_low] |= order[:, k_low - 1 :: -1].view(np.uint64)
        f_key[:, k_low:] |= order[:, k_low:].view(np.uint64)
    f_order, tie_r, tie_c = _sorted_ranks(f_key, flat, med, "stable")
    del folded, f_key
    zf = _normal_scores(f_order, tie_r, tie_c, grid).reshape(p, m, n)
    rhat_tail = _rhat_split(zf)
    del zf, f_order, tie_r, tie_c
    rhat = np.where(rhat_tail > rhat_bulk, rhat_tail, rhat_bulk)  # Python's max(bulk, tail)
    if c < 2:
        rhat[:] = np.nan
    res["r_hat"] = rhat

    # tail ESS: indicators of the 5% and 95% quantiles (R type 7, as ArviZ's mquantiles)
    sorted_full = sorted_vals if d % 2 == 0 else np.sort(full, axis=1)
    nn = sorted_full.shape[1]
    res["ptp"] = sorted_full[:, -1] - sorted_full[:, 0]
    ess_tail = None
    for prob in (0.05, 0.95):
        k, g = _quantile_position(nn, prob)
        q = (1.0 - g) * sorted_full[:, k - 1] + g * sorted_full[:, k]
        ind = (xs <= q[:, None, None]).astype(float)
        mixed = (sorted_vals[:, 0] <= q) & (sorted_vals[:, -1] > q)
        e = _ess_split(ind, np.where(mixed, 1.0, 0.0))
        ess_tail = e if ess_tail is None else np.where(e < ess_tail, e, ess_tail)
    res["ess_tail"] = ess_tail

    # MCSE of the mean: sd / sqrt(ESS of the raw split chains)
    with np.errstate(divide="ignore", invalid="ignore"):
        res["mcse_mean"] = res["sd"] / np.sqrt(_ess_split(xs, spread))
    return res


def _stats_matrix(values: np.ndarray, n_jobs: int | None = None) -> dict[str, np.ndarray]:
    """Statistics for ``values`` of shape (chains, draws, n_params), chunked over parameters.

    Besides the table's columns, returns ``finite`` (all draws finite) and ``ptp`` (range of
    the draws, NaN where not finite).
    """
    c, d, n_par = values.shape
    out = {name: np.full(n_par, np.nan) for name in (*STAT_COLUMNS, "ptp")}
    out["finite"] = np.ones(n_par, dtype=bool)
    if n_par == 0:
        return out
    step = max(1, _CHUNK_ELEMENTS // max(1, c * d))
    grid = _z_grid(2 * c * (d // 2)) if d >= 4 else None
    compiled = n_par >= _COMPILED_MIN_PARAMS

    def work(start: int) -> None:
        stop = min(start + step, n_par)
        block = np.ascontiguousarray(np.moveaxis(values[:, :, start:stop], 2, 0), dtype=np.float64)
        finite = np.isfinite(block).all(axis=(1, 2))
        out["finite"][start:stop] = finite
        if finite.all():
            res = _stats_block(block, grid, compiled)
            for name in (*STAT_COLUMNS, "ptp"):
                out[name][start:stop] = res[name]
            return
        if finite.any():
            idx = np.flatnonzero(finite)
            res = _stats_block(block[idx], grid, compiled)
            for name in (*STAT_COLUMNS, "ptp"):
                out[name][start + idx] = res[name]
        bad = start + np.flatnonzero(~finite)
        with np.errstate(invalid="ignore"):
            out["mean"][bad] = block[~finite].mean(axis=(1, 2))

    def run(lo: int, hi: int, tid: int) -> None:
        for block in range(lo, hi):
            work(block * step)

    # numpy releases the GIL in sorting, einsum and the element-wise work
    with thread_limit(n_jobs):
        parallel_for(run, -(-n_par // step), batch=1)
    return out


def convergence_stats(values, *, n_jobs: int | None = None) -> dict[str, np.ndarray]:
    """Mean, sd, MCSE, bulk and tail ESS and R-hat of every element of a draws array.

    Rank-normalized split-R-hat and bulk/tail ESS (Vehtari et al. 2021), computed as ArviZ
    computes them (``az.rhat``, ``az.ess(method="bulk" | "tail")``, ``az.mcse``) but vectorized
    over all elements at once.

    Parameters
    ----------
    values : array-like of shape (n_chains, n_draws, ...)
        Posterior draws; any trailing shape.
    n_jobs : int, default=None
        Threads working on blocks of parameters: None uses the current limit
        (``skhier._parallel.thread_limit``, else every core), -1 every core, ``k`` at most ``k``.

    Returns
    -------
    stats : dict of str to ndarray
        ``mean``, ``sd`` (``ddof=1``), ``mcse_mean``, ``ess_bulk``, ``ess_tail`` and ``r_hat``,
        each of shape ``values.shape[2:]``. Elements with non-finite draws get NaN statistics;
        R-hat is NaN with a single chain and everything but the mean and sd with fewer than
        4 draws.

    See Also
    --------
    diagnose : Checks a whole InferenceData with these statistics.

    Examples
    --------
    >>> import numpy as np
    >>> from skhier.diagnostics import convergence_stats
    >>> rng = np.random.default_rng(0)
    >>> stats = convergence_stats(rng.normal(size=(4, 1000, 3)))
    >>> sorted(stats)
    ['ess_bulk', 'ess_tail', 'mcse_mean', 'mean', 'r_hat', 'sd']
    >>> bool((stats["r_hat"] < 1.01).all()), bool((stats["ess_bulk"] > 3000).all())
    (True, True)
    """
    arr = np.asarray(values)
    if arr.ndim < 2:
        raise ValueError(f"values must have shape (n_chains, n_draws, ...); got shape {arr.shape}.")
    shape = arr.shape[2:]
    flat = arr.reshape(arr.shape[0], arr.shape[1], -1)
    if not np.issubdtype(flat.dtype, np.floating):
        flat = flat.astype(np.float64)
    res = _stats_matrix(flat, n_jobs)
    return {name: res[name].reshape(shape) for name in STAT_COLUMNS}


# --------------------------------------------------------------------------------------------
# Reading posteriors and sample statistics
# --------------------------------------------------------------------------------------------


def bfmi(energy: np.ndarray) -> np.ndarray:
    """E-BFMI per chain (as ``az.bfmi``): mean squared energy change over the energy variance."""
    energy = np.asarray(energy, dtype=float)
    if energy.shape[1] < 2:
        return np.full(energy.shape[0], np.nan)
    num = np.square(np.diff(energy, axis=1)).mean(axis=1)
    den = energy.var(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


def mcse_mean(values, n_chains: int, n_draws: int, *, max_bytes: int = 64 * 2**20) -> np.ndarray:
    """Monte Carlo standard error of the mean of each row, as ArviZ's ``mcse(method="mean")``.

    The rank table uses it for the MCSE of its expected ranks and probabilities, with the same
    ESS as :func:`convergence_stats`.

    Parameters
    ----------
    values : array-like of shape (G, n_chains * n_draws)
        One series per row, chains concatenated (chain-major).
    n_chains : int
        Number of chains.
    n_draws : int
        Draws per chain.
    max_bytes : int, default=64 MiB
        Working memory per block of rows; blocks run on as many threads as the current
        ``n_jobs`` allows.

    Returns
    -------
    mcse : ndarray of shape (G,)
        ``sd / sqrt(ess)`` with the split-chain ESS of Vehtari et al. (2021) and Geyer's
        initial monotone sequence; NaN with fewer than 4 draws per chain.

    Raises
    ------
    ValueError
        If ``values`` does not have ``n_chains * n_draws`` columns.

    See Also
    --------
    convergence_stats : Every statistic of a draws array.

    Examples
    --------
    >>> import numpy as np
    >>> from skhier.diagnostics import mcse_mean
    >>> x = np.random.default_rng(1).normal(size=(2, 4 * 1000))  # iid: about 1 / sqrt(4000)
    >>> np.round(mcse_mean(x, 4, 1000), 3)
    array([0.016, 0.015])
    """
    ess, sd = _mean_ess(values, n_chains, n_draws, max_bytes)
    with np.errstate(divide="ignore", invalid="ignore"):
        return sd / np.sqrt(ess)


def ess_mean(values, n_chains: int, n_draws: int, *, max_bytes: int = 64 * 2**20) -> np.ndarray:
    """Effective sample size of the mean of each row, as ArviZ's ``ess(method="mean")``.

    PSIS-LOO's relative efficiency is their mean over the parameters, divided by the number
    of draws (:func:`skhier.scoring.loo`).

    Parameters
    ----------
    values : array-like of shape (G, n_chains * n_draws)
        One series per row, chains concatenated (chain-major).
    n_chains : int
        Number of chains.
    n_draws : int
        Draws per chain.
    max_bytes : int, default=64 MiB
        Working memory per block of rows; blocks run on as many threads as the current
        ``n_jobs`` allows.

    Returns
    -------
    ess : ndarray of shape (G,)
        Split-chain ESS of the raw values (Geyer's initial monotone sequence); NaN with fewer
        than 4 draws per chain.

    Raises
    ------
    ValueError
        If ``values`` does not have ``n_chains * n_draws`` columns.

    See Also
    --------
    mcse_mean : The Monte Carlo standard error of the same means.

    Examples
    --------
    >>> import numpy as np
    >>> from skhier.diagnostics import ess_mean
    >>> x = np.random.default_rng(1).normal(size=(2, 4 * 1000))  # iid: about 4,000
    >>> bool(np.all(np.abs(ess_mean(x, 4, 1000) - 4000) < 400))
    True
    """
    return _mean_ess(values, n_chains, n_draws, max_bytes)[0]


def _mean_ess(values, n_chains, n_draws, max_bytes):
    """Split-chain ESS and sd of each row of (G, chains * draws), blocks on the thread pool."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != n_chains * n_draws:
        raise ValueError(
            f"values must have shape (G, n_chains * n_draws) = (G, {n_chains * n_draws}); got "
            f"shape {values.shape}."
        )
    G = values.shape[0]
    ess = np.full(G, np.nan)
    sd = np.full(G, np.nan)
    if n_draws < 4 or G == 0:
        return ess, sd
    step = max(1, int(max_bytes // (values.shape[1] * 8 * 6)))

    def run(lo: int, hi: int, tid: int) -> None:
        for b in range(lo, hi):
            rows = values[b * step : (b + 1) * step]
            xs = _split(rows.reshape(rows.shape[0], n_chains, n_draws))
            sd[b * step : (b + 1) * step] = rows.std(axis=1, ddof=1)
            spread = rows.max(axis=1) - rows.min(axis=1)
            ess[b * step : (b + 1) * step] = _ess_split(xs, spread)

    parallel_for(run, -(-G // step), batch=1)
    return ess, sd
