import numpy as np
import pandas as pd
import pytest

from skhier.design import build_design, build_factor, cell_statistics, parent_codes
from skhier.formula import parse_formula


def frame():
    return pd.DataFrame(
        {
            "y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "x": [1.0, 2.0, 1.5, 0.5, 2.5, 1.0],
            "gene": ["b", "b", "a", "a", "a", "c"],
            "sg": ["b1", "b2", "a1", "a1", "a2", "c1"],
            "batch": ["u", "v", "u", "v", "u", "v"],
        }
    )


def test_interaction_factor_keeps_only_observed_levels():
    df = frame()
    f = build_factor(df, ("gene", "sg"))
    # formulae would create 3 genes x 5 sgRNAs = 15 levels; 5 are observed.
    assert f.n_levels == 5
    assert list(f.labels) == ["a:a1", "a:a2", "b:b1", "b:b2", "c:c1"]
    assert list(f.display) == ["a1", "a2", "b1", "b2", "c1"]
    assert f.n_obs.tolist() == [2, 1, 1, 1, 1]
    assert (np.asarray(f.labels)[f.codes] == (df.gene + ":" + df.sg).to_numpy()).all()


def test_display_falls_back_to_joined_label_when_inner_not_unique():
    df = pd.DataFrame({"g": ["a", "b"], "s": ["1", "1"]})
    f = build_factor(df, ("g", "s"))
    assert list(f.display) == ["a:1", "b:1"]


def test_parent_codes_detects_nesting_and_crossing():
    df = frame()
    gene, sg, batch = (build_factor(df, (c,)) for c in ("gene", "sg", "batch"))
    assert parent_codes(sg, gene).tolist() == [0, 0, 1, 1, 2]
    assert parent_codes(gene, batch) is None


def test_design_chain_for_nesting_spelled_two_ways():
    df = frame()
    d1 = build_design(df, parse_formula("y ~ 0 + x:(1|gene/sg)"))
    d2 = build_design(df, parse_formula("y ~ 0 + x + (0 + x|gene) + (0 + x|sg)"))
    assert d1.chain == ["gene", "gene:sg"]
    assert d2.chain == ["gene", "sg"]
    np.testing.assert_array_equal(d1.cells, d2.cells)
    assert d1.find_factor("sg").name == "gene:sg"
    with pytest.raises(ValueError, match="choose from"):
        d1.find_factor("batch")


def test_crossed_factors_have_no_chain():
    d = build_design(frame(), parse_formula("y ~ x + (1|gene) + (1|batch)"))
    assert d.chain is None
    assert "crossed" in d.reason


def test_cell_statistics_match_direct_sums():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(100, 3))
    y = rng.normal(size=100)
    cells = rng.integers(0, 7, size=100)
    s = cell_statistics(W, y, cells, 7)
    for k in range(7):
        m = cells == k
        np.testing.assert_allclose(s["WW"][k], W[m].T @ W[m], atol=1e-12)
        np.testing.assert_allclose(s["Wy"][k], W[m].T @ y[m], atol=1e-12)
        assert s["n"][k] == m.sum()
        np.testing.assert_allclose(s["yy"][k], y[m] @ y[m])


def test_design_does_not_mutate_input():
    df = frame()
    before = df.copy()
    build_design(df, parse_formula("y ~ 0 + x:(1|gene/sg)"))
    pd.testing.assert_frame_equal(df, before)
