"""What a fitted ranker and a :class:`~skhier.diagnostics.Diagnostics` show: HTML and plain text.

Used by :meth:`skhier.HierarchicalRanker.summary`, by the ranker's notebook display and by the
``Diagnostics`` reprs. Every piece of HTML here is self-contained (one ``<style>`` element scoped
to ``.skhier-repr``, no script, no external file), escapes every label, formula and message, and
stays small whatever the number of groups: the rank table shows the top rows only. Nothing here
computes a lazy attribute of the ranker (``dominance_``, ``loo_``, ``model_``): the displays read
what the fit stored.
"""

from __future__ import annotations

import html
import math
import numbers

import numpy as np

from skhier.diagnostics.verdict import _fmt

__all__ = [
    "DEFAULT_ROWS",
    "diagnostics_html",
    "diagnostics_repr",
    "fitted_attributes",
    "ranker_html",
    "ranker_summary",
]

#: Rows of the rank table shown by the ranker's summary and notebook display.
DEFAULT_ROWS = 10
#: Above this many groups the hints point at ``dominance(top_k=...)`` instead of ``dominance_``.
_DOMINANCE_HINT_LIMIT = 2000

_STYLE = (
    "<style>"
    ".skhier-repr{font-family:var(--jp-content-font-family,system-ui,sans-serif);"
    "font-size:13px;line-height:1.45;color:inherit;max-width:60em;margin:.4em 0}"
    ".skhier-repr h4{font-size:1.05em;margin:.6em 0 .3em}"
    ".skhier-repr table{border-collapse:collapse;margin:.2em 0 .5em;font-size:inherit}"
    ".skhier-repr th,.skhier-repr td{padding:.15em .7em;text-align:right;vertical-align:top;"
    "border:none;border-bottom:1px solid rgba(128,128,128,.3)}"
    ".skhier-repr thead th{border-bottom:1px solid rgba(128,128,128,.7)}"
    ".skhier-repr .l{text-align:left}"
    ".skhier-repr .ok{color:#1a7f37;font-weight:600}"
    ".skhier-repr .fail{color:#cf222e;font-weight:600}"
    ".skhier-repr .warn{color:#9a6700;font-weight:600}"
    ".skhier-repr code{font-size:.95em;background:rgba(128,128,128,.14);"
    "padding:0 .25em;border-radius:3px}"
    ".skhier-repr ul{margin:.2em 0 .5em;padding-left:1.4em}"
    ".skhier-repr p{margin:.2em 0}"
    "</style>"
)


def _e(value) -> str:
    """Escape any value for HTML text and attributes."""
    return html.escape(str(value), quote=True)


def _num(value, digits: int = 3) -> str:
    """Format a number for display (the diagnostics' format, decimals kept below 1,000)."""
    return _fmt(value, digits, grouped_from=1000)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'s' * (n != 1)}"


def _table_html(header, rows, left=()) -> str:
    """Write an HTML table; the columns whose index is in ``left`` are left-aligned text."""

    def cell(tag, i, text):
        cls = ' class="l"' if i in left else ""
        return f"<{tag}{cls}>{text}</{tag}>"

    head = "".join(cell("th", i, _e(h)) for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text_table(header, rows, left=()) -> list[str]:
    """Write plain-text columns (two spaces apart), right-aligned except the ``left`` ones."""
    rows = [list(map(str, header))] + [list(map(str, r)) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    out = []
    for r in rows:
        cells = [
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    return out


# --------------------------------------------------------------------------------------------
# Diagnostics
# --------------------------------------------------------------------------------------------

_OPS = {
    "r_hat": "<=",
    "ess_bulk": ">=",
    "ess_tail": ">=",
    "divergences": "<=",
    "ebfmi": ">=",
    "tree_depth": "<=",
    "finite": "<=",
}


def _verdict(diag) -> tuple[str, str]:
    """Return the verdict word and its CSS class: PASSED, PASSED with warnings, or FAILED."""
    checks = diag.checks
    failed = [str(c) for c in checks.loc[~checks["passed"], "check"]]
    if diag.passed:
        if failed:
            return f"PASSED with warnings ({', '.join(failed)})", "warn"
        return "PASSED", "ok"
    return f"FAILED ({', '.join(failed)})", "fail"


def _check_value(diag, name):
    match = diag.checks.loc[diag.checks["check"] == name, "value"]
    return float(match.iloc[0]) if len(match) else float("nan")


def _headline(diag) -> str:
    """R-hat, ESS and divergences in one short phrase."""
    parts = [f"R-hat {_num(_check_value(diag, 'r_hat'), 4)}"]
    bulk, tail = _check_value(diag, "ess_bulk"), _check_value(diag, "ess_tail")
    parts.append(f"min ESS bulk {_num(bulk)} / tail {_num(tail)}")
    div = _check_value(diag, "divergences")
    if not math.isnan(div):
        parts.append(_plural(int(div), "divergence"))
    return ", ".join(parts)


def diagnostics_repr(diag) -> str:
    """One line: the verdict, the size of the posterior, R-hat, ESS and divergences.

    Parameters
    ----------
    diag : skhier.diagnostics.Diagnostics
        The verdict to describe.

    Returns
    -------
    str
        ``<Diagnostics PASSED: 4 chains x 1,000 draws, 62 parameters; R-hat ...>``.
    """
    verdict, _ = _verdict(diag)
    size = (
        f"{_plural(diag.n_chains, 'chain')} x {diag.n_draws:,} draws, "
        f"{_plural(diag.n_parameters, 'parameter')}"
    )
    return f"<Diagnostics {verdict}: {size}; {_headline(diag)}>"


def _checks_rows(diag, escape=True):
    esc = _e if escape else str
    rows = []
    for rec in diag.checks.itertuples(index=False):
        threshold = f"{_OPS.get(rec.check, '')} {_num(rec.threshold)}".strip()
        value = _num(rec.value, 4 if rec.check == "r_hat" else 3)
        status = esc(rec.status)
        if escape:
            cls = {"ok": "ok", "fail": "fail", "warn": "warn"}.get(str(rec.status))
            status = f'<span class="{cls}">{status}</span>' if cls else status
        rows.append((esc(rec.check), esc(value), esc(threshold), status, esc(rec.detail or "")))
    return rows


def _messages_html(messages) -> str:
    if not messages:
        return ""
    items = "".join(f"<li>{_e(m)}</li>" for m in messages)
    return f"<p><b>What to do:</b></p><ul>{items}</ul>"


def diagnostics_html(diag) -> str:
    """Show a verdict as HTML: headline, one row per check, the actions to take.

    Parameters
    ----------
    diag : skhier.diagnostics.Diagnostics
        The verdict to show.

    Returns
    -------
    str
        A self-contained ``<div>`` (a scoped ``<style>`` and the content).
    """
    verdict, cls = _verdict(diag)
    table = _table_html(
        ("check", "value", "threshold", "status", "detail"), _checks_rows(diag), left=(0, 3, 4)
    )
    n = len(diag.table)
    more = (
        f"<p>Per-parameter statistics (mean, sd, MCSE, ESS, R-hat): <code>.table</code> "
        f"({_plural(n, 'row')}); trace and rank plots: "
        "<code>skhier.plotting.plot_diagnostics(ranker, var_names)</code>.</p>"
        if n
        else ""
    )
    return (
        f'<div class="skhier-repr">{_STYLE}'
        f'<h4>Sampler diagnostics: <span class="{cls}">{_e(verdict)}</span></h4>'
        f"<p>{_e(diag._context())}</p>{table}{_messages_html(diag.messages)}{more}</div>"
    )


# --------------------------------------------------------------------------------------------
# A fitted ranker
# --------------------------------------------------------------------------------------------


def _levels(ranker) -> dict:
    """Map each grouping factor (once, not its short alias) to its short name and size."""
    out, seen = {}, set()
    for name, frame in getattr(ranker, "groups_", {}).items():
        if id(frame) in seen:
            continue
        seen.add(id(frame))
        out[name] = (frame.index.name or name, len(frame))
    return out


def _facts(ranker) -> list[tuple[str, str]]:
    """(label, text) pairs describing the fit; plain text, escaped by the HTML writer."""
    diag = ranker.diagnostics_
    info = diag.info
    plan = ranker.plan_
    facts = []
    formula = ranker.formula_ if ranker.formula_ is not None else "(no formula)"
    given = ranker.formula
    if given is not None and given != ranker.formula_:
        formula += f"   (given: {given})"
    facts.append(("formula", formula))
    what = "the coefficients" if plan.column is None else f"the effect of {ranker.column_!r}"
    n_ranked = len(ranker.rank_)
    facts.append(
        (
            "model",
            f"family {plan.family}, pooling {plan.pooling!r}; ranks {what} at level "
            f"{ranker.level_!r} ({_plural(n_ranked, 'group')}, "
            f"{'smallest' if ranker.ascending else 'largest'} first)",
        )
    )
    levels = ", ".join(f"{k} {n:,}" for k, (_, n) in _levels(ranker).items())
    facts.append(("data", f"{len(plan.data):,} rows" + (f"; groups: {levels}" if levels else "")))
    engine = str(ranker.engine_)
    reason = info.get("fallback_reason") or ""
    if reason:
        engine += f" ({reason})"
    facts.append(("engine", engine))
    sampler = str(info.get("sampler", ranker.sampler))
    run = f"{sampler}: {_plural(diag.n_chains, 'chain')} x {diag.n_draws:,} draws"
    if info.get("tune") is not None:
        run += f" after {int(info['tune']):,} warm-up"
    if info.get("target_accept") is not None:
        run += f", target_accept {_num(info['target_accept'])}"
    attempts = info.get("attempts")
    if isinstance(attempts, (list, tuple)) and len(attempts) > 1:
        run += f", {_plural(len(attempts) - 1, 'refit')}"
    if info.get("fit_seconds") is not None:
        run += f"; fit in {float(info['fit_seconds']):.1f} s"
    facts.append(("sampler", run))
    return facts


def _top(ranker, n: int):
    """Header and rows (strings) of the top ``n`` groups of ``rank_``."""
    table = ranker.rank_
    attrs = table.attrs
    k = attrs.get("top_k", ranker.top_k)
    prob = attrs.get("hdi_prob", ranker.hdi_prob)
    level = table.index.name or ranker.level_ or "group"
    header = (
        "rank",
        str(level),
        "mean",
        "expected rank",
        f"{100 * float(prob):g}% rank interval",
        f"P(top {k})",
    )
    head = table.head(n)
    means = np.asarray(head["mean"], dtype=float) if "mean" in head else np.array([])
    largest = np.nanmax(np.abs(means), initial=0.0) if means.size else 0.0
    # one number of decimals for the column: four significant digits for the largest mean
    decimals = int(np.clip(3 - np.floor(np.log10(largest)), 0, 6)) if largest > 0 else 3
    rows = []
    for label, rec in zip(head.index, head.to_dict("records"), strict=True):
        mean = float(rec.get("mean", np.nan))
        rows.append(
            (
                _num(rec.get("rank")),
                str(label),
                "n/a" if math.isnan(mean) else f"{mean:.{decimals}f}",
                f"{float(rec.get('expected_rank', np.nan)):.2f}",
                f"{_num(rec.get('rank_low'))} - {_num(rec.get('rank_high'))}",
                f"{float(rec.get('p_top_k', np.nan)):.3f}",
            )
        )
    return header, rows


def _worst_variables(diag, k: int = 3) -> list[str]:
    """Return the variables of the parameters with the largest R-hat and the smallest ESS."""
    table = diag.table
    if table is None or table.empty or "variable" not in table:
        return []
    names = []
    for column, ascending in (("r_hat", False), ("ess_bulk", True)):
        if column in table:
            order = table.sort_values(column, ascending=ascending, na_position="last")
            names += [str(v) for v in order["variable"].head(k)]
    return list(dict.fromkeys(names))[:k]


def _hints(ranker) -> list[tuple[str, str]]:
    """(code, what it gives) pairs: where to look next."""
    n = len(ranker.rank_)
    diag = ranker.diagnostics_
    hints = [
        (
            "ranker.rank_",
            f"the full table ({_plural(n, 'row')}): HDI, rank intervals, joint rank band, "
            "P(top-k), SUCRA, lfsr",
        )
    ]
    hints.append(
        (
            "ranker.diagnostics_",
            "the sampler checks"
            + ("" if diag.passed else " and what to do about them")
            + "; per parameter in .table",
        )
    )
    if not diag.passed:
        names = _worst_variables(diag)
        args = repr(names) if names else "var_names"
        hints.append(
            (
                f"plot_diagnostics(ranker, {args}, kind='trace')",
                "where the chains disagree or diverge (skhier.plotting)",
            )
        )
    others = [short for k, (short, _) in _levels(ranker).items() if ranker.level_ not in (k, short)]
    if others:
        hints.append((f"ranker.rank_table(level={others[-1]!r})", "another level, no refit"))
    top = "" if n <= 50 else ", top=50"
    hints.append(
        (f"plot_ranks(ranker{top})", "expected ranks with their intervals (skhier.plotting)")
    )
    if n <= _DOMINANCE_HINT_LIMIT:
        hints.append(("ranker.dominance_", "P(beta_row > beta_col) for every pair of groups"))
    else:
        gib = n * n * 4 / 2**30
        hints.append(
            (
                "ranker.dominance(top_k=100)",
                f"P(beta_row > beta_col) for the best 100 rows (all {n:,} x {n:,}: {gib:.1f} GiB)",
            )
        )
    if getattr(ranker, "_approximation", None) is not None or "approximation" in diag.info:
        hints.append(("ranker.approximation_", "how good the approximate engine's posterior is"))
    return hints


def ranker_summary(ranker, n: int = DEFAULT_ROWS) -> str:
    """Plain-text summary of a fitted ranker (see :meth:`HierarchicalRanker.summary`).

    Parameters
    ----------
    ranker : skhier.HierarchicalRanker
        A fitted ranker.
    n : int, default=10
        Rows of the rank table to show.

    Returns
    -------
    str
        The fit, the sampler verdict, the top ``n`` groups and where to look next.
    """
    diag = ranker.diagnostics_
    facts = _facts(ranker)
    verdict, _ = _verdict(diag)
    facts.append(("checks", f"{verdict}: {_headline(diag)}"))
    width = max(len(k) for k, _ in facts)
    lines = [f"{type(ranker).__name__} (fitted)"]
    lines += [f"  {k.ljust(width)}  {v}" for k, v in facts]
    lines += [f"    - {m}" for m in diag.messages]
    header, rows = _top(ranker, n)
    total = len(ranker.rank_)
    lines.append(f"Top {len(rows)} of {_plural(total, 'group')} at level {ranker.level_!r}:")
    lines += ["  " + line for line in _text_table(header, rows, left=(1,))]
    if total > len(rows):
        lines.append(f"  ... {total - len(rows):,} more in ranker.rank_")
    lines.append("Next:")
    lines += [f"  {code}: {what}" for code, what in _hints(ranker)]
    return "\n".join(lines)


def _strip_body(markup: str) -> str:
    """scikit-learn's diagram wraps itself in ``<body>``; drop it to nest it in a ``<div>``."""
    start = markup.find("<body>")
    if start >= 0:
        markup = markup[:start] + markup[start + len("<body>") :]
        end = markup.rfind("</body>")
        if end >= 0:
            markup = markup[:end] + markup[end + len("</body>") :]
    return markup


def ranker_html(ranker, estimator_html: str = "", n: int = DEFAULT_ROWS) -> str:
    """HTML of a fitted ranker: scikit-learn's diagram (parameters), then the fit summary.

    Parameters
    ----------
    ranker : skhier.HierarchicalRanker
        A fitted ranker.
    estimator_html : str, default=""
        scikit-learn's own HTML diagram of the estimator, shown first (its ``<body>`` tags
        removed so that the result nests as one ``<div>``).
    n : int, default=10
        Rows of the rank table to show.

    Returns
    -------
    str
        One ``<div>``: self-contained, every label escaped, independent of the number of
        groups beyond the top ``n``.
    """
    diag = ranker.diagnostics_
    verdict, cls = _verdict(diag)
    rows = [(f"<th class='l'>{_e(k)}</th>", _e(v)) for k, v in _facts(ranker)]
    rows[0] = (rows[0][0], f"<code>{rows[0][1]}</code>")
    check = f'<span class="{cls}">{_e(verdict)}</span>: {_e(_headline(diag))}'
    rows.append(("<th class='l'>sampler checks</th>", check))
    facts = (
        "<table><tbody>"
        + "".join(f"<tr>{k}<td class='l'>{v}</td></tr>" for k, v in rows)
        + "</tbody></table>"
    )
    header, top_rows = _top(ranker, n)
    total = len(ranker.rank_)
    body = [[_e(c) for c in r] for r in top_rows]
    table = _table_html(header, body, left=(1,))
    more = (
        f"<p>... {total - len(top_rows):,} more in <code>ranker.rank_</code></p>"
        if total > len(top_rows)
        else ""
    )
    hints = "".join(
        f"<li><code>{_e(code)}</code>: {_e(what)}</li>" for code, what in _hints(ranker)
    )
    level = _e(ranker.level_)
    summary = (
        f'<div class="skhier-repr">{_STYLE}<h4>Fit summary</h4>{facts}'
        f"{_messages_html(diag.messages)}"
        f"<h4>Top {len(top_rows)} of {_e(_plural(total, 'group'))} at level {level}</h4>"
        f"{table}{more}<h4>What to look at next</h4><ul>{hints}</ul></div>"
    )
    return f'<div class="skhier-fitted">{_strip_body(estimator_html)}{summary}</div>'


def fitted_attributes(ranker) -> dict:
    """List the fitted attributes for scikit-learn's HTML diagram, computing no lazy one.

    scikit-learn (1.8 and later) lists an estimator's fitted attributes with
    :func:`inspect.getmembers`, which evaluates every property: ``dominance_`` (an N x N matrix),
    ``loo_`` and ``model_`` would be computed just to display the estimator. This lists what the
    fit stored, and a lazy attribute only once it has been computed.

    Parameters
    ----------
    ranker : skhier.HierarchicalRanker
        A fitted ranker.

    Returns
    -------
    dict
        Name to ``{"type_name", "value"}`` (and ``"shape"``, ``"dtype"`` for arrays), sorted by
        name, as scikit-learn's ``AttrsDict`` takes them.
    """
    values = {
        name: value
        for name, value in vars(ranker).items()
        if name.endswith("_") and not name.startswith("_")
    }
    cache = getattr(ranker, "_cache", {}) or {}
    lazy = {
        "dominance_": cache.get("dominance"),
        "loo_": cache.get("loo"),
        "model_": getattr(ranker, "_model", None),
        "approximation_": getattr(ranker, "_approximation", None),
    }
    values.update({k: v for k, v in lazy.items() if v is not None})
    out = {}
    for name in sorted(values):
        value = values[name]
        entry = {"type_name": type(value).__name__, "value": value}
        if (
            hasattr(value, "shape")
            and hasattr(value, "dtype")
            and not isinstance(value, numbers.Number)
        ):
            entry.update(shape=value.shape, dtype=value.dtype)
        out[name] = entry
    return out
