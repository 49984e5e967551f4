"""Pooled CRISPR screens: count tables in, a hierarchical count model, MAGeCK-style tables out.

A screen's count table has one row per sgRNA (its id, its gene, one column of read counts per
sample), as MAGeCK writes and reads it. :func:`read_count_table` reads one (tab- or
comma-separated, gzipped or not) and checks it; :func:`count_screen` turns it and a description
of the samples (control and treatment samples, or a design matrix like MAGeCK MLE's) into a
:class:`CountScreen`: the long frame (one row per sgRNA and sample), the size factors, the
formula and priors of the model, and the sgRNAs dropped for having no reads at all. The model is

``count ~ 0 + offset(log_size) + (1|gene:sgRNA) + treatment:(1|gene/sgRNA)``

with a negative binomial likelihood: each sgRNA's abundance ``(1|gene:sgRNA)`` with a fixed wide
prior ``Normal(0, 10)`` (a nuisance, one per sgRNA, as in MAGeCK MLE), and the log fold change of
the treated samples as a gene effect plus an sgRNA effect, both partially pooled. With a design
matrix of several conditions, each condition gets its own gene and sgRNA effects.
:func:`gene_summary` and :func:`sgrna_summary` write the ranking in MAGeCK's layouts with
skhier's columns added (rank intervals, P(top-k), lfsr).

Examples
--------
>>> from skhier.datasets import load_mageck_demo1
>>> screen = count_screen(load_mageck_demo1(), control=["HL60.initial", "KBM7.initial"],
...                       treatment=["HL60.final", "KBM7.final"])
>>> screen.formula
'count ~ 0 + offset(log_size) + (1|gene:sgRNA) + treatment:(1|gene/sgRNA)'
>>> screen.data.shape
(3996, 6)
"""

from __future__ import annotations

import gzip
import logging
import os
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from skhier.priors import Prior

__all__ = [
    "NORMALIZATIONS",
    "CountScreen",
    "read_count_table",
    "check_count_table",
    "read_design_matrix",
    "size_factors",
    "count_screen",
    "gene_summary",
    "sgrna_summary",
    "write_summaries",
]

logger = logging.getLogger("skhier")

#: Ways to compute the samples' size factors.
NORMALIZATIONS = ("median", "total", "control", "none")

#: Prior standard deviation of each sgRNA's log abundance (a nuisance, fixed and wide).
ABUNDANCE_SD = 10.0


def _shown(values, n=5) -> str:
    values = [v.item() if isinstance(v, np.generic) else v for v in values]
    text = ", ".join(repr(v) for v in values[:n])
    return text + (f" and {len(values) - n} more" if len(values) > n else "")


def _sniff_sep(path) -> str:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as handle:
        header = handle.readline()
    if "\t" in header:
        return "\t"
    if "," in header:
        return ","
    return r"\s+"


def read_count_table(path, *, sep=None) -> pd.DataFrame:
    r"""Read a MAGeCK-style count table and check it.

    Parameters
    ----------
    path : str or os.PathLike
        The table: a header line, then one row per sgRNA with its id, its gene and one read
        count per sample (``sgRNA  Gene  T0  T18A ...``). Gzipped when the name ends in ``.gz``.
    sep : str or None, default=None
        Column separator; None sniffs it from the header (tab, comma, else whitespace).

    Returns
    -------
    pandas.DataFrame
        Columns ``sgRNA``, ``gene`` (strings) and the samples (int64), in the file's order.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        For a table :func:`check_count_table` refuses (naming the rows or columns).

    Examples
    --------
    >>> import io, tempfile, os
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "counts.txt")
    ...     with open(path, "w") as f:
    ...         _ = f.write("sgRNA\tGene\tT0\tT1\ns1\tA\t10\t5\ns2\tA\t8\t0\n")
    ...     read_count_table(path).columns.tolist()
    ['sgRNA', 'gene', 'T0', 'T1']
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"count table {path!r} does not exist.")
    if os.path.isdir(path):
        raise ValueError(f"count table {path!r} is a directory; give the table's file.")
    sep = _sniff_sep(path) if sep is None else sep
    engine = "python" if sep == r"\s+" else "c"
    raw = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, engine=engine)
    return check_count_table(raw, source=path)


def check_count_table(table: pd.DataFrame, *, source: str = "the count table") -> pd.DataFrame:
    """Check a count table (sgRNA id, gene, one column per sample); return a clean copy.

    Parameters
    ----------
    table : pandas.DataFrame
        First column the sgRNA ids, second the genes, the others read counts (numbers or
        strings of numbers). Not modified.
    source : str, default="the count table"
        Name used in messages.

    Returns
    -------
    pandas.DataFrame
        Columns ``sgRNA``, ``gene`` (str) and the samples (int64).

    Raises
    ------
    ValueError
        For fewer than one sample column, duplicated sgRNA ids, missing genes, counts that are
        missing, negative or not integers, or a sample with no reads at all.

    Examples
    --------
    >>> import pandas as pd
    >>> check_count_table(pd.DataFrame({"id": ["a", "a"], "Gene": ["G", "G"], "T0": [1, 2]}))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the count table has duplicated sgRNA ids: 'a' (rows 0, 1); each sgRNA needs ...
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"a count table must be a pandas DataFrame, got {type(table).__name__}.")
    if table.shape[1] < 3:
        raise ValueError(
            f"{source} needs an sgRNA id column, a gene column and at least one sample column; "
            f"it has columns {list(map(str, table.columns))}."
        )
    ids = table.iloc[:, 0].astype("string")
    genes = table.iloc[:, 1].astype("string")
    missing_id = ids.isna() | (ids.str.strip() == "")
    if missing_id.any():
        rows = np.flatnonzero(missing_id.to_numpy())
        raise ValueError(f"{source} has sgRNAs without an id in rows {_shown(rows)}.")
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        first = ids[dup].iloc[0]
        rows = np.flatnonzero((ids == first).to_numpy())
        others = ids[dup].unique()
        more = f" ({len(others)} ids in all)" if len(others) > 1 else ""
        raise ValueError(
            f"{source} has duplicated sgRNA ids: {first!r} (rows "
            f"{', '.join(map(str, rows[:5]))}){more}; each sgRNA needs its own row."
        )
    missing_gene = (genes.isna() | (genes.str.strip() == "")).to_numpy()
    if missing_gene.any():
        rows = np.flatnonzero(missing_gene)
        raise ValueError(
            f"{source} has {len(rows)} sgRNA(s) without a gene (column "
            f"{str(table.columns[1])!r}): {_shown(ids.iloc[rows])} (rows {_shown(rows)})."
        )
    samples = [str(c) for c in table.columns[2:]]
    out = {"sgRNA": ids.to_numpy(dtype=object).astype(str), "gene": genes.to_numpy(dtype=object)}
    for name, col in zip(samples, table.columns[2:], strict=True):
        raw = table[col]
        vals = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(vals)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise ValueError(
                f"sample {name!r} of {source} has {len(rows)} missing or non-numeric count(s): "
                f"{_shown(raw.iloc[rows].tolist())} in rows {_shown(rows)} (sgRNAs "
                f"{_shown(ids.iloc[rows])})."
            )
        bad = (vals < 0) | (vals != np.round(vals))
        if bad.any():
            rows = np.flatnonzero(bad)
            raise ValueError(
                f"sample {name!r} of {source} has {len(rows)} count(s) that are negative or not "
                f"integers: {_shown(vals[rows].tolist())} in rows {_shown(rows)} (sgRNAs "
                f"{_shown(ids.iloc[rows])}); read counts are non-negative integers."
            )
        if vals.sum() == 0:
            raise ValueError(
                f"sample {name!r} of {source} has no reads at all; drop the column (or check "
                "that the right file was read)."
            )
        out[name] = vals.astype(np.int64)
    return pd.DataFrame(out)


def read_design_matrix(path_or_frame) -> pd.DataFrame:
    """Read a design matrix in MAGeCK MLE's layout: samples, a baseline, one column per condition.

    Parameters
    ----------
    path_or_frame : str, os.PathLike or pandas.DataFrame
        Tab- or whitespace-separated file (or a frame) whose first column names the samples and
        whose other columns are 0/1: ``baseline`` (all 1) and each condition (1 where the
        sample has it).

    Returns
    -------
    pandas.DataFrame
        Indexed by sample, one int64 column per condition (``baseline`` removed).

    Raises
    ------
    ValueError
        For values other than 0/1, a missing baseline, duplicated samples or no condition.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"Samples": ["T0", "T1"], "baseline": [1, 1], "drug": [0, 1]})
    >>> read_design_matrix(d)["drug"].to_dict()
    {'T0': 0, 'T1': 1}
    """
    if isinstance(path_or_frame, pd.DataFrame):
        raw = path_or_frame.copy()
    else:
        path = os.fspath(path_or_frame)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"design matrix {path!r} does not exist.")
        raw = pd.read_csv(path, sep=_sniff_sep(path), engine="python", dtype={0: str})
    raw = raw.set_index(raw.columns[0])
    raw.index = raw.index.astype(str)
    if raw.index.duplicated().any():
        twice = raw.index[raw.index.duplicated()]
        raise ValueError(f"the design matrix lists samples twice: {_shown(twice)}.")
    values = raw.apply(pd.to_numeric, errors="coerce")
    bad = ~values.isin([0, 1])
    if bad.to_numpy().any():
        r, c = np.argwhere(bad.to_numpy())[0]
        raise ValueError(
            f"the design matrix must hold 0 or 1, but sample {raw.index[r]!r} has "
            f"{_shown([raw.iat[r, c]])} in column {str(raw.columns[c])!r}."
        )
    values = values.astype(np.int64)
    base = values.columns[0]
    if not (values[base] == 1).all():
        raise ValueError(
            f"the design matrix's first column ({base!r}) must be the baseline, 1 for every "
            "sample (MAGeCK MLE's layout)."
        )
    conditions = values.drop(columns=base)
    if conditions.shape[1] == 0:
        raise ValueError("the design matrix has no condition column after the baseline.")
    return conditions


def size_factors(counts: pd.DataFrame, method: str = "median", control=None) -> pd.Series:
    """Size factors of the samples: how much deeper each was sequenced than a typical sample.

    Parameters
    ----------
    counts : pandas.DataFrame
        Read counts, one column per sample (only numeric columns are used).
    method : {"median", "total", "control", "none"}, default="median"
        ``"median"``: the median ratio of each sample's counts to the sgRNAs' geometric means
        over samples (sgRNAs with reads in every sample), as DESeq2 and MAGeCK do;
        ``"total"``: total reads, relative to their geometric mean; ``"control"``: the median
        ratio over the ``control`` rows only (non-targeting sgRNAs, or sgRNAs of genes known
        not to matter); ``"none"``: all 1.
    control : array-like of bool or None, default=None
        Rows to normalize on, for ``method="control"``.

    Returns
    -------
    pandas.Series
        One factor per sample (their geometric mean is 1).

    Raises
    ------
    ValueError
        For an unknown method, ``"control"`` without control rows, or no row with reads in
        every sample.

    Examples
    --------
    >>> import pandas as pd
    >>> c = pd.DataFrame({"a": [10, 20, 30], "b": [20, 40, 60]})
    >>> size_factors(c).round(3).tolist()
    [0.707, 1.414]
    """
    if method not in NORMALIZATIONS:
        raise ValueError(f"normalization={method!r} is not valid; choose one of {NORMALIZATIONS}.")
    x = counts.select_dtypes("number").to_numpy(dtype=np.float64)
    names = counts.select_dtypes("number").columns
    if method == "none":
        return pd.Series(np.ones(x.shape[1]), index=names, name="size_factor")
    if method == "total":
        log_f = np.log(x.sum(axis=0))
        return pd.Series(np.exp(log_f - log_f.mean()), index=names, name="size_factor")
    if method == "control":
        if control is None:
            raise ValueError(
                "normalization='control' needs control sgRNAs or genes (control_sgrnas= or "
                "control_genes=)."
            )
        control = np.asarray(control, dtype=bool)
        if not control.any():
            raise ValueError("normalization='control': none of the control sgRNAs is in the table.")
        x = x[control]
    pos = (x > 0).all(axis=1)
    if not pos.any():
        raise ValueError(
            "no sgRNA has reads in every sample, so the median-ratio size factors are undefined; "
            "use normalization='total'."
        )
    lx = np.log(x[pos])
    log_f = np.median(lx - lx.mean(axis=1, keepdims=True), axis=0)
    log_f -= log_f.mean()
    return pd.Series(np.exp(log_f), index=names, name="size_factor")


def _identifier(name: str) -> str:
    """Return a formula-safe column name for a condition."""
    clean = re.sub(r"\W+", "_", str(name)).strip("_") or "condition"
    return clean if not clean[0].isdigit() else f"c_{clean}"


@dataclass
class CountScreen:
    """A count screen ready to fit: the long frame, the model's formula and priors.

    Made by :func:`count_screen`.

    Parameters
    ----------
    counts : pandas.DataFrame
        The count table used (sgRNAs with no reads in the used samples dropped).
    design : pandas.DataFrame
        Indexed by the used samples: one 0/1 column per condition (the formula's names).
    size_factors : pandas.Series
        Per used sample.
    dropped : pandas.DataFrame
        The sgRNAs dropped for having no reads in any used sample (``sgRNA``, ``gene``).
    normalization : str
        How the size factors were computed.
    condition_labels : dict of str to str
        Each condition's formula name to the name the user gave it.

    Attributes
    ----------
    conditions : list of str
        The conditions' formula names.
    formula : str
        The model's formula.
    priors : dict
        Its priors (each sgRNA's abundance: ``Normal(0, 10)``).
    data : pandas.DataFrame
        The long frame, built on first access: ``gene``, ``sgRNA``, ``sample``, ``count``,
        ``log_size`` and one column per condition.

    Examples
    --------
    >>> from skhier.datasets import load_mageck_demo1
    >>> s = count_screen(load_mageck_demo1(), control=["HL60.initial"], treatment=["HL60.final"])
    >>> s.conditions, len(s.dropped)
    (['treatment'], 2)
    """

    counts: pd.DataFrame
    design: pd.DataFrame
    size_factors: pd.Series
    dropped: pd.DataFrame
    normalization: str
    condition_labels: dict = field(default_factory=dict)
    _data: pd.DataFrame | None = field(default=None, repr=False, init=False)  # built lazily

    @property
    def conditions(self) -> list[str]:
        """The conditions' formula names."""
        return list(self.design.columns)

    @property
    def formula(self) -> str:
        """The model's formula."""
        effects = " + ".join(f"{c}:(1|gene/sgRNA)" for c in self.conditions)
        return f"count ~ 0 + offset(log_size) + (1|gene:sgRNA) + {effects}"

    @property
    def priors(self) -> dict:
        """The model's priors that differ from the defaults."""
        return {"1|gene:sgRNA": Prior("Normal", {"mu": 0.0, "sigma": ABUNDANCE_SD})}

    @property
    def data(self) -> pd.DataFrame:
        """The long frame: one row per sgRNA and used sample."""
        if self._data is None:
            self._data = self._long()
        return self._data

    def _long(self) -> pd.DataFrame:
        samples = list(self.design.index)
        n, s = len(self.counts), len(samples)
        frame = {
            "gene": np.repeat(self.counts["gene"].to_numpy(dtype=object), s),
            "sgRNA": np.repeat(self.counts["sgRNA"].to_numpy(dtype=object), s),
            "sample": np.tile(np.asarray(samples, dtype=object), n),
            "count": self.counts[samples].to_numpy(dtype=np.int64).reshape(-1),
            "log_size": np.tile(np.log(self.size_factors[samples].to_numpy()), n),
        }
        for c in self.conditions:
            frame[c] = np.tile(self.design[c].to_numpy(dtype=np.float64), n)
        return pd.DataFrame(frame)

    def ranker(self, condition=None, *, direction="negative", **params):
        """Make a :class:`skhier.HierarchicalRanker` of this screen's model, ranking genes.

        Parameters
        ----------
        condition : str or None, default=None
            The condition whose gene effects are ranked (its formula name or the user's
            label); None takes the first.
        direction : {"negative", "positive"}, default="negative"
            ``"negative"`` ranks the most depleted genes first (essential genes in a viability
            screen); ``"positive"`` the most enriched.
        **params
            Other parameters of the ranker (``draws``, ``chains``, ``random_state``, ...).
            The defaults: 2 chains of 1,000 draws after 500 warm-up iterations, and
            ``on_fail="refit"`` (a fit failing a check is refitted with more warm-up and a
            higher target acceptance, then warns if it still fails). ``priors``
            are added to the screen's own (a number for ``"alpha"`` fixes the dispersion).

        Returns
        -------
        HierarchicalRanker
            Unfitted; ``fit(screen.data)`` fits it.
        """
        from skhier import HierarchicalRanker

        if direction not in ("negative", "positive"):
            raise ValueError(
                f"direction={direction!r} is not valid; choose one of ('negative', 'positive')."
            )
        column = self._condition(condition)
        settings = {"draws": 1000, "tune": 500, "chains": 2, "on_fail": "refit", **params}
        priors = {**self.priors, **(settings.pop("priors", None) or {})}
        return HierarchicalRanker(
            formula=self.formula,
            family="negativebinomial",
            priors=priors,
            level="gene",
            column=column,
            ascending=direction == "negative",
            **settings,
        )

    def _condition(self, condition) -> str:
        if condition is None:
            return self.conditions[0]
        if condition in self.conditions:
            return condition
        for name, label in self.condition_labels.items():
            if label == condition:
                return name
        raise ValueError(
            f"condition={condition!r} is not a condition of this screen; choose one of "
            f"{sorted({*self.conditions, *self.condition_labels.values()})}."
        )


def _samples(value, name) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    return [str(v).strip() for v in value]


def count_screen(
    table,
    *,
    control=None,
    treatment=None,
    design=None,
    normalization="median",
    control_sgrnas=None,
    control_genes=None,
) -> CountScreen:
    """Describe a count screen for skhier: samples, size factors, long frame, formula.

    Either ``control`` and ``treatment`` samples (one condition, ``treatment``) or a
    ``design`` matrix (MAGeCK MLE's layout; one condition per column after the baseline).

    Parameters
    ----------
    table : pandas.DataFrame or str or os.PathLike
        The count table (a frame as :func:`read_count_table` returns it, or its path).
    control, treatment : str or sequence of str, default=None
        Sample columns (a comma-separated string works): the reference samples (T0, plasmid)
        and the samples after selection.
    design : pandas.DataFrame, str or os.PathLike, default=None
        A design matrix (see :func:`read_design_matrix`) instead of control/treatment.
    normalization : {"median", "total", "control", "none"}, default="median"
        Size factors (see :func:`size_factors`).
    control_sgrnas, control_genes : sequence of str, default=None
        The rows ``normalization="control"`` uses.

    Returns
    -------
    CountScreen
        The screen.

    Raises
    ------
    ValueError
        For a sample that is not a column of the table, a sample both control and treatment,
        both or neither of control/treatment and design, or control rows not in the table.

    Examples
    --------
    >>> from skhier.datasets import load_mageck_demo1
    >>> count_screen(load_mageck_demo1(), control="HL60.initial", treatment="HL60.fnial")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: sample 'HL60.fnial' (treatment) is not a column of the count table; its ...
    """
    if not isinstance(table, pd.DataFrame):
        table = read_count_table(table)
    else:
        table = check_count_table(table)
    all_samples = list(table.columns[2:])
    control, treatment = _samples(control, "control"), _samples(treatment, "treatment")
    if design is not None and (control or treatment):
        raise ValueError("give either control/treatment samples or a design matrix, not both.")
    if design is None:
        if not control or not treatment:
            raise ValueError(
                "give the control samples (e.g. T0) and the treatment samples, or a design "
                f"matrix; the table's samples are {all_samples}."
            )
        both = sorted(set(control) & set(treatment))
        if both:
            raise ValueError(f"samples {both} are given as both control and treatment.")
        used = control + treatment
        design_frame = pd.DataFrame(
            {"treatment": [0] * len(control) + [1] * len(treatment)},
            index=pd.Index(used, name="sample"),
        )
        labels = {"treatment": "treatment"}
        roles = {**dict.fromkeys(control, "control"), **dict.fromkeys(treatment, "treatment")}
    else:
        raw = read_design_matrix(design)
        labels = {_identifier(c): str(c) for c in raw.columns}
        if len(labels) < raw.shape[1]:
            raise ValueError(f"the design matrix's conditions {list(raw.columns)} clash as names.")
        design_frame = raw.set_axis(list(labels), axis=1)
        design_frame.index.name = "sample"
        used = list(design_frame.index)
        roles = dict.fromkeys(used, "design matrix")
    for s in used:
        if s not in all_samples:
            raise ValueError(
                f"sample {s!r} ({roles[s]}) is not a column of the count table; its samples "
                f"are {all_samples}."
            )
    for c in design_frame.columns:
        if design_frame[c].nunique() < 2:
            raise ValueError(
                f"condition {labels[c]!r} is the same in every used sample; its effect cannot "
                "be estimated (a screen needs reference samples without it)."
            )
    zero = (table[used].to_numpy() == 0).all(axis=1)
    dropped = table.loc[zero, ["sgRNA", "gene"]].reset_index(drop=True)
    counts = table.loc[~zero].reset_index(drop=True)
    if zero.any():
        logger.info("skhier: dropped %d sgRNAs with no reads in any used sample.", int(zero.sum()))
    rows = None
    if normalization == "control":
        rows = np.zeros(len(counts), dtype=bool)
        if control_sgrnas is not None:
            rows |= counts["sgRNA"].isin(list(control_sgrnas)).to_numpy()
        if control_genes is not None:
            rows |= counts["gene"].isin(list(control_genes)).to_numpy()
    elif control_sgrnas is not None or control_genes is not None:
        raise ValueError(
            "control_sgrnas/control_genes are used by normalization='control'; set it, or "
            "leave them out."
        )
    factors = size_factors(counts[used], normalization, rows)
    return CountScreen(
        counts=counts,
        design=design_frame.astype(np.int64),
        size_factors=factors,
        dropped=dropped,
        normalization=normalization,
        condition_labels=labels,
    )


def _normalized(screen: CountScreen, samples) -> np.ndarray:
    return screen.counts[samples].to_numpy(np.float64) / screen.size_factors[samples].to_numpy()


def _other_condition(ranker, column):
    """Rank the genes by a condition the ranker was not ranking."""
    from skhier.effects import level_totals
    from skhier.ranking import rank_posterior

    plan = ranker.plan_
    totals = level_totals(
        ranker.idata_.posterior, plan.parsed, plan.design, column, plan.design.factors["gene"]
    )
    return rank_posterior(
        totals,
        ascending=bool(ranker.ascending),
        top_k=min(ranker.top_k, totals.shape[-1]),
        hdi_prob=ranker.hdi_prob,
    )


def gene_summary(ranker, screen: CountScreen) -> pd.DataFrame:
    """Tabulate the gene ranking in MAGeCK MLE's ``gene_summary`` layout, with skhier's columns.

    Per condition ``c`` (its user label): ``c|beta`` (posterior mean of the gene's log fold
    change, natural log as in MAGeCK MLE), ``c|z`` (mean over sd), ``c|p-value`` and
    ``c|wald-p-value`` (both ``2 * lfsr``, capped at 1: the posterior probability of the other
    sign, two-sided), ``c|fdr`` and ``c|wald-fdr`` (the s-value: the expected share of wrong
    signs among genes at least as extreme), then skhier's ``c|sd``, ``c|hdi_low``,
    ``c|hdi_high``, ``c|lfsr``, and for the ranked condition ``rank``, ``expected_rank``,
    ``rank_low``, ``rank_high``, ``p_top_k``. MAGeCKFlute's ``ReadBeta`` and VISPR read the
    ``Gene``, ``sgRNA`` and ``c|beta`` columns.

    Parameters
    ----------
    ranker : HierarchicalRanker
        Fitted on ``screen.data`` with ``screen.ranker()``.
    screen : CountScreen
        The screen.

    Returns
    -------
    pandas.DataFrame
        One row per gene, ranked first.
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(ranker, "idata_")
    ranked = ranker.column_
    table = ranker.rank_
    n_sg = screen.counts.groupby("gene", sort=False).size()
    out = pd.DataFrame(
        {"Gene": table.index.astype(str), "sgRNA": n_sg.reindex(table.index).to_numpy()}
    )
    for c in screen.conditions:
        label = screen.condition_labels.get(c, c)
        t = table if c == ranked else _other_condition(ranker, c).reindex(table.index)
        z = t["mean"] / t["sd"]
        p = np.minimum(1.0, 2.0 * t["lfsr"].to_numpy())
        out[f"{label}|beta"] = t["mean"].to_numpy()
        out[f"{label}|z"] = z.to_numpy()
        out[f"{label}|p-value"] = p
        out[f"{label}|fdr"] = t["svalue"].to_numpy()
        out[f"{label}|wald-p-value"] = p
        out[f"{label}|wald-fdr"] = t["svalue"].to_numpy()
        out[f"{label}|sd"] = t["sd"].to_numpy()
        out[f"{label}|hdi_low"] = t["hdi_low"].to_numpy()
        out[f"{label}|hdi_high"] = t["hdi_high"].to_numpy()
        out[f"{label}|lfsr"] = t["lfsr"].to_numpy()
    for col in ("rank", "expected_rank", "rank_low", "rank_high", "p_top_k"):
        out[col] = table[col].to_numpy()
    return out


def sgrna_summary(ranker, screen: CountScreen) -> pd.DataFrame:
    """Tabulate the sgRNAs in MAGeCK's ``sgrna_summary`` layout, with their posterior effects.

    MAGeCK's columns (``sgrna``, ``Gene``, ``control_count``, ``treatment_count`` as
    slash-separated normalized counts, ``control_mean``, ``treat_mean``, ``LFC`` as log2 fold
    change of the means plus 1 read) for the first condition's samples against the others, then
    skhier's: the sgRNA's total effect on the ranked condition (gene plus sgRNA effect; natural
    log) with ``sd``, ``lfsr`` and its ``rank`` among all sgRNAs by that posterior mean.

    Parameters
    ----------
    ranker : HierarchicalRanker
        Fitted on ``screen.data``.
    screen : CountScreen
        The screen.

    Returns
    -------
    pandas.DataFrame
        One row per sgRNA, in the table's order.
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(ranker, "idata_")
    c = ranker.column_
    treated = [s for s in screen.design.index if screen.design.loc[s, c] == 1]
    ref = [s for s in screen.design.index if screen.design.loc[s, c] == 0]
    norm_t, norm_c = _normalized(screen, treated), _normalized(screen, ref)

    def joined(x):
        return ["/".join(f"{v:.4g}" for v in row) for row in x]

    mean_t, mean_c = norm_t.mean(axis=1), norm_c.mean(axis=1)
    out = pd.DataFrame(
        {
            "sgrna": screen.counts["sgRNA"].to_numpy(),
            "Gene": screen.counts["gene"].to_numpy(),
            "control_count": joined(norm_c),
            "treatment_count": joined(norm_t),
            "control_mean": mean_c,
            "treat_mean": mean_t,
            "LFC": np.log2((mean_t + 1.0) / (mean_c + 1.0)),
        }
    )
    sg = _sgrna_effects(ranker)
    keys = screen.counts["sgRNA"].astype(str).to_numpy()  # shown by sgRNA id when those are unique
    if not pd.Index(keys).isin(sg.index).all():
        keys = (screen.counts["gene"].astype(str) + ":" + keys).to_numpy()
    sg = sg.reindex(keys)
    out["beta"] = sg["mean"].to_numpy()
    out["sd"] = sg["sd"].to_numpy()
    out["lfsr"] = sg["lfsr"].to_numpy()
    out["rank"] = sg["rank"].to_numpy()
    return out


def _sgrna_effects(ranker, block: int = 4096) -> pd.DataFrame:
    """Mean, sd, lfsr and rank (by the mean, best first) of every sgRNA's total effect.

    What the sgRNA summary shows, computed over blocks of sgRNAs from the draws: a full rank
    table (expected ranks and their intervals over some 70,000 sgRNAs) is not needed there.
    """
    draws = ranker.effect_draws(level="gene:sgRNA")
    values = np.asarray(draws)
    values = values.reshape(-1, values.shape[-1])
    n = values.shape[1]
    mean, sd, lfsr = np.empty(n), np.empty(n), np.empty(n)
    for lo in range(0, n, block):
        x = values[:, lo : lo + block].astype(np.float64)
        mean[lo : lo + block] = x.mean(axis=0)
        sd[lo : lo + block] = x.std(axis=0, ddof=1)
        lfsr[lo : lo + block] = np.minimum((x <= 0).mean(axis=0), (x >= 0).mean(axis=0))
    key = mean if ranker.ascending else -mean
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(key, kind="stable")] = np.arange(1, n + 1)
    index = pd.Index(np.asarray(draws[draws.dims[-1]].values).astype(str))
    return pd.DataFrame({"mean": mean, "sd": sd, "lfsr": lfsr, "rank": rank}, index=index)


def write_summaries(ranker, screen: CountScreen, prefix) -> dict:
    """Write ``{prefix}.gene_summary.txt`` and ``{prefix}.sgrna_summary.txt`` (tab-separated).

    Parameters
    ----------
    ranker : HierarchicalRanker
        Fitted on ``screen.data``.
    screen : CountScreen
        The screen.
    prefix : str or os.PathLike
        Output prefix, as MAGeCK's ``-n``.

    Returns
    -------
    dict of str to str
        The paths written, by kind.
    """
    prefix = os.fspath(prefix)
    paths = {"gene": f"{prefix}.gene_summary.txt", "sgrna": f"{prefix}.sgrna_summary.txt"}
    gene_summary(ranker, screen).to_csv(paths["gene"], sep="\t", index=False, float_format="%.6g")
    sgrna_summary(ranker, screen).to_csv(paths["sgrna"], sep="\t", index=False, float_format="%.6g")
    return paths
