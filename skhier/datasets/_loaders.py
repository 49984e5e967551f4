"""Loaders for the CRISPR screen data shipped with skhier (MAGeCK's demo data)."""

from __future__ import annotations

import re
from importlib import resources

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

__all__ = [
    "load_mageck_demo1",
    "load_mageck_demo1_results",
    "load_mageck_leukemia",
    "load_mageck_leukemia_results",
    "load_hap1",
    "load_reference_genes",
]

_LEUKEMIA_COUNTS = "leukemia.new.csv.gz"
_LEUKEMIA_MLE = "leukemia_mle.gene_summary.txt.gz"
_DEMO1_COUNTS = "demo1_sample.txt.gz"
_DEMO1_RRA = "demo1_rra.gene_summary.txt"
_HAP1_COUNTS = "hap1_tkov3_reads.txt.gz"
_REFERENCE = {"essential": "CEGv2.txt.gz", "nonessential": "NEGv1.txt.gz"}

_LICENSE_NOTE = (
    "Data from MAGeCK's demos (https://sourceforge.net/projects/mageck, "
    "https://github.com/davidliwei/mageck2-demo), Copyright (c) 2021, Wei Li, BSD-3-Clause; "
    "the license text ships as skhier/datasets/data/LICENSE_mageck.txt."
)

_LEUKEMIA_DESCR = f"""MAGeCK leukemia demo screen
---------------------------
Read counts of 9,999 sgRNAs targeting 1,000 genes (10 sgRNAs each, 9 for CCDC11) in two
leukemia cell lines, HL60 and KBM7, before (``initial``) and after (``final``) selection: the
count table ``leukemia.new.csv`` of MAGeCK's MLE demo. The same run's gene-level betas are in
``load_mageck_leukemia_results``.

{_LICENSE_NOTE}
"""

_DEMO1_DESCR = f"""MAGeCK demo 1 screen
--------------------
Read counts of 999 sgRNAs targeting 100 genes (10 sgRNAs each, 9 for AHRR) in HL60 and KBM7
cells, before (``initial``) and after (``final``) selection: ``sample.txt`` of MAGeCK's RRA demo
(the first 999 rows of the leukemia table). MAGeCK RRA's gene ranking for treatment
``HL60.final,KBM7.final`` versus control ``HL60.initial,KBM7.initial`` is in
``load_mageck_demo1_results``.

{_LICENSE_NOTE}
"""


def _read(name, **kwargs):
    """Read a shipped table (gzip by file name) through importlib.resources."""
    resource = resources.files("skhier.datasets") / "data" / name
    compression = "gzip" if name.endswith(".gz") else None
    with resource.open("rb") as handle:
        # na_filter=False: gene symbols such as "NA" must stay labels, never become NaN
        return pd.read_csv(handle, compression=compression, na_filter=False, **kwargs)


def _read_counts(name, sep):
    counts = _read(name, sep=sep, dtype={"sgRNA": str, "Gene": str})
    counts = counts.rename(columns={"Gene": "gene"})
    count_columns = [c for c in counts.columns if c not in ("sgRNA", "gene")]
    counts[count_columns] = counts[count_columns].astype(np.int64)
    return counts, count_columns


def _tidy_counts(counts, count_columns):
    """Long form: one row per (sgRNA, cell line), columns sgRNA, gene, cell_line, initial, final."""
    cell_lines = list(dict.fromkeys(c.rsplit(".", 1)[0] for c in count_columns))
    n = len(counts)
    initial = np.column_stack([counts[f"{c}.initial"].to_numpy() for c in cell_lines])
    final = np.column_stack([counts[f"{c}.final"].to_numpy() for c in cell_lines])
    return pd.DataFrame(
        {
            "sgRNA": np.repeat(counts["sgRNA"].to_numpy(dtype=object), len(cell_lines)),
            "gene": np.repeat(counts["gene"].to_numpy(dtype=object), len(cell_lines)),
            "cell_line": np.tile(np.asarray(cell_lines, dtype=object), n),
            "initial": initial.reshape(-1).astype(np.int64),
            "final": final.reshape(-1).astype(np.int64),
        }
    )


def _load_counts(name, sep, *, as_frame, tidy, descr):
    if not isinstance(as_frame, bool | np.bool_):
        raise TypeError(f"as_frame must be True or False, got {as_frame!r}.")
    if not isinstance(tidy, bool | np.bool_):
        raise TypeError(f"tidy must be True or False, got {tidy!r}.")
    counts, count_columns = _read_counts(name, sep)
    if tidy:
        frame = _tidy_counts(counts, count_columns)
        value_columns = ["initial", "final"]
        label_columns = ["sgRNA", "gene", "cell_line"]
    else:
        frame = counts
        value_columns = count_columns
        label_columns = ["sgRNA", "gene"]
    if as_frame:
        return frame
    return Bunch(
        data=frame[value_columns].to_numpy(dtype=np.int64),
        feature_names=list(value_columns),
        **{c: frame[c].to_numpy(dtype=object) for c in label_columns},
        DESCR=descr,
    )


def _clean_name(name, label_map=None):
    """Clean a MAGeCK column name: ``'KBM7|p-value'`` -> ``'KBM7_p_value'``."""
    prefix, _, stat = name.rpartition("|")
    prefix = (label_map or {}).get(prefix, prefix)
    stat = {"goodsgrna": "good_sgrnas"}.get(stat, stat)
    cleaned = re.sub(r"[^0-9A-Za-z]+", "_", f"{prefix}_{stat}" if prefix else stat)
    return cleaned.strip("_")


def load_mageck_leukemia(*, as_frame=True, tidy=False):
    """Load the read counts of MAGeCK's leukemia demo screen (HL60 and KBM7 cells).

    9,999 sgRNAs targeting 1,000 genes (10 sgRNAs per gene, 9 for CCDC11), read counts before
    (``initial``) and after (``final``) selection in two cell lines. MAGeCK MLE's gene betas
    for these data are returned by :func:`load_mageck_leukemia_results`.

    Parameters
    ----------
    as_frame : bool, default=True
        Return a :class:`pandas.DataFrame`. If False, return a :class:`sklearn.utils.Bunch`
        of numpy arrays instead: ``data`` (int64 counts, one column per ``feature_names``),
        the label arrays (``sgRNA``, ``gene`` and, with ``tidy=True``, ``cell_line``) and
        ``DESCR``.
    tidy : bool, default=False
        If False, MAGeCK's wide count table: columns ``sgRNA, gene, HL60.initial,
        KBM7.initial, HL60.final, KBM7.final`` (9,999 rows; MAGeCK's ``Gene`` column renamed
        ``gene``). If True, the long form for models such as ``final ~ offset(log(initial)) +
        (1|gene/sgRNA)``: columns ``sgRNA, gene, cell_line, initial, final``, one row per
        (sgRNA, cell line) (19,998 rows, ``cell_line`` in ``{"HL60", "KBM7"}``).

    Returns
    -------
    data : pandas.DataFrame or sklearn.utils.Bunch
        Counts are int64 (some are 0); ``sgRNA``, ``gene`` and ``cell_line`` are strings in
        pandas' default string dtype (``str`` in pandas 3). No missing values.

    See Also
    --------
    load_mageck_leukemia_results : MAGeCK MLE's gene betas for these data.
    load_mageck_demo1 : The first 999 sgRNAs (100 genes), with MAGeCK RRA's ranking.
    skhier.ScreenSimulator : Simulated screens with known effects (``mode="counts"``).

    Notes
    -----
    Data from MAGeCK's demos (Copyright (c) 2021, Wei Li), BSD-3-Clause licensed; the license
    text ships as ``skhier/datasets/data/LICENSE_mageck.txt``.

    References
    ----------
    .. [1] W. Li et al., "Quality control, modeling, and visualization of CRISPR screens with
       MAGeCK-VISPR", Genome Biology 16, 281 (2015).

    Examples
    --------
    >>> from skhier.datasets import load_mageck_leukemia
    >>> counts = load_mageck_leukemia()
    >>> counts.shape
    (9999, 6)
    >>> counts.columns.tolist()
    ['sgRNA', 'gene', 'HL60.initial', 'KBM7.initial', 'HL60.final', 'KBM7.final']
    >>> counts["gene"].nunique()
    1000
    >>> tidy = load_mageck_leukemia(tidy=True)
    >>> tidy.columns.tolist()
    ['sgRNA', 'gene', 'cell_line', 'initial', 'final']
    >>> tidy.groupby("cell_line")["final"].size().to_dict()
    {'HL60': 9999, 'KBM7': 9999}
    """
    return _load_counts(_LEUKEMIA_COUNTS, ",", as_frame=as_frame, tidy=tidy, descr=_LEUKEMIA_DESCR)


def load_mageck_leukemia_results():
    """Load MAGeCK MLE's gene betas for the leukemia demo screen.

    The gene summary of ``mageck mle`` on :func:`load_mageck_leukemia`'s counts with MAGeCK's
    demo design matrix (a baseline plus one beta per cell line; no CNV correction): one row per
    gene, for HL60 and KBM7 the beta (the gene's log fold change), its z-score, permutation
    p-value and FDR, and Wald p-value and FDR.

    Returns
    -------
    results : pandas.DataFrame
        1,000 rows, in MAGeCK's (alphabetical) gene order, with columns ``gene`` (str),
        ``n_sgrnas`` (int64), and for ``cell`` in ``HL60``, ``KBM7``: ``{cell}_beta``,
        ``{cell}_z``, ``{cell}_p_value``, ``{cell}_fdr``, ``{cell}_wald_p_value``,
        ``{cell}_wald_fdr`` (float64). MAGeCK's condition label
        ``HL60_HAEMATOPOIETIC_AND_LYMPHOID_TISSUE`` is shortened to ``HL60``. No missing values.

    See Also
    --------
    load_mageck_leukemia : The count table these betas were estimated from.

    Notes
    -----
    A negative beta means the gene's sgRNAs are depleted after selection (an essential gene).
    Data from MAGeCK's demos (Copyright (c) 2021, Wei Li), BSD-3-Clause licensed.

    Examples
    --------
    >>> from skhier.datasets import load_mageck_leukemia_results
    >>> mle = load_mageck_leukemia_results()
    >>> mle.shape
    (1000, 14)
    >>> mle.columns.tolist()[:6]
    ['gene', 'n_sgrnas', 'HL60_beta', 'HL60_z', 'HL60_p_value', 'HL60_fdr']
    >>> int(mle["n_sgrnas"].sum())
    9999
    """
    raw = _read(_LEUKEMIA_MLE, sep="\t", dtype={"Gene": str})
    label_map = {"HL60_HAEMATOPOIETIC_AND_LYMPHOID_TISSUE": "HL60"}
    columns = {"Gene": "gene", "sgRNA": "n_sgrnas"}
    columns.update({c: _clean_name(c, label_map) for c in raw.columns if "|" in c})
    results = raw.rename(columns=columns)
    return _with_dtypes(results)


def load_mageck_demo1(*, as_frame=True, tidy=False):
    """Load the read counts of MAGeCK's demo 1 (999 sgRNAs, 100 genes, HL60 and KBM7 cells).

    The first 999 rows of :func:`load_mageck_leukemia`'s table (10 sgRNAs per gene, 9 for
    AHRR): small enough for quick examples. MAGeCK RRA's gene ranking for these data is
    returned by :func:`load_mageck_demo1_results`.

    Parameters
    ----------
    as_frame : bool, default=True
        Return a :class:`pandas.DataFrame`; if False, a :class:`sklearn.utils.Bunch` of numpy
        arrays as in :func:`load_mageck_leukemia`.
    tidy : bool, default=False
        If False, MAGeCK's wide count table: columns ``sgRNA, gene, HL60.initial,
        KBM7.initial, HL60.final, KBM7.final`` (999 rows). If True, the long form: columns
        ``sgRNA, gene, cell_line, initial, final``, one row per (sgRNA, cell line) (1,998
        rows).

    Returns
    -------
    data : pandas.DataFrame or sklearn.utils.Bunch
        Counts are int64; labels are strings. No missing values.

    See Also
    --------
    load_mageck_demo1_results : MAGeCK RRA's gene ranking for these data.
    load_mageck_leukemia : The full table (9,999 sgRNAs, 1,000 genes).

    Notes
    -----
    Data from MAGeCK's demos (Copyright (c) 2021, Wei Li), BSD-3-Clause licensed.

    Examples
    --------
    >>> from skhier.datasets import load_mageck_demo1
    >>> counts = load_mageck_demo1()
    >>> counts.shape
    (999, 6)
    >>> counts["gene"].nunique()
    100
    >>> load_mageck_demo1(tidy=True).shape
    (1998, 5)
    >>> load_mageck_demo1(as_frame=False).data.shape
    (999, 4)
    """
    return _load_counts(_DEMO1_COUNTS, "\t", as_frame=as_frame, tidy=tidy, descr=_DEMO1_DESCR)


def load_mageck_demo1_results():
    """Load MAGeCK RRA's gene ranking for demo 1.

    The gene summary of ``mageck test -k sample.txt -t HL60.final,KBM7.final -c
    HL60.initial,KBM7.initial``: for negative selection (``neg_*``, depleted genes) and
    positive selection (``pos_*``, enriched genes), the RRA score, p-value, FDR, rank, the
    number of sgRNAs supporting the call and the gene's log2 fold change.

    Returns
    -------
    results : pandas.DataFrame
        99 rows (MAGeCK's file has no row for AHNAK), in MAGeCK's order (by ``neg_rank``), with
        columns ``gene`` (str), ``n_sgrnas``, and for ``side`` in ``neg``, ``pos``:
        ``{side}_score``, ``{side}_p_value``, ``{side}_fdr``, ``{side}_rank`` (int64),
        ``{side}_good_sgrnas`` (int64), ``{side}_lfc`` (log2). No missing values.

    See Also
    --------
    load_mageck_demo1 : The count table this ranking was computed from.

    Notes
    -----
    Data from MAGeCK's demos (Copyright (c) 2021, Wei Li), BSD-3-Clause licensed.

    Examples
    --------
    >>> from skhier.datasets import load_mageck_demo1_results
    >>> rra = load_mageck_demo1_results()
    >>> rra.shape
    (99, 14)
    >>> rra.columns.tolist()[:5]
    ['gene', 'n_sgrnas', 'neg_score', 'neg_p_value', 'neg_fdr']
    >>> rra.loc[rra["neg_rank"] == 1, "gene"].item()
    'ACTR8'
    """
    raw = _read(_DEMO1_RRA, sep="\t", dtype={"id": str})
    columns = {"id": "gene", "num": "n_sgrnas"}
    columns.update({c: _clean_name(c) for c in raw.columns if "|" in c})
    return _with_dtypes(raw.rename(columns=columns))


def _with_dtypes(results):
    """Integer columns as int64, the rest of the numbers as float64."""
    for column in results.columns:
        if column == "gene":
            continue
        values = results[column]
        is_count = column == "n_sgrnas" or column.endswith(("_rank", "_good_sgrnas"))
        results[column] = values.astype(np.int64 if is_count else np.float64)
    return results


def load_hap1():
    """Load a genome-wide CRISPR knockout screen: HAP1 cells, TKOv3 library, T0 and T18.

    Read counts of 71,090 sgRNAs targeting 18,056 genes, at T0 and in three replicates 18
    days later (``HAP1_T18A``, ``HAP1_T18B``, ``HAP1_T18C``), from the hart-lab/bagel
    repository. Essential genes drop out between T0 and T18; :func:`load_reference_genes`
    gives the standard reference sets to judge a ranking by.

    Returns
    -------
    counts : pandas.DataFrame
        71,090 rows; columns ``sgRNA`` (the guide sequence), ``gene`` (strings) and
        ``HAP1_T0``, ``HAP1_T18A``, ``HAP1_T18B``, ``HAP1_T18C`` (int64). 272 sgRNAs have zero
        counts in every sample.

    See Also
    --------
    load_reference_genes : Core-essential and non-essential reference genes.
    skhier.screens.CountScreen : Build the model of a count screen from such a table.

    Notes
    -----
    Data from the hart-lab/bagel repository (Copyright (c) 2020 Hart Lab), MIT licensed; the
    license text ships as ``skhier/datasets/data/LICENSE_hartlab.txt``.

    References
    ----------
    .. [1] T. Hart et al., "Evaluation and design of genome-wide CRISPR/SpCas9 knockout screens",
       G3 7, 2719-2727 (2017).

    Examples
    --------
    >>> from skhier.datasets import load_hap1
    >>> counts = load_hap1()
    >>> counts.shape
    (71090, 6)
    >>> counts.columns.tolist()[:3]
    ['sgRNA', 'gene', 'HAP1_T0']
    >>> counts["gene"].nunique()
    18056
    """
    raw = _read(_HAP1_COUNTS, sep="\t", dtype={"SEQUENCE": str, "GENE": str})
    counts = raw.rename(columns={"SEQUENCE": "sgRNA", "GENE": "gene"})
    samples = [c for c in counts.columns if c not in ("sgRNA", "gene")]
    counts[samples] = counts[samples].astype(np.int64)
    return counts


def load_reference_genes():
    """Load the standard reference genes of knockout screens: CEGv2 and NEGv1.

    Returns
    -------
    reference : dict of str to list of str
        ``"essential"``: the 684 core-essential genes of CEGv2 (Hart et al. 2017);
        ``"nonessential"``: the 927 non-essential genes of NEGv1 (Hart et al. 2014).

    See Also
    --------
    load_hap1 : A genome-wide screen to rank them in.

    Notes
    -----
    From the hart-lab/bagel repository (Copyright (c) 2020 Hart Lab), MIT licensed.

    Examples
    --------
    >>> from skhier.datasets import load_reference_genes
    >>> ref = load_reference_genes()
    >>> len(ref["essential"]), len(ref["nonessential"])
    (684, 927)
    """
    return {
        key: _read(name, sep="\t", dtype=str)["GENE"].tolist() for key, name in _REFERENCE.items()
    }
