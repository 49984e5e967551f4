"""Count screens: reading and checking tables, size factors, the model, MAGeCK-layout output."""

import io
import logging
import sys

import numpy as np
import pandas as pd
import pytest

from skhier.cli import main
from skhier.datasets import load_mageck_demo1
from skhier.screens import (
    check_count_table,
    count_screen,
    gene_summary,
    read_count_table,
    read_design_matrix,
    sgrna_summary,
    size_factors,
)


@pytest.fixture
def table():
    return pd.DataFrame(
        {
            "sgRNA": ["s1", "s2", "s3", "s4"],
            "Gene": ["A", "A", "B", "C"],
            "T0": [10, 20, 0, 5],
            "T1": [5, 40, 0, 7],
        }
    )


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t: t.assign(T1=[5, -1, 0, 7]), r"sample 'T1'.*negative or not integers: -1.*'s2'"),
        (lambda t: t.assign(T1=[5, 2.5, 0, 7]), r"sample 'T1'.*not integers: 2\.5"),
        (
            lambda t: t.assign(T1=[5, None, 0, 7]),
            r"sample 'T1'.*missing or non-numeric count\(s\): nan in rows 1 \(sgRNAs 's2'\)",
        ),
        (
            lambda t: t.assign(sgRNA=["s1", "s1", "s3", "s4"]),
            r"duplicated sgRNA ids: 's1' \(rows 0, 1\)",
        ),
        (lambda t: t.assign(Gene=["A", None, "B", "C"]), r"1 sgRNA\(s\) without a gene.*'s2'"),
        (lambda t: t.assign(T1=0), r"sample 'T1'.*no reads at all"),
    ],
)
def test_bad_tables_are_named(table, change, match):
    bad = change(table)
    before = bad.copy()
    with pytest.raises(ValueError, match=match):
        check_count_table(bad)
    pd.testing.assert_frame_equal(bad, before)


def test_missing_sample_label(table):
    with pytest.raises(
        ValueError, match=r"sample 'T2' \(treatment\) is not a column.*\['T0', 'T1'\]"
    ):
        count_screen(table, control="T0", treatment="T2")


def test_sample_in_both_roles(table):
    with pytest.raises(ValueError, match="both control and treatment"):
        count_screen(table, control="T0,T1", treatment="T1")


def test_all_zero_sgrnas_are_dropped_and_reported(table):
    screen = count_screen(table, control="T0", treatment="T1")
    assert screen.dropped["sgRNA"].tolist() == ["s3"]
    assert set(screen.data["sgRNA"]) == {"s1", "s2", "s4"}
    # a gene with one sgRNA stays
    assert "C" in set(screen.data["gene"])


@pytest.mark.parametrize("sep", ["\t", ","])
@pytest.mark.parametrize("gz", [False, True])
def test_read_count_table_sniffs_and_decompresses(tmp_path, table, sep, gz):
    path = tmp_path / ("c.txt.gz" if gz else "c.txt")
    table.to_csv(path, sep=sep, index=False)
    got = read_count_table(path)
    assert got.columns.tolist() == ["sgRNA", "gene", "T0", "T1"]
    assert got["T1"].dtype == np.int64
    np.testing.assert_array_equal(got["T0"], table["T0"])


def test_read_count_table_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_count_table(tmp_path / "nope.txt")


def test_size_factors():
    c = pd.DataFrame({"a": [10, 20, 30, 0], "b": [30, 60, 90, 5]})
    med = size_factors(c, "median")
    assert med["b"] / med["a"] == pytest.approx(3.0)
    tot = size_factors(c, "total")
    assert tot["b"] / tot["a"] == pytest.approx(185 / 60)
    ctrl = size_factors(c, "control", control=[True, False, False, False])
    assert ctrl["b"] / ctrl["a"] == pytest.approx(3.0)
    with pytest.raises(ValueError, match="normalization='mean' is not valid"):
        size_factors(c, "mean")


def test_design_matrix(tmp_path):
    path = tmp_path / "design.txt"
    path.write_text("Samples\tbaseline\tdrug\nT0\t1\t0\nT1\t1\t1\n")
    assert read_design_matrix(path)["drug"].tolist() == [0, 1]
    path.write_text("Samples\tbaseline\tdrug\nT0\t1\t0\nT1\t1\t2\n")
    with pytest.raises(ValueError, match="sample 'T1' has 2 in column 'drug'"):
        read_design_matrix(path)


def test_design_matrix_gives_one_effect_per_condition():
    design = pd.DataFrame(
        {
            "Samples": ["HL60.initial", "KBM7.initial", "HL60.final", "KBM7.final"],
            "baseline": [1, 1, 1, 1],
            "HL60-sel": [0, 0, 1, 0],
            "KBM7": [0, 0, 0, 1],
        }
    )
    screen = count_screen(load_mageck_demo1(), design=design)
    assert screen.conditions == ["HL60_sel", "KBM7"]
    assert "HL60_sel:(1|gene/sgRNA) + KBM7:(1|gene/sgRNA)" in screen.formula
    assert screen.ranker("HL60-sel").column == "HL60_sel"
    with pytest.raises(ValueError, match="condition='K562' is not a condition"):
        screen.ranker("K562")


@pytest.fixture(scope="module")
def demo_fit():
    counts = load_mageck_demo1()
    screen = count_screen(
        counts, control="HL60.initial,KBM7.initial", treatment="HL60.final,KBM7.final"
    )
    ranker = screen.ranker(random_state=0, n_jobs=1)
    ranker.fit(screen.data)
    return screen, ranker


def test_gene_summary_layout(demo_fit):
    screen, ranker = demo_fit
    g = gene_summary(ranker, screen)
    assert g.columns[:8].tolist() == [
        "Gene",
        "sgRNA",
        "treatment|beta",
        "treatment|z",
        "treatment|p-value",
        "treatment|fdr",
        "treatment|wald-p-value",
        "treatment|wald-fdr",
    ]
    assert {"rank", "rank_low", "rank_high", "p_top_k", "treatment|lfsr"} <= set(g.columns)
    assert len(g) == screen.counts["gene"].nunique()
    assert g["sgRNA"].sum() == len(screen.counts)
    # negative selection: the first gene is the most depleted
    assert g["treatment|beta"].iloc[0] == g["treatment|beta"].min()
    assert ((g["treatment|p-value"] >= 0) & (g["treatment|p-value"] <= 1)).all()


def test_sgrna_summary_layout(demo_fit):
    screen, ranker = demo_fit
    s = sgrna_summary(ranker, screen)
    assert s.columns[:7].tolist() == [
        "sgrna",
        "Gene",
        "control_count",
        "treatment_count",
        "control_mean",
        "treat_mean",
        "LFC",
    ]
    assert s["beta"].notna().all() and len(s) == len(screen.counts)
    # the posterior sgRNA effects follow the raw fold changes
    assert np.corrcoef(s["beta"], s["LFC"])[0, 1] > 0.7


def test_cli_screen(tmp_path, capsys):
    counts = tmp_path / "counts.txt"
    load_mageck_demo1().to_csv(counts, sep="\t", index=False)
    out = tmp_path / "demo"
    code = main(
        [
            "screen",
            str(counts),
            "--control",
            "HL60.initial,KBM7.initial",
            "--treatment",
            "HL60.final,KBM7.final",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "Top genes" in text and "Gaussian approximation" in text
    g = pd.read_csv(f"{out}.gene_summary.txt", sep="\t")
    assert "treatment|beta" in g.columns


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("tty", [True, False])
def test_cli_screen_shows_its_stages_on_a_terminal(tmp_path, monkeypatch, tty):
    counts = tmp_path / "counts.txt"
    load_mageck_demo1().to_csv(counts, sep="\t", index=False)
    err = _Terminal() if tty else io.StringIO()
    before = list(logging.getLogger("skhier").handlers)
    monkeypatch.setattr(sys, "stderr", err)
    args = ["screen", str(counts), "--control", "HL60.initial", "--treatment", "HL60.final"]
    assert main([*args, "--out", str(tmp_path / "x")]) == 0
    text = err.getvalue()
    stages = ["estimating alpha", "pilot run", "sampling the scales", "diagnosing", "ranking",
              "writing the gene and sgRNA summaries"]  # fmt: skip
    if tty:
        assert all(stage in text for stage in stages), text
        assert "s] " in text  # with the elapsed time
    else:
        assert not any(stage in text for stage in stages), text
    assert logging.getLogger("skhier").handlers == before  # detached afterwards


def test_cli_screen_normalizes_on_control_genes(tmp_path, capsys):
    table = load_mageck_demo1()
    counts = tmp_path / "counts.txt"
    table.to_csv(counts, sep="\t", index=False)
    genes = tmp_path / "controls.txt"
    genes.write_text("# non-targeting\n" + "\n".join(table["gene"].unique()[:40]) + "\n\n")
    args = ["screen", str(counts), "--control", "HL60.initial", "--treatment", "HL60.final",
            "--out", str(tmp_path / "c"), "--no-progress"]  # fmt: skip
    assert main([*args, "--norm-method", "control", "--control-gene", str(genes)]) == 0
    assert "Size factors (control)" in capsys.readouterr().out
    # a missing file and an empty one: exit 2, one line naming the option and the file
    assert main([*args, "--norm-method", "control", "--control-gene", str(tmp_path / "no")]) == 2
    assert "--control-gene" in capsys.readouterr().err
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    code = main([*args, "--norm-method", "control", "--control-sgrna", str(tmp_path / "empty.txt")])
    assert code == 2 and "holds no ids" in capsys.readouterr().err


def test_cli_screen_bad_sample(tmp_path, capsys):
    counts = tmp_path / "counts.txt"
    load_mageck_demo1().to_csv(counts, sep="\t", index=False)
    code = main(
        [
            "screen",
            str(counts),
            "--control",
            "T0",
            "--treatment",
            "HL60.final",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert code == 2
    assert "sample 'T0' (control) is not a column" in capsys.readouterr().err
