"""Tests for skhier.diagnostics.stats: the vectorized statistics against ArviZ."""

import warnings

import arviz as az
import numpy as np
import pytest

import skhier.diagnostics.stats as dg
from skhier.diagnostics import convergence_stats, ess_mean, mcse_mean
from tests.diagnostics.posteriors import ar1


def _cases():
    rng = np.random.default_rng(7)
    near = np.round(rng.standard_normal((4, 120, 6)), 1)
    # values differing only in their last bits: packed-key clashes, swapped pairs and runs
    near = near + rng.integers(0, 4, near.shape) * np.spacing(np.abs(near) + 1.0)
    signed_zero = rng.choice([-0.0, 0.0, 1.0, -1.0], size=(4, 100, 3))
    ulp_pairs = rng.standard_normal((4, 200, 5))  # isolated pairs one ulp apart: swapped keys
    src = ulp_pairs[:2, :40]
    step = rng.choice([-np.inf, np.nan, np.inf], size=src.shape)  # one ulp down, tie, up
    ulp_pairs[2:, :40] = np.where(np.isnan(step), src, np.nextafter(src, step))
    stuck = rng.standard_normal((4, 200, 4))
    stuck[1] = 0.7
    return {
        "iid": rng.standard_normal((4, 200, 8)),
        "ar_0.5": ar1(rng.standard_normal((4, 300)), 0.5)[..., None] * [1.0, 2.0],
        "ar_0.9": np.stack([ar1(rng.standard_normal((4, 300)), 0.9) for _ in range(3)], -1),
        "ar_0.995": ar1(rng.standard_normal((4, 400)), 0.995)[..., None],  # FFT path
        "antithetic": ar1(rng.standard_normal((4, 200)), -0.6)[..., None],
        "odd_draws": rng.standard_normal((3, 101, 4)),
        "ties": rng.poisson(2.0, (4, 150, 4)).astype(float),
        "binary": (rng.random((4, 100, 3)) < 0.05).astype(float),
        "near_ties": near,
        "signed_zero": signed_zero,
        "ulp_pairs": ulp_pairs,
        "stuck_chain": stuck,
        "shifted": rng.standard_normal((4, 200, 3)) + np.arange(4)[:, None, None],
        "heavy_tails": rng.standard_cauchy((4, 200, 3)),
        "large_offset": 1e6 + rng.standard_normal((4, 200, 2)),
        "two_chains": rng.standard_normal((2, 250, 3)),
        "short": rng.standard_normal((2, 7, 2)),
        "one_chain": rng.standard_normal((1, 200, 2)),
    }


CASES = _cases()


@pytest.fixture
def arviz_without_numba():
    """ArviZ's numba variance is the one-pass formula, inexact with large offsets."""
    enabled = az.Numba.numba_flag
    az.Numba.disable_numba()
    yield
    if enabled:
        az.Numba.enable_numba()


@pytest.fixture(params=["numpy", "compiled"])
def stats_path(request, monkeypatch):
    """Run a test through the NumPy path and through the compiled kernel (any size)."""
    monkeypatch.setattr(dg, "_COMPILED_MIN_PARAMS", 0 if request.param == "compiled" else 2**62)
    return request.param


@pytest.mark.parametrize("name", list(CASES))
def test_convergence_stats_match_arviz(name, stats_path, arviz_without_numba):
    x = CASES[name]
    idata = az.from_dict(posterior={"x": x})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # arviz on degenerate inputs
        ref = {
            "ess_bulk": az.ess(idata, method="bulk")["x"].values,
            "ess_tail": az.ess(idata, method="tail")["x"].values,
            "r_hat": az.rhat(idata)["x"].values,
            "mcse_mean": az.mcse(idata)["x"].values,
        }
    mine = convergence_stats(x)
    for key, expected in ref.items():
        np.testing.assert_allclose(mine[key], expected, rtol=1e-9, atol=0, err_msg=key)
    np.testing.assert_allclose(mine["mean"], x.mean(axis=(0, 1)))
    np.testing.assert_allclose(mine["sd"], x.reshape(-1, x.shape[2]).std(axis=0, ddof=1))


def test_exact_sort_path_matches_arviz(monkeypatch, arviz_without_numba):
    # with more than 2**20 draws no column index fits in a packed key: argsort everywhere
    monkeypatch.setattr(dg, "_index_bits", lambda n: 21)
    for name in ("iid", "ties", "signed_zero", "odd_draws"):
        x = CASES[name]
        idata = az.from_dict(posterior={"x": x})
        mine = convergence_stats(x)
        np.testing.assert_allclose(mine["ess_bulk"], az.ess(idata)["x"].values, rtol=1e-9)
        np.testing.assert_allclose(mine["r_hat"], az.rhat(idata)["x"].values, rtol=1e-9)


def test_compiled_kernel_hands_slow_mixing_rows_to_the_fft_path(monkeypatch):
    # ar_0.995 needs far more lags than the kernel computes directly: every row goes back to
    # the NumPy path; with a cap of 2 lags even iid rows do, and nothing changes
    calls = []
    original = dg._stats_block

    def spy(x, grid=None, compiled=False):
        calls.append((x.shape[0], compiled))
        return original(x, grid, compiled)

    monkeypatch.setattr(dg, "_COMPILED_MIN_PARAMS", 0)
    monkeypatch.setattr(dg, "_stats_block", spy)
    iid = np.random.default_rng(3).standard_normal((4, 400, 8))
    x = np.concatenate([CASES["ar_0.995"], iid], axis=2)
    ref = {k: v.copy() for k, v in convergence_stats(x).items()}
    assert calls == [(9, True), (1, False)]  # only the slow row was computed again
    monkeypatch.setattr(dg, "_MAX_DIRECT_LAG", 2)
    calls.clear()
    again = convergence_stats(x)
    assert calls == [(9, True), (9, False)]
    for key in ref:
        np.testing.assert_allclose(again[key], ref[key], rtol=1e-12, err_msg=key)


def test_chunks_and_threads_agree(monkeypatch, stats_path):
    x = CASES["ar_0.9"]
    x = np.concatenate([x, x * 2.0, x + 1.0], axis=2)
    whole = convergence_stats(x)
    monkeypatch.setattr(dg, "_CHUNK_ELEMENTS", 2 * x.shape[0] * x.shape[1])  # 2 per block
    for n_jobs in (1, 2, -1):
        parts = convergence_stats(x, n_jobs=n_jobs)
        for key in whole:
            np.testing.assert_allclose(parts[key], whole[key], rtol=1e-12, err_msg=key)


def test_convergence_stats_shapes_and_errors():
    rng = np.random.default_rng(0)
    out = convergence_stats(rng.standard_normal((2, 50, 3, 4)))
    assert all(v.shape == (3, 4) for v in out.values())
    assert convergence_stats(rng.standard_normal((2, 50)))["r_hat"].shape == ()
    with pytest.raises(ValueError, match="n_chains, n_draws"):
        convergence_stats(np.zeros(5))
    x = rng.standard_normal((2, 50, 2))
    x[0, 3, 1] = np.inf
    out = convergence_stats(x)
    assert np.isfinite(out["r_hat"][0]) and np.isnan(out["r_hat"][1])


MCSE_CASES = ["iid", "ar_0.9", "ar_0.995", "odd_draws", "binary", "stuck_chain"]


@pytest.mark.parametrize("name", MCSE_CASES)
def test_mcse_mean_matches_arviz(name, arviz_without_numba):
    x = CASES[name]
    c, d, p = x.shape
    rows = np.moveaxis(x, 2, 0).reshape(p, c * d)  # chain-major series, one per row
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = az.mcse(az.from_dict(posterior={"x": x}))["x"].values
    np.testing.assert_allclose(mcse_mean(rows, c, d), ref, rtol=1e-9)
    np.testing.assert_allclose(mcse_mean(rows, c, d, max_bytes=1), ref, rtol=1e-9)  # row blocks


@pytest.mark.parametrize("name", MCSE_CASES)
def test_ess_mean_matches_arviz(name, arviz_without_numba):
    x = CASES[name]
    c, d, p = x.shape
    rows = np.moveaxis(x, 2, 0).reshape(p, c * d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = az.ess(az.from_dict(posterior={"x": x}), method="mean")["x"].values
    np.testing.assert_allclose(ess_mean(rows, c, d), ref, rtol=1e-9)
    np.testing.assert_allclose(ess_mean(rows, c, d, max_bytes=1), ref, rtol=1e-9)


def test_mcse_mean_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"\(G, 40\); got shape \(3, 39\)"):
        mcse_mean(np.zeros((3, 39)), 4, 10)
