"""save / load without pickle, and pickling."""

import json
import pickle

import numpy as np
import pytest

from skhier import HierarchicalRanker, load
from skhier.priors import Prior
from tests.helpers import FORUM, small_kwargs


@pytest.fixture(scope="module")
def fitted(forum_sim):
    _, df = forum_sim
    priors = {"sigma": Prior("HalfNormal", {"sigma": 3.0})}
    return HierarchicalRanker(formula=FORUM, level="gene", priors=priors, **small_kwargs()).fit(df)


def test_save_load_round_trip(fitted, forum_sim, tmp_path):
    _, df = forum_sim
    folder = fitted.save(tmp_path / "ranker")
    assert sorted(p.name for p in folder.iterdir()) == ["data.nc", "posterior.nc", "skhier.json"]
    meta = json.loads((folder / "skhier.json").read_text())
    assert meta["params"]["priors"] == {"sigma": {"name": "HalfNormal", "args": {"sigma": 3.0}}}
    again = load(folder)
    assert again.get_params()["priors"]["sigma"].args == {"sigma": 3.0}
    assert again.formula_ == fitted.formula_ and again.engine_ == fitted.engine_
    assert again.level_ == "gene"
    assert again.rank_.equals(fitted.rank_)
    np.testing.assert_allclose(again.predict(df), fitted.predict(df))
    assert again.score(df) == pytest.approx(fitted.score(df))
    assert again.diagnostics_.rhat_max == pytest.approx(fitted.diagnostics_.rhat_max)
    assert again.rank_table(level="sgRNA").equals(fitted.rank_table(level="sgRNA"))
    assert again.model_ is not None
    np.testing.assert_array_equal(again.feature_names_in_, fitted.feature_names_in_)


def test_load_rejects_other_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a ranker saved by skhier.save"):
        load(tmp_path)


def test_save_needs_a_fit(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        HierarchicalRanker(formula=FORUM).save(tmp_path)


def test_formula_none_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = X @ [1.0, -2.0, 0.5] + rng.normal(size=40)
    r = HierarchicalRanker(**small_kwargs()).fit(X, y)
    again = load(r.save(tmp_path / "lm"))
    assert again.rank_.equals(r.rank_)
    np.testing.assert_allclose(again.predict(X), r.predict(X))


def test_pickle_round_trip(fitted, forum_sim):
    _, df = forum_sim
    again = pickle.loads(pickle.dumps(fitted))
    assert again.rank_.equals(fitted.rank_)
    np.testing.assert_allclose(again.predict(df), fitted.predict(df))
    assert type(again.model_) is type(fitted.model_)
