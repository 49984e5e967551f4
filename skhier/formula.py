"""Formula parsing and translation.

skhier reads any Bambi formula with formulae, and also accepts the interaction spelling
``x:(1|g)`` / ``x:(1|a/b)`` (a slope on ``x`` varying by group), which formulae 0.6 rejects.
It is translated to ``x + (0 + x|g)`` (a population slope plus group deviations), unless the
formula already has the common term ``x``.

The result is a :class:`ParsedFormula`: the response, the common terms and the group-specific
terms, each reduced to plain column names where the terms are plain variables. Terms that are not
plain variables (calls such as ``np.log(x)``, categorical predictors, interactions) are kept in the
formula and make the fast engine fall back to Bambi's own model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["GroupTerm", "ParsedFormula", "parse_formula", "translate_formula"]

INTERCEPT = "Intercept"

# x:(1|g) or x:(1|a/b), possibly with spaces; the predictor is a plain name.
_INTERACTION_SPELLING = re.compile(
    r"(?P<x>[A-Za-z_][A-Za-z0-9_.]*)\s*:\s*\(\s*1\s*\|\s*(?P<g>[^()|]+?)\s*\)"
)
# What is left of an interaction with a group-specific term after translation, such as the
# typo x:(2|g): formulae drops such a term without a word (or fails obscurely).
_GROUP_INTERACTION = re.compile(
    r"(?P<x>[A-Za-z_][A-Za-z0-9_.]*)\s*[:*]\s*\([^()|]*\|(?P<g>[^()|]*)\)"
    r"|\([^()|]*\|(?P<g2>[^()|]*)\)\s*[:*]\s*(?P<x2>[A-Za-z_][A-Za-z0-9_.]*)"
)


@dataclass(frozen=True)
class GroupTerm:
    """One group-specific coefficient: a predictor column varying by a grouping factor.

    Parameters
    ----------
    column : str
        The predictor, ``"Intercept"`` for a varying intercept.
    factors : tuple of str
        The grouping columns; more than one for an interaction factor such as ``gene:sgRNA``
        (which is what ``gene/sgRNA`` nesting expands to).

    Examples
    --------
    >>> GroupTerm("H0", ("gene", "sgRNA")).name
    'H0|gene:sgRNA'
    """

    column: str
    factors: tuple[str, ...]

    @property
    def factor(self) -> str:
        """Name of the grouping factor, ``a:b`` for an interaction of columns."""
        return ":".join(self.factors)

    @property
    def name(self) -> str:
        """Bambi's name for the term's coefficients, e.g. ``H0|gene``."""
        prefix = "1" if self.column == INTERCEPT else self.column
        return f"{prefix}|{self.factor}"


@dataclass(frozen=True)
class ParsedFormula:
    """The structure of a model formula.

    Parameters
    ----------
    formula : str
        The formula actually fitted (after translation).
    response : str
        The response column (or the response expression when it is not a plain column).
    intercept : bool
        Whether the model has a common intercept.
    common : tuple of str
        Plain numeric predictor columns with a common coefficient.
    group_terms : tuple of GroupTerm
        Group-specific coefficients.
    unsupported : tuple of str
        Why the fast collapsed engine cannot use this formula (empty when it can).
    offset : str or None
        The column of an ``offset(column)`` term: added to the linear predictor with a fixed
        coefficient of 1 (for count models, the log of each sample's size factor).

    Examples
    --------
    >>> p = parse_formula("Ht ~ 0 + H0:(1|gene/sgRNA)")
    >>> p.formula
    'Ht ~ 0 + H0 + (0 + H0|gene/sgRNA)'
    >>> [t.name for t in p.group_terms]
    ['H0|gene', 'H0|gene:sgRNA']
    """

    formula: str
    response: str
    intercept: bool
    common: tuple[str, ...]
    group_terms: tuple[GroupTerm, ...]
    unsupported: tuple[str, ...] = field(default_factory=tuple)
    offset: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        """Every coefficient column of the model, ``Intercept`` first when present."""
        cols = [INTERCEPT] if self.intercept else []
        for c in (*self.common, *(t.column for t in self.group_terms)):
            if c not in cols:
                cols.append(c)
        if INTERCEPT in cols:
            cols.remove(INTERCEPT)
            cols.insert(0, INTERCEPT)
        return tuple(cols)

    @property
    def data_columns(self) -> tuple[str, ...]:
        """Columns of the data the model reads (response, predictors, grouping factors)."""
        out = [self.response]
        if self.offset is not None:
            out.append(self.offset)
        for c in self.columns:
            if c != INTERCEPT and c not in out:
                out.append(c)
        for t in self.group_terms:
            for f in t.factors:
                if f not in out:
                    out.append(f)
        return tuple(out)

    @property
    def factors(self) -> tuple[str, ...]:
        """Distinct grouping factors (``a:b`` for interactions), in order of appearance."""
        seen: list[str] = []
        for t in self.group_terms:
            if t.factor not in seen:
                seen.append(t.factor)
        return tuple(seen)

    def factor_columns(self, factor: str) -> tuple[str, ...]:
        """Columns making up a grouping factor name such as ``gene:sgRNA``."""
        for t in self.group_terms:
            if t.factor == factor:
                return t.factors
        raise KeyError(factor)


def _has_common_term(rhs: str, name: str) -> bool:
    """Whether ``name`` already stands alone as a common term in the right-hand side."""
    depth = 0
    token = []
    tokens = []
    for ch in rhs:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if depth == 0 and ch == "+":
            tokens.append("".join(token).strip())
            token = []
        else:
            token.append(ch)
    tokens.append("".join(token).strip())
    return name in tokens


def translate_formula(formula: str) -> str:
    """Translate the ``x:(1|g)`` spelling into a formula formulae can parse.

    ``x:(1|g)`` means group slopes drawn around a population slope, so it becomes
    ``x + (0 + x|g)``; nesting ``x:(1|a/b)`` becomes ``x + (0 + x|a/b)``. The common term is not
    added twice when the formula already has it. Other formulas are returned unchanged.

    Parameters
    ----------
    formula : str
        A model formula.

    Returns
    -------
    str
        The formula to fit.

    Examples
    --------
    >>> translate_formula("Ht ~ 0 + H0:(1|gene/sgRNA)")
    'Ht ~ 0 + H0 + (0 + H0|gene/sgRNA)'
    >>> translate_formula("y ~ x + x:(1|g)")
    'y ~ x + (0 + x|g)'
    """
    if "~" not in formula:
        return formula
    lhs, rhs = formula.split("~", 1)
    rhs_without = _INTERACTION_SPELLING.sub("", rhs)

    def repl(match: re.Match) -> str:
        x, g = match.group("x"), match.group("g").strip()
        if _has_common_term(rhs_without, x) or repl.added.get(x):
            return f"(0 + {x}|{g})"
        repl.added[x] = True
        return f"{x} + (0 + {x}|{g})"

    repl.added = {}
    rhs = _INTERACTION_SPELLING.sub(repl, rhs)
    # Clean up "+ +" left where a common term would have been duplicated.
    return f"{lhs.strip()} ~ {rhs.strip()}"


def parse_formula(formula: str) -> ParsedFormula:
    """Parse a Bambi formula (or the ``x:(1|g)`` spelling) into its terms.

    Parameters
    ----------
    formula : str
        A model formula such as ``"Ht ~ 0 + H0:(1|gene/sgRNA)"``.

    Returns
    -------
    ParsedFormula
        The fitted formula and its terms.

    Raises
    ------
    ValueError
        If the formula is not a string, has no response, or does not parse; if it has a number
        where a column belongs, or an interaction with a group-specific term such as the typo
        ``x:(2|g)`` (formulae drops such terms silently); or if its group-specific terms all
        vanish.

    Examples
    --------
    >>> p = parse_formula("y ~ x + (x|g)")
    >>> p.response, p.intercept, p.common
    ('y', True, ('x',))
    >>> [t.name for t in p.group_terms]
    ['1|g', 'x|g']
    """
    import formulae

    if not isinstance(formula, str) or not formula.strip():
        raise ValueError(f"formula must be a non-empty string such as 'y ~ x', got {formula!r}.")
    if "~" not in formula:
        raise ValueError(
            f"formula {formula!r} has no response: write it as 'response ~ predictors', "
            "e.g. 'Ht ~ 0 + H0:(1|gene/sgRNA)'."
        )
    fitted = translate_formula(formula)
    _check_group_interactions(formula, fitted)
    try:
        desc = formulae.model_description(fitted)
    except Exception as exc:  # formulae raises several error types
        raise ValueError(
            f"formula {formula!r} does not parse ({type(exc).__name__}: {exc}). skhier reads "
            "Bambi formulas, e.g. 'y ~ x + (1|g)', 'y ~ 0 + x + (0 + x|gene/sgRNA)', or the "
            "spelling 'y ~ 0 + x:(1|gene/sgRNA)'."
        ) from None
    if desc.response is None:
        raise ValueError(f"formula {formula!r} has no response on the left of '~'.")

    unsupported: list[str] = []
    rcomps = getattr(desc.response.term, "components", [])
    if len(rcomps) == 1 and type(rcomps[0]).__name__ == "Variable":
        response = _column_name(rcomps[0], formula)
    else:
        response = str(desc.response.term)
        unsupported.append(f"the response {response} is not a plain column")

    intercept = False
    common: list[str] = []
    offsets: list[str] = []
    for term in desc.common_terms:
        kind = type(term).__name__
        if kind == "Intercept":
            intercept = True
            continue
        comps = getattr(term, "components", [])
        if len(comps) == 1 and type(comps[0]).__name__ == "Variable":
            common.append(_column_name(comps[0], formula))
        elif len(comps) == 1 and _offset_column(comps[0]) is not None:
            offsets.append(_offset_column(comps[0]))
        else:
            unsupported.append(f"the common term {term} is not a plain numeric column")

    group_terms: list[GroupTerm] = []
    for g in desc.group_terms:
        kind = type(g.expr).__name__
        if kind == "Intercept":
            column = INTERCEPT
        else:
            comps = getattr(g.expr, "components", [])
            if len(comps) == 1 and type(comps[0]).__name__ == "Variable":
                column = _column_name(comps[0], formula, where="group")
            else:
                unsupported.append(f"the group-specific term ({g.expr}|...) is not a plain column")
                continue
        factors = tuple(_column_name(c, formula, where="factor") for c in g.factor.components)
        group_terms.append(GroupTerm(column, factors))
    if "|" in fitted.split("~", 1)[1] and not group_terms:
        raise ValueError(
            f"formula {formula!r} has a group-specific term ('|'), but every one vanished when "
            "it was read; write them as '(1|g)', '(0 + x|g)' or 'x:(1|g)' (nested: 'a/b')."
        )

    if len(offsets) > 1:
        unsupported.append(f"the formula has {len(offsets)} offsets; sum them into one column")
    return ParsedFormula(
        formula=fitted,
        response=response,
        intercept=intercept,
        common=tuple(common),
        group_terms=tuple(group_terms),
        unsupported=tuple(unsupported),
        offset=offsets[0] if len(offsets) == 1 else None,
    )


def _offset_column(component) -> str | None:
    """Return the column of an ``offset(column)`` term (a plain column), or None."""
    call = getattr(component, "call", None)
    if type(component).__name__ != "Call" or getattr(call, "callee", None) != "offset":
        return None
    args = getattr(call, "args", [])
    if len(args) == 1 and type(args[0]).__name__ == "LazyVariable":
        return args[0].name
    return None


_NUMBER_HINTS = {
    "term": "the intercept is written '1' (or '0' to drop it)",
    "group": "a group-specific term is '(1|g)' (varying intercepts) or '(0 + x|g)' (varying "
    "slopes on x)",
    "factor": "the grouping factor after '|' is a column, e.g. '(1|gene)'",
}


def _column_name(variable, formula: str, *, where: str = "term") -> str:
    """Return a formula variable's column name; raise for a number standing where one belongs."""
    name = variable.name
    if not isinstance(name, str):
        raise ValueError(
            f"formula {formula!r} has the number {name!r} where a column name belongs; "
            f"{_NUMBER_HINTS[where]}."
        )
    return name


def _check_group_interactions(formula: str, fitted: str) -> None:
    """Raise for an interaction with a group-specific term, which formulae would drop."""
    match = _GROUP_INTERACTION.search(fitted.split("~", 1)[1])
    if match is None:
        return
    term = match.group(0).strip()
    x = match.group("x") or match.group("x2")
    g = (match.group("g") or match.group("g2")).strip()
    raise ValueError(
        f"formula {formula!r} has the term {term!r}, an interaction with a group-specific "
        "term, which is not a model term (formulae would drop it without a word). A slope on "
        f"{x} varying by {g} is written '{x}:(1|{g})' (with a 1 before the '|') or "
        f"'(0 + {x}|{g})'."
    )
