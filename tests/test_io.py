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


def test_save_and_load_are_exported_together():
    import skhier
    import skhier.ranker

    assert {"save", "load"} <= set(skhier.__all__)
    assert skhier.save is skhier.ranker.save and skhier.load is skhier.ranker.load


def test_save_refuses_a_folder_of_other_files(fitted, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(
        FileExistsError,
        match=r"is not empty and holds no saved ranker \(notes\.txt\); save into a new or empty "
        r"folder, or pass overwrite=True",
    ):
        fitted.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing written
    fitted.save(tmp_path, overwrite=True)
    assert (tmp_path / "skhier.json").is_file()
    fitted.save(tmp_path)  # a saved ranker's folder is replaced without overwrite=True


def test_save_refuses_a_file(fitted, tmp_path):
    path = tmp_path / "ranker"
    path.write_text("")
    with pytest.raises(FileExistsError, match="exists and is not a folder"):
        fitted.save(path)


@pytest.fixture
def saved(fitted, tmp_path):
    return fitted.save(tmp_path / "saved")


def _edit_meta(folder, **changes):
    path = folder / "skhier.json"
    meta = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    path.write_text(json.dumps(meta))


def test_load_warns_for_a_newer_skhier(saved):
    import skhier

    _edit_meta(saved, skhier_version="99.1.0")
    with pytest.warns(
        UserWarning,
        match=rf"was saved by skhier 99\.1\.0, newer than this skhier {skhier.__version__}",
    ):
        again = load(saved)
    assert again.engine_ == "collapsed"


def test_load_refuses_a_newer_format(saved):
    _edit_meta(saved, format_version=99, skhier_version="99.1.0")
    with pytest.raises(
        ValueError,
        match=r"was saved in format 99 by skhier 99\.1\.0, newer than this skhier .* reads "
        r"\(format 1\); upgrade skhier",
    ):
        load(saved)


@pytest.mark.parametrize("version", ["one", None, 0, True])
def test_load_refuses_an_unknown_format(saved, version):
    if version is None:
        _edit_meta(saved, format_version=None)
    else:
        _edit_meta(saved, format_version=version)
    shown = "None" if version is None else repr(version)
    with pytest.raises(
        ValueError,
        match=rf"skhier\.json has format_version={shown}, which is not a format skhier writes "
        r"\(this skhier .* reads formats 1 to 1\)",
    ):
        load(saved)


@pytest.mark.parametrize("name", ["skhier.json", "posterior.nc", "data.nc"])
def test_load_names_a_corrupt_file(saved, name):
    (saved / name).write_bytes(b"\x89not what it should be")
    with pytest.raises(ValueError, match=rf"{name} is corrupt"):
        load(saved)


def test_load_names_a_json_without_its_sections(saved):
    _edit_meta(saved, fitted=None)
    with pytest.raises(ValueError, match=r"skhier\.json is corrupt: it lacks \['fitted'\]"):
        load(saved)


def test_check_save_folder(tmp_path):
    from skhier.io import check_save_folder

    assert check_save_folder(tmp_path / "new") == tmp_path / "new"  # nothing created
    assert not (tmp_path / "new").exists()
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(FileExistsError, match=r"\(x\.txt\)"):
        check_save_folder(tmp_path)
    assert check_save_folder(tmp_path, overwrite=True) == tmp_path
