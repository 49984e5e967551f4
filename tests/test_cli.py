"""The command line: one line on standard error for every user error, before any sampling."""

import io
import logging
import re
import sys
import warnings

import pandas as pd
import pytest

from skhier.cli import ProgressBar, main
from skhier.engine import REGISTRY, engine_names
from tests.helpers import FORUM

FAST = ["--draws", "100", "--tune", "100", "--chains", "2", "--seed", "0"]


@pytest.fixture(scope="module")
def screen():
    from skhier import ScreenSimulator

    sim = ScreenSimulator(n_genes=3, sgrnas_per_gene=2, n_samples=10, random_state=0)
    return sim.fit_transform()


@pytest.fixture
def csv(screen, tmp_path):
    path = tmp_path / "screen.csv"
    screen.to_csv(path, index=False)
    return path


@pytest.fixture
def tsv(screen, tmp_path):
    path = tmp_path / "screen.tsv"
    screen.to_csv(path, sep="\t", index=False)
    return path


@pytest.fixture
def no_sampling(monkeypatch):
    """Every engine's fit raises: an error reported with status 2 came before sampling."""

    def boom(*args, **kwargs):
        raise AssertionError("sampling started before the input was checked")

    engine_names()
    for engine in REGISTRY.values():
        monkeypatch.setattr(type(engine), "fit", boom)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(capsys, *argv, code=2):
    status, _, err = run(capsys, *argv)
    assert status == code, err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    return err


def test_simulate_into_a_missing_folder(capsys, tmp_path):
    missing = tmp_path / "missing" / "s.csv"
    err = one_line_error(capsys, "simulate", "--out", missing)
    assert err == (
        f"skhier simulate: error: --out '{missing}': the folder '{missing.parent}' does not "
        "exist; create it or write elsewhere.\n"
    )


def test_rank_checks_out_before_fitting(capsys, csv, tmp_path, no_sampling):
    missing = tmp_path / "missing" / "x.csv"
    err = one_line_error(capsys, "rank", csv, "--formula", FORUM, "--out", missing)
    assert f"skhier rank: error: --out '{missing}': the folder '{missing.parent}'" in err


def test_rank_refuses_out_that_is_a_folder(capsys, csv, tmp_path, no_sampling):
    err = one_line_error(capsys, "rank", csv, "--formula", FORUM, "--out", tmp_path)
    assert f"--out '{tmp_path}' is a folder; give a file name." in err


def test_rank_refuses_save_into_a_folder_of_other_files(capsys, csv, tmp_path, no_sampling):
    # the data file itself is in tmp_path: not a saved ranker
    err = one_line_error(capsys, "rank", csv, "--formula", FORUM, "--save", tmp_path)
    assert (
        f"skhier rank: error: {tmp_path} is not empty and holds no saved ranker (screen.csv); "
        "save into a new or empty folder.\n"
    ) == err


def test_rank_refuses_save_under_a_missing_folder(capsys, csv, tmp_path, no_sampling):
    target = tmp_path / "a" / "b"
    err = one_line_error(capsys, "rank", csv, "--formula", FORUM, "--save", target)
    assert f"--save '{target}': the folder '{target.parent}' does not exist" in err


def test_rank_refuses_a_plot_type_matplotlib_cannot_write(capsys, csv, tmp_path, no_sampling):
    err = one_line_error(capsys, "rank", csv, "--formula", FORUM, "--plot", tmp_path / "r.foo")
    assert "--plot" in err and ".foo is not an image type matplotlib writes" in err
    assert "'png'" in err


def test_rank_a_folder_as_the_data_file(capsys, tmp_path, no_sampling):
    err = one_line_error(capsys, "rank", tmp_path, "--formula", FORUM)
    assert err == (
        f"skhier rank: error: data file '{tmp_path}' is a folder; give the CSV or TSV file to "
        "read.\n"
    )


def test_rank_a_missing_data_file(capsys, tmp_path, no_sampling):
    err = one_line_error(capsys, "rank", tmp_path / "no.csv", "--formula", FORUM)
    assert f"data file '{tmp_path / 'no.csv'}' does not exist." in err


def test_rank_a_tab_separated_file_read_as_one_column(capsys, tsv, no_sampling):
    err = one_line_error(capsys, "rank", tsv, "--formula", FORUM, "--sep", ",")
    assert (
        f"data file '{tsv}' was read as one column ('gene\\tsgRNA\\tsample" in err
        and "with separator ','; its header looks tab-separated: pass --sep tab." in err
    )


def test_rank_a_semicolon_file(capsys, screen, tmp_path, no_sampling):
    path = tmp_path / "screen.txt"
    screen.to_csv(path, sep=";", index=False)
    err = one_line_error(capsys, "rank", path, "--formula", FORUM)
    assert "its header looks semicolon-separated: pass --sep ';'." in err


def test_rank_nan_suggests_the_missing_option(capsys, screen, tmp_path, no_sampling):
    path = tmp_path / "nan.csv"
    screen.assign(Ht=screen["Ht"].where(screen.index != 3)).to_csv(path, index=False)
    err = one_line_error(capsys, "rank", path, "--formula", FORUM)
    assert err == (
        "skhier rank: error: column 'Ht' has 1 NaN or infinite value(s) (first at row 3); "
        "clean them or pass --missing drop.\n"
    )


def test_rank_constant_response(capsys, screen, tmp_path, no_sampling):
    path = tmp_path / "constant.csv"
    screen.assign(Ht=1.0).to_csv(path, index=False)
    err = one_line_error(capsys, "rank", path, "--formula", FORUM)
    assert "error: the response 'Ht' is constant (every one of its 60 rows is 1)" in err


def test_rank_formula_whose_group_terms_vanish(capsys, csv, no_sampling):
    err = one_line_error(capsys, "rank", csv, "--formula", "Ht ~ 0 + H0:(2|gene/sgRNA)")
    assert "has the term 'H0:(2|gene/sgRNA)'" in err and "'H0:(1|gene/sgRNA)'" in err


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--family", "gausian"], "family='gausian' is not a Bambi family (did you mean"),
        (["--target-accept", "1.5"], "target_accept=1.5 is out of range: it must be in (0, 1)"),
        (["--tune", "-1"], "tune=-1 is out of range"),
        (["--seed", "-1"], "random_state=-1 is not valid"),
    ],
)
def test_rank_bad_options(capsys, csv, no_sampling, option, message):
    err = one_line_error(capsys, "rank", csv, "--formula", FORUM, *option)
    assert message in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["rank", "x.csv"], "skhier rank: error: the following arguments are required: --formula"),
        (["rank", "x.csv", "--formula", "y ~ x", "--missing", "keep"], "invalid choice: 'keep'"),
        (["rank", "x.csv", "--formula", "y ~ x", "--draws", "many"], "invalid int value"),
        (["fit"], "skhier: error: argument command: invalid choice: 'fit'"),
    ],
)
def test_usage_errors_are_one_line(capsys, argv, message):
    err = one_line_error(capsys, *argv)
    assert message in err and "--help" in err


def test_help_exits_zero(capsys):
    code, out, _ = run(capsys, "rank", "--help")
    assert code == 0
    for option in ("--family", "--tune", "--target-accept", "--save", "--plot", "--sep",
                   "--missing", "--debug"):  # fmt: skip
        assert option in out


def test_debug_shows_the_traceback(csv, tmp_path, no_sampling):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        main(["rank", str(csv), "--formula", FORUM, "--out", str(tmp_path / "no" / "x.csv"),
              "--debug"])  # fmt: skip


def test_an_unexpected_error_says_how_to_see_the_traceback(capsys, csv, monkeypatch):
    from skhier import HierarchicalRanker

    def fail(self, X, y=None):
        raise RuntimeError("the sampler\npanicked")

    monkeypatch.setattr(HierarchicalRanker, "fit", fail)
    err = one_line_error(capsys, "rank", csv, "--formula", FORUM, code=1)
    assert err == (
        "skhier rank: error: RuntimeError: the sampler panicked (run with --debug for the "
        "traceback)\n"
    )


def test_diagnose_a_folder_that_is_not_a_saved_ranker(capsys, tmp_path):
    err = one_line_error(capsys, "diagnose", tmp_path)
    assert "is not a ranker saved by skhier.save" in err
    err = one_line_error(capsys, "diagnose", tmp_path / "nothing")
    assert "is not a folder; give the folder of a saved ranker" in err


@pytest.mark.filterwarnings("ignore::skhier.diagnostics.SamplerConvergenceWarning")
def test_rank_tsv_with_missing_rows_save_plot_then_diagnose(capsys, screen, tmp_path):
    from skhier import load

    data = tmp_path / "screen.tsv"
    screen.assign(Ht=screen["Ht"].where(screen.index != 5)).to_csv(data, sep="\t", index=False)
    out, folder, plot = tmp_path / "ranks.csv", tmp_path / "model", tmp_path / "ranks.png"
    code, text, err = run(
        capsys, "rank", data, "--formula", FORUM, "--level", "gene", "--missing", "drop",
        "--target-accept", "0.9", *FAST, "--out", out, "--save", folder, "--plot", plot,
    )  # fmt: skip
    assert code == 0, err
    assert "Ranking at level 'gene'" in text and "Sampler diagnostics:" in text
    assert f"Wrote the rank table to {out}; the ranker to {folder}; the plot to {plot}." in text
    table = pd.read_csv(out, index_col=0)
    assert len(table) == 3 and table.index.name == "gene"
    assert plot.read_bytes()[:4] == b"\x89PNG"
    ranker = load(folder)
    assert len(ranker.plan_.data) == 59  # the row with NaN dropped
    assert ranker.tune == 100 and ranker.target_accept == 0.9 and ranker.missing == "drop"
    code, text, err = run(capsys, "diagnose", folder)
    assert code == (0 if ranker.diagnostics_.passed else 1), err
    assert text.startswith(f"{folder}: Ht ~ 0 + H0 + (0 + H0|gene/sgRNA), ranked at level 'gene'")
    assert ranker.diagnostics_.summary() in text


def test_diagnose_exits_one_when_a_check_failed(capsys, tmp_path, monkeypatch):
    import skhier

    class Failed:
        passed = False
        info = {"sampler": "nutpie"}

        def summary(self):
            return "Sampler diagnostics: FAILED (1 of 6 checks)"

    class Loaded:
        formula_, level_, engine_, sampler = "y ~ (1|g)", "g", "collapsed", "nutpie"
        diagnostics_ = Failed()

    monkeypatch.setattr(skhier, "load", lambda folder: Loaded())
    code, text, _ = run(capsys, "diagnose", tmp_path)
    assert code == 1 and "FAILED" in text


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("tty", [True, False])
def test_rank_shows_a_progress_bar_on_a_terminal(csv, monkeypatch, tty):
    err = _Terminal() if tty else io.StringIO()
    log = logging.getLogger("skhier")
    before = (list(log.handlers), log.level, log.propagate)
    monkeypatch.setattr(sys, "stderr", err)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short fit may not converge
        assert main(["rank", str(csv), "--formula", FORUM, *FAST]) == 0
    text = err.getvalue()
    stages = ["1/6 reading data", "2/6 building the model", "3/6 sampling",
              "4/6 drawing coefficients", "5/6 diagnostics", "6/6 ranking"]  # fmt: skip
    if tty:
        assert all(stage in text for stage in stages), text
        assert "[########################] done in" in text
    else:
        assert text == ""
    assert (list(log.handlers), log.level, log.propagate) == before  # detached afterwards


def test_progress_bar_prints_warnings_on_their_own_line():
    def record(msg, level=logging.INFO, **extra):
        return logging.makeLogRecord(
            {"msg": msg, "levelno": level, "levelname": logging.getLevelName(level), **extra}
        )

    out = io.StringIO()
    bar = ProgressBar(out, sampler_bar=True)
    bar.handle(record("go", skhier_stage="sampling"))
    assert re.search(r"3/6 sampling  \d+\.\d s\n$", out.getvalue())  # the sampler's bar below
    bar.handle(record("skhier: almost", logging.WARNING))
    assert "\nskhier: warning: almost\n" in out.getvalue()
    bar.handle(record("x", skhier_stage="ranking"))
    bar.handle(record("skhier: level %r", args=("gene",)))
    assert re.search(r"6/6 ranking: level 'gene'  \d+\.\d s$", out.getvalue())
    bar.finish(True)
    assert re.search(r"\[#{24}\] done in \d+\.\d s\n$", out.getvalue())
