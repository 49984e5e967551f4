"""Bad input: a clear error before any sampling, nothing mutated."""

import numpy as np
import pandas as pd
import pytest

from skhier import HierarchicalRanker
from skhier.engine import REGISTRY, engine_names
from tests.helpers import FORUM


@pytest.fixture(autouse=True)
def no_sampling(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("sampling started before the input was checked")

    engine_names()  # every built-in engine registered
    for engine in REGISTRY.values():
        monkeypatch.setattr(type(engine), "fit", boom)


@pytest.fixture
def df(forum_sim):
    return forum_sim[1].copy()


CASES = [
    (dict(formula="Ht ~ H0 +"), None, ValueError, "does not parse"),
    (
        dict(formula="Ht ~ 0 + H0:(1|gene/guide)"),
        None,
        ValueError,
        "column 'guide' used by the formula .* is missing from the data; the data has columns",
    ),
    (
        dict(formula=FORUM, level="batch"),
        None,
        ValueError,
        r"level='batch' is not a grouping factor of the ranked term; "
        r"choose from \['gene', 'gene:sgRNA', 'sgRNA'\]",
    ),
    (
        dict(formula=FORUM, pooling="full"),
        None,
        ValueError,
        r"pooling='full' is not valid; choose one of \('partial', 'complete', 'none'\)",
    ),
    (
        dict(formula=FORUM, sampler="stan"),
        None,
        ValueError,
        r"sampler='stan' is not valid; choose one of \('nutpie', 'pymc', 'numpyro'\)",
    ),
    (dict(formula=FORUM, draws=0), None, ValueError, r"draws=0 is out of range"),
    (dict(formula=FORUM, hdi_prob=1.0), None, ValueError, r"hdi_prob=1.0 is out of range"),
    (dict(formula=FORUM, on_fail="panic"), None, ValueError, r"on_fail='panic' is not valid"),
    (dict(formula=FORUM, column="M"), None, ValueError, r"column='M' has no group-specific"),
    (
        dict(formula=FORUM, engine="collapsed", family="poisson"),
        None,
        ValueError,
        r"family='poisson' needs counts \(non-negative integers\) in 'Ht', but \d+ row\(s\)",
    ),
    (
        dict(formula=FORUM, priors={"H1": 1.0}),
        None,
        ValueError,
        r"priors has an entry for 'H1'.*valid names are",
    ),
]


@pytest.mark.parametrize(("params", "mutate", "error", "match"), CASES)
def test_bad_parameters(df, params, mutate, error, match):
    before = df.copy()
    with pytest.raises(error, match=match):
        HierarchicalRanker(**params).fit(df)
    pd.testing.assert_frame_equal(df, before)


def test_nan_in_response(df):
    df.loc[3, "Ht"] = np.nan
    before = df.copy()
    with pytest.raises(
        ValueError, match=r"column 'Ht' has 1 NaN or infinite value\(s\).*missing='drop'"
    ):
        HierarchicalRanker(formula=FORUM).fit(df)
    pd.testing.assert_frame_equal(df, before)


def test_inf_in_predictor(df):
    df.loc[0, "H0"] = np.inf
    with pytest.raises(ValueError, match="column 'H0' has 1 NaN or infinite"):
        HierarchicalRanker(formula=FORUM).fit(df)


def test_non_numeric_predictor(df):
    df["H0"] = df["H0"].astype(str)
    with pytest.raises(ValueError, match="column 'H0' must be numeric"):
        HierarchicalRanker(formula=FORUM).fit(df)


def test_single_level_grouping(df):
    df["gene"] = "G01"
    with pytest.raises(ValueError, match="grouping column 'gene' has 1 level"):
        HierarchicalRanker(formula=FORUM).fit(df)


def test_missing_sampler_package(df, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "numpyro" else real(name, *a)
    )
    with pytest.raises(ImportError, match=r"needs numpyro.*pip install 'skhier\[numpyro\]'"):
        HierarchicalRanker(formula=FORUM, sampler="numpyro").fit(df)


def test_array_input_needs_no_formula(df):
    with pytest.raises(TypeError, match="X must be a pandas DataFrame"):
        HierarchicalRanker(formula=FORUM).fit(df.to_numpy())


def test_predict_before_fit(df):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        HierarchicalRanker(formula=FORUM).predict(df)
