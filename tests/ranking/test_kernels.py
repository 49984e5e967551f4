"""Tests of the compiled dominance/ranking kernels against brute-force numpy (no sampling)."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from skhier import ranking as rk
from skhier.diagnostics import mcse_mean
from skhier.ranking import _kernels as K
from skhier.ranking import pairwise as dominance_module
from skhier.ranking.table import _hdi_numpy, _mcse_ranks


def brute_counts(draws, ascending=False):
    """gt[i, j] = #{s: i strictly better than j}; eq[i, j] = #{s: tie} (broadcast, small only)."""
    x = np.asarray(draws, dtype=float).reshape(-1, np.shape(draws)[-1])
    if ascending:
        x = -x
    gt = (x[:, :, None] > x[:, None, :]).sum(axis=0)
    eq = (x[:, :, None] == x[:, None, :]).sum(axis=0)
    return gt, eq


def brute_dominance(draws, ascending=False, diagonal=0.5):
    gt, eq = brute_counts(draws, ascending)
    S = np.shape(draws)[-2] * (np.shape(draws)[0] if np.ndim(draws) == 3 else 1)
    D = (gt + 0.5 * eq) / S
    np.fill_diagonal(D, diagonal)
    return D


def make_draws(rng, shape, kind):
    x = rng.normal(np.linspace(-1, 1, shape[-1]), 1.0, size=shape)
    if kind == "rounded":  # many ties
        x = np.round(x, 1)
    elif kind == "pooled":  # complete pooling: every group equal in every draw
        x = np.broadcast_to(x[..., :1], shape).copy()
    elif kind == "zeros":  # -0.0 and 0.0 must tie
        x = np.round(x)
        x[x == 0] = -0.0
        x[..., ::3][x[..., ::3] == 0] = 0.0
    return x


SHAPES = [(1, 5, 1), (1, 7, 2), (2, 33, 3), (3, 21, 67), (2, 101, 130), (1, 37, 263)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["continuous", "rounded"])
@pytest.mark.parametrize("ascending", [False, True])
def test_kernel_matches_brute_force(shape, kind, ascending):
    rng = np.random.default_rng(sum(shape))
    x = make_draws(rng, shape, kind)
    D = rk.dominance(x, ascending=ascending, order=None, dtype=np.float64, backend="numba")
    ref = brute_dominance(x, ascending)
    np.testing.assert_allclose(D.to_numpy(), ref, rtol=0, atol=1e-15)
    # exact: the same float64 operations as the numpy reference path
    D_np = rk.dominance(x, ascending=ascending, order=None, dtype=np.float64, backend="numpy")
    assert np.array_equal(D.to_numpy(), D_np.to_numpy())
    # counts are integer-exact
    C = rk.dominance(x, ascending=ascending, order=None, counts=True, backend="numba")
    gt, _ = brute_counts(x, ascending)
    np.fill_diagonal(gt, 0)
    assert C.to_numpy().dtype == np.uint16
    assert np.array_equal(C.to_numpy(), gt)


@pytest.mark.parametrize("kind", ["continuous", "rounded", "pooled", "zeros"])
def test_symmetry_and_ties(kind):
    x = make_draws(np.random.default_rng(3), (2, 45, 70), kind)
    for dtype, tol in [(np.float64, 2e-16), (np.float32, 1e-7)]:
        D = rk.dominance(x, dtype=dtype, backend="numba").to_numpy().astype(np.float64)
        off = ~np.eye(70, dtype=bool)
        np.testing.assert_allclose((D + D.T)[off], 1.0, rtol=0, atol=2 * tol)
        np.testing.assert_array_equal(np.diag(D), 0.5)
    if kind == "pooled":
        np.testing.assert_array_equal(D, 0.5)


@pytest.mark.parametrize("ascending", [False, True])
@pytest.mark.parametrize("order", ["rank", None])
def test_top_k_rows_equal_full_rows(ascending, order):
    x = make_draws(np.random.default_rng(5), (2, 60, 150), "rounded")
    full = rk.dominance(x, ascending=ascending, order=order, dtype=np.float64, backend="numba")
    for k in (1, 7, 64, 150):
        top = rk.dominance(
            x, ascending=ascending, order=order, top_k=k, dtype=np.float64, backend="numba"
        )
        assert top.shape == (k, 150)
        assert top.columns.equals(full.columns)
        # the rows are the k best groups by expected rank
        best = rk.rank_table(x, ascending=ascending, top_k=1).index[:k]
        assert top.index.equals(best)
        np.testing.assert_array_equal(top.to_numpy(), full.loc[top.index].to_numpy())
    counts = rk.dominance(x, ascending=ascending, order=order, top_k=9, counts=True)
    full_counts = rk.dominance(x, ascending=ascending, order=order, counts=True)
    np.testing.assert_array_equal(counts.to_numpy(), full_counts.loc[counts.index].to_numpy())


def test_condensed_is_upper_triangle():
    x = make_draws(np.random.default_rng(6), (2, 40, 97), "rounded")
    full = rk.dominance(x, dtype=np.float64, backend="numba")
    cond = rk.dominance(x, dtype=np.float64, condensed=True, backend="numba")
    iu = np.triu_indices(97, 1)
    np.testing.assert_array_equal(cond.to_numpy(), full.to_numpy()[iu])
    assert cond.attrs["labels"] == full.index.tolist()
    i, j = 5, 40  # documented position formula
    assert cond.iloc[i * 97 - i * (i + 1) // 2 + j - i - 1] == full.iloc[i, j]
    xc = make_draws(np.random.default_rng(6), (2, 40, 97), "continuous")
    cc = rk.dominance(xc, counts=True, condensed=True, backend="numba")
    np.testing.assert_array_equal(
        cc.to_numpy(), rk.dominance(xc, counts=True, backend="numba").to_numpy()[iu]
    )
    with pytest.raises(ValueError, match="ties"):
        rk.dominance(x, counts=True, condensed=True, backend="numba")


@pytest.mark.parametrize("kind", ["continuous", "rounded"])
def test_multipass_and_subchunks_are_exact(monkeypatch, kind):
    """Draws split over several passes (small rank buffer) or inner chunks give the same D."""
    x = make_draws(np.random.default_rng(7), (3, 111, 77), kind)
    cases = [dict(), dict(counts=True), dict(top_k=9), dict(condensed=True)]
    refs = [rk.dominance(x, dtype=np.float64, backend="numba", **kw) for kw in cases]
    for buffer, sub in [(78 * 2 * 48, 32_768), (10**9, 64), (78 * 2 * 96, 32)]:
        monkeypatch.setattr(dominance_module, "RANK_BUFFER_BYTES", buffer)
        monkeypatch.setattr(dominance_module, "MAX_SUBCHUNK", sub)
        for kw, ref in zip(cases, refs, strict=True):
            if kind == "rounded" and "condensed" in kw and kw.get("counts"):
                continue
            got = rk.dominance(x, dtype=np.float64, backend="numba", **kw)
            np.testing.assert_array_equal(got.to_numpy(), ref.to_numpy())


@pytest.mark.parametrize("ascending", [False, True])
def test_separated_groups_skip_exactly(monkeypatch, ascending):
    """Blocks of groups whose draws never cross are filled without comparing: still exact."""
    rng = np.random.default_rng(13)
    effects = np.repeat(np.linspace(-30, 30, 40), 5)  # 40 clusters of 5 overlapping groups
    x = np.round(rng.normal(effects, 0.4, size=(2, 70, 200)), 1)
    for buffer in (10**9, 201 * 2 * 48):  # one pass, and three passes of 48 draws
        monkeypatch.setattr(dominance_module, "RANK_BUFFER_BYTES", buffer)
        D = rk.dominance(x, ascending=ascending, order=None, dtype=np.float64, backend="numba")
        np.testing.assert_allclose(D.to_numpy(), brute_dominance(x, ascending), atol=1e-15)
        D_np = rk.dominance(x, ascending=ascending, order=None, dtype=np.float64, backend="numpy")
        np.testing.assert_array_equal(D.to_numpy(), D_np.to_numpy())
        C = rk.dominance(x, ascending=ascending, order=None, counts=True, backend="numba")
        gt, _ = brute_counts(x, ascending)
        np.fill_diagonal(gt, 0)
        np.testing.assert_array_equal(C.to_numpy(), gt)
        top = rk.dominance(x, ascending=ascending, top_k=30, dtype=np.float64, backend="numba")
        full = rk.dominance(x, ascending=ascending, dtype=np.float64, backend="numba")
        np.testing.assert_array_equal(top.to_numpy(), full.to_numpy()[:30])
    assert ((D.to_numpy() == 0) | (D.to_numpy() == 1)).mean() > 0.9


def test_large_draw_counts_use_uint32():
    x = np.random.default_rng(8).normal(size=(1, 70_000, 3))
    C = rk.dominance(x, counts=True, order=None, backend="numba")
    assert C.to_numpy().dtype == np.uint32
    gt, _ = brute_counts(x)
    np.fill_diagonal(gt, 0)
    np.testing.assert_array_equal(C.to_numpy(), gt)


@pytest.mark.parametrize("kind", ["continuous", "rounded", "zeros"])
@pytest.mark.parametrize("ascending", [False, True])
def test_rank_draws_modes(kind, ascending):
    x = make_draws(np.random.default_rng(9), (1, 50, 45), kind)[0]
    y = -x if ascending else x
    worse = (y[:, None, :] < y[:, :, None]).sum(axis=2)  # (S, N) #strictly worse
    tied = (y[:, None, :] == y[:, :, None]).sum(axis=2) - 1
    expected = {
        0: worse,
        1: 2 * (45 - worse - tied) + tied,  # 2 * average rank
        2: 45 - worse - tied,  # best position of the tie group
    }
    for mode, ref in expected.items():
        out = np.zeros((1, 45, 50), dtype=np.int32)
        tiecorr, ties, bad = K.rank_draws(np.ascontiguousarray(x), ascending, out, mode)
        np.testing.assert_array_equal(out[0].T, ref)
        np.testing.assert_array_equal(tiecorr, tied.sum(axis=0))
        np.testing.assert_array_equal(ties, tied.sum(axis=1) // 2)
        assert not bad.any()


def test_rank_draws_flags_nonfinite():
    x = np.random.default_rng(10).normal(size=(40, 9))
    x[3, 2] = np.nan
    x[7, 0] = np.inf
    x[7, 1] = -np.inf
    out = np.zeros((1, 9, 40), dtype=np.int16)
    _, _, bad = K.rank_draws(x, False, out, 0)
    assert bad[3] == 1 and bad[7] == 2 and bad.sum() == 3


def test_value_stats_match_numpy():
    x = np.random.default_rng(11).gamma(2.0, size=(301, 21))
    ref = np.linspace(0.5, 3.0, 301)
    stats = np.empty((4, 21))
    counts = np.empty((3, 21), dtype=np.int64)
    K.value_stats(x, ref, 0.9, stats, counts)
    np.testing.assert_allclose(stats[0], x.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(stats[1], x.std(axis=0, ddof=1), rtol=1e-12)
    lo, hi = _hdi_numpy(x, 0.9)
    np.testing.assert_array_equal(stats[2], lo)
    np.testing.assert_array_equal(stats[3], hi)
    np.testing.assert_array_equal(counts[0], (x <= ref[:, None]).sum(axis=0))
    np.testing.assert_array_equal(counts[2], (x > ref[:, None]).sum(axis=0))


def test_rank_mcse_uses_the_diagnostics_mcse():
    """MCSEs of ranks and of rank indicators equal mcse_mean on the same series, in row blocks."""
    rng = np.random.default_rng(12)
    n_chains, n_draws, n = 3, 400, 30
    e = rng.normal(size=(n, n_chains, n_draws))
    ar = np.empty_like(e)
    ar[..., 0] = e[..., 0]
    phi = np.linspace(0.0, 0.97, n)[:, None]
    for t in range(1, n_draws):
        ar[..., t] = phi * ar[..., t - 1] + e[..., t]
    V = np.round(ar.reshape(n, -1) * 10).astype(np.int32)
    ref = mcse_mean(V.astype(float), n_chains, n_draws)
    ref_ind = mcse_mean((V <= 0).astype(float), n_chains, n_draws)
    assert np.isfinite(ref).all() and ref.min() > 0
    for max_bytes in (1, 7 * V.shape[1] * 8, 2**30):  # one row, seven rows, all rows per block
        np.testing.assert_allclose(_mcse_ranks(V, None, n_chains, n_draws, max_bytes), ref)
        np.testing.assert_allclose(_mcse_ranks(V, 0, n_chains, n_draws, max_bytes), ref_ind)
    # rows whose indicator is constant, known from their counts, get 0 without computing
    W = V.copy()
    W[:4], W[10:13] = 100, -100  # never / always at most the threshold
    count = (W <= -25).sum(axis=1)
    ref_rare = mcse_mean((W <= -25).astype(float), n_chains, n_draws)
    assert (ref_rare[:4] == 0).all() and (ref_rare[10:13] == 0).all() and ref_rare[5] > 0
    for max_bytes in (1, 2**30):
        got = _mcse_ranks(W, -25, n_chains, n_draws, max_bytes, count=count)
        np.testing.assert_allclose(got, ref_rare, atol=1e-15)


def test_256_bit_codegen_even_if_numba_was_used_first():
    """The kernels get their own LLVM features although another library compiled with numba first.

    The ranking kernels: +prefer-256-bit; the dominance kernels: 512-bit vectors for "avx512",
    256-bit vectors without AVX-512 for "avx2"; numba's own target is left alone.
    """
    code = textwrap.dedent(
        """
        import numba, numpy as np
        @numba.njit
        def other(x):  # e.g. nutpie/pytensor compiling first, with numba's defaults
            return x + 1
        other(1)
        from numba.core.registry import cpu_target
        from skhier.ranking import _kernels as K
        base = cpu_target.target_context.codegen()._tm_features
        assert "prefer-256-bit" not in base and "-avx512f" not in base
        def features(disp):
            return disp.targetctx.codegen()._tm_features.split(",")
        print(K.VECTOR_WIDTH, "+prefer-256-bit" in features(K._rank_range))
        print("-prefer-256-bit" in features(K._tile_counts_avx512))
        avx2 = features(K._tile_counts_avx2)
        print("-avx512f" in avx2 and "+prefer-256-bit" in avx2)
        """
    )
    env = dict(os.environ, SKHIER_NUMBA_VECTOR_WIDTH="256")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    if K.VECTOR_WIDTH == "native":
        pytest.skip("not an x86 host")
    assert out.stdout.split() == ["256", "True", "True", "True"]


@pytest.mark.parametrize("kind", ["continuous", "rounded"])
def test_every_dominance_kernel_gives_the_same_counts(kind):
    """Each register blocking (forced, whatever the CPU) counts exactly, on every tile edge."""
    assert K.DOMINANCE_KERNEL in K.DOMINANCE_KERNELS
    rng = np.random.default_rng(14)
    S, N = 83, 70  # neither a multiple of a vector's lanes nor of a block
    x = make_draws(rng, (1, S, N), kind)[0]
    R = np.zeros((1, N + 1, S), np.int16)
    _, ties, _ = K.rank_draws(np.ascontiguousarray(x), False, R, 0)
    assert bool(ties.any()) == (kind == "rounded")
    gt, _ = brute_counts(x)
    np.fill_diagonal(gt, 0)
    sums, vmin, vmax = K.row_stats(R, N, S)
    cols = dominance_module._pad4(np.arange(N), N)
    rows = dominance_module._pad4(np.arange(N)[::-1][:13], N)  # top-k rows in another order
    for kernel in K.DOMINANCE_KERNELS:
        for tile in (16, 24, 64):
            tasks = dominance_module._tile_tasks(N, N, tile, upper=True)
            out = np.zeros((N, N), np.uint16)
            K.dominance_tiles(
                R, cols, cols, N, N, tasks, tile, 0, ties.any(), out.reshape(-1), 1, False, S, S,
                vmin, vmax, kernel=kernel,
            )  # fmt: skip
            np.testing.assert_array_equal(out, gt, err_msg=f"{kernel}, tile {tile}")
            tasks = dominance_module._tile_tasks(13, N, tile, upper=False)
            top = np.zeros((13, N), np.uint16)
            K.dominance_tiles(
                R, rows, cols, 13, N, tasks, tile, 2, ties.any(), top.reshape(-1), 1, False, S, S,
                vmin, vmax, kernel=kernel,
            )  # fmt: skip
            expected = gt[np.arange(N)[::-1][:13]]
            expected[np.arange(13), np.arange(N)[::-1][:13]] = 0
            np.testing.assert_array_equal(top, expected, err_msg=f"{kernel} rows, tile {tile}")


def test_dominance_tile_fits_l2():
    assert K.dominance_tile(8000, l2_bytes=2 << 20) == 64
    assert K.dominance_tile(8000, l2_bytes=512 << 10) == 24
    assert K.dominance_tile(10**6, l2_bytes=1 << 20) == 16
    edge = K.dominance_tile(8000)
    assert 16 <= edge <= 64 and edge % 8 == 0


def test_import_skhier_does_not_import_numba():
    code = "import sys, skhier, skhier.ranking; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
