"""Tests for skhier._parallel (one rule for n_jobs, the shared pool, nested parallel steps) and
skhier.parallel (fit_many: many independent fits through joblib).

fit_many on a Dask cluster is tested in test_distributed.py.
"""

import logging
import threading

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

import skhier
from skhier import HierarchicalRanker, SamplerConvergenceWarning, ScreenSimulator, fit_many
from skhier._parallel import (
    available_cores,
    n_threads,
    parallel_for,
    resolve_n_jobs,
    thread_limit,
)
from tests.helpers import FORUM, small_kwargs


def test_resolve_n_jobs():
    cores = available_cores()
    assert resolve_n_jobs(None) == resolve_n_jobs(-1) == cores
    assert resolve_n_jobs(3) == 3
    assert resolve_n_jobs(-cores - 5) == 1
    with pytest.raises(ValueError, match="n_jobs=0 is not valid"):
        resolve_n_jobs(0)
    with pytest.raises(TypeError, match="'two'"):
        resolve_n_jobs("two")
    with pytest.raises(TypeError, match="True"):
        resolve_n_jobs(True)


def test_thread_limit_nests_and_restores():
    outside = n_threads()
    with thread_limit(1):
        assert n_threads() == 1
        with thread_limit(2):
            assert n_threads() == 2
        assert n_threads() == 1
    assert n_threads() == outside


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_parallel_for_covers_every_item_once(threads):
    hits = np.zeros(1000, dtype=np.int64)
    tids = set()

    def work(lo, hi, tid, out):
        out[lo:hi] += 1
        tids.add(tid)

    parallel_for(work, hits.size, hits, threads=threads, batch=7)
    assert (hits == 1).all()
    assert tids <= set(range(threads))


def test_parallel_for_propagates_errors():
    def work(lo, hi, tid):
        if lo <= 50 < hi:
            raise RuntimeError("item 50")

    with pytest.raises(RuntimeError, match="item 50"):
        parallel_for(work, 100, threads=2, batch=10)


def test_nested_parallel_for_does_not_deadlock():
    """A parallel step inside a parallel step runs inline instead of waiting for the pool."""
    out = np.zeros((8, 50))

    def inner(lo, hi, tid, row):
        row[lo:hi] = np.arange(lo, hi)

    def outer(lo, hi, tid):
        for i in range(lo, hi):
            parallel_for(inner, out.shape[1], out[i], threads=2, batch=5)

    done = threading.Event()

    def main():
        parallel_for(outer, out.shape[0], threads=2, batch=1)
        done.set()

    threading.Thread(target=main, daemon=True).start()
    assert done.wait(30), "nested parallel_for deadlocked"
    assert (out == np.arange(50)).all()


# ---------------------------------------------------------------------------- fit_many
@pytest.fixture(scope="module")
def screens():
    return {
        name: ScreenSimulator(
            n_genes=4, sgrnas_per_gene=3, n_samples=10, random_state=seed
        ).fit_transform()
        for seed, name in enumerate(["a", "b"])
    }


def ranker(**kw):
    return HierarchicalRanker(formula=FORUM, level="gene", **small_kwargs(**kw))


def assert_same_fit(a, b):
    for name, value in a.idata_.posterior.data_vars.items():
        np.testing.assert_array_equal(b.idata_.posterior[name].to_numpy(), value.to_numpy())


def test_fit_many_is_public_and_lazy():
    assert skhier.fit_many is skhier.parallel.fit_many
    assert "fit_many" in skhier.__all__


def test_fit_many_equals_fitting_each_and_keeps_the_template_unfitted(screens):
    template = ranker()
    as_list = fit_many(template, list(screens.values()))
    as_dict = fit_many(template, screens, n_jobs=1)
    with pytest.raises(NotFittedError):
        check_is_fitted(template, "idata_")
    assert isinstance(as_list, list) and len(as_list) == 2
    assert list(as_dict) == ["a", "b"]
    assert as_list[0] is not as_list[1]
    for fitted, (name, df) in zip(as_list, screens.items(), strict=True):
        direct = ranker().fit(df)
        assert_same_fit(direct, fitted)
        assert_same_fit(direct, as_dict[name])
    # different screens, different posteriors
    assert not np.array_equal(
        as_list[0].idata_.posterior["H0"].to_numpy(), as_list[1].idata_.posterior["H0"].to_numpy()
    )


def test_fit_many_pairs_each_estimator_with_its_dataset(screens):
    df = screens["a"]
    by_list = fit_many([ranker(pooling="complete"), ranker(pooling="partial")], [df, df])
    assert [r.pooling for r in by_list] == ["complete", "partial"]
    by_dict = fit_many({"b": ranker(pooling="none"), "a": ranker()}, screens)
    assert list(by_dict) == ["a", "b"]  # the datasets' order
    assert by_dict["b"].pooling == "none" and by_dict["a"].pooling == "partial"
    assert_same_fit(by_list[1], by_dict["a"])


def test_fit_many_in_parallel_keeps_the_order(screens):
    with joblib.parallel_config(backend="threading"):
        fitted = fit_many(ranker(), screens, n_jobs=2)
    assert list(fitted) == ["a", "b"]
    for name, df in screens.items():
        assert_same_fit(ranker().fit(df), fitted[name])


def test_fit_many_of_nothing_is_empty():
    assert fit_many(ranker(), []) == []
    assert fit_many(ranker(), {}) == {}


@pytest.mark.parametrize(
    "estimators, datasets, error, match",
    [
        (ranker(), pd.DataFrame({"x": [1.0]}), TypeError, "got a single DataFrame; wrap it"),
        (ranker(), "screen.csv", TypeError, "list or dict of pandas DataFrames, got str"),
        (ranker(), 3, TypeError, "list or dict of pandas DataFrames, got int"),
        (ranker(), [np.zeros((2, 2))], TypeError, r"datasets\[0\] must be a pandas DataFrame"),
        (ranker(), {"a": None}, TypeError, r"datasets\['a'\] must be a pandas .*got NoneType"),
        ("ranker", [pd.DataFrame()], TypeError, "estimators must be a scikit-learn estimator"),
        ([ranker(), 1], [pd.DataFrame()] * 2, TypeError, r"estimators\[1\] must be a scikit"),
        ([ranker()], [pd.DataFrame()] * 2, ValueError, "estimators has 1 item.* datasets has 2"),
        ({"a": ranker()}, [pd.DataFrame()], TypeError, "estimators is a dict but datasets"),
        (
            {"a": ranker(), "c": ranker()},
            {"a": pd.DataFrame(), "b": pd.DataFrame()},
            ValueError,
            r"missing estimators for \['b'\], no datasets for \['c'\]",
        ),
    ],
)
def test_fit_many_names_bad_inputs(estimators, datasets, error, match):
    with pytest.raises(error, match=match):
        fit_many(estimators, datasets)


@pytest.mark.parametrize(
    "kw, error, match",
    [
        ({"n_jobs": 0}, ValueError, "n_jobs=0 is not valid"),
        ({"n_jobs": 1.5}, TypeError, "n_jobs"),
        ({"verbose": -1}, ValueError, "verbose"),
    ],
)
def test_fit_many_checks_its_options(screens, kw, error, match):
    with pytest.raises(error, match=match):
        fit_many(ranker(), screens, **kw)


def test_fit_many_options_are_keyword_only(screens):
    with pytest.raises(TypeError, match="positional"):
        fit_many(ranker(), screens, 1)


def test_fit_many_notes_the_dataset_of_a_failed_fit(screens):
    bad = screens["b"].drop(columns="H0")
    with pytest.raises(ValueError, match="column 'H0' used by the formula") as info:
        fit_many(ranker(), {"a": screens["a"], "bad": bad})
    assert "skhier.fit_many: raised while fitting the dataset 'bad'." in info.value.__notes__


def test_fit_many_reissues_warnings_with_the_dataset(screens):
    short = ranker(draws=30, tune=30, on_fail="warn")  # too few draws: the ESS check fails
    with pytest.warns(SamplerConvergenceWarning) as record:
        fit_many(short, screens)
    named = [str(w.message).rsplit("(skhier.fit_many: ", 1)[-1] for w in record]
    assert named == ["dataset 'a')", "dataset 'b')"]


def test_fit_many_logs_each_fit(screens, caplog):
    with caplog.at_level(logging.INFO, logger="skhier"):
        fit_many(ranker(), screens, verbose=1)
    text = caplog.text
    assert "fit_many fits 2 dataset(s)" in text
    assert "fit_many fitted dataset 'a' (1/2)" in text
    assert "fit_many fitted dataset 'b' (2/2)" in text
