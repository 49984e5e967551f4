"""The ``skhier`` command: ``demo``, ``simulate``, ``rank`` and ``screen``.

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
import sys
import time
import warnings

__all__ = ["build_parser", "main"]

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


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line parser.

    Returns
    -------
    argparse.ArgumentParser
        The parser of ``skhier demo | simulate | rank | screen``.
    """
    parser = argparse.ArgumentParser(
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

    rank = sub.add_parser("rank", help="fit a formula to a CSV file and write the ranking")
    rank.add_argument("data", help="CSV file, one row per observation")
    rank.add_argument("--formula", required=True, help="e.g. 'Ht ~ 0 + H0:(1|gene/sgRNA)'")
    rank.add_argument("--level", default=None)
    rank.add_argument("--ascending", action="store_true", help="smallest effect ranks first")
    rank.add_argument("--top-k", type=int, default=10)
    rank.add_argument("--sampler", default="nutpie", choices=["nutpie", "pymc", "numpyro"])
    rank.add_argument("--draws", type=int, default=1000)
    rank.add_argument("--chains", type=int, default=4)
    rank.add_argument("--seed", type=int, default=0)
    rank.add_argument("--out", default=None, help="write the full rank table to this CSV")
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
        p.add_argument("--no-progress", action="store_true", help="hide progress bars")
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


@contextlib.contextmanager
def _stages(show: bool):
    """Attach a :class:`_Stages` handler while a fit runs, when shown and stderr is a terminal."""
    stream = sys.stderr
    if not show or not (hasattr(stream, "isatty") and stream.isatty()):
        yield
        return
    log = logging.getLogger("skhier")
    handler, level = _Stages(stream), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


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

    df = ScreenSimulator(
        n_genes=args.n_genes,
        sgrnas_per_gene=args.sgrnas_per_gene,
        n_samples=args.n_samples,
        random_state=args.seed,
    ).fit_transform()
    df.to_csv(out if args.out == "-" else args.out, index=False)
    return 0


def _rank(args, out) -> int:
    import pandas as pd

    from skhier import HierarchicalRanker

    df = pd.read_csv(args.data)
    ranker = HierarchicalRanker(
        formula=args.formula,
        level=args.level,
        ascending=args.ascending,
        top_k=args.top_k,
        sampler=args.sampler,
        draws=args.draws,
        chains=args.chains,
        random_state=args.seed,
        progressbar=not args.no_progress,
    )
    ranker.fit(df)
    table = ranker.rank_
    if args.out:
        table.to_csv(args.out)
    _show(
        f"Ranking at level {ranker.level_!r} (formula {ranker.formula_}):",
        table.head(25),
        RANK_COLUMNS,
        out,
    )
    out.write("\n" + ranker.diagnostics_.summary() + "\n")
    return 0


def _id_list(path, option):
    """Ids in a file, one per line (blank lines and ``#`` comments skipped); None without one."""
    if path is None:
        return None
    import os

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
    import os

    from skhier.screens import count_screen, write_summaries

    t0 = time.perf_counter()
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"output folder {folder!r} (of --out {args.out!r}) does not exist.")
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
    args = build_parser().parse_args(argv)
    # PyTensor's C backend warns once that pip's NumPy gives it no BLAS to link; the default
    # sampler (nutpie) compiles with numba and never uses it, so the warning only confuses here.
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = sys.stdout
    try:
        commands = {"demo": _demo, "simulate": _simulate, "rank": _rank, "screen": _screen}
        return commands[args.command](args, out)
    except (ValueError, TypeError, ImportError, FileNotFoundError) as exc:
        sys.stderr.write(f"skhier {args.command}: error: {exc}\n")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
