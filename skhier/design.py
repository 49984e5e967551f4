"""Group indices from observed levels, nesting structure and per-cell sufficient statistics.

formulae builds a level for every combination of the columns of an interaction factor
(``gene:sgRNA`` has ``n_genes * n_sgRNAs`` levels, observed or not) and dense row-by-level
matrices; both are out of reach at the scale of a real screen. This module builds the group
indices itself, from the level combinations that occur in the data, and reduces a Gaussian model's
data to per-cell sums (``n``, ``W'W``, ``W'y``, ``y'y``), which is exact for a Gaussian likelihood
with identity link.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from skhier.formula import INTERCEPT, ParsedFormula

__all__ = [
    "Factor",
    "Design",
    "build_factor",
    "build_design",
    "cell_statistics",
    "groups_table",
]


@dataclass
class Factor:
    """A grouping factor with its observed levels.

    Parameters
    ----------
    name : str
        ``gene`` or, for an interaction, ``gene:sgRNA``.
    columns : tuple of str
        The data columns making up the factor.
    codes : ndarray of int64
        Level index of every row.
    labels : pandas.Index
        Bambi-style level labels (``G01:G01_sg1`` for an interaction), sorted.
    display : pandas.Index
        Labels for people: the innermost column's value when that alone identifies the level,
        otherwise the Bambi-style label.
    n_obs : ndarray of int64
        Rows per level.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"g": ["a", "a", "b"], "s": ["x", "y", "x"]})
    >>> f = build_factor(df, ("g", "s"))
    >>> list(f.labels), list(f.display), f.codes.tolist()
    (['a:x', 'a:y', 'b:x'], ['a:x', 'a:y', 'b:x'], [0, 1, 2])
    """

    name: str
    columns: tuple[str, ...]
    codes: np.ndarray
    labels: pd.Index
    display: pd.Index
    n_obs: np.ndarray

    @property
    def n_levels(self) -> int:
        """Number of observed levels."""
        return len(self.labels)

    @property
    def short_name(self) -> str:
        """The innermost column, the name users give the level (``sgRNA`` for ``gene:sgRNA``)."""
        return self.columns[-1]


def _as_str(values: pd.Series) -> np.ndarray:
    return values.astype(str).to_numpy(dtype=object)


def build_factor(data: pd.DataFrame, columns: tuple[str, ...]) -> Factor:
    """Index the observed level combinations of one or more grouping columns.

    Parameters
    ----------
    data : pandas.DataFrame
        The data.
    columns : tuple of str
        Grouping columns; an interaction when more than one.

    Returns
    -------
    Factor
        Codes per row and sorted labels of the observed levels only.

    Examples
    --------
    >>> import pandas as pd
    >>> f = build_factor(pd.DataFrame({"g": ["b", "a", "b"]}), ("g",))
    >>> list(f.labels), f.codes.tolist(), f.n_obs.tolist()
    (['a', 'b'], [1, 0, 1], [1, 2])
    """
    parts = [_as_str(data[c]) for c in columns]
    if len(parts) == 1:
        keys = parts[0]
    else:
        keys = parts[0].copy()
        for p in parts[1:]:
            keys = keys + ":" + p
    codes, uniques = pd.factorize(keys, sort=True)
    codes = codes.astype(np.int64)
    labels = pd.Index(np.asarray(uniques, dtype=object), name=":".join(columns))
    n_obs = np.bincount(codes, minlength=len(labels)).astype(np.int64)
    display = labels
    if len(parts) > 1:
        inner = pd.Series(parts[-1]).groupby(codes).first()
        inner_index = pd.Index(inner.to_numpy(dtype=object))
        if inner_index.is_unique:
            display = inner_index
    display = pd.Index(display, name=columns[-1])
    return Factor(":".join(columns), tuple(columns), codes, labels, display, n_obs)


def parent_codes(child: Factor, parent: Factor) -> np.ndarray | None:
    """Map each level of ``child`` to the one level of ``parent`` it lies in.

    Parameters
    ----------
    child, parent : Factor
        Two factors over the same rows.

    Returns
    -------
    ndarray of int64 or None
        ``out[l]`` is the parent level of child level ``l``; None when some child level spans
        several parent levels (the factors are not nested).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"g": ["a", "a", "b"], "s": ["x", "y", "z"]})
    >>> parent_codes(build_factor(df, ("s",)), build_factor(df, ("g",))).tolist()
    [0, 0, 1]
    """
    # The parent of each child level's last row; nested exactly when every row agrees (O(rows),
    # no sort of the row pairs).
    out = np.empty(child.n_levels, dtype=np.int64)
    out[child.codes] = parent.codes
    if not np.array_equal(out[child.codes], parent.codes):
        return None
    return out


@dataclass
class Design:
    """The model's data, reduced to what the engines need.

    Parameters
    ----------
    parsed : ParsedFormula
        The formula's structure.
    columns : tuple of str
        Coefficient columns, in the order of the columns of ``W``.
    W : ndarray, shape (n_rows, q)
        Predictor values (1 for the intercept).
    y : ndarray, shape (n_rows,)
        Response.
    factors : dict of str to Factor
        Every grouping factor.
    chain : list of str or None
        Factor names ordered coarse to fine when every factor is nested in the previous one
        (the tree the collapsed engine integrates along); None when factors are crossed.
    parents : dict of str to ndarray
        For each factor of the chain but the first, the parent level of each level.
    reason : str
        Why the factors do not form a chain (empty when they do).

    Examples
    --------
    >>> import pandas as pd
    >>> from skhier.formula import parse_formula
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4], "x": [1.0, 2, 1, 2],
    ...                    "g": ["a", "a", "b", "b"], "s": ["a1", "a2", "b1", "b2"]})
    >>> d = build_design(df, parse_formula("y ~ 0 + x:(1|g/s)"))
    >>> d.chain, d.columns
    (['g', 'g:s'], ('x',))
    """

    parsed: ParsedFormula
    columns: tuple[str, ...]
    W: np.ndarray
    y: np.ndarray
    factors: dict[str, Factor]
    chain: list[str] | None
    parents: dict[str, np.ndarray] = field(default_factory=dict)
    reason: str = ""

    @property
    def n_rows(self) -> int:
        """Number of observations."""
        return len(self.y)

    @property
    def cells(self) -> np.ndarray:
        """Cell of every row: the level of the finest factor (one cell without factors)."""
        if self.chain:
            return self.factors[self.chain[-1]].codes
        return np.zeros(self.n_rows, dtype=np.int64)

    @property
    def n_cells(self) -> int:
        """Number of cells."""
        if self.chain:
            return self.factors[self.chain[-1]].n_levels
        return 1

    def find_factor(self, level: str) -> Factor:
        """Return the factor a user's level name refers to (``sgRNA`` or ``gene:sgRNA``).

        Parameters
        ----------
        level : str
            Factor name or its innermost column.

        Returns
        -------
        Factor
            The matching factor.

        Raises
        ------
        ValueError
            If no factor matches, naming the valid choices.
        """
        if level in self.factors:
            return self.factors[level]
        matches = [f for f in self.factors.values() if f.short_name == level]
        if len(matches) == 1:
            return matches[0]
        choices = sorted({*self.factors, *(f.short_name for f in self.factors.values())})
        raise ValueError(
            f"level {level!r} is not a grouping factor of the model; choose from {choices}."
        )


def design_matrix(data: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """Stack the predictor columns (1 for the intercept) into a float matrix.

    Parameters
    ----------
    data : pandas.DataFrame
        The data.
    columns : tuple of str
        Coefficient columns, ``Intercept`` for a column of ones.

    Returns
    -------
    ndarray, shape (n_rows, len(columns))
        The predictor matrix.

    Examples
    --------
    >>> import pandas as pd
    >>> design_matrix(pd.DataFrame({"x": [2.0, 3.0]}), ("Intercept", "x")).tolist()
    [[1.0, 2.0], [1.0, 3.0]]
    """
    W = np.empty((len(data), len(columns)), dtype=np.float64)
    for k, c in enumerate(columns):
        W[:, k] = 1.0 if c == INTERCEPT else np.asarray(data[c], dtype=np.float64)
    return W


def build_design(data: pd.DataFrame, parsed: ParsedFormula) -> Design:
    """Build the design: predictor matrix, observed-level factors and their nesting.

    Parameters
    ----------
    data : pandas.DataFrame
        Validated data holding every column the formula reads.
    parsed : ParsedFormula
        The formula's structure.

    Returns
    -------
    Design
        Predictors, response, factors and, when the factors are nested, their chain.

    Examples
    --------
    >>> import pandas as pd
    >>> from skhier.formula import parse_formula
    >>> df = pd.DataFrame({"y": [1.0, 2, 3], "x": [1.0, 2, 3], "g": ["a", "b", "a"],
    ...                    "b": ["u", "u", "v"]})
    >>> d = build_design(df, parse_formula("y ~ x + (1|g) + (1|b)"))
    >>> d.chain is None, d.reason
    (True, "factors 'g' and 'b' are crossed, not nested")
    """
    columns = parsed.columns
    W = design_matrix(data, columns)
    y = np.asarray(data[parsed.response], dtype=np.float64)
    factors = {}
    for t in parsed.group_terms:
        if t.factor not in factors:
            factors[t.factor] = build_factor(data, t.factors)
    chain, parents, reason = _nesting_chain(factors)
    return Design(parsed, columns, W, y, factors, chain, parents, reason)


def _nesting_chain(factors: dict[str, Factor]):
    if not factors:
        return [], {}, ""
    order = sorted(factors, key=lambda name: (factors[name].n_levels, len(factors[name].columns)))
    parents = {}
    for coarse, fine in zip(order[:-1], order[1:], strict=True):
        pc = parent_codes(factors[fine], factors[coarse])
        if pc is None:
            return None, {}, f"factors {coarse!r} and {fine!r} are crossed, not nested"
        parents[fine] = pc
    return order, parents, ""


def cell_statistics(W: np.ndarray, y: np.ndarray, cells: np.ndarray, n_cells: int) -> dict:
    """Per-cell sufficient statistics of a Gaussian linear model.

    Parameters
    ----------
    W : ndarray, shape (n_rows, q)
        Predictors.
    y : ndarray, shape (n_rows,)
        Response.
    cells : ndarray of int, shape (n_rows,)
        Cell of each row.
    n_cells : int
        Number of cells.

    Returns
    -------
    dict
        ``n`` (n_cells,), ``WW`` (n_cells, q, q), ``Wy`` (n_cells, q) and ``yy`` (n_cells,).

    Examples
    --------
    >>> import numpy as np
    >>> s = cell_statistics(np.array([[1.0], [2.0], [3.0]]), np.array([1.0, 1.0, 2.0]),
    ...                     np.array([0, 0, 1]), 2)
    >>> s["n"].tolist(), s["WW"][:, 0, 0].tolist(), s["Wy"][:, 0].tolist(), s["yy"].tolist()
    ([2, 1], [5.0, 9.0], [3.0, 6.0], [2.0, 4.0])
    """
    q = W.shape[1]
    n = np.bincount(cells, minlength=n_cells).astype(np.int64)
    WW = np.empty((n_cells, q, q))
    Wy = np.empty((n_cells, q))
    for i in range(q):
        Wy[:, i] = np.bincount(cells, weights=W[:, i] * y, minlength=n_cells)
        for j in range(i, q):
            WW[:, i, j] = WW[:, j, i] = np.bincount(
                cells, weights=W[:, i] * W[:, j], minlength=n_cells
            )
    yy = np.bincount(cells, weights=y * y, minlength=n_cells)
    return {"n": n, "WW": WW, "Wy": Wy, "yy": yy}


def groups_table(design: Design) -> dict:
    """Describe every grouping factor: its levels, their rows, their parent level.

    Parameters
    ----------
    design : Design
        The design.

    Returns
    -------
    dict of str to pandas.DataFrame
        By factor name and by its innermost column (``"gene:sgRNA"`` and ``"sgRNA"``): one row
        per level (indexed by the display label) with ``label``, ``n_obs`` and, for nested
        factors, ``parent``.

    Examples
    --------
    >>> import pandas as pd
    >>> from skhier.formula import parse_formula
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4], "x": [1.0, 2, 1, 2],
    ...                    "g": ["a", "a", "b", "b"], "s": ["a1", "a2", "b1", "b2"]})
    >>> groups_table(build_design(df, parse_formula("y ~ 0 + x:(1|g/s)")))["s"]["parent"].tolist()
    ['a', 'a', 'b', 'b']
    """
    out = {}
    for name, f in design.factors.items():
        frame = pd.DataFrame(
            {"label": np.asarray(f.labels, dtype=object), "n_obs": f.n_obs},
            index=pd.Index(np.asarray(f.display, dtype=object), name=f.short_name),
        )
        if design.chain and name in design.parents:
            parent = design.chain[design.chain.index(name) - 1]
            pf = design.factors[parent]
            frame["parent"] = np.asarray(pf.display, dtype=object)[design.parents[name]]
        out[name] = frame
        if f.short_name not in out:
            out[f.short_name] = frame
    return out
