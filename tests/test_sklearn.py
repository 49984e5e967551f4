"""scikit-learn citizenship: clone, params, Pipeline, group-aware CV, GridSearchCV."""

import numpy as np
import pandas as pd
import pytest
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
    assert isinstance(grid.cv_results_["mean_test_score"], np.ndarray)


def test_predict_on_frame_without_response(forum_sim):
    _, df = forum_sim
    r = HierarchicalRanker(formula=FORUM, **small_kwargs()).fit(df)
    X = df.drop(columns="Ht")
    np.testing.assert_allclose(r.predict(X), r.predict(df))
    assert r.score(X, df["Ht"]) == pytest.approx(r.score(df))
    with pytest.raises(ValueError, match="score needs the response"):
        r.score(X)


def test_unfitted_repr_is_short():
    assert "formula=" in repr(HierarchicalRanker(formula=FORUM))
    assert isinstance(pd.__version__, str)
