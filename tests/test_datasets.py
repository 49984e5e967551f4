"""Tests for skhier.datasets (MAGeCK's demo data and results)."""

from importlib import resources

import numpy as np
import pandas as pd
import pytest
from sklearn.utils import Bunch

from skhier.datasets import (
    load_mageck_demo1,
    load_mageck_demo1_results,
    load_mageck_leukemia,
    load_mageck_leukemia_results,
)

WIDE_COLUMNS = ["sgRNA", "gene", "HL60.initial", "KBM7.initial", "HL60.final", "KBM7.final"]
TIDY_COLUMNS = ["sgRNA", "gene", "cell_line", "initial", "final"]
STATS = ["beta", "z", "p_value", "fdr", "wald_p_value", "wald_fdr"]


def _check_wide(counts, n_sgrnas, n_genes):
    assert isinstance(counts, pd.DataFrame)
    assert counts.columns.tolist() == WIDE_COLUMNS
    assert counts.shape == (n_sgrnas, 6)
    assert not counts.isna().any().any()
    assert pd.api.types.is_string_dtype(counts["sgRNA"])
    assert pd.api.types.is_string_dtype(counts["gene"])
    for column in WIDE_COLUMNS[2:]:
        assert counts[column].dtype == np.int64
        assert (counts[column] >= 0).all()
    assert counts["sgRNA"].is_unique
    assert counts["gene"].nunique() == n_genes
    assert (counts.groupby("sgRNA")["gene"].nunique() == 1).all()
    # MAGeCK's sgRNA ids start with the gene symbol
    assert (counts["sgRNA"].str.rsplit("_", n=1).str[0] == counts["gene"]).all()


def _check_tidy(tidy, wide):
    assert tidy.columns.tolist() == TIDY_COLUMNS
    assert tidy.shape == (2 * len(wide), 5)
    assert not tidy.isna().any().any()
    assert tidy["initial"].dtype == np.int64 and tidy["final"].dtype == np.int64
    for column in ["sgRNA", "gene", "cell_line"]:
        assert pd.api.types.is_string_dtype(tidy[column])
    assert sorted(tidy["cell_line"].unique()) == ["HL60", "KBM7"]
    assert not tidy.duplicated(["sgRNA", "cell_line"]).any()
    # the long form holds exactly the wide table's counts
    for cell in ["HL60", "KBM7"]:
        part = tidy[tidy["cell_line"] == cell].set_index("sgRNA")
        ref = wide.set_index("sgRNA")
        np.testing.assert_array_equal(part.loc[ref.index, "initial"], ref[f"{cell}.initial"])
        np.testing.assert_array_equal(part.loc[ref.index, "final"], ref[f"{cell}.final"])
        assert (part.loc[ref.index, "gene"] == ref["gene"]).all()


def test_leukemia_counts_wide():
    counts = load_mageck_leukemia()
    # MAGeCK's table: 1,000 genes with 10 sgRNAs each except CCDC11 (9): 9,999 sgRNAs
    _check_wide(counts, 9999, 1000)
    sizes = counts.groupby("gene").size()
    assert sizes.max() == 10 and sizes.idxmin() == "CCDC11" and sizes.min() == 9
    assert counts.iloc[0].tolist() == ["A1CF_m52595977", "A1CF", 213, 274, 883, 175]
    assert counts[WIDE_COLUMNS[2:]].sum().tolist() == [5487099, 4555297, 12079801, 13431714]


def test_leukemia_counts_tidy():
    wide = load_mageck_leukemia()
    tidy = load_mageck_leukemia(tidy=True)
    _check_tidy(tidy, wide)


def test_leukemia_bunch():
    bunch = load_mageck_leukemia(as_frame=False)
    assert isinstance(bunch, Bunch)
    assert bunch.data.shape == (9999, 4) and bunch.data.dtype == np.int64
    assert bunch.feature_names == WIDE_COLUMNS[2:]
    assert len(bunch.sgRNA) == len(bunch.gene) == 9999
    assert "MAGeCK" in bunch.DESCR and "BSD" in bunch.DESCR
    tidy = load_mageck_leukemia(as_frame=False, tidy=True)
    assert tidy.data.shape == (19998, 2)
    assert tidy.feature_names == ["initial", "final"]
    assert set(tidy.cell_line) == {"HL60", "KBM7"}
    frame = load_mageck_leukemia(tidy=True)
    np.testing.assert_array_equal(tidy.data, frame[["initial", "final"]].to_numpy())


def test_leukemia_results():
    mle = load_mageck_leukemia_results()
    expected = ["gene", "n_sgrnas"] + [f"{c}_{s}" for c in ["HL60", "KBM7"] for s in STATS]
    assert mle.columns.tolist() == expected
    assert mle.shape == (1000, 14)
    assert not mle.isna().any().any()
    assert pd.api.types.is_string_dtype(mle["gene"])
    assert mle["gene"].is_unique
    assert mle["n_sgrnas"].dtype == np.int64
    for column in expected[2:]:
        assert mle[column].dtype == np.float64
        if "p_value" in column or "fdr" in column:
            assert mle[column].between(0, 1).all()
    counts = load_mageck_leukemia()
    assert set(mle["gene"]) == set(counts["gene"])
    sizes = counts.groupby("gene").size()
    np.testing.assert_array_equal(mle["n_sgrnas"], sizes.loc[mle["gene"]])
    assert mle.loc[mle["gene"] == "A1CF", "HL60_beta"].item() == pytest.approx(0.10368)


def test_leukemia_betas_agree_with_raw_fold_changes():
    # guards against misaligned rows or swapped columns: MLE betas track median sgRNA LFCs
    tidy = load_mageck_leukemia(tidy=True)
    mle = load_mageck_leukemia_results().set_index("gene")
    for cell in ["HL60", "KBM7"]:
        part = tidy[tidy["cell_line"] == cell]
        initial = part["initial"] / part["initial"].median()
        final = part["final"] / part["final"].median()
        lfc = np.log((final + 0.01) / (initial + 0.01)).groupby(part["gene"]).median()
        r = np.corrcoef(lfc.loc[mle.index], mle[f"{cell}_beta"])[0, 1]
        assert r > 0.75


def test_demo1_counts():
    counts = load_mageck_demo1()
    _check_wide(counts, 999, 100)
    assert counts.groupby("gene").size().idxmin() == "AHRR"
    _check_tidy(load_mageck_demo1(tidy=True), counts)
    # demo 1 is the first 999 rows of the leukemia table
    leukemia = load_mageck_leukemia().iloc[:999]
    pd.testing.assert_frame_equal(counts, leukemia)
    bunch = load_mageck_demo1(as_frame=False)
    assert bunch.data.shape == (999, 4)


def test_demo1_results():
    rra = load_mageck_demo1_results()
    sides = ["score", "p_value", "fdr", "rank", "good_sgrnas", "lfc"]
    expected = ["gene", "n_sgrnas"] + [f"{d}_{s}" for d in ["neg", "pos"] for s in sides]
    assert rra.columns.tolist() == expected
    assert rra.shape == (99, 14)
    assert not rra.isna().any().any()
    assert pd.api.types.is_string_dtype(rra["gene"])
    assert rra["gene"].is_unique
    for column in ["n_sgrnas", "neg_rank", "pos_rank", "neg_good_sgrnas", "pos_good_sgrnas"]:
        assert rra[column].dtype == np.int64
    for column in ["neg_score", "neg_p_value", "neg_fdr", "neg_lfc", "pos_lfc", "pos_fdr"]:
        assert rra[column].dtype == np.float64
    assert sorted(rra["neg_rank"]) == list(range(1, 100))
    assert sorted(rra["pos_rank"]) == list(range(1, 100))
    assert rra["neg_p_value"].between(0, 1).all() and rra["pos_fdr"].between(0, 1).all()
    assert (rra["neg_good_sgrnas"] <= rra["n_sgrnas"]).all()
    counts = load_mageck_demo1()
    assert set(rra["gene"]) == set(counts["gene"]) - {"AHNAK"}
    assert rra.iloc[0][["gene", "neg_rank"]].tolist() == ["ACTR8", 1]


def test_loaders_return_fresh_frames():
    first = load_mageck_demo1()
    first.loc[0, "HL60.initial"] = -1
    assert load_mageck_demo1().loc[0, "HL60.initial"] == 213


@pytest.mark.parametrize(
    ("kwargs", "name"), [({"as_frame": "yes"}, "as_frame"), ({"tidy": 1}, "tidy")]
)
def test_bad_flags(kwargs, name):
    with pytest.raises(TypeError, match=f"{name} must be True or False"):
        load_mageck_leukemia(**kwargs)
    with pytest.raises(TypeError, match=f"{name} must be True or False"):
        load_mageck_demo1(**kwargs)


def test_license_ships_with_data():
    data = resources.files("skhier.datasets") / "data"
    text = (data / "LICENSE_mageck.txt").read_text()
    assert "BSD 3-Clause" in text and "Wei Li" in text
    names = {p.name for p in data.iterdir()}
    assert {"leukemia.new.csv.gz", "demo1_sample.txt.gz", "demo1_rra.gene_summary.txt"} <= names
