"""Real CRISPR screen data shipped with skhier.

MAGeCK's demo screens (BSD-3-Clause, Copyright (c) 2021, Wei Li) with MAGeCK's own results, to
compare skhier's rankings with:

- :func:`load_mageck_leukemia`: read counts of 9,999 sgRNAs in 1,000 genes, HL60 and KBM7 cells,
  before and after selection (wide, or tidy with ``tidy=True``).
- :func:`load_mageck_leukemia_results`: MAGeCK MLE's gene betas for those counts.
- :func:`load_mageck_demo1`: the first 999 sgRNAs (100 genes) of the same table.
- :func:`load_mageck_demo1_results`: MAGeCK RRA's gene ranking for demo 1.

Examples
--------
>>> from skhier import datasets
>>> datasets.load_mageck_demo1(tidy=True).columns.tolist()
['sgRNA', 'gene', 'cell_line', 'initial', 'final']
"""

from skhier.datasets._loaders import (
    load_mageck_demo1,
    load_mageck_demo1_results,
    load_mageck_leukemia,
    load_mageck_leukemia_results,
)

__all__ = [
    "load_mageck_demo1",
    "load_mageck_demo1_results",
    "load_mageck_leukemia",
    "load_mageck_leukemia_results",
]
