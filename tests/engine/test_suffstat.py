"""The sufficient-statistics engine: crossed factors, per-term parametrization."""

import numpy as np
import pandas as pd
import pytest

from skhier import HierarchicalRanker
from skhier.design import build_design
from skhier.engine.suffstat import cell_index, choose_parametrization
from skhier.formula import parse_formula
from skhier.plan import make_plan

CROSSED = "y ~ 1 + x + (0 + x|gene) + (1|batch)"


@pytest.fixture(scope="module")
def crossed():
    rng = np.random.default_rng(0)
    rows = [(f"g{g}", f"b{b}") for g in range(8) for b in range(4) for _ in range(10)]
    df = pd.DataFrame(rows, columns=["gene", "batch"])
    gene_effect = rng.normal(0, 1, 8)
    batch_effect = rng.normal(0, 0.5, 4)
    df["x"] = rng.uniform(0.5, 2, len(df))
    g = df["gene"].str[1:].astype(int).to_numpy()
    b = df["batch"].str[1:].astype(int).to_numpy()
    df["y"] = 1 + df["x"] * (1 + gene_effect[g]) + batch_effect[b] + rng.normal(0, 0.5, len(df))
    return df


def test_cells_are_observed_combinations(crossed):
    d = build_design(crossed, parse_formula(CROSSED))
    cells, n, codes = cell_index(d)
    assert n == 32 and cells.max() == 31
    for f, c in codes.items():
        np.testing.assert_array_equal(c[cells], d.factors[f].codes)


def test_auto_parametrization_follows_information(crossed):
    # 40 rows per gene and gene slopes spread by 1: data-rich -> centered.
    # 160 replicate groups of 2 rows with no effect: data-poor -> non-centered.
    df = crossed.assign(rep=[f"r{i // 2}" for i in range(len(crossed))])
    p = parse_formula("y ~ 1 + x + (0 + x|gene) + (1|rep)")
    plan = make_plan({"formula": p.formula}, df)
    assert choose_parametrization(plan, "auto") == {"x|gene": "centered", "1|rep": "noncentered"}
    assert choose_parametrization(plan, "noncentered") == {
        "x|gene": "noncentered",
        "1|rep": "noncentered",
    }
    assert choose_parametrization(plan, {"x|gene": "centered"})["1|rep"] == "noncentered"


def test_crossed_model_uses_suffstat_and_agrees_with_bambi(crossed):
    kw = dict(formula=CROSSED, chains=2, draws=1000, tune=1000, random_state=0, on_fail="ignore")
    fast = HierarchicalRanker(**kw).fit(crossed)
    slow = HierarchicalRanker(engine="bambi", **kw).fit(crossed)
    assert fast.engine_ == "suffstat"
    assert "crossed" in fast.diagnostics_.info["fallback_reason"]
    assert set(fast.diagnostics_.info["parametrization"]) == {"x|gene", "1|batch"}
    a, b = fast.rank_, slow.rank_.loc[fast.rank_.index]
    se = np.sqrt(a["sd"] ** 2 / 200 + b["sd"] ** 2 / 200)
    assert (np.abs(a["mean"] - b["mean"]) < 5 * se).all()
    np.testing.assert_allclose(a["sd"], b["sd"], rtol=0.2)
    assert list(a.index[:3]) == list(slow.rank_.index[:3])


def test_forced_suffstat_on_nested_data_agrees_with_collapsed(forum_sim):
    _, df = forum_sim
    kw = dict(
        formula="Ht ~ 0 + H0:(1|gene/sgRNA)",
        chains=2,
        draws=1000,
        tune=1000,
        random_state=0,
        on_fail="ignore",
        level="gene",
    )
    a = HierarchicalRanker(**kw).fit(df).rank_
    b = HierarchicalRanker(engine="suffstat", **kw).fit(df).rank_.loc[a.index]
    se = np.sqrt(a["sd"] ** 2 / 1000 + b["sd"] ** 2 / 200)
    assert (np.abs(a["mean"] - b["mean"]) < 5 * se).all()
    np.testing.assert_allclose(a["sd"], b["sd"], rtol=0.25)


def test_suffstat_rejects_non_gaussian(crossed):
    counts = crossed.assign(y=np.round(crossed["y"]).clip(lower=0))  # a valid Poisson response
    with pytest.raises(ValueError, match="engine='suffstat' cannot fit this model: family"):
        HierarchicalRanker(formula=CROSSED, engine="suffstat", family="poisson").fit(counts)
