"""Real CRISPR screen data shipped with skhier.

MAGeCK's demo screens (BSD-3-Clause, Copyright (c) 2021, Wei Li) with MAGeCK's own results, to
compare skhier's rankings with, and a genome-wide knockout screen with the reference genes it
is judged by (MIT, Copyright (c) 2020 Hart Lab):

- :func:`load_mageck_leukemia`: read counts of 9,999 sgRNAs in 1,000 genes, HL60 and KBM7 cells,
  before and after selection (wide, or tidy with ``tidy=True``).
- :func:`load_mageck_leukemia_results`: MAGeCK MLE's gene betas for those counts.
- :func:`load_mageck_demo1`: the first 999 sgRNAs (100 genes) of the same table.
- :func:`load_mageck_demo1_results`: MAGeCK RRA's gene ranking for demo 1.
- :func:`load_hap1`: HAP1 cells, TKOv3 library (71,090 sgRNAs, 18,056 genes), T0 and T18.
- :func:`load_reference_genes`: core-essential (CEGv2) and non-essential (NEGv1) genes.

Examples
--------
>>> from skhier import datasets
>>> datasets.load_mageck_demo1(tidy=True).columns.tolist()
['sgRNA', 'gene', 'cell_line', 'initial', 'final']
"""

from skhier.datasets._loaders import (
    load_hap1,
    load_mageck_demo1,
    load_mageck_demo1_results,
    load_mageck_leukemia,
    load_mageck_leukemia_results,
    load_reference_genes,
)

__all__ = [
    "load_hap1",
    "load_reference_genes",
    "load_mageck_demo1",
    "load_mageck_demo1_results",
    "load_mageck_leukemia",
    "load_mageck_leukemia_results",
]
