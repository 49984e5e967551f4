"""What a fitted ranker and a Diagnostics show: summary(), reprs and the notebook HTML."""

import copy
import re
import time
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from sklearn import config_context
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import estimator_html_repr

from skhier import HierarchicalRanker
from tests.helpers import FORUM, small_kwargs

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip


class _Checker(HTMLParser):
    """Balanced tags, no document-level elements, nothing loaded from outside."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag in ("html", "head", "body", "link", "iframe"):
            self.errors.append(f"<{tag}> in a fragment")
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.errors.append(f"external {name}={value!r}")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def check_html(markup):
    checker = _Checker()
    checker.feed(markup)
    checker.close()
    assert not checker.errors, checker.errors[:5]
    assert not checker.stack, f"unclosed: {checker.stack}"
    assert "@import" not in markup
    assert all(m.startswith("data:") for m in re.findall(r"url\(([^)]*)\)", markup))
    return "".join(checker.text)


@pytest.fixture(scope="module")
def fitted(forum_sim):
    _, df = forum_sim
    return HierarchicalRanker(formula=FORUM, level="gene", top_k=3, **small_kwargs()).fit(df)


def _fresh(ranker):
    """A shallow copy whose lazy caches are empty (the module fixture is shared)."""
    other = copy.copy(ranker)
    other._cache = {}
    other._model = None
    return other


# ------------------------------------------------------------------ text


def test_summary_describes_the_fit(fitted):
    text = fitted.summary()
    lines = text.splitlines()
    assert lines[0] == "HierarchicalRanker (fitted)"
    assert f"formula  {fitted.formula_}" in text and f"(given: {FORUM})" in text
    assert "engine   collapsed" in text
    assert "nutpie: 2 chains x 200 draws after 200 warm-up" in text
    assert "pooling 'partial'" in text and "at level 'gene' (5 groups, largest first)" in text
    assert "data     1,000 rows; groups: gene 5, gene:sgRNA 20" in text
    verdict = "PASSED" if fitted.diagnostics_.passed else "FAILED"
    assert f"checks   {verdict}" in text
    head = next(i for i, line in enumerate(lines) if line.startswith("Top 5 of 5 groups"))
    assert lines[head + 1].split() == [
        "rank", "gene", "mean", "expected", "rank", "90%", "rank", "interval", "P(top", "3)"
    ]  # fmt: skip
    assert [line.split()[1] for line in lines[head + 2 : head + 7]] == list(fitted.rank_.index)
    assert "ranker.rank_table(level='sgRNA')" in text and "plot_ranks(ranker)" in text
    assert "ranker.diagnostics_" in text and "ranker.dominance_" in text


def test_summary_rows_and_errors(fitted):
    text = fitted.summary(n=2)
    assert "Top 2 of 5 groups" in text and "... 3 more in ranker.rank_" in text
    assert "Top 0 of 5" in fitted.summary(n=0)
    with pytest.raises(ValueError, match="n"):
        fitted.summary(n=-1)
    with pytest.raises(NotFittedError):
        HierarchicalRanker(formula=FORUM).summary()


def test_repr_stays_the_parameter_repr(fitted):
    # clone, get_params and every printout of an estimator rely on it
    assert repr(fitted) == repr(clone(fitted))
    assert "\n" not in repr(HierarchicalRanker(formula=FORUM))
    assert "Fit summary" not in repr(fitted) and "rank" not in str(fitted).split("(")[0]


def test_diagnostics_reprs(fitted):
    from IPython.lib.pretty import pretty

    diag = fitted.diagnostics_
    short = repr(diag)
    assert "\n" not in short and len(short) < 200
    assert re.match(
        r"<Diagnostics (PASSED|FAILED).*: 2 chains x 200 draws, \d+ parameters; R-hat", short
    )
    assert str(diag) == diag.summary() == pretty(diag)
    assert repr([diag]) == f"[{short}]"


# ------------------------------------------------------------------ HTML


def test_unfitted_html_is_scikit_learns():
    ranker = HierarchicalRanker(formula=FORUM)
    markup = ranker._repr_html_()
    assert "Fit summary" not in markup and "skhier-repr" not in markup
    ids = r"sk-(container|estimator)-id-\d+"  # counters: each rendering has new ids
    assert re.sub(ids, "", markup) == re.sub(ids, "", estimator_html_repr(ranker))
    bundle = ranker._repr_mimebundle_()
    assert bundle["text/plain"] == repr(ranker) and "Not fitted" in bundle["text/html"]


def test_fitted_html_shows_the_fit(fitted):
    ranker = _fresh(fitted)
    t0 = time.perf_counter()
    markup = ranker._repr_html_()
    assert time.perf_counter() - t0 < 2.0
    text = check_html(markup)
    # scikit-learn's diagram (the parameters), then the summary
    assert markup.index("sk-top-container") < markup.index("Fit summary")
    assert "Parameters" in text and "Fitted attributes" in text
    for expected in (
        fitted.formula_, "collapsed", "nutpie", "sampler checks", "Top 5 of 5 groups at level gene",
        "expected rank", "90% rank interval", "P(top 3)", "What to look at next",
        "ranker.diagnostics_", "ranker.rank_", "plot_ranks(ranker)",
    ):  # fmt: skip
        assert expected in text, expected
    for label in fitted.rank_.index:
        assert f'<td class="l">{label}</td>' in markup
    # the lazy attributes are not computed just to show the estimator
    assert ranker._cache == {} and ranker._model is None
    bundle = ranker._repr_mimebundle_()
    assert bundle["text/plain"] == repr(ranker)
    assert "Fit summary" in bundle["text/html"]
    assert ranker._cache == {} and ranker._model is None


def test_html_follows_the_display_option(fitted):
    with config_context(display="text"):
        assert not hasattr(fitted, "_repr_html_")
        assert set(fitted._repr_mimebundle_()) == {"text/plain"}


def test_html_escapes_labels(fitted):
    ranker = _fresh(fitted)
    nasty = ["<script>alert(1)</script>", "a&b", 'say "hi"', "<b>G</b>", "x>y"]
    ranker.rank_ = fitted.rank_.set_axis(pd.Index(nasty, name="<gene>"))
    markup = ranker._repr_html_()
    check_html(markup)
    assert "<script>alert(1)" not in markup and "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
    assert "<b>G</b>" not in markup and "&lt;b&gt;G&lt;/b&gt;" in markup
    assert "a&amp;b" in markup and "&lt;gene&gt;" in markup


def test_html_is_small_for_many_groups(fitted):
    # 70,000 groups (a genome-wide sgRNA ranking): the display shows the top rows only
    ranker = _fresh(fitted)
    n = 70_000
    rows = fitted.rank_.iloc[np.arange(n) % len(fitted.rank_)].copy()
    rows.index = pd.Index([f"sg{i:05d}" for i in range(n)], name="sgRNA")
    rows["rank"] = np.arange(1, n + 1)
    rows.attrs = dict(fitted.rank_.attrs)
    ranker.rank_ = rows
    t0 = time.perf_counter()
    markup = ranker._repr_html_()
    text = ranker.summary()
    assert time.perf_counter() - t0 < 2.0
    check_html(markup)
    small = _fresh(fitted)._repr_html_()
    assert len(markup) < len(small) + 2_000 < 80_000
    assert markup.count("<tr>") == small.count("<tr>") + 5  # ten rows instead of five
    assert "sg00009" in markup and "sg00010" not in markup
    assert "69,990 more" in markup and "69,990 more" in text
    assert "ranker.dominance(top_k=100)" in text and "plot_ranks(ranker, top=50)" in text
    assert ranker._cache == {}


def test_scikit_learn_diagram_does_not_compute_lazy_attributes(fitted):
    from sklearn.pipeline import make_pipeline

    ranker = _fresh(fitted)
    markup = estimator_html_repr(make_pipeline(ranker))
    assert ranker._cache == {} and ranker._model is None
    names = set(re.findall(r">\s*(\w+_)\s*</a>", markup))
    assert {"rank_", "diagnostics_", "idata_", "engine_"} <= names
    assert not names & {"dominance_", "loo_", "model_"}
    _ = ranker.dominance_  # computed: now listed
    assert "dominance_" in re.findall(r">\s*(\w+_)\s*</a>", estimator_html_repr(ranker))


def test_diagnostics_html(fitted):
    from skhier.diagnostics import Diagnostics

    markup = fitted.diagnostics_._repr_html_()
    text = check_html(markup)
    assert "Sampler diagnostics:" in text
    for check in fitted.diagnostics_.checks["check"]:
        assert check in text
    # a failed verdict names the failed checks and says what to do, escaped
    d = Diagnostics.from_dict(fitted.diagnostics_.to_dict())
    d.passed = False
    bad = d.checks["check"] == "divergences"
    d.checks.loc[bad, ["value", "passed", "status"]] = [3, False, "fail"]
    d.update_info(target_accept=0.8, parametrization={"<gene>": "centered"})
    markup = d._repr_html_()
    text = check_html(markup)
    assert re.search(r"FAILED \((r_hat, )?divergences\)", text) and "What to do:" in text
    assert "parametrization='noncentered' for level '<gene>'" in text
    assert "&lt;gene&gt;" in markup and "<gene>" not in markup
    assert "3 divergences" in repr(d)


def test_failed_fit_says_what_to_do(fitted):
    from skhier.diagnostics import Diagnostics

    ranker = _fresh(fitted)
    d = Diagnostics.from_dict(fitted.diagnostics_.to_dict(include_table=True))
    d.passed = False
    bad = d.checks["check"] == "divergences"
    d.checks.loc[bad, ["value", "passed", "status"]] = [7, False, "fail"]
    ranker.diagnostics_ = d.update_info(target_accept=0.95)
    text = ranker.summary()
    assert "checks   FAILED (" in text and "7 divergences" in text
    assert "    - 7 divergent transitions after warm-up" in text
    worst = fitted.diagnostics_.table.sort_values("r_hat", ascending=False)["variable"].iloc[0]
    assert re.search(rf"plot_diagnostics\(ranker, \[[^]]*'{re.escape(worst)}'", text)
    markup = ranker._repr_html_()
    plain = check_html(markup)
    assert '<span class="fail">FAILED' in markup and "What to do:" in plain
    assert "7 divergent transitions after warm-up" in plain


def test_summary_of_other_models(forum_sim):
    # no formula: the coefficients of a Bayesian linear regression are ranked
    _, df = forum_sim
    X = df[["M", "U", "H0"]]
    ranker = HierarchicalRanker(**small_kwargs()).fit(X, df["Ht"])
    text = ranker.summary()
    assert "ranks the coefficients at level 'coefficient' (3 groups" in text
    assert "groups:" not in text and "rank_table(level=" not in text
    check_html(ranker._repr_html_())
    # complete pooling: one slope, the genes still ranked (all alike)
    pooled = HierarchicalRanker(formula=FORUM, pooling="complete", level="gene", **small_kwargs())
    text = pooled.fit(df).summary()
    assert "pooling 'complete'" in text and "Top 5 of 5 groups at level 'gene'" in text
    check_html(pooled._repr_html_())
