"""The ``skhier`` command: ``demo``, ``simulate``, ``rank``, ``diagnose`` and ``screen``.

A user error (a bad option, a missing file, data or a formula the model cannot take) exits
with status 2 and one line on standard error, before any sampling where it can be known then;
``--debug`` shows the traceback instead. ``skhier rank`` shows the fit's stages as a progress
bar on a terminal (:class:`ProgressBar`, fed by the library's stage records, see
:mod:`skhier._progress`).

Examples
--------
>>> from skhier.cli import build_parser
>>> build_parser().parse_args(["rank", "data.csv", "--formula", "y ~ x + (1|g)"]).level is None
True
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
import time
import warnings

from skhier._progress import STAGE_ATTR, STAGES, stage

__all__ = ["build_parser", "main", "ProgressBar"]

#: Groups drawn by ``skhier rank --plot`` (the best ones).
PLOT_TOP = 50

#: Spellings of ``--sep`` for characters that are awkward to type in a shell.
SEPARATORS = {"\\t": "\t", "tab": "\t", "comma": ",", "semicolon": ";", "whitespace": r"\s+"}

#: The library's advice spelled as options of the command line.
_CLI_SPELLINGS = (("set missing='drop'", "pass --missing drop"), (", or pass overwrite=True", ""))

RANK_COLUMNS = [
    "rank",
    "mean",
    "hdi_low",
    "hdi_high",
    "expected_rank",
    "rank_low",
    "rank_high",
    "p_top_k",
    "lfsr",
]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on standard error (status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line parser.

    Returns
    -------
    argparse.ArgumentParser
        The parser of ``skhier demo | simulate | rank | diagnose | screen``.

    Examples
    --------
    >>> args = build_parser().parse_args(["rank", "s.tsv", "--formula", "y ~ 0 + x:(1|g)",
    ...                                   "--family", "poisson", "--missing", "drop"])
    >>> args.family, args.missing, args.sep, args.save, args.debug
    ('poisson', 'drop', None, None, False)
    """
    parser = _Parser(
        prog="skhier",
        description="Rank groups by effects from Bayesian hierarchical models, with uncertainty.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="simulate the forum's screen, fit, rank and print")
    demo.add_argument("--n-genes", type=int, default=5)
    demo.add_argument("--sgrnas-per-gene", type=int, default=4)
    demo.add_argument("--n-samples", type=int, default=50)
    demo.add_argument("--sampler", default="nutpie", choices=["nutpie", "pymc", "numpyro"])
    demo.add_argument("--draws", type=int, default=1000)
    demo.add_argument("--chains", type=int, default=4)
    demo.add_argument("--top-k", type=int, default=3)
    demo.add_argument("--seed", type=int, default=0)

    sim = sub.add_parser("simulate", help="write a simulated screen as CSV")
    sim.add_argument("--n-genes", type=int, default=5)
    sim.add_argument("--sgrnas-per-gene", type=int, default=4)
    sim.add_argument("--n-samples", type=int, default=50)
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--out", default="-", help="output CSV path ('-' for standard output)")

    rank = sub.add_parser(
        "rank",
        help="fit a formula to a data file (CSV or TSV) and write the ranking",
        description="Fit a Bayesian hierarchical model to a data file and rank its groups. The "
        "output paths (--out, --save, --plot) are checked before the fit.",
    )
    rank.add_argument(
        "data",
        help="data file, one row per observation: CSV, TSV or whitespace-separated (sniffed "
        "from the header, see --sep); gzipped if the name ends in .gz",
    )
    rank.add_argument("--formula", required=True, help="e.g. 'Ht ~ 0 + H0:(1|gene/sgRNA)'")
    rank.add_argument(
        "--level", default=None, help="grouping factor to rank (default: the finest one)"
    )
    rank.add_argument(
        "--family", default="gaussian",
        help="Bambi family of the response: gaussian (default), negativebinomial or poisson for "
        "counts, or any other Bambi family (fitted by Bambi's own model)",
    )
    rank.add_argument("--ascending", action="store_true", help="smallest effect ranks first")
    rank.add_argument("--top-k", type=int, default=10, help="k of the P(top-k) column")
    rank.add_argument("--sampler", default="nutpie", choices=["nutpie", "pymc", "numpyro"])
    rank.add_argument("--draws", type=int, default=1000, help="kept draws per chain")
    rank.add_argument("--tune", type=int, default=1000, help="warm-up iterations per chain")
    rank.add_argument("--chains", type=int, default=4)
    rank.add_argument(
        "--target-accept", type=float, default=None, metavar="P",
        help="NUTS target acceptance in (0, 1) (default: 0.95 for the collapsed engine, 0.8 for "
        "the others)",
    )
    rank.add_argument(
        "--missing", default="raise", choices=["raise", "drop"],
        help="rows with NaN/inf in a column the model reads: stop with an error (default) or "
        "drop them",
    )
    rank.add_argument(
        "--sep", default=None,
        help="column separator of the data file (default: sniffed from its header: tab, comma, "
        "else whitespace); 'tab' or '\\t' for tabs",
    )
    rank.add_argument("--seed", type=int, default=0)
    rank.add_argument(
        "--out", default=None, metavar="FILE.csv", help="write the full rank table to this CSV"
    )
    rank.add_argument(
        "--save", default=None, metavar="DIR",
        help="save the fitted ranker into this folder (new, empty, or an earlier save); "
        "skhier.load(DIR) reloads it and 'skhier diagnose DIR' checks it",
    )
    rank.add_argument(
        "--plot", default=None, metavar="FILE.png",
        help=f"draw the rank caterpillar plot (expected ranks with their intervals, the "
        f"{PLOT_TOP} best groups) to this image (.png, .pdf, .svg)",
    )

    diag = sub.add_parser(
        "diagnose",
        help="print the sampler diagnostics of a saved ranker (exit 1 if a check failed)",
        description="Load a ranker saved by 'skhier rank --save DIR' (or ranker.save(DIR)) and "
        "print its sampler verdict: R-hat, ESS, divergences, E-BFMI, tree depth. The exit "
        "status is 0 when the checks passed, 1 when one failed, 2 for an error.",
    )
    diag.add_argument("folder", metavar="DIR", help="folder of a saved ranker")
    screen = sub.add_parser(
        "screen", help="rank the genes of a count screen (MAGeCK count table) and write summaries"
    )
    screen.add_argument("counts", help="count table: sgRNA, gene, one column per sample")
    screen.add_argument("--control", default=None, help="control samples, comma-separated")
    screen.add_argument("--treatment", default=None, help="treatment samples, comma-separated")
    screen.add_argument("--design", default=None, help="design matrix (MAGeCK MLE layout)")
    screen.add_argument("--condition", default=None, help="design condition to rank")
    screen.add_argument(
        "--norm-method", default="median", choices=["median", "total", "control", "none"],
        help="size factors: median ratio, total reads, control sgRNAs/genes, or none",
    )
    screen.add_argument(
        "--control-sgrna", metavar="FILE",
        help="sgRNA ids (one per line) for --norm-method control, as MAGeCK's option",
    )
    screen.add_argument(
        "--control-gene", metavar="FILE",
        help="gene names (one per line) for --norm-method control, as MAGeCK's option",
    )
    screen.add_argument(
        "--direction", default="negative", choices=["negative", "positive"],
        help="rank depleted (negative) or enriched (positive) genes first",
    )
    screen.add_argument("--top-k", type=int, default=20)
    screen.add_argument("--draws", type=int, default=1000)
    screen.add_argument("--chains", type=int, default=2)
    screen.add_argument("--seed", type=int, default=0)
    screen.add_argument("--out", required=True, help="output prefix (as MAGeCK's -n)")
    for p in (demo, rank, screen):
        p.add_argument(
            "--no-progress", action="store_true",
            help="hide progress bars (they show only when standard error is a terminal)",
        )
    for p in (demo, sim, rank, diag, screen):
        p.add_argument(
            "--debug", action="store_true", help="show the full traceback of an error"
        )
    return parser


class _Stages(logging.Handler):
    """Show the fit's stages (skhier's INFO records) on a terminal, with the elapsed time."""

    def __init__(self, stream):
        super().__init__(logging.INFO)
        self.stream = stream
        self.t0 = time.perf_counter()

    def emit(self, record):
        if record.levelno != logging.INFO:
            return
        message = record.getMessage().removeprefix("skhier: ")
        self.stream.write(f"[{time.perf_counter() - self.t0:7.1f} s] {message}\n")
        self.stream.flush()


def _is_terminal(stream) -> bool:
    return bool(getattr(stream, "isatty", None) and stream.isatty())


@contextlib.contextmanager
def _attached(handler: logging.Handler):
    """Route the ``skhier`` logger's INFO records to ``handler`` alone, while the block runs."""
    log = logging.getLogger("skhier")
    level, propagate = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # the root handler would print every INFO record a second time
    try:
        yield handler
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = propagate


@contextlib.contextmanager
def _stages(show: bool):
    """Attach a :class:`_Stages` handler while a fit runs, when shown and stderr is a terminal."""
    stream = sys.stderr
    if not show or not _is_terminal(stream):
        yield
        return
    with _attached(_Stages(stream)):
        yield


class ProgressBar(logging.Handler):
    """The fit's progress on one line of a terminal: its stages as a bar, the time elapsed.

    A logging handler of the ``skhier`` logger: each stage record of the library
    (:func:`skhier._progress.stage`) moves the bar to that stage; other INFO records show as
    the stage's detail; warnings (log records and, while :func:`progress` runs, Python
    warnings) print as one line above the bar.

    Parameters
    ----------
    stream : file-like
        Where to draw (standard error).
    sampler_bar : bool, default=False
        Whether the sampler draws its own bar during the sampling stage (the line is then ended
        before it, so the two do not overwrite each other).
    width : int, default=24
        Characters of the bar.

    Examples
    --------
    >>> import io, logging
    >>> out = io.StringIO()
    >>> bar = ProgressBar(out)
    >>> record = {"msg": "sampling", "skhier_stage": "sampling", "levelno": logging.INFO}
    >>> bar.handle(logging.makeLogRecord(record))
    True
    >>> out.getvalue().split("] ")[1].split("  ")[0]
    '3/6 sampling'
    """

    def __init__(self, stream, *, sampler_bar: bool = False, width: int = 24):
        super().__init__(logging.INFO)
        self.stream = stream
        self.sampler_bar = sampler_bar
        self.width = width
        self.t0 = time.perf_counter()
        self.index = 0
        self.detail = ""
        self.drawn = False  # the bar's line is on screen, unfinished
        self.below = False  # the sampler's bar was drawn: start on the line after it

    def emit(self, record):
        """Move the bar to a stage record's stage, show another record as its detail.

        Parameters
        ----------
        record : logging.LogRecord
            A record of the ``skhier`` logger.
        """
        try:
            if record.levelno >= logging.WARNING:
                text = record.getMessage().removeprefix("skhier: ")
                self.message(f"skhier: {record.levelname.lower()}: {text}")
                return
            name = getattr(record, STAGE_ATTR, None)
            if name in STAGES:
                self.index, self.detail = STAGES.index(name), ""
            else:
                self.detail = record.getMessage().removeprefix("skhier: ")
            self._draw()
            if name == "sampling" and self.sampler_bar:
                self._end_line()
                self.below = True
        except Exception:  # a display must not break the fit
            self.handleError(record)

    def _bar(self, done: int) -> str:
        filled = round(self.width * done / len(STAGES))
        return "[" + "#" * filled + "-" * (self.width - filled) + "]"

    def _draw(self) -> None:
        elapsed = f"  {time.perf_counter() - self.t0:.1f} s"
        text = f"{self._bar(self.index)} {self.index + 1}/{len(STAGES)} {STAGES[self.index]}"
        if self.detail:
            text += f": {self.detail}"
        room = max(30, shutil.get_terminal_size().columns - len(elapsed) - 1)
        if len(text) > room:
            text = text[: room - 3] + "..."
        self.stream.write(("\n" if self.below else "\r\x1b[K") + text + elapsed)
        self.stream.flush()
        self.drawn, self.below = True, False

    def _end_line(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False

    def message(self, text: str) -> None:
        """Print one line above the bar (a warning), then draw the bar again.

        Parameters
        ----------
        text : str
            The line (newlines are turned into spaces).
        """
        redraw = self.drawn
        if redraw:
            self.stream.write("\r\x1b[K")
        self.stream.write(" ".join(text.split("\n")) + "\n")
        self.drawn = False
        if redraw:
            self._draw()
        else:
            self.stream.flush()

    def finish(self, done: bool) -> None:
        """Close the bar: a full bar with the total time, or (after an error) just a new line.

        Parameters
        ----------
        done : bool
            Whether the fit finished.
        """
        if self.drawn:
            self.stream.write("\r\x1b[K")
        if done:
            total = time.perf_counter() - self.t0
            self.stream.write(f"{self._bar(len(STAGES))} done in {total:.1f} s\n")
        self.stream.flush()
        self.drawn = False


@contextlib.contextmanager
def progress(show: bool, *, sampler_bar: bool = False):
    """Show a :class:`ProgressBar` on standard error while the block runs, if it is a terminal.

    Parameters
    ----------
    show : bool
        False hides the bar (``--no-progress``).
    sampler_bar : bool, default=False
        Whether the sampler draws its own bar (see :class:`ProgressBar`).

    Yields
    ------
    ProgressBar or None
        The bar, or None when it is hidden (``show`` False or standard error not a terminal).

    Examples
    --------
    >>> with progress(True) as bar:  # standard error is not a terminal here
    ...     bar is None
    True
    """
    stream = sys.stderr
    if not show or not _is_terminal(stream):
        yield None
        return
    bar = ProgressBar(stream, sampler_bar=sampler_bar)
    shown = warnings.showwarning

    def one_line(message, category, filename, lineno, file=None, line=None):
        bar.message(f"skhier: warning: {category.__name__}: {message}")

    warnings.showwarning = one_line
    done = False
    try:
        with _attached(bar):
            yield bar
        done = True
    finally:
        warnings.showwarning = shown
        bar.finish(done)


def _show(title: str, table, columns, out) -> None:
    import pandas as pd

    with pd.option_context(
        "display.width", 120, "display.max_columns", 20, "display.float_format", "{:.3f}".format
    ):
        out.write(f"\n{title}\n{table[columns].to_string()}\n")


def _demo(args, out) -> int:
    from skhier import HierarchicalRanker, ScreenSimulator

    t0 = time.perf_counter()
    sim = ScreenSimulator(
        n_genes=args.n_genes,
        sgrnas_per_gene=args.sgrnas_per_gene,
        n_samples=args.n_samples,
        random_state=args.seed,
    )
    df = sim.fit_transform()
    out.write(
        f"Simulated {df['sgRNA'].nunique()} sgRNAs in {df['gene'].nunique()} genes x "
        f"{args.n_samples} samples ({len(df)} rows), as in the forum post.\n"
        "Fitting Ht ~ 0 + H0:(1|gene/sgRNA) ...\n"
    )
    ranker = HierarchicalRanker(
        formula="Ht ~ 0 + H0:(1|gene/sgRNA)",
        level="gene",
        top_k=args.top_k,
        sampler=args.sampler,
        draws=args.draws,
        chains=args.chains,
        random_state=args.seed,
        progressbar=not args.no_progress,
        on_fail="ignore",
    )
    ranker.fit(df)
    k = args.top_k
    gene = ranker.rank_.copy()
    gene["true_slope"] = sim.true_slopes_["gene"].reindex(gene.index).to_numpy()
    _show(
        f"Genes ranked by total slope (90% intervals; p_top_k = P(rank <= {k})):",
        gene,
        [*RANK_COLUMNS, "true_slope"],
        out,
    )
    sg = ranker.rank_table(level="sgRNA")
    sg["true_slope"] = sim.true_slopes_["sgRNA"].reindex(sg.index).to_numpy()
    _show("sgRNAs ranked by total slope:", sg, [*RANK_COLUMNS, "true_slope"], out)
    dom = ranker.dominance_
    top = gene.index[:2]
    if len(top) == 2:
        out.write(f"\nP({top[0]} beats {top[1]}) = {dom.loc[top[0], top[1]]:.3f}\n")
    out.write("\n" + ranker.diagnostics_.summary() + "\n")
    out.write(f"\nDone in {time.perf_counter() - t0:.1f} s.\n")
    return 0


def _simulate(args, out) -> int:
    from skhier import ScreenSimulator

    if args.out != "-":
        _check_output_file(args.out, "--out")
    df = ScreenSimulator(
        n_genes=args.n_genes,
        sgrnas_per_gene=args.sgrnas_per_gene,
        n_samples=args.n_samples,
        random_state=args.seed,
    ).fit_transform()
    df.to_csv(out if args.out == "-" else args.out, index=False)
    return 0


def _check_output_file(path, option: str, *, prefix: bool = False) -> None:
    """Raise unless ``path`` can be written: its folder exists and is writable."""
    full = os.path.abspath(path)
    if not prefix and os.path.isdir(full):
        raise IsADirectoryError(f"{option} {path!r} is a folder; give a file name.")
    folder = os.path.dirname(full)
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"{option} {path!r}: the folder {folder!r} does not exist; create it or write "
            "elsewhere."
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{option} {path!r}: the folder {folder!r} is not writable.")


def _check_plot_file(path) -> None:
    """Raise unless matplotlib can write an image of ``path``'s type."""
    from matplotlib.figure import Figure

    _check_output_file(path, "--plot")
    kinds = Figure().canvas.get_supported_filetypes()
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    if ext not in kinds:
        raise ValueError(
            f"--plot {path!r}: {'.' + ext if ext else 'no extension'} is not an image type "
            f"matplotlib writes; end the name in one of {sorted(kinds)} (e.g. ranks.png)."
        )


def _check_save_dir(path) -> None:
    """Raise unless a ranker can be saved into ``path`` (:func:`skhier.io.check_save_folder`)."""
    from skhier.io import check_save_folder

    folder = check_save_folder(path)
    if folder.is_dir():
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(f"--save {path!r}: the folder is not writable.")
    else:
        _check_output_file(path, "--save", prefix=True)


def _separator(sep):
    """Return the separator ``--sep`` names (None: sniffed from the file)."""
    return None if sep is None else SEPARATORS.get(sep, sep)


def _read_data(path, sep):
    """Read the data file of ``skhier rank`` (separator sniffed unless given); check its shape."""
    import pandas as pd

    from skhier.screens import _sniff_sep

    if os.path.isdir(path):
        raise IsADirectoryError(
            f"data file {path!r} is a folder; give the CSV or TSV file to read."
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"data file {path!r} does not exist.")
    used = sep
    try:
        used = _sniff_sep(path) if sep is None else sep
        df = pd.read_csv(path, sep=used, engine="c" if len(used) == 1 else "python")
    except (UnicodeDecodeError, EOFError, OSError, pd.errors.ParserError) as exc:
        raise ValueError(
            f"data file {path!r} cannot be read as a table with separator {used!r} ({exc})."
        ) from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"data file {path!r} is empty.") from None
    if df.shape[1] == 1:
        header = str(df.columns[0])
        found = [
            (name, spelled)
            for name, char, spelled in (
                ("tab", "\t", "tab"),
                ("comma", ",", ","),
                ("semicolon", ";", "';'"),
                ("pipe", "|", "'|'"),
            )
            if char in header and char != used
        ]
        hint = (
            f"its header looks {found[0][0]}-separated: pass --sep {found[0][1]}"
            if found
            else "pass its separator with --sep"
        )
        raise ValueError(
            f"data file {path!r} was read as one column ({header!r}) with separator {used!r}; "
            f"{hint}."
        )
    if len(df) == 0:
        raise ValueError(f"data file {path!r} has a header but no rows.")
    return df


def _write_plot(ranker, path) -> None:
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # no window: the plot goes to a file
    import matplotlib.pyplot as plt

    from skhier.plotting import plot_ranks

    ax = plot_ranks(ranker, top=PLOT_TOP)
    ax.figure.savefig(path, dpi=150)
    plt.close(ax.figure)


def _rank(args, out) -> int:
    from skhier import HierarchicalRanker

    # every output path and option is checked before the data is read and the model fitted
    if args.out:
        _check_output_file(args.out, "--out")
    if args.save:
        _check_save_dir(args.save)
    if args.plot:
        _check_plot_file(args.plot)
    show = not args.no_progress and _is_terminal(sys.stderr)
    ranker = HierarchicalRanker(
        formula=args.formula,
        level=args.level,
        family=args.family,
        ascending=args.ascending,
        top_k=args.top_k,
        sampler=args.sampler,
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        target_accept=args.target_accept,
        missing=args.missing,
        random_state=args.seed,
        progressbar=show,
    )
    ranker._check_params()
    with progress(show, sampler_bar=True):
        stage("reading data", "skhier: reading %s", args.data)
        df = _read_data(args.data, _separator(args.sep))
        ranker.fit(df)
    table = ranker.rank_
    written = []
    if args.out:
        table.to_csv(args.out)
        written.append(f"the rank table to {args.out}")
    if args.save:
        ranker.save(args.save)
        written.append(f"the ranker to {args.save}")
    if args.plot:
        _write_plot(ranker, args.plot)
        written.append(f"the plot to {args.plot}")
    _show(
        f"Ranking at level {ranker.level_!r} (formula {ranker.formula_}):",
        table.head(25),
        RANK_COLUMNS,
        out,
    )
    out.write("\n" + ranker.diagnostics_.summary() + "\n")
    if written:
        out.write("\nWrote " + "; ".join(written) + ".\n")
    return 0


def _diagnose(args, out) -> int:
    from skhier import load

    if not os.path.isdir(args.folder):
        raise FileNotFoundError(
            f"{args.folder!r} is not a folder; give the folder of a saved ranker "
            "(skhier rank --save DIR, or ranker.save(DIR))."
        )
    ranker = load(args.folder)
    diag = ranker.diagnostics_
    out.write(
        f"{args.folder}: {ranker.formula_}, ranked at level {ranker.level_!r} (engine "
        f"{ranker.engine_}, sampler {diag.info.get('sampler', ranker.sampler)})\n\n"
        + diag.summary()
        + "\n"
    )
    return 0 if diag.passed else 1


def _id_list(path, option):
    """Ids in a file, one per line (blank lines and ``#`` comments skipped); None without one."""
    if path is None:
        return None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{option} {path!r} is not a file.")
    with open(path) as f:
        ids = [line.split("#")[0].strip() for line in f]
    ids = [i for i in ids if i]
    if not ids:
        raise ValueError(f"{option} {path!r} holds no ids (one per line).")
    return ids


def _screen(args, out) -> int:
    with _stages(not args.no_progress):
        return _screen_run(args, out)


def _screen_run(args, out) -> int:
    from skhier.screens import count_screen, write_summaries

    t0 = time.perf_counter()
    _check_output_file(args.out, "--out", prefix=True)
    screen = count_screen(
        args.counts,
        control=args.control,
        treatment=args.treatment,
        design=args.design,
        normalization=args.norm_method,
        control_sgrnas=_id_list(args.control_sgrna, "--control-sgrna"),
        control_genes=_id_list(args.control_gene, "--control-gene"),
    )
    n_sg, n_genes = len(screen.counts), screen.counts["gene"].nunique()
    out.write(
        f"Read {n_sg + len(screen.dropped):,} sgRNAs; dropped {len(screen.dropped):,} with no "
        "reads "
        f"in any used sample; {n_sg:,} sgRNAs in {n_genes:,} genes x {len(screen.design)} "
        f"samples.\nSize factors ({screen.normalization}): "
        + ", ".join(f"{k} {v:.3f}" for k, v in screen.size_factors.items())
        + f"\nFitting {screen.formula} (negative binomial) ...\n"
    )
    ranker = screen.ranker(
        args.condition,
        direction=args.direction,
        top_k=args.top_k,
        draws=args.draws,
        chains=args.chains,
        random_state=args.seed,
        progressbar=not args.no_progress,
    )
    ranker.fit(screen.data)
    logging.getLogger("skhier").info("skhier: writing the gene and sgRNA summaries")
    paths = write_summaries(ranker, screen, args.out)
    _show(
        f"Top genes ({args.direction} selection; p_top_k = P(rank <= {args.top_k})):",
        ranker.rank_.head(args.top_k),
        RANK_COLUMNS,
        out,
    )
    approx = ranker.approximation_
    if approx is not None:
        out.write(f"\nGaussian approximation of the count likelihoods: {approx!r}\n")
    out.write("\n" + ranker.diagnostics_.summary() + "\n")
    out.write(
        f"\nWrote {paths['gene']} and {paths['sgrna']} in {time.perf_counter() - t0:.1f} s.\n"
    )
    return 0


def main(argv=None) -> int:
    """Run the ``skhier`` command.

    Parameters
    ----------
    argv : list of str or None
        Arguments (None reads ``sys.argv``).

    Returns
    -------
    int
        Exit status.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0), or a usage error the parser printed on one line
        return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 2
    # PyTensor's C backend warns once that pip's NumPy gives it no BLAS to link; the default
    # sampler (nutpie) compiles with numba and never uses it, so the warning only confuses here.
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = sys.stdout
    command = f"skhier {args.command}"
    commands = {
        "demo": _demo,
        "simulate": _simulate,
        "rank": _rank,
        "diagnose": _diagnose,
        "screen": _screen,
    }
    try:
        with _one_line_warnings(command, not args.debug):
            return commands[args.command](args, out)
    except KeyboardInterrupt:
        if args.debug:
            raise
        sys.stderr.write(f"{command}: interrupted\n")
        return 130
    except BaseException as exc:  # a Rust panic of a sampler is a BaseException
        if args.debug or isinstance(exc, SystemExit | GeneratorExit):
            raise
        user = isinstance(exc, USER_ERRORS)
        text = _one_line(exc)
        if not user:
            text = f"{type(exc).__name__}: {text} (run with --debug for the traceback)"
        sys.stderr.write(f"{command}: error: {text}\n")
        return 2 if user else 1


#: Errors that report bad input (options, files, data, formulas): exit status 2.
USER_ERRORS = (ValueError, TypeError, OSError, ImportError)


def _one_line(exc: BaseException) -> str:
    """Return an exception's message on one line, the library's advice in option spelling."""
    text = " ".join(str(exc).split("\n")).strip() or type(exc).__name__
    for library, cli in _CLI_SPELLINGS:
        text = text.replace(library, cli)
    return text


@contextlib.contextmanager
def _one_line_warnings(command: str, enabled: bool):
    """Print Python warnings as one line each (``skhier rank: warning: ...``) while enabled."""
    if not enabled:
        yield
        return
    shown = warnings.showwarning

    def one_line(message, category, filename, lineno, file=None, line=None):
        stream = sys.stderr if file is None else file
        stream.write(f"{command}: warning: {category.__name__}: {_one_line(message)}\n")

    warnings.showwarning = one_line
    try:
        yield
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
