"""scikit-learn citizenship: clone, params, Pipeline, group-aware CV, GridSearchCV."""

import re

import numpy as np
import pytest
from sklearn import config_context
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from skhier import HierarchicalRanker
from tests.helpers import FORUM, small_kwargs


def test_clone_and_params():
    r = HierarchicalRanker(formula=FORUM, level="gene", pooling="none", draws=10)
    c = clone(r)
    assert c.get_params() == r.get_params()
    c.set_params(pooling="complete", draws=20)
    assert (c.pooling, c.draws) == ("complete", 20)
    assert r.pooling == "none"


def test_parameters_are_keyword_only():
    with pytest.raises(TypeError):
        HierarchicalRanker(FORUM)


def test_pipeline(forum_sim):
    _, df = forum_sim
    pipe = Pipeline(
        [
            ("copy", FunctionTransformer(lambda d: d.copy(), validate=False)),
            ("rank", HierarchicalRanker(formula=FORUM, **small_kwargs())),
        ]
    )
    pipe.fit(df)
    assert pipe.predict(df).shape == (len(df),)
    assert np.isfinite(pipe.score(df))
    assert pipe.named_steps["rank"].rank_.shape[0] == 20


def test_cross_val_score_with_group_kfold(forum_sim):
    _, df = forum_sim
    ranker = HierarchicalRanker(formula=FORUM, **small_kwargs())
    scores = cross_val_score(ranker, df, groups=df["gene"], cv=GroupKFold(n_splits=3))
    # Held-out genes are predicted from the hierarchy: finite log densities.
    assert scores.shape == (3,) and np.isfinite(scores).all()


def test_grid_search_over_pooling(forum_sim):
    _, df = forum_sim
    grid = GridSearchCV(
        HierarchicalRanker(formula=FORUM, **small_kwargs()),
        {"pooling": ["partial", "complete"]},
        cv=GroupKFold(n_splits=2),
    )
    grid.fit(df, groups=df["sgRNA"])
    # sgRNA slopes differ, so partial pooling predicts held-out sgRNAs of seen genes better.
    assert grid.best_params_ == {"pooling": "partial"}
    mean = grid.cv_results_["mean_test_score"]
    assert mean.shape == (2,) and np.isfinite(mean).all()
    assert grid.cv_results_["params"][int(np.argmax(mean))] == grid.best_params_
    assert mean[grid.best_index_] == mean.max() == pytest.approx(grid.best_score_)


def test_predict_on_frame_without_response(forum_sim):
    _, df = forum_sim
    r = HierarchicalRanker(formula=FORUM, **small_kwargs()).fit(df)
    X = df.drop(columns="Ht")
    np.testing.assert_allclose(r.predict(X), r.predict(df))
    assert r.score(X, df["Ht"]) == pytest.approx(r.score(df))
    with pytest.raises(ValueError, match="score needs the response"):
        r.score(X)


def _repr_params(text):
    return set(re.findall(r"(\w+)=", text))


def test_unfitted_repr_is_short():
    assert repr(HierarchicalRanker()) == "HierarchicalRanker()"
    text = repr(HierarchicalRanker(formula=FORUM))
    assert "\n" not in text and len(text) <= 80
    assert _repr_params(text) == {"formula"}
    # several parameters set: only those that differ from the defaults appear, in lines of at
    # most 80 characters
    defaults = HierarchicalRanker().get_params()
    changed = {"formula": FORUM, **small_kwargs(draws=10)}
    text = repr(HierarchicalRanker(**changed))
    assert _repr_params(text) == {k for k, v in changed.items() if v != defaults[k]}
    assert max(len(line) for line in text.splitlines()) <= 80
    # the full repr would list every parameter
    with config_context(print_changed_only=False):
        full = repr(HierarchicalRanker(formula=FORUM))
    assert _repr_params(full) == set(defaults)
